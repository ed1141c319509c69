"""What the ``omsign`` commands print: ``--json`` documents and the ``inspect`` listing.

Every JSON document has one key style (camelCase) and a ``schemaVersion``, so scripts can
check what they parse; the keys are documented in ``docs/json.md``. The values under
``annotations`` and ``manifest`` are data (user keys, wire JSON) and are passed through as they
are.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TextIO

from .oci.mediatypes import ANNOTATION_PREDICATE

SCHEMA_VERSION = 1

# Keys whose values are data, not omsign's own structure: never renamed.
_OPAQUE = frozenset({"annotations", "manifest", "statement"})
_SNAKE = re.compile(r"_([a-z0-9])")


def camel(key: str) -> str:
    """``subject_digest`` -> ``subjectDigest``; camelCase keys stay as they are."""
    return _SNAKE.sub(lambda m: m.group(1).upper(), key)


def camel_keys(value: Any) -> Any:
    """Rename every dict key to camelCase, except below the opaque keys."""
    if isinstance(value, dict):
        return {
            camel(str(k)): (v if k in _OPAQUE else camel_keys(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


def document(body: dict[str, Any]) -> dict[str, Any]:
    """A top-level ``--json`` document: ``schemaVersion`` first, camelCase keys."""
    out: dict[str, Any] = {"schemaVersion": SCHEMA_VERSION}
    out.update(camel_keys(body))
    return out


def print_json(body: dict[str, Any], stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(document(body), indent=2) + "\n")
    stream.flush()


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def _columns(rows: list[list[str]]) -> list[str]:
    """Rows as left-aligned columns separated by two spaces, nothing cut."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def inspect_lines(result: Any) -> list[str]:
    """The ``inspect`` listing as plain text: what a pipe, ``grep`` or a log gets, full digests."""
    lines = [
        str(result.reference),
        f"artifactType: {result.artifact_type}   manifest: {result.size} bytes",
        "",
    ]
    rows = [["PATH", "SIZE", "MEDIA TYPE", "DIGEST"]]
    rows += [[f["path"], human_size(f["size"]), f["mediaType"], f["digest"]] for f in result.files]
    lines += _columns(rows)
    lines.append("")
    if result.referrers:
        refs = [["REFERRER", "ARTIFACT TYPE", "PREDICATE"]]
        refs += [
            [
                r["digest"],
                r["artifactType"] or "",
                (r.get("annotations") or {}).get(ANNOTATION_PREDICATE, ""),
            ]
            for r in result.referrers
        ]
        lines += _columns(refs)
    else:
        lines.append("no referrers")
    if result.legacy_signatures:
        lines.append(f"legacy .sig signatures: {result.legacy_signatures}")
    return lines


def print_inspect_table(result: Any) -> None:
    """The same listing as rich tables, for a terminal (digests shortened to fit)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    console.print(Text(str(result.reference), style="bold"))
    console.print(Text(f"artifactType: {result.artifact_type}   manifest: {result.size} bytes"))
    table = Table("path", "size", "media type", "digest")
    for f in result.files:  # Text, not markup: a file may be named "[bold]"
        table.add_row(Text(f["path"]), human_size(f["size"]), Text(f["mediaType"]), f["digest"][:19] + "…")
    console.print(table)
    if result.referrers:
        refs = Table("referrer", "artifact type", "predicate")
        for r in result.referrers:
            refs.add_row(
                r["digest"][:19] + "…",
                Text(r["artifactType"] or ""),
                Text((r.get("annotations") or {}).get(ANNOTATION_PREDICATE, "")),
            )
        console.print(refs)
    else:
        console.print("no referrers")
    if result.legacy_signatures:
        console.print(f"legacy .sig signatures: {result.legacy_signatures}")
