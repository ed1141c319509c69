"""Payload builders reproduce cosign's bytes exactly."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from oci_model_sign.errors import InputError
from oci_model_sign.oci import mediatypes
from oci_model_sign.signing import statements

DIGEST = "sha256:" + "ab" * 32


def _simple_signing_vectors(interop: Path) -> list[bytes]:
    payloads = [
        (interop / "tobby-fetch/legacy-attached/captured/payload.json").read_bytes(),
        (interop / "containers-image/rekor-set-vector/rekor-payload").read_bytes(),
        (interop / "sigstore-rs/legacy-layers/busybox-key-2021/payload.json").read_bytes(),
    ]
    for name in (
        "dir-img-cosign-valid",
        "dir-img-cosign-key-rekor-valid",
        "dir-img-cosign-fulcio-rekor-valid",
        "dir-img-cosign-pki-valid",
    ):
        raw = (interop / "containers-image" / name / "signature-1").read_bytes()
        doc = json.loads(raw[raw.index(b"\n") + 1 :])
        payloads.append(base64.b64decode(doc["payload"]))
    return payloads


def test_simple_signing_payload_reproduces_cosign_bytes(interop: Path) -> None:
    for payload in _simple_signing_vectors(interop):
        doc = json.loads(payload)
        rebuilt = statements.simple_signing_payload(
            doc["critical"]["identity"]["docker-reference"],
            doc["critical"]["image"]["docker-manifest-digest"],
            doc["optional"],
        )
        assert rebuilt == payload


def test_tobby_payload_is_the_captured_layer_blob(interop: Path) -> None:
    captured = (interop / "tobby-fetch/legacy-attached/captured/payload.json").read_bytes()
    rebuilt = statements.simple_signing_payload(
        "localhost:15381/tobby/fixture",
        "sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268",
    )
    assert rebuilt == captured
    assert len(rebuilt) == 245


def test_simple_signing_annotations_are_sorted_and_html_escaped() -> None:
    payload = statements.simple_signing_payload(
        "reg.example/m", DIGEST, {"z": "last", "a": "<b>&\u2028é"}
    )
    assert payload == (
        b'{"critical":{"identity":{"docker-reference":"reg.example/m"},"image":'
        b'{"docker-manifest-digest":"' + DIGEST.encode() + b'"},"type":"cosign container image '
        b'signature"},"optional":{"a":"\\u003cb\\u003e\\u0026\\u2028\xc3\xa9","z":"last"}}'
    )


def test_simple_signing_empty_annotations_are_null() -> None:
    assert statements.simple_signing_payload("r/m", DIGEST, {}).endswith(b'"optional":null}')


def test_go_json_escapes_control_characters_like_go() -> None:
    assert statements.go_json({"k": '\n\t\x01\b\f"\\'}) == b'{"k":"\\n\\t\\u0001\\b\\f\\"\\\\"}'


@pytest.mark.parametrize("digest", ["sha256:ABC", "sha512:" + "a" * 128, "ab" * 32, ""])
def test_payloads_refuse_malformed_digests(digest: str) -> None:
    with pytest.raises(InputError):
        statements.simple_signing_payload("r/m", digest)
    with pytest.raises(InputError):
        statements.cosign_sign_statement(digest)


def test_simple_signing_refuses_empty_reference_and_non_string_annotations() -> None:
    with pytest.raises(InputError):
        statements.simple_signing_payload("", DIGEST)
    with pytest.raises(InputError):
        statements.simple_signing_payload("r/m", DIGEST, {"n": 1})  # type: ignore[dict-item]


def test_cosign_statement_is_cosign_v3_shape(interop: Path) -> None:
    # cosign v3.0.4 wrote this statement; v3.0.5+ appends the empty predicate.
    bundle = json.loads(
        (interop / "tobby-fetch/bundle-format/captured/bundle-sigstore.json").read_text()
    )
    v304 = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    subject = json.loads(v304)["subject"][0]["digest"]["sha256"]
    ours = statements.cosign_sign_statement("sha256:" + subject)
    assert ours == v304[:-1] + b',"predicate":{}}'


def test_cosign_statement_carries_annotations_on_the_subject() -> None:
    stmt = json.loads(statements.cosign_sign_statement(DIGEST, {"b": "2", "a": "1"}))
    assert stmt["subject"] == [
        {"digest": {"sha256": DIGEST[7:]}, "annotations": {"a": "1", "b": "2"}}
    ]
    assert stmt["predicateType"] == mediatypes.COSIGN_SIGN_PREDICATE
    assert stmt["predicate"] == {}


def test_in_toto_statement_for_attestations() -> None:
    stmt = json.loads(
        statements.in_toto_statement(
            [("reg/m", DIGEST), (None, DIGEST)], "https://example.com/card/v1", {"x": 1}
        )
    )
    assert stmt["_type"] == mediatypes.IN_TOTO_STATEMENT_V1
    assert stmt["subject"] == [
        {"name": "reg/m", "digest": {"sha256": DIGEST[7:]}},
        {"digest": {"sha256": DIGEST[7:]}},
    ]
    assert stmt["predicate"] == {"x": 1}
    with pytest.raises(InputError):
        statements.in_toto_statement([], "t", {})
    with pytest.raises(InputError):
        statements.in_toto_statement([(None, DIGEST)], "", {})
