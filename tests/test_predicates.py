"""Predicates omsign builds: type aliases, statements, model card, evaluation, provenance, ML-BOM."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from oci_model_sign.errors import InputError, IntegrityError, LimitError, UsageError
from oci_model_sign.oci import mediatypes
from oci_model_sign.predicates import evaluation, mlbom, modelcard, provenance, statement, types

ROOT = Path(__file__).resolve().parent.parent
CARDS = ROOT / "testdata" / "modelcards"
SCHEMAS = ROOT / "docs" / "predicates"
MANIFEST = "sha256:" + "ab" * 32
DATASET = "sha256:" + "cd" * 32
BASE = "sha256:" + "ef" * 32


def _schema(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _assert_valid(name: str, predicate: object) -> None:
    errors = [e.message for e in _schema(name).iter_errors(predicate)]
    assert errors == []


# -- aliases ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "uri"),
    [
        ("custom", "https://cosign.sigstore.dev/attestation/v1"),
        ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
        ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
        ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
        ("link", "https://in-toto.io/Link/v1"),
        ("spdx", "https://spdx.dev/Document"),
        ("spdxjson", "https://spdx.dev/Document"),
        ("cyclonedx", "https://cyclonedx.org/bom"),
        ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
        ("openvex", "https://openvex.dev/ns"),
        ("modelcard", "https://omsign.dev/modelcard/v1"),
        ("eval", "https://omsign.dev/eval/v1"),
    ],
)
def test_each_alias_names_cosigns_uri_or_omsigns_own(alias: str, uri: str) -> None:
    assert types.resolve_predicate_type(alias) == uri


def test_the_alias_table_is_cosigns_ten_plus_omsigns_two() -> None:
    assert set(types.COSIGN_ALIASES) == {
        "custom", "slsaprovenance", "slsaprovenance02", "slsaprovenance1", "link",
        "spdx", "spdxjson", "cyclonedx", "vuln", "openvex",
    }
    assert set(types.ALIASES) == set(types.COSIGN_ALIASES) | {"modelcard", "eval"}


def test_any_absolute_uri_is_its_own_predicate_type() -> None:
    assert types.resolve_predicate_type("https://example.com/card/v3") == "https://example.com/card/v3"


@pytest.mark.parametrize("bad", ["cyclondx", "", "not a uri", "/relative/path"])
def test_an_unknown_alias_is_a_usage_error_naming_it(bad: str) -> None:
    with pytest.raises(UsageError, match="invalid predicate type"):
        types.resolve_predicate_type(bad)


def test_alias_of_gives_the_shortest_name_for_display() -> None:
    assert types.alias_of("https://slsa.dev/provenance/v0.2") == "slsaprovenance"
    assert types.alias_of("https://spdx.dev/Document") == "spdx"
    assert types.alias_of("https://example.com/x") is None


# -- predicate files, as cosign turns them into predicates -----------------------------------


def test_custom_predicates_are_wrapped_with_cosigns_go_field_names() -> None:
    uri, pred = types.predicate_from_file("custom", b'{"foo": "bar"}\n', now=lambda: "2025-02-28T19:18:11Z")
    assert uri == "https://cosign.sigstore.dev/attestation/v1"
    assert pred == {"Data": '{"foo": "bar"}\n', "Timestamp": "2025-02-28T19:18:11Z"}


def test_custom_predicate_matches_a_real_cosign_attestation(interop: Path) -> None:
    bundle = json.loads(
        (interop / "sigstore-cosign/oci-attestation-keyless/oci-attestation.sigstore.json").read_text()
    )
    cosign_stmt = statement.parse_statement(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    cosign_pred = cosign_stmt["predicate"]
    assert isinstance(cosign_pred, dict)
    _, ours = types.predicate_from_file(
        "custom", cosign_pred["Data"].encode(), now=lambda: cosign_pred["Timestamp"]
    )
    assert ours == cosign_pred
    assert cosign_stmt["predicateType"] == types.COSIGN_CUSTOM


def test_a_uri_type_takes_the_file_as_a_json_object_unchanged() -> None:
    uri, pred = types.predicate_from_file("https://example.com/x/v1", b'{"a": [1, 2]}')
    assert (uri, pred) == ("https://example.com/x/v1", {"a": [1, 2]})


def test_spdx_keeps_the_file_as_a_string_and_spdxjson_parses_it() -> None:
    assert types.predicate_from_file("spdx", b"SPDXVersion: SPDX-2.3\n")[1] == "SPDXVersion: SPDX-2.3\n"
    assert types.predicate_from_file("spdxjson", b'{"spdxVersion": "SPDX-2.3"}')[1] == {
        "spdxVersion": "SPDX-2.3"
    }


def test_slsa1_drops_unknown_top_level_fields_and_renames_invocation_id() -> None:
    raw = json.dumps(
        {"buildDefinition": {"buildType": "x"}, "runDetails": {"metadata": {"invocationID": "r1"}}, "junk": 1}
    ).encode()
    _, pred = types.predicate_from_file("slsaprovenance1", raw)
    assert pred == {"buildDefinition": {"buildType": "x"}, "runDetails": {"metadata": {"invocationId": "r1"}}}


def test_a_link_predicate_needs_every_link_field() -> None:
    with pytest.raises(InputError, match="required field"):
        types.predicate_from_file("link", b'{"_type": "link", "name": "x"}')


@pytest.mark.parametrize("raw", [b"[1, 2]", b"not json", b'"a string"'])
def test_json_types_refuse_anything_but_a_json_object(raw: bytes) -> None:
    with pytest.raises(InputError):
        types.predicate_from_file("cyclonedx", raw)


# -- the statement --------------------------------------------------------------------------


def test_the_statement_is_in_toto_v1_about_the_manifest_digest() -> None:
    raw = statement.build_statement(MANIFEST, "localhost:5000/models/m", types.OMSIGN_EVAL_V1, {"b": 1, "a": 2})
    assert raw == (
        b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"localhost:5000/models/m",'
        b'"digest":{"sha256":"' + b"ab" * 32 + b'"}}],"predicateType":"https://omsign.dev/eval/v1",'
        b'"predicate":{"a":2,"b":1}}'
    )
    parsed = statement.parse_statement(raw)
    assert statement.subject_matches(parsed, MANIFEST)
    assert not statement.subject_matches(parsed, "sha256:" + "00" * 32)


def test_the_same_predicate_always_gives_the_same_bytes() -> None:
    a = statement.build_statement(MANIFEST, "r/m", "https://x/v1", {"z": {"y": 1, "x": [{"b": 2, "a": 1}]}, "é": "ü"})
    b = statement.build_statement(MANIFEST, "r/m", "https://x/v1", {"é": "ü", "z": {"x": [{"a": 1, "b": 2}], "y": 1}})
    assert a == b
    assert "é".encode() in a  # UTF-8, not \\u escapes


def test_a_string_predicate_is_a_json_string_in_the_statement() -> None:
    raw = statement.build_statement(MANIFEST, "r/m", types.SPDX_DOCUMENT, "SPDXVersion: SPDX-2.3")
    assert json.loads(raw)["predicate"] == "SPDXVersion: SPDX-2.3"


@pytest.mark.parametrize("digest", ["sha256:abc", "sha512:" + "ab" * 64, "ab" * 32, "sha256:" + "AB" * 32])
def test_the_subject_must_be_a_sha256_manifest_digest(digest: str) -> None:
    with pytest.raises(InputError, match="digest"):
        statement.build_statement(digest, "r/m", "https://x/v1", {})


def test_nan_cannot_be_signed_into_a_predicate() -> None:
    with pytest.raises(InputError, match="JSON"):
        statement.build_statement(MANIFEST, "r/m", "https://x/v1", {"v": float("nan")})


def test_cosigns_v01_statement_type_is_parsed_and_others_are_refused() -> None:
    v01 = statement.build_statement(MANIFEST, "r/m", "https://x/v1", {}, statement_type=mediatypes.IN_TOTO_STATEMENT_V01)
    assert statement.parse_statement(v01)["_type"] == "https://in-toto.io/Statement/v0.1"
    bad = json.loads(v01)
    bad["_type"] = "https://example.com/Statement"
    with pytest.raises(IntegrityError, match="_type"):
        statement.parse_statement(json.dumps(bad).encode())


@pytest.mark.parametrize(
    "doc",
    [
        {"_type": mediatypes.IN_TOTO_STATEMENT_V1, "subject": [], "predicateType": "u", "predicate": {}},
        {"_type": mediatypes.IN_TOTO_STATEMENT_V1, "subject": [{"name": "x"}], "predicateType": "u", "predicate": {}},
        {"_type": mediatypes.IN_TOTO_STATEMENT_V1, "subject": [{"digest": {}}], "predicateType": "", "predicate": {}},
        {"_type": mediatypes.IN_TOTO_STATEMENT_V1, "subject": [{"digest": {}}], "predicateType": "u"},
        [1, 2],
    ],
)
def test_a_malformed_statement_is_an_integrity_error(doc: object) -> None:
    with pytest.raises(IntegrityError):
        statement.parse_statement(json.dumps(doc).encode())


# -- model card -----------------------------------------------------------------------------


def test_a_hub_card_round_trips_into_the_modelcard_predicate() -> None:
    from huggingface_hub import ModelCard

    path = CARDS / "README.md"
    pred = modelcard.modelcard_predicate(path)
    hub: Any = ModelCard(path.read_text()).data
    assert pred["card"] == {
        "name": "README.md",
        "digest": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
        "mediaType": "text/markdown",
    }
    assert pred["license"] == hub.license == "apache-2.0"
    assert pred["baseModel"] == [hub.base_model] == ["distilbert/distilbert-base-uncased"]
    assert pred["datasets"] == hub.datasets == ["stanfordnlp/imdb", "stanfordnlp/sst2"]
    assert pred["language"] == hub.language == ["en"]
    assert pred["pipelineTag"] == hub.pipeline_tag == "text-classification"
    assert pred["libraryName"] == "transformers"
    assert pred["tags"] == ["generated_from_trainer", "sentiment-analysis"]
    assert pred["metricNames"] == ["accuracy", "f1"]
    assert pred["modelName"] == "distilbert-imdb-sentiment"
    # model-index -> results -> task / dataset / metrics, as the card wrote them
    imdb, sst2 = pred["results"]
    assert imdb["task"] == {"type": "text-classification", "name": "Text Classification"}
    assert imdb["dataset"] == {
        "type": "stanfordnlp/imdb", "name": "IMDb", "config": "plain_text", "split": "test",
        "revision": "e6281661ce1c48d982bc483cf8a173c1bbeb5d31",
    }
    assert imdb["metrics"] == [
        {"type": "accuracy", "value": 0.9312, "name": "Accuracy", "verified": False},
        {"type": "f1", "value": 0.9309, "name": "F1", "verified": False},
    ]
    assert sst2["source"]["name"] == "Open LLM Leaderboard"
    assert sst2["metrics"] == [{"type": "accuracy", "value": 0.8853, "name": "Accuracy", "verified": False}]
    # every other key is kept, not lost
    assert pred["metadata"]["co2_eq_emissions"]["emissions"] == 42.5
    assert len(pred["metadata"]["widget"]) == 2
    # and the whole predicate survives a statement round trip unchanged
    raw = statement.build_statement(MANIFEST, "r/m", types.OMSIGN_MODELCARD_V1, pred)
    assert statement.parse_statement(raw)["predicate"] == pred


def test_the_modelcard_predicate_validates_against_its_schema() -> None:
    _assert_valid("modelcard-v1", modelcard.modelcard_predicate(CARDS / "README.md"))


def test_a_changed_card_changes_the_card_digest(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text((CARDS / "README.md").read_text() + "\nOne more line of prose.\n")
    a = modelcard.modelcard_predicate(CARDS / "README.md")
    b = modelcard.modelcard_predicate(card)
    assert a["card"]["digest"] != b["card"]["digest"]
    assert {k: v for k, v in a.items() if k != "card"} == {k: v for k, v in b.items() if k != "card"}


def test_a_single_string_base_model_or_dataset_becomes_a_list(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\ndatasets: squad\nlanguage: fr\n---\n# m\n")
    pred = modelcard.modelcard_predicate(card)
    assert (pred["datasets"], pred["language"], pred["license"]) == (["squad"], ["fr"], "mit")
    _assert_valid("modelcard-v1", pred)


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("license: [unclosed\n", "not valid YAML"),
        ("license: mit\n  bad: indent\n", "not valid YAML"),
        ("- just\n- a list\n", "invalid metadata"),
        ("model-index:\n- name: m\n  results:\n  - task: {}\n", "invalid metadata"),
        ("score: .nan\n", "JSON cannot represent"),
    ],
)
def test_bad_front_matter_is_a_one_line_input_error(tmp_path: Path, front: str, message: str) -> None:
    card = tmp_path / "README.md"
    card.write_text(f"---\n{front}---\n# model\n")
    with pytest.raises(InputError, match=message) as info:
        modelcard.modelcard_predicate(card)
    assert "\n" not in info.value.one_line()
    assert "README.md" in info.value.one_line()


def test_a_card_without_front_matter_is_refused_with_a_hint(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text("# just prose\n")
    with pytest.raises(InputError, match="no YAML front matter"):
        modelcard.modelcard_predicate(card)


def test_a_missing_card_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a file"):
        modelcard.modelcard_predicate(tmp_path / "nope.md")


# -- evaluation -----------------------------------------------------------------------------


def test_an_eval_json_becomes_the_eval_predicate() -> None:
    pred = evaluation.eval_predicate_from_file(CARDS / "eval.json")
    assert pred["task"]["type"] == "text-classification"
    assert pred["dataset"]["digest"] == {"sha256": "6b7c2b3c1a3f1d0e9b8a7f6e5d4c3b2a19080706050403020100f0e0d0c0b0a0"}
    assert pred["metrics"] == [{"name": "accuracy", "value": 0.9312}, {"name": "f1", "value": 0.9309}]
    assert pred["harness"] == {"name": "lm-evaluation-harness", "version": "0.4.5"}
    _assert_valid("eval-v1", pred)


def test_eval_conveniences_and_flags_that_override_the_file() -> None:
    pred = evaluation.eval_predicate(
        {"task": "summarization", "dataset": "cnn_dailymail", "metrics": {"rouge1": 44.1}},
        dataset_digest=DATASET,
        harness={"name": "evaluate", "version": "0.4.3"},
    )
    assert pred == {
        "task": {"type": "summarization"},
        "dataset": {"name": "cnn_dailymail", "digest": {"sha256": "cd" * 32}},
        "metrics": [{"name": "rouge1", "value": 44.1}],
        "harness": {"name": "evaluate", "version": "0.4.3"},
    }
    _assert_valid("eval-v1", pred)


def test_one_model_index_result_becomes_an_eval_predicate() -> None:
    pred = evaluation.eval_predicate_from_card(CARDS / "README.md", dataset="stanfordnlp/imdb")
    assert pred["dataset"]["split"] == "test"
    # the hub revision is a git commit: it becomes the dataset's content address
    assert pred["dataset"]["digest"] == {"gitCommit": "e6281661ce1c48d982bc483cf8a173c1bbeb5d31"}
    assert pred["metrics"][0] == {"name": "accuracy", "value": 0.9312, "displayName": "Accuracy", "verified": False}
    assert pred["card"]["name"] == "README.md"
    _assert_valid("eval-v1", pred)


def test_a_card_with_several_results_needs_a_selection_and_lists_them() -> None:
    with pytest.raises(InputError, match="2 model-index results; pick one") as info:
        evaluation.eval_predicate_from_card(CARDS / "README.md")
    assert "stanfordnlp/sst2 (validation)" in info.value.one_line()
    with pytest.raises(InputError, match="no model-index result matches"):
        evaluation.eval_predicate_from_card(CARDS / "README.md", dataset="squad")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dataset": "d", "metrics": {"a": 1}}, "task"),
        ({"task": "t", "metrics": {"a": 1}}, "dataset"),
        ({"task": "t", "dataset": "d", "metrics": []}, "metrics"),
        ({"task": "t", "dataset": "d", "metrics": [{"name": "a", "value": True}]}, "number"),
        ({"task": "t", "dataset": {"name": "d", "digest": "sha256:short"}, "metrics": {"a": 1}}, "digest"),
    ],
)
def test_an_incomplete_evaluation_is_an_input_error(data: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        evaluation.eval_predicate(data)


# -- provenance -----------------------------------------------------------------------------

GITHUB_ENV = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/sentiment",
    "GITHUB_REPOSITORY_ID": "1296269",
    "GITHUB_REPOSITORY_OWNER_ID": "583231",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_SHA": "c27d339ee6075c1f744c5d4b200f7901aad2c369",
    "GITHUB_WORKFLOW_REF": "acme/sentiment/.github/workflows/train.yml@refs/heads/main",
    "GITHUB_RUN_ID": "1536140711",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_EVENT_NAME": "workflow_dispatch",
    "RUNNER_ENVIRONMENT": "github-hosted",
    "GITHUB_TOKEN": "ghs_secret_never_signed",
}

GITLAB_ENV = {
    "GITLAB_CI": "true",
    "CI_SERVER_URL": "https://gitlab.example.com",
    "CI_PROJECT_URL": "https://gitlab.example.com/ml/sentiment",
    "CI_PROJECT_PATH": "ml/sentiment",
    "CI_PROJECT_ID": "42",
    "CI_COMMIT_SHA": "054b8ab29cfba661c3e830c9f4845dd07b385a1a",
    "CI_COMMIT_TAG": "v1.2.0",
    "CI_COMMIT_REF_NAME": "v1.2.0",
    "CI_CONFIG_PATH": ".gitlab-ci.yml",
    "CI_PIPELINE_ID": "1216772341",
    "CI_PIPELINE_SOURCE": "push",
    "CI_JOB_ID": "6412263894",
    "CI_JOB_NAME": "train",
    "CI_JOB_URL": "https://gitlab.example.com/ml/sentiment/-/jobs/6412263894",
    "CI_JOB_STARTED_AT": "2026-11-30T09:00:00Z",
    "CI_RUNNER_ID": "32585160",
    "CI_JOB_TOKEN": "glcbt-secret-never-signed",
}

FINISHED = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)


def _clear_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_ACTIONS", "GITLAB_CI", "OMSIGN_BUILDER_ID", "OMSIGN_INVOCATION_ID"):
        monkeypatch.delenv(name, raising=False)


def _inputs() -> list[provenance.Artifact]:
    return [
        provenance.oci_artifact(f"localhost:5000/models/distilbert:v1@{BASE}", "base-model"),
        provenance.oci_artifact(f"localhost:5000/datasets/imdb@{DATASET}", "dataset"),
    ]


def test_provenance_in_github_actions_uses_githubs_workflow_build_type(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_ci(monkeypatch)
    for k, v in GITHUB_ENV.items():
        monkeypatch.setenv(k, v)
    pred = provenance.slsa_provenance(dependencies=_inputs(), finished_on=FINISHED)
    bd, rd = pred["buildDefinition"], pred["runDetails"]
    assert bd["buildType"] == "https://actions.github.io/buildtypes/workflow/v1"
    assert bd["externalParameters"] == {
        "workflow": {
            "ref": "refs/heads/main",
            "repository": "https://github.com/acme/sentiment",
            "path": ".github/workflows/train.yml",
        },
        "runner_environment": "github-hosted",
    }
    assert bd["internalParameters"] == {
        "github": {"event_name": "workflow_dispatch", "repository_id": "1296269", "repository_owner_id": "583231"}
    }
    assert bd["resolvedDependencies"][0] == {
        "uri": "git+https://github.com/acme/sentiment@refs/heads/main",
        "digest": {"gitCommit": "c27d339ee6075c1f744c5d4b200f7901aad2c369"},
        "annotations": {"omsign.dev/role": "source"},
    }
    assert rd["builder"]["id"] == "https://github.com/acme/sentiment/.github/workflows/train.yml@refs/heads/main"
    assert rd["metadata"] == {
        "invocationId": "https://github.com/acme/sentiment/actions/runs/1536140711/attempts/2",
        "finishedOn": "2026-11-30T10:00:00Z",
    }
    assert "ghs_secret" not in json.dumps(pred)
    _assert_valid("slsa-provenance-v1", pred)


def test_provenance_names_the_base_model_and_dataset_by_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_ci(monkeypatch)
    deps = provenance.slsa_provenance(dependencies=_inputs())["buildDefinition"]["resolvedDependencies"]
    by_role = {d["annotations"]["omsign.dev/role"]: d for d in deps}
    assert by_role["base-model"]["digest"] == {"sha256": "ef" * 32}
    assert by_role["base-model"]["name"] == "localhost:5000/models/distilbert"
    assert by_role["base-model"]["uri"].startswith("pkg:oci/distilbert@sha256")
    assert "repository_url=localhost:5000/models/distilbert" in by_role["base-model"]["uri"]
    assert by_role["dataset"]["digest"] == {"sha256": "cd" * 32}


def test_provenance_in_gitlab_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_ci(monkeypatch)
    for k, v in GITLAB_ENV.items():
        monkeypatch.setenv(k, v)
    pred = provenance.slsa_provenance(dependencies=_inputs(), finished_on=FINISHED)
    bd, rd = pred["buildDefinition"], pred["runDetails"]
    assert bd["buildType"] == "https://omsign.dev/buildtypes/gitlab-ci/v1"
    assert bd["externalParameters"] == {
        "pipeline": {
            "repository": "https://gitlab.example.com/ml/sentiment",
            "ref": "refs/tags/v1.2.0",
            "path": ".gitlab-ci.yml",
        },
        "source": "push",
        "job": "train",
    }
    assert bd["internalParameters"]["gitlab"]["pipeline_id"] == "1216772341"
    assert bd["resolvedDependencies"][0]["uri"] == "git+https://gitlab.example.com/ml/sentiment@refs/tags/v1.2.0"
    assert bd["resolvedDependencies"][0]["digest"] == {"gitCommit": "054b8ab29cfba661c3e830c9f4845dd07b385a1a"}
    assert rd["builder"]["id"] == "https://gitlab.example.com/ml/sentiment/-/runners/32585160"
    assert rd["metadata"] == {
        "invocationId": "https://gitlab.example.com/ml/sentiment/-/jobs/6412263894",
        "startedOn": "2026-11-30T09:00:00Z",
        "finishedOn": "2026-11-30T10:00:00Z",
    }
    assert "secret" not in json.dumps(pred)
    _assert_valid("slsa-provenance-v1", pred)


def test_provenance_outside_ci_is_generic_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_ci(monkeypatch)
    pred = provenance.slsa_provenance(external_parameters={"config": "train.yaml"}, finished_on=FINISHED)
    assert pred["buildDefinition"] == {
        "buildType": "https://omsign.dev/buildtypes/generic/v1",
        "externalParameters": {"config": "train.yaml"},
    }
    assert pred["runDetails"]["builder"]["id"] == "https://omsign.dev/builders/local"
    _assert_valid("slsa-provenance-v1", pred)


def test_a_provenance_input_named_by_tag_only_is_refused() -> None:
    with pytest.raises(InputError, match="with a digest"):
        provenance.oci_artifact("localhost:5000/datasets/imdb:latest", "dataset")


def test_the_provenance_statement_uses_the_slsa_v1_type(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_ci(monkeypatch)
    pred = provenance.slsa_provenance()
    raw = statement.build_statement(MANIFEST, "r/m", types.resolve_predicate_type("slsaprovenance1"), pred)
    assert json.loads(raw)["predicateType"] == "https://slsa.dev/provenance/v1"


# -- ML-BOM ---------------------------------------------------------------------------------


def _bom() -> dict[str, Any]:
    card = modelcard.modelcard_predicate(CARDS / "README.md")
    return mlbom.ml_bom(
        "distilbert-imdb-sentiment",
        MANIFEST,
        repository="localhost:5000/models/sentiment",
        card=card,
        datasets=[provenance.Artifact(role="dataset", name="stanfordnlp/imdb", digest=DATASET)],
        base_models=[provenance.Artifact(role="base-model", name="distilbert/distilbert-base-uncased", digest=BASE)],
        serial_number=uuid.UUID(int=7),
        timestamp=FINISHED,
    )


def test_the_ml_bom_passes_cyclonedx_libs_own_strict_validator() -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    doc = _bom()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc)) is None
    _assert_valid("cyclonedx-mlbom-v1", doc)


def test_the_ml_bom_describes_model_card_datasets_and_base_model() -> None:
    doc = _bom()
    model = doc["metadata"]["component"]
    assert (doc["bomFormat"], doc["specVersion"]) == ("CycloneDX", "1.6")
    assert model["type"] == "machine-learning-model"
    assert model["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert model["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    card = model["modelCard"]
    assert card["modelParameters"]["task"] == "text-classification"
    assert {"type": "accuracy", "value": "0.9312", "slice": "stanfordnlp/imdb test"} in card[
        "quantitativeAnalysis"
    ]["performanceMetrics"]
    comps = {c["name"]: c for c in doc["components"]}
    imdb = comps["stanfordnlp/imdb"]
    assert imdb["type"] == "data"
    assert imdb["hashes"] == [{"alg": "SHA-256", "content": "cd" * 32}]
    assert imdb["data"] == [{"type": "dataset", "name": "stanfordnlp/imdb"}]
    assert "hashes" not in comps["stanfordnlp/sst2"]  # named by the card, no digest known
    assert comps["distilbert/distilbert-base-uncased"]["type"] == "machine-learning-model"
    assert {"ref": imdb["bom-ref"]} in card["modelParameters"]["datasets"]
    model_deps = next(d for d in doc["dependencies"] if d["ref"] == "model")
    assert set(model_deps["dependsOn"]) == {c["bom-ref"] for c in doc["components"]}


def test_the_ml_bom_is_reproducible_given_serial_and_time() -> None:
    assert statement.canonical_json(_bom()) == statement.canonical_json(_bom())


def test_a_broken_bom_is_caught_by_the_validator() -> None:
    doc = _bom()
    doc["metadata"]["component"]["modelCard"]["quantitativeAnalysis"]["performanceMetrics"][0]["value"] = 0.9
    with pytest.raises(InputError, match=r"not valid CycloneDX 1\.6"):
        mlbom.validate_ml_bom(doc)


# -- links for `tree` ------------------------------------------------------------------------


def test_provenance_links_list_inputs_by_role_and_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_ci(monkeypatch)
    links = provenance.provenance_links(provenance.slsa_provenance(dependencies=_inputs()))
    assert [(link.role, link.digest) for link in links] == [
        ("base-model", {"sha256": "ef" * 32}),
        ("dataset", {"sha256": "cd" * 32}),
    ]
    assert links[1].name == "localhost:5000/datasets/imdb"


@pytest.mark.parametrize(
    "predicate",
    [
        None,
        [],
        {"buildDefinition": "x"},
        {"buildDefinition": {"resolvedDependencies": [1, {"digest": "sha256:x"}, {"digest": {"a": 1}}]}},
    ],
)
def test_provenance_links_skip_what_they_cannot_read(predicate: object) -> None:
    assert provenance.provenance_links(predicate) == []


def test_an_unannotated_dependency_is_a_link_of_role_other() -> None:
    pred = {"buildDefinition": {"resolvedDependencies": [{"uri": "x", "digest": {"sha256": "ab"}}]}}
    assert provenance.provenance_links(pred)[0].role == "other"


# -- from attest flags to a statement ----------------------------------------------------------


def test_build_takes_a_predicate_file_for_any_type(tmp_path: Path) -> None:
    from oci_model_sign.predicates.build import PredicateInputs, build_predicate

    f = tmp_path / "p.json"
    f.write_text('{"k": "v"}')
    assert build_predicate("openvex", MANIFEST, "r/m", PredicateInputs(predicate_file=f)) == (
        "https://openvex.dev/ns",
        {"k": "v"},
    )
    uri, pred = build_predicate("custom", MANIFEST, "r/m", PredicateInputs(predicate_file=f, now=lambda: "T"))
    assert (uri, pred) == (types.COSIGN_CUSTOM, {"Data": '{"k": "v"}', "Timestamp": "T"})


def test_build_makes_each_omsign_predicate_from_its_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    from oci_model_sign.predicates.build import (
        PredicateInputs,
        build_predicate,
        build_statement_for,
    )

    _clear_ci(monkeypatch)
    card = CARDS / "README.md"
    uri, pred = build_predicate("modelcard", MANIFEST, "r/m", PredicateInputs(from_card=card))
    assert uri == types.OMSIGN_MODELCARD_V1 and isinstance(pred, dict) and pred["license"] == "apache-2.0"
    uri, pred = build_predicate("eval", MANIFEST, "r/m", PredicateInputs(from_card=card, eval_dataset="SST-2"))
    assert uri == types.OMSIGN_EVAL_V1 and isinstance(pred, dict) and pred["dataset"]["split"] == "validation"
    uri, pred = build_predicate("eval", MANIFEST, "r/m", PredicateInputs(predicate_file=CARDS / "eval.json"))
    assert isinstance(pred, dict) and pred["harness"]["name"] == "lm-evaluation-harness"
    uri, pred = build_predicate("slsaprovenance1", MANIFEST, "r/m", PredicateInputs(dependencies=_inputs()))
    assert uri == types.SLSA_PROVENANCE_V1 and isinstance(pred, dict)
    _assert_valid("slsa-provenance-v1", pred)
    uri, pred = build_predicate("cyclonedx", MANIFEST, "r/m", PredicateInputs(from_card=card, dependencies=_inputs()))
    assert uri == types.CYCLONEDX_BOM and isinstance(pred, dict)
    mlbom.validate_ml_bom(pred)
    uri, raw = build_statement_for("modelcard", MANIFEST, "localhost:5000/m", PredicateInputs(from_card=card))
    assert statement.parse_statement(raw)["subject"] == [{"name": "localhost:5000/m", "digest": {"sha256": "ab" * 32}}]


@pytest.mark.parametrize(
    ("type_", "kwargs", "message"),
    [
        ("modelcard", {}, "needs --from-card"),
        ("eval", {}, "needs --predicate eval.json or --from-card"),
        ("openvex", {}, "needs --predicate FILE"),
        ("modelcard", {"predicate_file": "x.json", "from_card": "README.md"}, "cannot be combined"),
    ],
)
def test_build_refuses_missing_or_conflicting_inputs(type_: str, kwargs: dict[str, Any], message: str) -> None:
    from oci_model_sign.predicates.build import PredicateInputs, build_predicate

    with pytest.raises(UsageError, match=message):
        build_predicate(type_, MANIFEST, "r/m", PredicateInputs(**kwargs))


def test_front_matter_is_read_as_the_hub_reads_it(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    text = "\r\n---\r\nlicense: mit\r\ntags:\r\n- a\r\n---\r\n# body\r\n"
    card = tmp_path / "README.md"
    card.write_bytes(text.encode())
    pred = modelcard.modelcard_predicate(card)
    hub: Any = ModelCard(text).data
    assert (pred["license"], pred["tags"]) == (hub.license, hub.tags) == ("mit", ["a"])


def test_a_yaml_alias_bomb_is_a_limit_error_not_a_hang(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\n" + "\n".join(lines) + "\n---\n")
    with pytest.raises(LimitError, match="more than"):
        modelcard.modelcard_predicate(card)


def test_a_self_referencing_yaml_anchor_is_a_limit_error(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\nloop: &l [1, *l]\n---\n")
    with pytest.raises(LimitError):
        modelcard.modelcard_predicate(card)


def test_a_vuln_predicate_keeps_cosigns_fields_and_fills_absent_ones() -> None:
    raw = json.dumps(
        {
            "scanner": {"uri": "pkg:github/aquasecurity/trivy", "version": "0.50.0", "result": {"n": 0}},
            "metadata": {"scanStartedOn": "2026-11-30T09:00:00Z"},
            "extra": "dropped",
        }
    ).encode()
    _, pred = types.predicate_from_file("vuln", raw)
    assert pred == {
        "invocation": {"parameters": None, "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {
            "uri": "pkg:github/aquasecurity/trivy",
            "version": "0.50.0",
            "db": {"uri": "", "version": ""},
            "result": {"n": 0},
        },
        "metadata": {"scanStartedOn": "2026-11-30T09:00:00Z", "scanFinishedOn": "0001-01-01T00:00:00Z"},
    }


def test_a_vuln_predicate_with_a_bad_time_is_an_input_error() -> None:
    with pytest.raises(InputError, match="RFC 3339"):
        types.predicate_from_file("vuln", b'{"metadata": {"scanStartedOn": "yesterday"}}')


def test_a_link_predicate_keeps_only_link_fields() -> None:
    link: dict[str, object] = {
        "_type": "link", "name": "train", "materials": {}, "products": {}, "byproducts": {},
        "command": [], "environment": {}, "junk": 1,
    }
    _, pred = types.predicate_from_file("link", json.dumps(link).encode())
    assert isinstance(pred, dict) and "junk" not in pred and pred["name"] == "train"


def test_a_model_index_with_non_string_names_is_refused(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text(
        "---\nmodel-index:\n- name: m\n  results:\n  - task: {type: 7}\n"
        "    dataset: {type: d, name: D}\n    metrics: [{type: acc, value: 1}]\n---\n"
    )
    with pytest.raises(InputError, match=r"model card README\.md: model-index result 1: task\.type must be a string"):
        modelcard.modelcard_predicate(card)


def test_a_deeply_nested_predicate_file_is_a_limit_error(tmp_path: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(LimitError):
        types.predicate_from_file("cyclonedx", deep)
    f = tmp_path / "eval.json"
    f.write_bytes(deep)
    with pytest.raises(LimitError):
        evaluation.eval_predicate_from_file(f)


def test_attestation_links_read_provenance_bom_and_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    from oci_model_sign.predicates.links import attestation_links

    _clear_ci(monkeypatch)

    def stmt(ptype: str, predicate: object) -> dict[str, Any]:
        return {"predicateType": ptype, "predicate": predicate}

    prov = attestation_links(stmt(types.SLSA_PROVENANCE_V1, provenance.slsa_provenance(dependencies=_inputs())))
    assert {(link.role, link.digest["sha256"]) for link in prov} == {("base-model", "ef" * 32), ("dataset", "cd" * 32)}
    bom = attestation_links(stmt(types.CYCLONEDX_BOM, _bom()))
    assert {(link.role, link.name) for link in bom} == {
        ("dataset", "stanfordnlp/imdb"),
        ("base-model", "distilbert/distilbert-base-uncased"),
    }
    ev = attestation_links(stmt(types.OMSIGN_EVAL_V1, evaluation.eval_predicate_from_file(CARDS / "eval.json")))
    assert [(link.role, link.name) for link in ev] == [("dataset", "IMDb")]
    assert attestation_links(stmt(types.OMSIGN_MODELCARD_V1, {"datasets": ["x"]})) == []
    assert attestation_links(stmt(types.CYCLONEDX_BOM, {"components": [{"hashes": "junk"}, 3]})) == []
