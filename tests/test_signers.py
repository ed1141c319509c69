"""Signers produce bundles that cosign-shaped and model-signing verifiers accept."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from oci_model_sign.errors import InputError, IntegrityError
from oci_model_sign.oci import mediatypes
from oci_model_sign.signing import dsse, keyless, keys, modelsig, signers, statements
from tests.pki import make_test_ca

ROOT = Path(__file__).resolve().parent.parent
# The project's venv, else the one running the tests (a worktree shares its venv).
MODEL_SIGNING = next(
    (p for p in (ROOT / ".venv" / "bin" / "model_signing", Path(sys.executable).parent / "model_signing") if p.exists()),
    ROOT / ".venv" / "bin" / "model_signing",
)
DIGEST = "sha256:" + hashlib.sha256(b"a manifest").hexdigest()

MODEL_FILES = {
    "config.json": b'{"arch": "tiny"}',
    "weights/part-1.safetensors": b"\x01" * 4096,
    "weights-extra.bin": b"\x02" * 10,
    "a/b": b"nested",
    "a-b": b"dashed",
}


def _model(root: Path) -> list[tuple[str, str]]:
    """A model folder on disk and the (path, digest) list an OCI manifest would give."""
    files = []
    for rel, data in MODEL_FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        files.append((rel, "sha256:" + hashlib.sha256(data).hexdigest()))
    return files


def _ms_verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MODEL_SIGNING), "verify", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def cosign_key(tmp_path: Path) -> tuple[Path, Path]:
    return keys.generate_key_pair(tmp_path / "keys", b"pw")


def _bundle(raw: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(raw)
    return doc


# ----------------------------------------------------------------------------- DSSE


def test_pae_matches_the_dsse_spec_example() -> None:
    assert (
        dsse.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_matches_sigstore_python() -> None:
    from sigstore.dsse import _pae

    body = statements.cosign_sign_statement(DIGEST)
    assert dsse.pae(mediatypes.IN_TOTO_PAYLOAD_TYPE, body) == _pae(
        mediatypes.IN_TOTO_PAYLOAD_TYPE, body
    )


def test_envelope_round_trips_and_verifies() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    env = dsse.sign_envelope(key, b'{"x":1}')
    parsed = dsse.Envelope.from_json(env.to_json())
    assert parsed == env
    assert dsse.verify_envelope(key.public_key(), parsed)
    assert "keyid" not in json.loads(env.to_json())["signatures"][0]


def test_envelope_with_two_signatures_or_tampered_payload_does_not_verify() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    env = dsse.sign_envelope(key, b"payload")
    two = dsse.Envelope(env.payload, env.payload_type, env.signatures * 2)
    assert not dsse.verify_envelope(key.public_key(), two)
    tampered = dsse.Envelope(b"other", env.payload_type, env.signatures)
    assert not dsse.verify_envelope(key.public_key(), tampered)


@pytest.mark.parametrize(
    "raw",
    [b"[]", b"{", b'{"payload":"!!","payloadType":"t","signatures":[]}', b'{"payload":""}'],
)
def test_malformed_envelopes_are_integrity_errors(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        dsse.Envelope.from_json(raw)


# ----------------------------------------------------------------------------- key signer


def test_key_bundle_has_cosign_v3_shape(cosign_key: tuple[Path, Path]) -> None:
    key_path, pub_path = cosign_key
    statement = statements.cosign_sign_statement(DIGEST)
    with signers.KeySigner(key_path, b"pw") as signer:
        bundle = _bundle(signer.sign_dsse(statement))
    pub = keys.load_public_key(pub_path)
    assert list(bundle) == ["mediaType", "verificationMaterial", "dsseEnvelope"]
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"] == {
        "publicKey": {"hint": keys.key_hint_cosign(pub)},
        "tlogEntries": [],
    }
    env = bundle["dsseEnvelope"]
    assert list(env) == ["payload", "payloadType", "signatures"]
    assert env["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(env["payload"]) == statement
    assert len(env["signatures"]) == 1 and list(env["signatures"][0]) == ["sig"]


def test_key_bundle_signature_verifies_over_pae(cosign_key: tuple[Path, Path]) -> None:
    key_path, pub_path = cosign_key
    raw = signers.KeySigner(key_path, b"pw").sign_dsse(statements.cosign_sign_statement(DIGEST))
    envelope = dsse.Envelope.from_dict(_bundle(raw)["dsseEnvelope"])
    assert dsse.verify_envelope(keys.load_public_key(pub_path), envelope)
    subject = json.loads(envelope.payload)["subject"][0]["digest"]["sha256"]
    assert "sha256:" + subject == DIGEST


def test_key_bundle_parses_with_sigstore_python_models(cosign_key: tuple[Path, Path]) -> None:
    """sigstore-python's protobuf models accept it. (``sigstore.models.Bundle`` itself only
    takes keyless bundles: it demands a certificate and exactly one tlog entry.)"""
    from sigstore.dsse import _pae
    from sigstore_models.bundle.v1 import Bundle

    key_path, pub_path = cosign_key
    raw = signers.KeySigner(key_path, b"pw").sign_dsse(statements.cosign_sign_statement(DIGEST))
    parsed = Bundle.from_json(raw)
    assert parsed.dsse_envelope is not None
    pub = keys.load_public_key(pub_path)
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    sig = parsed.dsse_envelope.signatures[0].sig
    pub.verify(
        sig,
        _pae(parsed.dsse_envelope.payload_type, parsed.dsse_envelope.payload),
        ec.ECDSA(keys.ec_hash(pub)),
    )


def test_model_signing_cli_accepts_key_bundle_built_from_digests(
    tmp_path: Path, cosign_key: tuple[Path, Path]
) -> None:
    """The key acceptance test: a cosign key, a statement from manifest digests only, and the
    real ``model_signing verify key`` on the folder."""
    key_path, pub_path = cosign_key
    model = tmp_path / "tiny-model"
    files = _model(model)
    statement = modelsig.model_signing_statement(model.name, files)
    with signers.KeySigner(key_path, b"pw") as signer:
        bundle = signer.sign_dsse(statement, for_model_signing=True)
    (model / "model.sig").write_bytes(bundle)
    result = _ms_verify(
        "key", str(model), "--public_key", str(pub_path), "--signature", str(model / "model.sig")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification succeeded" in result.stdout


def test_model_signing_bundle_matches_model_signing_key_signer_shape(
    cosign_key: tuple[Path, Path],
) -> None:
    key_path, pub_path = cosign_key
    bundle = _bundle(signers.KeySigner(key_path, b"pw").sign_dsse(b"{}", for_model_signing=True))
    assert bundle["verificationMaterial"] == {
        "publicKey": {"hint": keys.key_hint_model_signing(keys.load_public_key(pub_path))},
        "tlogEntries": [],
    }
    assert list(bundle["dsseEnvelope"]["signatures"][0]) == ["sig", "keyid"]
    assert bundle["dsseEnvelope"]["signatures"][0]["keyid"] == ""


def test_model_signing_library_verifies_p384_key_bundle(tmp_path: Path) -> None:
    from model_signing import verifying

    key = ec.generate_private_key(ec.SECP384R1())
    key_path = tmp_path / "p384.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    pub_path = tmp_path / "p384.pub"
    pub_path.write_bytes(keys.public_key_pem(key))
    model = tmp_path / "m"
    files = _model(model)
    sig = tmp_path / "model.sig"
    sig.write_bytes(
        signers.KeySigner(key_path, None).sign_dsse(
            modelsig.model_signing_statement("m", files), for_model_signing=True
        )
    )
    config = verifying.Config().use_elliptic_key_verifier(public_key=pub_path)  # type: ignore[no-untyped-call]
    config.verify(model, sig)


def test_ed25519_key_cannot_sign_for_model_signing(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "ed.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signer = signers.KeySigner(path, None)
    with pytest.raises(InputError, match="model-signing"):
        signer.sign_dsse(b"{}", for_model_signing=True)
    envelope = dsse.Envelope.from_dict(_bundle(signer.sign_dsse(b"{}"))["dsseEnvelope"])
    assert dsse.verify_envelope(key.public_key(), envelope)


def test_key_simple_signature_verifies_over_payload(interop: Path) -> None:
    key_path = interop / "policy-controller/examples-keys/cosign.key"
    pub = keys.load_public_key(interop / "policy-controller/examples-keys/cosign.pub")
    payload = statements.simple_signing_payload("reg.example/models/x", DIGEST)
    legacy = signers.KeySigner(key_path, b"").sign_simple(payload)
    assert keys.verify_bytes_signature(pub, base64.b64decode(legacy.signature_b64), payload)
    assert legacy.annotations() == {"dev.cosignproject.cosign/signature": legacy.signature_b64}


def test_key_signer_describes_itself(cosign_key: tuple[Path, Path]) -> None:
    signer = signers.KeySigner(cosign_key[0], b"pw")
    assert signer.describe().startswith("ECDSA P-256 key cosign.key")
    assert isinstance(signer, signers.Signer)


# ----------------------------------------------------------------------------- certificate signer


def test_model_signing_cli_accepts_certificate_bundle(tmp_path: Path) -> None:
    pki = make_test_ca(tmp_path / "pki")
    model = tmp_path / "cert-model"
    files = _model(model)
    signer = signers.CertificateSigner(pki.leaf_key_path, pki.leaf_path, [pki.intermediate_path])
    bundle = signer.sign_dsse(
        modelsig.model_signing_statement(model.name, files), for_model_signing=True
    )
    (model / "model.sig").write_bytes(bundle)
    result = _ms_verify(
        "certificate", str(model), "--signature", str(model / "model.sig"),
        "--certificate_chain", str(pki.root_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification succeeded" in result.stdout


def test_model_signing_rejects_certificate_bundle_from_another_ca(tmp_path: Path) -> None:
    pki = make_test_ca(tmp_path / "pki")
    other = make_test_ca(tmp_path / "other")
    model = tmp_path / "m"
    files = _model(model)
    signer = signers.CertificateSigner(pki.leaf_key_path, pki.leaf_path, [pki.intermediate_path])
    (model / "model.sig").write_bytes(
        signer.sign_dsse(modelsig.model_signing_statement("m", files), for_model_signing=True)
    )
    result = _ms_verify(
        "certificate", str(model), "--signature", str(model / "model.sig"),
        "--certificate_chain", str(other.root_path),
    )  # fmt: skip
    assert result.returncode != 0


def test_certificate_bundle_shapes(tmp_path: Path) -> None:
    pki = make_test_ca(tmp_path / "pki")
    signer = signers.CertificateSigner(pki.leaf_key_path, pki.leaf_path, [pki.intermediate_path])
    der = serialization.Encoding.DER
    leaf = base64.b64encode(pki.leaf_cert.public_bytes(der)).decode()
    inter = base64.b64encode(pki.intermediate_cert.public_bytes(der)).decode()
    cosign = _bundle(signer.sign_dsse(statements.cosign_sign_statement(DIGEST)))
    assert cosign["verificationMaterial"] == {"certificate": {"rawBytes": leaf}, "tlogEntries": []}
    ms = _bundle(signer.sign_dsse(b"{}", for_model_signing=True))
    assert ms["verificationMaterial"] == {
        "x509CertificateChain": {"certificates": [{"rawBytes": leaf}, {"rawBytes": inter}]},
        "tlogEntries": [],
    }
    env = dsse.Envelope.from_dict(cosign["dsseEnvelope"])
    assert dsse.verify_envelope(pki.leaf_key.public_key(), env)
    assert "omsign test signer" in signer.describe()


def test_certificate_simple_signature_carries_certificate_and_chain(tmp_path: Path) -> None:
    pki = make_test_ca(tmp_path / "pki")
    signer = signers.CertificateSigner(pki.leaf_key_path, pki.leaf_path, [pki.intermediate_path])
    payload = statements.simple_signing_payload("r/m", DIGEST)
    legacy = signer.sign_simple(payload)
    ann = legacy.annotations()
    assert (
        x509.load_pem_x509_certificate(ann["dev.sigstore.cosign/certificate"].encode())
        == pki.leaf_cert
    )
    assert x509.load_pem_x509_certificates(ann["dev.sigstore.cosign/chain"].encode()) == [
        pki.intermediate_cert
    ]
    assert keys.verify_bytes_signature(
        pki.leaf_key.public_key(), base64.b64decode(legacy.signature_b64), payload
    )


def test_certificate_for_another_key_is_refused(tmp_path: Path) -> None:
    pki = make_test_ca(tmp_path / "pki")
    other = make_test_ca(tmp_path / "other")
    with pytest.raises(InputError, match="does not certify"):
        signers.CertificateSigner(other.leaf_key_path, pki.leaf_path)


def test_expired_certificate_is_refused(tmp_path: Path) -> None:
    pki = make_test_ca(tmp_path / "pki")
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
    with pytest.raises(InputError, match="not valid now"):
        signers.CertificateSigner(pki.leaf_key_path, pki.leaf_path, now=later)


def test_unreadable_certificate_files_are_input_errors(tmp_path: Path) -> None:
    pki = make_test_ca(tmp_path / "pki")
    (tmp_path / "junk.pem").write_text("not a cert")
    with pytest.raises(InputError):
        signers.CertificateSigner(pki.leaf_key_path, tmp_path / "junk.pem")
    with pytest.raises(InputError):
        signers.CertificateSigner(pki.leaf_key_path, tmp_path / "missing.pem")


def test_chain_from_trust_root_walks_to_the_root(tmp_path: Path) -> None:
    pki = make_test_ca(tmp_path / "pki")
    other = make_test_ca(tmp_path / "other")
    pool = [other.root_cert, pki.root_cert, other.intermediate_cert, pki.intermediate_cert]
    assert keyless.chain_from_trust_root(pki.leaf_cert, pool) == [
        pki.intermediate_cert,
        pki.root_cert,
    ]
    assert keyless.chain_from_trust_root(pki.leaf_cert, [other.root_cert]) == []


# ----------------------------------------------------------------------------- legacy annotations


def test_legacy_annotations_with_certificate_always_carry_chain() -> None:
    legacy = signers.LegacySignature("c2ln", certificate_pem="CERT", rekor_bundle_json="{}")
    assert legacy.annotations() == {
        "dev.cosignproject.cosign/signature": "c2ln",
        "dev.sigstore.cosign/certificate": "CERT",
        "dev.sigstore.cosign/chain": "",
        "dev.sigstore.cosign/bundle": "{}",
    }


def test_rekor_bundle_annotation_from_a_real_cosign_bundle(interop: Path) -> None:
    """A Rekor v1 entry becomes cosign's RekorBundle JSON, whose SET verifies with Rekor's key."""
    from sigstore.models import Bundle

    bundle = Bundle.from_json(
        (interop / "sigstore-rs/bundle-v03-kubewarden-controller/bundle_v03.json").read_bytes()
    )
    annotation = keyless.rekor_bundle_annotation(bundle)
    assert annotation is not None
    doc = json.loads(annotation)
    assert list(doc) == ["SignedEntryTimestamp", "Payload"]
    assert list(doc["Payload"]) == ["body", "integratedTime", "logIndex", "logID"]
    rekor_pub = keys.load_public_key(interop / "containers-image/keys/rekor.pub")
    assert doc["Payload"]["logID"] == hashlib.sha256(keys.public_key_der(rekor_pub)).hexdigest()
    canonical = json.dumps(dict(sorted(doc["Payload"].items())), separators=(",", ":")).encode()
    assert keys.verify_bytes_signature(
        rekor_pub, base64.b64decode(doc["SignedEntryTimestamp"]), canonical
    )


# ----------------------------------------------------------------------------- keyless


def test_nameless_cosign_statement_is_passed_to_sigstore_python_unchanged() -> None:
    statement = statements.cosign_sign_statement(DIGEST)
    wrapped = keyless.sigstore_statement(statement)
    assert wrapped._contents == statement
    named = modelsig.model_signing_statement("m", [("f", DIGEST)])
    assert keyless.sigstore_statement(named)._contents == named
    with pytest.raises(InputError):
        keyless.sigstore_statement(b'{"_type":"other"}')
    with pytest.raises(InputError):
        keyless.sigstore_statement(b"not json")


def test_keyless_without_token_or_terminal_is_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyless, "_tty", lambda: False)
    signer = keyless.KeylessSigner(ambient=False)
    with pytest.raises(InputError) as info:
        signer.sign_dsse(statements.cosign_sign_statement(DIGEST))
    assert info.value.hint is not None and "--identity-token" in info.value.hint
    assert "not signed in" in signer.describe()


def test_keyless_with_garbage_token_is_input_error() -> None:
    with pytest.raises(InputError, match="identity token"), keyless.KeylessSigner("not-a-jwt") as s:
        s.sign_simple(b"payload")


def test_keyless_with_unreadable_trust_config_is_input_error(tmp_path: Path) -> None:
    make_token = pytest.importorskip("tests.sigstore_local.fixture").make_token

    (tmp_path / "tc.json").write_text("{}")
    with pytest.raises(InputError, match="trust config"):
        keyless.KeylessSigner(make_token(), tmp_path / "tc.json").sign_simple(b"x")
    with pytest.raises(InputError, match="cannot read"):
        keyless.KeylessSigner(make_token(), tmp_path / "missing.json").sign_simple(b"x")


@pytest.fixture
def local_sigstore(request: pytest.FixtureRequest) -> Any:
    pytest.importorskip("tests.sigstore_local.fixture")
    try:
        return request.getfixturevalue("sigstore_local")
    except pytest.FixtureLookupError:
        pytest.skip("the sigstore_local fixture is not registered")


def test_keyless_signs_both_statements_with_one_certificate(
    local_sigstore: Any, tmp_path: Path
) -> None:
    from sigstore.models import Bundle, ClientTrustConfig
    from sigstore.verify import Verifier, policy

    token = local_sigstore.token("alice@example.com", "https://issuer.example.com")
    model = tmp_path / "m"
    files = _model(model)
    cosign_stmt = statements.cosign_sign_statement(DIGEST)
    ms_stmt = modelsig.model_signing_statement("m", files)
    with keyless.KeylessSigner(token, local_sigstore.trust_config, ambient=False) as signer:
        first = Bundle.from_json(signer.sign_dsse(cosign_stmt))
        second = Bundle.from_json(signer.sign_dsse(ms_stmt, for_model_signing=True))
        assert "alice@example.com" in signer.describe()
    assert first.signing_certificate == second.signing_certificate

    config = ClientTrustConfig.from_json(local_sigstore.trust_config.read_text())
    verifier = Verifier(trusted_root=config.trusted_root)
    identity = policy.Identity(identity="alice@example.com", issuer="https://issuer.example.com")
    assert verifier.verify_dsse(first, identity) == ("application/vnd.in-toto+json", cosign_stmt)
    assert verifier.verify_dsse(second, identity)[1] == ms_stmt


def test_keyless_legacy_signature_has_certificate_chain_and_rekor_bundle(
    local_sigstore: Any,
) -> None:
    token = local_sigstore.token("bob@example.com", "https://issuer.example.com")
    payload = statements.simple_signing_payload("reg.example/m", DIGEST)
    with keyless.KeylessSigner(token, local_sigstore.trust_config, ambient=False) as signer:
        legacy = signer.sign_simple(payload)
    assert legacy.certificate_pem is not None and legacy.chain_pem
    leaf = x509.load_pem_x509_certificate(legacy.certificate_pem.encode())
    pub = leaf.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert keys.verify_bytes_signature(pub, base64.b64decode(legacy.signature_b64), payload)
    chain = x509.load_pem_x509_certificates(legacy.chain_pem.encode())
    leaf.verify_directly_issued_by(chain[0])
    assert legacy.rekor_bundle_json is not None
    rekor = json.loads(legacy.rekor_bundle_json)
    body = json.loads(base64.b64decode(rekor["Payload"]["body"]))
    assert body["kind"] == "hashedrekord"
    assert body["spec"]["data"]["hash"]["value"] == hashlib.sha256(payload).hexdigest()
