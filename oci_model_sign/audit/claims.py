"""What a signature *says* about itself: signer, time and predicate type, read without trust.

An audit reports every signature a model carries, including ones no policy authority can
verify (a key nobody passed, an identity nobody trusts): those are exactly the ones an
incident responder wants to see. So the bundle is read here as plain JSON, under the usual
byte and depth limits, and nothing in a ``SignatureClaim`` is believed until the verifier
(``verify.discover``) has checked the same candidate against a policy authority; the report
says which claims were verified and by which authority.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from ..errors import OmsignError
from ..limits import Limits, load_json
from ..oci.mediatypes import ANNOTATION_BUNDLE, ANNOTATION_CERTIFICATE, ANNOTATION_PREDICATE

ClaimKind = Literal["key", "keyless", "x509", "unknown"]
TimeSource = Literal["tlog", "tsa"]


@dataclass
class SignatureClaim:
    """One signature candidate as its bytes describe it (untrusted until ``verified_by``)."""

    source: str  # the verifier's name for the candidate: "referrer sha256:…", "<tag> layer 0"
    format: str  # "bundle" or "legacy"
    kind: ClaimKind = "unknown"
    fingerprint: str | None = None  # sha256:<hex> of the DER SPKI (key hint, or the certificate's key)
    identity: str | None = None
    issuer: str | None = None
    signed_at: datetime | None = None
    time_source: TimeSource | None = None
    predicate_type: str | None = None
    verified_by: list[str] = field(default_factory=list)  # policy authorities that verified it
    error: str | None = None  # why the claim could not be read (still reported)

    @property
    def verified(self) -> bool:
        return bool(self.verified_by)

    def signer_text(self) -> str:
        if self.kind == "key":
            return f"key {self.fingerprint or '(unknown key)'}"
        if self.identity is not None:
            return f"{self.identity} ({self.issuer})" if self.issuer else self.identity
        return self.fingerprint or "(unknown signer)"


def _b64(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        return None


def _utc_from_epoch(value: object) -> datetime | None:
    try:
        seconds = int(str(value))
    except ValueError:
        return None
    if seconds <= 0 or seconds > 32503680000:  # year 3000: anything later is junk
        return None
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _certificate_claim(claim: SignatureClaim, der: bytes) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from ..verify.certs import certificate_issuer, certificate_sans

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        claim.error = "certificate is not valid DER"
        return
    sans = certificate_sans(cert)
    claim.identity = sans[0] if sans else None
    claim.issuer = certificate_issuer(cert)
    claim.kind = "keyless" if claim.issuer is not None else "x509"
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    claim.fingerprint = "sha256:" + hashlib.sha256(spki).hexdigest()


def _tsa_time(token: bytes) -> datetime | None:
    try:
        from rfc3161_client import decode_timestamp_response

        when = decode_timestamp_response(token).tst_info.gen_time
    except Exception:  # a junk token is a claim we cannot read, not a failure of the audit
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def parse_bundle_claim(data: bytes, source: str, limits: Limits, annotations: dict[str, str] | None = None) -> SignatureClaim:
    """Read signer, time and predicate type from a Sigstore bundle (v0.1–v0.3), never raising.

    Time: the first tlog entry's integrated time; else the first RFC 3161 timestamp's
    ``genTime``. Predicate type: the DSSE statement's, else the referrer's annotation.
    """
    claim = SignatureClaim(source=source, format="bundle")
    claim.predicate_type = (annotations or {}).get(ANNOTATION_PREDICATE)
    try:
        doc = load_json(data, max_bytes=limits.bundle_bytes, depth=limits.json_depth, what="bundle")
    except OmsignError as exc:
        claim.error = exc.one_line()
        return claim
    if not isinstance(doc, dict):
        claim.error = "bundle is not a JSON object"
        return claim
    vm = doc.get("verificationMaterial")
    vm = vm if isinstance(vm, dict) else {}
    cert_der: bytes | None = None
    if isinstance(vm.get("certificate"), dict):
        cert_der = _b64(vm["certificate"].get("rawBytes"))
    chain = vm.get("x509CertificateChain")
    if cert_der is None and isinstance(chain, dict) and isinstance(chain.get("certificates"), list) and chain["certificates"]:
        first = chain["certificates"][0]
        cert_der = _b64(first.get("rawBytes")) if isinstance(first, dict) else None
    if cert_der is not None:
        _certificate_claim(claim, cert_der)
    elif isinstance(vm.get("publicKey"), dict):
        claim.kind = "key"
        hint = _b64(vm["publicKey"].get("hint"))
        # cosign's hint is base64(sha256(DER SPKI)); model-signing's (hex of the PEM's
        # sha256) names the same key in another way and is left out.
        if hint is not None and len(hint) == 32:
            claim.fingerprint = "sha256:" + hint.hex()
    entries = vm.get("tlogEntries")
    if isinstance(entries, list):
        for entry in entries:
            when = _utc_from_epoch(entry.get("integratedTime")) if isinstance(entry, dict) else None
            if when is not None:
                claim.signed_at, claim.time_source = when, "tlog"
                break
    tsv = vm.get("timestampVerificationData")
    stamps = tsv.get("rfc3161Timestamps") if isinstance(tsv, dict) else None
    if claim.signed_at is None and isinstance(stamps, list):
        for stamp in stamps:
            token = _b64(stamp.get("signedTimestamp")) if isinstance(stamp, dict) else None
            when = _tsa_time(token) if token else None
            if when is not None:
                claim.signed_at, claim.time_source = when, "tsa"
                break
    envelope = doc.get("dsseEnvelope")
    payload = _b64(envelope.get("payload")) if isinstance(envelope, dict) else None
    if payload is not None:
        try:
            statement = load_json(payload, max_bytes=limits.bundle_bytes, depth=limits.json_depth, what="statement")
        except OmsignError:
            statement = None
        if isinstance(statement, dict) and isinstance(statement.get("predicateType"), str):
            claim.predicate_type = statement["predicateType"]
    return claim


def parse_legacy_claim(annotations: dict[str, str], source: str) -> SignatureClaim:
    """A ``.sig`` layer: its certificate and Rekor bundle annotations (a key layer has neither)."""
    claim = SignatureClaim(source=source, format="legacy", kind="key")
    cert_pem = annotations.get(ANNOTATION_CERTIFICATE)
    if cert_pem:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            der = x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)
        except ValueError:
            claim.error = "certificate annotation is not a PEM certificate"
        else:
            _certificate_claim(claim, der)
    rekor = annotations.get(ANNOTATION_BUNDLE)
    if rekor:
        try:
            value: Any = json.loads(rekor)
        except ValueError:
            value = None
        payload = value.get("Payload") if isinstance(value, dict) else None
        when = _utc_from_epoch(payload.get("integratedTime")) if isinstance(payload, dict) else None
        if when is not None:
            claim.signed_at, claim.time_source = when, "tlog"
    return claim
