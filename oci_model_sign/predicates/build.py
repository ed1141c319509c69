"""One entry point from ``attest`` flags to ``(predicateType, predicate)``.

The command line offers two ways to say what is attested: a ``--predicate`` file (cosign's
way, for every type) or, for the types omsign knows how to build, the inputs they are built
from (``--from-card``, the CI environment, input artifacts). Keeping that decision here means
the CLI stays a thin layer and every rule is testable without a registry.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, LimitError, UsageError
from . import types
from .provenance import Artifact

MAX_PREDICATE_BYTES = 32 * 1024 * 1024
"""cosign reads the whole file too; a predicate is metadata, not a model."""


@dataclass(frozen=True)
class PredicateInputs:
    """Everything ``attest`` may build a predicate from; unset fields are simply not used."""

    predicate_file: str | os.PathLike[str] | None = None
    from_card: str | os.PathLike[str] | None = None
    dependencies: Sequence[Artifact] = ()
    eval_task: str | None = None
    eval_dataset: str | None = None
    dataset_digest: str | None = None
    harness: Mapping[str, str] | str | None = None
    external_parameters: Mapping[str, Any] | None = None
    model_name: str | None = None
    env: Mapping[str, str] | None = None
    now: Callable[[], str] | None = field(default=None, compare=False)


def _read(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    try:
        if not p.is_file():
            raise InputError(f"predicate file {str(p)!r} is not a file")
        if p.stat().st_size > MAX_PREDICATE_BYTES:
            raise LimitError(f"predicate file {p.name} is over the limit of {MAX_PREDICATE_BYTES} bytes")
        return p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read predicate file {str(p)!r}: {exc.strerror or exc}") from exc


def build_predicate(
    type_or_uri: str,
    manifest_digest: str,
    repository: str,
    inputs: PredicateInputs,
) -> tuple[str, dict[str, Any] | str]:
    """The predicate type URI and predicate for ``attest --type TYPE`` with these inputs.

    * ``--predicate FILE`` wins for every type. ``eval`` files are normalised and checked
      (``evaluation.eval_predicate``); every other type follows cosign's rules (``types``).
    * ``modelcard`` without a file: ``--from-card`` is required.
    * ``eval`` without a file: one result of ``--from-card``'s ``model-index``.
    * ``slsaprovenance1`` without a file: SLSA v1 from the CI environment and the inputs.
    * ``cyclonedx`` without a file: an ML-BOM of this model, the card and the inputs.
    * any other type without a file: a usage error.
    """
    uri = types.resolve_predicate_type(type_or_uri)
    if inputs.predicate_file is not None and inputs.from_card is not None:
        raise UsageError("--predicate and --from-card cannot be combined", hint="give one of them")
    if inputs.predicate_file is not None:
        raw = _read(inputs.predicate_file)
        if uri == types.OMSIGN_EVAL_V1:
            from .evaluation import eval_predicate_from_file

            return uri, eval_predicate_from_file(
                inputs.predicate_file, dataset_digest=inputs.dataset_digest, harness=inputs.harness
            )
        kwargs = {"now": inputs.now} if inputs.now is not None else {}
        return types.predicate_from_file(type_or_uri, raw, **kwargs)

    if uri == types.OMSIGN_MODELCARD_V1:
        if inputs.from_card is None:
            raise UsageError("--type modelcard needs --from-card README.md (or --predicate FILE)")
        from .modelcard import modelcard_predicate

        return uri, modelcard_predicate(inputs.from_card)
    if uri == types.OMSIGN_EVAL_V1:
        if inputs.from_card is None:
            raise UsageError("--type eval needs --predicate eval.json or --from-card README.md")
        from .evaluation import eval_predicate_from_card

        return uri, eval_predicate_from_card(
            inputs.from_card,
            task=inputs.eval_task,
            dataset=inputs.eval_dataset,
            dataset_digest=inputs.dataset_digest,
            harness=inputs.harness,
        )
    if uri == types.SLSA_PROVENANCE_V1:
        from .provenance import slsa_provenance

        return uri, slsa_provenance(
            dependencies=inputs.dependencies,
            env=inputs.env,
            external_parameters=inputs.external_parameters,
        )
    if uri == types.CYCLONEDX_BOM:
        from .mlbom import ml_bom
        from .modelcard import modelcard_predicate

        card = modelcard_predicate(inputs.from_card) if inputs.from_card is not None else None
        name = inputs.model_name or (card or {}).get("modelName") or repository.rsplit("/", 1)[-1]
        return uri, ml_bom(
            name,
            manifest_digest,
            repository=repository,
            card=card,
            datasets=[a for a in inputs.dependencies if a.role == "dataset"],
            base_models=[a for a in inputs.dependencies if a.role == "base-model"],
        )
    raise UsageError(f"--type {type_or_uri} needs --predicate FILE", hint="omsign builds only modelcard, eval, slsaprovenance1 and cyclonedx itself")


def build_statement_for(
    type_or_uri: str,
    manifest_digest: str,
    repository: str,
    inputs: PredicateInputs,
) -> tuple[str, bytes]:
    """``(predicateType, in-toto statement bytes)``: what a signer wraps in DSSE for ``attest``."""
    from .statement import build_statement

    uri, predicate = build_predicate(type_or_uri, manifest_digest, repository, inputs)
    return uri, build_statement(manifest_digest, repository, uri, predicate)
