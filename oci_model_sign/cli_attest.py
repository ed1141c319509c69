"""``omsign attest``, ``verify-attestation`` and ``tree``: the attestation commands.

They use the same option groups as ``sign`` and ``verify`` (``cli_options``) and the same
flag-to-object helpers as the rest of the CLI, which ``cli`` hands to ``register`` when it
mounts them (so this module never imports ``cli``, which may be running as ``__main__``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_options import OutputArgs, PolicyArgs, RegistryArgs, SignerArgs
from .errors import UsageError

ATTEST = "Attestation"


@dataclass(frozen=True)
class Helpers:
    """The CLI's own converters from option groups to library objects."""

    store_options: Callable[..., Any]
    signer_from: Callable[..., Any]
    policy_from: Callable[..., Any]
    annotations: Callable[[list[str]], dict[str, str]]
    print_json: Callable[[Any], None]


def _inputs(
    predicate: Path | None,
    from_card: Path | None,
    dependency: list[str],
    dataset_digest: str | None,
    eval_task: str | None,
    eval_dataset: str | None,
    harness: str | None,
) -> Any:
    from .predicates.build import PredicateInputs
    from .predicates.provenance import oci_artifact

    deps = []
    for item in dependency:
        role, sep, ref = item.partition("=")
        if not sep:
            role, ref = "other", item
        deps.append(oci_artifact(ref, role))
    name, at, version = (harness or "").partition("@")
    harness_value: dict[str, str] | str | None = {"name": name, "version": version} if at else harness
    return PredicateInputs(
        predicate_file=predicate, from_card=from_card, dependencies=deps, dataset_digest=dataset_digest,
        eval_task=eval_task, eval_dataset=eval_dataset, harness=harness_value,
    )


def register(command: Callable[..., Callable[[Any], Any]], h: Helpers) -> None:
    """Mount the commands with ``cli.command`` (grouped options, an example in ``--help``)."""

    @command(
        "attest",
        example=(
            "omsign attest --key cosign.key --type eval --predicate eval.json localhost:5000/models/m:v1",
            "omsign attest --type modelcard --from-card README.md registry.example.com/models/m:v1",
        ),
    )
    def attest_command(
        reference: Annotated[str, typer.Argument(metavar="REF", help="The model the statement is about.", show_default=False)],
        *,
        type_: Annotated[
            str,
            typer.Option("--type", metavar="TYPE", help="Predicate type: an alias (custom, eval, modelcard, slsaprovenance1, cyclonedx, spdxjson, vuln, openvex...) or a URI.", rich_help_panel=ATTEST),
        ] = "custom",
        predicate: Annotated[
            Path | None,
            typer.Option("--predicate", metavar="FILE", help="The predicate (JSON; text for custom).", rich_help_panel=ATTEST),
        ] = None,
        from_card: Annotated[
            Path | None,
            typer.Option("--from-card", metavar="README.md", help="Build the predicate from a Hugging Face model card.", rich_help_panel=ATTEST),
        ] = None,
        dependency: Annotated[
            list[str],
            typer.Option("--dependency", metavar="ROLE=REF@DIGEST", help="An input artifact for provenance/ML-BOM (role: base-model, dataset, code, other; repeatable).", rich_help_panel=ATTEST),
        ] = [],  # noqa: B006
        dataset_digest: Annotated[
            str | None,
            typer.Option("--dataset-digest", metavar="sha256:HEX", help="Digest of the evaluated dataset (eval).", rich_help_panel=ATTEST),
        ] = None,
        eval_task: Annotated[
            str | None, typer.Option("--eval-task", metavar="TASK", help="Which model-index task (eval --from-card).", rich_help_panel=ATTEST)
        ] = None,
        eval_dataset: Annotated[
            str | None, typer.Option("--eval-dataset", metavar="NAME", help="Which model-index dataset (eval --from-card).", rich_help_panel=ATTEST)
        ] = None,
        harness: Annotated[
            str | None, typer.Option("--harness", metavar="NAME[@VERSION]", help="Evaluation harness, e.g. lm-evaluation-harness@0.4.5 (eval).", rich_help_panel=ATTEST)
        ] = None,
        format: Annotated[
            str,
            typer.Option("--format", metavar="bundle|legacy", help="bundle (cosign v3 referrer) or legacy (cosign's .att tag).", rich_help_panel=ATTEST),
        ] = "bundle",
        replace: Annotated[
            bool, typer.Option("--replace", help="Replace this signer's earlier attestation of the same type.", rich_help_panel=ATTEST)
        ] = False,
        output_bundle: Annotated[
            Path | None, typer.Option("--output-bundle", metavar="FILE", help="Also write the bundle here.", rich_help_panel="Output")
        ] = None,
        signing: SignerArgs,
        reg: RegistryArgs,
        out: OutputArgs,
    ) -> None:
        """Sign a statement about a model (model card, evaluation, provenance, ML-BOM...) and attach it."""
        from . import attestations as attest_api

        if signing.annotation:
            raise UsageError("-a/--annotation is for signatures; an attestation says it in its predicate")
        inputs = _inputs(predicate, from_card, list(dependency), dataset_digest, eval_task, eval_dataset, harness)
        options = h.store_options(reg)
        signer = h.signer_from(signing, background=True)
        try:
            result = attest_api.attest(
                reference, signer, predicate_type=type_, inputs=inputs, options=options, format=format,
                replace=replace, output_bundle=output_bundle,
            )
        finally:
            close = getattr(signer, "close", None)
            if callable(close):
                close()
        if out.json_out:
            h.print_json(result.to_json())
            return
        for note in result.notes:
            typer.echo(f"note: {note}", err=True)
        extra = f"; replaced {', '.join(result.replaced)}" if result.replaced else ""
        typer.echo(f"attested {result.reference} ({result.predicate_type}, {result.format}{extra})", err=True)
        typer.echo(result.attestation)

    @command(
        "verify-attestation",
        example=(
            "omsign verify-attestation --key cosign.pub --type eval "
            "--predicate-check 'predicate.metrics.exists(m, m.name == \"accuracy\" && m.value >= 0.9)' localhost:5000/models/m:v1",
        ),
    )
    def verify_attestation_command(
        reference: Annotated[str, typer.Argument(metavar="REF", help="registry/repo:tag[@digest] or oci:PATH[:TAG].", show_default=False)],
        *,
        type_: Annotated[
            str, typer.Option("--type", metavar="TYPE", help="Predicate type the attestation must have (alias or URI).", rich_help_panel=ATTEST)
        ] = "custom",
        predicate_schema: Annotated[
            list[Path],
            typer.Option("--predicate-schema", metavar="FILE", help="JSON Schema the predicate must match (repeatable).", rich_help_panel=ATTEST),
        ] = [],  # noqa: B006
        predicate_check: Annotated[
            list[str],
            typer.Option("--predicate-check", metavar="EXPR", help="CEL expression over the statement that must be true (repeatable).", rich_help_panel=ATTEST),
        ] = [],  # noqa: B006
        output: Annotated[
            bool, typer.Option("--output", help="Print the verified predicates as a JSON array on stdout.", rich_help_panel="Output")
        ] = False,
        policy_args: PolicyArgs,
        reg: RegistryArgs,
        out: OutputArgs,
    ) -> None:
        """Check that a model carries an attestation of TYPE by the signer the policy names."""
        from . import attestations as attest_api
        from .predicates.policy import PredicatePolicy
        from .verify.attestation import predicates_json, summary_line

        predicate_policy = PredicatePolicy.from_flags(list(predicate_schema), list(predicate_check))
        options = h.store_options(reg)
        policy = h.policy_from(
            policy_args, ignore_tlog=policy_args.insecure_ignore_tlog, annotations=h.annotations(policy_args.annotation)
        )
        result = attest_api.verify_attestation(
            reference, policy, predicate_type=type_, predicate_policy=predicate_policy, options=options
        )
        if out.json_out:
            h.print_json(result.to_dict())
        result.raise_if_failed()
        if output:
            sys.stdout.write(predicates_json(result) + "\n")
        if not out.json_out:
            for c in result.candidates:
                mark = "ok  " if c.result.ok else "fail"
                typer.echo(f"  {mark} {c.format} {c.result.source}: {c.result.reason}", err=True)
            typer.echo(summary_line(result), err=True)
            if not output:
                typer.echo(result.subject_digest)

    @command(
        "tree",
        example=("omsign tree localhost:5000/models/m:v1", "omsign tree --json oci:./store:v1 | jq .referrers"),
    )
    def tree_command(
        reference: Annotated[str, typer.Argument(metavar="REF", help="registry/repo:tag[@digest] or oci:PATH[:TAG].", show_default=False)],
        *,
        reg: RegistryArgs,
        out: OutputArgs,
    ) -> None:
        """Show every signature, attestation and linked artifact of a model (nothing is verified)."""
        from .referrer_tree import tree, tree_lines

        result = tree(reference, options=h.store_options(reg))
        if out.json_out:
            h.print_json(result.to_json())
            return
        sys.stdout.write("\n".join(tree_lines(result)) + "\n")
        sys.stdout.flush()

