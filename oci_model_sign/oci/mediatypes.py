"""Every media type, artifact type, annotation key and predicate type omsign reads or writes.

Each value is defined here once; the rest of the package imports it. Grouped by the spec that
defines it: OCI image/distribution, Docker, CNCF ModelPack (current ``vnd.cncf`` and the
pre-2025-06 ``vnd.cnai`` prefixes), ORAS, KitOps, Docker Model Runner, Sigstore/cosign, in-toto
and OpenSSF model-signing.
"""

from __future__ import annotations

import re

from ..errors import UsageError

# -- OCI image spec / distribution spec -------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
OCTET_STREAM = "application/octet-stream"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_CONTAINER_CONFIG = "application/vnd.docker.container.image.v1+json"
# What a container image (not a model) is made of: its config types and layer type prefixes.
IMAGE_CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONTAINER_CONFIG)
IMAGE_LAYER_PREFIXES = ("application/vnd.oci.image.layer.", "application/vnd.docker.image.rootfs.")
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

# -- Docker ------------------------------------------------------------------------------------
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)

# -- CNCF ModelPack (modelpack/model-spec specs-go/v1/mediatype.go) ----------------------------
MODEL_ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
MODEL_CONFIG = "application/vnd.cncf.model.config.v1+json"
LEGACY_MODEL_ARTIFACT_TYPE = "application/vnd.cnai.model.manifest.v1+json"
LEGACY_MODEL_CONFIG = "application/vnd.cnai.model.config.v1+json"
MODEL_ARTIFACT_TYPES = (MODEL_ARTIFACT_TYPE, LEGACY_MODEL_ARTIFACT_TYPE)
MODEL_CONFIG_TYPES = (MODEL_CONFIG, LEGACY_MODEL_CONFIG)

MODEL_LAYER_PREFIX = "application/vnd.cncf.model."
LEGACY_MODEL_LAYER_PREFIX = "application/vnd.cnai.model."

ROLE_WEIGHT = "weight"
ROLE_WEIGHT_CONFIG = "weight.config"
ROLE_DOC = "doc"
ROLE_CODE = "code"
ROLE_DATASET = "dataset"
ROLES = (ROLE_WEIGHT, ROLE_WEIGHT_CONFIG, ROLE_DOC, ROLE_CODE, ROLE_DATASET)

FORMAT_RAW = "raw"
FORMAT_TAR = "tar"
FORMAT_TAR_GZIP = "tar+gzip"
FORMAT_TAR_ZSTD = "tar+zstd"
FORMATS = (FORMAT_RAW, FORMAT_TAR, FORMAT_TAR_GZIP, FORMAT_TAR_ZSTD)

# Layer annotations (specs-go/v1/annotations.go); the org.cnai.* keys predate 2025-07-07.
ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_FILE_METADATA = "org.cncf.model.file.metadata+json"
ANNOTATION_MEDIATYPE_UNTESTED = "org.cncf.model.file.mediatype.untested"
LEGACY_ANNOTATION_FILEPATH = "org.cnai.model.filepath"
LEGACY_ANNOTATION_FILE_METADATA = "org.cnai.model.file.metadata+json"
LEGACY_ANNOTATION_MEDIATYPE_UNTESTED = "org.cnai.model.file.mediatype.untested"
FILEPATH_ANNOTATIONS = (ANNOTATION_FILEPATH, LEGACY_ANNOTATION_FILEPATH)

# -- ORAS --------------------------------------------------------------------------------------
ORAS_DEFAULT_ARTIFACT_TYPE = "application/vnd.unknown.artifact.v1"
ORAS_ANNOTATION_UNPACK = "io.deis.oras.content.unpack"
ORAS_ANNOTATION_CONTENT_DIGEST = "io.deis.oras.content.digest"  # digest of the uncompressed tar

# omsign's own: the uncompressed size of a tar(+zstd) layer, so extraction can be bounded
# exactly ("decompresses beyond its recorded size" -> LimitError) instead of by a ratio guess.
ANNOTATION_UNCOMPRESSED_SIZE = "org.omsign.tar.uncompressed-size"

# -- KitOps (pkg/lib/constants/mediaType.go) ---------------------------------------------------
KITOPS_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
KITOPS_LAYER_RE = re.compile(r"^application/vnd\.kitops\.modelkit\.(\w+)\.v1\.tar(?:\+(\w+))?$")
KITOPS_ANNOTATION_CLI_VERSION = "ml.kitops.modelkit.cli-version"

# -- Docker Model Runner (docker/model-spec); read-only support --------------------------------
DMR_CONFIG_TYPES = (
    "application/vnd.docker.ai.model.config.v0.1+json",
    "application/vnd.docker.ai.model.config.v0.2+json",
)
DMR_LAYER_PREFIX = "application/vnd.docker.ai."
DMR_TAR_TYPES = ("application/vnd.docker.ai.dir.tar", "application/vnd.docker.ai.vllm.config.tar")
# DMR extensions to ModelPack names ("kept for read-compatibility"): raw single files.
DMR_MODELPACK_EXTENSIONS = (
    "application/vnd.cncf.model.weight.v1.gguf",
    "application/vnd.cncf.model.weight.v1.safetensors",
)

# -- Sigstore bundles and cosign (specs/BUNDLE_SPEC.md, cosign's legacy .sig layers) -----------
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"
BUNDLE_MEDIA_TYPES = (BUNDLE_MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3")
ANNOTATION_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_PREDICATE = "dev.sigstore.bundle.predicateType"
SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIMPLE_SIGNING_TYPE = "cosign container image signature"  # critical.type of the payload
ANNOTATION_SIGNATURE = "dev.cosignproject.cosign/signature"
ANNOTATION_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANNOTATION_CHAIN = "dev.sigstore.cosign/chain"
ANNOTATION_BUNDLE = "dev.sigstore.cosign/bundle"

# -- in-toto statements and their predicate types ----------------------------------------------
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
DSSE_ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"  # a legacy .att layer
IN_TOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
IN_TOTO_STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
IN_TOTO_STATEMENT_TYPES = (IN_TOTO_STATEMENT_V01, IN_TOTO_STATEMENT_V1)
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
MODEL_SIGNING_PREDICATE = "https://model_signing/signature/v1.0"
MODEL_SIGNING_PREDICATE_COMPAT = "https://model_signing/Digests/v0.1"


def model_layer_type(role: str, fmt: str = FORMAT_RAW, *, legacy: bool = False) -> str:
    """``application/vnd.cncf.model.<role>.v1.<fmt>`` with the role and format checked."""
    if role not in ROLES:
        raise UsageError(f"unknown model layer role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    if fmt not in FORMATS:
        raise UsageError(f"unknown layer format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    prefix = LEGACY_MODEL_LAYER_PREFIX if legacy else MODEL_LAYER_PREFIX
    return f"{prefix}{role}.v1.{fmt}"


_MODEL_LAYER_RE = re.compile(
    r"^application/vnd\.(?:cncf|cnai)\.model\.(weight|weight\.config|doc|code|dataset)\.v1\."
    r"(raw|tar|tar\+gzip|tar\+zstd)$"
)


def parse_model_layer_type(media_type: str) -> tuple[str, str] | None:
    """(role, format) of a ModelPack layer type (either prefix), or None if it is not one."""
    if media_type in DMR_MODELPACK_EXTENSIONS:
        return ROLE_WEIGHT, FORMAT_RAW
    m = _MODEL_LAYER_RE.match(media_type)
    if not m:
        return None
    return m.group(1), m.group(2)


def is_model_layer_type(media_type: str) -> bool:
    return parse_model_layer_type(media_type) is not None


# -- datasets -----------------------------------------------------------------------------------
# ModelPack has layer types for dataset files (``…dataset.v1.raw``) but no manifest type for an
# artifact that is only a dataset. omsign marks such an artifact with its own artifactType and
# otherwise writes a ModelPack artifact (config and layers), so every ModelPack reader can pull
# it and a provenance or evaluation attestation can name it by digest.
DATASET_ARTIFACT_TYPE = "application/vnd.omsign.dataset.manifest.v1+json"
