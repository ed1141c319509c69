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
import getpass
import itertools
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import unquote, unquote_to_bytes

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.utils import Buffer

from ..errors import InputError, UsageError
from .keys import Prompt, PublicKey, describe_key, key_hint_cosign
from .signers import KeySigner
from .tlog_upload import RekorUploader

if TYPE_CHECKING:
    import pkcs11

MODULE_PATH_ENV = ("OMSIGN_PKCS11_MODULE_PATH", "COSIGN_PKCS11_MODULE_PATH")
PIN_ENV = ("OMSIGN_PKCS11_PIN", "COSIGN_PKCS11_PIN")

_PATH_ATTRS = {"token", "slot-id", "object", "id", "type", "serial", "manufacturer", "model"}
# Library and slot descriptions narrow nothing omsign could mis-pick: accepted and ignored.
_IGNORED_PATH_ATTRS = {
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-description",
    "slot-manufacturer",
}
_QUERY_ATTRS = {"module-path", "pin-value", "pin-source"}
_EC_CURVES = {"secp256r1", "secp384r1", "secp521r1"}
# DER DigestInfo prefixes (RFC 8017 §9.2 note 1): CKM_RSA_PKCS signs DigestInfo || digest.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


# -- the URI ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` key URI; ``pin`` is resolved later (it may need the token)."""

    module_path: str
    token: str | None = None
    slot_id: int | None = None
    object: str | None = None
    id: bytes | None = None
    serial: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    pin_value: str | None = field(default=None, repr=False)
    pin_source: str | None = None

    @property
    def key_name(self) -> str:
        """How the key is named in messages: its label, else its id in hex."""
        if self.object is not None:
            return repr(self.object)
        assert self.id is not None
        return f"id {self.id.hex()}"

    @property
    def token_name(self) -> str:
        if self.slot_id is not None:
            return f"in slot {self.slot_id}"
        return f"{self.token!r}"

    @classmethod
    def parse(cls, uri: str, environ: Mapping[str, str] | None = None) -> Pkcs11Uri:
        """Parse and check ``uri`` the way cosign does; bad URIs are usage errors (exit 2)."""
        env = os.environ if environ is None else environ
        if not uri.lower().startswith("pkcs11:"):
            raise UsageError(f"{_redact(uri)} is not a pkcs11: URI")
        body = uri[len("pkcs11:") :]
        path_part, _, query_part = body.partition("?")
        path = _attributes(path_part, ";", _PATH_ATTRS | _IGNORED_PATH_ATTRS, "path")
        query = _attributes(query_part, "&", _QUERY_ATTRS, "query")

        def text(attrs: dict[str, bytes], name: str) -> str | None:
            raw = attrs.get(name)
            if raw is None:
                return None
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UsageError(f"pkcs11: URI attribute {name} is not UTF-8") from None

        slot_text = text(path, "slot-id")
        slot_id: int | None = None
        if slot_text is not None:
            if not slot_text.isdigit():
                raise UsageError(f"pkcs11: URI slot-id {slot_text!r} is not a number")
            slot_id = int(slot_text)
        token = text(path, "token")
        if not token and slot_id is None:
            raise UsageError(
                "pkcs11: URI names no token: one of token and slot-id must be set",
                hint="e.g. pkcs11:token=MyToken;object=my-key?module-path=/path/to/module.so",
            )
        label = text(path, "object")
        key_id = path.get("id")
        if not label and not key_id:
            raise UsageError("pkcs11: URI names no key: one of object and id must be set")
        kind = text(path, "type")
        if kind not in (None, "private", "public"):
            raise UsageError(f"pkcs11: URI type={kind} does not name a key pair (use private or public)")
        module = text(query, "module-path") or next((env[n] for n in MODULE_PATH_ENV if env.get(n)), "")
        if not module:
            raise UsageError(
                "pkcs11: URI has no module-path",
                hint=f"add ?module-path=/path/to/module.so or set {MODULE_PATH_ENV[0]}",
            )
        if not os.path.isabs(module):
            raise UsageError(f"pkcs11: module-path {module!r} is not an absolute path")
        if not os.path.isfile(module):
            raise InputError(f"PKCS#11 module {module} does not exist or is not a file")
        return cls(
            module_path=module,
            token=token or None,
            slot_id=slot_id,
            object=label or None,
            id=key_id or None,
            serial=text(path, "serial"),
            manufacturer=text(path, "manufacturer"),
            model=text(path, "model"),
            pin_value=text(query, "pin-value"),
            pin_source=text(query, "pin-source"),
        )

    def pin(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The PIN from the URI (``pin-value``, then ``pin-source``), then the environment."""
        env = os.environ if environ is None else environ
        if self.pin_value is not None:
            return self.pin_value
        if self.pin_source is not None:
            return _read_pin_source(self.pin_source)
        for name in PIN_ENV:
            if name in env:
                return env[name]
        return None


def _redact(uri: str) -> str:
    """The URI without its query (which may hold ``pin-value``), for messages."""
    return uri.partition("?")[0]


def _attributes(part: str, sep: str, known: set[str], where: str) -> dict[str, bytes]:
    attrs: dict[str, bytes] = {}
    if not part:
        return attrs
    for item in part.split(sep):
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = unquote(name).strip()
        if not eq or not name:
            raise UsageError(f"pkcs11: URI {where} attribute {item.split('=')[0]!r} has no value")
        if name not in known:
            raise UsageError(
                f"pkcs11: URI {where} attribute {name!r} is not supported",
                hint="omsign honours " + ", ".join(sorted(known - _IGNORED_PATH_ATTRS)),
            )
        if name in attrs:
            raise UsageError(f"pkcs11: URI attribute {name!r} is given twice")
        attrs[name] = unquote_to_bytes(value)  # RFC 7512: '+' is a plus sign, not a space
    for ignored in _IGNORED_PATH_ATTRS:
        attrs.pop(ignored, None)
    return attrs


def _read_pin_source(source: str) -> str:
    """``pin-source=file:/path`` (RFC 7512 suggests ``file:``) or a plain absolute path."""
    if source.startswith("|"):
        raise UsageError("pkcs11: pin-source programs (|command) are not supported", hint="use file:/path")
    path = source
    if source.startswith("file:"):
        path = source[len("file:") :]
        if path.startswith("//"):
            host, _, rest = path[2:].partition("/")
            if host not in ("", "localhost"):
                raise UsageError(f"pkcs11: pin-source {source!r} names a remote host")
            path = "/" + rest
    try:
        data = Path(path).read_bytes()[:4096]
    except OSError as exc:
        raise InputError(f"cannot read PKCS#11 pin-source {path}: {exc.strerror or exc}") from exc
    text = data.decode("utf-8", "replace")
    return text.removesuffix("\n").removesuffix("\r")


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


def _tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


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
        if prompt is None:
            if not _tty():
                raise InputError(
                    f"no PIN for {where} and no terminal to ask for one",
                    hint=f"set {' or '.join(PIN_ENV)}, or add pin-value/pin-source to the URI",
                )
            prompt = getpass.getpass
        try:
            return prompt(f"Enter PIN for {where}: ")
        except (EOFError, KeyboardInterrupt) as exc:
            raise InputError(f"no PIN entered for {where}") from exc

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


class TokenECKey(ec.EllipticCurvePrivateKey):
    """An EC private key on a token: ``sign`` works, export does not."""

    def __init__(self, session: _TokenSession, handle: Any, public: ec.EllipticCurvePublicKey) -> None:
        self._session, self._handle, self._public = session, handle, public

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

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _stays_on_token()

    def __copy__(self) -> TokenECKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> TokenECKey:
        return self


class TokenRSAKey(rsa.RSAPrivateKey):
    """An RSA private key on a token: PKCS#1 v1.5 ``sign`` works, export does not."""

    def __init__(self, session: _TokenSession, handle: Any, public: rsa.RSAPublicKey) -> None:
        self._session, self._handle, self._public = session, handle, public

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

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _stays_on_token()

    def __copy__(self) -> TokenRSAKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> TokenRSAKey:
        return self


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

