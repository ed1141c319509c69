"""Find and check every attestation of a manifest digest: ``verify-attestation`` and the deploy gate.

The same parse-then-check as signatures (``discover``): each referrer bundle and each layer of
cosign's legacy ``sha256-<hex>.att`` tag is an untrusted candidate, verified on its own
against the signer policy. Then cosign's rule: every candidate is verified first, and those
whose *signed* ``predicateType`` differs from the requested one are dropped; the annotation
that names the type on a referrer is never trusted for that. Only then do the predicate
policies (JSON Schema, CEL) look at the statement.

A signature is not an attestation: cosign's ``sign/v1`` statement and model-signing bundles
never satisfy ``verify-attestation``, whatever ``--type`` asks for, just as an attestation
never admits a model (``admission``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import (
    IntegrityError,
    LimitError,
    NotFoundError,
    OmsignError,
    UsageError,
    VerificationError,
)
from ..limits import default_limits, load_json
from ..oci.descriptor import Descriptor
from ..oci.mediatypes import (
    COSIGN_SIGN_PREDICATE,
    DSSE_ENVELOPE_MEDIA_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    IN_TOTO_STATEMENT_TYPES,
    MODEL_SIGNING_PREDICATE,
    MODEL_SIGNING_PREDICATE_COMPAT,
)
from ..predicates.policy import PredicatePolicy
from ..reference import legacy_signature_tag
from ..signing.dsse import Envelope
from ..signing.keys import verify_bytes_signature as signature_is_valid
from ..store.base import Store
from ..store.referrers import list_referrers
from .bundle import verify_envelope
from .certs import verify_chain
from .discover import legacy_layers, referrer_bundle
from .legacy import _certificates, _check_sct, _tlog_time
from .policy import (
    CertificateChainPolicy,
    IdentityPolicy,
    KeyPolicy,
    Policy,
    check_claim_annotations,
)
from .rejection import CandidateRejected
from .result import CandidateResult

"""cosign's legacy attestation layer (``types.DssePayloadType``)."""
LEGACY_PREDICATE_ANNOTATION = "predicateType"

SIGNATURE_PREDICATES = (COSIGN_SIGN_PREDICATE, MODEL_SIGNING_PREDICATE, MODEL_SIGNING_PREDICATE_COMPAT)
"""Statements that sign a model rather than say something about it: never an attestation."""


def attestation_tag(subject_digest: str) -> str:
    """cosign's legacy tag for attestations of ``subject_digest``: ``sha256-<hex>.att``."""
    return legacy_signature_tag(subject_digest, "att")


def check_attestation_type(predicate_type: str) -> str:
    """Refuse a ``--type`` that names a signature: a signature never satisfies an attestation check."""
    if predicate_type in SIGNATURE_PREDICATES:
        raise UsageError(
            f"{predicate_type} is a signature, not an attestation",
            hint="use omsign verify for signatures; --type names an attestation's predicate type",
        )
    return predicate_type


@dataclass
class AttestationCandidate:
    """One candidate's verdict, and its statement when the signature verified."""

    result: CandidateResult
    statement: dict[str, Any] | None = None
    format: str = "bundle"

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "format": self.format}


@dataclass
class AttestationVerification:
    """Every candidate of one subject for one predicate type, and those that passed."""

    subject_digest: str
    predicate_type: str
    candidates: list[AttestationCandidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def verified(self) -> list[AttestationCandidate]:
        return [c for c in self.candidates if c.result.ok]

    @property
    def ok(self) -> bool:
        return bool(self.verified)

    def predicates(self) -> list[Any]:
        return [c.statement.get("predicate") for c in self.verified if c.statement is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject_digest": self.subject_digest,
            "predicate_type": self.predicate_type,
            "ok": self.ok,
            "verified": [
                {"source": c.result.source, "signer": c.result.signer, "format": c.format,
                 "statement": c.statement}
                for c in self.verified
            ],
            "candidates": [c.to_dict() for c in self.candidates],
            "notes": list(self.notes),
        }

    def _closest(self) -> AttestationCandidate | None:
        """The failure that got furthest: of the type and verified, then of the type, then any."""
        failed = [c for c in self.candidates if not c.result.ok]

        def rank(c: AttestationCandidate) -> int:
            if c.result.predicate_type == self.predicate_type and c.statement is not None:
                return 3
            if c.result.predicate_type == self.predicate_type:
                return 2
            return 1 if c.statement is not None else 0

        return max(failed, key=rank) if failed else None

    def failure(self) -> str | None:
        """The one-line reason this check fails (None when an attestation passed)."""
        if self.ok:
            return None
        digest, ptype = self.subject_digest, self.predicate_type
        attestations = [c for c in self.candidates if c.result.predicate_type not in SIGNATURE_PREDICATES]
        if not attestations:
            only = f" (only {len(self.candidates)} signature(s), which are not attestations)" if self.candidates else ""
            return f"no attestation found for {digest}{only}"
        of_type = [c for c in attestations if c.result.predicate_type == ptype]
        if not of_type and all(c.statement is not None for c in attestations):
            found = sorted({str(c.result.predicate_type) for c in attestations})
            return (
                f"none of the {len(attestations)} attestation(s) of {digest} matched the predicate "
                f"type {ptype} (found: {', '.join(found)[:300]})"
            )
        best = self._closest()
        assert best is not None
        return (
            f"no {ptype} attestation of {digest} satisfies the policy: {len(self.candidates)} "
            f"candidate(s) tried; the closest ({best.result.source}) failed: {best.result.reason}"
        )

    def raise_if_failed(self) -> None:
        reason = self.failure()
        if reason is not None:
            raise VerificationError(
                reason, hint="check --type, the key or identity you passed, or run with --json to see every candidate"
            )


def _check_statement(
    statement: dict[str, Any], subject_digest: str, policy: Policy
) -> tuple[str | None, dict[str, Any]]:
    """(predicateType, the subject naming ``subject_digest``) of a verified statement."""
    if statement.get("_type") not in IN_TOTO_STATEMENT_TYPES:
        raise CandidateRejected(f"signed payload has _type {str(statement.get('_type'))[:80]!r}, not an in-toto statement")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise CandidateRejected("in-toto statement has no subjects")
    want = subject_digest.split(":", 1)[1]
    for s in subjects:
        digest = s.get("digest") if isinstance(s, dict) else None
        if isinstance(digest, dict) and digest.get("sha256") == want:
            ptype = statement.get("predicateType")
            check_claim_annotations(policy.annotations, s.get("annotations"), "signed subject annotations")
            return (ptype if isinstance(ptype, str) else None), s
    raise CandidateRejected(f"attests another artifact (expected {subject_digest})")


def _judge(
    statement: dict[str, Any],
    subject_digest: str,
    policy: Policy,
    predicate_type: str,
    predicate_policy: PredicatePolicy | None,
) -> tuple[bool, str, str | None]:
    """(passes, reason, signed predicate type) for a statement whose signature verified."""
    signed_type = statement.get("predicateType")
    if signed_type in SIGNATURE_PREDICATES:
        return False, f"a signature ({signed_type}), not an attestation", str(signed_type)
    ptype, _ = _check_statement(statement, subject_digest, policy)
    if ptype != predicate_type:
        return False, f"predicateType is {str(ptype)[:120]}, not {predicate_type} (dropped)", ptype
    if predicate_policy:
        reason = predicate_policy.reason(statement)
        if reason:
            return False, reason, ptype
    return True, "verified", ptype


def check_bundle_attestation(
    bundle: bytes,
    subject_digest: str,
    policy: Policy,
    predicate_type: str,
    predicate_policy: PredicatePolicy | None = None,
    *,
    source: str,
) -> AttestationCandidate:
    """One referrer bundle: signature by ``policy``, subject, signed type, then predicate policy."""
    signer: str | None = None
    claimed: str | None = None
    statement: dict[str, Any] | None = None
    try:
        verified = verify_envelope(bundle, policy, source=source)
        signer, statement = verified.signer, verified.statement
        ok, reason, claimed = _judge(statement, subject_digest, policy, predicate_type, predicate_policy)
        return AttestationCandidate(CandidateResult(source, ok, reason, signer, claimed), statement)
    except CandidateRejected as exc:
        return AttestationCandidate(CandidateResult(source, False, str(exc), signer, claimed), statement)
    except OmsignError:
        raise
    except Exception as exc:  # defensive: a parser corner must not stop the other candidates
        reason = f"unexpected error checking this bundle: {type(exc).__name__}: {exc}"
        return AttestationCandidate(CandidateResult(source, False, reason, signer, claimed))


def _verify_dsse_signature(
    envelope: Envelope, sig: bytes, annotations: dict[str, str], policy: Policy
) -> str:
    """Check a legacy attestation layer's DSSE signature (over the PAE) against ``policy``.

    The Rekor entry cosign logs for it is a ``dsse`` entry, which records the hash of the
    payload (the statement), so the log is checked against the payload and the signature
    against the PAE.
    """
    signed = envelope.pae()
    payload = envelope.payload
    if isinstance(policy, KeyPolicy):
        key = policy.key()
        if not signature_is_valid(key, sig, signed):
            raise CandidateRejected("signature does not verify with the given public key")
        if not policy.ignore_tlog:
            _tlog_time(annotations, policy.root(), payload, sig, key)
        return policy.fingerprint()
    from .certs import describe_certificate

    leaf, chain = _certificates(annotations)
    cert_key: Any = leaf.public_key()
    if isinstance(policy, IdentityPolicy):
        root = policy.root()
        when = _tlog_time(annotations, root, payload, sig, cert_key)
        fulcio = list(root.get_fulcio_certs())
        roots = [c for c in fulcio if c.subject == c.issuer]
        intermediates = [c for c in fulcio if c.subject != c.issuer]
        verified_chain = verify_chain(leaf, chain + intermediates, roots, datetime.fromtimestamp(when, tz=timezone.utc))
        _check_sct(leaf, verified_chain, root, policy.ignore_sct)
    elif isinstance(policy, CertificateChainPolicy):
        at_time = None if policy.ignore_tlog else _tlog_time(annotations, policy.root(), payload, sig, cert_key)
        at = datetime.fromtimestamp(at_time, tz=timezone.utc) if at_time else datetime.now(timezone.utc)
        verify_chain(leaf, chain + policy.intermediates(), policy.roots(), at, require_eku=False)
    else:
        raise CandidateRejected(f"unsupported policy {type(policy).__name__}")
    policy.matcher().check(leaf)
    if not signature_is_valid(cert_key, sig, signed):
        raise CandidateRejected("signature does not verify with the certificate's key")
    return describe_certificate(leaf)


def check_legacy_attestation(
    envelope_bytes: bytes,
    annotations: dict[str, str],
    subject_digest: str,
    policy: Policy,
    predicate_type: str,
    predicate_policy: PredicatePolicy | None = None,
    *,
    source: str,
) -> AttestationCandidate:
    """One ``.att`` layer: a DSSE envelope, signed as cosign's ``attest --new-bundle-format=false``."""
    signer: str | None = None
    claimed: str | None = None
    statement: dict[str, Any] | None = None
    try:
        try:
            envelope = Envelope.from_json(envelope_bytes)
        except OmsignError as exc:
            raise CandidateRejected(f"layer is not a DSSE envelope: {exc.message}") from exc
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise CandidateRejected(f"DSSE payloadType is {envelope.payload_type[:80]!r}, not {IN_TOTO_PAYLOAD_TYPE}")
        if len(envelope.signatures) != 1:
            raise CandidateRejected(f"DSSE envelope has {len(envelope.signatures)} signatures, expected exactly one")
        signer = _verify_dsse_signature(envelope, envelope.signatures[0].sig, annotations, policy)
        limits = default_limits()
        try:
            value = load_json(envelope.payload, max_bytes=limits.bundle_bytes, depth=limits.json_depth, what="in-toto statement")
        except OmsignError as exc:
            raise CandidateRejected(exc.message) from exc
        if not isinstance(value, dict):
            raise CandidateRejected("signed payload is not an in-toto statement (not a JSON object)")
        statement = value
        ok, reason, claimed = _judge(statement, subject_digest, policy, predicate_type, predicate_policy)
        return AttestationCandidate(CandidateResult(source, ok, reason, signer, claimed, kind="legacy"), statement, "legacy")
    except CandidateRejected as exc:
        return AttestationCandidate(CandidateResult(source, False, str(exc), signer, claimed, kind="legacy"), statement, "legacy")
    except OmsignError:
        raise
    except Exception as exc:  # defensive
        reason = f"unexpected error checking this attestation: {type(exc).__name__}: {exc}"
        return AttestationCandidate(CandidateResult(source, False, reason, signer, claimed, kind="legacy"), None, "legacy")


def legacy_attestation_layers(store: Store, subject_digest: str) -> list[Descriptor] | None:
    """The layers of ``sha256-<hex>.att`` (None when the tag does not exist)."""
    tag = attestation_tag(subject_digest)
    try:
        data = store.get_manifest(tag).data
    except NotFoundError:
        return None
    layers = legacy_layers(data, store.limits, tag, "attestations")
    return [Descriptor.from_json(raw, what=f"{tag} layer {i}") for i, raw in enumerate(layers)]


def collect_attestations(
    store: Store,
    subject: Descriptor,
    policy: Policy,
    predicate_type: str,
    predicate_policy: PredicatePolicy | None = None,
) -> AttestationVerification:
    """Verify every attestation candidate of ``subject``; keep the verdict on each."""
    check_attestation_type(predicate_type)
    limits = store.limits
    out = AttestationVerification(subject.digest, predicate_type)
    for ref_desc in list_referrers(store, subject.digest):
        source = f"referrer {ref_desc.digest}"
        try:
            found = referrer_bundle(store, ref_desc)
            if found is None:
                continue  # not a Sigstore bundle (an SBOM attached as is, a dataset...)
            layer, _ = found
            bundle = store.read_blob(layer, limits.bundle_bytes)
            out.candidates.append(
                check_bundle_attestation(bundle, subject.digest, policy, predicate_type, predicate_policy, source=source)
            )
        except (IntegrityError, LimitError, NotFoundError) as exc:
            out.candidates.append(AttestationCandidate(CandidateResult(source, False, exc.one_line())))
    tag = attestation_tag(subject.digest)
    try:
        layers = legacy_attestation_layers(store, subject.digest) or []
    except (IntegrityError, LimitError) as exc:
        out.candidates.append(AttestationCandidate(CandidateResult(tag, False, exc.one_line(), kind="legacy"), None, "legacy"))
        layers = []
    for i, layer in enumerate(layers):
        source = f"{tag} layer {i}"
        if layer.media_type != DSSE_ENVELOPE_MEDIA_TYPE:
            out.candidates.append(AttestationCandidate(
                CandidateResult(source, False, f"not an attestation ({layer.media_type[:80]})", kind="legacy"), None, "legacy"))
            continue
        try:
            envelope = store.read_blob(layer, limits.bundle_bytes)
        except OmsignError as exc:
            out.candidates.append(AttestationCandidate(CandidateResult(source, False, exc.one_line(), kind="legacy"), None, "legacy"))
            continue
        out.candidates.append(check_legacy_attestation(
            envelope, dict(layer.annotations or {}), subject.digest, policy, predicate_type, predicate_policy, source=source
        ))
    # Signatures are candidates too (cosign verifies them all), but reporting each of them as
    # "dropped" would bury the attestations: they are kept only in the JSON.
    return out


def summary_line(result: AttestationVerification) -> str:
    if result.ok:
        who = sorted({str(c.result.signer) for c in result.verified})
        return (
            f"verified {len(result.verified)} {result.predicate_type} attestation(s) of "
            f"{result.subject_digest} by {', '.join(who)}"
        )
    return f"NOT verified: {result.failure()}"


def predicates_json(result: AttestationVerification) -> str:
    return json.dumps(result.predicates(), indent=2, sort_keys=True)
