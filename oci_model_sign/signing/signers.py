"""Signers: a key, a key plus an X.509 certificate, or Sigstore keyless.

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
import contextlib
import datetime
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import InputError, RegistryError, UsageError
from ..sigstore_seam import bundle_log_entry, raw_statement
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
from .statements import IN_TOTO_PAYLOAD_TYPE
from .tlog_upload import RekorUploader

if TYPE_CHECKING:
    from sigstore.dsse import Statement as SigstoreStatement
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import ClientTrustConfig
    from sigstore.sign import Signer as SigstoreSigner

BUNDLE_V03_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"

ANN_SIGNATURE = "dev.cosignproject.cosign/signature"
ANN_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANN_CHAIN = "dev.sigstore.cosign/chain"
ANN_BUNDLE = "dev.sigstore.cosign/bundle"


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
        ann = {ANN_SIGNATURE: self.signature_b64}
        if self.certificate_pem is not None:
            ann[ANN_CERTIFICATE] = self.certificate_pem
            ann[ANN_CHAIN] = self.chain_pem or ""
        if self.rekor_bundle_json is not None:
            ann[ANN_BUNDLE] = self.rekor_bundle_json
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
        "mediaType": BUNDLE_V03_MEDIA_TYPE,
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


def _load_certificates(path: Path, what: str) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise InputError(f"{path.name} is not a PEM certificate file: {exc}") from exc
    if not certs:
        raise InputError(f"{path.name} holds no certificate")
    return certs


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
        self.certificate = _load_certificates(cert_path, "signing certificate")[0]
        self.chain: list[x509.Certificate] = []
        for p in chain_paths or []:
            self.chain.extend(_load_certificates(Path(p), "certificate chain"))
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


def _tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def rekor_bundle_annotation(bundle: SigstoreBundle) -> str | None:
    """cosign's ``dev.sigstore.cosign/bundle`` value (Go struct field order), or None.

    Only Rekor v1 entries carry a signed entry timestamp (inclusion promise); a Rekor v2
    entry has none, and cosign's legacy verifier would then look the entry up online.
    """
    entry = bundle_log_entry(bundle)
    if entry.signed_entry_timestamp is None or entry.integrated_time is None:
        return None
    doc = {
        "SignedEntryTimestamp": _b64(entry.signed_entry_timestamp),
        "Payload": {
            "body": _b64(entry.body),
            "integratedTime": entry.integrated_time,
            "logIndex": entry.log_index,
            "logID": entry.log_id_hex,
        },
    }
    return json.dumps(doc, separators=(",", ":"))


def chain_from_trust_root(
    leaf: x509.Certificate, pool: list[x509.Certificate]
) -> list[x509.Certificate]:
    """Issuer chain of ``leaf`` (intermediates then root) found in ``pool``.

    sigstore-python keeps the chain Fulcio returned to itself, so it is rebuilt from the
    trusted root's CA certificates, which hold the same certificates.
    """
    chain: list[x509.Certificate] = []
    current = leaf
    for _ in range(len(pool)):
        if current.issuer == current.subject and chain:
            break
        issuer = None
        for cand in pool:
            if cand.subject != current.issuer or cand in chain or cand == current:
                continue
            try:
                current.verify_directly_issued_by(cand)
            except (ValueError, TypeError, InvalidSignature):
                continue
            issuer = cand
            break
        if issuer is None:
            break
        chain.append(issuer)
        if issuer.issuer == issuer.subject:
            break
        current = issuer
    return chain


def sigstore_statement(statement: bytes) -> SigstoreStatement:
    """Wrap exact statement bytes for sigstore-python's ``Signer.sign_dsse``.

    sigstore-python 4.x validates statements with a model that *requires* ``subject[].name``
    (it may be null, not absent), but cosign's image statement has no name. Rewriting the
    statement would change cosign's bytes, so a statement that fails only that validation is
    passed through unvalidated: signing uses just the bytes (``Statement._contents`` for the
    PAE, see ``sigstore_seam.raw_statement``); the parsed form is only used by its verifier,
    which omsign does not call here.
    """
    from sigstore import dsse
    from sigstore.errors import Error as SigstoreError

    try:
        doc = json.loads(statement)
    except ValueError as exc:
        raise InputError(f"the statement to sign is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("_type") != "https://in-toto.io/Statement/v1":
        raise InputError("the statement to sign is not an in-toto v1 statement")
    try:
        return dsse.Statement(statement)
    except SigstoreError:
        subjects = doc.get("subject")
        if not isinstance(subjects, list) or not subjects:
            raise InputError("the statement to sign has no subject") from None
        named = {**doc, "subject": [{"name": None, **s} for s in subjects if isinstance(s, dict)]}
        try:
            dsse.Statement(json.dumps(named).encode())  # everything else must still validate
        except SigstoreError as exc:
            raise InputError(f"sigstore-python rejects the statement: {exc}") from exc
        return raw_statement(statement)


class KeylessSigner(_ContextSigner):
    """Sigstore keyless: an OIDC identity token buys a short-lived Fulcio certificate.

    Token precedence: ``identity_token`` > ambient CI credentials
    (``sigstore.oidc.detect_credential``) > the interactive browser/OOB flow, which is only
    attempted with a terminal. Nothing touches the network until the first signature; then
    one signing session (one token, one ephemeral key, one certificate) serves every
    signature until :meth:`close`.
    """

    def __init__(
        self,
        identity_token: str | None = None,
        trust_config: str | os.PathLike[str] | None = None,
        staging: bool = False,
        ambient: bool = True,
        oauth: bool = True,
        *,
        force_oob: bool = False,
    ) -> None:
        self._raw_token = identity_token
        self._trust_config_path = Path(trust_config) if trust_config is not None else None
        self._staging = staging
        self._ambient = ambient
        self._oauth = oauth
        self._force_oob = force_oob
        self._stack = contextlib.ExitStack()
        self._signer: SigstoreSigner | None = None
        self._config: ClientTrustConfig | None = None
        self._identity: str | None = None

    def describe(self) -> str:
        return f"Sigstore keyless identity {self._identity or '(not signed in yet)'}"

    def _trust_config(self) -> ClientTrustConfig:
        if self._config is not None:
            return self._config
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import ClientTrustConfig

        if self._trust_config_path is not None:
            try:
                text = self._trust_config_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise InputError(
                    f"cannot read trust config {self._trust_config_path}: {exc.strerror or exc}"
                ) from exc
            try:
                self._config = ClientTrustConfig.from_json(text)
            except (ValueError, SigstoreError) as exc:
                raise InputError(
                    f"{self._trust_config_path.name} is not a Sigstore client trust config: "
                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                ) from exc
            return self._config
        try:
            self._config = (
                ClientTrustConfig.staging() if self._staging else ClientTrustConfig.production()
            )
        except (SigstoreError, OSError) as exc:
            raise RegistryError(
                f"cannot fetch the Sigstore trust root: {exc}",
                hint="check network access to tuf-repo-cdn.sigstore.dev or pass --trust-config",
            ) from exc
        return self._config

    def _token(self) -> str:
        """Explicit > ambient > interactive; only the interactive flow needs the trust config."""
        if self._raw_token:
            return self._raw_token
        if self._ambient:
            from sigstore.oidc import IdentityError, detect_credential

            try:
                ambient = detect_credential()
            except IdentityError as exc:
                raise InputError(
                    f"ambient OIDC credentials were found but unusable: {exc}"
                ) from exc
            if ambient:
                return ambient
        if self._oauth and _tty():
            from sigstore.oidc import Issuer

            config = self._trust_config()
            try:
                issuer = Issuer(config.signing_config.get_oidc_url())
                return str(issuer.identity_token(force_oob=self._force_oob))
            except Exception as exc:  # the OAuth flow raises many kinds
                raise InputError(f"interactive Sigstore sign-in failed: {exc}") from exc
        raise InputError(
            "no identity token for keyless signing",
            hint="pass --identity-token, or run in CI with ambient OIDC credentials "
            "(GitHub Actions: permissions: id-token: write)",
        )

    def _session(self) -> SigstoreSigner:
        if self._signer is not None:
            return self._signer
        from sigstore.errors import Error as SigstoreError
        from sigstore.oidc import IdentityToken
        from sigstore.sign import SigningContext

        raw = self._token()
        try:
            token = IdentityToken(raw)
        except Exception as exc:  # IdentityError or a JWT decoding error
            raise InputError(f"the identity token is not usable: {exc}") from exc
        config = self._trust_config()
        try:
            ctx = SigningContext.from_trust_config(config)
            self._signer = self._stack.enter_context(ctx.signer(token))
        except SigstoreError as exc:
            raise RegistryError(f"Sigstore refused a signing certificate: {exc}") from exc
        except Exception as exc:  # requests/network errors from sigstore
            raise RegistryError(f"Sigstore signing failed: {exc}") from exc
        self._identity = token.identity
        return self._signer

    def sign_dsse(self, statement: bytes, *, for_model_signing: bool = False) -> bytes:
        """The same bundle serves cosign and model-signing (a Fulcio cert and a Rekor entry)."""
        from sigstore.errors import Error as SigstoreError

        stmt = sigstore_statement(statement)
        signer = self._session()
        try:
            bundle = signer.sign_dsse(stmt)
        except SigstoreError as exc:
            raise RegistryError(f"Sigstore signing failed: {exc}") from exc
        except Exception as exc:
            raise RegistryError(f"Sigstore signing failed: {exc}") from exc
        return bundle.to_json().encode("utf-8")

    def sign_simple(self, payload: bytes) -> LegacySignature:
        from sigstore.errors import Error as SigstoreError

        signer = self._session()
        try:
            bundle = signer.sign_artifact(payload)
        except SigstoreError as exc:
            raise RegistryError(f"Sigstore signing failed: {exc}") from exc
        except Exception as exc:
            raise RegistryError(f"Sigstore signing failed: {exc}") from exc
        leaf = bundle.signing_certificate
        try:
            pool = self._trust_config().trusted_root.get_fulcio_certs()
        except Exception:
            pool = []
        chain = chain_from_trust_root(leaf, pool)
        annotation = rekor_bundle_annotation(bundle)
        if annotation is None:
            # A Rekor v2 entry has no SET; cosign's legacy verifier cannot check it offline.
            raise UsageError(
                "keyless legacy signatures need a Rekor v1 entry (with a signed entry timestamp); "
                "the signing config chose a Rekor v2 log, whose entries cosign cannot verify "
                "on the legacy .sig path",
                hint="sign with --format bundle, or use a signing config (--trust-config) with a Rekor v1 log",
            )
        return LegacySignature(
            signature_b64=_b64(bundle.signature),
            certificate_pem=_pem(leaf),
            chain_pem="".join(_pem(c) for c in chain),
            rekor_bundle_json=annotation,
        )

    def close(self) -> None:
        self._stack.close()
        self._signer = None
