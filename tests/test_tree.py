"""``omsign tree``: every referrer and legacy tag described, nothing trusted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TESTDATA
from tests.test_e2e_push_pull import omsign

PW = {"OMSIGN_PASSWORD": "pw"}
EVAL = TESTDATA / "modelcards" / "eval.json"
SIGN_V1 = "https://sigstore.dev/cosign/sign/v1"
EVAL_URI = "https://omsign.dev/eval/v1"
MODEL_SIGNING = "https://model_signing/signature/v1.0"


@pytest.fixture
def keys(session_keypairs: dict[str, tuple[Path, Path]]) -> tuple[Path, Path]:
    return session_keypairs["keys"]


@pytest.fixture
def other_keys(session_keypairs: dict[str, tuple[Path, Path]]) -> tuple[Path, Path]:
    return session_keypairs["other-keys"]


def run(*args: str) -> str:
    proc = omsign(*args, env=PW)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def tree_json(ref: str) -> dict[str, object]:
    value = json.loads(run("tree", ref, "--json"))
    assert isinstance(value, dict)
    return value


def test_an_unsigned_model_has_an_empty_tree(base: str, model: Path) -> None:
    ref = f"{base}:v1"
    run("push", str(model), ref)
    doc = tree_json(ref)
    assert doc["entries"] == [] and doc["links"] == []
    assert "(nothing attached)" in run("tree", ref)


def test_tree_lists_signatures_attestations_by_type_and_signer_and_model_signing(
    base: str, model: Path, keys: tuple[Path, Path], other_keys: tuple[Path, Path]
) -> None:
    ref = f"{base}:v1"
    run("push", str(model), ref)
    run("sign", "--key", str(keys[0]), "--no-tlog-upload", ref)
    run("attest", "--key", str(keys[0]), "--no-tlog-upload", ref, "--type", "eval", "--predicate", str(EVAL))
    run("attest", "--key", str(other_keys[0]), "--no-tlog-upload", ref, "--type", "eval", "--predicate", str(EVAL))
    doc = tree_json(ref)
    entries = doc["entries"]
    assert isinstance(entries, list)
    kinds = sorted((e["kind"], e["predicateType"]) for e in entries)
    assert kinds == [
        ("attestation", EVAL_URI), ("attestation", EVAL_URI), ("model-signing", MODEL_SIGNING), ("signature", SIGN_V1),
    ]
    assert all(e["verified"] is False for e in entries) and doc["verified"] is False
    signers = {e["signer"] for e in entries if e["kind"] == "attestation"}
    assert len(signers) == 2 and all(s.startswith("key hint ") for s in signers)
    text = run("tree", ref)
    assert "├── signatures (1)" in text and "attestations (2)" in text and "model-signing bundles (1)" in text
    assert text.count(f"🔗 {EVAL_URI}") == 1, "attestations are grouped by predicate type"
    assert text.count("(unverified)") == 4


def test_tree_shows_the_legacy_sig_and_att_tags(base: str, model: Path, keys: tuple[Path, Path]) -> None:
    ref = f"{base}:v1"
    digest = json.loads(run("push", str(model), ref, "--json"))["digest"]
    run("sign", "--key", str(keys[0]), "--no-tlog-upload", "--format", "legacy", ref)
    run("attest", "--key", str(keys[0]), "--no-tlog-upload", "--format", "legacy", ref, "--type", "eval", "--predicate", str(EVAL))
    entries = tree_json(ref)["entries"]
    assert isinstance(entries, list)
    hexpart = digest.split(":")[1]
    assert [(e["kind"], e["format"], e["source"]) for e in entries] == [
        ("signature", "legacy", f"sha256-{hexpart}.sig layer 0"),
        ("attestation", "legacy", f"sha256-{hexpart}.att layer 0"),
    ]
    assert entries[1]["predicateType"] == EVAL_URI
    assert entries[1]["links"][0]["role"] == "dataset"


def test_tree_describes_an_attestation_that_would_not_verify(
    base: str, model: Path, keys: tuple[Path, Path], other_keys: tuple[Path, Path]
) -> None:
    """tree describes, it does not trust: an attestation by a stranger is listed, marked unverified."""
    ref = f"{base}:v1"
    run("push", str(model), ref)
    run("attest", "--key", str(other_keys[0]), "--no-tlog-upload", ref, "--type", "eval", "--predicate", str(EVAL))
    refused = omsign("verify-attestation", ref, "--type", "eval", "--key", str(keys[1]), "--insecure-ignore-tlog")
    assert refused.returncode == 8
    entries = tree_json(ref)["entries"]
    assert isinstance(entries, list) and len(entries) == 1
    entry = entries[0]
    assert entry["kind"] == "attestation" and entry["verified"] is False
    assert entry["links"] and entry["links"][0]["digest"]["sha256"]


def test_tree_of_a_missing_model_is_not_found(tmp_path: Path, model: Path) -> None:
    ref = f"oci:{tmp_path / 'store'}:v1"
    run("push", str(model), ref)
    proc = omsign("tree", f"oci:{tmp_path / 'store'}:nope")
    assert proc.returncode == 6, proc.stderr
