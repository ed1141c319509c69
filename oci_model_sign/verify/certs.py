"""X.509: certificate chains (as Go's ``crypto/x509`` validates them for cosign) and the
identity (SAN) and OIDC issuer a certificate names.

Chains are built and path-validated by cryptography's RFC 5280 verifier (``PolicyBuilder``):
signatures, validity at the signing time, basic constraints, **path length** and **name
constraints**. On top, the extended-key-usage rule of Go's ``Certificate.Verify`` with
``KeyUsages: [CodeSigning]``: every certificate in the chain that carries an EKU must allow
code signing (or any usage), so an intermediate limited to, say, TLS server use cannot issue
code-signing leaves. A certificate without an EKU allows every usage, as in Go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import VerificationError as X509VerificationError

from ..signing.certfiles import parse_certificates
from ..signing.certfiles import (
    read_certificates as read_certificates,  # the verifier reads CA files the same way
)
from .regexp import re2_search
from .rejection import CandidateRejected

OIDC_ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OIDC_ISSUER_V1_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OTHERNAME_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")


def load_certificates(data: bytes, what: str) -> list[x509.Certificate]:
    """All certificates in a PEM bundle (or one DER certificate) a signature carries."""
    try:
        return parse_certificates(data)
    except ValueError as exc:
        raise CandidateRejected(f"{what} is not a valid certificate") from exc


def _eku(cert: x509.Certificate) -> x509.ExtendedKeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _allows_code_signing(eku: x509.ExtendedKeyUsage) -> bool:
    return ExtendedKeyUsageOID.CODE_SIGNING in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku


def verify_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: list[x509.Certificate],
    at: datetime,
    *,
    require_eku: bool = True,
) -> list[x509.Certificate]:
    """Path-validate ``leaf`` to one of ``roots`` at time ``at``; returns the chain above it.

    With ``require_eku`` False a leaf without any EKU is accepted, as Go's x509 (cosign's
    ``--ca-roots`` path) treats it as valid for every usage; a leaf whose EKU lacks
    codeSigning is always rejected, and so is a chain certificate whose EKU lacks it.
    """
    if not roots:
        raise CandidateRejected("no trusted root certificates to chain to")
    # Key usage may be absent (BYO-PKI CAs often omit it; cosign does not require it); when
    # the leaf has one it must allow digital signatures (checked below). The EKU is checked
    # below too, over the built chain, with Go's nesting rule.
    ca_policy = (
        ExtensionPolicy.webpki_defaults_ca()
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, None)
    )
    ee_policy = (
        ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, None)
    )
    verifier = (
        PolicyBuilder()
        .store(Store(roots))
        .time(at)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        chain = verifier.verify(leaf, intermediates).chain
    except (X509VerificationError, x509.UnsupportedGeneralNameType, ValueError) as exc:
        raise CandidateRejected(
            f"certificate does not chain to a trusted root at {at:%Y-%m-%dT%H:%M:%SZ}: {exc}"
        ) from exc
    eku = _eku(leaf)
    if eku is None:
        if require_eku:
            raise CandidateRejected("certificate has no extended key usage (codeSigning required)")
    elif not _allows_code_signing(eku):
        raise CandidateRejected("certificate is not valid for code signing (no codeSigning EKU)")
    for ca in chain[1:]:
        ca_eku = _eku(ca)
        if ca_eku is not None and not _allows_code_signing(ca_eku):
            raise CandidateRejected(
                f"issuing CA {ca.subject.rfc4514_string() or '(empty subject)'} is not allowed to "
                "issue code-signing certificates (its extended key usage excludes codeSigning)"
            )
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        raise CandidateRejected("certificate key usage does not allow digital signatures")
    return list(chain[1:])


def certificate_sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    values: list[str] = list(san.get_values_for_type(x509.RFC822Name))
    values += san.get_values_for_type(x509.UniformResourceIdentifier)
    values += san.get_values_for_type(x509.DNSName)
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == _OTHERNAME_OID:
            values.append(_der_utf8(other.value))
    return values


def _der_utf8(value: bytes) -> str:
    # A DER UTF8String (tag 0x0c) with a short or long length; otherwise the raw text.
    if len(value) >= 2 and value[0] == 0x0C:
        n = value[1]
        start = 2
        if n & 0x80:
            width = n & 0x7F
            n = int.from_bytes(value[2 : 2 + width], "big")
            start = 2 + width
        return value[start : start + n].decode("utf-8", "replace")
    return value.decode("utf-8", "replace")


def certificate_issuer(cert: x509.Certificate) -> str | None:
    """The OIDC issuer Fulcio recorded: extension .1.8 (DER UTF8String), else legacy .1.1 (raw)."""
    for oid, der in ((OIDC_ISSUER_V2_OID, True), (OIDC_ISSUER_V1_OID, False)):
        try:
            ext = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = bytes(getattr(ext, "value", b""))
        return _der_utf8(raw) if der else raw.decode("utf-8", "replace")
    return None


def describe_certificate(cert: x509.Certificate) -> str:
    sans = certificate_sans(cert)
    who = sans[0] if sans else cert.subject.rfc4514_string() or "<no identity>"
    issuer = certificate_issuer(cert)
    return f"{who} ({issuer})" if issuer else who


@dataclass(frozen=True)
class IdentityMatcher:
    """SAN and OIDC-issuer checks; a sigstore-python ``VerificationPolicy`` too.

    Regular expressions are Go RE2, *searched*, not anchored, as Go's ``regexp.MatchString``
    does for cosign's ``--certificate-identity-regexp``; anchor them (``^…$``) for an exact
    match.
    """

    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None

    def check(self, cert: x509.Certificate) -> None:
        """Raise ``CandidateRejected`` when ``cert`` is not the expected identity/issuer."""
        if self.issuer is not None or self.issuer_regexp is not None:
            # Like cosign, a certificate without the issuer extension has the issuer "".
            got_issuer = certificate_issuer(cert) or ""
            if self.issuer is not None and not got_issuer:
                raise CandidateRejected(f"certificate records no OIDC issuer, expected {self.issuer!r}")
            if self.issuer is not None and got_issuer != self.issuer:
                raise CandidateRejected(f"certificate issuer is {got_issuer!r}, expected {self.issuer!r}")
            if self.issuer_regexp is not None and not re2_search(
                self.issuer_regexp, got_issuer, "--certificate-oidc-issuer-regexp"
            ):
                raise CandidateRejected(
                    f"certificate issuer {got_issuer!r} does not match /{self.issuer_regexp}/"
                )
        if self.identity is None and self.identity_regexp is None:
            return
        sans = certificate_sans(cert)
        if self.identity is not None and self.identity in sans:
            return
        regexp = self.identity_regexp
        if regexp is not None and any(re2_search(regexp, s, "--certificate-identity-regexp") for s in sans):
            return
        wanted = self.identity if self.identity is not None else f"/{self.identity_regexp}/"
        raise CandidateRejected(f"certificate identity {sans or '(none)'} does not match {wanted}")

    def verify(self, cert: x509.Certificate) -> None:
        """The sigstore-python ``VerificationPolicy`` protocol."""
        from sigstore.errors import VerificationError as SigstoreVerificationError

        try:
            self.check(cert)
        except CandidateRejected as exc:
            raise SigstoreVerificationError(str(exc)) from exc
