"""Every use of sigstore-python internals, in one place.

sigstore-python's public API covers keyless signing and bundle verification; omsign also needs
pieces it keeps private: the Rekor keys of a trusted root, the Merkle/checkpoint and SCT
checks, a Rekor v1 response parser, the raw fields of a log entry, and a DSSE statement made
from exact bytes. Each is reached through a function here, so a sigstore release that moves
one breaks this module (and ``tests/test_sigstore_seam.py``, which pins the range checked),
not code all over the package.

``CHECKED_RANGE`` is the sigstore-python range these functions were read against; the
dependency in ``pyproject.toml`` carries the same bounds.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

if TYPE_CHECKING:
    from sigstore.dsse import Statement
    from sigstore.models import Bundle, TransparencyLogEntry, TrustedRoot

CHECKED_RANGE = ((4, 0), (5, 0))  # >= 4.0, < 5.0
CHECKED_WITH = "4.5.1"


class SeamBroken(RuntimeError):
    """sigstore-python no longer has an internal omsign relies on (an upgrade moved it)."""


def sigstore_version() -> tuple[int, int]:
    import sigstore

    major, minor = (int(p) for p in sigstore.__version__.split(".")[:2])
    return major, minor


def _inner(obj: object, what: str) -> Any:
    try:
        return obj._inner  # type: ignore[attr-defined]
    except AttributeError as exc:
        raise SeamBroken(f"sigstore {what} has no _inner model any more") from exc


# -- trusted roots ------------------------------------------------------------------------

PRODUCTION_TUF_URL = "https://tuf-repo-cdn.sigstore.dev"
STAGING_TUF_URL = "https://tuf-repo-cdn.sigstage.dev"


def embedded_trust_file(name: str, *, staging: bool = False) -> Path:
    """A trust file that ships inside the sigstore package (``trusted_root.json``,
    ``signing_config.v0.2.json``), read with no network: sigstore's TUF bootstrap store."""
    from importlib import resources
    from urllib.parse import quote

    tuf_url = STAGING_TUF_URL if staging else PRODUCTION_TUF_URL
    ref = resources.files("sigstore") / "_store" / quote(tuf_url, safe="") / name
    path = Path(str(ref))
    if not path.is_file():
        raise SeamBroken(f"sigstore no longer ships {name} for {tuf_url} in sigstore/_store")
    return path



@dataclass(frozen=True)
class LogKey:
    """One transparency log of a trusted root: its id, key and validity window."""

    log_id_hex: str
    public_key_der: bytes
    valid_from: datetime | None
    valid_until: datetime | None
    base_url: str


def trusted_root_tlogs(root: TrustedRoot) -> list[LogKey]:
    """The Rekor logs a trusted root vouches for (sigstore keeps them on its inner model)."""
    out: list[LogKey] = []
    for tlog in _inner(root, "TrustedRoot").tlogs:
        valid = tlog.public_key.valid_for
        out.append(
            LogKey(
                log_id_hex=bytes(tlog.log_id.key_id).hex(),
                public_key_der=bytes(tlog.public_key.raw_bytes),
                valid_from=valid.start if valid is not None else None,
                valid_until=valid.end if valid is not None else None,
                base_url=str(tlog.base_url),
            )
        )
    return out


def verify_inclusion_proof(entry_model: Any, root: TrustedRoot) -> None:
    """Merkle inclusion proof and signed checkpoint of a bundle's tlog entry (a
    ``sigstore_models`` entry); raises whatever sigstore raises when they do not hold."""
    from sigstore._internal.merkle import verify_merkle_inclusion
    from sigstore._internal.rekor.checkpoint import verify_checkpoint
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.models import TransparencyLogEntry

    tle = TransparencyLogEntry(entry_model)
    verify_merkle_inclusion(tle)
    verify_checkpoint(root.rekor_keyring(KeyringPurpose.VERIFY), tle)


def verify_sct(cert: x509.Certificate, chain: list[x509.Certificate], root: TrustedRoot) -> None:
    """The certificate's embedded SCT against the root's CT logs (sigstore's own check)."""
    from sigstore._internal.sct import verify_sct as _verify_sct
    from sigstore._internal.trust import KeyringPurpose

    _verify_sct(cert, chain, root.ct_keyring(KeyringPurpose.VERIFY))


# -- log entries --------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntryFields:
    """What a Rekor v1 entry's SET covers, plus the SET itself (None for Rekor v2)."""

    body: bytes
    integrated_time: int | None
    log_id_hex: str
    log_index: int
    signed_entry_timestamp: bytes | None


def bundle_log_entry(bundle: Bundle) -> LogEntryFields:
    """The fields of a sigstore ``Bundle``'s (single) transparency log entry."""
    return log_entry_fields(bundle.log_entry)


def log_entry_fields(entry: TransparencyLogEntry) -> LogEntryFields:
    inner = _inner(entry, "TransparencyLogEntry")
    promise = inner.inclusion_promise
    return LogEntryFields(
        body=bytes(inner.canonicalized_body),
        integrated_time=int(inner.integrated_time) if inner.integrated_time else None,
        log_id_hex=bytes(inner.log_id.key_id).hex(),
        log_index=int(inner.log_index),
        signed_entry_timestamp=bytes(promise.signed_entry_timestamp) if promise is not None else None,
    )


def parse_rekor_v1_response(response: dict[str, Any]) -> tuple[dict[str, Any], LogEntryFields]:
    """A Rekor v1 ``POST /api/v1/log/entries`` answer as (bundle ``tlogEntries`` item in
    protojson form, the SET fields). sigstore's parser also checks the body's kind and that an
    inclusion proof with a checkpoint is present."""
    from sigstore.models import TransparencyLogEntry

    try:
        entry = TransparencyLogEntry._from_v1_response(response)
    except AttributeError as exc:
        raise SeamBroken("sigstore TransparencyLogEntry._from_v1_response is gone") from exc
    inner = _inner(entry, "TransparencyLogEntry")
    as_json = json.loads(inner.to_json())
    return as_json, log_entry_fields(entry)


def selected_rekor_versions(config: Any) -> list[int]:
    """The Rekor API versions sigstore will log to with this ``ClientTrustConfig`` (its
    signing config's selected services, which sigstore keeps private)."""
    signing = config.signing_config
    try:
        services = signing._tlogs
    except AttributeError as exc:
        raise SeamBroken("sigstore SigningConfig no longer keeps its selected tlogs in _tlogs") from exc
    return [int(s.major_api_version) for s in services]


# -- statements ---------------------------------------------------------------------------


def raw_statement(statement: bytes) -> Statement:
    """A sigstore DSSE ``Statement`` over exactly ``statement`` (no re-validation).

    sigstore-python 4.x requires ``subject[].name``; cosign's image statement has none, and
    re-serialising would change the signed bytes. Signing uses only ``_contents``.
    """
    from sigstore import dsse

    raw = dsse.Statement.__new__(dsse.Statement)
    raw._contents = statement
    return raw


def check_seam() -> list[str]:
    """What is missing from the installed sigstore (empty when every internal is present)."""
    problems: list[str] = []
    checks = {
        "sigstore._internal.merkle": "verify_merkle_inclusion",
        "sigstore._internal.rekor.checkpoint": "verify_checkpoint",
        "sigstore._internal.sct": "verify_sct",
        "sigstore._internal.trust": "KeyringPurpose",
        "sigstore.models": "TransparencyLogEntry",
        "sigstore.dsse": "Statement",
    }
    import importlib

    for module, name in checks.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            problems.append(f"module {module} is gone")
            continue
        if not hasattr(mod, name):
            problems.append(f"{module}.{name} is gone")
    from sigstore.models import TransparencyLogEntry

    if not hasattr(TransparencyLogEntry, "_from_v1_response"):
        problems.append("TransparencyLogEntry._from_v1_response is gone")
    return problems


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
