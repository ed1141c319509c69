"""What an audit found: per model its tags, signatures, attestations and verdict; per walk
its bounds and the errors confined to one repository or model.

Plain data, so the walk (``engine``) and the renderers (``report``) depend on it and not on
each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import UsageError
from ..policyfile import Decision
from .claims import SignatureClaim

MAX_REPOSITORIES = 10_000
MAX_TAGS = 1_000


@dataclass(frozen=True)
class SignedBy:
    """``--signed-by``: an identity (certificate SAN) or a public key (by fingerprint)."""

    identity: str | None = None
    key_path: Path | None = None
    fingerprint: str | None = None

    @classmethod
    def parse(cls, value: str) -> SignedBy:
        """A path to an existing file is a public key; anything else is an identity."""
        path = Path(value).expanduser()
        if path.is_file():
            from ..verify.policy import key_fingerprint, load_public_key

            return cls(key_path=path, fingerprint=key_fingerprint(load_public_key(path)))
        if not value.strip():
            raise UsageError("--signed-by needs an identity or a public key file")
        return cls(identity=value)

    def describe(self) -> str:
        return f"key {self.fingerprint} ({self.key_path})" if self.fingerprint else str(self.identity)


@dataclass(frozen=True)
class AuditOptions:
    jobs: int = 4
    max_repositories: int = MAX_REPOSITORIES
    max_tags: int = MAX_TAGS
    signed_by: SignedBy | None = None
    between: tuple[datetime, datetime] | None = None


@dataclass
class AttestationInfo:
    digest: str
    artifact_type: str | None
    predicate_type: str | None


@dataclass
class ModelAudit:
    """One model manifest in one repository (signatures are per repository)."""

    repository: str  # host/repo
    digest: str
    tags: list[str]
    artifact_type: str | None = None
    signatures: list[SignatureClaim] = field(default_factory=list)
    attestations: list[AttestationInfo] = field(default_factory=list)
    decision: Decision | None = None

    @property
    def verdict(self) -> str:
        return self.decision.verdict if self.decision is not None else "none"


@dataclass
class AuditReport:
    targets: list[str]
    policy_source: str | None
    options: AuditOptions
    repositories: int = 0
    tags: int = 0
    models: list[ModelAudit] = field(default_factory=list)  # after filters
    examined: int = 0  # model digests looked at, before filters
    skipped: int = 0  # tagged manifests that are not models
    errors: list[tuple[str, str]] = field(default_factory=list)  # (where, one-line error)
