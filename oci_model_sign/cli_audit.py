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
from typing import Any

import typer

from .errors import InputError, UsageError


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


def _store_options(plain_http: bool | None, insecure: bool, username: str | None, password_stdin: bool, jobs: int) -> Any:
    from .store.base import StoreOptions
    from .store.credentials import explicit_credentials

    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin was given but stdin held no password")
        if not username:
            raise UsageError("--password-stdin needs --username")
    username, password, source = explicit_credentials(username, password)
    return StoreOptions(
        plain_http=plain_http,
        insecure=insecure,
        username=username,
        password=password,
        credentials_source=source,
        concurrency=jobs,
    )


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
    targets: list[str] = typer.Argument(..., metavar="REGISTRY[/REPO]...", help="A registry (walk its catalog) or repositories on it."),
    policy: str | None = typer.Option(
        None, "--policy", help="Trust policy file (default: $OMSIGN_POLICY, ~/.config/omsign/policy.yaml, /etc/omsign/policy.yaml; 'none' for no verdicts)."
    ),
    signed_by: str | None = typer.Option(None, "--signed-by", help="Only models signed by this identity, or by this public key file."),
    between: tuple[str, str] | None = typer.Option(None, "--between", metavar="T1 T2", help="Only signatures made between two RFC 3339 times (tlog or TSA time)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON (schemaVersion 1)."),
    html_file: Path | None = typer.Option(None, "--html", metavar="FILE", help="Also write a self-contained HTML report."),
    jobs: int = typer.Option(4, "--concurrency", "-j", min=1, max=64, help="Repositories and models examined in parallel."),
    max_repositories: int = typer.Option(10_000, "--max-repositories", min=1, help="Refuse (exit 9) a walk over more repositories."),
    max_tags: int = typer.Option(1_000, "--max-tags", min=1, help="Refuse (exit 9) a repository with more tags."),
    key: Path | None = typer.Option(None, "--key", help="Judge with this public key instead of a policy file."),
    certificate_identity: str | None = typer.Option(None, "--certificate-identity", help="Exact signer identity (certificate SAN)."),
    certificate_identity_regexp: str | None = typer.Option(None, "--certificate-identity-regexp", help="Regexp the signer identity must match."),
    certificate_oidc_issuer: str | None = typer.Option(None, "--certificate-oidc-issuer", help="Exact OIDC issuer of the signer's certificate."),
    certificate_oidc_issuer_regexp: str | None = typer.Option(None, "--certificate-oidc-issuer-regexp", help="Regexp the OIDC issuer must match."),
    certificate_chain: Path | None = typer.Option(None, "--certificate-chain", help="Intermediate certificates (PEM) for --ca-roots."),
    ca_roots: Path | None = typer.Option(None, "--ca-roots", help="Root certificates (PEM) a signing certificate must chain to."),
    insecure_ignore_tlog: bool = typer.Option(False, "--insecure-ignore-tlog", help="Accept signatures without a transparency-log entry."),
    offline: bool = typer.Option(False, "--offline", help="Use the embedded Sigstore trust root; no network."),
    trust_config: Path | None = typer.Option(None, "--trust-config", help="Trusted root or ClientTrustConfig JSON (private Sigstore)."),
    staging: bool = typer.Option(False, "--staging", help="Trust Sigstore's staging instance."),
    annotation: list[str] = typer.Option([], "-a", "--annotation", help="key=value every signed payload must carry."),
    plain_http: bool | None = typer.Option(None, "--plain-http/--no-plain-http", help="Speak HTTP, not HTTPS (automatic for localhost/127.0.0.1)."),
    insecure: bool = typer.Option(False, "--insecure", help="HTTPS without certificate verification."),
    username: str | None = typer.Option(None, "--username", "-u", help="Registry user name."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the registry password from stdin."),
) -> None:
    """Report every model in a registry: who signed it, when, its attestations, its policy verdict."""
    from .audit import AuditOptions, SignedBy, run_audit
    from .audit.report import print_table, render_html, to_json

    annotations: dict[str, str] = {}
    for item in annotation:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UsageError(f"annotation {item!r} is not key=value")
        annotations[k] = v
    flags = {
        "key": str(key) if key is not None else None,
        "certificate_identity": certificate_identity,
        "certificate_identity_regexp": certificate_identity_regexp,
        "certificate_oidc_issuer": certificate_oidc_issuer,
        "certificate_oidc_issuer_regexp": certificate_oidc_issuer_regexp,
        "certificate_chain": str(certificate_chain) if certificate_chain is not None else None,
        "ca_roots": str(ca_roots) if ca_roots is not None else None,
        "insecure_ignore_tlog": insecure_ignore_tlog,
        "offline": offline,
        "trust_config": str(trust_config) if trust_config is not None else None,
        "staging": staging,
        "annotations": annotations,
    }
    verifiers = _verifiers(policy, flags)
    options = AuditOptions(
        jobs=jobs,
        max_repositories=max_repositories,
        max_tags=max_tags,
        signed_by=SignedBy.parse(signed_by) if signed_by is not None else None,
        between=_between(between),
    )
    store_options = _store_options(plain_http, insecure, username, password_stdin, jobs)
    report = run_audit(list(targets), verifiers, store_options, options)
    if html_file is not None:
        try:
            html_file.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {html_file}: {exc.strerror}") from exc
    if json_out:
        typer.echo(json.dumps(to_json(report), indent=2))
    else:
        print_table(report, sys.stdout)
