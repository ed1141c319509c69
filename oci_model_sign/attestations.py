"""``attest`` and ``verify_attestation``: signed statements *about* a model, in cosign's wire format.

``attest`` builds an in-toto statement whose subject is the manifest digest (``predicates``),
has the signer wrap it in a DSSE envelope inside a Sigstore v0.3 bundle, and attaches it as
cosign v3 does: an OCI 1.1 referrer whose manifest annotation
``dev.sigstore.bundle.predicateType`` names the predicate type (the ``sha256-<hex>`` fallback
index on registries without the referrers API), or with ``format="legacy"`` as a layer of
cosign's ``sha256-<hex>.att`` tag.

``verify_attestation`` checks every candidate against a signer policy, drops those of other
predicate types (cosign's rule) and applies the predicate policies. An attestation never
admits a model (``verify``/``pull --verify`` need a signature), and a signature never passes
here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .oci.mediatypes import (
    ANNOTATION_PREDICATE,
    COSIGN_SIGN_PREDICATE,
    MODEL_SIGNING_PREDICATE,
    MODEL_SIGNING_PREDICATE_COMPAT,
)
from .predicates.build import PredicateInputs
from .reference import Reference, parse_reference
from .store import open_store
from .store.base import StoreOptions

if TYPE_CHECKING:  # verification loads only when something is verified: attest stays fast
    from .predicates.policy import PredicateCheck, PredicatePolicy
    from .signing.signers import Signer
    from .verify.attestation import AttestationVerification
    from .verify.policy import Policy

SIGNATURE_PREDICATES = (COSIGN_SIGN_PREDICATE, MODEL_SIGNING_PREDICATE, MODEL_SIGNING_PREDICATE_COMPAT)


def check_attestation_type(predicate_type: str) -> str:
    """Refuse a type that names a signature (see ``verify.attestation``)."""
    if predicate_type in SIGNATURE_PREDICATES:
        from .verify.attestation import check_attestation_type as check

        check(predicate_type)  # raises
    return predicate_type


FORMATS = ("bundle", "legacy")


def _ref(ref: str | Reference) -> Reference:
    return parse_reference(ref) if isinstance(ref, str) else ref


def _close(store: Any) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


@dataclass
class AttestResult:
    reference: str
    digest: str
    predicate_type: str
    format: str
    attestation: str  # the referrer manifest digest, or the .att manifest digest
    replaced: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "predicateType": self.predicate_type,
            "format": self.format,
            "attestation": self.attestation,
            "replaced": list(self.replaced),
            "notes": list(self.notes),
        }


def _claimed_signer(bundle: bytes) -> str | None:
    """Who a bundle says signed it (key hint or certificate identity), for ``--replace``."""
    from .verify.bundle import parse_bundle_record

    try:
        _, record = parse_bundle_record(bundle, "bundle")
    except Exception:  # a bundle omsign cannot parse was not written by this signer
        return None
    return record.claimed_signer


def _earlier_attestations(store: Any, subject_digest: str, predicate_type: str, signer: str | None) -> list[str]:
    """Referrers of ``subject_digest`` that claim ``predicate_type`` and this signer.

    The signed statement is what counts for verification; for replacing, the annotation and
    the bundle's verification material are enough: they name what this command wrote before.
    """
    from .store.referrers import list_referrers
    from .verify.discover import referrer_bundle

    out: list[str] = []
    if signer is None:
        return out
    for desc in list_referrers(store, subject_digest):
        try:
            found = referrer_bundle(store, desc)
            if found is None:
                continue
            layer, manifest = found
            annotations = manifest.get("annotations")
            if not isinstance(annotations, dict) or annotations.get(ANNOTATION_PREDICATE) != predicate_type:
                continue
            if _claimed_signer(store.read_blob(layer, store.limits.bundle_bytes)) == signer:
                out.append(desc.digest)
        except Exception:  # an unreadable referrer is simply not ours to replace
            continue
    return out


def _remove_referrer(store: Any, subject_digest: str, digest: str) -> None:
    from .errors import OmsignError
    from .store.referrers import detach_referrer

    detach_referrer(store, subject_digest, digest)
    # With a native referrers API deleting is what removes it; a registry that refuses
    # deletes keeps the manifest, which the fallback index no longer lists.
    with contextlib.suppress(OmsignError):
        store.delete_manifest(digest)


def attest(
    ref: str | Reference,
    signer: Signer,
    *,
    predicate_type: str = "custom",
    inputs: PredicateInputs | None = None,
    options: StoreOptions | None = None,
    format: str = "bundle",
    replace: bool = False,
    output_bundle: str | Path | None = None,
) -> AttestResult:
    """Sign a statement about the model's manifest digest and attach it (see module doc).

    ``predicate_type`` is an alias (``eval``, ``modelcard``, ``slsaprovenance1``, ``cyclonedx``,
    cosign's) or a URI; ``inputs`` name the predicate file or what omsign builds it from.
    ``replace`` removes this signer's earlier attestations of the same type.
    """
    from .predicates.build import build_statement_for
    from .signing.attach import attach_bundle
    from .signing.attestation_layers import attach_legacy_attestation, legacy_attestation_layer
    from .signing.statements import cosign_docker_reference

    if format not in FORMATS:
        raise UsageError(f"unknown attestation format {format!r}: use bundle or legacy")
    reference = _ref(ref)
    inputs = inputs or PredicateInputs()
    store = open_store(reference, options or StoreOptions())
    try:
        desc = store.resolve(reference.identifier)
        manifest = store.get_manifest(desc.digest)
        repository = (
            reference.repo_name if reference.is_layout
            else cosign_docker_reference(reference.registry, reference.repository)
        )
        uri, statement = build_statement_for(predicate_type, desc.digest, repository, inputs)
        check_attestation_type(uri)
        bundle = signer.sign_dsse(statement)
        if output_bundle is not None:
            Path(output_bundle).write_bytes(bundle)
        result = AttestResult(
            reference=str(reference.pinned(desc.digest)), digest=desc.digest, predicate_type=uri,
            format=format, attestation="",
        )
        if format == "legacy":
            chain = list(getattr(signer, "chain", []) or [])
            envelope, annotations = legacy_attestation_layer(bundle, uri, chain)
            digest, replaced = attach_legacy_attestation(store, desc.digest, envelope, annotations, replace=replace)
            result.attestation = digest
            if replaced:
                result.replaced = [f"{replaced} earlier layer(s) of {uri} in the .att tag"]
            return result
        earlier = _earlier_attestations(store, desc.digest, uri, _claimed_signer(bundle)) if replace else []
        result.attestation = attach_bundle(store, manifest.descriptor, bundle, uri)
        for digest in earlier:
            if digest != result.attestation:
                _remove_referrer(store, desc.digest, digest)
                result.replaced.append(digest)
        return result
    finally:
        _close(store)


def verify_attestation(
    ref: str | Reference,
    policy: Policy,
    *,
    predicate_type: str = "custom",
    predicate_policy: PredicatePolicy | None = None,
    options: StoreOptions | None = None,
) -> AttestationVerification:
    """Every attestation of the model checked; ``result.ok`` when one of ``predicate_type`` passes.

    Never raises on a failed check (``result.raise_if_failed()`` does).
    """
    from .predicates.types import resolve_predicate_type

    if policy is None:
        raise UsageError("no policy, no verification", hint="pass --key or --certificate-identity/--certificate-oidc-issuer")
    from .verify.attestation import collect_attestations

    uri = check_attestation_type(resolve_predicate_type(predicate_type))
    reference = _ref(ref)
    store = open_store(reference, options or StoreOptions())
    try:
        desc = store.resolve(reference.identifier)
        manifest = store.get_manifest(desc.digest)
        return collect_attestations(store, manifest.descriptor, policy, uri, predicate_policy)
    finally:
        _close(store)


def require_attestations(
    store: Any, subject: Any, policy: Policy, requirements: Sequence[tuple[str, PredicateCheck | None]]
) -> list[AttestationVerification]:
    """The deploy gate: every ``(type, check)`` must be met by a verified attestation, or raise.

    Called after the signature verified and before anything is downloaded.
    """
    from .predicates.policy import PredicatePolicy
    from .verify.attestation import collect_attestations

    results: list[AttestationVerification] = []
    for uri, check in requirements:
        predicate_policy = PredicatePolicy(checks=(check,)) if check is not None else None
        found = collect_attestations(store, subject, policy, uri, predicate_policy)
        found.raise_if_failed()
        results.append(found)
    return results


def parse_requirements(specs: Sequence[str]) -> list[tuple[str, PredicateCheck | None]]:
    """``--require-attestation TYPE[:EXPR]`` values, checked before any request."""
    from .predicates.policy import parse_requirement

    out: list[tuple[str, PredicateCheck | None]] = []
    for spec in specs:
        uri, check = parse_requirement(spec)
        out.append((check_attestation_type(uri), check))
    return out


__all__ = [
    "AttestResult",
    "AttestationVerification",
    "attest",
    "parse_requirements",
    "require_attestations",
    "verify_attestation",
]
