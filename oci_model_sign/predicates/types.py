"""Predicate types: ``--type`` aliases, their URIs, and how a predicate file becomes a predicate.

The aliases and URIs are cosign's (``options.PredicateTypeMap``), so ``omsign attest --type
cyclonedx`` and ``cosign verify-attestation --type cyclonedx`` name the same statements. The
file-to-predicate rules follow cosign's ``attestation.GenerateStatement`` for the same reason: a
verifier that knows cosign's shapes reads omsign's attestations without special cases.

omsign adds two types of its own, under a namespace the project owns. The URIs are identifiers,
versioned in their last path segment; they are not fetched. A breaking change to a predicate's
fields gets a new URI (``…/v2``); adding optional fields keeps the URI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone

from ..errors import InputError, LimitError, UsageError

COSIGN_CUSTOM = "https://cosign.sigstore.dev/attestation/v1"
COSIGN_VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
OPENVEX = "https://openvex.dev/ns"
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SPDX_DOCUMENT = "https://spdx.dev/Document"
CYCLONEDX_BOM = "https://cyclonedx.org/bom"
IN_TOTO_LINK_V1 = "https://in-toto.io/Link/v1"

OMSIGN_MODELCARD_V1 = "https://omsign.dev/modelcard/v1"
OMSIGN_EVAL_V1 = "https://omsign.dev/eval/v1"

COSIGN_ALIASES: dict[str, str] = {
    "custom": COSIGN_CUSTOM,
    "slsaprovenance": SLSA_PROVENANCE_V02,
    "slsaprovenance02": SLSA_PROVENANCE_V02,
    "slsaprovenance1": SLSA_PROVENANCE_V1,
    "spdx": SPDX_DOCUMENT,
    "spdxjson": SPDX_DOCUMENT,
    "cyclonedx": CYCLONEDX_BOM,
    "link": IN_TOTO_LINK_V1,
    "vuln": COSIGN_VULN,
    "openvex": OPENVEX,
}
"""cosign's ``--type`` aliases, exactly as ``cmd/cosign/cli/options/predicate.go`` maps them."""

OMSIGN_ALIASES: dict[str, str] = {
    "modelcard": OMSIGN_MODELCARD_V1,
    "eval": OMSIGN_EVAL_V1,
}

ALIASES: dict[str, str] = {**COSIGN_ALIASES, **OMSIGN_ALIASES}

DEFAULT_TYPE = "custom"  # cosign's default for --type

# An absolute URI: a scheme, a colon, then no whitespace. cosign accepts what Go's
# url.ParseRequestURI accepts; omsign insists on a scheme so a typo of an alias
# ("cyclondx") is an error, not a predicate type nobody will ever ask for.
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")

# Top-level fields of the SLSA provenance protos cosign parses into (it discards unknown ones).
_SLSA_V02_FIELDS = ("builder", "buildType", "invocation", "buildConfig", "metadata", "materials")
_SLSA_V1_FIELDS = ("buildDefinition", "runDetails")
# in-toto Link fields cosign requires (Go struct tags without omitempty).
_LINK_REQUIRED = ("_type", "name", "materials", "products", "byproducts", "command", "environment")


def resolve_predicate_type(type_or_uri: str) -> str:
    """The predicate-type URI for a ``--type`` value: an alias, or an absolute URI as given."""
    if type_or_uri in ALIASES:
        return ALIASES[type_or_uri]
    if _URI_RE.match(type_or_uri):
        return type_or_uri
    known = "|".join(ALIASES)
    raise UsageError(
        f"invalid predicate type {type_or_uri!r}",
        hint=f"use one of {known} or an absolute URI",
    )


def alias_of(uri: str) -> str | None:
    """The shortest alias naming ``uri`` (for display), or None for a custom URI."""
    names = sorted((a for a, u in ALIASES.items() if u == uri), key=lambda a: (len(a), a))
    return names[0] if names else None


def _rfc3339_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_object(raw: bytes, what: str) -> dict[str, object]:
    try:
        value = json.loads(raw)
    except RecursionError as exc:
        raise LimitError(f"{what} is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} is not UTF-8 text: {exc}") from exc


def predicate_from_file(
    type_or_uri: str,
    raw: bytes,
    *,
    now: Callable[[], str] = _rfc3339_now,
) -> tuple[str, dict[str, object] | str]:
    """``(predicateType, predicate)`` for the bytes of a ``--predicate`` file, as cosign builds them.

    * ``custom``: the file as a string, wrapped ``{"Data": …, "Timestamp": RFC 3339 UTC}`` (cosign's
      Go field names, capitalised).
    * ``spdx``: the file as a plain string predicate (cosign's legacy form); ``spdxjson`` parses it.
    * ``slsaprovenance``/``slsaprovenance02``/``slsaprovenance1``: a JSON object; top-level fields
      the SLSA schema does not know are dropped, and v1's ``runDetails.metadata.invocationID`` is
      renamed ``invocationId``, as cosign does.
    * ``link``: a JSON object with every in-toto Link field present; other fields are dropped.
    * ``vuln``: cosign's vulnerability-scan fields only (``invocation``, ``scanner``,
      ``metadata``), absent ones filled with Go's zero values as cosign's re-encoding does.
    * everything else (``cyclonedx``, ``openvex``, ``modelcard``, ``eval``, any URI): the file
      parsed as a JSON object, unchanged.
    """
    uri = resolve_predicate_type(type_or_uri)
    what = f"the {type_or_uri} predicate"
    if uri == COSIGN_CUSTOM:
        return uri, {"Data": _text(raw, what), "Timestamp": now()}
    if type_or_uri == "spdx":
        return uri, _text(raw, what)
    obj = _json_object(raw, what)
    if uri == SLSA_PROVENANCE_V02:
        return uri, {k: obj[k] for k in _SLSA_V02_FIELDS if k in obj}
    if uri == SLSA_PROVENANCE_V1:
        kept = {k: obj[k] for k in _SLSA_V1_FIELDS if k in obj}
        run = kept.get("runDetails")
        meta = run.get("metadata") if isinstance(run, dict) else None
        if isinstance(meta, dict) and "invocationID" in meta:
            meta["invocationId"] = meta.pop("invocationID")
        return uri, kept
    if uri == IN_TOTO_LINK_V1:
        missing = [k for k in _LINK_REQUIRED if k not in obj]
        if missing:
            raise InputError(f"{what}: required field {missing[0]} missing")
        return uri, {k: obj[k] for k in _LINK_REQUIRED}
    if uri == COSIGN_VULN and type_or_uri == "vuln":
        return uri, _vuln(obj, what)
    return uri, obj


def _field(obj: object, key: str, what: str, default: object = "") -> object:
    if not isinstance(obj, dict):
        raise InputError(f"{what} must be a JSON object")
    value = obj.get(key, default)
    if default == "" and not isinstance(value, str):
        raise InputError(f"{what}.{key} must be a string")
    return value


def _rfc3339(value: object, what: str) -> str:
    if value is None:
        return "0001-01-01T00:00:00Z"  # Go's zero time, as cosign writes an absent one
    if not isinstance(value, str):
        raise InputError(f"{what} must be an RFC 3339 time")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{what} {value!r} is not an RFC 3339 time") from exc
    return value


def _vuln(obj: dict[str, object], what: str) -> dict[str, object]:
    """cosign's ``CosignVulnPredicate``: its fields only, absent ones as Go's zero values."""
    inv = obj.get("invocation") or {}
    scanner = obj.get("scanner") or {}
    db = _field(scanner, "db", f"{what}.scanner", None) or {}
    meta = obj.get("metadata") or {}
    return {
        "invocation": {
            "parameters": _field(inv, "parameters", f"{what}.invocation", None),
            "uri": _field(inv, "uri", f"{what}.invocation"),
            "event_id": _field(inv, "event_id", f"{what}.invocation"),
            "builder.id": _field(inv, "builder.id", f"{what}.invocation"),
        },
        "scanner": {
            "uri": _field(scanner, "uri", f"{what}.scanner"),
            "version": _field(scanner, "version", f"{what}.scanner"),
            "db": {
                "uri": _field(db, "uri", f"{what}.scanner.db"),
                "version": _field(db, "version", f"{what}.scanner.db"),
            },
            "result": _field(scanner, "result", f"{what}.scanner", None),
        },
        "metadata": {
            "scanStartedOn": _rfc3339(_field(meta, "scanStartedOn", f"{what}.metadata", None), f"{what}.metadata.scanStartedOn"),
            "scanFinishedOn": _rfc3339(_field(meta, "scanFinishedOn", f"{what}.metadata", None), f"{what}.metadata.scanFinishedOn"),
        },
    }
