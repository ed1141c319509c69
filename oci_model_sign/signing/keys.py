"""Signing keys: cosign's encrypted key files, plain PEM keys, and key hints.

cosign users already hold ``cosign.key`` files (``ENCRYPTED SIGSTORE PRIVATE KEY``), so omsign
reads and writes that format byte-for-byte (go-securesystemslib ``encrypted``: scrypt + NaCl
secretbox over PKCS#8 DER) instead of inventing its own. Plain PEM keys (PKCS#8 or SEC1,
encrypted or not) are accepted too, because model-signing users hold those.

Key types and the hash each one signs with (the key's default hash, as cosign's
``algorithm_registry`` and model-signing's ``get_ec_key_hash`` both choose it):

============  ===================  =========================================================
key           signature            who verifies it
============  ===================  =========================================================
P-256         ECDSA SHA-256 (DER)  cosign ``verify --key`` and model-signing: the default
P-384         ECDSA SHA-384 (DER)  model-signing; cosign only with
                                   ``--signature-digest-algorithm sha384`` (its verifier
                                   defaults to SHA-256)
P-521         ECDSA SHA-512 (DER)  as P-384, with ``sha512``
Ed25519       pure Ed25519         cosign's ``LoadVerifier`` builds a pure verifier; cosign
                                   itself *signs* Ed25519ph, so treat as untested;
                                   model-signing rejects Ed25519
RSA >= 2048   PKCS#1 v1.5 SHA-256  cosign; model-signing rejects RSA
============  ===================  =========================================================
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ..errors import InputError

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PUBLIC_KEY_TYPES = (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, rsa.RSAPublicKey)

SIGSTORE_KEY_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_KEY_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"
PASSWORD_ENV = ("OMSIGN_PASSWORD", "COSIGN_PASSWORD")

# go-securesystemslib encrypted.go accepts exactly these (legacy, standard, OWASP); anything
# else would let a hostile key file demand gigabytes of scrypt memory.
_SCRYPT_PARAMS = {(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)}
_SCRYPT_DEFAULT = (65536, 8, 1)
_SCRYPT_MAXMEM = 300 * 1024 * 1024  # 128*r*N = 128 MiB for the largest allowed N
_MAX_KEY_FILE = 1024 * 1024
_EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

Prompt = Callable[[str], str]


def _tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def resolve_password(
    env: Sequence[str] = PASSWORD_ENV,
    prompt: Prompt | None = None,
    *,
    what: str = "the private key",
) -> bytes:
    """The key password from the environment, else from the terminal.

    An empty variable is a valid (empty) password, as with ``COSIGN_PASSWORD=""``. Prompting
    only happens with a terminal on stdin: in CI a hanging prompt is worse than a clear error.
    ``prompt`` replaces ``getpass.getpass`` (tests, or a CLI with its own prompt).
    """
    for name in env:
        value = os.environ.get(name)
        if value is not None:
            return value.encode("utf-8")
    return ask_secret(prompt, "password", what, hint=f"set {' or '.join(env)} (may be empty)").encode("utf-8")


def ask_secret(prompt: Prompt | None, kind: str, where: str, *, hint: str) -> str:
    """Ask for a key's ``kind`` of secret ("password", "PIN") on the terminal, else fail clearly.

    Only with a terminal on stdin: in CI a prompt that hangs is worse than an error naming the
    variable to set (``hint``).
    """
    if prompt is None:
        if not _tty():
            raise InputError(f"no {kind} for {where} and no terminal to ask for one", hint=hint)
        prompt = getpass.getpass
    try:
        return prompt(f"Enter {kind} for {where}: ")
    except (EOFError, KeyboardInterrupt) as exc:
        raise InputError(f"no {kind} entered for {where}") from exc


def _read_limited(path: Path, what: str) -> bytes:
    import stat

    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{what} {path} is not a regular file")
        size = st.st_size
        if size > _MAX_KEY_FILE:
            raise InputError(f"{what} {path} is {size} bytes: not a key file")
        return path.read_bytes()
    except InputError:
        raise
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(label, base64 body) of each PEM block; headers such as Proc-Type are kept in the body."""
    blocks: list[tuple[str, bytes]] = []
    label: str | None = None
    body: list[bytes] = []
    for raw in data.splitlines():
        line = raw.strip()
        if label is None:
            if line.startswith(b"-----BEGIN ") and line.endswith(b"-----"):
                label = line[len(b"-----BEGIN ") : -5].decode("ascii", "replace")
                body = []
        elif line == f"-----END {label}-----".encode():
            blocks.append((label, b"\n".join(body)))
            label = None
        else:
            body.append(line)
    return blocks


def _check_key(key: object, path: Path) -> PrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _EC_CURVES:
            raise InputError(
                f"{path.name}: unsupported elliptic curve {key.curve.name}",
                hint="use P-256 (cosign's and model-signing's default), P-384 or P-521",
            )
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise InputError(f"{path.name}: RSA keys under 2048 bits are not accepted")
        return key
    raise InputError(
        f"{path.name}: unsupported key type {type(key).__name__}",
        hint="use an ECDSA P-256 key (cosign generate-key-pair / omsign generate-key-pair)",
    )


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32)


def _b64field(obj: object, *keys: str) -> bytes:
    value: object = obj
    for k in keys:
        if not isinstance(value, dict) or k not in value:
            raise ValueError(f"missing {'.'.join(keys)}")
        value = value[k]
    if not isinstance(value, str):
        raise ValueError(f"{'.'.join(keys)} is not a string")
    return base64.b64decode(value, validate=True)


def _decrypt_cosign(body: bytes, password: bytes, path: Path) -> bytes:
    import nacl.exceptions
    import nacl.secret

    try:
        doc = json.loads(base64.b64decode(b"".join(body.split()), validate=True))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        kdf = doc.get("kdf")
        cipher = doc.get("cipher")
        if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
            raise ValueError("kdf is not scrypt")
        if not isinstance(cipher, dict) or cipher.get("name") != "nacl/secretbox":
            raise ValueError("cipher is not nacl/secretbox")
        params = kdf.get("params")
        if not isinstance(params, dict):
            raise ValueError("missing kdf.params")
        triple = (params.get("N"), params.get("r"), params.get("p"))
        salt = _b64field(kdf, "salt")
        nonce = _b64field(cipher, "nonce")
        ciphertext = _b64field(doc, "ciphertext")
        if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
            raise ValueError(f"nonce is {len(nonce)} bytes, expected 24")
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name} is not a valid cosign key file: {exc}") from exc
    if triple not in _SCRYPT_PARAMS or not all(isinstance(x, int) for x in triple):
        raise InputError(
            f"{path.name}: unsupported scrypt parameters N={triple[0]} r={triple[1]} p={triple[2]}",
            hint="cosign accepts only N=32768/65536/131072 with r=8 p=1",
        )
    n, r, p = triple
    key = _scrypt(password, salt, n, r, p)
    try:
        return bytes(nacl.secret.SecretBox(key).decrypt(ciphertext, nonce))
    except nacl.exceptions.CryptoError as exc:
        raise InputError(f"wrong password for {path.name}") from exc


def load_private_key(
    path: str | os.PathLike[str],
    password: bytes | None,
    *,
    prompt: Prompt | None = None,
) -> PrivateKey:
    """Load a cosign encrypted key or a PEM private key (PKCS#8 or SEC1).

    ``password=None`` means "ask": the environment (``OMSIGN_PASSWORD``, ``COSIGN_PASSWORD``),
    then ``prompt``/the terminal, and only for keys that are actually encrypted.
    """
    p = Path(path)
    data = _read_limited(p, "private key")
    blocks = _pem_blocks(data)
    if not blocks:
        raise InputError(f"{p.name} is not a PEM private key file")
    label, body = blocks[0]
    if label in (SIGSTORE_KEY_LABEL, COSIGN_KEY_LABEL):
        pw = password if password is not None else resolve_password(prompt=prompt, what=p.name)
        der = _decrypt_cosign(body, pw, p)
        if not _is_pkcs8(der):
            # cosign's LoadPrivateKey uses x509.ParsePKCS8PrivateKey, which refuses SEC1 with
            # "use ParseECPrivateKey instead for this key format".
            raise InputError(
                f"{p.name}: the encrypted key inside is not PKCS#8 (a SEC1 EC key?); "
                "cosign rejects it too",
                hint="re-import the plain key: omsign/cosign import-key-pair",
            )
        try:
            key = serialization.load_der_private_key(der, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise InputError(f"{p.name}: the encrypted key inside is unreadable: {exc}") from exc
        return _check_key(key, p)
    if label in ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"):
        encrypted = label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in body
        pw_or_none: bytes | None = None
        if encrypted:
            pw_or_none = (
                password if password is not None else resolve_password(prompt=prompt, what=p.name)
            )
        pem = f"-----BEGIN {label}-----\n".encode() + body + f"\n-----END {label}-----\n".encode()
        try:
            key = serialization.load_pem_private_key(pem, password=pw_or_none)
        except (ValueError, TypeError) as exc:
            if encrypted and ("password" in str(exc).lower() or "decrypt" in str(exc).lower()):
                raise InputError(f"wrong password for {p.name}") from exc
            raise InputError(f"{p.name} is not a valid private key: {exc}") from exc
        except UnsupportedAlgorithm as exc:
            raise InputError(f"{p.name}: unsupported key algorithm: {exc}") from exc
        return _check_key(key, p)
    raise InputError(
        f"{p.name}: PEM block {label!r} is not a private key",
        hint=f"expected {SIGSTORE_KEY_LABEL}, PRIVATE KEY or EC PRIVATE KEY",
    )


def _der_header(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content length) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        return tag, pos, first
    n = first & 0x7F
    if n == 0 or n > 4 or pos + n > len(data):
        raise ValueError("bad DER length")
    return tag, pos + n, int.from_bytes(data[pos : pos + n], "big")


def _is_pkcs8(der: bytes) -> bool:
    """PrivateKeyInfo is SEQUENCE{INTEGER, SEQUENCE AlgorithmIdentifier, ...}; SEC1 has an
    OCTET STRING where PKCS#8 has the AlgorithmIdentifier. cryptography's DER loader takes
    both, but cosign's ``x509.ParsePKCS8PrivateKey`` only the first, so we check by hand."""
    try:
        tag, pos, _ = _der_header(der, 0)
        if tag != 0x30:
            return False
        tag, pos, length = _der_header(der, pos)
        if tag != 0x02:
            return False
        tag, _, _ = _der_header(der, pos + length)
        return tag == 0x30
    except ValueError:
        return False


def load_public_key(source: str | os.PathLike[str] | bytes | PublicKey) -> PublicKey:
    """A PEM ``PUBLIC KEY`` (PKIX) or ``RSA PUBLIC KEY`` (PKCS#1) from a file or bytes, as
    ``cosign verify --key`` reads it (``cryptoutils.UnmarshalPEMToPublicKey``: PEM only).

    The one loader for verification keys: policies, tests and the CLI all come through here.
    """
    if isinstance(source, PUBLIC_KEY_TYPES):
        key_obj: object = source
        name = "public key"
    else:
        if isinstance(source, bytes):
            data, name = source, "public key"
        else:
            p = Path(source)
            data, name = _read_limited(p, "public key"), p.name
        blocks = _pem_blocks(data)
        if not blocks or blocks[0][0] not in ("PUBLIC KEY", "RSA PUBLIC KEY"):
            raise InputError(
                f"{name} is not a PEM public key",
                hint="pass the .pub file written by `omsign generate-key-pair` or `cosign generate-key-pair`",
            )
        label, body = blocks[0]
        pem = f"-----BEGIN {label}-----\n".encode() + body + f"\n-----END {label}-----\n".encode()
        try:
            key_obj = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise InputError(f"{name} is not a valid public key: {exc}") from exc
    return _check_public_key(key_obj, name)


def public_key_from_der(der: bytes, what: str = "public key") -> PublicKey:
    """A DER SubjectPublicKeyInfo (trusted roots store Rekor and CT keys this way)."""
    try:
        key_obj = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{what} is not a DER public key: {exc}") from exc
    return _check_public_key(key_obj, what)


def _check_public_key(key: object, name: str) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _EC_CURVES:
        raise InputError(f"{name}: unsupported elliptic curve {key.curve.name}")
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise InputError(f"{name}: unsupported public key type {type(key).__name__}")
    return key


def key_fingerprint(key: PrivateKey | PublicKey) -> str:
    """``sha256:<hex>`` of the DER SubjectPublicKeyInfo (the bytes cosign's hint hashes)."""
    return "sha256:" + hashlib.sha256(public_key_der(key)).hexdigest()


def public_of(key: PrivateKey | PublicKey) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        return key.public_key()
    return key


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    """PEM SubjectPublicKeyInfo, the bytes cosign writes to ``cosign.pub``."""
    return public_of(key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_der(key: PrivateKey | PublicKey) -> bytes:
    """DER SubjectPublicKeyInfo (what cosign's hint and Rekor entries hash)."""
    return public_of(key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_hint_cosign(key: PrivateKey | PublicKey) -> str:
    """base64(sha256(DER SPKI)): what cosign/sigstore-go put in ``publicKey.hint``."""
    return base64.b64encode(hashlib.sha256(public_key_der(key)).digest()).decode("ascii")


def key_hint_model_signing(key: PrivateKey | PublicKey) -> str:
    """sha256(PEM SPKI bytes) as hex: model-signing 1.1.1 rejects any other non-empty hint."""
    return hashlib.sha256(public_key_pem(key)).hexdigest()


def describe_key(key: PrivateKey | PublicKey) -> str:
    """Short human name, e.g. ``ECDSA P-256``."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"ECDSA {_EC_CURVES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    return f"RSA-{key.key_size}"


def ec_hash(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    """The curve's default hash, as cosign and model-signing choose it."""
    size = key.curve.key_size
    if size == 256:
        return hashes.SHA256()
    if size == 384:
        return hashes.SHA384()
    if size == 521:
        return hashes.SHA512()
    raise InputError(f"unsupported elliptic curve {key.curve.name}")


def sign_bytes(key: PrivateKey, data: bytes) -> bytes:
    """Sign ``data`` the way cosign does for this key type (ECDSA DER / Ed25519 / RSA v1.5)."""
    from cryptography.hazmat.primitives.asymmetric import padding

    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(ec_hash(key)))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def verify_bytes_signature(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` over ``data`` verifies: the one signature check of omsign.

    The mirror of :func:`sign_bytes`, and what sigstore's Go verifiers accept: ECDSA with the
    curve's own hash and an ASN.1 DER signature only (``ecdsa.VerifyASN1``; a raw IEEE-P1363
    ``r||s`` is refused), RSA PKCS#1 v1.5 with SHA-256, pure Ed25519.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(ec_hash(key)))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def encrypt_cosign_key(key: PrivateKey, password: bytes) -> bytes:
    """The PEM bytes of ``key`` in cosign's encrypted format (scrypt N=65536 + secretbox)."""
    import nacl.secret

    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = secrets.token_bytes(32)
    nonce = secrets.token_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    n, r, p = _SCRYPT_DEFAULT
    box = nacl.secret.SecretBox(_scrypt(password, salt, n, r, p))
    ciphertext = box.encrypt(der, nonce).ciphertext

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode("ascii")

    # Go encoding/json of go-securesystemslib's structs: compact, struct field order.
    body = (
        f'{{"kdf":{{"name":"scrypt","params":{{"N":{n},"r":{r},"p":{p}}},"salt":"{b64(salt)}"}},'
        f'"cipher":{{"name":"nacl/secretbox","nonce":"{b64(nonce)}"}},'
        f'"ciphertext":"{b64(ciphertext)}"}}'
    ).encode("ascii")
    return _pem_encode(SIGSTORE_KEY_LABEL, body)


def _pem_encode(label: str, data: bytes) -> bytes:
    """Go ``pem.EncodeToMemory``: 64-column base64 lines."""
    b64 = base64.b64encode(data).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (
        f"-----BEGIN {label}-----\n" + "".join(x + "\n" for x in lines) + f"-----END {label}-----\n"
    ).encode("ascii")


def generate_key_pair(
    directory: str | os.PathLike[str], password: bytes, prefix: str = "cosign"
) -> tuple[Path, Path]:
    """Write ``<prefix>.key`` (0600, cosign format) and ``<prefix>.pub``; never overwrite."""
    d = Path(directory)
    key_path = d / f"{prefix}.key"
    pub_path = d / f"{prefix}.pub"
    for existing in (key_path, pub_path):
        if existing.exists():
            raise InputError(
                f"{existing} already exists: refusing to overwrite it",
                hint="move it away or choose another --output-key-prefix",
            )
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = encrypt_cosign_key(key, password)
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(public_key_pem(key))
    except FileExistsError as exc:
        raise InputError(f"{exc.filename} already exists: refusing to overwrite it") from exc
    except OSError as exc:
        raise InputError(f"cannot write key pair to {d}: {exc.strerror or exc}") from exc
    return key_path, pub_path
