"""From a model folder to a layer plan, a ModelPack config and a manifest.

One raw layer per file (ModelPack ``…v1.raw``): the layer digest is then the file's sha256,
which is also model-signing's per-file digest and the config's ``diffId``, so the whole OMS
statement can later be derived from the manifest without touching a blob. Folders named in
``pack_dirs`` become one reproducible tar(+zstd) layer each (see ``tarzstd``).

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
from ..oci.descriptor import Descriptor, ManifestData
from ..oci.manifest import build_manifest, compact_json
from ..oci.mediatypes import OCI_MANIFEST
from ..store.base import BlobSource, Progress, Store
from .conventions import (
    MODELPACK,
    MediaTypes,
    classify,
    classify_certain,
    get_media_types,
    weight_format,
)
from .digestcache import DigestCache
from .tarzstd import BuiltTar, members_for_folder, write_tar

GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
LayerFormat = Literal["raw", "tar", "tar+zstd"]


@dataclass
class PackOptions:
    """How a folder becomes layers (the ``pack``/``push`` flags)."""

    ignore: list[str] = field(default_factory=list)
    ignore_git: bool = True
    allow_symlinks: bool = False
    pack_dirs: list[str] = field(default_factory=list)
    compress: Literal["zstd"] | None = "zstd"
    media_types: str = "modelpack"
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
    mtime_ns: int
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

    @property
    def files(self) -> list[str]:
        """Every model file path, folder layers expanded, in order."""
        out: list[str] = []
        for e in self.entries:
            out.extend(e.files if e.is_folder else [e.relpath])
        return out

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


def _walk(root: Path, patterns: list[str], allow_symlinks: bool) -> list[_File]:
    """Every regular file under ``root`` (symlinks resolved if allowed), sorted."""
    real_root = os.path.realpath(root)
    found: list[_File] = []
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
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                if not allow_symlinks:
                    raise InputError(f"{path} is a symbolic link",
                                     hint="replace it with the file, ignore it, or use --allow-symlinks")
                target = os.path.realpath(path)
                if os.path.commonpath([real_root, target]) != real_root:
                    raise InputError(f"{path} points outside the model folder ({target})")
                try:
                    st = os.stat(path)
                except OSError as exc:
                    raise InputError(f"{path} is a broken symbolic link") from exc
                if stat.S_ISDIR(st.st_mode):
                    raise InputError(f"{path} is a symbolic link to a folder, which omsign does not follow",
                                     hint="ignore it, or replace it with the folder")
            if stat.S_ISDIR(st.st_mode):
                stack.append((path, rel + "/"))
            elif stat.S_ISREG(st.st_mode):
                found.append(_File(rel, path, st))
            else:
                raise InputError(f"{path} is not a regular file (a fifo, socket or device)",
                                 hint="remove it or pass --ignore for it")
    found.sort(key=lambda f: _sort_key(f.rel))
    return found


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
        ignore_paths.extend(p for p in GIT_PATHS if p not in ignore_paths)
    walk_patterns = list(patterns)
    if stat.S_ISREG(st.st_mode):
        root = model_dir.parent
        files = [_File(model_dir.name, model_dir, st)]
        name = model_dir.name
    elif stat.S_ISDIR(st.st_mode):
        root = model_dir
        # The git paths are ignored at the top level only (OMS spec).
        if options.ignore_git:
            walk_patterns += [p for p in GIT_PATHS if p not in walk_patterns]
        files = _walk(model_dir, walk_patterns, options.allow_symlinks)
        name = os.path.basename(os.path.abspath(model_dir))
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
                size=f.st.st_size, mtime_ns=f.st.st_mtime_ns,
                source=BlobSource(size=f.st.st_size, path=f.path, digest=digest),
                certain=certain, executable=bool(f.st.st_mode & stat.S_IXUSR),
                diff_id=digest, uncompressed_size=f.st.st_size, stat=f.st,
            ))
        for folder in folders:
            plan.entries.append(_folder_entry(plan, folder, by_folder[folder], types, options))
        plan.entries.sort(key=lambda e: _sort_key(e.relpath))
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
        mtime_ns=0, source=BlobSource(size=built.size, path=built.path, digest=built.digest),
        format=fmt, certain=len(counts) == 1, diff_id=built.diff_id,
        uncompressed_size=built.uncompressed_size, files=[f.rel for f in files],
    )


# -- descriptors, config, manifest -------------------------------------------------------------
def layer_descriptor(entry: PlanEntry, digest: str | None = None, size: int | None = None,
                     media_types: MediaTypes | None = None) -> Descriptor:
    """The manifest descriptor of a pushed layer, with its path and metadata annotations."""
    types = media_types or MODELPACK
    digest = digest or entry.source.digest
    if digest is None:
        raise UsageError(f"layer {entry.relpath} has no digest yet: push it first")
    size = entry.size if size is None else size
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


def push_plan(store: Store, plan: ModelPlan, *, tag: str | None = None,
              annotations: dict[str, str] | None = None, progress: Progress | None = None) -> ManifestData:
    """Push every layer, the config and the manifest of ``plan``, one blob at a time.

    The simple sequential path (layouts, tests); the registry push command may run layers
    concurrently with the same building blocks. Returns the manifest as stored.
    """
    layers: list[Descriptor] = []
    for entry in plan.entries:
        pushed = store.push_blob(entry.source, progress)
        plan.remember(entry, pushed.digest)
        layers.append(layer_descriptor(entry, pushed.digest, pushed.size, plan.media_types))
    config_bytes, config_type = build_config_blob(plan, layers)
    config = store.push_blob(BlobSource(size=len(config_bytes), data=config_bytes))
    config_desc = Descriptor(config_type, config.digest, config.size)
    merged = {**plan.options.annotations, **(annotations or {})}
    data = build_manifest(config_desc, layers, merged, artifact_type=plan.media_types.artifact_type)
    digest = store.put_manifest(data, OCI_MANIFEST, tag=tag)
    return ManifestData(data, OCI_MANIFEST, digest)
