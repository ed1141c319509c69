"""The evaluation predicate: how a model scored, on what data, measured by which harness.

One predicate is one evaluation run: a task, a dataset (with its digest when known, so the
score is tied to exact bytes and not to a name that can be re-uploaded), the metrics, and the
harness that computed them. ``metrics`` is a list of ``{name, value}`` so that a deploy gate
reads naturally in CEL: ``predicate.metrics.exists(m, m.name == "accuracy" && m.value >= 0.9)``.

It comes from a small JSON file written by the evaluation job, or from a model card's
``model-index`` (one result of it). Schema: ``docs/predicates/eval-v1.schema.json``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError, LimitError

MAX_EVAL_BYTES = 4 * 1024 * 1024

_DIGEST_RE = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")
_GIT_COMMIT_RE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
_DIGEST_KEY_RE = re.compile(r"^[a-zA-Z0-9_-]+$")


def _str(value: object, where: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InputError(f"{where} must be a non-empty string, got {value!r}")
    return value


def digest_set(value: object, where: str = "dataset digest") -> dict[str, str]:
    """A ResourceDescriptor digest set from ``"sha256:<hex>"`` or a ``{"sha256": "<hex>"}`` map."""
    if isinstance(value, str):
        if not _DIGEST_RE.match(value):
            raise InputError(f"{where} {value!r} is not sha256:<64 hex> or sha512:<128 hex>")
        alg, hexpart = value.split(":", 1)
        return {alg: hexpart}
    if isinstance(value, Mapping) and value:
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str) or not _DIGEST_KEY_RE.match(k) or not isinstance(v, str) or not v:
                raise InputError(f"{where} has an invalid entry {k!r}: {v!r}")
            out[k] = v.lower() if k in ("sha256", "sha512") else v
        return out
    raise InputError(f"{where} must be 'sha256:<hex>' or a non-empty map, got {value!r}")


def _metric_value(value: object, where: str) -> float | int | str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"{where} must be a number or a string, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where} must be finite, got {value!r}")
    return value


def _metrics(value: object) -> list[dict[str, Any]]:
    if isinstance(value, Mapping):
        value = [{"name": k, "value": v} for k, v in value.items()]
    if not isinstance(value, list) or not value:
        raise InputError("metrics must be a non-empty list of {name, value} (or a name -> value map)")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(value):
        if not isinstance(m, Mapping):
            raise InputError(f"metrics[{i}] must be an object with name and value")
        metric: dict[str, Any] = {
            "name": _str(m.get("name"), f"metrics[{i}].name", required=True),
            "value": _metric_value(m.get("value"), f"metrics[{i}].value"),
        }
        if m.get("displayName") is not None:
            metric["displayName"] = _str(m.get("displayName"), f"metrics[{i}].displayName")
        if m.get("verified") is not None:
            if not isinstance(m.get("verified"), bool):
                raise InputError(f"metrics[{i}].verified must be true or false")
            metric["verified"] = m["verified"]
        out.append(metric)
    return out


def _dataset(value: object, dataset_digest: str | None) -> dict[str, Any]:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise InputError("dataset must be an object with at least a name")
    ds: dict[str, Any] = {"name": _str(value.get("name"), "dataset.name", required=True)}
    for key in ("type", "config", "split", "revision", "uri"):
        if value.get(key) is not None:
            ds[key] = _str(value.get(key), f"dataset.{key}")
    digest: dict[str, str] = {}
    if value.get("digest") is not None:
        digest.update(digest_set(value.get("digest")))
    if dataset_digest is not None:
        digest.update(digest_set(dataset_digest))
    if digest:
        ds["digest"] = digest
    return ds


def _harness(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise InputError("harness must be an object {name, version}")
    h: dict[str, str] = {"name": str(_str(value.get("name"), "harness.name", required=True))}
    if value.get("version") is not None:
        h["version"] = str(_str(value.get("version"), "harness.version"))
    return h


def eval_predicate(
    data: Mapping[str, Any],
    *,
    dataset_digest: str | None = None,
    harness: Mapping[str, str] | str | None = None,
) -> dict[str, Any]:
    """The ``eval`` v1 predicate from a decoded JSON object (an evaluation job's output).

    Accepted conveniences: ``task`` as a string, ``dataset`` as a name, ``dataset.digest`` as
    ``"sha256:<hex>"``, ``metrics`` as a ``name -> value`` map, ``harness`` as a name.
    ``dataset_digest`` and ``harness`` override what the file says (flags win over files).
    """
    if not isinstance(data, Mapping):
        raise InputError("an evaluation must be a JSON object")
    task = data.get("task")
    if isinstance(task, str):
        task = {"type": task}
    if not isinstance(task, Mapping):
        raise InputError("task must be an object with a type (e.g. text-classification)")
    task_out: dict[str, Any] = {"type": _str(task.get("type"), "task.type", required=True)}
    if task.get("name") is not None:
        task_out["name"] = _str(task.get("name"), "task.name")
    predicate: dict[str, Any] = {
        "task": task_out,
        "dataset": _dataset(data.get("dataset"), dataset_digest),
        "metrics": _metrics(data.get("metrics")),
    }
    h = _harness(harness if harness is not None else data.get("harness"))
    if h:
        predicate["harness"] = h
    source = data.get("source")
    if source is not None:
        if not isinstance(source, Mapping):
            raise InputError("source must be an object {name, url}")
        predicate["source"] = {
            k: _str(source.get(k), f"source.{k}") for k in ("name", "url") if source.get(k) is not None
        }
    card = data.get("card")
    if card is not None:
        if not isinstance(card, Mapping):
            raise InputError("card must be an object {name, digest}")
        predicate["card"] = {
            "name": _str(card.get("name"), "card.name", required=True),
            "digest": digest_set(card.get("digest"), "card digest"),
        }
    return predicate


def eval_predicate_from_file(
    path: str | os.PathLike[str],
    *,
    dataset_digest: str | None = None,
    harness: Mapping[str, str] | str | None = None,
) -> dict[str, Any]:
    """The ``eval`` v1 predicate from an evaluation JSON file (``--type eval --predicate F``)."""
    p = Path(path)
    try:
        if not p.is_file():
            raise InputError(f"evaluation file {str(p)!r} is not a file")
        if p.stat().st_size > MAX_EVAL_BYTES:
            raise LimitError(f"evaluation file {p.name} is over the limit of {MAX_EVAL_BYTES} bytes")
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read evaluation file {str(p)!r}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw)
    except RecursionError as exc:
        raise LimitError(f"evaluation file {p.name} is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"evaluation file {p.name} is not valid JSON: {exc}") from exc
    try:
        return eval_predicate(data, dataset_digest=dataset_digest, harness=harness)
    except InputError as exc:
        raise InputError(f"evaluation file {p.name}: {exc.message}") from exc


def _describe(result: Mapping[str, Any]) -> str:
    ds = result["dataset"]
    split = f" ({ds['split']})" if ds.get("split") else ""
    return f"{result['task']['type']} on {ds['type']}{split}"


def eval_predicate_from_card(
    path: str | os.PathLike[str],
    *,
    task: str | None = None,
    dataset: str | None = None,
    dataset_digest: str | None = None,
    harness: Mapping[str, str] | str | None = None,
) -> dict[str, Any]:
    """The ``eval`` v1 predicate for one result of a card's ``model-index``.

    ``task`` (a task type) and ``dataset`` (a dataset type or name) pick the result when the card
    has several. A dataset ``revision`` that is a git commit becomes a ``gitCommit`` digest, the
    hub's own content address; ``dataset_digest`` adds another (e.g. a signed OCI dataset). The
    card file is named by digest so the score can be traced to the card that claimed it.
    """
    from ..digest import sha256_digest
    from .modelcard import model_index_results, parse_card_text, read_card

    name, raw = read_card(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"model card {name} is not UTF-8 text") from exc
    try:
        results = model_index_results(parse_card_text(text, name).eval_results)
    except InputError as exc:
        if exc.message.startswith("model card"):
            raise
        raise InputError(f"model card {name}: {exc.message}") from exc
    if not results:
        raise InputError(f"model card {name} has no model-index results to attest")
    chosen = [
        r
        for r in results
        if (task is None or r["task"]["type"] == task)
        and (dataset is None or dataset in (r["dataset"]["type"], r["dataset"]["name"]))
    ]
    if len(chosen) != 1:
        choices = "; ".join(_describe(r) for r in results)
        wanted = ", ".join(f"{k}={v}" for k, v in (("task", task), ("dataset", dataset)) if v)
        if not wanted:
            message = f"model card {name} has {len(results)} model-index results; pick one"
        elif not chosen:
            message = f"model card {name}: no model-index result matches {wanted}"
        else:
            message = f"model card {name}: {len(chosen)} model-index results match {wanted}"
        raise InputError(message, hint=f"by task type and dataset: {choices}")
    r = chosen[0]
    ds = dict(r["dataset"])
    ds.pop("args", None)
    revision = ds.get("revision")
    if isinstance(revision, str) and _GIT_COMMIT_RE.match(revision):
        ds["digest"] = {"gitCommit": revision}
    data: dict[str, Any] = {
        "task": r["task"],
        "dataset": ds,
        "metrics": [
            {
                "name": m["type"],
                "value": m["value"],
                **({"displayName": m["name"]} if m.get("name") else {}),
                **({"verified": m["verified"]} if m.get("verified") is not None else {}),
            }
            for m in r["metrics"]
        ],
        "card": {"name": name, "digest": sha256_digest(raw)},
    }
    if r.get("source"):
        data["source"] = r["source"]
    try:
        return eval_predicate(data, dataset_digest=dataset_digest, harness=harness)
    except InputError as exc:
        raise InputError(f"model card {name}: {exc.message}") from exc
