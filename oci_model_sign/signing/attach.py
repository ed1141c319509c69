"""Attaching signatures to a model in a store, in the shapes cosign reads.

Two formats:

* bundle (cosign v3 default, ``specs/BUNDLE_SPEC.md``): the Sigstore bundle is the single layer
  of an OCI 1.1 referrer manifest whose ``subject`` is the signed manifest; registries without
  the referrers API get the ``sha256-<hex>`` fallback index (``store.referrers``);
* legacy: cosign's ``sha256-<hex>.sig`` tag holding one simple-signing layer per signature.

The manifest bytes come from ``oci.manifest`` (go-containerregistry's field order, so digests
match what cosign writes for the same content); this module stores them.
"""

from __future__ import annotations

import random
import time

from ..digest import sha256_digest
from ..errors import IntegrityError, NotFoundError, RegistryError
from ..limits import load_json
from ..oci.descriptor import Descriptor
from ..oci.manifest import LegacyLayer, bundle_referrer_manifest, legacy_manifest
from ..oci.mediatypes import (
    ANNOTATION_SIGNATURE,
    EMPTY_DIGEST,
    EMPTY_JSON,
    OCI_MANIFEST,
    SIMPLE_SIGNING_MEDIA_TYPE,
)
from ..reference import legacy_signature_tag
from ..store.base import BlobSource, Store
from ..store.referrers import attach_referrers


def attach_bundle(store: Store, subject: Descriptor, bundle: bytes, predicate_type: str) -> str:
    """Upload the bundle and its referrer manifest; returns the referrer manifest digest."""
    return attach_bundles(store, subject, [(bundle, predicate_type)])[0]


def attach_bundles(store: Store, subject: Descriptor, bundles: list[tuple[bytes, str]]) -> list[str]:
    """Upload several bundles of one subject; the fallback index is updated once for all."""
    store.push_blob(BlobSource(size=len(EMPTY_JSON), data=EMPTY_JSON, digest=EMPTY_DIGEST))
    manifests: list[tuple[bytes, str]] = []
    for bundle, predicate_type in bundles:
        store.push_blob(BlobSource(size=len(bundle), data=bundle, digest=sha256_digest(bundle)))
        manifests.append((bundle_referrer_manifest(bundle, subject, predicate_type), OCI_MANIFEST))
    return attach_referrers(store, manifests)


def read_legacy_layers(store: Store, subject_digest: str, suffix: str = "sig") -> list[LegacyLayer]:
    """The layers already under ``sha256-<hex>.sig`` (or ``.att``; [] when the tag does not exist)."""
    tag = legacy_signature_tag(subject_digest, suffix)
    try:
        data = store.get_manifest(tag).data
    except NotFoundError:
        return []
    value = load_json(data, max_bytes=store.limits.manifest_bytes, depth=store.limits.json_depth, what=f"{tag} manifest")
    if not isinstance(value, dict) or not isinstance(value.get("layers"), list):
        raise IntegrityError(f"the existing {tag} manifest is not an image manifest")
    layers: list[LegacyLayer] = []
    for i, raw in enumerate(value["layers"]):
        desc = Descriptor.from_json(raw, what=f"{tag} layer {i}")
        layers.append(LegacyLayer(desc.digest, desc.size, desc.media_type, dict(desc.annotations or {})))
    return layers


def attach_legacy(
    store: Store, subject_digest: str, payload: bytes, annotations: dict[str, str], attempts: int = 6
) -> str:
    """Append a simple-signing layer to the ``.sig`` tag, keeping every signature already there.

    Read-modify-write, re-checked after writing: a concurrent signer that overwrote our layer
    (or that we overwrote) is merged back in on the next round.
    """
    tag = legacy_signature_tag(subject_digest)
    new = LegacyLayer(sha256_digest(payload), len(payload), SIMPLE_SIGNING_MEDIA_TYPE, dict(annotations))
    store.push_blob(BlobSource(size=len(payload), data=payload, digest=new.digest))
    seen: dict[tuple[str, str], LegacyLayer] = {}
    for attempt in range(attempts):
        current = read_legacy_layers(store, subject_digest)
        for layer in current:
            seen.setdefault((layer.digest, layer.annotations.get(ANNOTATION_SIGNATURE, "")), layer)
        seen.setdefault((new.digest, new.annotations.get(ANNOTATION_SIGNATURE, "")), new)
        wanted = list(seen.values())
        if set(seen) == {(x.digest, x.annotations.get(ANNOTATION_SIGNATURE, "")) for x in current}:
            manifest_bytes, _ = legacy_manifest(current)
            return sha256_digest(manifest_bytes)
        if len(wanted) > 1000:
            raise RegistryError(f"{tag} already holds 1000 signatures, cosign's limit")
        manifest_bytes, config = legacy_manifest(wanted)
        store.push_blob(BlobSource(size=len(config), data=config, digest=sha256_digest(config)))
        store.put_manifest(manifest_bytes, OCI_MANIFEST, tag=tag)
        time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))
    raise RegistryError(
        f"could not add the signature to {tag}: other writers kept replacing it",
        hint="retry the command",
    )
