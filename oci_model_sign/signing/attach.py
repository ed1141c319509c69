"""Attaching signatures to a model in a store, in the shapes cosign reads.

Two formats:

* bundle (cosign v3 default, ``specs/BUNDLE_SPEC.md``): the Sigstore bundle is the single layer
  of an OCI 1.1 referrer manifest whose ``subject`` is the signed manifest; registries without
  the referrers API get the ``sha256-<hex>`` fallback index (``store.referrers``);
* legacy: cosign's ``sha256-<hex>.sig`` tag holding one simple-signing layer per signature.

Manifest bytes follow go-containerregistry's field order so digests match what cosign writes
for the same content.
"""

from __future__ import annotations

import datetime as _dt
import json
import random
import time
from dataclasses import dataclass
from typing import Any

from ..digest import sha256_digest
from ..errors import IntegrityError, NotFoundError, RegistryError
from ..limits import load_json
from ..reference import legacy_signature_tag
from ..store.base import (
    EMPTY_DIGEST,
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_MANIFEST,
    BlobSource,
    Descriptor,
    Store,
)
from ..store.referrers import attach_referrers

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"
ANNOTATION_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_PREDICATE = "dev.sigstore.bundle.predicateType"
ANNOTATION_CREATED = "org.opencontainers.image.created"
SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"
CERT_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"

COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
MODEL_SIGNING_PREDICATE = "https://model_signing/signature/v1.0"


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _now_rfc3339() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def bundle_referrer_manifest(
    bundle: bytes, subject: Descriptor, predicate_type: str, created: str | None = None
) -> bytes:
    """The referrer manifest cosign v3 writes for a bundle (notes §2.5), byte for byte."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_EMPTY,
            "size": len(EMPTY_JSON),
            "digest": EMPTY_DIGEST,
            "artifactType": BUNDLE_MEDIA_TYPE,
        },
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "size": len(bundle), "digest": sha256_digest(bundle)}],
        "annotations": {
            ANNOTATION_CONTENT: "dsse-envelope",
            ANNOTATION_PREDICATE: predicate_type,
            ANNOTATION_CREATED: created or _now_rfc3339(),
        },
        "subject": {"mediaType": subject.media_type, "size": subject.size, "digest": subject.digest},
        "artifactType": BUNDLE_MEDIA_TYPE,
    }
    return _compact(manifest)


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


@dataclass(frozen=True)
class LegacyLayer:
    """One signature in a ``.sig`` manifest: its payload descriptor and annotations."""

    digest: str
    size: int
    media_type: str
    annotations: dict[str, str]


def legacy_config(layers: list[LegacyLayer]) -> bytes:
    """ggcr ``empty.Image`` + ``mutate.Append`` config: one history entry and diff_id per layer."""
    zero = "0001-01-01T00:00:00Z"
    config = {
        "architecture": "",
        "created": zero,
        "history": [{"created": zero} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "config": {},
    }
    return _compact(config)


def legacy_manifest(layers: list[LegacyLayer]) -> tuple[bytes, bytes]:
    """(manifest bytes, config bytes) of a cosign ``.sig`` artifact in ggcr field order."""
    config = legacy_config(layers)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": sha256_digest(config)},
        "layers": [
            {
                "mediaType": layer.media_type,
                "size": layer.size,
                "digest": layer.digest,
                "annotations": dict(sorted(layer.annotations.items())),
            }
            for layer in layers
        ],
    }
    return _compact(manifest), config


def read_legacy_layers(store: Store, subject_digest: str) -> list[LegacyLayer]:
    """The signatures already under ``sha256-<hex>.sig`` ([] when the tag does not exist)."""
    tag = legacy_signature_tag(subject_digest)
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
            seen.setdefault((layer.digest, layer.annotations.get(SIG_ANNOTATION, "")), layer)
        seen.setdefault((new.digest, new.annotations.get(SIG_ANNOTATION, "")), new)
        wanted = list(seen.values())
        if set(seen) == {(x.digest, x.annotations.get(SIG_ANNOTATION, "")) for x in current}:
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
