"""Promotion: copy a model with its signatures between stores; tag and list without moving blobs.

``copy`` resolves the source once, optionally verifies it against a policy (the same
``discover`` as ``pull --verify``, before anything is written), walks the graph below the
manifest (``graph.walk``) and writes what the destination lacks (``graph.copy_graph``). Blobs
already in another repository of the destination registry are mounted, not sent again: the
source repository when both sides are one registry, and wherever the blob-location cache last
saw the blob.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import IntegrityError, UsageError
from .reference import Reference, parse_reference
from .store import open_store
from .store.base import Store, StoreOptions

_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

if TYPE_CHECKING:
    from .graph import CopyStats
    from .progress import Reporter


def _ref(ref: str | Reference) -> Reference:
    return parse_reference(ref) if isinstance(ref, str) else ref


def _close(store: Store) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _registry_url(store: Store) -> str | None:
    from .mounts import registry_url

    return registry_url(store)


@dataclass
class CopyResult:
    source: str
    destination: str
    digest: str
    tag: str | None
    stats: CopyStats
    verification: Any = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "destination": self.destination,
            "digest": self.digest,
            "tag": self.tag,
            **self.stats.to_json(),
        }
        if self.verification is not None:
            out["verification"] = self.verification.to_dict()
        if self.notes:
            out["notes"] = self.notes
        return out


def _layer_digests(store: Store, data: bytes) -> dict[str, str] | None:
    from .errors import OmsignError
    from .model.unpack import layer_digests, parse_model_manifest

    try:
        return layer_digests(parse_model_manifest(data, store.limits))
    except OmsignError:
        return None  # not a model (an image, an index): only the cosign signature can admit it


def copy(
    src_ref: str | Reference,
    dst_ref: str | Reference,
    *,
    src_options: StoreOptions | None = None,
    dst_options: StoreOptions | None = None,
    referrers: bool = True,
    policy: Any = None,
    tag: str | None = None,
    concurrency: int = 4,
    reporter: Reporter | None = None,
    use_cache: bool = True,
    verify: bool = False,
    policy_file: str | Path | None = None,
    require_attestations: list[Any] | None = None,
) -> CopyResult:
    """Copy a model (manifest, config, layers and, by default, every referrer) from SRC to DST.

    ``tag`` names the tag at DST; None uses DST's own tag, else SRC's. With a ``policy`` (a
    verifier policy), nothing is written to DST unless SRC verifies. Without one, ``verify``
    or a ``policy_file`` judges SRC by the trust policy file (``policy_file``,
    ``$OMSIGN_POLICY``, the user's, the system's): an enforce-mode refusal writes nothing,
    and ``verify`` with no scope for SRC is a ``UsageError``. Every ``require_attestations``
    (``attestations.parse_requirements``) must be met by an attestation verified by ``policy``.
    """
    from .graph import copy_graph, walk
    from .store.blobcache import BlobLocationCache
    from .trust import enforce_policy_file, load_in_force
    from .verify.discover import discover

    if require_attestations and policy is None:
        raise UsageError("--require-attestation needs a policy (--verify with --key or an identity)")
    by_file = policy is None and (verify or policy_file is not None)
    loaded, why = load_in_force(policy_file) if by_file else (None, "")  # a bad file: exit 2 first
    if by_file and verify and loaded is None:
        raise UsageError(
            "no policy, no verification",
            hint="pass --key PUB, or --certificate-identity and --certificate-oidc-issuer, or --policy FILE",
        )
    source, target = _ref(src_ref), _ref(dst_ref)
    src = open_store(source, src_options or StoreOptions())
    dst: Store | None = None
    try:
        root_desc = src.resolve(source.identifier)
        manifest = src.get_manifest(root_desc.digest)  # by digest: the bytes are checked
        if target.digest is not None and target.digest != manifest.digest:
            raise UsageError(
                f"{target} names digest {target.digest}, but {source} is {manifest.digest}",
                hint="drop the digest from the destination, or name the right one",
            )
        verification = None
        notes: list[str] = []
        if policy is not None:
            found = discover(src, manifest.descriptor, policy, layer_digests=_layer_digests(src, manifest.data))
            verification = found.result
            verification.raise_if_failed()
            if require_attestations:
                from .attestations import require_attestations as _require

                _require(src, manifest.descriptor, policy, require_attestations)
        elif by_file:
            trust = enforce_policy_file(
                src, source, manifest.descriptor, loaded, why=why,
                layer_digests=_layer_digests(src, manifest.data), required=verify,
            )
            verification = trust.verification
            if trust.warned or not trust.applies:
                notes.append(trust.reason)
        dst_tag = tag if tag is not None else (target.tag or source.tag)
        graph, skipped = walk(src, manifest.descriptor, referrers=referrers, manifest=manifest)
        dst = open_store(target, dst_options or StoreOptions(), create=True)
        cache = BlobLocationCache() if use_cache else None
        mount = _mount_sources(src, dst, cache)
        try:
            stats = copy_graph(
                src, dst, graph, tag=dst_tag, mount=mount, concurrency=concurrency, reporter=reporter
            )
        except BaseException:
            discard = getattr(dst, "discard", None)  # an archive: keep the file as it was
            if callable(discard):
                discard()
            raise
        if cache is not None:
            _remember(cache, src, dst, graph)
            cache.close()
        return CopyResult(
            source=str(source.pinned(manifest.digest)),
            destination=str(dataclasses.replace(target, tag=dst_tag, digest=manifest.digest)),
            digest=manifest.digest,
            tag=dst_tag,
            stats=stats,
            verification=verification,
            notes=notes + [f"referrer {d} is listed at the source but unreadable there; not copied" for d in skipped],
        )
    finally:
        _close(src)
        if dst is not None:
            _close(dst)


def _mount_sources(src: Store, dst: Store, cache: Any) -> Any:
    """Repositories of DST's registry that may hold a blob: SRC's (same registry), then the cache's."""
    dst_url = _registry_url(dst)
    if dst_url is None:
        return None
    same = _registry_url(src) == dst_url and src.ref.repository != dst.ref.repository

    def sources(digest: str) -> list[str]:
        found = [src.ref.repository] if same else []
        if cache is not None:
            found += [r for r in cache.repositories(dst_url, digest) if r not in found and r != dst.ref.repository]
        return found

    return sources


def _remember(cache: Any, src: Store, dst: Store, graph: Any) -> None:
    """Both sides now hold every blob of the graph: later pushes and copies can mount them."""
    from .mounts import record_locations

    digests = {d.digest for node in graph.nodes() for d in node.blobs}
    record_locations(cache, src, digests)
    record_locations(cache, dst, digests)


@dataclass
class TagResult:
    reference: str
    digest: str
    tag: str

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": self.digest, "tag": self.tag}


def tag(ref: str | Reference, new_tag: str, *, options: StoreOptions | None = None) -> TagResult:
    """Point ``new_tag`` at the manifest ``ref`` names, in the same repository (no blob traffic)."""
    reference = _ref(ref)
    if not _TAG_RE.match(new_tag):
        raise UsageError(f"invalid tag {new_tag!r}", hint="a tag is up to 128 letters, digits, '_', '.' or '-'")
    store = open_store(reference, options or StoreOptions())
    try:
        desc = store.resolve(reference.identifier)
        manifest = store.get_manifest(desc.digest)
        digest = store.put_manifest(manifest.data, manifest.media_type, tag=new_tag)
        if digest != manifest.digest:
            raise IntegrityError(f"{reference.repo_name} stored {new_tag} as {digest}, not {manifest.digest}")
        return TagResult(str(dataclasses.replace(reference, tag=new_tag, digest=digest)), digest, new_tag)
    finally:
        _close(store)


def list_tags(ref: str | Reference, *, options: StoreOptions | None = None, page_size: int | None = None) -> list[str]:
    """Every tag of a repository (registry pagination followed), sorted."""
    reference = _ref(ref)
    store = open_store(reference, options or StoreOptions())
    try:
        if page_size is not None and hasattr(store, "base_url"):
            tags: list[str] = store.list_tags(page_size=page_size)  # type: ignore[call-arg]
            return tags
        return store.list_tags()
    finally:
        _close(store)
