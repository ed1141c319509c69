"""Registry notification envelopes, parsed as untrusted input.

distribution posts ``application/vnd.docker.distribution.events.v1+json`` envelopes
(``{"events": [...]}``) to every configured endpoint and retries until it gets a 2xx. Anyone
who can reach the gate can post one too, so an event is only a *hint* that something changed:
the gate never trusts its host, size or media type, it re-reads the manifest from the registry
it was configured with and verifies it there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..digest import is_digest
from ..errors import InputError, IntegrityError, LimitError
from ..limits import load_json

MAX_ENVELOPE_BYTES = 1024 * 1024
MAX_EVENTS = 1000
MAX_FIELD = 1024  # ids, repository names and tags longer than this are not real ones

# A repository name as distribution accepts it: lowercase path components.
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Tags that hold signatures of another manifest: the referrers fallback index and cosign's
# legacy signature/attestation tags.
_SUBJECT_TAG = re.compile(r"^sha256-([0-9a-f]{64})(?:\.sig|\.att)?$")


@dataclass(frozen=True)
class Event:
    """One manifest push the registry reported."""

    id: str
    repository: str
    digest: str
    media_type: str
    tag: str | None

    @property
    def subject_from_tag(self) -> str | None:
        """The digest a signature tag (``sha256-<hex>``, ``.sig``, ``.att``) is about."""
        if self.tag is None:
            return None
        m = _SUBJECT_TAG.match(self.tag)
        return f"sha256:{m.group(1)}" if m else None


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise InputError(f"event {what} is missing or malformed")
    return value


def parse_envelope(body: bytes) -> tuple[list[Event], int]:
    """Manifest push events of an envelope, and how many other events it held.

    Raises ``InputError`` for a body that is not an envelope, ``LimitError`` above the bounds.
    Blob pushes, pulls, deletes and mounts are counted and dropped: only a new manifest can
    change a verdict.
    """
    try:
        value = load_json(body, max_bytes=MAX_ENVELOPE_BYTES, depth=32, what="event envelope")
    except IntegrityError as exc:
        raise InputError(exc.message) from exc
    if not isinstance(value, dict) or not isinstance(value.get("events"), list):
        raise InputError('event envelope is not {"events": [...]}')
    raw_events = value["events"]
    if len(raw_events) > MAX_EVENTS:
        raise LimitError(f"event envelope holds {len(raw_events)} events, over the limit of {MAX_EVENTS}")
    events: list[Event] = []
    ignored = 0
    for raw in raw_events:
        if not isinstance(raw, dict) or not isinstance(raw.get("target"), dict):
            raise InputError("an event has no target")
        target = raw["target"]
        action = raw.get("action")
        media_type = target.get("mediaType")
        if action != "push" or not isinstance(media_type, str) or ("manifest" not in media_type and "index" not in media_type):
            ignored += 1
            continue
        event_id = _text(raw.get("id"), "id")
        repository = _text(target.get("repository"), "repository")
        if not _REPOSITORY.match(repository):
            raise InputError(f"event repository {repository[:80]!r} is not a repository name")
        digest = _text(target.get("digest"), "digest")
        if not is_digest(digest):
            raise InputError(f"event digest {digest[:80]!r} is not a digest")
        tag = target.get("tag")
        if tag is not None and (not isinstance(tag, str) or not _TAG.match(tag)):
            raise InputError("event tag is malformed")
        events.append(Event(event_id, repository, digest, media_type[:MAX_FIELD], tag or None))
    return events, ignored
