"""Copying a graph of OCI content from one store to another: the primitive behind ``copy``.

In the spirit of oras-go's ``CopyGraph`` and go-containerregistry's ``remote.Write`` with
mountable layers:

* ``walk`` reads the graph below a manifest descriptor at the source: an index's manifests, a
  manifest's config and layers, and (by default) every referrer of every manifest, found
  through the referrers API or the ``sha256-<hex>`` fallback index, recursively, plus
  cosign's legacy ``sha256-<hex>.sig``/``.att`` tags. Every manifest is read by digest, so
  its bytes are checked; the walk is bounded (``Limits``) and never loops.
* ``copy_graph`` writes what the destination lacks: blobs first (a HEAD skips what is there,
  a ``mount`` callback names repositories of the destination registry to mount from, the rest
  streams from the source through the source's own verifying reader), then manifests from the
  leaves up with their exact bytes (digests unchanged, so signatures stay valid), referrers
  the way the destination supports (``store.referrers.attach_referrers``), legacy tags merged
  with what the destination already holds, and the tag last: a tag at the destination means
  the model and its signatures are all there. Every step is idempotent, so an interrupted copy
  run again completes without duplicating anything.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import IntegrityError, LimitError, NotFoundError, RegistryError
from .limits import load_json
from .oci.descriptor import Descriptor, ManifestData
from .oci.manifest import LegacyLayer, legacy_manifest
from .oci.mediatypes import ANNOTATION_SIGNATURE, ANNOTATION_TITLE, OCI_INDEX
from .progress import NullReporter, Reporter
from .reference import legacy_signature_tag
from .store.base import BlobSource, Store
from .store.referrers import attach_referrers, list_referrers
from .store.streams import blob_opener

# Where a blob may already be on the destination registry: repository names to mount from.
MountSource = Callable[[str], Iterable[str]]
LEGACY_SUFFIXES = ("sig", "att")
MAX_DEPTH = 16  # referrers of referrers of ...: deeper than any real signing chain


@dataclass
class Node:
    """One manifest of the graph with what hangs below it."""

    manifest: ManifestData
    blobs: list[Descriptor] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)  # an index's manifests
    referrers: list[Node] = field(default_factory=list)
    legacy: dict[str, Node] = field(default_factory=dict)  # suffix -> the .sig/.att manifest

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def nodes(self) -> Iterable[Node]:
        """Every node below and including this one (depth first)."""
        yield self
        for group in (self.children, self.referrers, list(self.legacy.values())):
            for child in group:
                yield from child.nodes()


@dataclass
class CopyStats:
    """What a copy moved; ``skipped`` blobs were at the destination already."""

    blobs: int = 0
    copied_blobs: int = 0
    copied_bytes: int = 0
    mounted_blobs: int = 0
    skipped_blobs: int = 0
    manifests: int = 0
    referrers: int = 0
    legacy_signatures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def to_json(self) -> dict[str, int]:
        return {
            "blobs": self.blobs,
            "copiedBlobs": self.copied_blobs,
            "copiedBytes": self.copied_bytes,
            "mountedBlobs": self.mounted_blobs,
            "skippedBlobs": self.skipped_blobs,
            "manifests": self.manifests,
            "referrers": self.referrers,
            "legacySignatures": self.legacy_signatures,
        }


class _Walker:
    def __init__(self, store: Store, referrers: bool) -> None:
        self.store = store
        self.with_referrers = referrers
        self.seen: set[str] = set()
        self.skipped: list[str] = []  # referrers listed but unreadable
        limits = store.limits
        self.max_nodes = limits.layers + limits.referrers * 4

    def _parse(self, manifest: ManifestData) -> dict[str, Any]:
        limits = self.store.limits
        value = load_json(
            manifest.data,
            max_bytes=max(limits.manifest_bytes, limits.index_bytes),
            depth=limits.json_depth,
            what=f"manifest {manifest.digest}",
        )
        if not isinstance(value, dict):
            raise IntegrityError(f"manifest {manifest.digest} is not a JSON object")
        return value

    def node(self, digest: str, depth: int, manifest: ManifestData | None = None) -> Node:
        if len(self.seen) >= self.max_nodes:
            raise LimitError(f"the graph below this manifest holds more than {self.max_nodes} manifests")
        if depth > MAX_DEPTH:
            raise LimitError(f"referrers nest more than {MAX_DEPTH} levels deep")
        self.seen.add(digest)
        manifest = manifest or self.store.get_manifest(digest)  # by digest: bytes checked
        value = self._parse(manifest)
        node = Node(manifest)
        if manifest.media_type == OCI_INDEX or value.get("mediaType") == OCI_INDEX or "manifests" in value:
            items = value.get("manifests")
            if not isinstance(items, list):
                raise IntegrityError(f"index {digest} has no manifests list")
            for i, item in enumerate(items):
                child = Descriptor.from_json(item, f"index {digest} entry {i}")
                if child.digest not in self.seen:
                    node.children.append(self.node(child.digest, depth))
        else:
            layers = value.get("layers", [])
            if not isinstance(layers, list):
                raise IntegrityError(f"manifest {digest} has a layers field that is not a list")
            if len(layers) > self.store.limits.layers:
                raise LimitError(f"manifest {digest} has {len(layers)} layers, over the limit")
            if "config" in value:
                node.blobs.append(Descriptor.from_json(value["config"], f"config of {digest}"))
            node.blobs.extend(Descriptor.from_json(x, f"layer of {digest}") for x in layers)
        if self.with_referrers:
            self._add_referrers(node, depth)
        return node

    def _add_referrers(self, node: Node, depth: int) -> None:
        for desc in list_referrers(self.store, node.digest):
            if desc.digest in self.seen:
                continue
            try:
                child = self.node(desc.digest, depth + 1)
            except (NotFoundError, IntegrityError):
                # An index entry whose manifest is gone or garbled: nothing worth carrying, and
                # one broken referrer must not keep the model and its signatures from moving.
                self.skipped.append(desc.digest)
                continue
            subject = self._parse(child.manifest).get("subject")
            try:
                subject_digest = Descriptor.from_json(subject, "referrer subject").digest
            except IntegrityError:
                continue
            if subject_digest != node.digest:
                continue  # listed under this subject but not about it: not ours to attach
            node.referrers.append(child)
        for suffix in LEGACY_SUFFIXES:
            tag = legacy_signature_tag(node.digest, suffix)
            try:
                desc = self.store.resolve(tag)
            except NotFoundError:
                continue
            if desc.digest in self.seen:
                continue
            try:
                node.legacy[suffix] = self.node(desc.digest, depth + 1)
            except (NotFoundError, IntegrityError):
                self.skipped.append(desc.digest)


def walk(
    store: Store, root: Descriptor, *, referrers: bool = True, manifest: ManifestData | None = None
) -> tuple[Node, list[str]]:
    """The graph below ``root`` at ``store`` (see the module docstring), and the digests of
    referrers that were listed but could not be read (left behind)."""
    walker = _Walker(store, referrers)
    return walker.node(root.digest, 0, manifest), walker.skipped


def _key(layer: LegacyLayer) -> tuple[str, str]:
    return layer.digest, layer.annotations.get(ANNOTATION_SIGNATURE, "")


def _merge_legacy(src: Store, dst: Store, subject: str, suffix: str, node: Node, stats: CopyStats) -> None:
    """Add the source's ``.sig``/``.att`` layers to the destination's, never dropping any there.

    Without a tag at the destination the source manifest is copied byte for byte; otherwise the
    union is written as cosign writes it (``legacy_manifest``) and re-read to catch a
    concurrent writer, as ``signing.attach.attach_legacy`` does.
    """
    from .digest import sha256_digest

    tag = legacy_signature_tag(subject, suffix)
    theirs = _read_layers(dst, tag)
    if theirs is None:
        dst.put_manifest(node.manifest.data, node.manifest.media_type, tag=tag)
        stats.add(legacy_signatures=len(_read_layers(src, tag) or []), manifests=1)
        return
    ours = _read_layers(src, tag) or []
    for _ in range(6):
        merged = {_key(x): x for x in theirs}
        added = [x for x in ours if _key(x) not in merged]
        if not added:
            return
        for x in added:
            merged[_key(x)] = x
        manifest_bytes, config = legacy_manifest(list(merged.values()))
        dst.push_blob(BlobSource(size=len(config), data=config, digest=sha256_digest(config)))
        dst.put_manifest(manifest_bytes, node.manifest.media_type, tag=tag)
        stats.add(legacy_signatures=len(added), manifests=1)
        theirs = _read_layers(dst, tag) or []  # a concurrent signer may have replaced ours


def _read_layers(store: Store, tag: str) -> list[LegacyLayer] | None:
    """The layers of a ``.sig``/``.att`` manifest (None when the tag does not exist)."""
    try:
        data = store.get_manifest(tag).data
    except NotFoundError:
        return None
    limits = store.limits
    value = load_json(data, max_bytes=limits.manifest_bytes, depth=limits.json_depth, what=f"{tag} manifest")
    layers = value.get("layers") if isinstance(value, dict) else None
    if not isinstance(layers, list):
        raise IntegrityError(f"{tag} in {store.ref.repo_name} is not an image manifest")
    out: list[LegacyLayer] = []
    for i, raw in enumerate(layers):
        desc = Descriptor.from_json(raw, f"{tag} layer {i}")
        out.append(LegacyLayer(desc.digest, desc.size, desc.media_type, dict(desc.annotations or {})))
    return out


def _try_mount(dst: Store, digest: str, repository: str) -> bool:
    """A refused mount (no pull access there, a stale hint) means: upload instead."""
    try:
        return dst.mount_blob(digest, repository)
    except RegistryError:
        return False


def copy_graph(
    src: Store,
    dst: Store,
    root: Node,
    *,
    tag: str | None = None,
    mount: MountSource | None = None,
    concurrency: int = 4,
    reporter: Reporter | None = None,
) -> CopyStats:
    """Write everything below ``root`` (from ``walk``) that ``dst`` lacks; tag it last."""
    from .transfer import run_parallel

    reporter = reporter or NullReporter()
    stats = CopyStats()
    blobs: dict[str, Descriptor] = {}
    for node in root.nodes():
        for desc in node.blobs:
            blobs.setdefault(desc.digest, desc)
    stats.blobs = len(blobs)
    reporter.set_total(sum(d.size for d in blobs.values()))

    def copy_blob(desc: Descriptor) -> None:
        title = (desc.annotations or {}).get(ANNOTATION_TITLE)
        progress = reporter.task(title or desc.digest[7:19], desc.size)
        try:
            if dst.blob_exists(desc.digest):
                stats.add(skipped_blobs=1)
                progress(desc.size)
                return
            for repository in mount(desc.digest) if mount is not None else ():
                if _try_mount(dst, desc.digest, repository):
                    stats.add(mounted_blobs=1)
                    progress(desc.size)
                    return
            source = BlobSource(size=desc.size, digest=desc.digest, opener=blob_opener(src, desc))
            dst.push_blob(source, progress, known_absent=True)
            stats.add(copied_blobs=1, copied_bytes=desc.size)
        finally:
            reporter.done(progress)

    run_parallel([functools.partial(copy_blob, d) for d in blobs.values()], concurrency)
    _put_tree(src, dst, root, stats)
    if tag is not None:
        dst.put_manifest(root.manifest.data, root.manifest.media_type, tag=tag)
    return stats


def _put_tree(src: Store, dst: Store, node: Node, stats: CopyStats) -> None:
    """Manifests from the leaves up: an index's children, the node, then what refers to it."""
    for child in node.children:
        _put_tree(src, dst, child, stats)
    dst.put_manifest(node.manifest.data, node.manifest.media_type)
    stats.add(manifests=1)
    _attach_below(src, dst, node, stats)


def _attach_below(src: Store, dst: Store, node: Node, stats: CopyStats) -> None:
    """Attach the referrers (one fallback-index update for all) and legacy tags of a stored node."""
    if node.referrers:
        for child in node.referrers:
            for grandchild in child.children:
                _put_tree(src, dst, grandchild, stats)
        attach_referrers(dst, [(c.manifest.data, c.manifest.media_type) for c in node.referrers])
        stats.add(referrers=len(node.referrers), manifests=len(node.referrers))
        for child in node.referrers:
            _attach_below(src, dst, child, stats)
    for suffix, legacy in node.legacy.items():
        _merge_legacy(src, dst, node.digest, suffix, legacy, stats)
