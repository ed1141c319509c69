"""Verify one legacy cosign "simple signing" signature (a layer of a ``.sig`` manifest).

The layer blob is the signed payload; its descriptor annotations carry the signature, and
optionally a certificate, chain and Rekor bundle (SET). This mirrors ``cosign verify`` on the
legacy path: the signature covers the exact payload bytes, only
``critical.image.docker-manifest-digest`` is checked (``docker-reference`` is ignored, and
``critical.type`` only on request), and ``-a`` annotations are matched against ``optional``.

sigstore-python cannot verify this format (it has no bundle, and 2021 entries are ``rekord``
with certificates lacking SCTs), so the Rekor SET, entry-body consistency, Fulcio chain (at the
integrated time), SCT and identity are checked here with ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime, timezone
from typing import Any

from cryptography import x509

from ..errors import OmsignError
from ..limits import default_limits, load_json
from ..oci.mediatypes import (
    ANNOTATION_BUNDLE,
    ANNOTATION_CERTIFICATE,
    ANNOTATION_CHAIN,
    ANNOTATION_SIGNATURE,
    SIMPLE_SIGNING_MEDIA_TYPE,
    SIMPLE_SIGNING_TYPE,
)
from ..signing.keys import PublicKey
from ..signing.keys import verify_bytes_signature as signature_is_valid
from ..sigstore_seam import verify_sct
from .certs import describe_certificate, load_certificates, verify_chain
from .policy import (
    CertificateChainPolicy,
    IdentityPolicy,
    KeyPolicy,
    Policy,
    check_claim_annotations,
)
from .records import Material, UntrustedRecord, simple_signing_claims
from .rejection import CandidateRejected
from .result import CandidateResult
from .tlog import TLOG_HINT, RekorEntry, check_rekor_body, verify_set


def b64decode_lenient(value: str, what: str) -> bytes:
    """Standard base64, tolerating the line wrapping some tools (openssl) put in annotations."""
    cleaned = "".join(value.split())
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CandidateRejected(f"{what} is not valid base64") from exc


def _rekor_bundle(annotations: dict[str, str]) -> RekorEntry | None:
    raw = annotations.get(ANNOTATION_BUNDLE)
    if not raw:
        return None
    limits = default_limits()
    try:
        doc = load_json(raw.encode(), max_bytes=limits.bundle_bytes, depth=limits.json_depth, what="Rekor bundle annotation")
    except OmsignError as exc:
        raise CandidateRejected(exc.message) from exc
    try:
        assert isinstance(doc, dict)
        p = doc["Payload"]
        return RekorEntry(
            body=b64decode_lenient(str(p["body"]), "Rekor entry body"),
            integrated_time=int(p["integratedTime"]),
            log_id_hex=str(p["logID"]).lower(),
            log_index=int(p["logIndex"]),
            signed_entry_timestamp=b64decode_lenient(str(doc["SignedEntryTimestamp"]), "Rekor SET"),
        )
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise CandidateRejected("Rekor bundle annotation is malformed") from exc


def _tlog_time(annotations: dict[str, str], root: Any, payload: bytes, sig: bytes, key: PublicKey) -> int:
    entry = _rekor_bundle(annotations)
    if entry is None:
        raise CandidateRejected(f"signature has no transparency log bundle (Rekor SET): {TLOG_HINT}")
    verify_set(entry, root)
    check_rekor_body(entry.body, payload_sha256=hashlib.sha256(payload).hexdigest(), signature=sig, verifier=key)
    return entry.integrated_time


def _certificates(annotations: dict[str, str]) -> tuple[x509.Certificate, list[x509.Certificate]]:
    pem = annotations.get(ANNOTATION_CERTIFICATE)
    if not pem:
        raise CandidateRejected("signature has no certificate annotation (expected a certificate-based signature)")
    leaf = load_certificates(pem.encode(), "certificate annotation")
    if len(leaf) != 1:
        raise CandidateRejected("certificate annotation must hold exactly one certificate")
    chain_pem = annotations.get(ANNOTATION_CHAIN) or ""
    chain = load_certificates(chain_pem.encode(), "chain annotation") if chain_pem.strip() else []
    return leaf[0], chain


def _check_sct(cert: x509.Certificate, chain: list[x509.Certificate], root: Any, ignore_sct: bool) -> None:
    try:
        cert.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps)
    except x509.ExtensionNotFound:
        if ignore_sct:
            return
        raise CandidateRejected(
            "certificate has no embedded SCT (certificates before 2022 lack one; the API's ignore_sct=True accepts them)"
        ) from None
    try:
        verify_sct(cert, chain, root)
    except Exception as exc:  # sigstore raises VerificationError and friends
        raise CandidateRejected(f"certificate SCT does not verify: {exc}") from exc


def _verify_keyless(
    payload: bytes, sig: bytes, annotations: dict[str, str], policy: IdentityPolicy
) -> tuple[str, int | None]:
    leaf, chain = _certificates(annotations)
    key: Any = leaf.public_key()
    root = policy.root()
    # A keyless certificate lives minutes: the SET's integrated time is the signing time.
    when = _tlog_time(annotations, root, payload, sig, key)
    fulcio = list(root.get_fulcio_certs())
    roots = [c for c in fulcio if c.subject == c.issuer]
    intermediates = [c for c in fulcio if c.subject != c.issuer]
    verified_chain = verify_chain(leaf, chain + intermediates, roots, datetime.fromtimestamp(when, tz=timezone.utc))
    _check_sct(leaf, verified_chain, root, policy.ignore_sct)
    policy.matcher().check(leaf)
    if not signature_is_valid(key, sig, payload):
        raise CandidateRejected("signature does not verify with the certificate's key")
    return describe_certificate(leaf), when


def _verify_cert_chain(
    payload: bytes, sig: bytes, annotations: dict[str, str], policy: CertificateChainPolicy
) -> tuple[str, int | None]:
    leaf, chain = _certificates(annotations)
    key: Any = leaf.public_key()
    when = None if policy.ignore_tlog else _tlog_time(annotations, policy.root(), payload, sig, key)
    at = datetime.fromtimestamp(when, tz=timezone.utc) if when else datetime.now(timezone.utc)
    verify_chain(leaf, chain + policy.intermediates(), policy.roots(), at, require_eku=False)
    policy.matcher().check(leaf)
    if not signature_is_valid(key, sig, payload):
        raise CandidateRejected("signature does not verify with the certificate's key")
    return describe_certificate(leaf), when


def _verify_key(payload: bytes, sig: bytes, annotations: dict[str, str], policy: KeyPolicy) -> tuple[str, int | None]:
    key = policy.key()
    if not signature_is_valid(key, sig, payload):
        raise CandidateRejected("signature does not verify with the given public key")
    when = None if policy.ignore_tlog else _tlog_time(annotations, policy.root(), payload, sig, key)
    return policy.fingerprint(), when


def _claims(payload: bytes, subject_digest: str, require_type: bool) -> dict[str, Any]:
    limits = default_limits()
    try:
        doc = load_json(payload, max_bytes=limits.signature_payload_bytes, depth=limits.json_depth, what="simple signing payload")
    except OmsignError as exc:
        raise CandidateRejected(f"payload is not a simple signing document: {exc.message}") from exc
    critical = doc.get("critical") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(critical, dict):
        raise CandidateRejected("payload is not a simple signing document (no 'critical' section)")
    image = critical.get("image")
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(digest, str):
        raise CandidateRejected("payload has no critical.image.docker-manifest-digest")
    if digest != subject_digest:
        raise CandidateRejected(f"signed another artifact: {digest[:80]} (expected {subject_digest})")
    if require_type and critical.get("type") != SIMPLE_SIGNING_TYPE:
        raise CandidateRejected(f"critical.type is {str(critical.get('type'))[:80]!r}, expected {SIMPLE_SIGNING_TYPE!r}")
    return doc


def parse_legacy_record(payload: bytes, annotations: dict[str, str], source: str) -> UntrustedRecord:
    """What one ``.sig`` layer claims (signer material, the digest it names, a Rekor bundle),
    before anything is checked."""
    claimed: str | None = None
    material: Material = "public-key"
    pem = annotations.get(ANNOTATION_CERTIFICATE)
    if pem:
        material = "certificate-chain" if (annotations.get(ANNOTATION_CHAIN) or "").strip() else "certificate"
        try:
            certs = load_certificates(pem.encode(), "certificate annotation")
            claimed = describe_certificate(certs[0]) if certs else None
        except CandidateRejected:
            claimed = None
    doc, subjects = simple_signing_claims(payload)
    return UntrustedRecord(
        source=source, format="legacy", material=material, claimed_signer=claimed,
        payload_type=SIMPLE_SIGNING_MEDIA_TYPE, payload=payload, statement=doc,
        subject_digests=subjects, tlog_entries=1 if annotations.get(ANNOTATION_BUNDLE) else 0,
        annotations=dict(annotations),
    )


def verify_simple_signing(
    payload: bytes,
    annotations: dict[str, str],
    subject_digest: str,
    policy: Policy,
    *,
    source: str,
    media_type: str | None = None,
    require_type: bool = False,
) -> CandidateResult:
    """One legacy ``.sig`` layer (payload blob + descriptor annotations) for ``subject_digest``.

    ``media_type`` (the layer's), when given, must be the simple-signing type. Never raises for
    bad input: the returned reason says what failed.
    """
    signer: str | None = None
    try:
        if media_type is not None and media_type != SIMPLE_SIGNING_MEDIA_TYPE:
            raise CandidateRejected(f"layer media type {media_type[:80]!r} is not a cosign simple signing payload")
        limit = default_limits().signature_payload_bytes
        if len(payload) > limit:
            raise CandidateRejected(f"payload is {len(payload)} bytes, over the limit of {limit}")
        encoded = annotations.get(ANNOTATION_SIGNATURE)
        if not encoded:
            raise CandidateRejected(f"layer has no {ANNOTATION_SIGNATURE} annotation")
        sig = b64decode_lenient(encoded, "signature annotation")
        record = parse_legacy_record(payload, annotations, source)
        when: int | None
        if isinstance(policy, KeyPolicy):
            signer, when = _verify_key(record.payload, sig, annotations, policy)
        elif isinstance(policy, IdentityPolicy):
            signer, when = _verify_keyless(payload, sig, annotations, policy)
        elif isinstance(policy, CertificateChainPolicy):
            signer, when = _verify_cert_chain(payload, sig, annotations, policy)
        else:
            raise CandidateRejected(f"unsupported policy {type(policy).__name__}")
        doc = _claims(payload, subject_digest, require_type)
        optional = doc.get("optional")
        check_claim_annotations(policy.annotations, optional, "payload's optional section")
        shown = {str(k): v if isinstance(v, str) else str(v) for k, v in optional.items()} if isinstance(optional, dict) else {}
        return CandidateResult(source, True, "verified", signer, None, shown, "legacy", signed_at=when)
    except CandidateRejected as exc:
        return CandidateResult(source, False, str(exc), signer, None, {}, "legacy")
    except OmsignError:
        raise
    except Exception as exc:  # defensive: never let one layer stop the others
        return CandidateResult(source, False, f"unexpected error checking this signature: {type(exc).__name__}: {exc}", signer, None, {}, "legacy")
