"""The in-toto statement an attestation signs, as deterministic bytes, and its parser.

A DSSE signature covers bytes, so the same predicate must always give the same statement:
a re-run of ``attest`` then produces an identical payload, and a test can pin it. The layout
follows protojson's output of the in-toto ``Statement`` message (what cosign v3 emits): fields
in proto order (``_type``, ``subject``, ``predicateType``, ``predicate``) and every JSON object
inside the predicate with its keys sorted (a ``google.protobuf.Struct`` is a map). Compact,
UTF-8, no HTML escaping; NaN and infinities are refused because JSON has no spelling for them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from ..errors import InputError, IntegrityError, LimitError
from ..limits import Limits, default_limits, load_json
from ..oci.mediatypes import (
    IN_TOTO_STATEMENT_V01,
    IN_TOTO_STATEMENT_V1,
)

# cosign's ``attest`` still writes ``_type`` v0.1; in-toto v1 consumers accept both.
STATEMENT_TYPES = (IN_TOTO_STATEMENT_V1, IN_TOTO_STATEMENT_V01)

_SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def canonical_json(value: object) -> bytes:
    """Compact JSON with sorted object keys, UTF-8, no NaN: the same value gives the same bytes."""
    try:
        text = json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
        )
    except RecursionError as exc:
        raise LimitError("the predicate is nested too deeply to be written as JSON") from exc
    except (TypeError, ValueError) as exc:
        raise InputError(f"the predicate cannot be written as JSON: {exc}") from exc
    return text.encode("utf-8")


def check_sha256_digest(digest: str, what: str = "subject") -> str:
    if not isinstance(digest, str) or not _SHA256_RE.match(digest):
        raise InputError(f"{what} digest {digest!r} is not sha256:<64 lowercase hex>")
    return digest


def build_statement(
    manifest_digest: str,
    name: str,
    predicate_type: str,
    predicate: Mapping[str, object] | str,
    *,
    statement_type: str = IN_TOTO_STATEMENT_V1,
) -> bytes:
    """The in-toto statement bytes for one predicate about one manifest.

    ``name`` is what cosign puts in the subject: the repository (``registry/repo``) without tag
    or digest. ``predicate`` is an object, or a string for cosign's legacy ``spdx`` form.
    """
    digest = check_sha256_digest(manifest_digest)
    if not name:
        raise InputError("the statement subject needs a name (the repository)")
    if not predicate_type:
        raise InputError("the statement needs a predicateType")
    if statement_type not in STATEMENT_TYPES:
        raise InputError(f"unknown in-toto statement type {statement_type!r}")
    if not isinstance(predicate, (str, Mapping)):
        raise InputError(f"a predicate is a JSON object or a string, not {type(predicate).__name__}")
    body = canonical_json(predicate if isinstance(predicate, str) else dict(predicate))
    head = json.dumps(
        {
            "_type": statement_type,
            "subject": [{"name": name, "digest": {"sha256": digest.split(":", 1)[1]}}],
            "predicateType": predicate_type,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    # splice the sorted predicate in last, keeping the statement's own fields in proto order
    return head[:-1].encode("utf-8") + b',"predicate":' + body + b"}"


def parse_statement(payload: bytes, *, limits: Limits | None = None) -> dict[str, object]:
    """Parse untrusted statement bytes (a DSSE payload) into a checked dict.

    Checks only shape: ``_type`` is an in-toto statement, ``subject`` is a non-empty list of
    descriptors with a digest map, ``predicateType`` is a non-empty string and ``predicate`` is
    present. Whether the subject names the right manifest is the verifier's question.
    """
    lim = limits or default_limits()
    value = load_json(
        payload, max_bytes=lim.signature_payload_bytes, depth=lim.json_depth, what="attestation statement"
    )
    if not isinstance(value, dict):
        raise IntegrityError("attestation statement is not a JSON object")
    if value.get("_type") not in STATEMENT_TYPES:
        raise IntegrityError(f"attestation statement has _type {value.get('_type')!r}, not an in-toto statement")
    subjects = value.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise IntegrityError("attestation statement has no subject")
    for s in subjects:
        if not isinstance(s, dict) or not isinstance(s.get("digest"), dict):
            raise IntegrityError("attestation statement subject has no digest map")
    ptype = value.get("predicateType")
    if not isinstance(ptype, str) or not ptype:
        raise IntegrityError("attestation statement has no predicateType")
    if "predicate" not in value:
        raise IntegrityError("attestation statement has no predicate")
    return value


def subject_matches(statement: Mapping[str, object], manifest_digest: str) -> bool:
    """True if any subject names ``manifest_digest`` (cosign's ``IntotoSubjectClaimVerifier``)."""
    alg, _, hexpart = manifest_digest.partition(":")
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        return False
    for s in subjects:
        digest = s.get("digest") if isinstance(s, dict) else None
        if isinstance(digest, dict) and digest.get(alg) == hexpart:
            return True
    return False
