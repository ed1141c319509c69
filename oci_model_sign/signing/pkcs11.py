"""Keys that never leave an HSM: signing and public-key export over PKCS#11.

A ``--key pkcs11:…`` URI (RFC 7512) names a key pair on a token, as cosign takes it::

    pkcs11:token=Signing;object=release-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234

cosign (``pkg/cosign/pkcs11key``) honours ``token``, ``slot-id``, ``object``, ``id``,
``module-path`` and ``pin-value``; omsign honours the same, with cosign's precedence
(``slot-id`` over ``token``, ``id`` over ``object``), its fallback ``COSIGN_PKCS11_MODULE_PATH``
for a missing ``module-path`` and its ``COSIGN_PKCS11_PIN`` for a missing PIN. It adds what
RFC 7512 and ``p11tool``/``pkcs11-tool`` URIs carry: ``serial``, ``manufacturer`` and
``model`` narrow the token, ``type`` must be ``private``/``public`` if given, ``pin-source``
names a file holding the PIN, and the ``OMSIGN_`` names of both variables come first.

The key is wrapped as a ``cryptography`` private-key object whose ``sign`` hashes on the host
and signs the digest on the token (``CKM_ECDSA``; ``CKM_RSA_PKCS`` over a DigestInfo): every
token that signs at all has these raw mechanisms, and the bundle code in ``signers.py`` then
signs exactly as it does with a key file. ECDSA keys sign with their curve's hash, as key
files do (SHA-256 for P-256, the only curve cosign's verifier checks by default); RSA keys
with PKCS#1 v1.5 SHA-256, cosign's choice.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.utils import Buffer

from ..errors import InputError, UsageError
from .keys import Prompt, PublicKey, ask_secret, describe_key, key_hint_cosign
from .pkcs11_uri import PIN_ENV
from .pkcs11_uri import Pkcs11Uri as Pkcs11Uri  # the URI type callers name with the signer
from .signers import KeySigner
from .tlog_upload import RekorUploader

if TYPE_CHECKING:
    import pkcs11

_EC_CURVES = {"secp256r1", "secp384r1", "secp521r1"}
# DER DigestInfo prefixes (RFC 8017 §9.2 note 1): CKM_RSA_PKCS signs DigestInfo || digest.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


# -- the token --------------------------------------------------------------------------------
def _binding() -> Any:
    try:
        import pkcs11
    except ImportError as exc:  # pragma: no cover - the dependency is declared
        raise UsageError(
            "pkcs11: keys need the python-pkcs11 package",
            hint="pip install python-pkcs11",
        ) from exc
    return pkcs11


def _token_error(uri: Pkcs11Uri, exc: Exception, doing: str) -> NoReturn:
    """One line for any failure of the PKCS#11 library itself."""
    p11 = _binding()
    name = type(exc).__name__
    if isinstance(exc, p11.exceptions.PinIncorrect | p11.exceptions.PinInvalid | p11.exceptions.PinLenRange):
        raise InputError(f"wrong PIN for PKCS#11 token {uri.token_name}") from exc
    if isinstance(exc, p11.exceptions.PinLocked):
        raise InputError(f"the PIN of PKCS#11 token {uri.token_name} is locked") from exc
    detail = str(exc).strip()
    raise InputError(
        f"PKCS#11 token {uri.token_name}: {doing} failed: {name}{': ' + detail if detail else ''}"
    ) from exc


class _TokenSession:
    """One open session on the token the URI names, logged in when a PIN is needed."""

    def __init__(self, uri: Pkcs11Uri, *, login: bool, prompt: Prompt | None = None) -> None:
        p11 = _binding()
        self.uri = uri
        self._lock = threading.Lock()
        try:
            lib = p11.lib(uri.module_path)
        except p11.exceptions.PKCS11Error as exc:
            detail = str(exc).strip() or type(exc).__name__
            for prefix in (f"OS exception while loading {uri.module_path}: ", f"{uri.module_path}: "):
                detail = detail.removeprefix(prefix)
            raise InputError(f"cannot load PKCS#11 module {uri.module_path}: {detail}") from exc
        token = self._find_token(lib)
        pin: str | None = None
        if login:
            pin = uri.pin()
            if pin is None and token.flags & p11.TokenFlag.LOGIN_REQUIRED:
                pin = self._ask_pin(prompt)
        try:
            self.session: pkcs11.Session = token.open(user_pin=pin)
        except p11.exceptions.UserAlreadyLoggedIn:
            # Login state is per application: another session of this process holds it.
            self.session = token.open()
        except p11.exceptions.PKCS11Error as exc:
            _token_error(uri, exc, "opening a session")

    def _find_token(self, lib: Any) -> Any:
        p11 = _binding()
        uri = self.uri
        found: list[Any] = []
        seen: list[str] = []
        try:
            slots = lib.get_slots(token_present=True)
            for slot in slots:
                if uri.slot_id is not None and slot.slot_id != uri.slot_id:
                    continue
                try:
                    token = slot.get_token()
                except (p11.exceptions.TokenNotPresent, p11.exceptions.TokenNotRecognised):
                    continue
                if not token.flags & p11.TokenFlag.TOKEN_INITIALIZED:
                    continue
                seen.append(token.label)
                if uri.slot_id is None and uri.token is not None and token.label != uri.token:
                    continue
                serial = token.serial.decode("ascii", "replace").strip()
                if uri.serial is not None and serial != uri.serial:
                    continue
                if uri.manufacturer is not None and token.manufacturer_id != uri.manufacturer:
                    continue
                if uri.model is not None and token.model != uri.model:
                    continue
                found.append(token)
        except p11.exceptions.PKCS11Error as exc:
            _token_error(uri, exc, "listing slots")
        module = Path(uri.module_path).name
        if not found:
            have = ", ".join(repr(s) for s in seen) or "none"
            raise InputError(f"no PKCS#11 token {uri.token_name} in {module} (tokens present: {have})")
        if len(found) > 1:
            raise InputError(
                f"{len(found)} PKCS#11 tokens match {uri.token_name} in {module}",
                hint="add slot-id or serial to the pkcs11: URI",
            )
        return found[0]

    def _ask_pin(self, prompt: Prompt | None) -> str:
        where = f"key {self.uri.key_name} on PKCS#11 token {self.uri.token_name}"
        hint = f"set {' or '.join(PIN_ENV)}, or add pin-value/pin-source to the URI"
        return ask_secret(prompt, "PIN", where, hint=hint)

    def find(self, object_class: Any) -> Any | None:
        """The one object of ``object_class`` the URI names (``id`` first, as cosign), or None."""
        p11 = _binding()
        attrs: dict[Any, Any] = {p11.Attribute.CLASS: object_class}
        if self.uri.id is not None:
            attrs[p11.Attribute.ID] = self.uri.id
        else:
            attrs[p11.Attribute.LABEL] = self.uri.object
        try:
            objects = list(itertools.islice(self.session.get_objects(attrs), 2))
        except p11.exceptions.PKCS11Error as exc:
            _token_error(self.uri, exc, "searching for the key")
        if len(objects) > 1:
            raise InputError(
                f"several objects match {self.uri.key_name} on PKCS#11 token {self.uri.token_name}",
                hint="name the key by a unique id= in the pkcs11: URI",
            )
        return objects[0] if objects else None

    def public_key(self) -> PublicKey:
        """The key pair's public half: its public-key object, else its certificate's key."""
        p11 = _binding()
        pub = self.find(p11.ObjectClass.PUBLIC_KEY)
        try:
            if pub is not None:
                return _checked_public(_export_public(pub), self.uri)
            cert = self.find(p11.ObjectClass.CERTIFICATE)
            if cert is not None:
                from cryptography import x509

                key = x509.load_der_x509_certificate(cert[p11.Attribute.VALUE]).public_key()
                return _checked_public(key, self.uri)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise InputError(
                f"the public key {self.uri.key_name} on PKCS#11 token {self.uri.token_name} is unreadable: {exc}"
            ) from exc
        except p11.exceptions.PKCS11Error as exc:
            _token_error(self.uri, exc, "reading the public key")
        raise InputError(
            f"no public key {self.uri.key_name} on PKCS#11 token {self.uri.token_name}",
            hint="check object= or id= in the pkcs11: URI; pkcs11-tool -O lists the token's objects",
        )

    def sign(self, key: Any, data: bytes, mechanism: Any) -> bytes:
        p11 = _binding()
        with self._lock:  # a PKCS#11 session runs one operation at a time
            try:
                return bytes(key.sign(data, mechanism=mechanism))
            except p11.exceptions.PKCS11Error as exc:
                _token_error(self.uri, exc, "signing")

    def close(self) -> None:
        p11 = _binding()
        with self._lock, contextlib.suppress(p11.exceptions.PKCS11Error):
            self.session.close()


def _export_public(pub: Any) -> PublicKeyTypes:
    p11 = _binding()
    if pub.key_type == p11.KeyType.EC:
        from pkcs11.util.ec import encode_ec_public_key

        return serialization.load_der_public_key(encode_ec_public_key(pub))
    if pub.key_type == p11.KeyType.RSA:
        n = int.from_bytes(pub[p11.Attribute.MODULUS], "big")
        e = int.from_bytes(pub[p11.Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    raise ValueError(f"{pub.key_type.name} keys are not supported (use ECDSA P-256 or RSA)")


def _checked_public(key: PublicKeyTypes, uri: Pkcs11Uri) -> PublicKey:
    where = f"key {uri.key_name} on PKCS#11 token {uri.token_name}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _EC_CURVES:
            raise InputError(f"{where}: unsupported elliptic curve {key.curve.name}", hint="use P-256")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise InputError(f"{where}: RSA keys under 2048 bits are not accepted")
        return key
    raise InputError(f"{where}: unsupported key type {type(key).__name__}", hint="use ECDSA P-256 or RSA")


# -- the key as cryptography sees it ----------------------------------------------------------
def _digest(data: bytes, algorithm: hashes.HashAlgorithm | utils.Prehashed) -> tuple[bytes, str]:
    """Hash on the host; the token signs only the digest (and sees only that)."""
    if isinstance(algorithm, utils.Prehashed):
        raise InputError("a PKCS#11 key here signs messages, not prehashed digests")
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize(), algorithm.name


def _stays_on_token() -> NoReturn:
    raise InputError("the private key stays on the PKCS#11 token: it cannot be exported or used for that")


_Self = TypeVar("_Self", bound="_OnToken")


class _OnToken:
    """What both token keys share: a handle on an open session, and no way out for the secret.

    A copy is the same object: the session and handle are not duplicable, and the secret never
    leaves the token anyway.
    """

    def __init__(self, session: _TokenSession, handle: Any) -> None:
        self._session, self._handle = session, handle

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _stays_on_token()

    def __copy__(self: _Self) -> _Self:
        return self

    def __deepcopy__(self: _Self, memo: dict[int, object]) -> _Self:
        return self


class TokenECKey(_OnToken, ec.EllipticCurvePrivateKey):
    """An EC private key on a token: ``sign`` works, export does not."""

    def __init__(self, session: _TokenSession, handle: Any, public: ec.EllipticCurvePublicKey) -> None:
        super().__init__(session, handle)
        self._public = public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise InputError("a PKCS#11 EC key signs only ECDSA")
        digest, _ = _digest(bytes(data), signature_algorithm.algorithm)
        raw = self._session.sign(self._handle, digest, _binding().Mechanism.ECDSA)
        half = len(raw) // 2
        return utils.encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        _stays_on_token()

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _stays_on_token()


class TokenRSAKey(_OnToken, rsa.RSAPrivateKey):
    """An RSA private key on a token: PKCS#1 v1.5 ``sign`` works, export does not."""

    def __init__(self, session: _TokenSession, handle: Any, public: rsa.RSAPublicKey) -> None:
        super().__init__(session, handle)
        self._public = public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def sign(
        self,
        data: bytes,
        padding: padding.AsymmetricPadding,
        algorithm: hashes.HashAlgorithm | utils.Prehashed | utils.NoDigestInfo,
    ) -> bytes:
        from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

        if isinstance(algorithm, utils.NoDigestInfo):
            raise InputError("a PKCS#11 RSA key here signs messages, not raw DigestInfo-less digests")

        if not isinstance(padding, PKCS1v15):
            raise InputError("a PKCS#11 RSA key signs only PKCS#1 v1.5 here")
        digest, name = _digest(data, algorithm)
        prefix = _DIGEST_INFO.get(name)
        if prefix is None:
            raise InputError(f"a PKCS#11 RSA key signs only SHA-256/384/512 digests, not {name}")
        return self._session.sign(self._handle, prefix + digest, _binding().Mechanism.RSA_PKCS)

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        _stays_on_token()

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _stays_on_token()


# -- public entry points ----------------------------------------------------------------------
@contextlib.contextmanager
def _session(uri: Pkcs11Uri, *, login: bool, prompt: Prompt | None = None) -> Iterator[_TokenSession]:
    s = _TokenSession(uri, login=login, prompt=prompt)
    try:
        yield s
    finally:
        s.close()


def public_key_from_uri(uri: str, environ: Mapping[str, str] | None = None) -> PublicKey:
    """The public key a ``pkcs11:`` URI names, read off the token (``verify --key pkcs11:…``).

    Public objects need no login; a PIN is used only when one is given (URI or environment),
    for tokens that keep public keys private too.
    """
    parsed = Pkcs11Uri.parse(uri, environ)
    with _session(parsed, login=parsed.pin(environ) is not None) as s:
        return s.public_key()


class Pkcs11Signer(KeySigner):
    """:class:`KeySigner` over a key pair on a PKCS#11 token: same bundles, no key file.

    The session stays open (and logged in) until :meth:`close`, so a run that signs several
    bundles asks for the PIN once.
    """

    def __init__(self, uri: str, *, prompt: Prompt | None = None, tlog: RekorUploader | None = None) -> None:
        p11 = _binding()
        self.uri = Pkcs11Uri.parse(uri)
        self._token: _TokenSession | None = _TokenSession(self.uri, login=True, prompt=prompt)
        try:
            handle = self._token.find(p11.ObjectClass.PRIVATE_KEY)
            if handle is None:
                raise InputError(
                    f"no private key {self.uri.key_name} on PKCS#11 token {self.uri.token_name}",
                    hint="check object= or id= in the pkcs11: URI; pkcs11-tool -O --login lists "
                    "the token's objects",
                )
            public = self._token.public_key()
            key: TokenECKey | TokenRSAKey
            if isinstance(public, ec.EllipticCurvePublicKey):
                key = TokenECKey(self._token, handle, public)
            elif isinstance(public, rsa.RSAPublicKey):
                key = TokenRSAKey(self._token, handle, public)
            else:  # Ed25519 public keys are refused by _checked_public
                raise InputError(f"unsupported PKCS#11 key type {type(public).__name__}")
        except BaseException:
            self.close()
            raise
        self._use_key(key, self.uri.object or self.uri.key_name, tlog)

    def describe(self) -> str:
        return (
            f"{describe_key(self.key)} PKCS#11 key {self.uri.key_name} on token "
            f"{self.uri.token_name} (hint {key_hint_cosign(self.key)})"
        )

    def close(self) -> None:
        if self._token is not None:
            self._token.close()
            self._token = None

