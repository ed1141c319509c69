"""Outcomes of verification: one ``CandidateResult`` per signature tried, one ``VerificationResult``.

Every candidate (a referrer bundle, one layer of a ``.sig`` manifest, a local ``model.sig``) is
judged on its own and its outcome kept, so a failure can explain *all* that was tried rather
than only the last thing that went wrong.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import VerificationError

CandidateKind = Literal["cosign-bundle", "model-signing-bundle", "legacy"]


@dataclass
class CandidateResult:
    """The verdict on one signature candidate.

    ``source`` says where it came from (``"referrer sha256:..."``, ``"legacy .sig layer 1"``);
    ``signer`` is a key fingerprint (``sha256:<hex of DER SPKI>``) or ``"<identity> (<issuer>)"``.
    """

    source: str
    ok: bool
    reason: str
    signer: str | None = None
    predicate_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    kind: CandidateKind = "cosign-bundle"
    # The trusted signing time (epoch seconds of the verified tlog entry), when the policy
    # checked one: what policy-file revocations with ``after`` judge. Not part of the JSON.
    signed_at: int | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("signed_at", None)
        return out


# How far each candidate got, so the "best" failure (the one that got furthest) is reported.
# A signature that verified but signed another artifact is more telling than unparsable junk.
_PROGRESS_HINTS = (
    ("annotation", 5),
    ("signed another artifact", 4),
    ("identity", 3),
    ("issuer", 3),
    ("transparency log", 3),
    ("tlog", 3),
    ("signature", 2),
    ("certificate", 2),
)


_NO_MANIFEST_SIGNATURE = "only signatures over the model's files were found, none over its manifest"


def _progress(candidate: CandidateResult) -> int:
    reason = candidate.reason.lower()
    for needle, score in _PROGRESS_HINTS:
        if needle in reason:
            return score
    return 0


@dataclass
class VerificationResult:
    """All candidates tried for one subject, and the one accepted (if any)."""

    subject_digest: str
    ok: bool
    accepted: CandidateResult | None
    candidates: list[CandidateResult]
    notes: list[str] = field(default_factory=list)  # what the user should know besides the verdict

    @classmethod
    def from_candidates(cls, subject_digest: str, candidates: list[CandidateResult]) -> VerificationResult:
        """Any verified candidate is enough (cosign's semantics): the first one wins."""
        accepted = next((c for c in candidates if c.ok), None)
        return cls(subject_digest, accepted is not None, accepted, list(candidates))

    def best_failure(self) -> CandidateResult | None:
        failures = [c for c in self.candidates if not c.ok]
        if not failures:
            return None
        return max(failures, key=_progress)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject_digest": self.subject_digest,
            "ok": self.ok,
            "accepted": self.accepted.to_dict() if self.accepted else None,
            "candidates": [c.to_dict() for c in self.candidates],
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def summary(self) -> str:
        notes = "".join(f"\nnote: {n}" for n in self.notes)
        if self.accepted is not None:
            who = f" by {self.accepted.signer}" if self.accepted.signer else ""
            return (
                f"verified {self.subject_digest}: {self.accepted.kind} from "
                f"{self.accepted.source}{who}{notes}"
            )
        if not self.candidates:
            return f"NOT verified {self.subject_digest}: no signature found"
        best = self.best_failure()
        if best is None:
            return f"NOT verified {self.subject_digest}: {_NO_MANIFEST_SIGNATURE}"
        return (
            f"NOT verified {self.subject_digest}: {len(self.candidates)} candidate(s) tried, "
            f"best: {best.source}: {best.reason}"
        )

    def raise_if_failed(self) -> None:
        """Raise ``VerificationError`` explaining what was tried and why the best attempt failed."""
        if self.ok:
            return
        if not self.candidates:
            raise VerificationError(
                f"no signature found for {self.subject_digest}",
                hint="sign it first (omsign sign), or check that signatures were copied with the artifact",
            )
        best = self.best_failure()
        if best is None:
            # Every candidate verified, yet none admits the model: only model-signing bundles
            # (which vouch for the files, not this manifest) were found.
            raise VerificationError(
                f"{_NO_MANIFEST_SIGNATURE} for {self.subject_digest}",
                hint="sign the manifest itself (omsign sign writes a cosign bundle), or use verify-local on the files",
            )
        n = len(self.candidates)
        raise VerificationError(
            f"no signature for {self.subject_digest} satisfies the policy: {n} candidate(s) tried; "
            f"the closest ({best.source}) failed: {best.reason}",
            hint="check the key or identity/issuer you passed, or run with --json to see every candidate",
        )
