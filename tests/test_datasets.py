"""Datasets as artifacts: pushed, signed, pulled with --verify, and named by digest from provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_e2e_push_pull import assert_one_line_error, files_of, omsign

PW = {"OMSIGN_PASSWORD": "pw"}
DATASET_ARTIFACT = "application/vnd.omsign.dataset.manifest.v1+json"
DATASET_RAW = "application/vnd.cncf.model.dataset.v1.raw"
MODEL_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"


@pytest.fixture
def keys(session_keypairs: dict[str, tuple[Path, Path]]) -> tuple[Path, Path]:
    return session_keypairs["keys"]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A Hugging Face style dataset folder: shards of each kind and a dataset card."""
    root = tmp_path / "imdb"
    (root / "data").mkdir(parents=True)
    (root / "data" / "train-00000-of-00002.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 8 + b"PAR1")
    (root / "data" / "train-00001-of-00002.parquet").write_bytes(b"PAR1" + bytes(reversed(range(256))) * 8 + b"PAR1")
    (root / "data" / "test.jsonl").write_text('{"text": "great", "label": 1}\n{"text": "bad", "label": 0}\n')
    (root / "data" / "extra.arrow").write_bytes(b"ARROW1\x00\x00" + b"\x01" * 64)
    (root / "labels.csv").write_text("id,label\n0,neg\n1,pos\n")
    (root / "README.md").write_text("---\nlicense: other\n---\n# IMDb\n")
    return root


def push_json(folder: Path, ref: str, *args: str) -> dict[str, object]:
    proc = omsign("push", str(folder), ref, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    value = json.loads(proc.stdout)
    assert isinstance(value, dict)
    return value


def manifest_of(ref: str) -> dict[str, object]:
    proc = omsign("inspect", ref, "--json")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)["manifest"]
    assert isinstance(manifest, dict)
    return manifest


def test_a_dataset_folder_is_detected_and_pushed_with_dataset_types(base: str, dataset: Path) -> None:
    ref = f"{base}/imdb:v1" if not base.startswith("oci:") else f"{base}:imdb"
    push_json(dataset, ref)
    manifest = manifest_of(ref)
    assert manifest["artifactType"] == DATASET_ARTIFACT
    layers = manifest["layers"]
    assert isinstance(layers, list)
    by_title = {x["annotations"]["org.opencontainers.image.title"]: x["mediaType"] for x in layers}
    shards = [t for t in by_title if not t.endswith("README.md")]
    assert len(shards) == 5, "one layer per shard"
    assert {by_title[t] for t in shards} == {DATASET_RAW}


def test_artifact_type_flag_overrides_detection(base: str, dataset: Path, model: Path) -> None:
    ref = f"{base}:m"
    push_json(dataset, ref, "--artifact-type", "model")
    assert manifest_of(ref)["artifactType"] == MODEL_ARTIFACT
    forced = f"{base}:d"
    push_json(model, forced, "--artifact-type", "dataset")
    assert manifest_of(forced)["artifactType"] == DATASET_ARTIFACT


def test_a_model_folder_stays_a_model(base: str, model: Path) -> None:
    ref = f"{base}:v1"
    push_json(model, ref)
    assert manifest_of(ref)["artifactType"] == MODEL_ARTIFACT


def test_an_unknown_artifact_type_is_a_usage_error(dataset: Path, tmp_path: Path) -> None:
    proc = omsign("push", str(dataset), f"oci:{tmp_path / 's'}:v1", "--artifact-type", "weights")
    assert_one_line_error(proc, 2)


def test_a_dataset_is_signed_and_pulled_with_verify(base: str, dataset: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    ref = f"{base}:imdb"
    push_json(dataset, ref)
    signed = omsign("sign", "--key", str(keys[0]), "--no-tlog-upload", ref, env=PW)
    assert signed.returncode == 0, signed.stderr
    dest = tmp_path / "out"
    pulled = omsign("pull", ref, str(dest), "--verify", "--key", str(keys[1]), "--insecure-ignore-tlog")
    assert pulled.returncode == 0, pulled.stderr
    got = files_of(dest)
    got.pop("model.sig")
    assert got == files_of(dataset)


def test_provenance_names_the_signed_dataset_and_tree_shows_the_link(
    repo: str, dataset: Path, model: Path, keys: tuple[Path, Path]
) -> None:
    data_ref = f"{repo}-data:v1"
    data_digest = str(push_json(dataset, data_ref)["digest"])
    assert omsign("sign", "--key", str(keys[0]), "--no-tlog-upload", data_ref, env=PW).returncode == 0
    model_ref = f"{repo}:v1"
    push_json(model, model_ref)
    assert omsign("sign", "--key", str(keys[0]), "--no-tlog-upload", model_ref, env=PW).returncode == 0
    attested = omsign(
        "attest", "--key", str(keys[0]), "--no-tlog-upload", model_ref, "--type", "slsaprovenance1",
        "--dependency", f"dataset={repo}-data@{data_digest}", env={**PW, "GITHUB_ACTIONS": "", "GITLAB_CI": ""},
    )
    assert attested.returncode == 0, attested.stderr
    tree = json.loads(omsign("tree", model_ref, "--json").stdout)
    links = [x for x in tree["links"] if x["role"] == "dataset"]
    assert [x["digest"] for x in links] == [{"sha256": data_digest.split(":")[1]}]
    assert links[0]["name"] == f"{repo}-data"
    text = omsign("tree", model_ref).stdout
    assert f"dataset: {repo}-data sha256:{data_digest.split(':')[1]}" in text
    # the link names an artifact that verifies on its own
    linked = omsign("verify", f"{repo}-data@{data_digest}", "--key", str(keys[1]), "--insecure-ignore-tlog")
    assert linked.returncode == 0, linked.stderr
    proc = omsign(
        "verify-attestation", model_ref, "--type", "slsaprovenance1", "--key", str(keys[1]), "--insecure-ignore-tlog",
        "--predicate-check",
        f'predicate.buildDefinition.resolvedDependencies.exists(d, d.digest.sha256 == "{data_digest.split(":")[1]}")',
    )
    assert proc.returncode == 0, proc.stderr
