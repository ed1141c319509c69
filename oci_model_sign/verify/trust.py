"""Trust roots: which Sigstore instance (Fulcio CAs, Rekor and CT log keys) a policy trusts.

Nothing here touches the network: the embedded public-good or staging root ships inside
sigstore-python, and any other root is a file the user names (``--trust-config``).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..signing.keys import PublicKey, public_key_from_der
from ..sigstore_seam import embedded_trust_file, trusted_root_tlogs
from .rejection import CandidateRejected


def embedded_trusted_root_path(*, staging: bool = False) -> Path:
    """The trusted_root.json that ships inside the sigstore package (no network needed)."""
    return embedded_trust_file("trusted_root.json", staging=staging)


def _read_json(path: Path, what: str) -> tuple[str, dict[str, Any]]:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 JSON") from exc
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise InputError(f"{what} {path} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{what} {path} is not a JSON object")
    return raw, doc


def load_trusted_root(path: str | Path | None = None, *, staging: bool = False) -> Any:
    """A sigstore ``TrustedRoot`` from a file (trusted root or ClientTrustConfig JSON), or the
    embedded public-good (or staging) root when ``path`` is None. Never touches the network."""
    from sigstore.models import ClientTrustConfig, TrustedRoot

    if path is None:
        path = embedded_trusted_root_path(staging=staging)
    p = Path(path)
    raw, doc = _read_json(p, "trust root")
    try:
        if "clienttrustconfig" in str(doc.get("mediaType", "")):
            return ClientTrustConfig.from_json(raw).trusted_root
        return TrustedRoot.from_file(str(p))
    except Exception as exc:  # pydantic, sigstore and json errors all mean "unusable file"
        raise InputError(
            f"{p} is not a Sigstore trusted root or client trust config: {str(exc).splitlines()[0]}",
            hint="pass a trusted_root.json (e.g. from `cosign trusted-root create` or the TUF repo)",
        ) from exc


def rekor_key_for(trusted_root: Any, log_id_hex: str, integrated_time: int) -> PublicKey:
    """The Rekor key with this log ID, valid at ``integrated_time``."""
    when = datetime.fromtimestamp(integrated_time, tz=timezone.utc)
    for tlog in trusted_root_tlogs(trusted_root):
        if tlog.log_id_hex != log_id_hex:
            continue
        if tlog.valid_from is not None and when < tlog.valid_from:
            raise CandidateRejected(f"transparency log key {log_id_hex[:12]}… was not yet valid at {when:%Y-%m-%dT%H:%M:%SZ}")
        if tlog.valid_until is not None and when > tlog.valid_until:
            raise CandidateRejected(f"transparency log key {log_id_hex[:12]}… had expired at {when:%Y-%m-%dT%H:%M:%SZ}")
        return public_key_from_der(tlog.public_key_der, "transparency log key")
    raise CandidateRejected(
        f"transparency log entry is from log {log_id_hex[:16]}…, which is not in the trusted root"
    )
