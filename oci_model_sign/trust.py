"""Where a trust policy file meets the verifier: ``check_trust(ref) -> TrustOutcome``.

``policyfile`` says which scope governs a reference and what it requires; ``verify`` checks
one signature against one signer's policy. This module joins them, and is the only place
that does: ``pull``, ``verify``, ``copy``, ``snapshot``, the loaders and ``audit`` all judge
models through ``judge``.

The model's signatures are discovered once (referrers API or fallback tag, legacy ``.sig``
tag), each bundle and payload read once, and every candidate is then checked against every
authority of the scope: N authorities cost N signature checks, not N downloads. Each
verified signature becomes a ``SignerInfo`` (with its trusted signing time: the verified
tlog entry's integrated time, else the RFC 3161 time sigstore verified for a keyless
bundle), and ``policyfile.decide`` applies threshold, revocations and mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import IntegrityError, LimitError, NotFoundError, OmsignError, VerificationError
from .oci.descriptor import Descriptor
from .oci.mediatypes import (
    ANNOTATION_PREDICATE,
    MODEL_SIGNING_PREDICATE,
    SIMPLE_SIGNING_MEDIA_TYPE,
)
from .policyfile import Authority, Decision, ScopePolicy, SignerInfo, TrustPolicy, decide
from .reference import Reference, legacy_signature_tag, parse_reference
from .store.base import Store, StoreOptions
from .verify.admission import MODEL_ADMITTING_PREDICATES, admission_problem
from .verify.discover import bundle_layer, legacy_layers
from .verify.result import CandidateResult, VerificationResult

if TYPE_CHECKING:
    from .audit.claims import SignatureClaim
    from .verify.policy import Policy

__all__ = ["CandidateCheck", "PolicyCache", "TrustOutcome", "check_trust", "enforce_policy_file", "judge", "judge_reference", "load_in_force", "scope_for"]

CandidateFormat = Literal["bundle", "model-signing", "legacy", "broken"]


@dataclass
class CandidateCheck:
    """One signature candidate, read once, and what each authority made of it."""

    source: str
    format: CandidateFormat
    data: bytes = b""
    annotations: dict[str, str] = field(default_factory=dict)
    claim: SignatureClaim | None = None  # what its bytes say (signer, time), believed once verified
    error: str | None = None
    verified_by: list[str] = field(default_factory=list)  # authority names whose check passed
    result: CandidateResult | None = None  # the representative outcome (first pass, else best failure)
    predicate_type: str | None = None
    statement: dict[str, Any] | None = None


@dataclass
class TrustOutcome:
    """The verdict of the policy file on one model, and what it was based on.

    ``applies`` is False when no scope governs the model (no policy file, ``none``, or no
    scope and no default): then nothing was verified and ``allowed`` is True. ``enforced``
    is the scope's mode; a warn-mode failure is ``allowed`` with the failure in ``reason``.
    """

    applies: bool
    allowed: bool
    enforced: bool
    reason: str
    scope: str | None
    digest: str
    signers: list[SignerInfo] = field(default_factory=list)
    attestations: list[str] = field(default_factory=list)
    verification: VerificationResult | None = None
    policy_source: Path | None = None
    decision: Decision | None = None
    checks: list[CandidateCheck] = field(default_factory=list, repr=False)
    model_signing_bundle: bytes | None = field(default=None, repr=False)

    @property
    def warned(self) -> bool:
        """True when a warn-mode scope would have refused the model."""
        return self.decision is not None and self.decision.verdict == "warn"

    def raise_if_denied(self) -> None:
        """``VerificationError`` (exit code 8) naming the scope and the reason, if denied."""
        if not self.allowed:
            where = f" ({self.policy_source})" if self.policy_source is not None else ""
            raise VerificationError(
                f"refused by policy{where}: {self.reason}",
                hint="sign the model as the scope requires, or see `omsign policy explain REF`",
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "applies": self.applies,
            "allowed": self.allowed,
            "enforced": self.enforced,
            "reason": self.reason,
            "scope": self.scope,
            "policy": str(self.policy_source) if self.policy_source is not None else None,
            "digest": self.digest,
            "signers": [
                {
                    "kind": s.kind,
                    "fingerprint": s.fingerprint,
                    "identity": s.identity,
                    "issuer": s.issuer,
                    "signedAt": s.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ") if s.signed_at else None,
                    "authority": s.authority,
                }
                for s in self.signers
            ],
            "attestations": list(self.attestations),
        }


class PolicyCache:
    """One verifier policy per authority (keys and trust roots load once per walk)."""

    def __init__(self) -> None:
        import threading

        self._policies: dict[tuple[Authority, tuple[tuple[str, str], ...]], Policy] = {}
        self._lock = threading.Lock()

    def get(self, authority: Authority, annotations: dict[str, str]) -> Policy:
        from .verify.policy import policy_from_options

        key = (authority, tuple(sorted(annotations.items())))
        with self._lock:
            if key not in self._policies:
                self._policies[key] = policy_from_options(**authority.options(annotations))
            return self._policies[key]


# -- which scope ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scope:
    policy: TrustPolicy | None
    name: str | None
    scope: ScopePolicy | None
    reason: str


def load_in_force(policy_file: str | Path | None = None) -> tuple[TrustPolicy | None, str]:
    """The policy file ``find_policy`` picks, loaded (``UsageError`` naming the line when it
    is malformed), or None with the reason there is none."""
    from .policyfile import find_policy, load_policy

    location = find_policy(str(policy_file) if policy_file is not None else None)
    if location == "none":
        return None, "policy opted out (none): not verified by policy"
    if location is None:
        return None, "no policy file: not verified by policy"
    return load_policy(location), ""


def scope_for(reference: str, loaded: TrustPolicy | None, why: str = "") -> _Scope:
    """The scope of ``loaded`` governing ``reference`` (tag and digest count), with why."""
    if loaded is None:
        return _Scope(None, None, None, why or "no policy file: not verified by policy")
    found = loaded.scope_for(reference)
    if found is None:
        return _Scope(
            loaded, None, None,
            f"no scope of {loaded.source} matches {reference} and it has no default: not verified by policy",
        )
    return _Scope(loaded, found[0], found[1], f"scope {found[0]} of {loaded.source}")


def _not_applied(digest: str, why: _Scope) -> TrustOutcome:
    return TrustOutcome(
        applies=False, allowed=True, enforced=False, reason=why.reason, scope=None, digest=digest,
        policy_source=why.policy.source if why.policy is not None else None,
    )


# -- discovery, once -----------------------------------------------------------------------------
def collect_candidates(store: Store, subject_digest: str) -> list[CandidateCheck]:
    """Every signature candidate of ``subject_digest``, each read once (never raises for one)."""
    from .audit.claims import parse_bundle_claim, parse_legacy_claim
    from .store.referrers import list_referrers

    limits = store.limits
    out: list[CandidateCheck] = []
    for desc in list_referrers(store, subject_digest):
        source = f"referrer {desc.digest}"
        try:
            found = bundle_layer(store, desc)
            if found is None:
                continue  # not a signature (an SBOM or model card stored as plain JSON)
            layer, manifest_ann = found
            data = store.read_blob(layer, limits.bundle_bytes)
        except (IntegrityError, LimitError, NotFoundError) as exc:
            out.append(CandidateCheck(source, "broken", error=exc.one_line()))
            continue
        ann = {**dict(desc.annotations or {}), **manifest_ann}
        fmt: CandidateFormat = "model-signing" if ann.get(ANNOTATION_PREDICATE) == MODEL_SIGNING_PREDICATE else "bundle"
        out.append(CandidateCheck(source, fmt, data, ann, claim=parse_bundle_claim(data, source, limits, ann)))
    tag = legacy_signature_tag(subject_digest)
    try:
        sig_manifest = store.get_manifest(tag).data
    except NotFoundError:
        return out
    try:
        layers = legacy_layers(sig_manifest, limits, tag)
    except (IntegrityError, LimitError) as exc:
        out.append(CandidateCheck(tag, "broken", error=exc.one_line()))
        return out
    for i, raw in enumerate(layers):
        source = f"{tag} layer {i}"
        try:
            layer = Descriptor.from_json(raw, what=source)
            if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE:
                out.append(CandidateCheck(source, "broken", error=f"not a signature ({layer.media_type})"))
                continue
            payload = store.read_blob(layer, limits.signature_payload_bytes)
        except OmsignError as exc:
            out.append(CandidateCheck(source, "broken", error=exc.one_line()))
            continue
        ann = dict(layer.annotations or {})
        out.append(CandidateCheck(source, "legacy", payload, ann, claim=parse_legacy_claim(ann, source)))
    return out


# -- checking ------------------------------------------------------------------------------------
def _check_one(cand: CandidateCheck, subject: str, policy: Policy, layer_digests: dict[str, str] | None) -> CandidateResult:
    from .verify.bundle import verify_bundle, verify_model_signing_bundle
    from .verify.legacy import verify_simple_signing

    if cand.format == "broken":
        return CandidateResult(source=cand.source, ok=False, reason=cand.error or "unreadable")
    if cand.format == "model-signing":
        result, _ = verify_model_signing_bundle(cand.data, policy.for_model_signing(), layer_digests=layer_digests, source=cand.source)
        return result
    if cand.format == "legacy":
        return verify_simple_signing(cand.data, cand.annotations, subject, policy, source=cand.source)
    return verify_bundle(cand.data, subject, policy, source=cand.source, predicate_types=None)


def _statement(data: bytes) -> dict[str, Any] | None:
    from .verify.bundle import parse_bundle_record

    try:
        _, record = parse_bundle_record(data, "attestation")
    except Exception:  # already verified once; a second parse cannot fail, but never raise here
        return None
    return record.statement


def _as_admission(result: CandidateResult) -> CandidateResult:
    """A verified bundle whose predicate does not admit a model is an attestation: shown in the
    verification report as a candidate that failed admission, as ``verify.discover`` shows it."""
    problem = admission_problem(result.predicate_type, MODEL_ADMITTING_PREDICATES)
    if not result.ok or problem is None or result.kind != "cosign-bundle":
        return result
    return CandidateResult(result.source, False, problem, result.signer, result.predicate_type, {}, result.kind)


def _progress(result: CandidateResult) -> int:
    from .verify.result import _progress as progress

    return progress(result)


def _signed_at(cand: CandidateCheck, result: CandidateResult, policy: Policy) -> datetime | None:
    if result.signed_at:
        return datetime.fromtimestamp(result.signed_at, tz=timezone.utc)
    from .verify.policy import IdentityPolicy

    claim = cand.claim
    # sigstore verified the bundle's RFC 3161 timestamps for a keyless signature.
    if isinstance(policy, IdentityPolicy) and claim is not None and claim.time_source == "tsa":
        return claim.signed_at
    return None


def _signer(cand: CandidateCheck, scope: ScopePolicy, times: dict[str, datetime | None]) -> SignerInfo:
    """One verified signature, one signer: it counts once towards a threshold however many
    authorities verified it. With one verifying authority the signer names it."""
    names = cand.verified_by
    first = scope.authority(names[0])
    assert first is not None
    claim = cand.claim
    when = next((t for t in (times.get(n) for n in names) if t is not None), None)
    named = first.name if len(names) == 1 else None
    if first.kind == "key":
        return SignerInfo("key", fingerprint=first.fingerprint, signed_at=when, authority=named)
    return SignerInfo(
        first.kind,
        fingerprint=claim.fingerprint if claim else None,
        identity=claim.identity if claim else None,
        issuer=claim.issuer if claim else None,
        signed_at=when,
        authority=named,
    )


def _attestation_ok(cand: CandidateCheck, scope: ScopePolicy) -> list[str]:
    """Predicate types this verified attestation satisfies (its requirement's checks included)."""
    from .predicates.policy import PredicateCheck, PredicateSchema

    if cand.predicate_type is None:
        return []
    wanted = [r for r in scope.attestations if r.predicate_type == cand.predicate_type]
    if not wanted:
        return [cand.predicate_type]
    statement = cand.statement if cand.statement is not None else _statement(cand.data)
    if statement is None:
        return []
    for req in wanted:
        if req.schema is not None and PredicateSchema.from_schema(req.schema, str(req.schema_path or "schema")).reason(statement):
            return []
        if req.check and PredicateCheck.compile(req.check, f"attestation check (line {req.line})").reason(statement):
            return []
    return [cand.predicate_type]


def judge(
    store: Store,
    subject: Descriptor,
    scope: ScopePolicy,
    *,
    scope_name: str | None = None,
    layer_digests: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    cache: PolicyCache | None = None,
    policy_source: Path | None = None,
) -> TrustOutcome:
    """Judge the model ``subject`` in ``store`` under ``scope`` (see the module docstring)."""
    name = scope_name or scope.name
    if not scope.verifies:
        decision = decide(scope, [])
        return _outcome(subject.digest, name, scope, decision, [], [], None, [], None, policy_source)
    cache = cache or PolicyCache()
    wanted = {**scope.annotations, **(annotations or {})}
    candidates = collect_candidates(store, subject.digest)
    times: dict[str, dict[str, datetime | None]] = {}
    for authority in scope.authorities:
        policy = cache.get(authority, wanted)
        for cand in candidates:
            result = _check_one(cand, subject.digest, policy, layer_digests)
            if result.ok:
                cand.verified_by.append(authority.name)
                times.setdefault(cand.source, {})[authority.name] = _signed_at(cand, result, policy)
                if cand.predicate_type is None:
                    cand.predicate_type = result.predicate_type
            shown = _as_admission(result)
            if cand.result is None or (shown.ok and not cand.result.ok) or (
                not cand.result.ok and not shown.ok and _progress(shown) > _progress(cand.result)
            ):
                cand.result = shown
    results = [c.result for c in candidates if c.result is not None]
    accepted = next((r for r in results if r.ok and r.kind != "model-signing-bundle"), None)
    verification = VerificationResult(subject.digest, accepted is not None, accepted, results)
    if accepted is not None and accepted.kind == "legacy" and any(c.format in ("bundle", "model-signing") for c in candidates):
        verification.notes.append(
            f"admitted by the legacy {legacy_signature_tag(subject.digest)} signature, but bundle referrer(s) "
            "exist: cosign (>= 2.6.3, v3) reads only the bundles then"
        )
    signing = [
        c for c in candidates
        if c.verified_by and c.format in ("bundle", "legacy")
        and (c.format == "legacy" or c.predicate_type in MODEL_ADMITTING_PREDICATES)
    ]
    signers = [_signer(c, scope, times.get(c.source, {})) for c in signing]
    attested = sorted({
        t for c in candidates
        if c.verified_by and c.format == "bundle" and c.predicate_type not in MODEL_ADMITTING_PREDICATES
        for t in _attestation_ok(c, scope)
    })
    model_sig = next((c.data for c in candidates if c.format == "model-signing" and c.verified_by), None)
    decision = decide(scope, signers, attestations=attested)
    return _outcome(subject.digest, name, scope, decision, signers, attested, verification, candidates, model_sig, policy_source)


def _outcome(
    digest: str,
    name: str,
    scope: ScopePolicy,
    decision: Decision,
    signers: list[SignerInfo],
    attested: list[str],
    verification: VerificationResult | None,
    checks: list[CandidateCheck],
    model_sig: bytes | None,
    policy_source: Path | None,
) -> TrustOutcome:
    return TrustOutcome(
        applies=True,
        allowed=decision.allowed,
        enforced=scope.mode == "enforce",
        reason=decision.reason,
        scope=name,
        digest=digest,
        signers=signers,
        attestations=attested,
        verification=verification,
        policy_source=policy_source,
        decision=decision,
        checks=checks,
        model_signing_bundle=model_sig,
    )


def judge_reference(
    store: Store,
    reference: Reference,
    subject: Descriptor,
    loaded: TrustPolicy | None,
    *,
    why: str = "",
    layer_digests: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> TrustOutcome:
    """``check_trust`` on a store already open and a digest already resolved (pull, copy, snapshot)."""
    found = scope_for(str(reference.with_digest(subject.digest)), loaded, why)
    if found.scope is None:
        return _not_applied(subject.digest, found)
    assert found.policy is not None and found.name is not None
    return judge(
        store, subject, found.scope, scope_name=found.name, layer_digests=layer_digests, annotations=annotations,
        policy_source=found.policy.source,
    )


def check_trust(
    reference: str | Reference,
    *,
    policy: str | Path | None = None,
    options: StoreOptions | None = None,
    annotations: dict[str, str] | None = None,
) -> TrustOutcome:
    """Judge a model by the trust policy file: ``--policy FILE``, ``$OMSIGN_POLICY``, the
    user's, the system's (``"none"`` opts out). Never raises for a refused model: call
    ``raise_if_denied()``. A malformed policy is a ``UsageError`` naming ``file:line``."""
    from .model.unpack import layer_digests
    from .store import open_store
    from .transfer import read_model

    ref = parse_reference(reference) if isinstance(reference, str) else reference
    loaded, why = load_in_force(policy)  # before any network traffic
    store = open_store(ref, options or StoreOptions())
    try:
        desc = store.resolve(ref.identifier)
        if scope_for(str(ref.with_digest(desc.digest)), loaded, why).scope is None:
            return judge_reference(store, ref, desc, loaded, why=why)
        manifest, model = read_model(store, desc.digest)
        return judge_reference(
            store, ref, manifest.descriptor, loaded, why=why, layer_digests=layer_digests(model), annotations=annotations
        )
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def enforce_policy_file(
    store: Store,
    reference: Reference,
    subject: Descriptor,
    loaded: TrustPolicy | None,
    *,
    why: str = "",
    layer_digests: dict[str, str] | None = None,
    required: bool = False,
) -> TrustOutcome:
    """What ``pull``/``copy``/``snapshot`` do with the policy file: judge, refuse when denied.

    ``required`` (``--verify`` was asked for, or a loader must not load unverified) makes "no
    scope applies" a ``UsageError`` instead of a stated pass-through.
    """
    outcome = judge_reference(store, reference, subject, loaded, why=why, layer_digests=layer_digests)
    if not outcome.applies and required:
        from .errors import UsageError

        raise UsageError(
            f"verification was asked for, but {outcome.reason}",
            hint="pass --key/--certificate-identity, or a --policy FILE with a scope for this model",
        )
    outcome.raise_if_denied()
    return outcome
