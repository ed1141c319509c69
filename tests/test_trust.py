"""``check_trust``: a policy file judged against the real registry and the local Sigstore services.

Threshold, revocation (with and without ``after``, judged by the signing time the verifier
trusts), scopes that do not match, the opt-out, and the verified model cache falling back to
the policy file.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import oci_model_sign as oms
from oci_model_sign.errors import UsageError, VerificationError
from oci_model_sign.trust import check_trust
from tests.helpers import assert_ok, keypair, other_keypair, run_cli, sign
from tests.registry_server import RegistryServer
from tests.sigstore_local.fixture import SigstoreLocal

__all__ = ["keypair", "other_keypair"]  # fixtures used by name

ALICE = "alice@example.com"
ISSUER = "https://issuer.example.com"


def write_policy(path: Path, text: str) -> Path:
    path.write_text("apiVersion: omsign/v1\n" + text)
    return path


def push(model: Path, ref: str) -> str:
    result = run_cli("push", model, ref)
    assert_ok(result)
    return result.stdout.strip()


def one_key(pub: Path) -> str:
    return f"default:\n  authorities:\n    - {{name: release, key: {{path: {pub}}}, ignoreTlog: true}}\n"


def two_keys(pub1: Path, pub2: Path, threshold: int) -> str:
    return (
        "default:\n"
        f"  threshold: {threshold}\n"
        "  authorities:\n"
        f"    - {{name: release, key: {{path: {pub1}}}, ignoreTlog: true}}\n"
        f"    - {{name: review, key: {{path: {pub2}}}, ignoreTlog: true}}\n"
    )


def test_threshold_two_needs_both_keys(
    model: Path, repo: str, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    push(model, f"{repo}:v1")
    policy = write_policy(tmp_path / "policy.yaml", two_keys(keypair[1], other_keypair[1], 2))
    sign(f"{repo}:v1", keypair[0])
    one = check_trust(f"{repo}:v1", policy=policy)
    assert one.applies and not one.allowed and one.enforced
    assert "2 distinct authorities, 1 satisfied (release)" in one.reason
    with pytest.raises(VerificationError, match="refused by policy"):
        one.raise_if_denied()
    sign(f"{repo}:v1", other_keypair[0])
    both = check_trust(f"{repo}:v1", policy=policy)
    assert both.allowed, both.reason
    assert sorted(s.authority or "" for s in both.signers) == ["release", "review"]
    assert both.verification is not None and both.verification.ok
    assert both.digest.startswith("sha256:") and both.scope == "default"


def test_the_same_key_signing_twice_is_one_signer(model: Path, repo: str, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path], tmp_path: Path) -> None:
    push(model, f"{repo}:v1")
    policy = write_policy(tmp_path / "policy.yaml", two_keys(keypair[1], other_keypair[1], 2))
    sign(f"{repo}:v1", keypair[0])
    sign(f"{repo}:v1", keypair[0])
    outcome = check_trust(f"{repo}:v1", policy=policy)
    assert not outcome.allowed and "1 satisfied" in outcome.reason


def test_no_matching_scope_means_no_verification_and_says_so(model: Path, repo: str, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    push(model, f"{repo}:v1")
    policy = write_policy(
        tmp_path / "policy.yaml",
        f"scopes:\n  registry.example.com:\n    authorities:\n      - {{key: {{path: {keypair[1]}}}}}\n",
    )
    outcome = check_trust(f"{repo}:v1", policy=policy)
    assert not outcome.applies and outcome.allowed and outcome.verification is None
    assert "no scope of" in outcome.reason and "not verified by policy" in outcome.reason


def test_policy_none_opts_out(model: Path, repo: str, monkeypatch: pytest.MonkeyPatch, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    push(model, f"{repo}:v1")
    policy = write_policy(tmp_path / "policy.yaml", one_key(keypair[1]))
    monkeypatch.setenv("OMSIGN_POLICY", str(policy))
    outcome = check_trust(f"{repo}:v1", policy="none")
    assert not outcome.applies and "opted out" in outcome.reason


def test_a_malformed_policy_names_its_line_before_any_request(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: omsign/v1\nscopes:\n  'bad scope!':\n    reject: true\n")
    with pytest.raises(UsageError, match=r"policy\.yaml:3"):
        check_trust("127.0.0.1:1/none:v1", policy=policy)  # port 1: a request would fail differently


@pytest.fixture
def alice_signed(model: Path, registry: RegistryServer, sigstore_local: SigstoreLocal) -> str:
    """A model signed keyless by ``alice`` through the local Fulcio, Rekor and TSA."""
    ref = f"{registry.host}/test/{uuid.uuid4().hex[:12]}:v1"
    push(model, ref)
    result = run_cli(
        "sign", ref, "--trust-config", sigstore_local.trust_config,
        "--identity-token", sigstore_local.token(ALICE, ISSUER),
    )
    assert_ok(result)
    return ref


def keyless_policy(path: Path, sigstore_local: SigstoreLocal, revoked_after: datetime | None) -> Path:
    revoked = ""
    if revoked_after is not None:
        revoked = (
            "revoked:\n"
            f"  - identity: {ALICE}\n"
            f"    issuer: {ISSUER}\n"
            f"    after: {revoked_after:%Y-%m-%dT%H:%M:%SZ}\n"
            "    reason: token leaked\n"
        )
    return write_policy(
        path,
        revoked
        + "default:\n"
        "  authorities:\n"
        "    - name: team\n"
        "      keyless:\n"
        "        identityRegexp: ^alice@example\\.com$\n"
        f"        issuer: {ISSUER}\n"
        f"        trustConfig: {sigstore_local.trust_config}\n",
    )


def test_a_keyless_signer_carries_its_trusted_signing_time(alice_signed: str, sigstore_local: SigstoreLocal, tmp_path: Path) -> None:
    outcome = check_trust(alice_signed, policy=keyless_policy(tmp_path / "p.yaml", sigstore_local, None))
    assert outcome.allowed, outcome.reason
    (signer,) = outcome.signers
    assert signer.identity == ALICE and signer.issuer == ISSUER and signer.authority == "team"
    assert signer.signed_at is not None
    assert abs(datetime.now(timezone.utc) - signer.signed_at) < timedelta(minutes=10)


def test_a_revoked_identity_is_refused_for_signatures_made_after_the_cut_off(
    alice_signed: str, sigstore_local: SigstoreLocal, tmp_path: Path
) -> None:
    before_signing = datetime.now(timezone.utc) - timedelta(hours=1)
    outcome = check_trust(alice_signed, policy=keyless_policy(tmp_path / "p.yaml", sigstore_local, before_signing))
    assert not outcome.allowed
    assert "revoked" in outcome.reason and "token leaked" in outcome.reason


def test_a_revocation_after_the_signing_time_leaves_older_signatures_valid(
    alice_signed: str, sigstore_local: SigstoreLocal, tmp_path: Path
) -> None:
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    outcome = check_trust(alice_signed, policy=keyless_policy(tmp_path / "p.yaml", sigstore_local, later))
    assert outcome.allowed, outcome.reason


def test_snapshot_falls_back_to_the_policy_file(
    model: Path, repo: str, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    push(model, f"{repo}:signed")
    sign(f"{repo}:signed", keypair[0])
    (model / "extra.txt").write_text("unsigned\n")
    push(model, f"{repo}:unsigned")
    policy = write_policy(tmp_path / "policy.yaml", one_key(keypair[1]))
    monkeypatch.setenv("OMSIGN_POLICY", str(policy))
    path = oms.snapshot(f"{repo}:signed")
    assert sorted(p.name for p in path.iterdir()) == sorted(p.name for p in model.iterdir() if p.name != "extra.txt")
    with pytest.raises(VerificationError, match="refused by policy"):
        oms.snapshot(f"{repo}:unsigned")


def test_api_pull_refuses_unsigned_under_an_enforce_policy(model: Path, repo: str, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    push(model, f"{repo}:v1")
    policy = write_policy(tmp_path / "policy.yaml", one_key(keypair[1]))
    with pytest.raises(VerificationError, match="no verified signature"):
        oms.pull(f"{repo}:v1", tmp_path / "out", policy_file=policy)
    assert not (tmp_path / "out").exists()


def attest(ref: str, key: Path, predicate_type: str, predicate: dict[str, object]) -> None:
    """A DSSE attestation over the model's manifest, attached as a bundle referrer (no tlog)."""
    import json

    from oci_model_sign.reference import parse_reference
    from oci_model_sign.signing.attach import attach_bundles
    from oci_model_sign.signing.signers import KeySigner
    from oci_model_sign.store import open_store
    from oci_model_sign.store.base import StoreOptions

    reference = parse_reference(ref)
    store = open_store(reference, StoreOptions())
    try:
        desc = store.resolve(reference.identifier)
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": reference.repository, "digest": {"sha256": desc.digest.split(":", 1)[1]}}],
            "predicateType": predicate_type,
            "predicate": predicate,
        }
        bundle = KeySigner(key, b"pw").sign_dsse(json.dumps(statement).encode())
        attach_bundles(store, store.get_manifest(desc.digest).descriptor, [(bundle, predicate_type)])
    finally:
        store.close()  # type: ignore[attr-defined]


EVAL = "https://example.com/evaluation/v1"


def test_a_required_attestation_is_verified_and_its_check_applied(model: Path, repo: str, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    push(model, f"{repo}:v1")
    sign(f"{repo}:v1", keypair[0])
    policy = write_policy(
        tmp_path / "policy.yaml",
        one_key(keypair[1]) + f"  attestations:\n    - predicateType: {EVAL}\n      check: predicate.accuracy >= 0.9\n",
    )
    missing = check_trust(f"{repo}:v1", policy=policy)
    assert not missing.allowed and "attestation(s) missing" in missing.reason
    attest(f"{repo}:v1", keypair[0], EVAL, {"accuracy": 0.5})
    too_low = check_trust(f"{repo}:v1", policy=policy)
    assert not too_low.allowed and too_low.attestations == []
    attest(f"{repo}:v1", keypair[0], EVAL, {"accuracy": 0.95})
    good = check_trust(f"{repo}:v1", policy=policy)
    assert good.allowed, good.reason
    assert good.attestations == [EVAL]
