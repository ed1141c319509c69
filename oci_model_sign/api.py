"""The Python API: what the CLI does, as functions with typed results.

Model hubs and ML frameworks call these; the CLI is a thin layer over them. Nothing here
prints or exits: failures are ``errors.OmsignError`` subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError, UsageError, VerificationError
from .reference import Reference, parse_reference
from .signing.modelsig import DEFAULT_SIGNATURE_NAME
from .store import open_store
from .store.base import Store, StoreOptions

if TYPE_CHECKING:  # the engines load on first use: `omsign sign` needs none of them
    from .model.pack import PackOptions
    from .progress import Reporter
    from .signing.signers import Signer
    from .transfer import PullResult, PushResult
    from .trust import TrustOutcome
    from .verify.policy import Policy
    from .verify.result import VerificationResult

MODEL_SIG_NAME = DEFAULT_SIGNATURE_NAME  # where pull --verify writes the model-signing bundle


def _ref(ref: str | Reference) -> Reference:
    return parse_reference(ref) if isinstance(ref, str) else ref


def push(
    model_dir: str | Path,
    ref: str | Reference,
    *,
    options: StoreOptions | None = None,
    pack_options: PackOptions | None = None,
    use_cache: bool = True,
    reporter: Reporter | None = None,
    mount_from: list[str] | None = None,
) -> PushResult:
    """Pack a model folder (one layer per file, ModelPack) and push it to a registry or layout.

    ``mount_from``: repositories on the same registry to mount existing blobs from.
    """
    from .model.digestcache import DigestCache
    from .model.pack import PackOptions
    from .transfer import push_model

    reference = _ref(ref)
    options = options or StoreOptions()
    pack = pack_options or PackOptions()
    pack.use_cache = use_cache and pack.use_cache
    store = open_store(reference, options, create=True)
    from .mounts import PushHints

    hints = PushHints(store, reference, use_cache=pack.use_cache)
    try:
        result = push_model(
            Path(model_dir),
            reference,
            store,
            pack=pack,
            cache=DigestCache() if pack.use_cache else None,
            concurrency=options.concurrency,
            reporter=reporter,
            small_max=options.monolithic_max,
            mount_from=mount_from,
            hooks=hints,
        )
        hints.record(result)
        return result
    finally:
        hints.close()
        _close(store)


def ensure_can_sign(signer: Signer) -> None:
    """Fail now, not after an upload, if ``signer`` cannot sign: a key that does not load or
    decrypt, or keyless signing without any identity token.

    ``push --sign`` calls this before it uploads or tags anything. A signer may offer a
    ``ready()`` method that does the check; otherwise a key signer's key is loaded and a keyless
    signer's token looked up (and kept, so an interactive sign-in happens once).
    """
    ready = getattr(signer, "ready", None)
    if callable(ready):
        ready()
        return
    if hasattr(type(signer), "key"):
        _ = signer.key  # type: ignore[attr-defined]  # loads and decrypts, raising InputError
        return
    token = getattr(signer, "_token", None)
    if callable(token):
        raw = token()  # explicit token, ambient CI credentials, or the browser flow
        from sigstore.oidc import IdentityToken

        try:
            IdentityToken(raw)  # a JWT with the claims Fulcio needs, not yet expired
        except Exception as exc:  # IdentityError or a JWT decoding error
            raise InputError(f"the identity token is not usable: {exc}") from exc
        if hasattr(signer, "_raw_token"):
            signer._raw_token = raw


def check_login(registry: str, options: StoreOptions) -> None:
    """Ask ``registry`` whether the credentials in ``options`` are accepted (``omsign login``).

    Raises ``AuthError`` when they are refused; nothing is stored here.
    """
    store = open_store(parse_reference(f"{registry}/omsign-login-check"), options)
    try:
        check = getattr(store, "check_auth", None)
        if callable(check):
            check()
    finally:
        _close(store)


def _close(store: Store) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


@dataclass
class InspectResult:
    reference: str
    digest: str
    media_type: str
    artifact_type: str | None
    size: int
    files: list[dict[str, Any]] = field(default_factory=list)
    referrers: list[dict[str, Any]] = field(default_factory=list)
    legacy_signatures: int = 0
    annotations: dict[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"InspectResult(reference={self.reference!r}, files={len(self.files)}, "
            f"referrers={len(self.referrers)}, legacy_signatures={self.legacy_signatures})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "size": self.size,
            "annotations": self.annotations,
            "files": self.files,
            "referrers": self.referrers,
            "legacySignatures": self.legacy_signatures,
            "manifest": self.manifest,
        }


def inspect(ref: str | Reference, *, options: StoreOptions | None = None) -> InspectResult:
    """Manifest, files, sizes, media types and referrers of a model, without downloading it."""
    import json

    from .signing.attach import read_legacy_layers
    from .store.referrers import list_referrers
    from .transfer import read_model

    reference = _ref(ref)
    store = open_store(reference, options or StoreOptions())
    try:
        desc = store.resolve(reference.identifier)
        manifest, model = read_model(store, desc.digest)
        value = json.loads(manifest.data)
        files = [
            {
                "path": str(e.path),
                "digest": e.descriptor.digest,
                "size": e.descriptor.size,
                "mediaType": e.descriptor.media_type,
                "kind": e.kind,
            }
            for e in model.files
        ]
        referrers = [
            {
                "digest": r.digest,
                "artifactType": r.artifact_type,
                "size": r.size,
                "annotations": r.annotations or {},
            }
            for r in list_referrers(store, desc.digest)
        ]
        legacy = len(read_legacy_layers(store, desc.digest))
        return InspectResult(
            reference=str(reference.pinned(desc.digest)),
            digest=desc.digest,
            media_type=manifest.media_type,
            artifact_type=value.get("artifactType"),
            size=len(manifest.data),
            files=files,
            referrers=referrers,
            legacy_signatures=legacy,
            annotations=value.get("annotations") or {},
            manifest=value,
        )
    finally:
        _close(store)


def pull(
    ref: str | Reference,
    dest: str | Path,
    *,
    policy: Policy | None = None,
    include: list[str] | None = None,
    options: StoreOptions | None = None,
    write_model_sig: bool = True,
    reporter: Reporter | None = None,
    force: bool = False,
    policy_file: str | Path | None = None,
    require_policy: bool = False,
    require_attestations: list[Any] | None = None,
) -> PullResult:
    """Pull a model into ``dest``, verified before any layer is downloaded.

    Who must have signed: ``policy`` (a verifier policy, what cosign-style flags build) when
    given; else the trust policy file (``policy_file``, ``$OMSIGN_POLICY``, the user's, the
    system's; ``"none"`` opts out) when one of its scopes matches: an enforce-mode scope
    refuses a model it does not admit (``VerificationError``), a warn-mode one lets it through
    with the failure in ``result.trust.reason``. ``require_policy`` (``--verify``) refuses to
    pull when neither applies.

    The tag is resolved once; everything after uses that digest, so a tag moved between
    verification and download cannot swap the model. ``dest`` must be absent or empty, unless
    ``force``: then its contents are replaced by the verified model in one swap.
    ``require_attestations`` (``attestations.parse_requirements``) must each be met by an attestation
    that verifies by the same ``policy``, also before any layer is downloaded.
    """
    from .model.staging import check_destination
    from .model.unpack import layer_digests, parse_pulled_model
    from .transfer import pull_model, with_config
    from .trust import enforce_policy_file, load_in_force
    from .verify.discover import discover

    reference = _ref(ref)
    options = options or StoreOptions()
    if require_attestations and policy is None:
        raise UsageError("--require-attestation needs a policy (--verify with --key or an identity)")
    check_destination(Path(dest), replace=force)  # before any request
    loaded, why = (None, "") if policy is not None else load_in_force(policy_file)  # a bad file: exit 2 now
    if policy is None and loaded is None and require_policy:
        raise UsageError(
            "no policy, no verification",
            hint="pass --key PUB, or --certificate-identity and --certificate-oidc-issuer, or --policy FILE",
        )
    store = open_store(reference, options)
    try:
        desc = store.resolve(reference.identifier)
        manifest = store.get_manifest(desc.digest)  # by digest: bytes checked against it
        model = parse_pulled_model(manifest.data, store.limits, what=str(reference))
        verification = None
        trust = None
        model_sig: bytes | None = None
        extra: dict[str, bytes] = {}
        # The signature is checked before anything else is downloaded, config included.
        if policy is not None:
            found = discover(store, manifest.descriptor, policy, layer_digests=layer_digests(model))
            verification = found.result
            verification.raise_if_failed()
            if require_attestations:
                from .attestations import require_attestations as _require

                _require(store, manifest.descriptor, policy, require_attestations)
            model_sig = found.model_signing_bundle
        elif loaded is not None or require_policy:
            trust = enforce_policy_file(
                store, reference, manifest.descriptor, loaded, why=why, layer_digests=layer_digests(model),
                required=require_policy,
            )
            verification = trust.verification
            model_sig = trust.model_signing_bundle if trust.allowed and not trust.warned else None
        if write_model_sig and model_sig is not None and verification is not None:
            from .verify.discover import model_sig_placement

            skipped = model_sig_placement(model, include)
            if skipped is None:
                extra[MODEL_SIG_NAME] = model_sig
            else:
                verification.notes.append(skipped)
        model = with_config(store, manifest, model)
        result = pull_model(
            store,
            reference,
            manifest,
            model,
            Path(dest),
            include=include,
            concurrency=options.concurrency,
            reporter=reporter,
            extra_files=extra,
            replace=force,
        )
        result.verification = verification
        result.trust = trust
        return result
    finally:
        _close(store)


@dataclass
class SignResult:
    reference: str
    digest: str
    signatures: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        formats = ", ".join(str(s.get("format")) for s in self.signatures)
        return f"SignResult(reference={self.reference!r}, signatures=[{formats}])"

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "signatures": self.signatures,
            "notes": self.notes,
        }


def sign(
    ref: str | Reference,
    signer: Signer,
    *,
    options: StoreOptions | None = None,
    annotations: dict[str, str] | None = None,
    format: str = "bundle",
    model_signing_bundle: bool = True,
    output_bundle: str | Path | None = None,
) -> SignResult:
    """Sign a model's manifest digest and attach the signature(s) to it.

    Signing never downloads or re-hashes the model: the cosign statement names the manifest
    digest, and the model-signing statement is built from the layer digests in the manifest.
    """
    from .model.unpack import parse_model_manifest, raw_files
    from .oci.mediatypes import ANNOTATION_SIGNATURE as _SIG
    from .oci.mediatypes import COSIGN_SIGN_PREDICATE, MODEL_SIGNING_PREDICATE
    from .signing.attach import attach_bundles, attach_legacy
    from .signing.modelsig import model_signing_statement
    from .signing.statements import (
        cosign_docker_reference,
        cosign_sign_statement,
        simple_signing_payload,
    )

    if format not in ("bundle", "legacy", "both"):
        raise UsageError(f"unknown signature format {format!r}: use bundle, legacy or both")
    reference = _ref(ref)
    annotations = dict(annotations or {})
    store = open_store(reference, options or StoreOptions())
    try:
        desc = store.resolve(reference.identifier)
        manifest = store.get_manifest(desc.digest)  # the bytes whose digest is signed
        model = parse_model_manifest(manifest.data, store.limits)
        subject = manifest.descriptor
        result = SignResult(reference=str(reference.pinned(desc.digest)), digest=desc.digest)
        bundles: list[tuple[bytes, str]] = []
        if format in ("bundle", "both"):
            bundle = signer.sign_dsse(cosign_sign_statement(desc.digest, annotations))
            bundles.append((bundle, COSIGN_SIGN_PREDICATE))
            if output_bundle is not None:
                Path(output_bundle).write_bytes(bundle)
        if model_signing_bundle and format == "legacy":
            # cosign >= 2.6.3 reads bundle referrers first and never reaches the .sig tag when
            # one exists: a legacy-only signature must leave no bundle referrer behind.
            result.notes.append(
                "no model-signing bundle: --format legacy attaches no bundle referrer, so that "
                "cosign reads the .sig signature (use --format both for model.sig on pull)"
            )
        elif model_signing_bundle:
            files = raw_files(model)
            if files is None:
                result.notes.append(
                    "no model-signing bundle: the model has tar layers, whose files' digests the "
                    "manifest does not list"
                )
            else:
                name = reference.repository.rsplit("/", 1)[-1]
                statement = model_signing_statement(name, files)
                bundles.append((signer.sign_dsse(statement, for_model_signing=True), MODEL_SIGNING_PREDICATE))
        if bundles:
            for (_, predicate), digest in zip(bundles, attach_bundles(store, subject, bundles), strict=True):
                kind = "bundle" if predicate == COSIGN_SIGN_PREDICATE else "model-signing"
                result.signatures.append({"format": kind, "predicateType": predicate, "referrer": digest})
        if format in ("legacy", "both"):
            docker_reference = (
                reference.repo_name if reference.is_layout
                else cosign_docker_reference(reference.registry, reference.repository)
            )
            payload = simple_signing_payload(docker_reference, desc.digest, annotations)
            layer_annotations = signer.sign_simple(payload).annotations()
            digest = attach_legacy(store, desc.digest, payload, layer_annotations)
            result.signatures.append({"format": "legacy", "manifest": digest, "signature": layer_annotations[_SIG][:16] + "…"})
        return result
    finally:
        _close(store)


def verify(
    ref: str | Reference,
    policy: Policy | None = None,
    *,
    options: StoreOptions | None = None,
    policy_file: str | Path | None = None,
) -> VerificationResult:
    """Check the signatures of a model against ``policy``; returns a ``VerificationResult``.

    Without ``policy``, the trust policy file decides (``policy_file``, ``$OMSIGN_POLICY``,
    the user's, the system's): the result is ``ok`` only when the scope admits the model
    (a warn-mode scope's failure is ``ok`` with the failure in ``notes``); no policy at all,
    or no scope for the model, is a ``UsageError``. Never raises on a failed verification:
    callers look at ``result.ok`` (or call ``result.raise_if_failed()``).
    """
    return verify_with_trust(ref, policy, options=options, policy_file=policy_file)[0]


def verify_with_trust(
    ref: str | Reference,
    policy: Policy | None = None,
    *,
    options: StoreOptions | None = None,
    policy_file: str | Path | None = None,
) -> tuple[VerificationResult, TrustOutcome | None]:
    """``verify``, plus the policy file's ``TrustOutcome`` when the file decided."""
    from .model.unpack import layer_digests
    from .transfer import read_model
    from .trust import judge_reference, load_in_force
    from .verify.discover import discover
    from .verify.result import VerificationResult

    loaded, why = (None, "") if policy is not None else load_in_force(policy_file)
    if policy is None and loaded is None:
        raise UsageError(
            "no policy, no verification",
            hint="pass --key or --certificate-identity/--certificate-oidc-issuer, or --policy FILE",
        )
    reference = _ref(ref)
    store = open_store(reference, options or StoreOptions())
    try:
        desc = store.resolve(reference.identifier)
        manifest, model = read_model(store, desc.digest)
        if policy is not None:
            return discover(store, manifest.descriptor, policy, layer_digests=layer_digests(model)).result, None
        trust = judge_reference(store, reference, manifest.descriptor, loaded, why=why, layer_digests=layer_digests(model))
        if not trust.applies:
            raise UsageError(trust.reason, hint="pass --key/--certificate-identity, or a policy with a scope for this model")
        result = trust.verification or VerificationResult(desc.digest, False, None, [])
        if trust.warned:
            result.notes.append(trust.reason)
        if trust.allowed and not result.ok:
            result = VerificationResult(result.subject_digest, True, result.accepted, result.candidates, result.notes)
        elif not trust.allowed and result.ok:
            # A genuine signature the policy does not admit (revoked, threshold unmet).
            result = VerificationResult(result.subject_digest, False, None, result.candidates, [*result.notes, trust.reason])
        return result, trust
    finally:
        _close(store)


from .promote import CopyResult, copy, list_tags, tag  # noqa: E402, F401  (re-exported: promotion has its own module)

__all__ = [
    "InspectResult",
    "PullResult",
    "PushResult",
    "SignResult",
    "VerificationError",
    "check_login",
    "ensure_can_sign",
    "inspect",
    "pull",
    "push",
    "sign",
    "verify",
]
