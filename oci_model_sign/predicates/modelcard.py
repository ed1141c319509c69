"""The model-card predicate: a Hugging Face card's YAML front matter, signed with the card's digest.

A deployer asks "what licence, which base model, which data, how did it score" and wants the
answer tamper-proof. The hub's cards already answer in their front matter, so omsign reads it
into ``huggingface_hub``'s own ``ModelCardData`` (offline: it only parses text) and keeps the
field meanings the hub documents. The card file's sha256 is part of the
predicate, so the prose that people read is bound to the same signature as the fields machines
read. Field names are camelCase as in other in-toto predicates; the schema is
``docs/predicates/modelcard-v1.schema.json``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..digest import sha256_digest
from ..errors import InputError, LimitError

MAX_CARD_BYTES = 8 * 1024 * 1024
"""A model card is prose plus metadata; anything larger is not a card."""

# front-matter keys that become named predicate fields; the rest land in ``metadata``
_NAMED_KEYS = (
    "license",
    "license_name",
    "license_link",
    "base_model",
    "datasets",
    "language",
    "library_name",
    "pipeline_tag",
    "tags",
    "metrics",
    "model_name",
    "model-index",
    "eval_results",
)


def _as_list(value: object) -> list[str] | None:
    """The hub allows a string or a list of strings for several keys; the predicate always lists."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise InputError(f"expected a string or a list of strings, got {value!r}")
    return list(items)


MAX_NODES = 200_000
MAX_DEPTH = 64


class _Budget:
    """YAML anchors let a small card describe a huge or circular tree; walking one is bounded."""

    def __init__(self) -> None:
        self.nodes = 0

    def spend(self, where: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise LimitError(f"{where}: the front matter expands to more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise LimitError(f"{where}: the front matter is nested deeper than {MAX_DEPTH} levels")


def jsonable(value: object, where: str = "front matter") -> Any:
    """YAML values as JSON values: dates become ISO strings; NaN, infinities and odd keys are refused."""
    return _jsonable(value, where, _Budget(), 0)


def _jsonable(value: object, where: str, budget: _Budget, depth: int) -> Any:
    budget.spend(where, depth)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"{where} holds {value!r}, which JSON cannot represent")
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)):
                raise InputError(f"{where} has a key {k!r} that is not a string")
            out[str(k)] = _jsonable(v, f"{where}.{k}", budget, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]", budget, depth + 1) for i, v in enumerate(value)]
    raise InputError(f"{where} holds a {type(value).__name__}, which JSON cannot represent")


def read_card(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    """The card's file name and bytes, bounded and checked to be a regular UTF-8 file."""
    p = Path(path)
    try:
        if not p.is_file():
            raise InputError(f"model card {str(p)!r} is not a file")
        size = p.stat().st_size
        if size > MAX_CARD_BYTES:
            raise LimitError(f"model card {p.name} is {size} bytes, over the limit of {MAX_CARD_BYTES}")
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read model card {str(p)!r}: {exc.strerror or exc}") from exc
    return p.name, raw


# The front matter: optional leading blank space, a line "---", the YAML, a line "---".
# (The hub's own reader accepts the same shape.)
_FRONT_MATTER_RE = re.compile(r"\A\s*---[ \t]*(?:\r\n|\r|\n)(.*?)(?:\r\n|\r|\n)---[ \t]*(?:\r\n|\r|\n|\Z)", re.S)


def _yaml_problem(exc: Exception) -> str:
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        # the mark is relative to the YAML block, which starts on the card's second line
        return f"{problem} at line {mark.line + 2}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def front_matter(text: str, card_name: str = "README.md") -> dict[str, Any]:
    """The YAML front matter of a card as a dict (safe loader: no Python objects)."""
    import yaml

    m = _FRONT_MATTER_RE.match(text)
    if not m:
        raise InputError(
            f"model card {card_name} has no YAML front matter",
            hint="a Hugging Face card starts with metadata between two '---' lines",
        )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(m.group(1), Loader=loader)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        raise InputError(f"model card {card_name}: front matter is not valid YAML: {_yaml_problem(exc)}") from exc
    except RecursionError as exc:
        raise LimitError(f"model card {card_name}: front matter is nested too deeply") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"model card {card_name}: invalid metadata: the front matter must be a mapping")
    return data


def parse_card_text(text: str, card_name: str = "README.md") -> Any:
    """``huggingface_hub``'s ``ModelCardData`` for a card's text; malformed metadata is an InputError.

    ``ModelCardData`` is the hub's own reading of the fields (``model-index`` into
    ``EvalResult``s, validation included). Only ``repocard_data`` is imported: the
    ``ModelCard`` class would bring the hub's HTTP client along, for nothing, on every run.
    """
    from huggingface_hub.repocard_data import ModelCardData

    data = front_matter(text, card_name)
    if not all(isinstance(k, str) for k in data):
        raise InputError(f"model card {card_name}: invalid metadata: every front-matter key must be a string")
    data.pop("ignore_metadata_errors", None)
    try:
        return ModelCardData(**data, ignore_metadata_errors=False)
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"model card {card_name}: invalid metadata: {' '.join(str(exc).split())}") from exc


def _put(out: dict[str, Any], key: str, value: object) -> None:
    if value is not None and value != []:
        out[key] = value


def model_index_results(eval_results: list[Any] | None) -> list[dict[str, Any]]:
    """model-index results from ``EvalResult``s, regrouped as the card wrote them (task, dataset, metrics)."""
    groups: list[dict[str, Any]] = []
    index: dict[tuple[Any, ...], dict[str, Any]] = {}
    for n, r in enumerate(eval_results or []):
        for attr in ("task_type", "dataset_type", "dataset_name", "metric_type"):
            if not isinstance(getattr(r, attr), str):
                raise InputError(f"model-index result {n + 1}: {attr.replace('_', '.', 1)} must be a string")
        if r.verified is not None and not isinstance(r.verified, bool):
            raise InputError(f"model-index result {n + 1}: verified must be true or false")
        task: dict[str, Any] = {"type": r.task_type}
        _put(task, "name", r.task_name)
        dataset: dict[str, Any] = {"type": r.dataset_type, "name": r.dataset_name}
        _put(dataset, "config", r.dataset_config)
        _put(dataset, "split", r.dataset_split)
        _put(dataset, "revision", r.dataset_revision)
        _put(dataset, "args", jsonable(r.dataset_args, "dataset.args"))
        source: dict[str, Any] = {}
        _put(source, "name", r.source_name)
        _put(source, "url", r.source_url)
        key = (repr(task), repr(dataset), repr(source))
        group = index.get(key)
        if group is None:
            group = {"task": task, "dataset": dataset, "metrics": []}
            if source:
                group["source"] = source
            index[key] = group
            groups.append(group)
        metric: dict[str, Any] = {"type": r.metric_type, "value": jsonable(r.metric_value, "metric value")}
        _put(metric, "name", r.metric_name)
        _put(metric, "config", r.metric_config)
        _put(metric, "args", jsonable(r.metric_args, "metric args"))
        _put(metric, "verified", r.verified)
        group["metrics"].append(metric)
    return groups


def modelcard_predicate_from_text(text: str, card_digest: str, card_name: str = "README.md") -> dict[str, Any]:
    """The ``modelcard`` v1 predicate for a card's text whose file has digest ``card_digest``."""
    from .statement import check_sha256_digest

    check_sha256_digest(card_digest, "model card")
    data = parse_card_text(text, card_name)
    try:
        predicate: dict[str, Any] = {
            "card": {
                "name": card_name,
                "digest": {"sha256": card_digest.split(":", 1)[1]},
                "mediaType": "text/markdown",
            }
        }
        _put(predicate, "modelName", data.model_name)
        _put(predicate, "license", data.license)
        _put(predicate, "licenseName", data.license_name)
        _put(predicate, "licenseLink", data.license_link)
        _put(predicate, "baseModel", _as_list(data.base_model))
        _put(predicate, "datasets", _as_list(data.datasets))
        _put(predicate, "language", _as_list(data.language))
        _put(predicate, "libraryName", data.library_name)
        _put(predicate, "pipelineTag", data.pipeline_tag)
        _put(predicate, "tags", _as_list(data.tags))
        _put(predicate, "metricNames", _as_list(data.metrics))
        _put(predicate, "results", model_index_results(data.eval_results))
        extra = {k: v for k, v in data.to_dict().items() if k not in _NAMED_KEYS}
        _put(predicate, "metadata", jsonable(extra) if extra else None)
    except InputError as exc:
        raise InputError(f"model card {card_name}: {exc.message}") from exc
    for key in ("license", "licenseName", "licenseLink", "libraryName", "pipelineTag", "modelName"):
        if key in predicate and not isinstance(predicate[key], str):
            raise InputError(f"model card {card_name}: {key} must be a string, got {predicate[key]!r}")
    return predicate


def modelcard_predicate(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``modelcard`` v1 predicate for a card file (``--from-card README.md``)."""
    name, raw = read_card(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"model card {name} is not UTF-8 text") from exc
    return modelcard_predicate_from_text(text, sha256_digest(raw), name)
