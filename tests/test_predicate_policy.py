"""Predicate policies: --predicate-schema (JSON Schema) and --predicate-check (CEL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oci_model_sign.errors import InputError, UsageError, VerificationError
from oci_model_sign.predicates import evaluation, statement, types
from oci_model_sign.predicates.policy import PredicateCheck, PredicatePolicy, PredicateSchema

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "sha256:" + "ab" * 32
ACCURACY_GATE = 'predicate.metrics.exists(m, m.name == "accuracy" && m.value >= 0.9)'


def _stmt(predicate: dict[str, Any], ptype: str = types.OMSIGN_EVAL_V1) -> dict[str, Any]:
    raw = statement.build_statement(MANIFEST, "localhost:5000/models/m", ptype, predicate)
    return statement.parse_statement(raw)


def _eval(accuracy: float | int) -> dict[str, Any]:
    return _stmt(
        evaluation.eval_predicate(
            {"task": "text-classification", "dataset": "imdb", "metrics": {"accuracy": accuracy, "f1": 0.5}}
        )
    )


# -- CEL ------------------------------------------------------------------------------------


@pytest.mark.parametrize("accuracy", [0.9, 0.95, 1])
def test_the_accuracy_gate_passes_a_model_that_scores_enough(accuracy: float) -> None:
    assert PredicateCheck.compile(ACCURACY_GATE).reason(_eval(accuracy)) is None


def test_the_accuracy_gate_fails_a_model_that_scores_too_little_with_a_one_line_reason() -> None:
    reason = PredicateCheck.compile(ACCURACY_GATE).reason(_eval(0.89))
    assert reason == f"predicate check {ACCURACY_GATE!r} is false"


def test_the_accuracy_gate_passes_on_the_real_eval_file() -> None:
    stmt = _stmt(evaluation.eval_predicate_from_file(ROOT / "testdata/modelcards/eval.json"))
    assert PredicateCheck.compile(ACCURACY_GATE).reason(stmt) is None


def test_a_missing_field_fails_the_check_rather_than_passing_it() -> None:
    reason = PredicateCheck.compile("predicate.harness.name == 'lm-evaluation-harness'").reason(_eval(0.95))
    assert reason is not None and "no such key" in reason and "\n" not in reason


def test_has_tests_for_a_field_without_failing() -> None:
    check = PredicateCheck.compile("!has(predicate.harness) || predicate.harness.name == 'x'")
    assert check.reason(_eval(0.95)) is None


def test_every_documented_variable_is_bound() -> None:
    check = PredicateCheck.compile(
        "predicateType == 'https://omsign.dev/eval/v1' && statement.predicateType == predicateType"
        " && subject[0].digest.sha256 == '" + "ab" * 32 + "' && size(predicate.metrics) == 2"
    )
    assert check.reason(_eval(0.95)) is None


def test_a_type_error_in_evaluation_is_a_one_line_failure_reason() -> None:
    reason = PredicateCheck.compile("predicate.task.type > 3").reason(_eval(0.95))
    assert reason is not None and reason.startswith("predicate check") and "failed" in reason
    assert "\n" not in reason


def test_a_non_boolean_result_is_a_failure_not_a_pass() -> None:
    reason = PredicateCheck.compile("predicate.task.type").reason(_eval(0.95))
    assert reason is not None and "not true or false" in reason


@pytest.mark.parametrize("expr", ["predicate.metrics.exists(m, ", "predicate.x ==", "a b c", "&&"])
def test_a_malformed_expression_is_a_usage_error_naming_it(expr: str) -> None:
    with pytest.raises(UsageError) as info:
        PredicateCheck.compile(expr)
    line = info.value.one_line()
    assert repr(expr) in line and "not a valid CEL expression" in line and "\n" not in line


def test_an_unknown_variable_is_a_usage_error_before_any_statement_is_seen() -> None:
    with pytest.raises(UsageError, match="unknown variable 'predicat'"):
        PredicateCheck.compile("predicat.metrics.exists(m, m.value > 0.9)")


def test_an_empty_expression_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="empty"):
        PredicateCheck.compile("  ")


# -- JSON Schema ------------------------------------------------------------------------------


def _write(tmp_path: Path, doc: object, name: str = "schema.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def test_the_documented_eval_schema_accepts_a_built_eval_predicate() -> None:
    schema = PredicateSchema.load(ROOT / "docs/predicates/eval-v1.schema.json")
    assert schema.reason(_eval(0.95)) is None


def test_a_schema_violation_is_a_one_line_reason_with_the_path(tmp_path: Path) -> None:
    gate = {
        "type": "object",
        "required": ["metrics"],
        "properties": {"metrics": {"type": "array", "items": {"properties": {"value": {"minimum": 0.9}}}}},
    }
    schema = PredicateSchema.load(_write(tmp_path, gate, "gate.schema.json"))
    reason = schema.reason(_eval(0.95))  # f1 = 0.5 breaks the minimum
    assert reason is not None
    assert reason.startswith("predicate does not match schema gate.schema.json at /metrics/1/value:")
    assert "\n" not in reason


def test_the_schema_applies_to_the_predicate_not_the_statement(tmp_path: Path) -> None:
    schema = PredicateSchema.load(_write(tmp_path, {"required": ["_type"]}))
    assert schema.reason(_eval(0.95)) is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ('{"type": 12}', "not a valid JSON Schema"), ("[1]", "JSON object")],
)
def test_an_unusable_schema_file_is_an_input_error(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "s.json"
    p.write_text(content)
    with pytest.raises(InputError, match=message):
        PredicateSchema.load(p)


def test_a_missing_schema_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a file"):
        PredicateSchema.load(tmp_path / "missing.json")


def test_a_remote_ref_is_not_fetched(tmp_path: Path) -> None:
    schema = PredicateSchema.load(_write(tmp_path, {"$ref": "https://127.0.0.1:9/never.json"}))
    reason = schema.reason(_eval(0.95))
    assert reason is not None and "could not be applied" in reason


# -- combined policy --------------------------------------------------------------------------


def test_a_policy_needs_every_schema_and_every_check(tmp_path: Path) -> None:
    policy = PredicatePolicy.from_flags(
        [ROOT / "docs/predicates/eval-v1.schema.json"],
        [ACCURACY_GATE, "predicate.task.type == 'text-classification'"],
    )
    assert policy
    assert policy.reason(_eval(0.95)) is None
    policy.require(_eval(0.95))
    with pytest.raises(VerificationError, match="is false"):
        policy.require(_eval(0.5))


def test_an_empty_policy_is_falsy_and_admits_anything() -> None:
    policy = PredicatePolicy.from_flags()
    assert not policy
    assert policy.reason(_stmt({"anything": 1}, "https://example.com/x")) is None


def test_a_bad_flag_fails_when_the_policy_is_built(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        PredicatePolicy.from_flags([], [ACCURACY_GATE, "predicate.metrics.exists(m,"])


# -- --require-attestation TYPE[:EXPR] --------------------------------------------------------


def test_a_requirement_is_an_alias_with_an_optional_expression() -> None:
    from oci_model_sign.predicates.policy import parse_requirement

    assert parse_requirement("eval") == ("https://omsign.dev/eval/v1", None)
    uri, check = parse_requirement(f"eval:{ACCURACY_GATE}")
    assert uri == "https://omsign.dev/eval/v1"
    assert check is not None and check.expression == ACCURACY_GATE
    assert check.reason(_eval(0.95)) is None


def test_a_requirement_uri_keeps_its_own_colons() -> None:
    from oci_model_sign.predicates.policy import parse_requirement

    assert parse_requirement("https://example.com:8443/eval/v1") == ("https://example.com:8443/eval/v1", None)
    uri, check = parse_requirement('https://example.com/eval/v1:predicate.task.type == "a:b"')
    assert uri == "https://example.com/eval/v1"
    assert check is not None and check.expression == 'predicate.task.type == "a:b"'


@pytest.mark.parametrize("spec", ["eval:", "eval:predicate.x ==", "not a type"])
def test_a_bad_requirement_is_a_usage_error_naming_the_flag(spec: str) -> None:
    from oci_model_sign.predicates.policy import parse_requirement

    with pytest.raises(UsageError):
        parse_requirement(spec)


def test_a_cel_check_does_not_load_the_cel_packages_interactive_shell_and_cel_stays_importable() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from oci_model_sign.predicates.policy import PredicateCheck\n"
        "c = PredicateCheck.compile('predicate.a == 1')\n"
        "assert c.reason({'predicate': {'a': 1}}) is None\n"
        "print('prompt_toolkit' in sys.modules)\n"
        "import cel, cel.stdlib\n"
        "print(cel.compile('1 + 1').execute({}), callable(cel.stdlib.add_stdlib_to_context))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["False", "2 True"]


@pytest.mark.parametrize(
    "expr",
    [
        "predicate.metrics.all(m, m.value > 0.0)",
        "predicate.metrics.map(x, x.name).exists(n, n == 'accuracy')",
        "predicate.metrics.filter(m, m.name == 'f1').size() == 1",
        "predicate.task.all(k, k == 'type')",
    ],
)
def test_comprehension_variables_are_not_taken_for_unknown_ones(expr: str) -> None:
    assert PredicateCheck.compile(expr).reason(_eval(0.95)) is None
