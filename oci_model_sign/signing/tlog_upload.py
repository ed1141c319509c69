"""Uploading key signatures to a Rekor v1 transparency log, as ``cosign sign --key`` does.

cosign logs every key signature by default (``--tlog-upload=true``), so ``cosign verify
--key`` needs no insecure flag: the bundle (or the legacy ``dev.sigstore.cosign/bundle``
annotation) carries Rekor's signed entry timestamp and, for bundles, the inclusion proof.
The entry kinds are cosign's: ``dsse`` 0.0.1 for a DSSE envelope, ``hashedrekord`` 0.0.1 for
a legacy simple-signing signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from ..errors import InputError, RegistryError, UsageError
from ..sigstore_seam import LogEntryFields, SeamBroken, embedded_trust_file, parse_rekor_v1_response

_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
_HINT = "check the Rekor URL in the signing config (--trust-config), or sign with --no-tlog-upload"


@dataclass(frozen=True)
class LoggedEntry:
    """A Rekor entry for one signature: the bundle's ``tlogEntries`` item and the SET fields."""

    bundle_entry: dict[str, Any]
    fields: LogEntryFields

    def legacy_annotation(self) -> str:
        """cosign's ``dev.sigstore.cosign/bundle`` value (Go struct field order)."""
        f = self.fields
        assert f.signed_entry_timestamp is not None and f.integrated_time is not None
        doc = {
            "SignedEntryTimestamp": base64.b64encode(f.signed_entry_timestamp).decode(),
            "Payload": {
                "body": base64.b64encode(f.body).decode(),
                "integratedTime": f.integrated_time,
                "logIndex": f.log_index,
                "logID": f.log_id_hex,
            },
        }
        return json.dumps(doc, separators=(",", ":"))


class RekorUploader:
    """One Rekor v1 instance (``POST {url}/api/v1/log/entries``)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _post(self, proposed: dict[str, Any]) -> LoggedEntry:
        endpoint = f"{self.url}/api/v1/log/entries"
        try:
            with httpx.Client(timeout=_TIMEOUT, follow_redirects=False) as client:
                resp = client.post(endpoint, json=proposed, headers={"Accept": "application/json"})
                if resp.status_code == 409 and resp.headers.get("location"):
                    # Already logged (the same signature signed twice): fetch the entry.
                    resp = client.get(httpx.URL(endpoint).join(resp.headers["location"]))
        except httpx.HTTPError as exc:
            raise RegistryError(f"cannot upload the signature to the transparency log {self.url}: {exc}", hint=_HINT) from exc
        if resp.status_code not in (200, 201):
            raise RegistryError(
                f"the transparency log {self.url} refused the signature: HTTP {resp.status_code} {resp.text[:200]}",
                hint=_HINT,
            )
        try:
            entry, fields = parse_rekor_v1_response(resp.json())
        except SeamBroken:
            raise
        except Exception as exc:  # a malformed answer from the log
            raise RegistryError(f"the transparency log {self.url} sent an unusable entry: {exc}", hint=_HINT) from exc
        if fields.signed_entry_timestamp is None or fields.integrated_time is None:
            raise RegistryError(f"the transparency log {self.url} sent an entry without a SET", hint=_HINT)
        return LoggedEntry(entry, fields)

    def log_dsse(self, envelope_json: bytes, verifier_pem: bytes) -> LoggedEntry:
        """Log a DSSE envelope (``dsse`` 0.0.1) signed by the key in ``verifier_pem``
        (a PEM public key or certificate)."""
        return self._post({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "proposedContent": {
                    "envelope": envelope_json.decode("utf-8"),
                    "verifiers": [base64.b64encode(verifier_pem).decode()],
                }
            },
        })

    def log_hashedrekord(self, signature: bytes, payload: bytes, verifier_pem: bytes) -> LoggedEntry:
        """Log a signature over ``payload`` (``hashedrekord`` 0.0.1, sha256)."""
        return self._post({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "signature": {
                    "content": base64.b64encode(signature).decode(),
                    "publicKey": {"content": base64.b64encode(verifier_pem).decode()},
                },
                "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
            },
        })


def rekor_v1_urls(trust_config: str | Path | None = None, *, staging: bool = False) -> list[str]:
    """The Rekor v1 URLs a key signer uploads to: from ``trust_config`` (a ClientTrustConfig
    or a bare signing config), else the embedded public-good (or staging) signing config.

    Only ``majorApiVersion: 1`` services still valid now count: their entries carry the SET
    and inclusion proof that ``cosign verify --key`` checks offline.
    """
    path = Path(trust_config) if trust_config is not None else embedded_trust_file(
        "signing_config.v0.2.json", staging=staging
    )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read trust config {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise InputError(f"trust config {path} is not JSON: {exc}") from exc
    config = doc.get("signingConfig", doc) if isinstance(doc, dict) else None
    services = config.get("rekorTlogUrls") if isinstance(config, dict) else None
    if not isinstance(services, list):
        raise InputError(
            f"{path} has no signing config with rekorTlogUrls",
            hint="pass a ClientTrustConfig with a signingConfig, or sign with --no-tlog-upload",
        )
    now = datetime.now(timezone.utc)
    urls: list[str] = []
    for service in services:
        if not isinstance(service, dict) or service.get("majorApiVersion") != 1:
            continue
        url = service.get("url")
        valid = service.get("validFor")
        end = valid.get("end") if isinstance(valid, dict) else None
        if isinstance(end, str):
            try:
                if datetime.fromisoformat(end.replace("Z", "+00:00")) < now:
                    continue
            except ValueError:
                continue
        if isinstance(url, str) and url:
            urls.append(url.rstrip("/"))
    return urls


def uploader_for(trust_config: str | Path | None = None, *, staging: bool = False) -> RekorUploader:
    """The uploader for the first Rekor v1 log of the signing config."""
    urls = rekor_v1_urls(trust_config, staging=staging)
    if not urls:
        raise UsageError(
            "the signing config lists no Rekor v1 transparency log to upload key signatures to",
            hint="pass --trust-config with a Rekor v1 log, or sign with --no-tlog-upload",
        )
    return RekorUploader(urls[0])
