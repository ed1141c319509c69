"""From a model folder to a layer plan, a ModelPack config and a manifest.

One raw layer per file (ModelPack ``…v1.raw``): the layer digest is then the file's sha256,
which is also model-signing's per-file digest and the config's ``diffId``, so the whole OMS
statement can later be derived from the manifest without touching a blob. Folders named in
``pack_dirs`` become one reproducible tar layer each (see ``tarzstd``): plain tar by default,
which every ModelPack client reads, or tar+zstd on request, which only omsign and ORAS-style
clients read.

Everything is deterministic: files are walked in model-signing's component-wise order, file
metadata is normalised (uid/gid 0, no mtime, modes 0644/0755) and no creation time is
written, so packing an unchanged folder again gives a byte-identical manifest.

Annotations written on each layer: ``org.cncf.model.filepath`` and
``org.opencontainers.image.title`` (= the relative path, so ORAS clients restore nested
paths), ``org.cncf.model.file.metadata+json``, ``org.cncf.model.file.mediatype.untested`` when
the role was guessed, and on tar layers ``org.omsign.tar.uncompressed-size`` (the exact
uncompressed tar size, which bounds extraction on pull).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import stat
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Literal

from ..errors import InputError, UsageError
from ..oci import mediatypes as mt
from ..oci.descriptor import Descriptor
from ..oci.manifest import compact_json
from ..signing.modelsig import GIT_IGNORE_PATHS
from ..store.base import BlobSource
from .conventions import (
    MediaTypes,
    classify,
    classify_certain,
    for_artifact_kind,
    get_media_types,
    weight_format,
)
from .digestcache import DigestCache
from .tarzstd import BuiltTar, members_for_folder, write_tar

# Left by tools, never part of a model: huggingface_hub's download metadata and macOS Finder's.
TOOL_PATHS = (".cache/huggingface", ".DS_Store", "*/.DS_Store")
HF_CACHE_PREFIXES = ("models--", "datasets--", "spaces--")
LayerFormat = Literal["raw", "tar", "tar+zstd"]


@dataclass
class PackOptions:
    """How a folder becomes layers (the ``pack``/``push`` flags)."""

    ignore: list[str] = field(default_factory=list)
    ignore_git: bool = True
    ignore_tool_files: bool = True  # TOOL_PATHS
    allow_symlinks: bool = False
    dereference: bool = False  # read through every symbolic link (files and folders)
    pack_dirs: list[str] = field(default_factory=list)
    # Plain tar by default: ModelPack peers (modctl) read ``…v1.tar`` but not ``…v1.tar+zstd``.
    compress: Literal["zstd"] | None = None
    media_types: str = "modelpack"
    artifact_kind: str = "auto"  # model, dataset, or auto: a dataset when only shards and docs
    name: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    use_cache: bool = True  # False for --no-cache
    work_dir: Path | None = None  # where tar layers are built (default: the system temp dir)


@dataclass
class PlanEntry:
    """One layer to push: a file (``raw``) or a folder built into a tar (``tar``/``tar+zstd``)."""

    relpath: str
    role: str
    media_type: str
    size: int  # bytes of the layer blob
    source: BlobSource
    format: LayerFormat = "raw"
    certain: bool = True
    executable: bool = False
    diff_id: str | None = None  # uncompressed digest; for raw layers the file digest once known
    uncompressed_size: int | None = None
    files: list[str] = field(default_factory=list)  # for folder layers: the files inside
    stat: os.stat_result | None = None  # identity when planned, for the digest cache

    @property
    def is_folder(self) -> bool:
        return self.format != "raw"


@dataclass
class ModelPlan:
    """The layers of a model, in order, plus what was ignored (for the OMS statement)."""

    root: Path
    name: str
    entries: list[PlanEntry]
    ignore_paths: list[str]
    media_types: MediaTypes
    options: PackOptions
    cache: DigestCache | None = None
    temp_dir: Path | None = None

    def __enter__(self) -> ModelPlan:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Remove the temporary tar layers (call after pushing)."""
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None

    def remember(self, entry: PlanEntry, digest: str) -> None:
        """Record a raw layer's digest (computed while pushing) in the plan and the cache.

        Cached only if the file still has the identity it had when planned, so a file changed
        during the push is never remembered under its old identity.
        """
        if entry.is_folder:
            return
        entry.source = BlobSource(size=entry.source.size, path=entry.source.path, digest=digest)
        entry.diff_id = digest
        if self.cache is None or entry.stat is None or entry.source.path is None:
            return
        try:
            now = os.stat(entry.source.path)
        except OSError:
            return
        before = entry.stat
        if (now.st_size, now.st_mtime_ns, now.st_ctime_ns, now.st_ino) == (
            before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino
        ):
            self.cache.put(entry.source.path, before, digest)


# -- walking -----------------------------------------------------------------------------------
def _normalise_pattern(pattern: str) -> str:
    clean = pattern.strip().replace(os.sep, "/").removeprefix("./").rstrip("/")
    if not clean or clean.startswith("/") or ".." in PurePosixPath(clean).parts:
        raise UsageError(f"invalid ignore path {pattern!r}",
                         hint="give a path relative to the model folder, or a glob such as '*.tmp'")
    return clean


def _ignored(rel: str, patterns: list[str]) -> bool:
    for pat in patterns:
        if rel == pat or rel.startswith(pat + "/") or fnmatch.fnmatchcase(rel, pat):
            return True
    return False


def _sort_key(rel: str) -> tuple[str, ...]:
    return PurePosixPath(rel).parts


@dataclass
class _File:
    rel: str
    path: Path
    st: os.stat_result


def _check_utf8(name: str, path: Path) -> None:
    """Names become JSON annotations and model-signing paths, which are UTF-8 by definition."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"file name {os.fsencode(path)!r} is not valid UTF-8",
            hint="rename it, or leave it out with --ignore",
        ) from None


def hf_cache_repo(model_dir: Path) -> Path | None:
    """The ``models--org--name`` folder when ``model_dir`` is a Hugging Face cache snapshot.

    The hub cache stores each file once under ``blobs/`` and lists a revision as
    ``snapshots/<rev>/`` of relative symlinks into it; links that resolve inside that repository
    folder are the layout itself, not a user's shortcut, so they are read through.
    """
    real = Path(os.path.realpath(model_dir))
    snapshots, repo = real.parent, real.parent.parent
    if snapshots.name == "snapshots" and repo.name.startswith(HF_CACHE_PREFIXES) and (repo / "blobs").is_dir():
        return repo
    return None


def _inside(folder: str, target: str) -> bool:
    return os.path.commonpath([folder, target]) == folder


def _walk(root: Path, patterns: list[str], allow_symlinks: bool, *, dereference: bool = False,
          link_root: Path | None = None) -> list[_File]:
    """Every regular file under ``root`` (symlinks read through where allowed), sorted.

    ``dereference`` follows every link, to files and folders (a folder reached twice, a loop,
    is refused); ``link_root`` admits links to files inside that folder (a Hugging Face cache
    repository); ``allow_symlinks`` admits links to files inside ``root``.
    """
    real_root = os.path.realpath(root)
    real_links = os.path.realpath(link_root) if link_root is not None else None
    found: list[_File] = []
    top = os.stat(root)
    seen_dirs = {(top.st_dev, top.st_ino)}
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                names = sorted(e.name for e in it)
        except OSError as exc:
            raise InputError(f"cannot list {folder}: {exc.strerror or exc}") from exc
        for name in names:
            rel = f"{prefix}{name}"
            if _ignored(rel, patterns):
                continue
            path = folder / name
            _check_utf8(name, path)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                st = _follow(path, real_root, real_links, allow_symlinks, dereference)
            if stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in seen_dirs:
                    raise InputError(f"{path} leads to a folder already packed (a symbolic link loop?)",
                                     hint="ignore it with --ignore")
                seen_dirs.add((st.st_dev, st.st_ino))
                stack.append((path, rel + "/"))
            elif stat.S_ISREG(st.st_mode):
                found.append(_File(rel, path, st))
            else:
                raise InputError(f"{path} is not a regular file (a fifo, socket or device)",
                                 hint="remove it or pass --ignore for it")
    found.sort(key=lambda f: _sort_key(f.rel))
    return found


def _follow(path: Path, real_root: str, real_links: str | None, allow_symlinks: bool,
            dereference: bool) -> os.stat_result:
    """The stat of what the link ``path`` points to, or InputError if it may not be followed."""
    target = os.path.realpath(path)
    in_cache = real_links is not None and _inside(real_links, target)
    if not (dereference or in_cache or allow_symlinks):
        raise InputError(f"{path} is a symbolic link",
                         hint="replace it with the file, ignore it, or use --allow-symlinks or --dereference")
    if not (dereference or in_cache) and not _inside(real_root, target):
        raise InputError(f"{path} points outside the model folder ({target})",
                         hint="use --dereference to read through every link")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InputError(f"{path} is a broken symbolic link") from exc
    if stat.S_ISDIR(st.st_mode) and not dereference:
        raise InputError(f"{path} is a symbolic link to a folder, which omsign does not follow",
                         hint="ignore it, replace it with the folder, or use --dereference")
    return st


def _check_readable(f: _File) -> None:
    try:
        with open(f.path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"cannot read {f.path}: {exc.strerror or exc}") from exc


def file_metadata(relpath: str, size: int, executable: bool, typeflag: int = 0) -> str:
    """The ``org.cncf.model.file.metadata+json`` value, normalised to be reproducible.

    ``name`` is the base name (as modctl writes it); uid/gid are 0 and mtime is omitted, so
    the annotation (and the manifest digest) depends only on the content and the path.
    """
    mode = 0o755 if (executable or typeflag == 5) else 0o644
    value = {"name": PurePosixPath(relpath).name, "mode": mode, "uid": 0, "gid": 0,
             "size": size, "typeflag": typeflag}
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def plan_model(model_dir: Path, options: PackOptions | None = None, *,
               cache: DigestCache | None = None) -> ModelPlan:
    """Walk ``model_dir`` (a folder, or a single file) into an ordered layer plan.

    Raw layers get their digest from the digest cache when the file is unchanged (else None:
    the store hashes while pushing, then ``ModelPlan.remember`` caches it). Folder layers are
    built here, into a temporary folder the plan removes on ``cleanup()``.
    """
    options = options or PackOptions()
    types = get_media_types(options.media_types)
    model_dir = Path(model_dir)
    if cache is None and options.use_cache:
        cache = DigestCache()
    try:
        st = os.stat(model_dir)
    except FileNotFoundError as exc:
        raise InputError(f"model folder {model_dir} does not exist") from exc
    except OSError as exc:
        raise InputError(f"cannot access {model_dir}: {exc.strerror or exc}") from exc

    patterns = [_normalise_pattern(p) for p in options.ignore]
    ignore_paths = list(patterns)
    if options.ignore_git:
        ignore_paths.extend(p for p in GIT_IGNORE_PATHS if p not in ignore_paths)
    walk_patterns = list(patterns)
    if stat.S_ISREG(st.st_mode):
        root = model_dir.parent
        _check_utf8(model_dir.name, model_dir)
        files = [_File(model_dir.name, model_dir, st)]
        name = model_dir.name
    elif stat.S_ISDIR(st.st_mode):
        root = model_dir
        # The git paths are ignored at the top level only (OMS spec).
        if options.ignore_git:
            walk_patterns += [p for p in GIT_IGNORE_PATHS if p not in walk_patterns]
        if options.ignore_tool_files:
            walk_patterns += [p for p in TOOL_PATHS if p not in walk_patterns]
        hf_repo = hf_cache_repo(model_dir)
        files = _walk(model_dir, walk_patterns, options.allow_symlinks, dereference=options.dereference,
                      link_root=hf_repo)
        name = os.path.basename(os.path.abspath(model_dir))
        if hf_repo is not None:  # snapshots/<commit hash>: the repository id says more
            name = hf_repo.name.split("--", 1)[1].replace("--", "/")
        # A folder's name is only a label: never let its encoding fail the push.
        name = os.fsencode(name).decode("utf-8", "replace")
    else:
        raise InputError(f"{model_dir} is neither a folder nor a regular file")
    if not files:
        raise InputError(f"{model_dir} has no files to pack",
                         hint="check the path and the --ignore patterns")
    for f in files:
        _check_readable(f)

    folders = [_normalise_pattern(d) for d in options.pack_dirs]
    for folder in folders:
        if not (root / folder).is_dir() or stat.S_ISREG(st.st_mode):
            raise InputError(f"--pack-dir {folder} is not a folder inside {model_dir}")
    for a in folders:
        for b in folders:
            if a != b and PurePosixPath(b).is_relative_to(PurePosixPath(a)):
                raise UsageError(f"--pack-dir {b} is inside --pack-dir {a}")

    plan = ModelPlan(root=root, name=options.name or name, entries=[], ignore_paths=ignore_paths,
                     media_types=types, options=options, cache=cache)
    try:
        by_folder: dict[str, list[_File]] = {f: [] for f in folders}
        for f in files:
            owner = next((d for d in folders if PurePosixPath(f.rel).is_relative_to(PurePosixPath(d))), None)
            if owner is not None:
                by_folder[owner].append(f)
                continue
            role, certain = classify_certain(f.rel)
            digest = cache.get(f.path, f.st) if cache is not None else None
            plan.entries.append(PlanEntry(
                relpath=f.rel, role=role, media_type=types.layer_type(role, mt.FORMAT_RAW),
                size=f.st.st_size,
                source=BlobSource(size=f.st.st_size, path=f.path, digest=digest),
                certain=certain, executable=bool(f.st.st_mode & stat.S_IXUSR),
                diff_id=digest, uncompressed_size=f.st.st_size, stat=f.st,
            ))
        for folder in folders:
            plan.entries.append(_folder_entry(plan, folder, by_folder[folder], types, options))
        plan.entries.sort(key=lambda e: _sort_key(e.relpath))
        plan.media_types = for_artifact_kind(types, options.artifact_kind, [f.rel for f in files])
    except BaseException:
        plan.cleanup()
        raise
    return plan


def _folder_entry(plan: ModelPlan, folder: str, files: list[_File], types: MediaTypes,
                  options: PackOptions) -> PlanEntry:
    if not files:
        raise InputError(f"--pack-dir {folder} has no files to pack")
    if plan.temp_dir is None:
        plan.temp_dir = Path(tempfile.mkdtemp(prefix="omsign-pack-", dir=options.work_dir))
    counts = Counter(classify(f.rel) for f in files)
    top = max(counts.values())
    role = next(r for r in mt.ROLES if counts.get(r) == top)
    fmt: LayerFormat = "tar+zstd" if options.compress == "zstd" else "tar"
    members = members_for_folder(plan.root, folder, [(f.rel, f.path, f.st.st_size) for f in files])
    out = plan.temp_dir / f"layer-{len(plan.entries)}-{folder.replace('/', '_')}.tar"
    built: BuiltTar = write_tar(members, out, compression="zstd" if fmt == "tar+zstd" else None)
    return PlanEntry(
        relpath=folder, role=role, media_type=types.layer_type(role, fmt), size=built.size,
        source=BlobSource(size=built.size, path=built.path, digest=built.digest),
        format=fmt, certain=len(counts) == 1, diff_id=built.diff_id,
        uncompressed_size=built.uncompressed_size, files=[f.rel for f in files],
    )


# -- descriptors, config, manifest -------------------------------------------------------------
def layer_descriptor(entry: PlanEntry, digest: str, size: int, types: MediaTypes) -> Descriptor:
    """The manifest descriptor of a pushed layer, with its path and metadata annotations."""
    ann: dict[str, str] = {}
    if types.modelpack_annotations:
        ann[mt.ANNOTATION_FILEPATH] = entry.relpath
        ann[mt.ANNOTATION_FILE_METADATA] = file_metadata(
            entry.relpath, entry.uncompressed_size if entry.is_folder and entry.uncompressed_size is not None
            else entry.size, entry.executable, 5 if entry.is_folder else 0)
        if not entry.certain:
            ann[mt.ANNOTATION_MEDIATYPE_UNTESTED] = "true"
    ann[mt.ANNOTATION_TITLE] = entry.relpath
    if entry.is_folder:
        ann[mt.ANNOTATION_UNCOMPRESSED_SIZE] = str(entry.uncompressed_size)
        if not types.modelpack_annotations:
            ann[mt.ORAS_ANNOTATION_UNPACK] = "true"
            if entry.diff_id:
                ann[mt.ORAS_ANNOTATION_CONTENT_DIGEST] = entry.diff_id
    return Descriptor(entry.media_type, digest, size, dict(sorted(ann.items())))


def guess_format(plan: ModelPlan) -> str | None:
    """The weight format carrying the most bytes (safetensors, gguf, onnx, pt...)."""
    sizes: Counter[str] = Counter()
    for e in plan.entries:
        if e.role == mt.ROLE_WEIGHT and not e.is_folder:
            fmt = weight_format(e.relpath)
            if fmt:
                sizes[fmt] += e.size
    if not sizes:
        return None
    return sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def build_config(plan: ModelPlan, layers: list[Descriptor], name: str | None = None) -> bytes:
    """The ModelPack config JSON: descriptor.name, config.format, modelfs.diffIds.

    No ``createdAt``: a creation time would change the config (and manifest) digest of every
    re-push of the same folder. ``diffIds`` are the uncompressed digests in layer order (for a
    raw layer, the layer digest itself).
    """
    if len(layers) != len(plan.entries):
        raise UsageError("build_config needs one descriptor per plan entry")
    diff_ids: list[str] = []
    for entry, desc in zip(plan.entries, layers, strict=True):
        diff_ids.append(entry.diff_id if entry.is_folder and entry.diff_id else desc.digest)
    config: dict[str, Any] = {}
    fmt = guess_format(plan)
    if fmt:
        config["format"] = fmt
    value = {
        "descriptor": {"name": name or plan.name},
        "config": config,
        "modelfs": {"type": "layers", "diffIds": diff_ids},
    }
    return compact_json(value)


def build_config_blob(plan: ModelPlan, layers: list[Descriptor]) -> tuple[bytes, str]:
    """(config bytes, config media type) for the plan's convention (ModelPack or empty ``{}``)."""
    if plan.media_types.config_media_type == mt.MODEL_CONFIG:
        return build_config(plan, layers, plan.name), mt.MODEL_CONFIG
    return b"{}", plan.media_types.config_media_type


