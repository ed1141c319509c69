"""cosign's legacy attestation form, produced from the signed bundle.

Signers know one thing: sign an in-toto statement into a Sigstore bundle (DSSE envelope,
verification material, transparency-log entry). The legacy ``sha256-<hex>.att`` form that
``cosign attest --new-bundle-format=false`` writes holds the same signature, only dressed
differently: the DSSE envelope is the layer blob, and the certificate and the Rekor entry move
into layer annotations. So this module turns a bundle into that layer, and no signer needs to
know about the legacy format, and the ``.att`` tag is updated here as cosign does
(read-modify-write, keeping every attestation already there).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..digest import sha256_digest
from ..errors import InputError, RegistryError
from ..oci.manifest import LegacyLayer, legacy_manifest
from ..oci.mediatypes import (
    ANNOTATION_BUNDLE,
    ANNOTATION_CERTIFICATE,
    ANNOTATION_CHAIN,
    ANNOTATION_SIGNATURE,
    DSSE_ENVELOPE_MEDIA_TYPE,
    OCI_MANIFEST,
)
from ..reference import legacy_signature_tag
from ..store.base import BlobSource, Store
from .attach import read_legacy_layers

LEGACY_PREDICATE_ANNOTATION = "predicateType"


def _pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode("ascii")


def _rekor_annotation(entry: dict[str, Any]) -> str | None:
    """cosign's ``RekorBundle`` JSON (Go field names, no tags) from a bundle's tlog entry."""
    promise = entry.get("inclusionPromise")
    if not isinstance(promise, dict) or "integratedTime" not in entry:
        return None  # a Rekor v2 entry has no SET; the legacy form cannot carry it
    doc = {
        "SignedEntryTimestamp": promise["signedEntryTimestamp"],
        "Payload": {
            "body": entry["canonicalizedBody"],
            "integratedTime": int(entry["integratedTime"]),
            "logIndex": int(entry["logIndex"]),
            "logID": base64.b64decode(entry["logId"]["keyId"]).hex(),
        },
    }
    return json.dumps(doc, separators=(",", ":"))


def legacy_attestation_layer(
    bundle: bytes, predicate_type: str, chain: list[x509.Certificate] | None = None
) -> tuple[bytes, dict[str, str]]:
    """(DSSE envelope JSON, layer annotations) of cosign's ``.att`` layer for a signed bundle."""
    try:
        doc = json.loads(bundle)
        envelope = doc["dsseEnvelope"]
        material = doc["verificationMaterial"]
        envelope_json = json.dumps(
            {"payload": envelope["payload"], "payloadType": envelope["payloadType"],
             "signatures": [{"sig": s["sig"]} for s in envelope["signatures"]]},
            separators=(",", ":"),
        ).encode("ascii")
        annotations = {ANNOTATION_SIGNATURE: "", LEGACY_PREDICATE_ANNOTATION: predicate_type}
        cert = material.get("certificate")
        if isinstance(cert, dict):
            annotations[ANNOTATION_CERTIFICATE] = _pem(base64.b64decode(cert["rawBytes"]))
            annotations[ANNOTATION_CHAIN] = "".join(
                c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in chain or []
            )
        for entry in material.get("tlogEntries") or []:
            rekor = _rekor_annotation(entry)
            if rekor is not None:
                annotations[ANNOTATION_BUNDLE] = rekor
                break
        else:
            if material.get("tlogEntries"):
                raise InputError(
                    "the transparency-log entry has no signed entry timestamp (Rekor v2), which "
                    "cosign's legacy attestation form cannot carry",
                    hint="attest with the default --format bundle",
                )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise InputError(f"the signer returned a bundle omsign cannot convert: {exc}") from exc
    return envelope_json, annotations


def attestation_tag(subject_digest: str) -> str:
    return legacy_signature_tag(subject_digest, "att")


def attach_legacy_attestation(
    store: Store,
    subject_digest: str,
    envelope: bytes,
    annotations: dict[str, str],
    *,
    replace: bool = False,
    attempts: int = 6,
) -> tuple[str, int]:
    """Add the layer to ``sha256-<hex>.att``, keeping what is there; returns (manifest digest, replaced).

    ``replace`` drops the layers of the same predicate type first, as ``cosign attest
    --replace`` does: the legacy form names no signer that could be compared without a key.
    """
    tag = attestation_tag(subject_digest)
    ptype = annotations.get(LEGACY_PREDICATE_ANNOTATION)
    new = LegacyLayer(sha256_digest(envelope), len(envelope), DSSE_ENVELOPE_MEDIA_TYPE, dict(annotations))
    store.push_blob(BlobSource(size=len(envelope), data=envelope, digest=new.digest))
    for attempt in range(attempts):
        current = read_legacy_layers(store, subject_digest, "att")
        kept = [
            x for x in current
            if not (replace and x.annotations.get(LEGACY_PREDICATE_ANNOTATION) == ptype and x.digest != new.digest)
        ]
        replaced = len(current) - len(kept)
        if not any(x.digest == new.digest for x in kept):
            kept.append(new)
        if len(kept) > 1000:
            raise RegistryError(f"{tag} already holds 1000 attestations, cosign's limit")
        if [x.digest for x in kept] == [x.digest for x in current]:
            manifest_bytes, _ = legacy_manifest(current)
            return sha256_digest(manifest_bytes), 0
        manifest_bytes, config = legacy_manifest(kept)
        store.push_blob(BlobSource(size=len(config), data=config, digest=sha256_digest(config)))
        store.put_manifest(manifest_bytes, OCI_MANIFEST, tag=tag)
        time.sleep(random.uniform(0.005, 0.02))
        after = read_legacy_layers(store, subject_digest, "att")
        if any(x.digest == new.digest for x in after):
            return sha256_digest(manifest_bytes), replaced
        time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))
    raise RegistryError(f"could not add the attestation to {tag}: other writers kept replacing it", hint="retry the command")
