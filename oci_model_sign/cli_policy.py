"""``omsign policy check FILE`` and ``omsign policy explain REF``: trust policies, inspected.

Mounted on the main app as ``policy``. Errors end the command the way every omsign command
ends one: one line on stderr, the exit code of the error's class (2 for a bad policy).
"""

from __future__ import annotations

from typing import NoReturn

import typer

from .errors import OmsignError, UsageError

policy_app = typer.Typer(
    help="Check trust policy files and see which scope applies to a model (docs/policy.md).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _example(*lines: str) -> str:
    return "[b]Examples[/b]\n\n" + "\n\n".join(f"  {line}" for line in lines)


def _fail(error: OmsignError) -> NoReturn:
    typer.echo(f"omsign: error: {error.one_line()}", err=True)
    raise typer.Exit(error.exit_code)


@policy_app.command("check", epilog=_example("omsign policy check /etc/omsign/policy.yaml", "omsign policy check -q policy.yaml && echo valid"))
def check_command(
    file: str = typer.Argument(..., metavar="FILE", help="The policy file to validate.", show_default=False),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing when the policy is valid.", rich_help_panel="Output"),
) -> None:
    """Validate a policy file and summarise what it requires (exit 2 when it is not valid)."""
    from .policyfile import check

    try:
        lines = check(file)
    except OmsignError as exc:
        _fail(exc)
    if not quiet:
        typer.echo("\n".join(lines))


@policy_app.command(
    "explain",
    epilog=_example(
        "omsign policy explain registry.example.com/models/bert:v1",
        "omsign policy explain --policy policy.yaml oci:./store:v1",
    ),
)
def explain_command(
    reference: str = typer.Argument(..., metavar="REF", help="A model reference (host/repo:tag, oci:PATH).", show_default=False),
    policy: str | None = typer.Option(
        None, "--policy", metavar="FILE|none",
        help="Policy file (default: $OMSIGN_POLICY, ~/.config/omsign/policy.yaml, /etc/omsign/policy.yaml).",
        rich_help_panel="Policy",
    ),
) -> None:
    """Say which scope of the policy applies to REF, and why."""
    from .policyfile import explain, find_policy, load_policy
    from .policyfile.discovery import searched_locations

    try:
        location = find_policy(policy)
        if location == "none":
            typer.echo(f"no policy (--policy none / OMSIGN_POLICY=none): {reference} is not verified by policy")
            return
        if location is None:
            raise UsageError(
                "no policy file found",
                hint=f"looked at {', '.join(searched_locations())}; pass --policy FILE",
            )
        typer.echo(explain(load_policy(location), reference))
    except OmsignError as exc:
        _fail(exc)


if __name__ == "__main__":  # pragma: no cover
    policy_app()
