"""Parse, then check: a candidate's claims are read into an untrusted record first, and only
the policy's verdict on the signature makes them count."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.asymmetric import ec

from oci_model_sign.oci.mediatypes import ANNOTATION_SIGNATURE
from oci_model_sign.verify.bundle import parse_bundle_record, verify_bundle
from oci_model_sign.verify.legacy import parse_legacy_record
from oci_model_sign.verify.policy import KeyPolicy
from tests.test_verify_bundle import DIGEST, make_bundle, pub_pem, statement


def test_a_bundle_record_holds_its_claims_without_verifying_them() -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    bundle = make_bundle(signer, statement(predicateType="https://example.com/report/v1"))
    _, record = parse_bundle_record(bundle, "referrer x")
    assert record.format == "bundle"
    assert record.material == "public-key"
    assert record.claimed_signer == "key hint x"
    assert record.predicate_type == "https://example.com/report/v1"
    assert record.subject_digests == (DIGEST,)
    assert record.tlog_entries == 0
    # The claims alone admit nothing: another key's policy rejects the signature first.
    other = ec.generate_private_key(ec.SECP256R1())
    result = verify_bundle(bundle, DIGEST, KeyPolicy(pub_pem(other), ignore_tlog=True), source="r")
    assert not result.ok and "does not verify" in result.reason


def test_a_legacy_record_names_the_digest_and_material_it_claims() -> None:
    payload = json.dumps({"critical": {"image": {"docker-manifest-digest": DIGEST}, "type": "x"}}).encode()
    annotations = {ANNOTATION_SIGNATURE: base64.b64encode(b"sig").decode(), "dev.sigstore.cosign/bundle": "{}"}
    record = parse_legacy_record(payload, annotations, "layer 0")
    assert record.format == "legacy"
    assert record.material == "public-key"
    assert record.subject_digests == (DIGEST,)
    assert record.tlog_entries == 1
    assert parse_legacy_record(b"not json", {}, "layer 1").subject_digests == ()
