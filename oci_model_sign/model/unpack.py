"""From a model manifest to files on disk, without trusting a single name in it.

``parse_model_manifest`` turns ModelPack (``vnd.cncf`` and legacy ``vnd.cnai``), plain ORAS
and KitOps manifests into one list of (path, layer) entries. Every path goes through
``safe_relpath`` and ``check_unique`` before anything touches the disk, so a manifest cannot
write outside the destination, overwrite one file with another through a look-alike name, or
turn a file into a folder. ``Staging`` collects verified files next to the destination and
moves them in only when everything has been checked: an interrupted or failed pull never
leaves a partial file in the destination.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Literal

from ..errors import InputError, IntegrityError, LimitError, NotFoundError
from ..limits import Limits, load_json
from ..store.base import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, Descriptor
from . import mediatypes as mt

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


IMAGE_CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")
IMAGE_LAYER_PREFIXES = ("application/vnd.oci.image.layer.", "application/vnd.docker.image.rootfs.")


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
    if model.config.media_type in IMAGE_CONFIG_TYPES or (
        layer_types and all(t.startswith(IMAGE_LAYER_PREFIXES) for t in layer_types)
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


# -- staging ---------------------------------------------------------------------------------
DEBRIS_PREFIXES = (".omsign-staging-", ".omsign-layer-", ".omsign-old-")
_SWAP_PREFIX = ".omsign-swap-"  # journal of a replace in progress: names the folder swapped


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "host"


def debris_name(kind: str) -> str:
    """``.omsign-<kind>-<host>-<pid>-`` : who made a temporary file, so a later run can tell
    whether its maker is dead (a ``kill -9``) and remove it. The host keeps a process on one
    machine from judging another machine's work on a shared filesystem."""
    return f".omsign-{kind}-{_host_tag()}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _dead_maker(rest: str, host: str) -> bool:
    """True if ``<host>-<pid>-…`` names a process of this host that no longer runs."""
    if not rest.startswith(host + "-"):
        return False
    pid_text = rest[len(host) + 1:].split("-", 1)[0]
    return pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _finish_swaps(parent: Path, names: list[str], host: str) -> list[str]:
    """Complete the replaces that dead runs left half-done (fallback swap only, see ``_swap``).

    A journal whose previous tree is still aside means the run died between its two renames
    or before removing the old tree: if the destination is missing, the old tree goes back
    (nothing verified was placed); otherwise the new tree is in and the old one is removed.
    """
    done: list[str] = []
    for name in names:
        if not name.startswith(_SWAP_PREFIX) or not _dead_maker(name[len(_SWAP_PREFIX):], host):
            continue
        journal = parent / name
        aside = parent / (".omsign-old-" + name[len(_SWAP_PREFIX):])
        try:
            dest_name = os.fsdecode(journal.read_bytes())
            if not dest_name or "/" in dest_name or dest_name in (".", ".."):
                continue  # not a journal omsign wrote: leave everything as it is
            target = parent / dest_name
            if os.path.lexists(aside):
                if not os.path.lexists(target):
                    os.rename(aside, target)
                else:
                    shutil.rmtree(aside)
            journal.unlink()
            done.append(name)
        except OSError:
            continue
    return done


def sweep_debris(parent: Path) -> list[str]:
    """Remove staging folders and layer files left in ``parent`` by omsign runs of this host
    that died (SIGKILL, power loss of the process), after finishing any replace they left
    half-done. Anything whose maker may still run, or that another host made, is left alone.
    Returns the names removed."""
    host = _host_tag()
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return []
    removed = _finish_swaps(parent, names, host)
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return removed
    for name in names:
        prefix = next((p for p in DEBRIS_PREFIXES if name.startswith(p)), None)
        if prefix is None or not _dead_maker(name[len(prefix):], host):
            continue
        if (parent / (_SWAP_PREFIX + name[len(prefix):])).exists():
            continue  # a journal still needs this folder (its maker's host judged it alive)
        try:
            _remove(parent / name)
            removed.append(name)
        except OSError:
            continue
    return removed


def check_destination(dest: Path, *, replace: bool = False) -> Path:
    """The folder a pull will create or replace, checked before anything is downloaded.

    DEST may be absent or an empty folder; a folder with anything in it is refused unless
    ``replace`` (``--force``), and a file is always refused. A DEST that is a symbolic link to
    a folder stands for that folder (the link is the user's own, and is kept). A DEST filled in
    place (see ``fills_in_place``) may hold the debris of a killed pull: it is swept first.
    """
    path = Path(os.path.abspath(dest))
    if os.path.islink(path):
        target = Path(os.path.realpath(path))
        if not target.is_dir():
            raise InputError(f"{dest} is a symbolic link to {target}, which is not a folder",
                             hint="remove the link or point it at a folder")
        path = target
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise InputError(f"cannot access {dest}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{dest} exists and is not a folder", hint="pull into a folder")
    in_place = fills_in_place(path)
    if in_place:
        sweep_debris(path)
    try:
        entries = os.listdir(path)
    except OSError as exc:
        raise InputError(f"cannot list {dest}: {exc.strerror or exc}") from exc
    if entries and not replace:
        raise InputError(f"{dest} is not empty",
                         hint="pull into an empty folder, or use --force to replace its contents")
    if entries and in_place:
        what = "a mount point" if os.path.ismount(path) else "the current folder"
        raise InputError(f"{dest} is {what}, which --force cannot swap for the model in one step",
                         hint="empty it first, or pull into another folder")
    return path


def fills_in_place(path: Path) -> bool:
    """True for a DEST that must keep its identity: a mount point (a volume: nothing beside it
    is on its filesystem, and it cannot be renamed) or the current folder (renaming a folder
    over it would leave the shell that ran the pull in a deleted folder). Such a DEST, when
    empty, is filled entry by entry from a staging folder inside it."""
    try:
        return os.path.ismount(path) or os.path.samefile(path, os.getcwd())
    except OSError:
        return False


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # filesystem or kernel cannot
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Staging:
    """Files land in a temporary folder next to ``dest`` and move in only after verification.

    The staging folder sits in ``dest``'s parent (same filesystem, so moves are renames).
    ``commit()`` renames the whole folder into place when ``dest`` is absent or empty; with
    ``replace`` a non-empty ``dest`` is swapped for it in one step, and the previous tree is
    removed only afterwards. Nothing is ever written inside an existing ``dest``, so a link
    planted there cannot redirect a write. One exception: an empty ``dest`` that is a mount
    point or the current folder holds the staging folder and is filled entry by entry from it
    (``fills_in_place``). On an exception the staging folder is removed and ``dest`` is untouched.
    """

    def __init__(self, dest: Path, *, replace: bool = False) -> None:
        self.given = Path(dest)
        self.dest = Path(os.path.abspath(dest))
        self.replace = replace
        self.in_place = False
        self.root: Path | None = None

    def __enter__(self) -> Staging:
        self.dest = check_destination(self.given, replace=self.replace)
        self.in_place = os.path.isdir(self.dest) and fills_in_place(self.dest)
        parent = self.dest if self.in_place else self.dest.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            sweep_debris(parent)
            self.root = parent / f"{debris_name('staging')}{secrets.token_hex(6)}"
            os.mkdir(self.root, 0o755)
        except OSError as exc:
            raise InputError(f"cannot create a staging folder next to {self.dest}: {exc.strerror or exc}") from exc
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        if self.root is not None and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)

    def temp_path_for(self, entry: ModelEntry | str | PurePosixPath) -> Path:
        """Where to write a raw file entry while it is being fetched and verified."""
        assert self.root is not None, "use Staging as a context manager"
        rel = entry.path if isinstance(entry, ModelEntry) else safe_relpath(str(entry))
        target = self.root.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    @property
    def path(self) -> Path:
        """The staging folder (tar layers are extracted straight into it)."""
        assert self.root is not None, "use Staging as a context manager"
        return self.root

    def _staged_files(self) -> list[str]:
        assert self.root is not None
        out: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, self.root)
            for name in sorted(filenames):
                out.append(name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/"))
        return out

    def commit(self) -> list[str]:
        """Put everything staged in place as ``dest``; returns the relative paths placed."""
        assert self.root is not None, "use Staging as a context manager"
        files = self._staged_files()
        for rel in files:
            with open(self.root / rel, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(self.root)
        try:
            self._place(self.root)
        except OSError as exc:
            raise InputError(f"cannot put the model in place as {self.given}: {exc.strerror or exc}") from exc
        _fsync_dir(self.dest.parent)
        return files

    def _place(self, root: Path) -> None:
        try:
            st = os.lstat(self.dest)
        except FileNotFoundError:
            os.rename(root, self.dest)
            self.root = None
            return
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(f"{self.given} is no longer a folder")
        if self.in_place:
            self._move_entries_into(root)
            return
        os.chmod(root, stat.S_IMODE(st.st_mode))  # the folder keeps its permissions
        try:
            os.rename(root, self.dest)  # onto an empty folder: one step
            self.root = None
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        if not self.replace:
            raise InputError(f"{self.given} is not empty (files appeared in it during the pull)",
                             hint="pull into an empty folder, or use --force to replace its contents")
        self._swap(root)

    def _move_entries_into(self, root: Path) -> None:
        """Fill an empty DEST that must keep its identity entry by entry (``fills_in_place``)."""
        if [n for n in os.listdir(self.dest) if n != root.name]:
            raise InputError(f"{self.given} is not empty (files appeared in it during the pull)",
                             hint="pull into an empty folder")
        for name in sorted(os.listdir(root)):
            if os.path.lexists(self.dest / name):
                raise InputError(f"{self.dest / name} appeared during the pull")
            os.rename(root / name, self.dest / name)
        os.rmdir(root)
        self.root = None

    def _swap(self, root: Path) -> None:
        """Replace the non-empty ``dest`` with ``root``; the old tree is removed last."""
        if _exchange(root, self.dest):
            shutil.rmtree(root, ignore_errors=True)  # now the previous tree
            self.root = None
            return
        # No atomic exchange here: rename the old tree aside, then the new one in, with a
        # journal so that a run killed between the two renames is finished by the next one.
        token = root.name[len(".omsign-staging-"):]
        parent = self.dest.parent
        aside = parent / f".omsign-old-{token}"
        journal = parent / f"{_SWAP_PREFIX}{token}"
        with open(journal, "wb") as f:
            f.write(os.fsencode(self.dest.name))
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(parent)
        try:
            os.rename(self.dest, aside)
            try:
                os.rename(root, self.dest)
            except OSError:
                os.rename(aside, self.dest)
                raise
            self.root = None
            journal.unlink()
        except BaseException:
            with contextlib.suppress(OSError):
                if os.path.lexists(aside) and not os.path.lexists(self.dest):
                    os.rename(aside, self.dest)  # interrupted between the renames: undo
                if not os.path.lexists(aside):
                    journal.unlink()
            raise
        shutil.rmtree(aside, ignore_errors=True)
