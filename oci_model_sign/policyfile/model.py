"""What a loaded policy holds, and the pure questions it answers.

Nothing here reads files or the network: ``load_policy`` has already resolved every path,
loaded every key and compiled every pattern, so a ``TrustPolicy`` can be asked about any
number of references and signers cheaply and deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from .regex import re2_search
from .scopes import ScopePattern, Target, target_for

SignerKind = Literal["key", "keyless", "x509"]
Mode = Literal["enforce", "warn"]


def _utc(when: datetime) -> datetime:
    # A naive time is taken as UTC, the zone every tlog and TSA time is in.
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


@dataclass(frozen=True)
class SignerInfo:
    """Who made one *verified* signature, as the policy needs to know it.

    ``fingerprint`` is ``sha256:<hex>`` of the DER SubjectPublicKeyInfo of the verifying key
    (for certificates: the certificate's key). ``signed_at`` is the trusted signing time (tlog
    integrated time or RFC 3161 timestamp), ``None`` when no trusted time exists.
    ``authority``, when the verifier knows it, names the policy authority whose options
    verified the signature; it is then authoritative for threshold counting.
    """

    kind: SignerKind
    fingerprint: str | None = None
    identity: str | None = None
    issuer: str | None = None
    signed_at: datetime | None = None
    authority: str | None = None

    def describe(self) -> str:
        if self.kind == "key":
            return f"key {self.fingerprint or '(unknown fingerprint)'}"
        who = self.identity or "(no identity)"
        return f"{self.kind} {who} ({self.issuer})" if self.issuer else f"{self.kind} {who}"

    def identity_key(self) -> tuple[str, ...]:
        """What makes two signatures the same signer (a key signing twice counts once)."""
        if self.kind == "key":
            return ("key", self.fingerprint or "")
        return (self.kind, self.identity or "", self.issuer or "")


def _text_matches(exact: str | None, regexp: str | None, value: str | None) -> bool:
    if exact is not None and value != exact:
        return False
    return not (regexp is not None and (value is None or not re2_search(regexp, value)))


def _pattern_text(exact: str | None, regexp: str | None) -> str:
    return exact if exact is not None else f"/{regexp}/"


@dataclass(frozen=True)
class Authority:
    """One trusted signer: a key, a keyless identity, or a CA (with optional identity)."""

    name: str
    kind: SignerKind
    line: int = 0
    key_path: Path | None = None
    key_pem: bytes | None = None
    fingerprint: str | None = None
    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    ca_roots: Path | None = None
    intermediates: Path | None = None
    trust_config: Path | None = None
    staging: bool = False
    offline: bool = False
    ignore_tlog: bool = False

    def accepts(self, signer: SignerInfo) -> bool:
        """Whether a verified ``signer`` counts for this authority.

        A verifier that says which authority verified the signature is believed. Otherwise a
        key counts by fingerprint and a keyless signer by identity and issuer; a CA authority
        cannot be recognised from the signer alone (the chain is not in ``SignerInfo``), so
        it counts only when named.
        """
        if signer.authority is not None:
            return signer.authority == self.name
        if signer.kind != self.kind:
            return False
        if self.kind == "key":
            return signer.fingerprint is not None and signer.fingerprint == self.fingerprint
        if self.kind == "keyless":
            return _text_matches(self.identity, self.identity_regexp, signer.identity) and _text_matches(
                self.issuer, self.issuer_regexp, signer.issuer
            )
        return False

    def options(self, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        """Keyword arguments for ``policy_from_options`` (named as the CLI flags are)."""
        opts: dict[str, Any] = {}
        if self.kind == "key":
            opts["key"] = str(self.key_path) if self.key_path is not None else self.key_pem
        if self.kind == "x509":
            opts["ca_roots"] = str(self.ca_roots)
            if self.intermediates is not None:
                opts["certificate_chain"] = str(self.intermediates)
        if self.identity is not None:
            opts["certificate_identity"] = self.identity
        if self.identity_regexp is not None:
            opts["certificate_identity_regexp"] = self.identity_regexp
        if self.issuer is not None:
            opts["certificate_oidc_issuer"] = self.issuer
        if self.issuer_regexp is not None:
            opts["certificate_oidc_issuer_regexp"] = self.issuer_regexp
        if self.trust_config is not None:
            opts["trust_config"] = str(self.trust_config)
        if self.staging:
            opts["staging"] = True
        if self.offline:
            opts["offline"] = True
        if self.ignore_tlog:
            opts["insecure_ignore_tlog"] = True
        if annotations:
            opts["annotations"] = dict(annotations)
        return opts

    def describe(self) -> str:
        if self.kind == "key":
            where = str(self.key_path) if self.key_path is not None else "inline PEM"
            return f"{self.name}: key {self.fingerprint} ({where})"
        who = _pattern_text(self.identity, self.identity_regexp)
        issuer = _pattern_text(self.issuer, self.issuer_regexp)
        if self.kind == "keyless":
            return f"{self.name}: keyless {who} from {issuer}"
        extra = ""
        if self.identity is not None or self.identity_regexp is not None:
            extra = f", identity {who}"
        if self.issuer is not None or self.issuer_regexp is not None:
            extra += f", issuer {issuer}"
        return f"{self.name}: certificate chaining to {self.ca_roots}{extra}"


@dataclass(frozen=True)
class Revocation:
    """A key or identity no longer trusted: always, or for signatures made at/after ``after``."""

    line: int = 0
    fingerprint: str | None = None
    key_path: Path | None = None
    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    after: datetime | None = None
    reason: str | None = None

    def matches_signer(self, signer: SignerInfo) -> bool:
        if self.fingerprint is not None:
            return signer.fingerprint == self.fingerprint
        if signer.identity is None:
            return False
        return _text_matches(self.identity, self.identity_regexp, signer.identity) and _text_matches(
            self.issuer, self.issuer_regexp, signer.issuer
        )

    def applies(self, signer: SignerInfo, signed_at: datetime | None) -> bool:
        """Whether this revocation refuses ``signer``'s signature made at ``signed_at``.

        With ``after``, a signature without a trusted time is refused too: nothing shows it
        was made before the cut-off.
        """
        if not self.matches_signer(signer):
            return False
        if self.after is None or signed_at is None:
            return True
        return _utc(signed_at) >= self.after

    def describe(self) -> str:
        if self.fingerprint is not None:
            what = f"key {self.fingerprint}"
        else:
            what = f"identity {_pattern_text(self.identity, self.identity_regexp)}"
            if self.issuer is not None or self.issuer_regexp is not None:
                what += f" from {_pattern_text(self.issuer, self.issuer_regexp)}"
        when = f" for signatures made at or after {self.after:%Y-%m-%dT%H:%M:%SZ}" if self.after else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"{what} revoked{when}{why}"


@dataclass(frozen=True)
class AttestationRequirement:
    """A predicate type the model must carry a verified attestation of, with its checks.

    ``check`` (CEL) and ``schema`` (JSON Schema) are kept as data for the predicate checker.
    """

    predicate_type: str
    name: str | None = None
    check: str | None = None
    schema: dict[str, Any] | None = None
    schema_path: Path | None = None
    line: int = 0

    def describe(self) -> str:
        parts = [self.predicate_type]
        if self.check:
            parts.append(f"check {self.check!r}")
        if self.schema is not None:
            parts.append(f"schema {self.schema_path}" if self.schema_path else "inline schema")
        return ", ".join(parts)


@dataclass(frozen=True)
class ScopePolicy:
    """The requirements of one scope (or of the ``default``)."""

    name: str
    pattern: ScopePattern | None  # None for the default
    mode: Mode = "enforce"
    authorities: tuple[Authority, ...] = ()
    threshold: int = 1
    attestations: tuple[AttestationRequirement, ...] = ()
    revoked: tuple[Revocation, ...] = ()  # the file's global revocations included
    annotations: dict[str, str] = field(default_factory=dict)
    reject: bool = False
    accept_anything: bool = False
    line: int = 0

    @property
    def verifies(self) -> bool:
        """Whether models in this scope are verified (not waved through, not refused outright)."""
        return not (self.reject or self.accept_anything)

    def authority_options(self) -> list[dict[str, Any]]:
        """One ``policy_from_options`` kwargs dict per authority, in ``authorities`` order."""
        return [a.options(self.annotations) for a in self.authorities]

    def authority(self, name: str) -> Authority | None:
        return next((a for a in self.authorities if a.name == name), None)

    def is_revoked(self, signer: SignerInfo, signed_at: datetime | None = None) -> Revocation | None:
        """The revocation refusing this signature, or None. ``signed_at`` defaults to the
        signer's own ``signed_at``."""
        when = signed_at if signed_at is not None else signer.signed_at
        return next((r for r in self.revoked if r.applies(signer, when)), None)

    def requirement_text(self) -> str:
        if self.reject:
            return "refuse every model"
        if self.accept_anything:
            return "accept models without verification"
        n = len(self.authorities)
        if self.threshold == 1 and n == 1:
            who = "a signature from " + self.authorities[0].name
        elif self.threshold == 1:
            who = f"a signature from any of {n} authorities"
        else:
            who = f"signatures from {self.threshold} of {n} authorities"
        if self.attestations:
            who += f" and {len(self.attestations)} attestation(s)"
        return who


@dataclass(frozen=True)
class ScopeMatch:
    """One scope considered for a reference: whether it matched, and its rank."""

    scope: ScopePolicy
    index: int
    matched: bool

    @property
    def rank(self) -> tuple[int, int, int]:
        assert self.scope.pattern is not None
        return (self.scope.pattern.literal_length, 0 if self.scope.pattern.is_wildcard else 1, -self.index)


@dataclass(frozen=True)
class TrustPolicy:
    """A loaded policy file."""

    source: Path
    api_version: str
    scopes: tuple[ScopePolicy, ...] = ()
    default: ScopePolicy | None = None
    revoked: tuple[Revocation, ...] = ()
    description: str | None = None

    def consider(self, reference: str) -> tuple[Target, list[ScopeMatch]]:
        """Every scope checked against ``reference``; matches first, best first."""
        target = target_for(reference)
        results = []
        for i, scope in enumerate(self.scopes):
            assert scope.pattern is not None
            results.append(ScopeMatch(scope, i, scope.pattern.matches(target)))
        matched = sorted((m for m in results if m.matched), key=lambda m: m.rank, reverse=True)
        return target, matched + [m for m in results if not m.matched]

    def scope_for(self, reference: str) -> tuple[str, ScopePolicy] | None:
        """The scope that applies to ``reference`` (the default when none matches), or None."""
        _, considered = self.consider(reference)
        if considered and considered[0].matched:
            best = considered[0].scope
            return best.name, best
        if self.default is not None:
            return self.default.name, self.default
        return None


Verdict = Literal["allow", "deny", "warn"]


@dataclass(frozen=True)
class Decision:
    """The verdict for one model under one scope, with a one-line reason.

    ``warn`` means the scope would have refused the model but is in warn mode: the model is
    let through and the reason must be shown.
    """

    verdict: Verdict
    reason: str
    scope: str
    mode: Mode
    satisfied: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()
    missing_attestations: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.verdict != "deny"

    def raise_if_denied(self) -> None:
        """``VerificationError`` (exit code 8) with the reason when the verdict is deny."""
        if self.verdict == "deny":
            from ..errors import VerificationError

            raise VerificationError(self.reason)
