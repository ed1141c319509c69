"""Verification policies, and the trust material and crypto checks they stand for.

A policy says *who* must have signed (a key, a Sigstore identity, a certificate from a given CA)
and *what else* must hold (``-a`` annotations, a transparency-log entry). It is built once from
CLI flags and then applied to every candidate; nothing here touches the network unless an
``IdentityPolicy`` is asked for the production trust root with ``offline=False`` (a TUF
refresh, exactly as sigstore-python does it).

The primitives used by both bundle and legacy verification live here too (signature checks
accepting what cosign accepts, Rekor SET checks, certificate chains, identity matching),
because they are the meaning of the policies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import VerificationError as X509VerificationError

from ..errors import InputError, UsageError

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

OIDC_ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OIDC_ISSUER_V1_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OTHERNAME_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")

PRODUCTION_TUF_URL = "https://tuf-repo-cdn.sigstore.dev"
STAGING_TUF_URL = "https://tuf-repo-cdn.sigstage.dev"


class CandidateRejected(Exception):
    """One candidate failed a check; the message is the user-facing reason.

    Internal to verification: every per-candidate entry point turns it into a failed
    ``CandidateResult`` so one bad signature never stops the others being tried.
    """


# --------------------------------------------------------------------------------------------
# Keys and signatures
# --------------------------------------------------------------------------------------------


def load_public_key(source: str | Path | bytes | PublicKey) -> PublicKey:
    """A verifying key from a PEM/DER file, PEM/DER bytes, or an already loaded key.

    Accepts PEM ``PUBLIC KEY`` (PKIX) and ``RSA PUBLIC KEY`` (PKCS#1), like cosign's
    ``cryptoutils.UnmarshalPEMToPublicKey``.
    """
    if isinstance(source, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return source
    if isinstance(source, bytes):
        data, what = source, "public key"
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read public key {path}: {exc.strerror}") from exc
        what = f"public key {path}"
    key: Any
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(
            f"{what} is not a PEM or DER public key",
            hint="pass the .pub file written by `omsign generate-key-pair` or `cosign generate-key-pair`",
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise InputError(f"{what} has an unsupported type {type(key).__name__}")
    return key


def key_fingerprint(key: PublicKey) -> str:
    """``sha256:<hex>`` of the DER SubjectPublicKeyInfo (the same bytes cosign's hint hashes)."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


_CURVE_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def _p1363_to_der(signature: bytes, key: ec.EllipticCurvePublicKey) -> bytes | None:
    size = (key.curve.key_size + 7) // 8
    if len(signature) != 2 * size:
        return None
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    return encode_dss_signature(r, s)


def signature_is_valid(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` over ``data`` verifies, accepting what sigstore-go accepts.

    ECDSA: the curve's default hash (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512) and, like
    cosign's ``--signature-digest-algorithm`` default, SHA-256; DER or IEEE-P1363 ``r||s``.
    RSA: PKCS#1 v1.5 with SHA-256. Ed25519: pure Ed25519 (cosign's verifier).
    """
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            algs: list[type[hashes.HashAlgorithm]] = [_CURVE_HASH.get(key.curve.name, hashes.SHA256)]
            if hashes.SHA256 not in algs:
                algs.append(hashes.SHA256)
            encodings = [signature]
            alt = _p1363_to_der(signature, key)
            if alt is not None:
                encodings.append(alt)
            for alg in algs:
                for sig in encodings:
                    try:
                        key.verify(sig, data, ec.ECDSA(alg()))
                        return True
                    except InvalidSignature:
                        continue
            return False
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            return True
        key.verify(signature, data)
        return True
    except (InvalidSignature, ValueError):
        return False


def b64decode_lenient(value: str, what: str) -> bytes:
    """Standard base64, tolerating the line wrapping some tools (openssl) put in annotations."""
    cleaned = "".join(value.split())
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CandidateRejected(f"{what} is not valid base64") from exc


# --------------------------------------------------------------------------------------------
# Trust roots
# --------------------------------------------------------------------------------------------


def embedded_trusted_root_path(tuf_url: str = PRODUCTION_TUF_URL) -> Path:
    """The trusted_root.json that ships inside the sigstore package (no network needed)."""
    ref = resources.files("sigstore") / "_store" / quote(tuf_url, safe="") / "trusted_root.json"
    return Path(str(ref))


def load_trusted_root(path: str | Path | None = None, *, staging: bool = False) -> Any:
    """A sigstore ``TrustedRoot`` from a file (trusted root or ClientTrustConfig JSON), or the
    embedded public-good (or staging) root when ``path`` is None. Never touches the network."""
    from sigstore.models import ClientTrustConfig, TrustedRoot

    if path is None:
        path = embedded_trusted_root_path(STAGING_TUF_URL if staging else PRODUCTION_TUF_URL)
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read trust root {p}: {exc.strerror}") from exc
    try:
        media_type = str(json.loads(raw).get("mediaType", ""))
        if "clienttrustconfig" in media_type:
            return ClientTrustConfig.from_json(raw).trusted_root
        return TrustedRoot.from_file(str(p))
    except Exception as exc:  # pydantic, sigstore and json errors all mean "unusable file"
        raise InputError(
            f"{p} is not a Sigstore trusted root or client trust config: {str(exc).splitlines()[0]}",
            hint="pass a trusted_root.json (e.g. from `cosign trusted-root create` or the TUF repo)",
        ) from exc


def _rekor_key_for(trusted_root: Any, log_id_hex: str, integrated_time: int) -> PublicKey:
    """The Rekor key with this log ID, valid at ``integrated_time``."""
    when = datetime.fromtimestamp(integrated_time, tz=timezone.utc)
    for tlog in trusted_root._inner.tlogs:
        if tlog.log_id.key_id.hex() != log_id_hex:
            continue
        valid = tlog.public_key.valid_for
        if valid is not None:
            if valid.start is not None and when < valid.start:
                raise CandidateRejected(f"transparency log key {log_id_hex[:12]}… was not yet valid at {when:%Y-%m-%dT%H:%M:%SZ}")
            if valid.end is not None and when > valid.end:
                raise CandidateRejected(f"transparency log key {log_id_hex[:12]}… had expired at {when:%Y-%m-%dT%H:%M:%SZ}")
        return load_public_key(bytes(tlog.public_key.raw_bytes))
    raise CandidateRejected(
        f"transparency log entry is from log {log_id_hex[:16]}…, which is not in the trusted root"
    )


@dataclass(frozen=True)
class RekorEntry:
    """The fields a Rekor SET covers (legacy bundle annotation or a bundle's tlog entry)."""

    body: bytes  # canonicalized entry body (decoded)
    integrated_time: int
    log_id_hex: str
    log_index: int
    signed_entry_timestamp: bytes

    def canonical(self) -> bytes:
        # RFC 8785 canonical JSON of exactly these four keys, as Rekor signs it.
        payload = {
            "body": base64.b64encode(self.body).decode(),
            "integratedTime": self.integrated_time,
            "logID": self.log_id_hex,
            "logIndex": self.log_index,
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def verify_set(entry: RekorEntry, trusted_root: Any) -> None:
    """Check the Signed Entry Timestamp (inclusion promise) with the log's key from the root."""
    key = _rekor_key_for(trusted_root, entry.log_id_hex, entry.integrated_time)
    if not signature_is_valid(key, entry.signed_entry_timestamp, entry.canonical()):
        raise CandidateRejected(
            f"transparency log SET (logIndex {entry.log_index}) does not verify with the Rekor key"
        )


def check_rekor_body(body: bytes, *, payload_sha256: str, signature: bytes, verifier: PublicKey) -> None:
    """The log entry must describe *this* signature: hashedrekord/rekord 0.0.1 (signature over
    a payload) or dsse 0.0.1 (``payload_sha256`` is then the DSSE payload hash)."""
    try:
        doc = json.loads(body)
        kind, version, spec = doc["kind"], doc["apiVersion"], doc["spec"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CandidateRejected("transparency log entry body is not a Rekor entry") from exc
    try:
        if kind in ("hashedrekord", "rekord") and version == "0.0.1":
            data = spec["data"]
            if "hash" in data:
                if data["hash"]["algorithm"] != "sha256":
                    raise CandidateRejected(f"transparency log entry hashes with {data['hash']['algorithm']}, not sha256")
                logged = str(data["hash"]["value"])
            else:
                logged = hashlib.sha256(base64.b64decode(data["content"])).hexdigest()
            sigs = [(base64.b64decode(spec["signature"]["content"]), spec["signature"]["publicKey"]["content"])]
        elif kind == "dsse" and version == "0.0.1":
            if spec["payloadHash"]["algorithm"] != "sha256":
                raise CandidateRejected("transparency log DSSE entry does not use a sha256 payload hash")
            logged = str(spec["payloadHash"]["value"])
            sigs = [(base64.b64decode(s["signature"]), s["verifier"]) for s in spec["signatures"]]
        else:
            raise CandidateRejected(f"unsupported transparency log entry kind {kind}/{version}")
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise CandidateRejected(f"transparency log {kind} entry is malformed") from exc
    if logged != payload_sha256:
        raise CandidateRejected("transparency log entry is for other content (payload hash differs)")
    want = verifier.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for sig, pem_b64 in sigs:
        if sig != signature:
            continue
        if _logged_verifier_der(pem_b64) == want:
            return
    raise CandidateRejected("transparency log entry records another signature or signer")


def _logged_verifier_der(pem_b64: object) -> bytes | None:
    key: Any
    try:
        pem = base64.b64decode(str(pem_b64))
        if b"CERTIFICATE" in pem:
            key = x509.load_pem_x509_certificate(pem).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
        der: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return der
    except (ValueError, UnsupportedAlgorithm, binascii.Error):
        return None


# --------------------------------------------------------------------------------------------
# Certificates and identities
# --------------------------------------------------------------------------------------------


def load_certificates(data: bytes, what: str) -> list[x509.Certificate]:
    """All certificates in a PEM bundle (or one DER certificate)."""
    try:
        if b"-----BEGIN" in data:
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CandidateRejected(f"{what} is not a valid certificate") from exc


def _read_certs(path: str | Path, what: str) -> list[x509.Certificate]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        certs = load_certificates(data, f"{what} {path}")
    except CandidateRejected as exc:
        raise InputError(str(exc)) from exc
    if not certs:
        raise InputError(f"{what} {path} holds no certificate")
    return certs


def verify_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: list[x509.Certificate],
    at: datetime,
    *,
    require_eku: bool = True,
) -> list[x509.Certificate]:
    """Path-validate ``leaf`` to one of ``roots`` at time ``at``; require the codeSigning EKU.

    With ``require_eku`` False a leaf without any EKU is accepted, as Go's x509 (cosign's
    ``--ca-roots`` path) treats it as valid for every usage; a leaf whose EKU lacks
    codeSigning is always rejected.

    Uses cryptography's RFC 5280 verifier with the EKU check relaxed (Fulcio and BYO-PKI code
    signing certs carry codeSigning, not clientAuth), exactly as sigstore-python does.
    """
    if not roots:
        raise CandidateRejected("no trusted root certificates to chain to")
    # Key usage may be absent (BYO-PKI CAs often omit it; cosign does not require it); when
    # the leaf has one it must allow digital signatures (checked below).
    ca_policy = (
        ExtensionPolicy.webpki_defaults_ca()
        .may_be_present(x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, None)
    )
    ee_policy = (
        ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
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
    try:
        eku: x509.ExtendedKeyUsage | None = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None:
        if require_eku:
            raise CandidateRejected("certificate has no extended key usage (codeSigning required)")
    elif ExtendedKeyUsageOID.CODE_SIGNING not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
        raise CandidateRejected("certificate is not valid for code signing (no codeSigning EKU)")
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

    Regular expressions are *searched*, not anchored, as Go's ``regexp.MatchString`` does for
    cosign's ``--certificate-identity-regexp``; anchor them (``^…$``) for an exact match.
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
            if self.issuer_regexp is not None and not re.search(self.issuer_regexp, got_issuer):
                raise CandidateRejected(
                    f"certificate issuer {got_issuer!r} does not match /{self.issuer_regexp}/"
                )
        if self.identity is None and self.identity_regexp is None:
            return
        sans = certificate_sans(cert)
        if self.identity is not None and self.identity in sans:
            return
        if self.identity_regexp is not None and any(re.search(self.identity_regexp, s) for s in sans):
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


def _check_regexp(value: str | None, flag: str) -> None:
    if value is None:
        return
    try:
        re.compile(value)
    except re.error as exc:
        raise UsageError(f"{flag} is not a valid regular expression: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


@dataclass
class Policy:
    """What every policy has: ``-a key=value`` annotations the signed claims must carry."""

    annotations: dict[str, str] = field(default_factory=dict, kw_only=True)


@dataclass
class KeyPolicy(Policy):
    """Signed with this key (cosign ``--key``).

    With ``ignore_tlog`` False a transparency-log entry whose SET verifies against a Rekor key
    of ``trusted_root`` (default: the public-good root embedded in sigstore-python, read
    offline) and that records this very signature is required, as cosign requires it.
    """

    public_key: str | Path | bytes | PublicKey
    ignore_tlog: bool = False
    trusted_root: str | Path | None = None

    def __post_init__(self) -> None:
        self._key: PublicKey | None = None
        self._root: Any = None

    def key(self) -> PublicKey:
        if self._key is None:
            self._key = load_public_key(self.public_key)
        return self._key

    def fingerprint(self) -> str:
        return key_fingerprint(self.key())

    def root(self) -> Any:
        if self._root is None:
            self._root = load_trusted_root(self.trusted_root)
        return self._root


@dataclass
class IdentityPolicy(Policy):
    """Keyless: a Fulcio certificate for this identity from this OIDC issuer (cosign
    ``--certificate-identity[-regexp]`` + ``--certificate-oidc-issuer[-regexp]``).

    Trust: ``trust_config`` (a trusted root or ClientTrustConfig JSON file), else staging or
    production; with ``offline`` the root embedded in sigstore-python is used, otherwise
    sigstore-python refreshes it over TUF. ``ignore_sct`` mirrors ``--insecure-ignore-sct`` and
    is only needed for certificates issued before Fulcio embedded SCTs (2021).
    """

    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    trust_config: str | Path | None = None
    staging: bool = False
    offline: bool = False
    ignore_sct: bool = False

    def __post_init__(self) -> None:
        if (self.identity is None) == (self.identity_regexp is None):
            raise UsageError(
                "keyless verification needs exactly one of --certificate-identity or "
                "--certificate-identity-regexp: no policy, no verification",
                hint="e.g. --certificate-identity you@example.com --certificate-oidc-issuer https://accounts.google.com",
            )
        if (self.issuer is None) == (self.issuer_regexp is None):
            raise UsageError(
                "keyless verification needs exactly one of --certificate-oidc-issuer or "
                "--certificate-oidc-issuer-regexp: no policy, no verification",
                hint="e.g. --certificate-oidc-issuer https://token.actions.githubusercontent.com",
            )
        _check_regexp(self.identity_regexp, "--certificate-identity-regexp")
        _check_regexp(self.issuer_regexp, "--certificate-oidc-issuer-regexp")
        self._root: Any = None

    def matcher(self) -> IdentityMatcher:
        return IdentityMatcher(self.identity, self.identity_regexp, self.issuer, self.issuer_regexp)

    def root(self) -> Any:
        if self._root is None:
            if self.trust_config is not None or self.offline:
                self._root = load_trusted_root(self.trust_config, staging=self.staging)
            else:
                from sigstore.models import ClientTrustConfig

                try:
                    config = ClientTrustConfig.staging() if self.staging else ClientTrustConfig.production()
                except Exception as exc:  # TUF errors: network or metadata
                    raise InputError(
                        f"cannot refresh the Sigstore trust root over TUF: {exc}",
                        hint="pass --offline to use the trust root embedded in sigstore-python, or --trusted-root FILE",
                    ) from exc
                self._root = config.trusted_root
        return self._root


@dataclass
class CertificateChainPolicy(Policy):
    """Signed by a certificate that chains to ``ca_roots`` (cosign ``--ca-roots`` /
    ``--certificate-chain``), optionally for an identity/issuer.

    The chain is checked at the tlog integrated time when a verified SET is present (the
    signature time Rekor vouches for), else at the current time: an expired certificate with
    no transparency-log timestamp is rejected. A tlog entry is required unless ``ignore_tlog``.
    """

    ca_roots: str | Path
    chain: str | Path | None = None
    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    ignore_tlog: bool = False
    trusted_root: str | Path | None = None

    def __post_init__(self) -> None:
        _check_regexp(self.identity_regexp, "--certificate-identity-regexp")
        _check_regexp(self.issuer_regexp, "--certificate-oidc-issuer-regexp")
        self._roots: list[x509.Certificate] | None = None
        self._intermediates: list[x509.Certificate] | None = None
        self._root: Any = None

    def matcher(self) -> IdentityMatcher:
        return IdentityMatcher(self.identity, self.identity_regexp, self.issuer, self.issuer_regexp)

    def roots(self) -> list[x509.Certificate]:
        if self._roots is None:
            self._roots = _read_certs(self.ca_roots, "CA roots file")
        return self._roots

    def intermediates(self) -> list[x509.Certificate]:
        if self._intermediates is None:
            self._intermediates = [] if self.chain is None else _read_certs(self.chain, "certificate chain")
        return self._intermediates

    def root(self) -> Any:
        if self._root is None:
            self._root = load_trusted_root(self.trusted_root)
        return self._root


AnyPolicy = KeyPolicy | IdentityPolicy | CertificateChainPolicy

TLOG_HINT = (
    "pass --insecure-ignore-tlog to accept key signatures made without a transparency log"
)


def check_claim_annotations(expected: dict[str, str], actual: object, where: str) -> None:
    """cosign ``-a k=v``: every expected key must be present with exactly that string value."""
    have = actual if isinstance(actual, dict) else {}
    for k, v in expected.items():
        if k not in have:
            raise CandidateRejected(f"annotation {k!r} is missing from the {where}")
        if have[k] != v:
            raise CandidateRejected(f"annotation {k!r} is {have[k]!r} in the {where}, expected {v!r}")
