"""Media types and annotation keys for models in OCI registries, and which file is which.

omsign writes CNCF ModelPack artifacts by default (one raw layer per file, as the ModelPack
spec's ``specs-go/v1`` defines them) and reads ModelPack (both the current ``vnd.cncf`` and
the pre-2025-06 ``vnd.cnai`` prefixes), plain ORAS artifacts, KitOps ModelKits and Docker Model
Runner layers. A ``MediaTypes`` convention decides what a push writes, so ``--media-types oras``
can produce an artifact that any ORAS client pulls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..errors import UsageError
from ..store.base import OCI_EMPTY

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

# OCI / ORAS
ANNOTATION_TITLE = "org.opencontainers.image.title"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
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


# -- classification ----------------------------------------------------------------------------
WEIGHT_SUFFIXES = frozenset(
    {".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ggml", ".onnx", ".onnx_data", ".h5",
     ".msgpack", ".ckpt", ".pkl", ".npz", ".npy", ".tflite", ".mlmodel", ".keras", ".pb"}
)
CONFIG_NAMES = frozenset(
    {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
     "special_tokens_map.json", "vocab.txt", "merges.txt", "tokenizer.model", "vocab.json",
     "added_tokens.json", "preprocessor_config.json", "chat_template.jinja", "params.json"}
)
CONFIG_SUFFIXES = frozenset({".json", ".yaml", ".yml", ".jinja", ".tiktoken", ".toml"})
DOC_PREFIXES = ("readme", "license", "licence", "notice", "copying", "authors", "citation",
                "changelog", "model_card", "modelcard", "use_policy")
DOC_SUFFIXES = frozenset({".md", ".txt", ".pdf", ".rst", ".html", ".png", ".jpg", ".jpeg",
                          ".gif", ".svg", ".webp"})
CODE_SUFFIXES = frozenset({".py", ".sh", ".ipynb", ".js", ".ts", ".go", ".rs", ".c", ".cc",
                           ".cpp", ".h", ".hpp", ".cu", ".r", ".jl", ".lua", ".java"})
DATASET_SUFFIXES = frozenset({".csv", ".tsv", ".parquet", ".jsonl", ".arrow", ".feather",
                              ".avro", ".orc"})


def classify_certain(relpath: str) -> tuple[str, bool]:
    """(role, certain): the ModelPack role of a file and whether the rule was an exact one.

    Unknown files become ``doc`` (the role no runtime loads as weights or executes), with
    ``certain`` False so the layer is marked ``org.cncf.model.file.mediatype.untested``.
    """
    name = PurePosixPath(relpath).name
    lower = name.lower()
    suffix = PurePosixPath(lower).suffix
    if lower in CONFIG_NAMES:
        return ROLE_WEIGHT_CONFIG, True
    if lower.startswith(DOC_PREFIXES):
        return ROLE_DOC, True
    if suffix in WEIGHT_SUFFIXES or ".onnx_data" in lower:
        return ROLE_WEIGHT, True
    if suffix in DATASET_SUFFIXES:
        return ROLE_DATASET, True
    if suffix in CONFIG_SUFFIXES:
        return ROLE_WEIGHT_CONFIG, True
    if suffix in CODE_SUFFIXES:
        return ROLE_CODE, True
    if suffix in DOC_SUFFIXES:
        return ROLE_DOC, True
    if lower.endswith(".model"):  # sentencepiece models under other names
        return ROLE_WEIGHT_CONFIG, False
    return ROLE_DOC, False


def classify(relpath: str) -> str:
    """The ModelPack role (weight, weight.config, doc, code, dataset) of a file path."""
    return classify_certain(relpath)[0]


_FORMAT_BY_SUFFIX = {
    ".safetensors": "safetensors", ".gguf": "gguf", ".onnx": "onnx", ".onnx_data": "onnx",
    ".pt": "pt", ".pth": "pt", ".bin": "pt", ".ckpt": "pt", ".h5": "h5", ".keras": "keras",
    ".tflite": "tflite", ".msgpack": "flax", ".mlmodel": "coreml", ".pkl": "pickle",
    ".npz": "numpy", ".npy": "numpy",
}


def weight_format(relpath: str) -> str | None:
    """The ModelPack ``config.format`` a weight file suggests (safetensors, gguf, onnx, pt...)."""
    return _FORMAT_BY_SUFFIX.get(PurePosixPath(relpath.lower()).suffix)


# -- conventions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MediaTypes:
    """What a push writes: artifact type, config type and layer types/annotations.

    ``modelpack`` (default): ModelPack types with filepath, title and file metadata
    annotations. ``oras``: the ORAS CLI defaults (``application/vnd.oci.image.layer.v1.tar``
    per file, title only, empty config), for clients that only know ORAS.
    """

    name: str
    artifact_type: str
    config_media_type: str
    modelpack_annotations: bool

    def layer_type(self, role: str, fmt: str) -> str:
        """The media type of a layer holding one file (``raw``) or a folder (a tar format)."""
        if self.name == "modelpack":
            return model_layer_type(role, fmt)
        if fmt in (FORMAT_RAW, FORMAT_TAR):
            return OCI_LAYER_TAR
        if fmt == FORMAT_TAR_GZIP:
            return OCI_LAYER_TAR_GZIP
        return OCI_LAYER_TAR_ZSTD


MODELPACK = MediaTypes("modelpack", MODEL_ARTIFACT_TYPE, MODEL_CONFIG, True)
ORAS = MediaTypes("oras", ORAS_DEFAULT_ARTIFACT_TYPE, OCI_EMPTY, False)
CONVENTIONS = {c.name: c for c in (MODELPACK, ORAS)}


def get_media_types(name: str) -> MediaTypes:
    """The convention named by ``--media-types``; UsageError for an unknown name."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise UsageError(
            f"unknown media type convention {name!r}",
            hint=f"use one of {', '.join(sorted(CONVENTIONS))}",
        ) from None
