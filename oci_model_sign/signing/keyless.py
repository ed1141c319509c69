"""Sigstore keyless signing: an OIDC identity token buys a short-lived Fulcio certificate.

Every signature is logged in Rekor by sigstore-python. The cosign bundle and the model-signing
bundle are the same kind of object here (a Fulcio certificate and a Rekor entry); the legacy
``.sig`` layer additionally needs the chain (rebuilt from the trusted root) and cosign's
``dev.sigstore.cosign/bundle`` annotation, which only a Rekor v1 entry (with a SET) can give.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from ..errors import InputError, RegistryError, UsageError
from ..sigstore_seam import bundle_log_entry, raw_statement, selected_rekor_versions
from .signers import LegacySignature, _b64, _ContextSigner, _pem

_REKOR_V2_LEGACY = (
    "keyless legacy signatures need a Rekor v1 entry (with a signed entry timestamp); the "
    "signing config selects a Rekor v2 log, whose entries cosign cannot verify offline on the "
    "legacy .sig path"
)
_REKOR_V2_HINT = "sign with --format bundle, or use a signing config (--trust-config) with a Rekor v1 log"

if TYPE_CHECKING:
    from sigstore.dsse import Statement as SigstoreStatement
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import ClientTrustConfig
    from sigstore.sign import Signer as SigstoreSigner


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


def _signed(sign: Callable[[], SigstoreBundle]) -> SigstoreBundle:
    """Run one sigstore signing call; any failure there (Fulcio, Rekor, TSA, network) is the
    service's, reported as one line."""
    try:
        return sign()
    except Exception as exc:  # sigstore's Error and the requests/network errors beneath it
        raise RegistryError(f"Sigstore signing failed: {exc}") from exc


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
        stmt = sigstore_statement(statement)
        signer = self._session()
        return _signed(lambda: signer.sign_dsse(stmt)).to_json().encode("utf-8")

    def sign_simple(self, payload: bytes) -> LegacySignature:
        signer = self._session()  # the token is checked first, then the trust config it needs
        if any(v != 1 for v in selected_rekor_versions(self._trust_config())):
            raise UsageError(_REKOR_V2_LEGACY, hint=_REKOR_V2_HINT)
        bundle = _signed(lambda: signer.sign_artifact(payload))
        leaf = bundle.signing_certificate
        try:
            pool = self._trust_config().trusted_root.get_fulcio_certs()
        except Exception:
            pool = []
        chain = chain_from_trust_root(leaf, pool)
        annotation = rekor_bundle_annotation(bundle)
        if annotation is None:
            # A Rekor v2 entry has no SET; cosign's legacy verifier cannot check it offline.
            raise UsageError(_REKOR_V2_LEGACY, hint=_REKOR_V2_HINT)
        return LegacySignature(
            signature_b64=_b64(bundle.signature),
            certificate_pem=_pem(leaf),
            chain_pem="".join(_pem(c) for c in chain),
            rekor_bundle_json=annotation,
        )

    def close(self) -> None:
        self._stack.close()
        self._signer = None
