"""The gate's status page: plain HTML, no scripts, every value escaped.

Repository names, tags and reasons come from the registry and from signatures, so they are
untrusted text; ``html.escape`` is applied to each, and the page sends no script at all.
"""

from __future__ import annotations

import html
import time
from typing import Any

from .ledger import Result

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.4rem .6rem;text-align:left;vertical-align:top}
td.digest{font-family:monospace;font-size:.85em}
.admitted{color:#0a6b2e;font-weight:600}.rejected{color:#a3131b;font-weight:600}
.warned{color:#8a5a00;font-weight:600}.error{color:#6b2fa3;font-weight:600}
"""


def _cell(value: object, cls: str | None = None) -> str:
    attr = f' class="{html.escape(cls)}"' if cls else ""
    return f"<td{attr}>{html.escape(str(value) if value is not None else '')}</td>"


def render_page(results: list[Result], pending: int, config: Any) -> str:
    rows = []
    for r in results:
        rows.append(
            "<tr>"
            + _cell(r.repository, "repository")
            + _cell(r.tag or "", "tag")
            + _cell(r.digest, "digest")
            + _cell(r.verdict, r.verdict)
            + _cell(r.reason, "reason")
            + _cell(", ".join(r.signers), "signers")
            + _cell(", ".join(r.attestations), "attestations")
            + _cell(r.promoted_to or "", "promoted")
            + _cell(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.updated)), "updated")
            + "</tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="9">no uploads seen yet</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>omsign gate</title><style>{_STYLE}</style></head>
<body>
<h1>omsign gate</h1>
<p>Registry <code>{html.escape(config.registry)}</code>; quarantine <code>{html.escape(config.quarantine)}</code>,
promoted to <code>{html.escape(config.trusted or "(root)")}</code>. Checks pending: <span id="pending">{pending}</span>.</p>
<table id="results">
<thead><tr><th>repository</th><th>tag</th><th>digest</th><th>verdict</th><th>reason</th>
<th>signers</th><th>attestations</th><th>promoted to</th><th>updated (UTC)</th></tr></thead>
<tbody>
{body}
</tbody></table>
</body></html>
"""
