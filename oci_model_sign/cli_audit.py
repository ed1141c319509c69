"""``omsign audit REGISTRY[/REPO ...]``: who signed which models, and do they pass the policy?

Mounted on the main app with ``app.command("audit")(audit_command)``; errors propagate as
``OmsignError`` for the app's entry point to print and map. The audit is a report:
it exits 0 when the walk completes, whatever the verdicts (``--json`` gives them to scripts);
an unreachable registry (4), refused credentials (5), a bound exceeded (9) or bad flags (2)
end it with one line on stderr, as every omsign command ends.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_options import OutputArgs, PolicyArgs, RegistryArgs
from .errors import InputError, UsageError

AUDIT = "Audit"


def _rfc3339(text: str, flag: str) -> datetime:
    value = text.strip()
    try:
        when = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in "zZ" and value else value)
    except ValueError as exc:
        raise UsageError(f"{flag} {text!r} is not an RFC 3339 time", hint="e.g. 2026-03-01T09:30:00Z") from exc
    if when.tzinfo is None:
        raise UsageError(f"{flag} {text!r} has no time zone", hint="add Z or an offset, e.g. 2026-03-01T09:30:00Z")
    return when


def _between(values: tuple[str, str] | None) -> tuple[datetime, datetime] | None:
    if not values or all(v is None for v in values):
        return None
    start, end = (_rfc3339(v, "--between") for v in values)
    if start > end:
        raise UsageError("--between T1 T2 needs T1 at or before T2")
    return start, end


def _verifiers(policy: str | None, flags: dict[str, Any]) -> Any:
    from .audit import Verifiers, flag_scope
    from .policyfile import find_policy, load_policy

    chosen = {k: v for k, v in flags.items() if v not in (None, False, {}, "")}
    defines = {k for k in chosen if k not in ("insecure_ignore_tlog", "offline", "trust_config", "staging", "annotations")}
    if defines:
        if policy is not None:
            raise UsageError("pass either --policy or verification flags (--key, --certificate-identity ...), not both")
        return Verifiers(flag_scope=flag_scope(chosen), source="flags")
    if chosen:
        raise UsageError(
            f"--{next(iter(chosen)).replace('_', '-')} needs --key, --certificate-identity[-regexp] or --ca-roots"
        )
    location = find_policy(policy)
    if location is None or location == "none":
        return Verifiers()
    loaded = load_policy(location)
    return Verifiers(policy=loaded, source=str(loaded.source))


def audit_command(
    targets: Annotated[
        list[str],
        typer.Argument(metavar="REGISTRY[/REPO]...", help="A registry (walk its catalog) or repositories on it.", show_default=False),
    ],
    *,
    signed_by: Annotated[
        str | None,
        typer.Option("--signed-by", metavar="ID|KEYFILE", help="Only models signed by this identity, or by this public key file.", rich_help_panel=AUDIT),
    ] = None,
    between: Annotated[
        tuple[str, str] | None,
        typer.Option("--between", metavar="T1 T2", help="Only signatures made between two RFC 3339 times (tlog or TSA time).", rich_help_panel=AUDIT),
    ] = None,
    html_file: Annotated[
        Path | None,
        typer.Option("--html", metavar="FILE", help="Also write a self-contained HTML report.", rich_help_panel="Output"),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", min=1, max=64, help="Repositories and models examined in parallel (1-64).", rich_help_panel=AUDIT),
    ] = 4,
    max_repositories: Annotated[
        int, typer.Option("--max-repositories", min=1, help="Refuse (exit 9) a walk over more repositories.", rich_help_panel=AUDIT)
    ] = 10_000,
    max_tags: Annotated[
        int, typer.Option("--max-tags", min=1, help="Refuse (exit 9) a repository with more tags.", rich_help_panel=AUDIT)
    ] = 1_000,
    policy_args: PolicyArgs,
    reg: RegistryArgs,
    out: OutputArgs,
) -> None:
    """Report every model in a registry: who signed it, when, its attestations, its policy verdict."""
    from .audit import AuditOptions, SignedBy, run_audit
    from .audit.report import print_table, render_html, to_json
    from .cli_app import _annotations, _store_options

    pa = policy_args
    flags = {
        "key": str(pa.key) if pa.key is not None else None,
        "certificate_identity": pa.certificate_identity,
        "certificate_identity_regexp": pa.certificate_identity_regexp,
        "certificate_oidc_issuer": pa.certificate_oidc_issuer,
        "certificate_oidc_issuer_regexp": pa.certificate_oidc_issuer_regexp,
        "certificate_chain": str(pa.certificate_chain) if pa.certificate_chain is not None else None,
        "ca_roots": str(pa.ca_roots) if pa.ca_roots is not None else None,
        "insecure_ignore_tlog": pa.insecure_ignore_tlog,
        "offline": pa.offline,
        "trust_config": str(pa.trust_config) if pa.trust_config is not None else None,
        "staging": pa.staging,
        "annotations": _annotations(pa.annotation),
    }
    verifiers = _verifiers(pa.policy_file, flags)
    options = AuditOptions(
        jobs=jobs,
        max_repositories=max_repositories,
        max_tags=max_tags,
        signed_by=SignedBy.parse(signed_by) if signed_by is not None else None,
        between=_between(between),
    )
    store_options = _store_options(reg, jobs)
    report = run_audit(list(targets), verifiers, store_options, options)
    if html_file is not None:
        try:
            html_file.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {html_file}: {exc.strerror}") from exc
    if out.json_out:
        typer.echo(json.dumps(to_json(report), indent=2))
    else:
        print_table(report, sys.stdout)
