"""Parse, then check: what a signature candidate *claims*, before anything is believed.

Every candidate (a bundle referrer, a ``.sig`` layer) is first parsed into an
``UntrustedRecord``: which verification material it carries and whom it names, the payload
and what that payload says (predicate type, subjects), and how many transparency-log entries
come with it. Parsing decides nothing. The policy then checks the signature over exactly the
record's payload (``bundle``/``legacy``), and only after that do the record's claims count:
the subject must be the manifest digest and the predicate type must admit a model
(``admission``). Attestations and policy files decide on the same records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Material = Literal["public-key", "certificate", "certificate-chain", "none"]


@dataclass(frozen=True)
class UntrustedRecord:
    """A candidate's claims; ``statement`` is the parsed payload or None when it does not parse."""

    source: str
    format: Literal["bundle", "legacy"]
    material: Material
    claimed_signer: str | None
    payload_type: str | None
    payload: bytes
    statement: dict[str, Any] | None = None
    predicate_type: str | None = None
    subject_digests: tuple[str, ...] = ()
    tlog_entries: int = 0
    annotations: dict[str, str] = field(default_factory=dict)


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def statement_claims(payload: bytes) -> tuple[dict[str, Any] | None, str | None, tuple[str, ...]]:
    """(statement, predicate type, ``sha256:<hex>`` subjects) an in-toto payload claims."""
    doc = _json_object(payload)
    if doc is None:
        return None, None, ()
    predicate = doc.get("predicateType")
    subjects: list[str] = []
    raw = doc.get("subject")
    for s in raw if isinstance(raw, list) else []:
        digest = s.get("digest") if isinstance(s, dict) else None
        value = digest.get("sha256") if isinstance(digest, dict) else None
        if isinstance(value, str):
            subjects.append(f"sha256:{value}")
    return doc, predicate if isinstance(predicate, str) else None, tuple(subjects)


def simple_signing_claims(payload: bytes) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """(document, the manifest digest it claims) of a cosign simple-signing payload."""
    doc = _json_object(payload)
    critical = doc.get("critical") if doc is not None else None
    image = critical.get("image") if isinstance(critical, dict) else None
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    return doc, (digest,) if isinstance(digest, str) else ()
