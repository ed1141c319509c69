"""Find every signature of a manifest digest in a store and check each against a policy.

Candidates come from the referrers API, the ``sha256-<hex>`` fallback index and cosign's
legacy ``.sig`` tag. Each is checked on its own; one that is garbage never stops the others.
Success needs a signature over the *manifest digest* whose statement admits a model
(``admission``: cosign's ``sign/v1`` bundle, or a legacy simple-signing payload): a
model-signing bundle signs the files, not the manifest, so it is checked and reported (and
kept for ``model.sig``) but does not by itself admit a model.

Precedence follows cosign (>= 2.6.3 and v3): bundle referrers first, the legacy ``.sig`` tag
only when no bundle referrer exists. omsign still reads the ``.sig`` tag when bundles exist,
but a model admitted only by it then carries a note: cosign would not have looked there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError, IntegrityError, LimitError, NotFoundError, OmsignError
from ..limits import Limits, load_json
from ..oci.descriptor import Descriptor
from ..oci.mediatypes import (
    ANNOTATION_PREDICATE,
    BUNDLE_MEDIA_PREFIX,
    MODEL_SIGNING_PREDICATE,
    SIMPLE_SIGNING_MEDIA_TYPE,
)
from ..reference import legacy_signature_tag
from ..signing.modelsig import DEFAULT_SIGNATURE_NAME
from ..store.base import Store
from ..store.referrers import list_referrers
from .bundle import verify_bundle, verify_model_signing_bundle
from .legacy import verify_simple_signing
from .policy import Policy
from .result import CandidateResult, VerificationResult

if TYPE_CHECKING:
    from ..model.unpack import ModelManifest

MODEL_SIG_NAME = DEFAULT_SIGNATURE_NAME


@dataclass
class Discovery:
    """The verdict plus the model-signing bundle that verified, for ``model.sig``."""

    result: VerificationResult
    model_signing_bundle: bytes | None = None


def referrer_bundle(store: Store, desc: Descriptor) -> tuple[Descriptor, dict[str, Any]] | None:
    """(bundle layer, manifest) of a referrer holding exactly one Sigstore bundle, else None.

    The one reader of referrer manifests: verification, the trust policy, attestations, the
    audit and ``tree`` all look at a referrer through it, so they agree on what a bundle is.
    """
    data = store.get_manifest(desc.digest).data
    value = load_json(
        data, max_bytes=store.limits.manifest_bytes, depth=store.limits.json_depth, what="referrer manifest"
    )
    if not isinstance(value, dict):
        raise IntegrityError("referrer manifest is not a JSON object")
    layers = value.get("layers")
    if not isinstance(layers, list) or len(layers) != 1:
        return None
    layer = Descriptor.from_json(layers[0], what="referrer layer")
    if not layer.media_type.startswith(BUNDLE_MEDIA_PREFIX):
        return None
    return layer, value


def bundle_layer(store: Store, desc: Descriptor) -> tuple[Descriptor, dict[str, str]] | None:
    """The single bundle layer of a referrer manifest and its string annotations, or None."""
    found = referrer_bundle(store, desc)
    if found is None:
        return None
    layer, manifest = found
    annotations = manifest.get("annotations")
    ann = {k: v for k, v in annotations.items() if isinstance(v, str)} if isinstance(annotations, dict) else {}
    return layer, ann


def discover(
    store: Store,
    subject: Descriptor,
    policy: Policy,
    *,
    layer_digests: dict[str, str] | None = None,
) -> Discovery:
    """Check every signature of ``subject`` (a manifest) against ``policy``."""
    limits = store.limits
    candidates: list[CandidateResult] = []
    model_sig: bytes | None = None
    bundle_referrers = 0
    files_policy = policy.for_model_signing()  # no -a claims, no tlog: see Policy
    for ref_desc in list_referrers(store, subject.digest):
        source = f"referrer {ref_desc.digest}"
        try:
            found = bundle_layer(store, ref_desc)
            if found is None:
                continue  # another kind of referrer (SBOM, model card...): not a signature
            layer, annotations = found
            bundle_referrers += 1
            bundle = store.read_blob(layer, limits.bundle_bytes)
            if annotations.get(ANNOTATION_PREDICATE) == MODEL_SIGNING_PREDICATE:
                result, _ = verify_model_signing_bundle(
                    bundle, files_policy, layer_digests=layer_digests, source=source
                )
                candidates.append(result)
                if result.ok and model_sig is None:
                    model_sig = bundle
                continue
            candidates.append(verify_bundle(bundle, subject.digest, policy, source=source))
        except (IntegrityError, LimitError, NotFoundError) as exc:
            candidates.append(CandidateResult(source=source, ok=False, reason=exc.one_line()))
    # cosign reads the legacy tag only when no bundle exists; omsign reads both so that a
    # model signed with --format legacy verifies, and reports which one satisfied the policy.
    tag = legacy_signature_tag(subject.digest)
    try:
        sig_manifest = store.get_manifest(tag).data
    except NotFoundError:
        sig_manifest = None
    if sig_manifest is not None:
        candidates.extend(_legacy_candidates(store, sig_manifest, subject, policy, tag))
    accepted = next((c for c in candidates if c.ok and c.kind != "model-signing-bundle"), None)
    verdict = VerificationResult(
        subject_digest=subject.digest, ok=accepted is not None, accepted=accepted, candidates=candidates
    )
    if accepted is not None and accepted.kind == "legacy" and bundle_referrers:
        verdict.notes.append(
            f"admitted by the legacy {tag} signature, but {bundle_referrers} bundle referrer(s) "
            "exist: cosign (>= 2.6.3, v3) reads only the bundles then, so `cosign verify` "
            "would not accept this model"
        )
    return Discovery(result=verdict, model_signing_bundle=model_sig)


def model_sig_placement(model: ModelManifest, include: list[str] | None) -> str | None:
    """Why ``model.sig`` cannot be written into this pull's DEST (None when it can).

    ``model.sig`` signs every file: a subset pulled with ``--include`` would not verify
    against it. It is never written over a file of the model: a raw layer of that name is
    refused before download (``InputError``); a tar layer's member names are known only on
    extraction, so a model with tar layers gets no ``model.sig`` at all.
    """
    if include:
        return (
            f"{MODEL_SIG_NAME} not written: --include pulls a subset of the files, and the "
            "model-signing signature covers them all"
        )
    if any(str(e.path) == MODEL_SIG_NAME for e in model.files if not e.is_tar):
        raise InputError(
            f"the model has its own file named {MODEL_SIG_NAME}, where the model-signing "
            "signature would be written",
            hint="pull with --no-model-signing-bundle to keep the model's own file",
        )
    if any(e.is_tar for e in model.files):
        return (
            f"{MODEL_SIG_NAME} not written: the model has tar layers, whose file names are "
            f"known only on extraction, so a {MODEL_SIG_NAME} could overwrite one of them"
        )
    return None


def legacy_layers(data: bytes, limits: Limits, tag: str, kind: str = "signatures") -> list[Any]:
    """The layer entries of a cosign ``.sig``/``.att`` manifest, bounded by ``limits.referrers``.

    The one reader of legacy tag manifests for verification, attestations, the trust policy and
    the audit; raises ``IntegrityError`` for what is not an image manifest, ``LimitError``
    above the bound.
    """
    value = load_json(data, max_bytes=limits.manifest_bytes, depth=limits.json_depth, what=f"{tag} manifest")
    layers = value.get("layers") if isinstance(value, dict) else None
    if not isinstance(layers, list):
        raise IntegrityError(f"{tag} is not an image manifest")
    if len(layers) > limits.referrers:
        raise LimitError(f"{tag} holds {len(layers)} {kind}, over the limit of {limits.referrers}")
    return layers


def _legacy_candidates(
    store: Store, data: bytes, subject: Descriptor, policy: Policy, tag: str
) -> list[CandidateResult]:
    limits = store.limits
    out: list[CandidateResult] = []
    try:
        layers = legacy_layers(data, limits, tag)
    except (IntegrityError, LimitError) as exc:
        return [CandidateResult(source=tag, ok=False, reason=exc.one_line())]
    for i, raw in enumerate(layers):
        source = f"{tag} layer {i}"
        try:
            layer = Descriptor.from_json(raw, what=source)
            if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE:
                out.append(CandidateResult(source=source, ok=False, reason=f"not a signature ({layer.media_type})"))
                continue
            payload = store.read_blob(layer, limits.signature_payload_bytes)
            out.append(verify_simple_signing(payload, dict(layer.annotations or {}), subject.digest, policy, source=source))
        except OmsignError as exc:
            out.append(CandidateResult(source=source, ok=False, reason=exc.one_line()))
    return out
