"""From a model manifest to files on disk, without trusting a single name in it.

``parse_model_manifest`` turns ModelPack (``vnd.cncf`` and legacy ``vnd.cnai``), plain ORAS
and KitOps manifests into one list of (path, layer) entries. Every path goes through
``safe_relpath`` and ``check_unique`` before anything touches the disk, so a manifest cannot
write outside the destination, overwrite one file with another through a look-alike name, or
turn a file into a folder. ``parse_pulled_model`` refuses what is not a model at all. Where
the verified files go, and how they replace what was there, is ``staging``'s job.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from ..errors import InputError, IntegrityError, LimitError, NotFoundError
from ..limits import Limits, load_json
from ..oci import mediatypes as mt
from ..oci.descriptor import Descriptor
from ..oci.mediatypes import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

LayerKind = Literal["raw", "tar", "tar+zstd", "tar+gzip"]
ManifestFormat = Literal["modelpack", "oras", "kitops", "dmr"]

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


# -- path safety -------------------------------------------------------------------------------
def safe_relpath(p: object, *, what: str = "path") -> PurePosixPath:
    """A path from untrusted input as a clean relative POSIX path, or IntegrityError.

    Refuses: empty, absolute, drive letters (``C:``), backslashes, NUL and control characters,
    empty, ``.`` and ``..`` components, and components or paths too long for common
    filesystems. No normalisation is attempted: anything not already canonical is refused.
    """
    if not isinstance(p, str) or not p:
        raise IntegrityError(f"{what} is empty or not a string: {p!r}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in p):
        raise IntegrityError(f"{what} {p!r} contains control characters")
    if "\\" in p:
        raise IntegrityError(f"{what} {p!r} contains a backslash")
    if p.startswith("/"):
        raise IntegrityError(f"{what} {p!r} is absolute")
    if _DRIVE_RE.match(p):
        raise IntegrityError(f"{what} {p!r} starts with a drive letter")
    try:
        encoded = p.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise IntegrityError(f"{what} {p!r} is not valid UTF-8") from exc
    if len(encoded) > MAX_PATH_BYTES:
        raise IntegrityError(f"{what} is longer than {MAX_PATH_BYTES} bytes")
    for part in p.split("/"):
        if part in ("", ".", ".."):
            raise IntegrityError(f"{what} {p!r} has an empty, '.' or '..' component")
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise IntegrityError(f"{what} {p!r} has a component longer than {MAX_COMPONENT_BYTES} bytes")
    return PurePosixPath(p)


def _lookalike_key(path: str) -> str:
    return unicodedata.normalize("NFKC", path).casefold()


def check_unique(paths: Iterable[str | PurePosixPath], *, what: str = "model",
                 allow_dirs: bool = False) -> None:
    """Refuse duplicate paths, NFKC/case-fold look-alikes, and a path under another file.

    Look-alikes matter because a case-insensitive or normalising filesystem (macOS, Windows)
    would write both entries to one file: the second silently replaces the verified first.
    With ``allow_dirs`` (tar members), a path may repeat as a parent of others (directories).
    """
    exact: set[str] = set()
    keys: dict[str, str] = {}
    ordered = [str(p) for p in paths]
    for p in ordered:
        if p in exact:
            if allow_dirs:
                continue
            raise IntegrityError(f"{what} names {p} twice")
        key = _lookalike_key(p)
        if key in keys and keys[key] != p:
            raise IntegrityError(
                f"{what} has look-alike paths {keys[key]!r} and {p!r}",
                hint="they would be the same file on a case-insensitive or normalising filesystem",
            )
        exact.add(p)
        keys[key] = p
    if allow_dirs:
        return
    for p in ordered:
        for parent in PurePosixPath(p).parents:
            pk = _lookalike_key(str(parent))
            if str(parent) != "." and pk in keys:
                raise IntegrityError(f"{what} has {p} under {keys[pk]}, which is a file")


def matches_include(relpath: str, patterns: Sequence[str]) -> bool:
    """``--include``: True if no patterns, or ``relpath`` matches one (fnmatch, or a folder prefix)."""
    if not patterns:
        return True
    for pat in patterns:
        clean = pat.strip().removeprefix("./").rstrip("/")
        if not clean:
            continue
        if relpath == clean or relpath.startswith(clean + "/") or fnmatch.fnmatchcase(relpath, clean):
            return True
    return False


# -- manifests ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelEntry:
    """One layer to materialise: a file (``raw``) at ``path``, or a tar extracted at the root.

    For tar layers ``path`` is the folder the producer named (informational: the member
    names inside the tar are the real paths, each checked again on extraction).
    """

    path: PurePosixPath
    descriptor: Descriptor
    kind: LayerKind
    uncompressed_size: int | None
    role: str | None = None
    diff_id: str | None = None

    @property
    def is_tar(self) -> bool:
        return self.kind != "raw"


@dataclass(frozen=True)
class ModelManifest:
    """A parsed model manifest: what it is, its config, and every file layer in order."""

    format: ManifestFormat
    artifact_type: str | None
    config: Descriptor
    files: list[ModelEntry]
    annotations: dict[str, str] = field(default_factory=dict)
    skipped: list[Descriptor] = field(default_factory=list)  # layers with no usable path


def _kind_from_suffix(fmt: str | None) -> LayerKind:
    if fmt in (None, "", "none"):
        return "tar"
    if fmt == "gzip":
        return "tar+gzip"
    if fmt == "zstd":
        return "tar+zstd"
    raise IntegrityError(f"unsupported layer compression {fmt!r}")


def _recorded_size(desc: Descriptor) -> int | None:
    raw = (desc.annotations or {}).get(mt.ANNOTATION_UNCOMPRESSED_SIZE)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise IntegrityError(f"layer {desc.digest} has an invalid {mt.ANNOTATION_UNCOMPRESSED_SIZE} {raw!r}")
    return int(raw)


def _path_annotation(desc: Descriptor) -> str | None:
    ann = desc.annotations or {}
    for key in (*mt.FILEPATH_ANNOTATIONS, mt.ANNOTATION_TITLE):
        if key in ann:
            return ann[key]
    return None


def _diff_ids(config: bytes | None, limits: Limits) -> list[str] | None:
    if config is None:
        return None
    value = load_json(config, max_bytes=limits.config_bytes, depth=limits.json_depth, what="model config")
    if not isinstance(value, dict):
        return None
    modelfs = value.get("modelfs")
    if not isinstance(modelfs, dict):
        return None
    ids = modelfs.get("diffIds")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    return list(ids)


def _kitfile_paths(config: bytes | None, limits: Limits) -> tuple[dict[str, str], dict[str, list[str]]]:
    """From a Kitfile: layer digest -> path (newer kit records layerInfo), and type -> paths."""
    by_digest: dict[str, str] = {}
    by_type: dict[str, list[str]] = {}
    if config is None:
        return by_digest, by_type
    value = load_json(config, max_bytes=limits.config_bytes, depth=limits.json_depth, what="Kitfile config")
    if not isinstance(value, dict):
        raise IntegrityError("Kitfile config is not a JSON object")

    def note(kind: str, item: Any) -> None:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            return
        by_type.setdefault(kind, []).append(item["path"])
        info = item.get("layerInfo")
        if isinstance(info, dict) and isinstance(info.get("digest"), str):
            by_digest[info["digest"]] = item["path"]

    model = value.get("model")
    if isinstance(model, dict):
        note("model", model)
        for part in model.get("parts") or []:
            note("modelpart", part)
    for section, kind in (("code", "code"), ("datasets", "dataset"), ("docs", "docs"),
                          ("prompts", "prompts")):
        items = value.get(section)
        if isinstance(items, list):
            for item in items:
                note(kind, item)
    return by_digest, by_type


def parse_model_manifest(data: bytes, limits: Limits, *, config: bytes | None = None) -> ModelManifest:
    """Parse an untrusted model manifest into file entries (paths checked, unique).

    ``config`` (the config blob, optional) supplies ModelPack ``diffIds`` for tar layers and
    KitOps paths. Raises LimitError for too many layers, IntegrityError for anything malformed
    or unsafe, InputError for a manifest that is not a model (an image index, for example).
    """
    value = load_json(data, max_bytes=limits.manifest_bytes, depth=limits.json_depth, what="manifest")
    if not isinstance(value, dict):
        raise IntegrityError("manifest is not a JSON object")
    media_type = value.get("mediaType", OCI_MANIFEST)
    if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise InputError(f"{media_type} is not a single-artifact manifest",
                         hint="point at one model manifest, not an index")
    layers_raw = value.get("layers")
    if not isinstance(layers_raw, list):
        raise IntegrityError("manifest has no layers list")
    if len(layers_raw) > limits.layers:
        raise LimitError(f"manifest has {len(layers_raw)} layers, over the limit of {limits.layers}",
                         hint="raise OMSIGN_MAX_LAYERS if this model really has that many files")
    config_desc = Descriptor.from_json(value.get("config"), "manifest config")
    layers = [Descriptor.from_json(item, f"layer {i}") for i, item in enumerate(layers_raw)]
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise IntegrityError("manifest artifactType is not a string")
    annotations = value.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise IntegrityError("manifest annotations are not string pairs")

    if config_desc.media_type == mt.KITOPS_CONFIG or any(mt.KITOPS_LAYER_RE.match(d.media_type) for d in layers):
        fmt: ManifestFormat = "kitops"
        files, skipped = _kitops_entries(layers, config, limits)
    else:
        if artifact_type in mt.MODEL_ARTIFACT_TYPES or config_desc.media_type in mt.MODEL_CONFIG_TYPES:
            fmt = "modelpack"
        elif config_desc.media_type in mt.DMR_CONFIG_TYPES:
            fmt = "dmr"
        elif any(mt.is_model_layer_type(d.media_type) for d in layers):
            fmt = "modelpack"
        else:
            fmt = "oras"
        diff_ids = _diff_ids(config, limits) if fmt == "modelpack" else None
        files, skipped = _annotated_entries(layers, diff_ids)
    check_unique([e.path for e in files if not e.is_tar], what="manifest")
    return ModelManifest(fmt, artifact_type, config_desc, files, dict(annotations), skipped)




def parse_pulled_model(data: bytes, limits: Limits, *, what: str) -> ModelManifest:
    """``parse_model_manifest`` for a pull: an artifact with no model file is refused.

    Pulling a container image, an index or an artifact none of whose layers names a file would
    otherwise "succeed" with nothing placed. NotFoundError (no model there), whose message
    says what the artifact is instead; ``what`` names it (the reference).
    """
    value = load_json(data, max_bytes=limits.manifest_bytes, depth=limits.json_depth, what="manifest")
    if isinstance(value, dict):
        media_type = value.get("mediaType")
        manifests = value.get("manifests")
        if media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST) or (media_type is None and isinstance(manifests, list)):
            count = len(manifests) if isinstance(manifests, list) else 0
            raise NotFoundError(
                f"{what} is an image index ({media_type or OCI_INDEX}, {count} manifests), not a model",
                hint="pull one model manifest of it by digest",
            )
    model = parse_model_manifest(data, limits)
    if model.files:
        return model
    raise NotFoundError(f"{what} is {_describe_non_model(value, model)}, not a model",
                        hint="omsign pulls ModelPack, ORAS and KitOps artifacts that name their files")


def _describe_non_model(value: Any, model: ModelManifest) -> str:
    """What an artifact without model files is, in a few words, from its media types."""
    manifest_type = value.get("mediaType", OCI_MANIFEST) if isinstance(value, dict) else OCI_MANIFEST
    layer_types = sorted({d.media_type for d in model.skipped})
    listed = ", ".join(layer_types[:3]) + (", …" if len(layer_types) > 3 else "")
    if model.config.media_type in mt.IMAGE_CONFIG_TYPES or (
        layer_types and all(t.startswith(mt.IMAGE_LAYER_PREFIXES) for t in layer_types)
    ):
        return f"a container image ({manifest_type} with {listed or 'no'} layers)"
    kind = model.artifact_type or model.config.media_type
    if not model.skipped:
        return f"an artifact of type {kind} with no layers"
    return f"an artifact of type {kind} whose {len(model.skipped)} layers ({listed}) name no model file"


def _annotated_entries(layers: list[Descriptor], diff_ids: list[str] | None) -> tuple[list[ModelEntry], list[Descriptor]]:
    files: list[ModelEntry] = []
    skipped: list[Descriptor] = []
    for i, desc in enumerate(layers):
        path = _path_annotation(desc)
        if path is None:
            skipped.append(desc)
            continue
        rel = safe_relpath(path, what=f"layer {desc.digest} path")
        parsed = mt.parse_model_layer_type(desc.media_type)
        role: str | None = None
        ann = desc.annotations or {}
        if parsed is not None:
            role, fmt = parsed
            kind: LayerKind = "raw" if fmt == mt.FORMAT_RAW else fmt  # type: ignore[assignment]
        elif desc.media_type in (mt.OCI_LAYER_TAR_GZIP, mt.OCI_LAYER_TAR_ZSTD) or ann.get(mt.ORAS_ANNOTATION_UNPACK) == "true":
            # ORAS folders: a tar of the folder, named by its title; plain files are raw bytes.
            kind = "tar+zstd" if desc.media_type.endswith("+zstd") else "tar+gzip" if desc.media_type.endswith("+gzip") else "tar"
        elif desc.media_type in mt.DMR_TAR_TYPES:
            kind = "tar"
        else:
            kind = "raw"
        diff_id: str | None = None
        if kind == "raw":
            size: int | None = desc.size
            diff_id = desc.digest
        else:
            size = _recorded_size(desc)
            if diff_ids is not None and i < len(diff_ids):
                diff_id = diff_ids[i]
            elif mt.ORAS_ANNOTATION_CONTENT_DIGEST in ann:
                diff_id = ann[mt.ORAS_ANNOTATION_CONTENT_DIGEST]
        files.append(ModelEntry(rel, desc, kind, size, role, diff_id))
    return files, skipped


def _kitops_entries(layers: list[Descriptor], config: bytes | None, limits: Limits) -> tuple[list[ModelEntry], list[Descriptor]]:
    by_digest, by_type = _kitfile_paths(config, limits)
    used: dict[str, int] = {}
    files: list[ModelEntry] = []
    skipped: list[Descriptor] = []
    for desc in layers:
        m = mt.KITOPS_LAYER_RE.match(desc.media_type)
        if m is None:
            # KitOps writing ModelPack layers (kit pack --use-model-pack) or ORAS-style files.
            entries, rest = _annotated_entries([desc], None)
            files.extend(entries)
            skipped.extend(rest)
            continue
        kind = _kind_from_suffix(m.group(2))
        layer_type = m.group(1)
        path = by_digest.get(desc.digest)
        if path is None:
            candidates = by_type.get(layer_type, [])
            n = used.get(layer_type, 0)
            used[layer_type] = n + 1
            path = candidates[n] if n < len(candidates) else f"{layer_type}-{n}"
        path = path.strip().removeprefix("./").rstrip("/") or layer_type
        rel = safe_relpath(path, what=f"Kitfile path for layer {desc.digest}")
        files.append(ModelEntry(rel, desc, kind, _recorded_size(desc), layer_type, None))
    return files, skipped


def layer_digests(model: ModelManifest) -> dict[str, str]:
    """path -> digest of every single-file layer (raw layer digest = file sha256)."""
    return {str(e.path): e.descriptor.digest for e in model.files if not e.is_tar}


def raw_files(model: ModelManifest) -> list[tuple[str, str]] | None:
    """(path, digest) of every file, or None when tar layers hide some files' digests."""
    if any(e.is_tar for e in model.files):
        return None
    return [(str(e.path), e.descriptor.digest) for e in model.files]


def filter_entries(entries: Sequence[ModelEntry], patterns: Sequence[str]) -> list[ModelEntry]:
    """The entries ``--include`` selects; tar layers are kept whole (members are filtered on extraction)."""
    if not patterns:
        return list(entries)
    return [e for e in entries if e.is_tar or matches_include(str(e.path), patterns)]
