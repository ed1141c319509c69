"""Legacy simple-signing layers with synthetic keys: what cosign checks and what it ignores."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from oci_model_sign.oci.mediatypes import SIMPLE_SIGNING_MEDIA_TYPE
from oci_model_sign.verify.legacy import verify_simple_signing
from oci_model_sign.verify.policy import KeyPolicy

DIGEST = "sha256:" + "ab" * 32


def payload(digest: str = DIGEST, optional: dict[str, Any] | None = None, type_: str = "cosign container image signature") -> bytes:
    return json.dumps(
        {"critical": {"identity": {"docker-reference": "r.example/m"}, "image": {"docker-manifest-digest": digest}, "type": type_}, "optional": optional},
        separators=(",", ":"),
    ).encode()


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def policy(key: ec.EllipticCurvePrivateKey, **kwargs: Any) -> KeyPolicy:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyPolicy(pem, ignore_tlog=True, **kwargs)


def signed(key: ec.EllipticCurvePrivateKey, data: bytes) -> dict[str, str]:
    return {"dev.cosignproject.cosign/signature": base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()}


def test_valid_layer_verifies(key: ec.EllipticCurvePrivateKey) -> None:
    data = payload()
    result = verify_simple_signing(data, signed(key, data), DIGEST, policy(key), source="legacy .sig layer 1", media_type=SIMPLE_SIGNING_MEDIA_TYPE)
    assert result.ok and result.kind == "legacy"


def test_wrapped_base64_signature_is_tolerated(key: ec.EllipticCurvePrivateKey) -> None:
    data = payload()
    sig = signed(key, data)["dev.cosignproject.cosign/signature"]
    wrapped = "\n".join(sig[i : i + 20] for i in range(0, len(sig), 20))
    assert verify_simple_signing(data, {"dev.cosignproject.cosign/signature": wrapped}, DIGEST, policy(key), source="s").ok


def test_missing_signature_annotation_is_rejected(key: ec.EllipticCurvePrivateKey) -> None:
    result = verify_simple_signing(payload(), {}, DIGEST, policy(key), source="s")
    assert not result.ok and "dev.cosignproject.cosign/signature" in result.reason


def test_digest_mismatch_names_the_signed_digest(key: ec.EllipticCurvePrivateKey) -> None:
    other = "sha256:" + "cd" * 32
    data = payload(other)
    result = verify_simple_signing(data, signed(key, data), DIGEST, policy(key), source="s")
    assert result.reason.startswith(f"signed another artifact: {other}")


def test_critical_type_is_ignored_unless_required(key: ec.EllipticCurvePrivateKey) -> None:
    data = payload(type_="something else")
    assert verify_simple_signing(data, signed(key, data), DIGEST, policy(key), source="s").ok
    strict = verify_simple_signing(data, signed(key, data), DIGEST, policy(key), source="s", require_type=True)
    assert not strict.ok and "critical.type" in strict.reason


def test_annotations_are_matched_against_optional(key: ec.EllipticCurvePrivateKey) -> None:
    data = payload(optional={"env": "prod"})
    assert verify_simple_signing(data, signed(key, data), DIGEST, policy(key, annotations={"env": "prod"}), source="s").ok
    result = verify_simple_signing(data, signed(key, data), DIGEST, policy(key, annotations={"env": "dev"}), source="s")
    assert not result.ok and "annotation 'env'" in result.reason


def test_key_signature_without_rekor_bundle_needs_ignore_tlog(key: ec.EllipticCurvePrivateKey) -> None:
    data = payload()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    result = verify_simple_signing(data, signed(key, data), DIGEST, KeyPolicy(pem), source="s")
    assert not result.ok and "--insecure-ignore-tlog" in result.reason


@pytest.mark.parametrize("junk", [b"", b"null", b"[]", b'{"critical": 1}', b'{"critical": {"image": {}}}', b"\xff\xfe"])
def test_signed_junk_payload_fails_cleanly(key: ec.EllipticCurvePrivateKey, junk: bytes) -> None:
    result = verify_simple_signing(junk, signed(key, junk), DIGEST, policy(key), source="s")
    assert not result.ok and result.reason


def test_malformed_rekor_bundle_annotation_fails_cleanly(key: ec.EllipticCurvePrivateKey) -> None:
    data = payload()
    annotations = signed(key, data) | {"dev.sigstore.cosign/bundle": '{"Payload": 3}'}
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    result = verify_simple_signing(data, annotations, DIGEST, KeyPolicy(pem), source="s")
    assert not result.ok and "Rekor bundle annotation is malformed" in result.reason


def test_other_media_type_is_rejected(key: ec.EllipticCurvePrivateKey) -> None:
    data = payload()
    result = verify_simple_signing(data, signed(key, data), DIGEST, policy(key), source="s", media_type="text/plain")
    assert not result.ok and "text/plain" in result.reason
