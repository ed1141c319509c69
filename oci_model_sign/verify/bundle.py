"""Verify one Sigstore bundle (cosign v3 image signature/attestation, or a model_signing
``model.sig``) against a policy, offline.

Everything read from the bundle is hostile until proven otherwise: it is size/depth bounded,
parsed strictly (unknown fields rejected, as cosign's ``protojson`` does), and any failure
becomes a clean ``CandidateResult`` reason — one candidate's garbage never stops the others.

Parse, then check: the bundle is first parsed into an untrusted record (its verification
material, tlog entries and the statement it claims: predicate type, subjects); the policy then
decides whether the signature holds, and the admission rule (``admission``) whether what it
signed admits a model. Key and certificate-chain bundles are checked here with
``cryptography`` (sigstore-python's ``Bundle`` insists on a Fulcio certificate); keyless
bundles go through sigstore-python's ``Verifier.verify_dsse`` (chain to Fulcio at the tlog/TSA
time, SCT, inclusion proof, SET).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

from cryptography import x509

from ..errors import OmsignError
from ..limits import default_limits, load_json
from ..oci.mediatypes import (
    BUNDLE_MEDIA_PREFIX,
    BUNDLE_MEDIA_TYPES,
    IN_TOTO_PAYLOAD_TYPE,
    IN_TOTO_STATEMENT_TYPES,
    MODEL_SIGNING_PREDICATE,
    MODEL_SIGNING_PREDICATE_COMPAT,
)
from ..signing.dsse import pae
from ..signing.keys import verify_bytes_signature
from ..sigstore_seam import bundle_log_entry
from .admission import MODEL_ADMITTING_PREDICATES, admission_problem
from .certs import describe_certificate, verify_chain
from .policy import (
    CertificateChainPolicy,
    IdentityPolicy,
    KeyPolicy,
    Policy,
    check_claim_annotations,
)
from .records import Material, UntrustedRecord, statement_claims
from .rejection import CandidateRejected
from .result import CandidateKind, CandidateResult
from .tlog import verify_bundle_tlog

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]+")

__all__ = ["pae", "verify_bundle", "verify_model_signature", "verify_model_signing_bundle"]


@dataclass
class VerifiedEnvelope:
    """A bundle whose DSSE signature satisfied the policy; the statement is not yet checked."""

    statement: dict[str, Any]
    signer: str
    integrated_time: int | None = None
    record: UntrustedRecord | None = None


@dataclass
class ModelSignature:
    """A verified model_signing ``model.sig``: what the signer vouched for."""

    result: CandidateResult
    root_digest: str
    resources: dict[str, str]  # relative POSIX path -> "<hash_type>:<hex>"
    hash_type: str
    ignore_paths: list[str] = field(default_factory=list)
    allow_symlinks: bool = False


# --------------------------------------------------------------------------------------------
# Envelope + signature
# --------------------------------------------------------------------------------------------


def _parse_bundle(bundle_bytes: bytes) -> Any:
    from sigstore_models.bundle.v1 import Bundle as BundleModel

    limits = default_limits()
    try:
        doc = load_json(bundle_bytes, max_bytes=limits.bundle_bytes, depth=limits.json_depth, what="bundle")
    except OmsignError as exc:
        raise CandidateRejected(exc.message) from exc
    if not isinstance(doc, dict):
        raise CandidateRejected("bundle is not a JSON object")
    media_type = doc.get("mediaType")
    if media_type not in BUNDLE_MEDIA_TYPES:
        if isinstance(media_type, str) and media_type.startswith(BUNDLE_MEDIA_PREFIX):
            raise CandidateRejected(f"bundle format {media_type} is too old: v0.3 is required (as cosign requires)")
        raise CandidateRejected(f"not a Sigstore bundle (mediaType {str(media_type)[:80]!r})")
    vm = doc.get("verificationMaterial")
    if isinstance(vm, dict) and "tlogEntries" not in vm:
        # protojson omits empty repeated fields, so a cosign --tlog-upload=false bundle has no
        # tlogEntries key; the pydantic model requires it.
        vm["tlogEntries"] = []
        bundle_bytes = json.dumps(doc).encode()
    try:
        return BundleModel.from_json(bundle_bytes)
    except ValueError as exc:
        first = str(exc).splitlines()
        detail = "; ".join(line.strip() for line in first[1:3]) if len(first) > 1 else str(exc)
        raise CandidateRejected(f"malformed bundle: {detail}") from exc


def _envelope(inner: Any) -> tuple[str, bytes, bytes]:
    env = inner.dsse_envelope
    if env is None:
        raise CandidateRejected("bundle does not contain a DSSE envelope (message signatures are not image signatures)")
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise CandidateRejected(f"DSSE payloadType is {env.payload_type!r}, expected {IN_TOTO_PAYLOAD_TYPE}")
    if len(env.signatures) != 1:
        raise CandidateRejected(f"DSSE envelope has {len(env.signatures)} signatures, exactly one is required")
    sig = bytes(env.signatures[0].sig)
    if not sig:
        raise CandidateRejected("DSSE signature is empty")
    return env.payload_type, bytes(env.payload), sig


def _tlog_time(inner: Any, root: Any, payload: bytes, sig: bytes, key: Any) -> int:
    entries = list(inner.verification_material.tlog_entries or [])
    return verify_bundle_tlog(entries, root, payload, sig, key)


def _verify_key(inner: Any, policy: KeyPolicy) -> tuple[bytes, str, int | None]:
    vm = inner.verification_material
    if vm.certificate is not None or vm.x509_certificate_chain is not None:
        raise CandidateRejected("expected key signature, not certificate")
    payload_type, payload, sig = _envelope(inner)
    key = policy.key()
    if not verify_bytes_signature(key, sig, pae(payload_type, payload)):
        raise CandidateRejected("DSSE signature does not verify with the given public key")
    when = None if policy.ignore_tlog else _tlog_time(inner, policy.root(), payload, sig, key)
    return payload, policy.fingerprint(), when


def _verify_identity(bundle_bytes: bytes, policy: IdentityPolicy) -> tuple[bytes, str, int | None]:
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle
    from sigstore.verify import Verifier

    try:
        bundle = Bundle.from_json(bundle_bytes)
    except SigstoreError as exc:
        raise CandidateRejected(f"keyless bundle is unusable: {exc}") from exc
    except ValueError as exc:
        raise CandidateRejected(f"keyless bundle is unusable: {str(exc).splitlines()[0]}") from exc
    try:
        verifier = Verifier(trusted_root=policy.root())
        _, payload = verifier.verify_dsse(bundle, policy.matcher())
    except SigstoreError as exc:
        raise CandidateRejected(f"keyless verification failed: {exc}") from exc
    except (ValueError, TypeError, x509.ExtensionNotFound) as exc:
        raise CandidateRejected(f"keyless verification failed: {exc}") from exc
    when = bundle_log_entry(bundle).integrated_time
    return bytes(payload), describe_certificate(bundle.signing_certificate), when


def _bundle_certificates(inner: Any) -> tuple[x509.Certificate, list[x509.Certificate]]:
    vm = inner.verification_material
    ders: list[bytes]
    if vm.certificate is not None:
        ders = [bytes(vm.certificate.raw_bytes)]
    elif vm.x509_certificate_chain is not None and vm.x509_certificate_chain.certificates:
        ders = [bytes(c.raw_bytes) for c in vm.x509_certificate_chain.certificates]
    else:
        raise CandidateRejected("expected a certificate in the bundle, found a public key")
    try:
        certs = [x509.load_der_x509_certificate(d) for d in ders]
    except ValueError as exc:
        raise CandidateRejected("bundle certificate is not valid DER") from exc
    return certs[0], certs[1:]


def _verify_cert_chain(inner: Any, policy: CertificateChainPolicy) -> tuple[bytes, str, int | None]:
    payload_type, payload, sig = _envelope(inner)
    leaf, extra = _bundle_certificates(inner)
    key: Any = leaf.public_key()
    when: int | None = None
    if not policy.ignore_tlog:
        when = _tlog_time(inner, policy.root(), payload, sig, key)
    at = datetime.fromtimestamp(when, tz=timezone.utc) if when else datetime.now(timezone.utc)
    verify_chain(leaf, extra + policy.intermediates(), policy.roots(), at, require_eku=False)
    policy.matcher().check(leaf)
    if not verify_bytes_signature(key, sig, pae(payload_type, payload)):
        raise CandidateRejected("DSSE signature does not verify with the certificate's key")
    return payload, describe_certificate(leaf), when


def parse_bundle_record(bundle_bytes: bytes, source: str) -> tuple[Any, UntrustedRecord]:
    """The parsed bundle and what it claims; nothing in the record is verified yet."""
    inner = _parse_bundle(bundle_bytes)
    payload_type, payload, _ = _envelope(inner)  # shape checks first, whatever the policy
    vm = inner.verification_material
    material: Material
    if vm.certificate is not None:
        material = "certificate"
    elif vm.x509_certificate_chain is not None:
        material = "certificate-chain"
    elif vm.public_key is not None:
        material = "public-key"
    else:
        material = "none"
    claimed: str | None = None
    if material == "public-key":
        claimed = f"key hint {vm.public_key.hint}" if vm.public_key.hint else "a public key"
    elif material != "none":
        try:
            leaf, _ = _bundle_certificates(inner)
            claimed = describe_certificate(leaf)
        except CandidateRejected:
            claimed = None
    statement, predicate_type, subjects = statement_claims(payload)
    record = UntrustedRecord(
        source=source, format="bundle", material=material, claimed_signer=claimed,
        payload_type=payload_type, payload=payload, statement=statement,
        predicate_type=predicate_type, subject_digests=subjects,
        tlog_entries=len(vm.tlog_entries or []),
    )
    return inner, record


def verify_envelope(bundle_bytes: bytes, policy: Policy, *, source: str = "bundle") -> VerifiedEnvelope:
    """Parse the bundle into a record, verify its DSSE signature (and tlog) against ``policy``,
    then require that the now-trusted payload is an in-toto statement.

    Raises ``CandidateRejected``; the statement's subject and type are not checked here.
    """
    inner, record = parse_bundle_record(bundle_bytes, source)
    if isinstance(policy, KeyPolicy):
        payload, signer, when = _verify_key(inner, policy)
    elif isinstance(policy, IdentityPolicy):
        payload, signer, when = _verify_identity(bundle_bytes, policy)
    elif isinstance(policy, CertificateChainPolicy):
        payload, signer, when = _verify_cert_chain(inner, policy)
    else:
        raise CandidateRejected(f"unsupported policy {type(policy).__name__}")
    if payload != record.payload:  # sigstore parsed the bundle itself for keyless
        raise CandidateRejected("verified payload differs from the bundle's envelope")
    limits = default_limits()
    try:
        statement = load_json(payload, max_bytes=limits.bundle_bytes, depth=limits.json_depth, what="in-toto statement")
    except OmsignError as exc:
        raise CandidateRejected(exc.message) from exc
    if not isinstance(statement, dict):
        raise CandidateRejected("signed payload is not an in-toto statement (not a JSON object)")
    if statement.get("_type") not in IN_TOTO_STATEMENT_TYPES:
        raise CandidateRejected(f"signed payload has _type {str(statement.get('_type'))[:80]!r}, not an in-toto statement")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects or not all(isinstance(s, dict) for s in subjects):
        raise CandidateRejected("in-toto statement has no subjects")
    return VerifiedEnvelope(statement, signer, when, record)


def _predicate_type(statement: dict[str, Any]) -> str | None:
    value = statement.get("predicateType")
    return value if isinstance(value, str) else None


def _subject_sha256(subject: dict[str, Any]) -> str | None:
    digest = subject.get("digest")
    if isinstance(digest, dict):
        value = digest.get("sha256")
        if isinstance(value, str):
            return value
    return None


def _string_annotations(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def verify_bundle(
    bundle_bytes: bytes,
    subject_digest: str,
    policy: Policy,
    *,
    source: str,
    predicate_types: tuple[str, ...] | None = MODEL_ADMITTING_PREDICATES,
) -> CandidateResult:
    """One cosign-style bundle candidate for the artifact ``subject_digest`` (``sha256:<hex>``).

    Passes when the DSSE signature satisfies ``policy``, the statement's predicate type is one
    of ``predicate_types`` (by default only cosign's ``sign/v1``: the admission rule; None
    accepts any, as ``cosign verify-attestation`` would), a statement subject has
    ``digest.sha256 == subject_digest`` and the policy's annotations equal that subject's
    ``annotations`` (cosign ``-a``). Never raises for bad input: the reason says what failed.
    """
    kind: CandidateKind = "cosign-bundle"
    predicate_type: str | None = None
    signer: str | None = None
    try:
        verified = verify_envelope(bundle_bytes, policy, source=source)
        signer = verified.signer
        predicate_type = _predicate_type(verified.statement)
        if predicate_type in (MODEL_SIGNING_PREDICATE, MODEL_SIGNING_PREDICATE_COMPAT):
            kind = "model-signing-bundle"
            raise CandidateRejected(
                "this is a model_signing signature over the model's files (root digest), not the "
                "manifest; it is checked against the layer digests instead"
            )
        problem = admission_problem(predicate_type, predicate_types)
        if problem is not None:
            raise CandidateRejected(problem)
        want = subject_digest.split(":", 1)[1] if subject_digest.startswith("sha256:") else subject_digest
        subjects = verified.statement["subject"]
        matching = [s for s in subjects if _subject_sha256(s) == want]
        if not matching:
            others = ", ".join(f"sha256:{_subject_sha256(s)}" for s in subjects if _subject_sha256(s)) or "no sha256 subject"
            raise CandidateRejected(f"signed another artifact: {others} (expected {subject_digest})")
        subject = matching[0]
        check_claim_annotations(policy.annotations, subject.get("annotations"), "signed subject annotations")
        return CandidateResult(
            source, True, "verified", signer, predicate_type,
            _string_annotations(subject.get("annotations")), kind, signed_at=verified.integrated_time,
        )
    except CandidateRejected as exc:
        return CandidateResult(source, False, str(exc), signer, predicate_type, {}, kind)
    except OmsignError:
        raise  # policy problems (unreadable key, bad trust root) are the user's, not the candidate's
    except Exception as exc:  # defensive: a parser corner we did not foresee must not stop the others
        return CandidateResult(source, False, f"unexpected error checking this bundle: {type(exc).__name__}: {exc}", signer, predicate_type, {}, kind)


def _valid_resource_name(name: str) -> bool:
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return False
    parts = name.split("/")
    return all(p not in ("", ".", "..") for p in parts)


def verify_model_signature(
    bundle_bytes: bytes, policy: Policy, *, source: str = "model.sig"
) -> ModelSignature:
    """Verify a model_signing v1.0 bundle and return the resources it vouches for.

    Raises ``CandidateRejected``. Only ``files`` serialization is supported (not ``shards``).
    The root digest is recomputed exactly as model_signing does: sha256 over the raw resource
    digests in ``PurePosixPath`` order (component-wise, not code-point order).
    """
    verified = verify_envelope(bundle_bytes, policy, source=source)
    statement = verified.statement
    predicate_type = _predicate_type(statement)
    if predicate_type == MODEL_SIGNING_PREDICATE_COMPAT:
        raise CandidateRejected("model_signing v0.2 signatures (Digests/v0.1) are not supported; re-sign with model_signing ≥ 1.0")
    if predicate_type != MODEL_SIGNING_PREDICATE:
        raise CandidateRejected(f"not a model_signing signature (predicateType {predicate_type!r})")
    subjects = statement["subject"]
    if len(subjects) != 1:
        raise CandidateRejected(f"model_signing statement has {len(subjects)} subjects, exactly one is required")
    root_hex = _subject_sha256(subjects[0])
    if root_hex is None or not _HEX64.fullmatch(root_hex):
        raise CandidateRejected("model_signing subject has no sha256 root digest")
    check_claim_annotations(policy.annotations, subjects[0].get("annotations"), "signed subject annotations")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise CandidateRejected("model_signing statement has no predicate")
    ser = predicate.get("serialization")
    if not isinstance(ser, dict):
        raise CandidateRejected("model_signing predicate has no serialization")
    method = ser.get("method")
    if method != "files":
        raise CandidateRejected(f"model_signing serialization {method!r} is not supported (only 'files')")
    hash_type = ser.get("hash_type")
    if hash_type not in ("sha256", "blake2b"):
        raise CandidateRejected(f"model_signing hash type {hash_type!r} is not supported (sha256, blake2b)")
    raw_resources = predicate.get("resources")
    if not isinstance(raw_resources, list):
        raise CandidateRejected("model_signing predicate has no resources list")
    resources: dict[str, str] = {}
    for item in raw_resources:
        if not isinstance(item, dict):
            raise CandidateRejected("model_signing resource is not an object")
        name, alg, digest = item.get("name"), item.get("algorithm"), item.get("digest")
        if not isinstance(name, str) or not _valid_resource_name(name):
            raise CandidateRejected(f"model_signing resource name {str(name)[:80]!r} is not a safe relative path")
        if alg != hash_type:
            raise CandidateRejected(f"resource {name!r} uses {alg!r}, expected {hash_type!r}")
        if not isinstance(digest, str) or not _HEX.fullmatch(digest) or len(digest) % 2:
            raise CandidateRejected(f"resource {name!r} has a malformed digest")
        if name in resources:
            raise CandidateRejected(f"resource {name!r} is listed twice")
        resources[name] = f"{hash_type}:{digest}"
    ordered = sorted(resources, key=PurePosixPath)
    root = hashlib.sha256(b"".join(bytes.fromhex(resources[n].split(":", 1)[1]) for n in ordered)).hexdigest()
    if root != root_hex:
        raise CandidateRejected(f"resources do not add up to the signed root digest sha256:{root_hex}")
    ignore = ser.get("ignore_paths")
    ignore_paths = [p for p in ignore if isinstance(p, str)] if isinstance(ignore, list) else []
    result = CandidateResult(
        source, True, "verified", verified.signer, predicate_type,
        _string_annotations(subjects[0].get("annotations")), "model-signing-bundle",
    )
    return ModelSignature(result, f"sha256:{root_hex}", resources, str(hash_type), ignore_paths, ser.get("allow_symlinks") is True)


def _is_under(path: str, ignore: str) -> bool:
    ignore = ignore.rstrip("/")
    return bool(ignore) and (path == ignore or path.startswith(ignore + "/"))


def compare_resources(expected: dict[str, str], actual: dict[str, str], what: str) -> str | None:
    """None when equal, else one line naming missing, extra and mismatched files."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(n for n in set(expected) & set(actual) if expected[n] != actual[n])
    if not (missing or extra or changed):
        return None

    def some(names: list[str]) -> str:
        shown = ", ".join(names[:5])
        return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")

    parts = []
    if changed:
        parts.append(f"{len(changed)} modified: {some(changed)}")
    if missing:
        parts.append(f"{len(missing)} missing from {what}: {some(missing)}")
    if extra:
        parts.append(f"{len(extra)} not signed: {some(extra)}")
    return "model files do not match the signature: " + "; ".join(parts)


def verify_model_signing_bundle(
    bundle_bytes: bytes,
    policy: Policy,
    *,
    layer_digests: dict[str, str] | None,
    source: str = "model.sig",
) -> tuple[CandidateResult, dict[str, str]]:
    """Verify a model_signing bundle; with ``layer_digests`` (relative path -> ``sha256:<hex>``
    from the model manifest) also require that the files it signed are exactly the layers.

    Returns the verdict and the signed resources (path -> ``<hash_type>:<hex>``; empty when the
    bundle could not be verified). Never raises for bad input.
    """
    try:
        sig = verify_model_signature(bundle_bytes, policy, source=source)
        if layer_digests is not None:
            if sig.hash_type != "sha256":
                raise CandidateRejected(f"model was signed with {sig.hash_type} file digests, which cannot be compared with sha256 layer digests")
            # model_signing leaves the paths its bundle records as ignored (git files, the
            # signature itself, the signer's own) out of the resources: so must the comparison.
            considered = {
                name: digest for name, digest in layer_digests.items()
                if not any(_is_under(name, ig) for ig in sig.ignore_paths)
            }
            problem = compare_resources(sig.resources, considered, "the manifest")
            if problem:
                raise CandidateRejected(problem)
        return sig.result, sig.resources
    except CandidateRejected as exc:
        return CandidateResult(source, False, str(exc), None, None, {}, "model-signing-bundle"), {}
    except OmsignError:
        raise
    except Exception as exc:
        return CandidateResult(source, False, f"unexpected error checking this bundle: {type(exc).__name__}: {exc}", None, None, {}, "model-signing-bundle"), {}
