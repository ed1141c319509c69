"""The push and pull engines: parallel, streaming, checked.

Push reads each file once (hashing while uploading, or not at all when the digest cache knows
it). Pull resolves a tag once, then works only by digest: every blob streams into a temporary
file beside the destination while being hashed, and files are moved into place only after
every layer has been verified.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .digest import sha256_digest
from .errors import InputError
from .model.digestcache import DigestCache
from .model.pack import ModelPlan, PackOptions, build_config, build_manifest, plan_model
from .model.unpack import ModelEntry, ModelManifest, Staging, filter_entries, parse_model_manifest
from .progress import NullReporter, Reporter
from .reference import Reference
from .store.base import OCI_MANIFEST, BlobSource, Descriptor, ManifestData, Store


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

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)

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

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference": self.reference,
            "digest": self.digest,
            "destination": self.destination,
            "downloadedBytes": self.downloaded_bytes,
            "files": [f.to_json() for f in self.files],
        }
        if self.verification is not None:
            out["verification"] = self.verification.to_json()
        return out


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


def _stat_signature(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def push_model(
    model_dir: Path,
    ref: Reference,
    store: Store,
    *,
    pack: PackOptions,
    cache: DigestCache | None,
    concurrency: int = 4,
    reporter: Reporter | None = None,
) -> PushResult:
    """Pack ``model_dir`` and push it; returns the manifest digest (by which it is signed)."""
    reporter = reporter or NullReporter()
    plan: ModelPlan = plan_model(model_dir, pack, cache=cache)
    lock = threading.Lock()
    uploaded = [0]

    def push_layer(index: int) -> tuple[Descriptor, bool]:
        layer = plan.layers[index]
        source: BlobSource = layer.source
        before = os.stat(source.path) if source.path is not None and not layer.generated else None
        progress = reporter.task(layer.path, source.size)
        existed = source.digest is not None and store.blob_exists(source.digest)
        try:
            if existed:
                assert source.digest is not None
                desc = Descriptor("application/octet-stream", source.digest, source.size)
                progress(source.size)
            else:
                desc = store.push_blob(source, progress)
        finally:
            reporter.done(progress)
        if before is not None and source.path is not None:
            after = os.stat(source.path)
            if _stat_signature(before) != _stat_signature(after):
                raise InputError(
                    f"{layer.path} changed while it was being pushed",
                    hint="push again once the model folder is no longer being written",
                )
            if cache is not None and source.digest is None:
                cache.put(source.path, after, desc.digest)
        if not existed:
            with lock:
                uploaded[0] += desc.size
        return desc, not existed

    results = run_parallel([lambda i=i: push_layer(i) for i in range(len(plan.layers))], concurrency)
    layer_descs: list[Descriptor] = []
    layer_results: list[LayerResult] = []
    for layer, (desc, was_uploaded) in zip(plan.layers, results, strict=True):
        full = layer.descriptor(desc.digest, desc.size)
        layer_descs.append(full)
        layer_results.append(LayerResult(layer.path, desc.digest, desc.size, full.media_type, was_uploaded))
    config = build_config(plan, layer_descs)
    config_desc = Descriptor(plan.config_media_type, sha256_digest(config), len(config))
    if not store.blob_exists(config_desc.digest):
        store.push_blob(BlobSource(size=len(config), data=config, digest=config_desc.digest))
    manifest = build_manifest(plan, config_desc, layer_descs)
    digest = store.put_manifest(manifest, OCI_MANIFEST, tag=ref.tag)
    plan.cleanup()
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


def read_model(store: Store, digest: str) -> tuple[ManifestData, ModelManifest]:
    """The manifest by digest (its bytes checked against it) and the model it describes."""
    data = store.get_manifest(digest)
    return data, parse_model_manifest(data.data, store.limits)


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
) -> PullResult:
    """Download, verify and place every (included) file; DEST changes only if all succeed."""
    reporter = reporter or NullReporter()
    entries: list[ModelEntry] = filter_entries(model.files, include or [])
    if include and not entries:
        raise InputError(f"no file in {ref} matches {', '.join(include)}")
    downloaded = [0]
    lock = threading.Lock()
    with Staging(dest) as staging:

        def fetch(entry: ModelEntry) -> LayerResult:
            progress = reporter.task(entry.path, entry.descriptor.size)
            try:
                staging.fetch(store, entry, progress)
            finally:
                reporter.done(progress)
            with lock:
                downloaded[0] += entry.descriptor.size
            return LayerResult(entry.path, entry.descriptor.digest, entry.descriptor.size, entry.descriptor.media_type)

        files = run_parallel([lambda e=e: fetch(e) for e in entries], concurrency)
        for name, content in (extra_files or {}).items():
            staging.add_file(name, content)
        staging.commit()
    return PullResult(
        reference=str(ref.pinned(manifest.digest)),
        digest=manifest.digest,
        destination=str(dest),
        files=files,
        downloaded_bytes=downloaded[0],
    )
