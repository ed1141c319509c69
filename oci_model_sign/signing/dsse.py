"""DSSE envelopes (secure-systems-lab/dsse v1.0): PAE, build, parse, sign.

Both cosign v3 and model-signing sign the PAE of an in-toto statement and put exactly one
signature in the envelope. The envelope is built by hand because sigstore-python only signs
with its own ephemeral keys; key-based signing needs its own PAE and envelope.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from ..errors import IntegrityError
from ..oci.mediatypes import IN_TOTO_PAYLOAD_TYPE
from .keys import PrivateKey, PublicKey, sign_bytes, verify_bytes_signature


def pae(payload_type: str, payload: bytes) -> bytes:
    """``DSSEv1 <len(type)> <type> <len(body)> <body>``, lengths in bytes as ASCII decimal."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    sig: bytes
    keyid: str | None = None  # cosign: leave unset; model-signing writes ""


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    payload_type: str = IN_TOTO_PAYLOAD_TYPE
    signatures: tuple[Signature, ...] = field(default_factory=tuple)

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def to_dict(self) -> dict[str, object]:
        """protojson field order (payload, payloadType, signatures); keyid only when set."""
        sigs: list[dict[str, str]] = []
        for s in self.signatures:
            entry = {"sig": base64.b64encode(s.sig).decode("ascii")}
            if s.keyid is not None:
                entry["keyid"] = s.keyid
            sigs.append(entry)
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": sigs,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode("ascii")

    @classmethod
    def from_dict(cls, doc: object) -> Envelope:
        """Parse an envelope strictly: wrong shapes are IntegrityError, not KeyError."""
        if not isinstance(doc, dict):
            raise IntegrityError("DSSE envelope is not a JSON object")
        try:
            payload = base64.b64decode(doc["payload"], validate=True)
            payload_type = doc["payloadType"]
            raw_sigs = doc["signatures"]
            if not isinstance(payload_type, str) or not isinstance(raw_sigs, list):
                raise TypeError("payloadType/signatures have the wrong type")
            sigs: list[Signature] = []
            for s in raw_sigs:
                if not isinstance(s, dict):
                    raise TypeError("signature entry is not an object")
                keyid = s.get("keyid")
                if keyid is not None and not isinstance(keyid, str):
                    raise TypeError("keyid is not a string")
                sigs.append(Signature(base64.b64decode(s["sig"], validate=True), keyid))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise IntegrityError(f"malformed DSSE envelope: {exc}") from exc
        return cls(payload, payload_type, tuple(sigs))

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise IntegrityError(f"DSSE envelope is not valid JSON: {exc}") from exc
        return cls.from_dict(doc)


def sign_envelope(
    key: PrivateKey,
    payload: bytes,
    payload_type: str = IN_TOTO_PAYLOAD_TYPE,
    *,
    keyid: str | None = None,
) -> Envelope:
    """Sign the PAE with ``key`` (ECDSA DER with the curve's hash, pure Ed25519, RSA v1.5)."""
    sig = sign_bytes(key, pae(payload_type, payload))
    return Envelope(payload, payload_type, (Signature(sig, keyid),))


def verify_envelope(key: PublicKey, envelope: Envelope) -> bool:
    """True when the envelope has exactly one signature and it verifies over the PAE."""
    if len(envelope.signatures) != 1:
        return False
    return verify_bytes_signature(key, envelope.signatures[0].sig, envelope.pae())
