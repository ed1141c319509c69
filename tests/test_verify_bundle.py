"""Per-candidate bundle verification with synthetic bundles: every key type, every way to fail."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from oci_model_sign.errors import UsageError
from oci_model_sign.sigstore_seam import trusted_root_tlogs
from oci_model_sign.verify.bundle import pae, verify_bundle, verify_model_signing_bundle
from oci_model_sign.verify.policy import IdentityPolicy, KeyPolicy, key_fingerprint

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[key.curve.key_size]
        return key.sign(data, ec.ECDSA(alg))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data)


def statement(digest: str = DIGEST, annotations: dict[str, Any] | None = None, **extra: Any) -> bytes:
    doc: dict[str, Any] = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": digest.split(":", 1)[1]}, "annotations": annotations or {}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {},
    }
    doc.update(extra)
    return json.dumps(doc).encode()


def make_bundle(
    key: PrivateKey,
    payload: bytes,
    *,
    payload_type: str = "application/vnd.in-toto+json",
    signature: bytes | None = None,
    signatures: int = 1,
    material: dict[str, Any] | None = None,
    media_type: str = "application/vnd.dev.sigstore.bundle.v0.3+json",
) -> bytes:
    sig = signature if signature is not None else sign(key, pae(payload_type, payload))
    return json.dumps({
        "mediaType": media_type,
        "verificationMaterial": material or {"publicKey": {"hint": "x"}},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": payload_type,
            "signatures": [{"sig": base64.b64encode(sig).decode()}] * signatures,
        },
    }).encode()


def pub_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: ec.generate_private_key(ec.SECP521R1()),
        lambda: rsa.generate_private_key(65537, 2048),
        lambda: ed25519.Ed25519PrivateKey.generate(),
    ],
    ids=["p256", "p384", "p521", "rsa2048", "ed25519"],
)
def test_key_bundle_verifies_for_every_supported_key_type(make_key: Any) -> None:
    key = make_key()
    result = verify_bundle(make_bundle(key, statement()), DIGEST, KeyPolicy(pub_pem(key), ignore_tlog=True), source="r")
    assert result.ok, result.reason
    assert result.signer == key_fingerprint(key.public_key())


def test_ieee_p1363_ecdsa_signature_is_rejected_as_sigstore_go_rejects_it(p256: ec.EllipticCurvePrivateKey) -> None:
    """One signature check for bundles, legacy signatures and SETs: ECDSA signatures must be
    ASN.1 DER (Go's ``ecdsa.VerifyASN1``); the same signature as raw ``r||s`` is refused."""
    payload = statement()
    der = sign(p256, pae("application/vnd.in-toto+json", payload))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    policy = KeyPolicy(pub_pem(p256), ignore_tlog=True)
    assert verify_bundle(make_bundle(p256, payload, signature=der), DIGEST, policy, source="r").ok
    result = verify_bundle(make_bundle(p256, payload, signature=raw), DIGEST, policy, source="r")
    assert not result.ok
    assert "does not verify" in result.reason


def test_p384_signature_with_sha256_is_rejected_only_the_curves_hash_verifies() -> None:
    """ECDSA P-384 signs with SHA-384 (omsign, model_signing, sigstore-go's key details); a
    SHA-256 signature by the same key is not accepted as a second reading."""
    key = ec.generate_private_key(ec.SECP384R1())
    payload = statement()
    sha256_sig = key.sign(pae("application/vnd.in-toto+json", payload), ec.ECDSA(hashes.SHA256()))
    result = verify_bundle(make_bundle(key, payload, signature=sha256_sig), DIGEST, KeyPolicy(pub_pem(key), ignore_tlog=True), source="r")
    assert not result.ok


def test_validly_signed_statement_of_another_predicate_type_does_not_admit() -> None:
    """A signed vulnerability report about the model is a valid signature, not an admission."""
    key = ec.generate_private_key(ec.SECP256R1())
    report = statement(predicateType="https://cosign.sigstore.dev/attestation/vuln/v1", predicate={"verdict": "REJECT"})
    policy = KeyPolicy(pub_pem(key), ignore_tlog=True)
    result = verify_bundle(make_bundle(key, report), DIGEST, policy, source="r")
    assert not result.ok
    assert "does not admit a model" in result.reason
    assert "https://cosign.sigstore.dev/attestation/vuln/v1" in result.reason
    assert verify_bundle(make_bundle(key, report), DIGEST, policy, source="r", predicate_types=None).ok


def test_signature_over_payload_instead_of_pae_is_rejected(p256: ec.EllipticCurvePrivateKey) -> None:
    payload = statement()
    bundle = make_bundle(p256, payload, signature=sign(p256, payload))
    result = verify_bundle(bundle, DIGEST, KeyPolicy(pub_pem(p256), ignore_tlog=True), source="r")
    assert not result.ok and "does not verify" in result.reason


def test_key_bundle_without_tlog_requires_ignore_tlog(p256: ec.EllipticCurvePrivateKey) -> None:
    result = verify_bundle(make_bundle(p256, statement()), DIGEST, KeyPolicy(pub_pem(p256)), source="r")
    assert not result.ok
    assert "--insecure-ignore-tlog" in result.reason


def test_bundle_with_certificate_is_rejected_by_key_policy(p256: ec.EllipticCurvePrivateKey) -> None:
    material = {"certificate": {"rawBytes": base64.b64encode(b"not really").decode()}}
    result = verify_bundle(make_bundle(p256, statement(), material=material), DIGEST, KeyPolicy(pub_pem(p256), ignore_tlog=True), source="r")
    assert result.reason == "expected key signature, not certificate"


def test_subject_for_another_digest_is_reported(p256: ec.EllipticCurvePrivateKey) -> None:
    result = verify_bundle(make_bundle(p256, statement(OTHER)), DIGEST, KeyPolicy(pub_pem(p256), ignore_tlog=True), source="r")
    assert not result.ok
    assert result.reason.startswith(f"signed another artifact: {OTHER}")


def test_policy_annotations_must_equal_subject_annotations(p256: ec.EllipticCurvePrivateKey) -> None:
    bundle = make_bundle(p256, statement(annotations={"env": "prod"}))
    ok = verify_bundle(bundle, DIGEST, KeyPolicy(pub_pem(p256), ignore_tlog=True, annotations={"env": "prod"}), source="r")
    wrong = verify_bundle(bundle, DIGEST, KeyPolicy(pub_pem(p256), ignore_tlog=True, annotations={"env": "dev"}), source="r")
    missing = verify_bundle(bundle, DIGEST, KeyPolicy(pub_pem(p256), ignore_tlog=True, annotations={"team": "x"}), source="r")
    assert ok.ok and ok.annotations == {"env": "prod"}
    assert not wrong.ok and "'env'" in wrong.reason
    assert not missing.ok and "missing" in missing.reason


def test_in_toto_v01_statement_is_accepted(p256: ec.EllipticCurvePrivateKey) -> None:
    payload = statement(_type="https://in-toto.io/Statement/v0.1")
    assert verify_bundle(make_bundle(p256, payload), DIGEST, KeyPolicy(pub_pem(p256), ignore_tlog=True), source="r").ok


@pytest.mark.parametrize(
    ("bundle_kwargs", "payload", "needle"),
    [
        ({"payload_type": "text/plain"}, None, "payloadType"),
        ({"signatures": 2}, None, "exactly one"),
        ({"media_type": "application/vnd.dev.sigstore.bundle+json;version=0.1"}, None, "too old"),
        ({"media_type": "application/json"}, None, "not a Sigstore bundle"),
        ({}, b"[1, 2]", "not an in-toto statement"),
        ({}, b"not json", "not valid JSON"),
        ({}, json.dumps({"_type": "https://example.com/x", "subject": []}).encode(), "_type"),
        ({}, json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": []}).encode(), "no subjects"),
    ],
    ids=["payload-type", "two-signatures", "old-bundle", "not-bundle", "list-payload", "garbage-payload", "wrong-type", "no-subjects"],
)
def test_malformed_bundles_fail_cleanly(p256: ec.EllipticCurvePrivateKey, bundle_kwargs: dict[str, Any], payload: bytes | None, needle: str) -> None:
    bundle = make_bundle(p256, payload if payload is not None else statement(), **bundle_kwargs)
    result = verify_bundle(bundle, DIGEST, KeyPolicy(pub_pem(p256), ignore_tlog=True), source="r")
    assert not result.ok
    assert needle in result.reason


@pytest.mark.parametrize("garbage", [b"", b"{", b"[]", b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}', b"\xff" * 10])
def test_garbage_never_raises(p256: ec.EllipticCurvePrivateKey, garbage: bytes) -> None:
    result = verify_bundle(garbage, DIGEST, KeyPolicy(pub_pem(p256), ignore_tlog=True), source="r")
    assert not result.ok and result.reason


def test_unknown_bundle_fields_are_rejected(p256: ec.EllipticCurvePrivateKey) -> None:
    doc = json.loads(make_bundle(p256, statement()))
    doc["extra"] = 1
    result = verify_bundle(json.dumps(doc).encode(), DIGEST, KeyPolicy(pub_pem(p256), ignore_tlog=True), source="r")
    assert not result.ok and "malformed bundle" in result.reason


# --- tlog (the positive path and a foreign log are covered by the real tobby-fetch vector in
# test_interop_vectors.py; v0.3 bundles also need an inclusion proof, which we cannot forge) --


def tobby(interop: Path) -> tuple[dict[str, Any], Path]:
    base = interop / "tobby-fetch" / "bundle-format" / "captured"
    return json.loads((base / "bundle-sigstore.json").read_bytes()), base / "bundle-cosign.pub"


TOBBY_DIGEST = "sha256:d7d5640c741c60b47fa4b5530daa20a6469b55754a89dd42adbadadb59f9093c"


def test_tampered_integrated_time_breaks_the_set(interop: Path) -> None:
    doc, pub = tobby(interop)
    doc["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1786568009"
    root = interop / "trust-roots" / "public-good.trusted_root.json"
    result = verify_bundle(json.dumps(doc).encode(), TOBBY_DIGEST, KeyPolicy(pub, trusted_root=root), source="r")
    assert not result.ok and "SET" in result.reason


def test_tlog_entry_without_set_is_rejected(interop: Path) -> None:
    doc, pub = tobby(interop)
    doc["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"] = None
    root = interop / "trust-roots" / "public-good.trusted_root.json"
    result = verify_bundle(json.dumps(doc).encode(), TOBBY_DIGEST, KeyPolicy(pub, trusted_root=root), source="r")
    assert not result.ok and "no SET" in result.reason


# --- policies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"identity": "a@b"}, {"issuer": "https://x"}, {"identity": "a", "identity_regexp": "a", "issuer": "i"}, {"identity": "a", "issuer": "i", "issuer_regexp": "i"}],
)
def test_identity_policy_needs_exactly_one_identity_and_one_issuer(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="no policy, no verification"):
        IdentityPolicy(**kwargs)


def test_identity_policy_rejects_invalid_regexp() -> None:
    with pytest.raises(UsageError, match="regular expression"):
        IdentityPolicy(identity_regexp="(", issuer="https://x")


def test_identity_policy_offline_uses_the_embedded_public_good_root() -> None:
    policy = IdentityPolicy(identity="a@b", issuer="https://x", offline=True)
    root = policy.root()
    assert any(t.base_url == "https://rekor.sigstore.dev" for t in trusted_root_tlogs(root))


# --- model_signing bundles ---------------------------------------------------------------------


def model_statement(resources: dict[str, bytes], *, root: str | None = None) -> bytes:
    from pathlib import PurePosixPath

    digests = {n: hashlib.sha256(c).hexdigest() for n, c in resources.items()}
    ordered = sorted(digests, key=PurePosixPath)
    computed = hashlib.sha256(b"".join(bytes.fromhex(digests[n]) for n in ordered)).hexdigest()
    return json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model", "digest": {"sha256": root or computed}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False, "ignore_paths": []},
            "resources": [{"name": n, "algorithm": "sha256", "digest": digests[n]} for n in ordered],
        },
    }).encode()


FILES = {"a/b": b"1", "a-b": b"2", "config.json": b"{}"}  # a/b sorts before a-b component-wise


def layers_of(files: dict[str, bytes]) -> dict[str, str]:
    return {n: "sha256:" + hashlib.sha256(c).hexdigest() for n, c in files.items()}


def test_model_signing_bundle_matches_layer_digests(p256: ec.EllipticCurvePrivateKey) -> None:
    bundle = make_bundle(p256, model_statement(FILES))
    result, resources = verify_model_signing_bundle(bundle, KeyPolicy(pub_pem(p256), ignore_tlog=True), layer_digests=layers_of(FILES))
    assert result.ok, result.reason
    assert result.kind == "model-signing-bundle"
    assert resources == layers_of(FILES)


def test_model_signing_bundle_reports_layer_differences(p256: ec.EllipticCurvePrivateKey) -> None:
    bundle = make_bundle(p256, model_statement(FILES))
    layers = layers_of({"a/b": b"changed", "config.json": b"{}", "extra.bin": b"x"})
    result, _ = verify_model_signing_bundle(bundle, KeyPolicy(pub_pem(p256), ignore_tlog=True), layer_digests=layers)
    assert not result.ok
    assert "1 modified: a/b" in result.reason
    assert "missing from the manifest: a-b" in result.reason
    assert "not signed: extra.bin" in result.reason


def test_model_signing_bundle_with_wrong_root_is_rejected(p256: ec.EllipticCurvePrivateKey) -> None:
    bundle = make_bundle(p256, model_statement(FILES, root="00" * 32))
    result, resources = verify_model_signing_bundle(bundle, KeyPolicy(pub_pem(p256), ignore_tlog=True), layer_digests=None)
    assert not result.ok and "root digest" in result.reason and resources == {}


def test_model_signing_bundle_with_unsafe_path_is_rejected(p256: ec.EllipticCurvePrivateKey) -> None:
    bundle = make_bundle(p256, model_statement({"../etc/passwd": b"x"}))
    result, _ = verify_model_signing_bundle(bundle, KeyPolicy(pub_pem(p256), ignore_tlog=True), layer_digests=None)
    assert not result.ok and "safe relative path" in result.reason


def test_model_signing_bundle_is_not_an_image_signature(p256: ec.EllipticCurvePrivateKey) -> None:
    result = verify_bundle(make_bundle(p256, model_statement(FILES)), DIGEST, KeyPolicy(pub_pem(p256), ignore_tlog=True), source="r")
    assert not result.ok and result.kind == "model-signing-bundle"
