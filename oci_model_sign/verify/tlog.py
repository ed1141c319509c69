"""Transparency-log checks: the Rekor SET, the inclusion proof, and that the entry records
*this* signature by *this* key over *this* payload.

A key signature with a verified log entry needs no ``--insecure-ignore-tlog``, as in cosign:
the log proves when the signature existed and makes it public.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ..signing.keys import PublicKey, public_key_der, verify_bytes_signature
from ..sigstore_seam import verify_inclusion_proof
from .rejection import CandidateRejected
from .trust import rekor_key_for

TLOG_HINT = (
    "pass --insecure-ignore-tlog to accept key signatures made without a transparency log"
)


@dataclass(frozen=True)
class RekorEntry:
    """The fields a Rekor SET covers (legacy bundle annotation or a bundle's tlog entry)."""

    body: bytes  # canonicalized entry body (decoded)
    integrated_time: int
    log_id_hex: str
    log_index: int
    signed_entry_timestamp: bytes

    def canonical(self) -> bytes:
        # RFC 8785 canonical JSON of exactly these four keys, as Rekor signs it.
        payload = {
            "body": base64.b64encode(self.body).decode(),
            "integratedTime": self.integrated_time,
            "logID": self.log_id_hex,
            "logIndex": self.log_index,
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def verify_set(entry: RekorEntry, trusted_root: Any) -> None:
    """Check the Signed Entry Timestamp (inclusion promise) with the log's key from the root."""
    key = rekor_key_for(trusted_root, entry.log_id_hex, entry.integrated_time)
    if not verify_bytes_signature(key, entry.signed_entry_timestamp, entry.canonical()):
        raise CandidateRejected(
            f"transparency log SET (logIndex {entry.log_index}) does not verify with the Rekor key"
        )


def check_rekor_body(body: bytes, *, payload_sha256: str, signature: bytes, verifier: PublicKey) -> None:
    """The log entry must describe *this* signature: hashedrekord/rekord 0.0.1 (signature over
    a payload) or dsse 0.0.1 (``payload_sha256`` is then the DSSE payload hash)."""
    try:
        doc = json.loads(body)
        kind, version, spec = doc["kind"], doc["apiVersion"], doc["spec"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CandidateRejected("transparency log entry body is not a Rekor entry") from exc
    try:
        if kind in ("hashedrekord", "rekord") and version == "0.0.1":
            data = spec["data"]
            if "hash" in data:
                if data["hash"]["algorithm"] != "sha256":
                    raise CandidateRejected(f"transparency log entry hashes with {data['hash']['algorithm']}, not sha256")
                logged = str(data["hash"]["value"])
            else:
                logged = hashlib.sha256(base64.b64decode(data["content"])).hexdigest()
            sigs = [(base64.b64decode(spec["signature"]["content"]), spec["signature"]["publicKey"]["content"])]
        elif kind == "dsse" and version == "0.0.1":
            if spec["payloadHash"]["algorithm"] != "sha256":
                raise CandidateRejected("transparency log DSSE entry does not use a sha256 payload hash")
            logged = str(spec["payloadHash"]["value"])
            sigs = [(base64.b64decode(s["signature"]), s["verifier"]) for s in spec["signatures"]]
        else:
            raise CandidateRejected(f"unsupported transparency log entry kind {kind}/{version}")
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise CandidateRejected(f"transparency log {kind} entry is malformed") from exc
    if logged != payload_sha256:
        raise CandidateRejected("transparency log entry is for other content (payload hash differs)")
    want = public_key_der(verifier)
    for sig, pem_b64 in sigs:
        if sig != signature:
            continue
        if _logged_verifier_der(pem_b64) == want:
            return
    raise CandidateRejected("transparency log entry records another signature or signer")


def _logged_verifier_der(pem_b64: object) -> bytes | None:
    key: Any
    try:
        pem = base64.b64decode(str(pem_b64))
        if b"CERTIFICATE" in pem:
            key = x509.load_pem_x509_certificate(pem).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
        der: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return der
    except (ValueError, UnsupportedAlgorithm, binascii.Error):
        return None


def verify_bundle_tlog(
    entries: list[Any], root: Any, payload: bytes, signature: bytes, verifier: PublicKey
) -> int:
    """Verify a v0.3 bundle's tlog entries against the trust root; return the integrated time.

    One entry must have a SET signed by a trusted Rekor key *and* an inclusion proof with a
    signed checkpoint (bundle v0.3 requires the proof), and record this payload hash and this
    signature by this key.
    """
    if not entries:
        raise CandidateRejected(f"bundle has no transparency log entry: {TLOG_HINT}")
    payload_sha = hashlib.sha256(payload).hexdigest()
    reasons: list[str] = []
    for entry in entries:
        try:
            if entry.inclusion_promise is None or not entry.integrated_time:
                raise CandidateRejected(
                    "transparency log entry has no SET (inclusion promise); Rekor v2 entries are not supported for key signatures"
                )
            rekor = RekorEntry(
                body=bytes(entry.canonicalized_body),
                integrated_time=int(entry.integrated_time),
                log_id_hex=bytes(entry.log_id.key_id).hex(),
                log_index=int(entry.log_index),
                signed_entry_timestamp=bytes(entry.inclusion_promise.signed_entry_timestamp),
            )
            verify_set(rekor, root)
            if entry.inclusion_proof is None or entry.inclusion_proof.checkpoint is None:
                raise CandidateRejected("transparency log entry has no inclusion proof (bundle v0.3 requires one)")
            try:
                verify_inclusion_proof(entry, root)
            except Exception as exc:  # sigstore raises several types; all mean "proof does not hold"
                raise CandidateRejected(f"transparency log inclusion proof does not verify: {exc}") from exc
            check_rekor_body(rekor.body, payload_sha256=payload_sha, signature=signature, verifier=verifier)
            return rekor.integrated_time
        except CandidateRejected as exc:
            reasons.append(str(exc))
    raise CandidateRejected(reasons[-1] if len(reasons) == 1 else "; ".join(reasons))
