"""The push and pull engines: parallel, streaming, checked.

Push reads each file once (hashing while uploading, or not at all when the digest cache knows
it). Pull resolves a tag once, then works only by digest: every blob streams into a temporary
file beside the destination while being hashed, and files are moved into place only after
every layer has been verified.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .digest import hash_file, sha256_digest
from .errors import InputError, IntegrityError
from .model.digestcache import DigestCache
from .model.pack import (
    ModelPlan,
    PackOptions,
    PlanEntry,
    build_config_blob,
    layer_descriptor,
    plan_model,
)
from .model.staging import Staging, debris_name
from .model.tarzstd import extract_tar
from .model.unpack import (
    ModelEntry,
    ModelManifest,
    filter_entries,
    matches_include,
    parse_model_manifest,
)
from .oci.descriptor import Descriptor, ManifestData
from .oci.manifest import build_manifest
from .oci.mediatypes import OCI_MANIFEST, OCTET_STREAM
from .progress import NullReporter, Progress, Reporter
from .reference import Reference
from .store.base import BlobSource, Store


@dataclass(frozen=True)
class LayerResult:
    path: str
    digest: str
    size: int
    media_type: str
    uploaded: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "digest": self.digest,
            "size": self.size,
            "mediaType": self.media_type,
            "uploaded": self.uploaded,
        }


@dataclass
class PushResult:
    """What a push produced: the manifest digest is what ``sign`` signs."""

    reference: str
    digest: str
    size: int
    media_type: str
    tag: str | None
    layers: list[LayerResult] = field(default_factory=list)
    uploaded_bytes: int = 0
    manifest: bytes = b""

    def __repr__(self) -> str:  # no manifest bytes, no list of every layer
        return f"PushResult(reference={self.reference!r}, layers={len(self.layers)}, uploaded_bytes={self.uploaded_bytes})"

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "size": self.size,
            "mediaType": self.media_type,
            "tag": self.tag,
            "uploadedBytes": self.uploaded_bytes,
            "layers": [layer.to_json() for layer in self.layers],
        }


@dataclass
class PullResult:
    reference: str
    digest: str
    destination: str
    files: list[LayerResult] = field(default_factory=list)
    downloaded_bytes: int = 0
    verification: Any = None
    trust: Any = None  # the policy file's TrustOutcome, when a policy file was in force

    def __repr__(self) -> str:
        verified = "" if self.verification is None else f", verified={bool(self.verification.ok)}"
        return (
            f"PullResult(reference={self.reference!r}, destination={self.destination!r}, "
            f"files={len(self.files)}{verified})"
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference": self.reference,
            "digest": self.digest,
            "destination": self.destination,
            "downloadedBytes": self.downloaded_bytes,
            "files": [f.to_json() for f in self.files],
        }
        if self.verification is not None:
            out["verification"] = self.verification.to_dict()
        if self.trust is not None:
            out["policy"] = self.trust.to_dict()
        return out


class PushHooks(Protocol):
    """What a push may learn from outside the folder: digests worth computing first, mounts."""

    def wants_digest(self, relpath: str, size: int) -> bool: ...

    def mount(self, digest: str) -> bool: ...


def run_parallel(jobs: Iterable[Callable[[], Any]], concurrency: int) -> list[Any]:
    """Run jobs on a bounded pool; the first failure cancels what has not started and is raised."""
    jobs = list(jobs)
    if not jobs:
        return []
    if concurrency <= 1 or len(jobs) == 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(jobs))) as pool:
        futures: list[Future[Any]] = [pool.submit(job) for job in jobs]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                raise f.exception()  # type: ignore[misc]
        return [f.result() for f in futures]


def push_model(
    model_dir: Path,
    ref: Reference,
    store: Store,
    *,
    pack: PackOptions,
    cache: DigestCache | None,
    concurrency: int = 4,
    reporter: Reporter | None = None,
    small_max: int = 8 * 1024 * 1024,
    mount_from: list[str] | None = None,
    hooks: PushHooks | None = None,
) -> PushResult:
    """Pack ``model_dir`` and push it; returns the manifest digest (by which it is signed).

    Each file is read once: a small file into memory (hashed, then the registry is asked
    whether it has it), a large one streamed to the registry while being hashed, unless the
    digest cache already knows its digest. ``mount_from`` names repositories of the same
    registry that may hold the blobs already (cross-repository mount instead of upload).
    """
    reporter = reporter or NullReporter()
    with plan_model(model_dir, pack, cache=cache) as plan:
        reporter.set_total(sum(e.size for e in plan.entries))
        return _push_plan(plan, ref, store, concurrency, reporter, small_max, mount_from or [], hooks)


def _read_exact(path: Path, size: int, name: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read(size + 1)
    if len(data) != size:
        raise InputError(
            f"{name} changed while it was being pushed (now {len(data)} bytes, planned {size})",
            hint="push again once the model folder is no longer being written",
        )
    return data


def _push_plan(
    plan: ModelPlan,
    ref: Reference,
    store: Store,
    concurrency: int,
    reporter: Reporter,
    small_max: int,
    mount_from: list[str],
    hooks: PushHooks | None = None,
) -> PushResult:
    lock = threading.Lock()
    uploaded = [0]

    def push_layer(entry: PlanEntry) -> tuple[Descriptor, bool]:
        source = entry.source
        if source.digest is None and source.path is not None and source.size <= small_max:
            # Small and not in the cache: one read into memory gives the digest, so the
            # registry is asked before anything is sent (a re-push with --no-cache uploads nothing).
            data = _read_exact(source.path, source.size, entry.relpath)
            source = BlobSource(size=len(data), data=data, digest=sha256_digest(data))
        wanted = hooks is not None and hooks.wants_digest(entry.relpath, source.size)
        if (mount_from or wanted) and source.digest is None and source.path is not None:
            # Mounting needs the digest first: one extra read, only when the user asked for it.
            source = BlobSource(size=source.size, path=source.path, digest=hash_file(str(source.path))[0])
        progress = reporter.task(entry.relpath, source.size)
        try:
            existed = source.digest is not None and (
                store.blob_exists(source.digest)
                or any(store.mount_blob(source.digest, repo) for repo in mount_from)
                or (hooks is not None and hooks.mount(source.digest))
            )
            if existed:
                assert source.digest is not None
                desc = Descriptor(OCTET_STREAM, source.digest, source.size)
                progress(source.size)
            else:
                desc = store.push_blob(source, progress, known_absent=source.digest is not None)
        finally:
            reporter.done(progress)
        if entry.stat is not None and entry.source.path is not None:
            _check_unchanged(entry, entry.source.path)
            plan.remember(entry, desc.digest)
        if not existed:
            with lock:
                uploaded[0] += desc.size
        return desc, not existed

    results = run_parallel([functools.partial(push_layer, e) for e in plan.entries], concurrency)
    layer_descs: list[Descriptor] = []
    layer_results: list[LayerResult] = []
    for entry, (desc, was_uploaded) in zip(plan.entries, results, strict=True):
        full = layer_descriptor(entry, desc.digest, desc.size, plan.media_types)
        layer_descs.append(full)
        layer_results.append(LayerResult(entry.relpath, desc.digest, desc.size, full.media_type, was_uploaded))
    config, config_type = build_config_blob(plan, layer_descs)
    config_desc = Descriptor(config_type, sha256_digest(config), len(config))
    store.push_blob(BlobSource(size=len(config), data=config, digest=config_desc.digest))
    manifest = build_manifest(
        config_desc, layer_descs, plan.options.annotations or None, artifact_type=plan.media_types.artifact_type
    )
    digest = store.put_manifest(manifest, OCI_MANIFEST, tag=ref.tag)
    return PushResult(
        reference=str(ref.pinned(digest)),
        digest=digest,
        size=len(manifest),
        media_type=OCI_MANIFEST,
        tag=ref.tag,
        layers=layer_results,
        uploaded_bytes=uploaded[0],
        manifest=manifest,
    )


def _check_unchanged(entry: PlanEntry, path: Path) -> None:
    """The bytes pushed must be the bytes planned: a file written meanwhile is an error."""
    before = entry.stat
    assert before is not None
    try:
        after = os.stat(path)
    except OSError as exc:
        raise InputError(f"{entry.relpath} disappeared while it was being pushed") from exc
    if (after.st_size, after.st_mtime_ns, after.st_ino) != (before.st_size, before.st_mtime_ns, before.st_ino):
        raise InputError(
            f"{entry.relpath} changed while it was being pushed",
            hint="push again once the model folder is no longer being written",
        )


def read_model(store: Store, digest: str) -> tuple[ManifestData, ModelManifest]:
    """The manifest by digest (its bytes checked against it) and the model it describes.

    The config blob is read too (small, bounded): it carries ModelPack diffIds for tar layers
    and KitOps paths.
    """
    data = store.get_manifest(digest)
    return data, with_config(store, data, parse_model_manifest(data.data, store.limits))


def with_config(store: Store, data: ManifestData, model: ModelManifest) -> ModelManifest:
    """Re-read the model with its (small, bounded, verified) config blob."""
    if not model.config.size:
        return model
    config = store.read_blob(model.config, store.limits.config_bytes)
    return parse_model_manifest(data.data, store.limits, config=config)


def _fetch_entry(
    store: Store, staging: Staging, entry: ModelEntry, include: list[str], progress: Progress
) -> None:
    """Stream one layer into staging, verified; tar layers are verified, then extracted."""
    if not entry.is_tar:
        target = staging.temp_path_for(entry)
        # O_EXCL: a tar layer that also holds this path must not be silently overwritten (or
        # overwrite us, see extract_tar): which verified bytes would win depended on timing.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(target, flags, 0o644)
        except FileExistsError as exc:
            raise IntegrityError(
                f"{entry.path} is written by two layers (a tar layer also holds it)"
            ) from exc
        with os.fdopen(fd, "wb") as out:
            store.fetch_blob(entry.descriptor, out, progress)
            out.flush()
            os.fsync(out.fileno())
        return
    limits = store.limits
    bound = entry.uncompressed_size
    if bound is None:
        bound = entry.descriptor.size * limits.decompressed_ratio
    fd, tmp_name = tempfile.mkstemp(prefix=debris_name("layer"), dir=staging.path.parent)
    try:
        with os.fdopen(fd, "w+b") as tmp:
            store.fetch_blob(entry.descriptor, tmp, progress)
            tmp.seek(0)
            compression = {"tar": None, "tar+zstd": "zstd", "tar+gzip": "gzip"}[entry.kind]
            extract_tar(
                tmp,
                staging.path,
                compression=compression,  # type: ignore[arg-type]
                max_output=bound,
                expected_diff_id=entry.diff_id,
                include=(lambda rel: matches_include(rel, include)) if include else None,
                what=f"layer {entry.path}",
            )
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)


def pull_model(
    store: Store,
    ref: Reference,
    manifest: ManifestData,
    model: ModelManifest,
    dest: Path,
    *,
    include: list[str] | None = None,
    concurrency: int = 4,
    reporter: Reporter | None = None,
    extra_files: dict[str, bytes] | None = None,
    replace: bool = False,
) -> PullResult:
    """Download, verify and place every (included) file; DEST changes only if all succeed.

    DEST must be absent or empty unless ``replace``: then the verified tree takes the place of
    the old one in one swap (see ``Staging``).
    """
    reporter = reporter or NullReporter()
    include = include or []
    entries: list[ModelEntry] = filter_entries(model.files, include)
    if include and not entries:
        raise InputError(f"no file in {ref} matches {', '.join(include)}")
    reporter.set_total(sum(e.descriptor.size for e in entries))
    downloaded = [0]
    lock = threading.Lock()
    with Staging(dest, replace=replace) as staging:

        def fetch(entry: ModelEntry) -> LayerResult:
            progress = reporter.task(str(entry.path), entry.descriptor.size)
            try:
                _fetch_entry(store, staging, entry, include, progress)
            except OSError as exc:
                raise InputError(f"cannot write {entry.path} under {dest}: {exc.strerror or exc}") from exc
            except IntegrityError as exc:
                if str(entry.path) in exc.message:
                    raise
                # Name the file: "blob sha256:… does not match" alone does not say what to fix.
                raise IntegrityError(f"{entry.path}: {exc.message}", hint=exc.hint) from exc
            finally:
                reporter.done(progress)
            with lock:
                downloaded[0] += entry.descriptor.size
            d = entry.descriptor
            return LayerResult(str(entry.path), d.digest, d.size, d.media_type)

        files = run_parallel([functools.partial(fetch, e) for e in entries], concurrency)
        for name, content in (extra_files or {}).items():
            staging.temp_path_for(name).write_bytes(content)
        staging.commit()
    return PullResult(
        reference=str(ref.pinned(manifest.digest)),
        digest=manifest.digest,
        destination=str(dest),
        files=files,
        downloaded_bytes=downloaded[0],
    )
