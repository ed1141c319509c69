"""Signers: a key, or a key plus an X.509 certificate (Sigstore keyless is in ``keyless``).

Each signer turns an in-toto statement into a Sigstore bundle v0.3 (JSON bytes) over a DSSE
envelope, and a cosign simple-signing payload into the legacy ``.sig`` layer annotations.
The CLI picks one signer and uses it for every signature of a run, so keyless signing asks
for one identity token and one Fulcio certificate, not one per signature.

Key and certificate signatures are uploaded to a Rekor v1 transparency log when the signer
is given a ``RekorUploader`` (``signer_from_options`` does so by default, like ``cosign sign``):
the cosign bundle and the legacy signature then carry the log entry and verify without
``--insecure-ignore-tlog``. Without one (``tlog_upload=False``, as ``cosign sign
--tlog-upload=false`` or ``model_signing sign key``) verifiers must be told so. The
model-signing bundle is never logged for keys (model_signing does not log key signatures).
Keyless signatures always are (Rekor).

Two bundle flavours exist for key signing because the verifiers disagree on the key hint:
cosign writes ``base64(sha256(DER SPKI))`` and never checks it;
model-signing 1.1.1 rejects any non-empty hint other than ``sha256(PEM SPKI).hexdigest()``.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import InputError
from ..oci.mediatypes import (
    ANNOTATION_BUNDLE,
    ANNOTATION_CERTIFICATE,
    ANNOTATION_CHAIN,
    ANNOTATION_SIGNATURE,
    BUNDLE_MEDIA_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
)
from .certfiles import read_certificates
from .dsse import sign_envelope
from .keys import (
    PUBLIC_KEY_TYPES,
    PrivateKey,
    Prompt,
    describe_key,
    key_hint_cosign,
    key_hint_model_signing,
    load_private_key,
    public_key_der,
    public_key_pem,
    sign_bytes,
)
from .tlog_upload import RekorUploader

if TYPE_CHECKING:
    pass




@dataclass(frozen=True)
class LegacySignature:
    """One cosign ``.sig`` layer's signature material."""

    signature_b64: str
    certificate_pem: str | None = None
    chain_pem: str | None = None
    rekor_bundle_json: str | None = None

    def annotations(self) -> dict[str, str]:
        """The layer-descriptor annotations cosign writes for this signature.

        The chain annotation is present (possibly ``""``) whenever a certificate is, as in
        cosign's ``static.WithCertChain``.
        """
        ann = {ANNOTATION_SIGNATURE: self.signature_b64}
        if self.certificate_pem is not None:
            ann[ANNOTATION_CERTIFICATE] = self.certificate_pem
            ann[ANNOTATION_CHAIN] = self.chain_pem or ""
        if self.rekor_bundle_json is not None:
            ann[ANNOTATION_BUNDLE] = self.rekor_bundle_json
        return ann


@runtime_checkable
class Signer(Protocol):
    """What the signing commands need from any signer."""

    def sign_dsse(self, statement: bytes, *, for_model_signing: bool = False) -> bytes:
        """A Sigstore bundle v0.3 (JSON bytes) over a DSSE envelope of ``statement``."""
        ...

    def sign_simple(self, payload: bytes) -> LegacySignature:
        """A cosign legacy signature over the exact ``payload`` bytes."""
        ...

    def describe(self) -> str:
        """Who signs, for logs and the CLI summary (key hint, certificate subject, identity)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Signer: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


_S = TypeVar("_S", bound="_ContextSigner")


class _ContextSigner:
    def close(self) -> None:
        """Nothing to release by default."""

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _bundle_json(
    verification_material: dict[str, object],
    envelope: dict[str, object],
    tlog_entries: list[dict[str, object]] | None = None,
) -> bytes:
    """protojson field names and order; compact. ``tlogEntries`` is always written (``[]`` when
    not logged): cosign's protojson reader accepts it and sigstore-python's models (and
    model-signing) require it."""
    doc = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {**verification_material, "tlogEntries": list(tlog_entries or [])},
        "dsseEnvelope": envelope,
    }
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


def _require_ec_for_model_signing(key: PrivateKey) -> None:
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InputError(
            f"model-signing verifies only ECDSA P-256/P-384/P-521 signatures, not {describe_key(key)}",
            hint="sign with an ECDSA key, or skip the model-signing signature",
        )


class KeySigner(_ContextSigner):
    """Signs with a private key file (cosign encrypted, or PEM); logs to ``tlog`` if given."""

    def __init__(
        self,
        key_path: str | os.PathLike[str],
        password: bytes | None = None,
        *,
        prompt: Prompt | None = None,
        background: bool = False,
        tlog: RekorUploader | None = None,
    ) -> None:
        """Load the key now, or with ``background`` (and a known password) in a thread.

        Decrypting a cosign key costs ~0.15 s of scrypt, which releases the GIL: ``omsign
        sign`` lets it overlap the registry round trips; errors surface at first use.
        """
        self.tlog = tlog
        self.key_path = Path(key_path)
        self._key: PrivateKey | None = None
        self._loader: threading.Thread | None = None
        self._load_error: BaseException | None = None
        if background and password is not None:

            def load() -> None:
                try:
                    self._key = load_private_key(self.key_path, password, prompt=prompt)
                except BaseException as exc:  # re-raised on the caller's thread
                    self._load_error = exc

            self._loader = threading.Thread(target=load, name="omsign-key-loader", daemon=True)
            self._loader.start()
        else:
            self._key = load_private_key(self.key_path, password, prompt=prompt)

    def _use_key(self, key: PrivateKey, name: str, tlog: RekorUploader | None = None) -> None:
        """Adopt a key loaded elsewhere (e.g. a PKCS#11 token's) instead of reading a file."""
        self.tlog = tlog
        self.key_path = Path(name)
        self._key, self._loader, self._load_error = key, None, None

    @property
    def key(self) -> PrivateKey:
        if self._loader is not None:
            self._loader.join()
            self._loader = None
        if self._load_error is not None:
            raise self._load_error
        assert self._key is not None
        return self._key

    def describe(self) -> str:
        return (
            f"{describe_key(self.key)} key {self.key_path.name} (hint {key_hint_cosign(self.key)})"
        )

    def _verification_material(self, for_model_signing: bool) -> dict[str, object]:
        if for_model_signing:
            return {"publicKey": {"hint": key_hint_model_signing(self.key)}}
        return {"publicKey": {"hint": key_hint_cosign(self.key)}}

    def sign_dsse(self, statement: bytes, *, for_model_signing: bool = False) -> bytes:
        if for_model_signing:
            _require_ec_for_model_signing(self.key)
        # model-signing writes keyid "" (in_toto Signature proto); cosign leaves it out. Both
        # verifiers accept an empty keyid; a non-empty one breaks cosign.
        env = sign_envelope(
            self.key, statement, IN_TOTO_PAYLOAD_TYPE, keyid="" if for_model_signing else None
        )
        entries: list[dict[str, object]] = []
        if self.tlog is not None and not for_model_signing:
            entries.append(self.tlog.log_dsse(env.to_json(), self._verifier_pem()).bundle_entry)
        return _bundle_json(self._verification_material(for_model_signing), env.to_dict(), entries)

    def _verifier_pem(self) -> bytes:
        """What the log records as the signer: the public key (a certificate for PKI)."""
        return public_key_pem(self.key)

    def _rekor_annotation(self, signature: bytes, payload: bytes) -> str | None:
        if self.tlog is None:
            return None
        return self.tlog.log_hashedrekord(signature, payload, self._verifier_pem()).legacy_annotation()

    def sign_simple(self, payload: bytes) -> LegacySignature:
        sig = sign_bytes(self.key, payload)
        return LegacySignature(signature_b64=_b64(sig), rekor_bundle_json=self._rekor_annotation(sig, payload))


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


class CertificateSigner(KeySigner):
    """A private key with its X.509 leaf certificate (and chain), e.g. from a corporate CA.

    Bundles carry the leaf as ``certificate`` (cosign: v0.3 rejects chains) or, for
    model-signing, ``x509CertificateChain`` = leaf followed by the given chain certificates,
    as ``model_signing sign certificate`` writes it. Logged to ``tlog`` when given, with the
    certificate as the verifier (as cosign logs it).
    """

    def __init__(
        self,
        key_path: str | os.PathLike[str],
        certificate_path: str | os.PathLike[str],
        chain_paths: list[str | os.PathLike[str]] | None = None,
        password: bytes | None = None,
        *,
        prompt: Prompt | None = None,
        now: datetime.datetime | None = None,
        tlog: RekorUploader | None = None,
    ) -> None:
        super().__init__(key_path, password, prompt=prompt, tlog=tlog)
        cert_path = Path(certificate_path)
        self.certificate = read_certificates(cert_path, "signing certificate")[0]
        self.chain: list[x509.Certificate] = []
        for p in chain_paths or []:
            self.chain.extend(read_certificates(p, "certificate chain"))
        cert_key = self.certificate.public_key()
        if not isinstance(cert_key, PUBLIC_KEY_TYPES) or public_key_der(cert_key) != public_key_der(
            self.key
        ):
            raise InputError(
                f"{cert_path.name} does not certify the key in {self.key_path.name}",
                hint="pass the certificate issued for this private key",
            )
        moment = now or datetime.datetime.now(datetime.timezone.utc)
        if not (
            self.certificate.not_valid_before_utc <= moment <= self.certificate.not_valid_after_utc
        ):
            raise InputError(
                f"{cert_path.name} is not valid now (valid {self.certificate.not_valid_before_utc:%Y-%m-%d}"
                f" to {self.certificate.not_valid_after_utc:%Y-%m-%d})"
            )

    def describe(self) -> str:
        return f"certificate {self.certificate.subject.rfc4514_string() or '(empty subject)'}"

    def _verification_material(self, for_model_signing: bool) -> dict[str, object]:
        leaf = _b64(self.certificate.public_bytes(serialization.Encoding.DER))
        if for_model_signing:
            certs = [{"rawBytes": leaf}] + [
                {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))} for c in self.chain
            ]
            return {"x509CertificateChain": {"certificates": certs}}
        return {"certificate": {"rawBytes": leaf}}

    def _verifier_pem(self) -> bytes:
        return _pem(self.certificate).encode("ascii")

    def sign_simple(self, payload: bytes) -> LegacySignature:
        sig = sign_bytes(self.key, payload)
        return LegacySignature(
            signature_b64=_b64(sig),
            certificate_pem=_pem(self.certificate),
            chain_pem="".join(_pem(c) for c in self.chain),
            rekor_bundle_json=self._rekor_annotation(sig, payload),
        )
