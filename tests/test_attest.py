"""attest / verify-attestation / pull --require-attestation, on the real registry and the layout store."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.conftest import TESTDATA
from tests.pki import make_test_ca
from tests.registry_server import RegistryServer
from tests.sigstore_local.fixture import SigstoreLocal
from tests.test_e2e_keyless import ALICE, ISSUER, identity_policy
from tests.test_e2e_push_pull import assert_one_line_error, files_of, omsign

PW = {"OMSIGN_PASSWORD": "pw"}
EVAL = TESTDATA / "modelcards" / "eval.json"
CARD = TESTDATA / "modelcards" / "README.md"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EVAL_URI = "https://omsign.dev/eval/v1"
ACCURACY_OK = 'predicate.metrics.exists(m, m.name == "accuracy" && m.value >= 0.9)'
ACCURACY_HIGH = 'predicate.metrics.exists(m, m.name == "accuracy" && m.value >= 0.99)'
PKI_IDENTITY = ("--certificate-identity", "signer@example.com", "--certificate-oidc-issuer-regexp", ".*")


@pytest.fixture
def keys(session_keypairs: dict[str, tuple[Path, Path]]) -> tuple[Path, Path]:
    return session_keypairs["keys"]


@pytest.fixture
def other_keys(session_keypairs: dict[str, tuple[Path, Path]]) -> tuple[Path, Path]:
    return session_keypairs["other-keys"]


def key_verify(pub: Path) -> list[str]:
    return ["--key", str(pub), "--insecure-ignore-tlog"]


def pushed(model: Path, ref: str) -> str:
    proc = omsign("push", str(model), ref, "--json")
    assert proc.returncode == 0, proc.stderr
    return str(json.loads(proc.stdout)["digest"])


def key_attest(ref: str, key: Path, *args: str) -> dict[str, object]:
    proc = omsign("attest", "--key", str(key), "--no-tlog-upload", "--json", ref, *args, env=PW)
    assert proc.returncode == 0, proc.stderr
    value = json.loads(proc.stdout)
    assert isinstance(value, dict)
    return value


def key_sign(ref: str, key: Path) -> None:
    proc = omsign("sign", "--key", str(key), "--no-tlog-upload", ref, env=PW)
    assert proc.returncode == 0, proc.stderr


# -- attest + verify-attestation with every signer -------------------------------------------


def test_key_attestation_verifies_and_outputs_the_predicate(base: str, model: Path, keys: tuple[Path, Path]) -> None:
    ref = f"{base}:v1"
    digest = pushed(model, ref)
    result = key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL))
    assert result["predicateType"] == EVAL_URI and result["digest"] == digest
    proc = omsign("verify-attestation", ref, "--type", "eval", "--output", *key_verify(keys[1]))
    assert proc.returncode == 0, proc.stderr
    predicates = json.loads(proc.stdout)
    assert [m["name"] for m in predicates[0]["metrics"]] == ["accuracy", "f1"]


def test_keyless_attestation_verifies_by_identity(base: str, model: Path, sigstore_local: SigstoreLocal) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    proc = omsign(
        "attest", ref, "--type", "eval", "--predicate", str(EVAL), "--trust-config", str(sigstore_local.trust_config),
        "--identity-token", sigstore_local.token(ALICE, ISSUER),
    )
    assert proc.returncode == 0, proc.stderr
    ok = omsign("verify-attestation", ref, "--type", "eval", "--predicate-check", ACCURACY_OK, *identity_policy(sigstore_local))
    assert ok.returncode == 0, ok.stderr
    other = omsign("verify-attestation", ref, "--type", "eval", *identity_policy(sigstore_local, identity="mallory@example.com"))
    assert_one_line_error(other, 8)


def test_certificate_attestation_verifies_against_the_ca(base: str, model: Path, tmp_path: Path) -> None:
    pki = make_test_ca(tmp_path / "pki")
    ref = f"{base}:v1"
    pushed(model, ref)
    proc = omsign(
        "attest", ref, "--type", "eval", "--predicate", str(EVAL), "--key", str(pki.leaf_key_path),
        "--certificate", str(pki.leaf_path), "--certificate-chain", str(pki.intermediate_path), "--no-tlog-upload",
    )
    assert proc.returncode == 0, proc.stderr
    ok = omsign(
        "verify-attestation", ref, "--type", "eval", "--ca-roots", str(pki.root_path),
        "--certificate-chain", str(pki.intermediate_path), "--insecure-ignore-tlog", *PKI_IDENTITY,
    )
    assert ok.returncode == 0, ok.stderr


def test_key_attestation_logged_in_rekor_verifies_with_the_log(
    repo: str, model: Path, keys: tuple[Path, Path], sigstore_local: SigstoreLocal
) -> None:
    ref = f"{repo}:v1"
    pushed(model, ref)
    proc = omsign(
        "attest", "--key", str(keys[0]), "--trust-config", str(sigstore_local.trust_config), ref,
        "--type", "eval", "--predicate", str(EVAL), env=PW,
    )
    assert proc.returncode == 0, proc.stderr
    ok = omsign("verify-attestation", ref, "--type", "eval", "--key", str(keys[1]), "--trust-config", str(sigstore_local.trust_config))
    assert ok.returncode == 0, ok.stderr


# -- refusals, each one line --------------------------------------------------------------------


def test_wrong_type_is_refused(base: str, model: Path, keys: tuple[Path, Path]) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL))
    proc = omsign("verify-attestation", ref, "--type", "slsaprovenance1", *key_verify(keys[1]))
    assert_one_line_error(proc, 8)
    assert "none of the 1 attestation(s)" in proc.stderr and "https://slsa.dev/provenance/v1" in proc.stderr


def test_wrong_signer_is_refused(
    base: str, model: Path, keys: tuple[Path, Path], other_keys: tuple[Path, Path]
) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL))
    proc = omsign("verify-attestation", ref, "--type", "eval", *key_verify(other_keys[1]))
    assert_one_line_error(proc, 8)
    assert "does not verify with the given public key" in proc.stderr


def test_failing_cel_check_is_refused(base: str, model: Path, keys: tuple[Path, Path]) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL))
    proc = omsign("verify-attestation", ref, "--type", "eval", "--predicate-check", ACCURACY_HIGH, *key_verify(keys[1]))
    assert_one_line_error(proc, 8)
    assert "is false" in proc.stderr


def test_schema_violation_is_refused(base: str, model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL))
    schema = tmp_path / "strict.schema.json"
    schema.write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "required": ["reviewer"],
    }))
    proc = omsign("verify-attestation", ref, "--type", "eval", "--predicate-schema", str(schema), *key_verify(keys[1]))
    assert_one_line_error(proc, 8)
    assert "does not match schema strict.schema.json" in proc.stderr
    shipped = TESTDATA.parent / "docs" / "predicates" / "eval-v1.schema.json"
    ok = omsign("verify-attestation", ref, "--type", "eval", "--predicate-schema", str(shipped), *key_verify(keys[1]))
    assert ok.returncode == 0, ok.stderr


def test_bad_cel_expression_is_a_usage_error_before_any_request(keys: tuple[Path, Path]) -> None:
    proc = omsign("verify-attestation", "127.0.0.1:1/nowhere:v1", "--type", "eval", "--predicate-check", "predicate.(", *key_verify(keys[1]))
    assert_one_line_error(proc, 2)


def test_a_signature_never_satisfies_verify_attestation(base: str, model: Path, keys: tuple[Path, Path]) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    key_sign(ref, keys[0])
    for type_ in ("https://sigstore.dev/cosign/sign/v1", "https://model_signing/signature/v1.0"):
        asked = omsign("verify-attestation", ref, "--type", type_, *key_verify(keys[1]))
        assert_one_line_error(asked, 2)
    custom = omsign("verify-attestation", ref, *key_verify(keys[1]))
    assert_one_line_error(custom, 8)


def test_an_attestation_never_admits_a_model(base: str, model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL))
    verified = omsign("verify", ref, *key_verify(keys[1]))
    assert_one_line_error(verified, 8)
    assert "does not admit a model" in verified.stderr
    dest = tmp_path / "out"
    pulled = omsign("pull", ref, str(dest), "--verify", *key_verify(keys[1]))
    assert_one_line_error(pulled, 8)
    assert not dest.exists()


# -- the wire shape: cosign v3's referrer manifest and bundle ------------------------------------


def test_referrer_manifest_and_bundle_have_cosign_v3_shape(
    repo: str, registry: RegistryServer, model: Path, keys: tuple[Path, Path]
) -> None:
    import httpx

    ref = f"{repo}:v1"
    digest = pushed(model, ref)
    result = key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL))
    name = repo.split("/", 1)[1]
    with httpx.Client(base_url=f"http://{registry.host}/v2/{name}") as http:
        subject = http.head(f"/manifests/{digest}", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        raw = http.get(f"/manifests/{result['attestation']}", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).content
        manifest = json.loads(raw)
        fallback = http.get(f"/manifests/sha256-{digest.split(':')[1]}", headers={"Accept": "application/vnd.oci.image.index.v1+json"}).json()
        layer = manifest["layers"][0]
        bundle_bytes = http.get(f"/blobs/{layer['digest']}").content
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == result["attestation"]
    assert list(manifest) == ["schemaVersion", "mediaType", "config", "layers", "annotations", "subject", "artifactType"]
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["artifactType"] == BUNDLE
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "artifactType": BUNDLE,
    }
    assert len(manifest["layers"]) == 1
    assert layer["mediaType"] == BUNDLE and layer["size"] == len(bundle_bytes)
    assert layer["digest"] == "sha256:" + hashlib.sha256(bundle_bytes).hexdigest()
    assert set(manifest["annotations"]) == {
        "dev.sigstore.bundle.content", "dev.sigstore.bundle.predicateType", "org.opencontainers.image.created",
    }
    assert manifest["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
    assert manifest["annotations"]["dev.sigstore.bundle.predicateType"] == EVAL_URI
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["annotations"]["org.opencontainers.image.created"])
    assert manifest["subject"] == {
        "mediaType": subject.headers["content-type"], "size": int(subject.headers["content-length"]), "digest": digest,
    }
    # distribution has no referrers API: the fallback index lists the referrer with its artifactType
    entry = next(m for m in fallback["manifests"] if m["digest"] == result["attestation"])
    assert entry["artifactType"] == BUNDLE
    assert entry["annotations"]["dev.sigstore.bundle.predicateType"] == EVAL_URI
    # the bundle: v0.3, a public-key hint, one DSSE signature without keyid, over an in-toto v1 statement
    bundle = json.loads(bundle_bytes)
    assert list(bundle) == ["mediaType", "verificationMaterial", "dsseEnvelope"]
    assert bundle["mediaType"] == BUNDLE
    assert set(bundle["verificationMaterial"]) == {"publicKey", "tlogEntries"}
    assert bundle["verificationMaterial"]["tlogEntries"] == []
    envelope = bundle["dsseEnvelope"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert len(envelope["signatures"]) == 1 and list(envelope["signatures"][0]) == ["sig"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": repo, "digest": {"sha256": digest.split(":")[1]}}]
    assert statement["predicateType"] == EVAL_URI


def test_model_card_attestation_round_trips_the_card(base: str, model: Path, keys: tuple[Path, Path]) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    key_attest(ref, keys[0], "--type", "modelcard", "--from-card", str(CARD))
    proc = omsign("verify-attestation", ref, "--type", "modelcard", "--output", *key_verify(keys[1]))
    assert proc.returncode == 0, proc.stderr
    (card,) = json.loads(proc.stdout)
    assert card["card"]["digest"]["sha256"] == hashlib.sha256(CARD.read_bytes()).hexdigest()
    assert card["results"], "model-index results are carried into the predicate"


# -- legacy .att and --replace ----------------------------------------------------------------------


def test_legacy_format_writes_the_att_tag_and_merges(
    repo: str, registry: RegistryServer, model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    import httpx

    ref = f"{repo}:v1"
    digest = pushed(model, ref)
    key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL), "--format", "legacy")
    custom = tmp_path / "note.txt"
    custom.write_text("reviewed")
    key_attest(ref, keys[0], "--predicate", str(custom), "--format", "legacy")
    name = repo.split("/", 1)[1]
    with httpx.Client(base_url=f"http://{registry.host}/v2/{name}") as http:
        att = http.get(f"/manifests/sha256-{digest.split(':')[1]}.att", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).json()
        referrers = http.get(f"/manifests/sha256-{digest.split(':')[1]}", headers={"Accept": "application/vnd.oci.image.index.v1+json"})
        envelope = json.loads(http.get(f"/blobs/{att['layers'][0]['digest']}").content)
    assert referrers.status_code == 404, "the legacy form attaches no referrer"
    assert [x["mediaType"] for x in att["layers"]] == ["application/vnd.dsse.envelope.v1+json"] * 2
    assert [x["annotations"] for x in att["layers"]] == [
        {"dev.cosignproject.cosign/signature": "", "predicateType": EVAL_URI},
        {"dev.cosignproject.cosign/signature": "", "predicateType": "https://cosign.sigstore.dev/attestation/v1"},
    ]
    assert list(envelope) == ["payload", "payloadType", "signatures"]
    for type_ in ("eval", "custom"):
        ok = omsign("verify-attestation", ref, "--type", type_, *key_verify(keys[1]))
        assert ok.returncode == 0, ok.stderr


def test_legacy_attestation_verifies_on_the_layout_and_refuses_another_key(
    tmp_path: Path, model: Path, keys: tuple[Path, Path], other_keys: tuple[Path, Path]
) -> None:
    ref = f"oci:{tmp_path / 'store'}:v1"
    pushed(model, ref)
    key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL), "--format", "legacy")
    ok = omsign("verify-attestation", ref, "--type", "eval", "--predicate-check", ACCURACY_OK, *key_verify(keys[1]))
    assert ok.returncode == 0, ok.stderr
    refused = omsign("verify-attestation", ref, "--type", "eval", *key_verify(other_keys[1]))
    assert_one_line_error(refused, 8)


def test_replace_drops_this_signers_earlier_attestation_only(
    base: str, model: Path, keys: tuple[Path, Path], other_keys: tuple[Path, Path], tmp_path: Path
) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    first = key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL))
    theirs = key_attest(ref, other_keys[0], "--type", "eval", "--predicate", str(EVAL))
    better = tmp_path / "eval.json"
    doc = json.loads(EVAL.read_text())
    doc["metrics"] = {"accuracy": 0.95}
    better.write_text(json.dumps(doc))
    second = key_attest(ref, keys[0], "--type", "eval", "--predicate", str(better), "--replace")
    assert second["replaced"] == [first["attestation"]]
    tree = json.loads(omsign("tree", ref, "--json").stdout)
    listed = {e["source"].split()[-1] for e in tree["entries"] if e["kind"] == "attestation"}
    assert listed == {theirs["attestation"], second["attestation"]}
    proc = omsign("verify-attestation", ref, "--type", "eval", "--output", *key_verify(keys[1]))
    assert proc.returncode == 0, proc.stderr
    assert [p["metrics"] for p in json.loads(proc.stdout)] == [[{"name": "accuracy", "value": 0.95}]]


def test_legacy_replace_drops_earlier_layers_of_the_type(base: str, model: Path, keys: tuple[Path, Path]) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL), "--format", "legacy")
    again = key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL), "--format", "legacy", "--replace")
    assert again["replaced"]
    tree = json.loads(omsign("tree", ref, "--json").stdout)
    assert len([e for e in tree["entries"] if e["kind"] == "attestation"]) == 1


# -- the deploy gate: pull/copy --verify --require-attestation ---------------------------------------


def gated_pull(ref: str, dest: Path, pub: Path, *requirements: str) -> object:
    args = [x for r in requirements for x in ("--require-attestation", r)]
    return omsign("pull", ref, str(dest), "--verify", *key_verify(pub), *args)


def test_gated_pull_passes_with_signature_and_passing_eval(base: str, model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    key_sign(ref, keys[0])
    key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL))
    dest = tmp_path / "out"
    proc = gated_pull(ref, dest, keys[1], f"eval:{ACCURACY_OK}")
    assert proc.returncode == 0, proc.stderr  # type: ignore[attr-defined]
    got = files_of(dest)
    got.pop("model.sig")
    assert got == files_of(model)


@pytest.mark.parametrize("attested", [False, True], ids=["missing", "failing"])
def test_gated_pull_refuses_missing_or_failing_eval_and_leaves_dest_untouched(
    base: str, model: Path, keys: tuple[Path, Path], tmp_path: Path, attested: bool
) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    key_sign(ref, keys[0])
    if attested:
        key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL))
    dest = tmp_path / "out"
    dest.mkdir()
    proc = omsign("pull", ref, str(dest), "--verify", *key_verify(keys[1]), "--require-attestation", f"eval:{ACCURACY_HIGH}")
    assert_one_line_error(proc, 8)
    assert ("is false" if attested else "no attestation found") in proc.stderr
    assert list(dest.iterdir()) == []


def test_gated_pull_refuses_an_eval_by_another_signer(
    base: str, model: Path, keys: tuple[Path, Path], other_keys: tuple[Path, Path], tmp_path: Path
) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    key_sign(ref, keys[0])
    key_attest(ref, other_keys[0], "--type", "eval", "--predicate", str(EVAL))
    dest = tmp_path / "out"
    proc = omsign("pull", ref, str(dest), "--verify", *key_verify(keys[1]), "--require-attestation", "eval")
    assert_one_line_error(proc, 8)
    assert not dest.exists()


def test_gated_pull_refuses_an_attestation_without_a_signature(base: str, model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    ref = f"{base}:v1"
    pushed(model, ref)
    key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL))
    dest = tmp_path / "out"
    proc = omsign("pull", ref, str(dest), "--verify", *key_verify(keys[1]), "--require-attestation", "eval")
    assert_one_line_error(proc, 8)
    assert not dest.exists()


def test_require_attestation_without_a_policy_is_a_usage_error(tmp_path: Path) -> None:
    proc = omsign("pull", "127.0.0.1:1/nowhere:v1", str(tmp_path / "out"), "--require-attestation", "eval")
    assert_one_line_error(proc, 2)


def test_gated_copy_writes_nothing_when_the_eval_fails(
    repo: str, model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    ref = f"{repo}:v1"
    pushed(model, ref)
    key_sign(ref, keys[0])
    key_attest(ref, keys[0], "--type", "eval", "--predicate", str(EVAL))
    target = tmp_path / "dst"
    refused = omsign("copy", "--verify", *key_verify(keys[1]), "--require-attestation", f"eval:{ACCURACY_HIGH}", ref, f"oci:{target}:v1")
    assert_one_line_error(refused, 8)
    assert not target.exists()
    copied = omsign("copy", "--verify", *key_verify(keys[1]), "--require-attestation", f"eval:{ACCURACY_OK}", ref, f"oci:{target}:v1")
    assert copied.returncode == 0, copied.stderr
    ok = omsign("verify-attestation", f"oci:{target}:v1", "--type", "eval", *key_verify(keys[1]))
    assert ok.returncode == 0, ok.stderr


def test_keyless_legacy_attestation_carries_certificate_and_rekor_bundle(
    repo: str, model: Path, sigstore_local: SigstoreLocal
) -> None:
    ref = f"{repo}:v1"
    pushed(model, ref)
    proc = omsign(
        "attest", ref, "--type", "eval", "--predicate", str(EVAL), "--format", "legacy",
        "--trust-config", str(sigstore_local.trust_config), "--identity-token", sigstore_local.token(ALICE, ISSUER),
    )
    assert proc.returncode == 0, proc.stderr
    ok = omsign("verify-attestation", ref, "--type", "eval", *identity_policy(sigstore_local))
    assert ok.returncode == 0, ok.stderr
    other = omsign("verify-attestation", ref, "--type", "eval", *identity_policy(sigstore_local, identity="mallory@example.com"))
    assert_one_line_error(other, 8)


def test_key_legacy_attestation_logged_in_rekor_verifies_with_the_log(
    repo: str, model: Path, keys: tuple[Path, Path], sigstore_local: SigstoreLocal
) -> None:
    ref = f"{repo}:v1"
    pushed(model, ref)
    proc = omsign(
        "attest", "--key", str(keys[0]), "--trust-config", str(sigstore_local.trust_config), ref,
        "--type", "eval", "--predicate", str(EVAL), "--format", "legacy", env=PW,
    )
    assert proc.returncode == 0, proc.stderr
    ok = omsign("verify-attestation", ref, "--type", "eval", "--key", str(keys[1]), "--trust-config", str(sigstore_local.trust_config))
    assert ok.returncode == 0, ok.stderr


def test_ml_bom_attestation_names_the_dataset_and_validates_with_cyclonedx(
    repo: str, model: Path, keys: tuple[Path, Path]
) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    ref = f"{repo}:v1"
    pushed(model, ref)
    data = f"{repo}-data@sha256:{'ab' * 32}"
    key_attest(ref, keys[0], "--type", "cyclonedx", "--from-card", str(CARD), "--dependency", f"dataset={data}")
    proc = omsign("verify-attestation", ref, "--type", "cyclonedx", "--output", *key_verify(keys[1]))
    assert proc.returncode == 0, proc.stderr
    (bom,) = json.loads(proc.stdout)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    tree = json.loads(omsign("tree", ref, "--json").stdout)
    assert {"sha256": "ab" * 32} in [x["digest"] for x in tree["links"] if x["role"] == "dataset"]


def test_the_api_exports_attest_verify_attestation_and_tree_lazily() -> None:
    import oci_model_sign as oms

    assert callable(oms.attest) and callable(oms.verify_attestation) and callable(oms.tree)
    import oci_model_sign.attestations as attestations  # loading the modules does not shadow the functions
    import oci_model_sign.referrer_tree as referrer_tree

    assert callable(oms.attest) and callable(oms.tree)
    assert oms.attest is attestations.attest and oms.tree is referrer_tree.tree


def test_a_real_cosign_attestation_passes_for_its_type_and_is_dropped_for_another(interop: Path) -> None:
    from oci_model_sign.verify.attestation import check_bundle_attestation
    from oci_model_sign.verify.policy import IdentityPolicy
    from tests.test_interop_vectors import ATTESTATION_DIGEST, trusted_root

    bundle = (interop / "sigstore-cosign" / "oci-attestation-keyless" / "oci-attestation.sigstore.json").read_bytes()
    policy = IdentityPolicy(identity="cody@soyland.com", issuer="https://github.com/login/oauth",
                            trust_config=trusted_root(interop), offline=True)
    custom = "https://cosign.sigstore.dev/attestation/v1"
    ok = check_bundle_attestation(bundle, ATTESTATION_DIGEST, policy, custom, source="referrer")
    assert ok.result.ok, ok.result.reason
    assert ok.statement is not None and ok.statement["predicateType"] == custom
    dropped = check_bundle_attestation(bundle, ATTESTATION_DIGEST, policy, EVAL_URI, source="referrer")
    assert not dropped.result.ok and "dropped" in dropped.result.reason


def test_eval_from_a_card_result_with_harness_version(tmp_path: Path, model: Path, keys: tuple[Path, Path]) -> None:
    ref = f"oci:{tmp_path / 'store'}:v1"
    pushed(model, ref)
    key_attest(ref, keys[0], "--type", "eval", "--from-card", str(CARD), "--eval-task", "text-classification",
               "--eval-dataset", "stanfordnlp/sst2", "--harness", "lm-evaluation-harness@0.4.5")
    proc = omsign("verify-attestation", ref, "--type", "eval", "--output", *key_verify(keys[1]))
    assert proc.returncode == 0, proc.stderr
    (evaluation,) = json.loads(proc.stdout)
    assert evaluation["harness"] == {"name": "lm-evaluation-harness", "version": "0.4.5"}
    assert evaluation["dataset"]["type"] == "stanfordnlp/sst2"
    assert evaluation["card"]["digest"]["sha256"] == hashlib.sha256(CARD.read_bytes()).hexdigest()
