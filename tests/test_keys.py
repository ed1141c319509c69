"""Key files: cosign's encrypted format (read and write), PEM keys, passwords, hints."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from oci_model_sign.errors import InputError
from oci_model_sign.signing import keys

COSIGN_KEYS = [
    (
        "sigstore-cosign/keys/pemcosignkey.key",
        b"hello",
        "sigstore-cosign/keys/pemcosignkey.derived.pub",
    ),
    (
        "sigstore-cosign/keys/pemsigstorekey.key",
        b"hello",
        "sigstore-cosign/keys/pemsigstorekey.derived.pub",
    ),
    (
        "sigstore-rs/keys/cosign_generated_encrypted_empty_private.key",
        b"",
        "sigstore-rs/keys/cosign_generated_encrypted_empty_private.derived.pub",
    ),
    (
        "policy-controller/examples-keys/cosign.key",
        b"",
        "policy-controller/examples-keys/cosign.pub",
    ),
]


@pytest.mark.parametrize(("key", "password", "pub"), COSIGN_KEYS)
def test_cosign_key_vectors_decrypt_to_their_public_key(
    interop: Path, key: str, password: bytes, pub: str
) -> None:
    private = keys.load_private_key(interop / key, password)
    assert keys.public_key_pem(private) == (interop / pub).read_bytes()


def test_sec1_inner_key_is_rejected_like_cosign(interop: Path) -> None:
    with pytest.raises(InputError, match="not PKCS#8"):
        keys.load_private_key(interop / "sigstore-cosign/keys/pemcosigneckey.key", b"hello")


def test_wrong_password_names_the_file(interop: Path) -> None:
    with pytest.raises(InputError) as info:
        keys.load_private_key(interop / "policy-controller/examples-keys/cosign.key", b"nope")
    assert info.value.message == "wrong password for cosign.key"


def test_generated_key_pair_round_trips(tmp_path: Path) -> None:
    key_path, pub_path = keys.generate_key_pair(tmp_path, b"s3cret")
    assert (key_path.name, pub_path.name) == ("cosign.key", "cosign.pub")
    private = keys.load_private_key(key_path, b"s3cret")
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp256r1"
    assert keys.public_key_pem(private) == pub_path.read_bytes()
    assert keys.public_key_pem(keys.load_public_key(pub_path)) == pub_path.read_bytes()


def test_generated_key_file_has_cosign_layout(tmp_path: Path) -> None:
    key_path, _ = keys.generate_key_pair(tmp_path, b"")
    text = key_path.read_text()
    lines = text.splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert lines[-1] == "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert all(len(line) == 64 for line in lines[1:-2])
    body = base64.b64decode("".join(lines[1:-1]))
    doc = json.loads(body)
    salt, nonce, ct = doc["kdf"]["salt"], doc["cipher"]["nonce"], doc["ciphertext"]
    expected = (
        f'{{"kdf":{{"name":"scrypt","params":{{"N":65536,"r":8,"p":1}},"salt":"{salt}"}},'
        f'"cipher":{{"name":"nacl/secretbox","nonce":"{nonce}"}},"ciphertext":"{ct}"}}'
    )
    assert body.decode() == expected
    assert len(base64.b64decode(salt)) == 32
    assert len(base64.b64decode(nonce)) == 24


def test_generated_private_key_is_owner_only(tmp_path: Path) -> None:
    key_path, _ = keys.generate_key_pair(tmp_path, b"pw")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "cosign.pub").write_text("keep me")
    with pytest.raises(InputError, match="already exists"):
        keys.generate_key_pair(tmp_path, b"pw")
    assert (tmp_path / "cosign.pub").read_text() == "keep me"
    assert not (tmp_path / "cosign.key").exists()


def test_generate_with_prefix(tmp_path: Path) -> None:
    key_path, pub_path = keys.generate_key_pair(tmp_path, b"pw", prefix="release")
    assert (key_path.name, pub_path.name) == ("release.key", "release.pub")


def _write_cosign_doc(path: Path, doc: dict[str, object]) -> None:
    body = base64.b64encode(json.dumps(doc).encode()).decode()
    path.write_text(
        f"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{body}\n"
        "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )


def test_unsupported_scrypt_parameters_are_refused_before_deriving(tmp_path: Path) -> None:
    path = tmp_path / "big.key"
    _write_cosign_doc(
        path,
        {
            "kdf": {"name": "scrypt", "params": {"N": 1 << 24, "r": 8, "p": 1}, "salt": "AAAA"},
            "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(b"\0" * 24).decode()},
            "ciphertext": "AAAA",
        },
    )
    with pytest.raises(InputError, match="unsupported scrypt parameters"):
        keys.load_private_key(path, b"")


@pytest.mark.parametrize(
    "content",
    [
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nbm90IGpzb24=\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n!!!\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
        "just some text\n",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
)
def test_corrupt_key_file_is_one_line_input_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        keys.load_private_key(path, b"")
    assert "\n" not in info.value.one_line()


def test_truncated_cosign_ciphertext_reads_as_wrong_password(tmp_path: Path) -> None:
    key_path, _ = keys.generate_key_pair(tmp_path, b"pw")
    lines = key_path.read_text().splitlines()
    doc = json.loads(base64.b64decode("".join(lines[1:-1])))
    doc["ciphertext"] = base64.b64encode(base64.b64decode(doc["ciphertext"])[:-1]).decode()
    _write_cosign_doc(key_path, doc)
    with pytest.raises(InputError, match="wrong password"):
        keys.load_private_key(key_path, b"pw")


def _pem_key(
    key: keys.PrivateKey, fmt: serialization.PrivateFormat, password: bytes | None
) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc)


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
@pytest.mark.parametrize("password", [None, b"pem-pass"])
def test_plain_pem_keys_load(
    tmp_path: Path, fmt: serialization.PrivateFormat, password: bytes | None
) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "k.pem"
    path.write_bytes(_pem_key(key, fmt, password))
    loaded = keys.load_private_key(path, password)
    assert keys.public_key_pem(loaded) == keys.public_key_pem(key)


def test_unencrypted_pem_ignores_a_given_password(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "k.pem"
    path.write_bytes(_pem_key(key, serialization.PrivateFormat.PKCS8, None))
    assert keys.public_key_pem(keys.load_private_key(path, b"unused")) == keys.public_key_pem(key)


def test_encrypted_pem_wrong_password(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(
        _pem_key(
            ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8, b"right"
        )
    )
    with pytest.raises(InputError, match=r"wrong password for k\.pem"):
        keys.load_private_key(path, b"wrong")


def test_unsupported_curve_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(
        _pem_key(ec.generate_private_key(ec.SECP256K1()), serialization.PrivateFormat.PKCS8, None)
    )
    with pytest.raises(InputError, match="unsupported elliptic curve"):
        keys.load_private_key(path, None)


def test_small_rsa_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path.write_bytes(_pem_key(small, serialization.PrivateFormat.PKCS8, None))
    with pytest.raises(InputError, match="2048"):
        keys.load_private_key(path, None)


def test_password_comes_from_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "from-cosign")
    assert keys.resolve_password(prompt=lambda _: "typed") == b"from-cosign"
    monkeypatch.setenv("OMSIGN_PASSWORD", "")
    assert keys.resolve_password(prompt=lambda _: "typed") == b""


def test_password_prompt_is_used_without_environment() -> None:
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return "typed"

    assert keys.resolve_password(prompt=prompt, what="cosign.key") == b"typed"
    assert "cosign.key" in asked[0]


def test_no_password_and_no_terminal_is_input_error_with_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keys, "_tty", lambda: False)
    with pytest.raises(InputError) as info:
        keys.resolve_password()
    assert info.value.hint is not None and "COSIGN_PASSWORD" in info.value.hint


def test_encrypted_key_without_password_uses_environment(
    interop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "hello")
    key = keys.load_private_key(interop / "sigstore-cosign/keys/pemsigstorekey.key", None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)


def test_load_public_key_pkix_and_pkcs1(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs1 = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    (tmp_path / "rsa.pub").write_bytes(pkcs1)
    assert isinstance(keys.load_public_key(tmp_path / "rsa.pub"), rsa.RSAPublicKey)
    ed = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "ed.pub").write_bytes(keys.public_key_pem(ed))
    assert isinstance(keys.load_public_key(tmp_path / "ed.pub"), ed25519.Ed25519PublicKey)


def test_load_public_key_rejects_non_keys(tmp_path: Path) -> None:
    (tmp_path / "x.pub").write_text(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    with pytest.raises(InputError, match="not a PEM public key"):
        keys.load_public_key(tmp_path / "x.pub")
    with pytest.raises(InputError, match="cannot read"):
        keys.load_public_key(tmp_path / "missing.pub")


def test_the_one_public_key_loader_takes_pem_files_bytes_and_keys_but_not_der(tmp_path: Path) -> None:
    """Policies and signers share ``keys.load_public_key``; like cosign's
    ``UnmarshalPEMToPublicKey`` it reads PEM only."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = keys.public_key_pem(key)
    assert keys.public_key_der(keys.load_public_key(pem)) == keys.public_key_der(key)
    assert keys.load_public_key(key) is key
    (tmp_path / "k.der").write_bytes(keys.public_key_der(key))
    with pytest.raises(InputError, match="not a PEM public key"):
        keys.load_public_key(tmp_path / "k.der")
    assert keys.public_key_der(keys.public_key_from_der(keys.public_key_der(key))) == keys.public_key_der(key)


def test_cosign_hint_is_base64_sha256_of_der(interop: Path) -> None:
    pub = keys.load_public_key(interop / "tobby-fetch/legacy-attached/captured/cosign.pub")
    der_sha = "dc2bcfdb0402cd0845f59232655c3ab2a53d55849d4665579efe45c6cc753478"
    assert keys.key_hint_cosign(pub) == base64.b64encode(bytes.fromhex(der_sha)).decode()


def test_cosign_hint_matches_a_real_cosign_bundle(interop: Path) -> None:
    pub = keys.load_public_key(interop / "tobby-fetch/bundle-format/captured/bundle-cosign.pub")
    bundle = json.loads(
        (interop / "tobby-fetch/bundle-format/captured/bundle-sigstore.json").read_text()
    )
    assert keys.key_hint_cosign(pub) == bundle["verificationMaterial"]["publicKey"]["hint"]


def test_model_signing_hint_matches_model_signing(tmp_path: Path) -> None:
    from model_signing._signing import sign_ec_key

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "k.pem"
    path.write_bytes(_pem_key(key, serialization.PrivateFormat.PKCS8, None))
    material = sign_ec_key.Signer(path)._get_verification_material()
    assert material.public_key is not None
    assert keys.key_hint_model_signing(key) == material.public_key.hint
    assert keys.key_hint_model_signing(key) == hashlib.sha256(keys.public_key_pem(key)).hexdigest()


@pytest.mark.parametrize(
    ("curve", "hash_name"),
    [(ec.SECP256R1(), "sha256"), (ec.SECP384R1(), "sha384"), (ec.SECP521R1(), "sha512")],
)
def test_ec_signatures_use_the_curve_hash(curve: ec.EllipticCurve, hash_name: str) -> None:
    key = ec.generate_private_key(curve)
    sig = keys.sign_bytes(key, b"data")
    algo = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[
        hash_name
    ]
    key.public_key().verify(sig, b"data", ec.ECDSA(algo))
    assert keys.verify_bytes_signature(key.public_key(), sig, b"data")
    assert not keys.verify_bytes_signature(key.public_key(), sig, b"other")


def test_ed25519_and_rsa_sign_and_verify() -> None:
    for key in (
        ed25519.Ed25519PrivateKey.generate(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ):
        sig = keys.sign_bytes(key, b"payload")
        assert keys.verify_bytes_signature(key.public_key(), sig, b"payload")
        assert keys.describe_key(key) in ("Ed25519", "RSA-2048")


def test_describe_key_names_the_curve() -> None:
    assert keys.describe_key(ec.generate_private_key(ec.SECP521R1())) == "ECDSA P-521"
