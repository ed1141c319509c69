"""The audit as JSON (``schemaVersion`` 1, camelCase), a terminal table, or one HTML file.

The HTML report is self-contained (inline CSS, no scripts, no external assets) so it can be
mailed or archived with an incident; every value in it comes from a registry or a signature
and is escaped, since repository names, tags, identities and annotations are attacker text.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any, TextIO

from .claims import SignatureClaim
from .results import AuditReport, ModelAudit

SCHEMA_VERSION = 1


def _time(when: datetime | None) -> str | None:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


def _signature_json(c: SignatureClaim) -> dict[str, Any]:
    return {
        "source": c.source,
        "format": c.format,
        "kind": c.kind,
        "signer": c.signer_text(),
        "fingerprint": c.fingerprint,
        "identity": c.identity,
        "issuer": c.issuer,
        "signedAt": _time(c.signed_at),
        "timeSource": c.time_source,
        "predicateType": c.predicate_type,
        "verified": c.verified,
        "verifiedBy": list(c.verified_by),
        "error": c.error,
    }


def _policy_json(m: ModelAudit) -> dict[str, Any] | None:
    d = m.decision
    if d is None:
        return None
    return {
        "verdict": d.verdict,
        "passes": d.allowed,
        "scope": d.scope,
        "mode": d.mode,
        "reason": d.reason,
        "satisfied": list(d.satisfied),
        "revoked": list(d.revoked),
    }


def model_json(m: ModelAudit) -> dict[str, Any]:
    return {
        "repository": m.repository,
        "digest": m.digest,
        "tags": list(m.tags),
        "artifactType": m.artifact_type,
        "signatures": [_signature_json(c) for c in m.signatures],
        "attestations": [
            {"digest": a.digest, "artifactType": a.artifact_type, "predicateType": a.predicate_type} for a in m.attestations
        ],
        "policy": _policy_json(m),
    }


def to_json(report: AuditReport) -> dict[str, Any]:
    opts = report.options
    return {
        "schemaVersion": SCHEMA_VERSION,
        "generatedAt": _time(datetime.now(timezone.utc)),
        "targets": list(report.targets),
        "policy": report.policy_source,
        "filters": {
            "signedBy": opts.signed_by.describe() if opts.signed_by else None,
            "between": [_time(t) for t in opts.between] if opts.between else None,
        },
        "limits": {"maxRepositories": opts.max_repositories, "maxTags": opts.max_tags, "jobs": opts.jobs},
        "summary": {
            "repositories": report.repositories,
            "tags": report.tags,
            "modelsExamined": report.examined,
            "modelsReported": len(report.models),
            "notModels": report.skipped,
            "passing": sum(1 for m in report.models if m.decision is not None and m.decision.allowed),
            "failing": sum(1 for m in report.models if m.decision is not None and not m.decision.allowed),
            "errors": len(report.errors),
        },
        "models": [model_json(m) for m in report.models],
        "errors": [{"where": where, "error": error} for where, error in report.errors],
    }


def _signers_text(m: ModelAudit) -> str:
    if not m.signatures:
        return "unsigned"
    lines = []
    for c in m.signatures:
        mark = "✔" if c.verified else "?"
        when = _time(c.signed_at) or "no trusted time"
        who = c.signer_text()
        if c.kind == "key" and c.fingerprint:
            who = f"key {c.fingerprint[:23]}…"  # the table's column; JSON and HTML keep it whole
        what = c.error if c.error else f"{who} @ {when}"
        lines.append(f"{mark} {what}")
    return "\n".join(lines)


def _verdict_text(m: ModelAudit) -> str:
    if m.decision is None:
        return "no policy"
    return f"{m.decision.verdict}: {m.decision.reason}"


def print_table(report: AuditReport, out: TextIO) -> None:
    """A rich table: one row per model; ✔ marks signatures a policy authority verified."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    probe = Console(file=out)
    console = Console(file=out, width=probe.width if probe.is_terminal else 240, highlight=False)
    table = Table(show_lines=True)
    for title in ("repository", "digest", "tags", "signed by (✔ verified)", "attestations", "policy"):
        table.add_column(title, overflow="fold")
    for m in report.models:
        atts = "\n".join(escape(a.predicate_type or a.artifact_type or "?") for a in m.attestations) or "-"
        table.add_row(
            escape(m.repository),
            m.digest[:19] + "…",
            escape(", ".join(m.tags)),
            escape(_signers_text(m)),
            atts,
            escape(_verdict_text(m)),
        )
    console.print(table)
    summary = to_json(report)["summary"]
    console.print(
        escape(
            f"{summary['modelsReported']} of {summary['modelsExamined']} model(s) reported in "
            f"{summary['repositories']} repositories ({summary['tags']} tags); "
            f"{summary['passing']} pass, {summary['failing']} fail the policy; {summary['errors']} error(s)"
        )
    )
    for where, error in report.errors:
        console.print(escape(f"error: {where}: {error}"))


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left;font-size:.9em}
th{background:#f2f2f2}
code{font-size:.85em;word-break:break-all}
.allow{background:#e7f6e7}.deny{background:#fbe4e4}.warn{background:#fff4d6}.none{background:#f6f6f6}
ul{margin:0;padding-left:1.2em}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def render_html(report: AuditReport) -> str:
    """The whole report as one HTML document (also well-formed XML: every tag closed)."""
    data = to_json(report)
    s = data["summary"]
    rows = []
    for m in data["models"]:
        verdict = m["policy"]["verdict"] if m["policy"] else "none"
        sigs = "".join(
            f"<li>{'&#10004; ' if c['verified'] else '? '}{_e(c['error'] or c['signer'])}"
            f" <small>{_e(c['signedAt'] or 'no trusted time')}{' (' + _e(c['timeSource']) + ')' if c['timeSource'] else ''}"
            f"{' verified by ' + _e(', '.join(c['verifiedBy'])) if c['verifiedBy'] else ''}</small></li>"
            for c in m["signatures"]
        ) or "<li>unsigned</li>"
        atts = "".join(f"<li>{_e(a['predicateType'] or a['artifactType'] or '?')}</li>" for a in m["attestations"]) or "<li>-</li>"
        reason = _e(m["policy"]["reason"]) if m["policy"] else "no policy"
        rows.append(
            f'<tr class="{_e(verdict)}"><td>{_e(m["repository"])}</td><td><code>{_e(m["digest"])}</code></td>'
            f"<td>{_e(', '.join(m['tags']))}</td><td><ul>{sigs}</ul></td><td><ul>{atts}</ul></td>"
            f"<td><b>{_e(verdict)}</b> {reason}</td></tr>"
        )
    errors = "".join(f"<li>{_e(e['where'])}: {_e(e['error'])}</li>" for e in data["errors"])
    filters = data["filters"]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8"/><title>omsign audit</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>omsign audit</h1><p>Generated {_e(data['generatedAt'])} for {_e(', '.join(data['targets']))}; "
        f"policy: {_e(data['policy'] or 'none')}; signed by: {_e(filters['signedBy'] or 'anyone')}; "
        f"between: {_e(' and '.join(filters['between']) if filters['between'] else 'any time')}.</p>"
        f"<p>{s['modelsReported']} of {s['modelsExamined']} model(s) reported in {s['repositories']} repositories "
        f"({s['tags']} tags): {s['passing']} pass, {s['failing']} fail the policy, {s['errors']} error(s).</p>"
        "<table><thead><tr><th>repository</th><th>digest</th><th>tags</th><th>signed by (&#10004; verified)</th>"
        f"<th>attestations</th><th>policy</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + (f"<h2>Errors</h2><ul>{errors}</ul>" if errors else "")
        + "</body></html>\n"
    )
