"""OCI 1.1 referrers on any ``Store``: the native API when there is one, else the fallback tag.

Most registries omsign meets (distribution 2.x/3.x, GHCR) have no referrers API, so the client
keeps an image index under the tag ``sha256-<hex>`` of the subject (distribution-spec 1.1,
"referrers tag schema"). That index is read-modify-write shared by every client, and cosign
does not use conditional requests either, so two signers at once can overwrite each other.
``attach_referrer`` therefore re-reads after writing, waits long enough for a writer that read
before our write to finish its own write, and re-adds anything it has seen that went missing.

Reading is lenient where the spec says so (missing tag or a tag that is not an index: no
referrers) and strict where a hostile registry could hurt (counts and sizes are bounded).
"""

from __future__ import annotations

import random
import time
from typing import Any

from ..errors import InputError, IntegrityError, LimitError, NotFoundError, RegistryError
from ..limits import load_json
from ..oci.descriptor import Descriptor
from ..oci.manifest import build_index
from ..oci.mediatypes import OCI_EMPTY, OCI_INDEX
from ..reference import fallback_tag
from .base import Store

UPDATE_ATTEMPTS = 12
SETTLE_MIN = 0.03  # seconds: the shortest wait before checking a write survived (3x the round trip otherwise)
SETTLE_MAX = 2.0


class _NotAnIndex(Exception):
    """The fallback tag holds something other than an image index."""


def _read_fallback(store: Store, tag: str) -> list[dict[str, Any]] | None:
    """Entries of the fallback index as raw JSON objects (valid descriptors only); None if no tag.

    Raw objects are kept so rewriting the index preserves fields omsign does not know about.
    """
    try:
        manifest = store.get_manifest(tag)
    except NotFoundError:
        return None
    limits = store.limits
    try:
        value = load_json(
            manifest.data, max_bytes=limits.index_bytes, depth=limits.json_depth, what=f"referrers index {tag}"
        )
    except IntegrityError as exc:
        raise _NotAnIndex(str(exc)) from exc
    if not isinstance(value, dict):
        raise _NotAnIndex("not a JSON object")
    media_type = value.get("mediaType", manifest.media_type)
    manifests = value.get("manifests")
    if media_type != OCI_INDEX or not isinstance(manifests, list):
        raise _NotAnIndex(f"media type {media_type!r}")
    if len(manifests) > limits.referrers:
        raise LimitError(
            f"referrers index {tag} lists {len(manifests)} entries, over the limit of {limits.referrers}",
            hint="raise OMSIGN_MAX_REFERRERS if this is expected",
        )
    entries: list[dict[str, Any]] = []
    for item in manifests:
        try:
            Descriptor.from_json(item, "referrers index entry")
        except IntegrityError:
            continue  # one broken entry must not hide the others
        entries.append(item)
    return entries


def _keep(desc: Descriptor, artifact_type: str | None) -> bool:
    """Client-side artifactType filter that does not drop cosign's mislabelled entries.

    cosign up to v3.0.6 writes the config media type (the empty type) as ``artifactType`` in
    fallback indexes, and older writers none at all; those entries are kept so callers that
    inspect the manifest still find them.
    """
    if artifact_type is None:
        return True
    return desc.artifact_type in (artifact_type, None, OCI_EMPTY)


def list_referrers(store: Store, subject_digest: str, artifact_type: str | None = None) -> list[Descriptor]:
    """Referrers of ``subject_digest``: API first, else the fallback tag; deduplicated, bounded.

    ``artifact_type`` filters client side (registries may ignore ``?artifactType=``); entries
    whose type is unknown or the empty config type are kept, see ``_keep``.
    """
    found = store.referrers_api(subject_digest)
    if found is None:
        tag = fallback_tag(subject_digest)
        try:
            raw = _read_fallback(store, tag)
        except _NotAnIndex:
            raw = None  # the spec: a tag that is not an index means no referrers
        found = [Descriptor.from_json(item) for item in raw or []]
    if len(found) > store.limits.referrers:
        raise LimitError(
            f"{subject_digest} has {len(found)} referrers, over the limit of {store.limits.referrers}",
            hint="raise OMSIGN_MAX_REFERRERS if this is expected",
        )
    seen: set[str] = set()
    out: list[Descriptor] = []
    for desc in found:
        if desc.digest in seen or not _keep(desc, artifact_type):
            continue
        seen.add(desc.digest)
        out.append(desc)
    return out


def _strict_read(store: Store, tag: str) -> list[dict[str, Any]]:
    try:
        return _read_fallback(store, tag) or []
    except _NotAnIndex as exc:
        raise RegistryError(
            f"tag {tag} in {store.ref.repo_name} is not a referrers index ({exc}); refusing to overwrite it",
            hint="delete or move that tag, then attach again",
        ) from exc


def _update_fallback(
    store: Store, subject_digest: str, add: list[dict[str, Any]] | None = None, remove: str | None = None
) -> bool:
    """Add or remove one entry in the fallback index, surviving concurrent writers.

    Returns True if the index changed. Every entry seen during the update is kept (except
    ``remove``): a writer that read before our PUT and wrote after it would otherwise drop ours,
    and we would drop theirs.
    """
    tag = fallback_tag(subject_digest)
    seen: dict[str, dict[str, Any]] = {}
    changed = False
    for attempt in range(UPDATE_ATTEMPTS):
        started = time.monotonic()
        current = _strict_read(store, tag)
        for item in current:
            seen.setdefault(item["digest"], item)
        for item in add or []:
            seen.setdefault(item["digest"], item)
        if remove is not None:
            seen.pop(remove, None)
        present = {item["digest"] for item in current}
        desired = [item for item in current if item["digest"] != remove]
        desired += [item for digest, item in seen.items() if digest not in present]
        needs_write = [i["digest"] for i in desired] != [i["digest"] for i in current]
        if not needs_write and attempt == 0:
            return False  # already as wanted: nothing written, nothing to check
        if needs_write:
            if len(desired) > store.limits.referrers:
                raise LimitError(
                    f"referrers index {tag} would hold {len(desired)} entries, over the limit of {store.limits.referrers}",
                    hint="raise OMSIGN_MAX_REFERRERS if this is expected",
                )
            store.put_manifest(build_index(desired), OCI_INDEX, tag=tag)
            changed = True
        # Give any writer that read the index before our PUT the time to finish its own PUT
        # (about as long as ours took), then check that nothing we know of was lost.
        elapsed = time.monotonic() - started
        time.sleep(min(SETTLE_MAX, max(SETTLE_MIN, 3 * elapsed)) + random.uniform(0, SETTLE_MIN))
        after = _strict_read(store, tag)
        for item in after:
            if item["digest"] != remove:
                seen.setdefault(item["digest"], item)
        holding = {item["digest"] for item in after}
        if set(seen) <= holding and (remove is None or remove not in holding):
            return changed
        time.sleep(random.uniform(0.01, 0.1) * (attempt + 1))
    raise RegistryError(
        f"could not update referrers index {tag} in {store.ref.repo_name}: other writers kept overwriting it",
        hint="retry when no other signer is attaching to the same model",
    )


def referrer_entry(manifest_bytes: bytes, media_type: str, digest: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The index entry for a referrer: artifactType (manifest's, else config's) and annotations."""
    artifact_type = manifest.get("artifactType")
    if not isinstance(artifact_type, str) or not artifact_type:
        config = manifest.get("config")
        artifact_type = config.get("mediaType") if isinstance(config, dict) else None
    annotations = manifest.get("annotations")
    if not (
        isinstance(annotations, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())
    ):
        annotations = None
    desc = Descriptor(
        media_type,
        digest,
        len(manifest_bytes),
        annotations=annotations or None,
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
    )
    return desc.to_json()


def attach_referrer(store: Store, manifest_bytes: bytes, media_type: str) -> str:
    """Store a manifest carrying ``subject`` and make it discoverable; returns its digest.

    The manifest is stored by digest (no tag). Without a native referrers API the fallback
    index is updated as distribution-spec 1.1 asks, with annotations copied.
    """
    return attach_referrers(store, [(manifest_bytes, media_type)])[0]


def attach_referrers(store: Store, manifests: list[tuple[bytes, str]]) -> list[str]:
    """Attach several referrers of the same subject with one update of the fallback index.

    Signing attaches two bundles at once; one read-modify-write (and one settle wait) instead
    of two halves the time a signature takes on registries without the referrers API.
    """
    limits = store.limits
    subjects: set[str] = set()
    parsed: list[tuple[bytes, str, dict[str, Any]]] = []
    for manifest_bytes, media_type in manifests:
        value = load_json(
            manifest_bytes, max_bytes=limits.manifest_bytes, depth=limits.json_depth, what="referrer manifest"
        )
        if not isinstance(value, dict):
            raise InputError("a referrer manifest must be a JSON object")
        if "subject" not in value:
            raise InputError("a referrer manifest needs a subject")
        subjects.add(Descriptor.from_json(value["subject"], "referrer subject").digest)
        parsed.append((manifest_bytes, media_type, value))
    if len(subjects) != 1:
        raise InputError("referrers attached together must share one subject")
    (subject,) = subjects
    digests = [store.put_manifest(data, media_type) for data, media_type, _ in parsed]
    if store.referrers_api(subject) is None:
        entries = [
            referrer_entry(data, media_type, digest, value)
            for (data, media_type, value), digest in zip(parsed, digests, strict=True)
        ]
        _update_fallback(store, subject, add=entries)
    return digests


def detach_referrer(store: Store, subject_digest: str, digest: str) -> bool:
    """Remove ``digest`` from the subject's fallback index; False if it was not listed there.

    Registries with a native API drop referrers when their manifest is deleted, so there is
    nothing to do there (False).
    """
    if store.referrers_api(subject_digest) is not None:
        return False
    return _update_fallback(store, subject_digest, remove=digest)
