"""The audit walk: repositories, tags, model digests, their signatures and the policy verdict.

Discovery and verification are the verifier's own (``store.referrers``, ``verify.discover``);
this module only decides what to look at and keeps the results. Work is spread over ``jobs``
threads on one ``RegistrySession`` per host (one client, one token cache), and every list a
registry controls is bounded: repositories (``max_repositories``), tags per repository
(``max_tags``), referrers per model (``Limits.referrers``). Past a bound the audit stops with a
``LimitError`` rather than report a partial picture as if it were whole.

A failure confined to one repository or model (a manifest gone between listing and reading,
a broken referrer) is recorded in ``AuditReport.errors`` and the walk goes on; a registry
that cannot be reached at all ends the audit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from ..errors import AuthError, InputError, IntegrityError, LimitError, NotFoundError, UsageError
from ..limits import load_json
from ..oci.descriptor import Descriptor, ManifestData
from ..oci.mediatypes import (
    ANNOTATION_PREDICATE,
    SIMPLE_SIGNING_MEDIA_TYPE,
)
from ..policyfile import Authority, Decision, ScopePolicy, TrustPolicy
from ..reference import Reference, canonical_registry, legacy_signature_tag, parse_reference
from ..store.base import StoreOptions
from ..store.registry import RegistryStore
from ..store.session import RegistrySession
from ..trust import PolicyCache, judge
from ..verify.discover import bundle_layer, legacy_layers
from .catalog import list_repositories
from .claims import SignatureClaim, parse_bundle_claim, parse_legacy_claim

MAX_REPOSITORIES = 10_000
MAX_TAGS = 1_000
# Tags that hold signatures and referrer indexes (cosign's and the referrers tag schema), not models.
_SIGNATURE_TAG_RE = re.compile(r"^sha256-[0-9a-f]{64}(?:\.[a-z]+)?$")


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


@dataclass(frozen=True)
class Verifiers:
    """How the current policy is applied: a policy file's scopes, or one flag-built scope."""

    policy: TrustPolicy | None = None
    flag_scope: ScopePolicy | None = None
    source: str | None = None

    def scope_for(self, reference: str) -> ScopePolicy | None:
        if self.flag_scope is not None:
            return self.flag_scope
        if self.policy is None:
            return None
        found = self.policy.scope_for(reference)
        return found[1] if found is not None else None


def make_policy(options: dict[str, Any]) -> Any:
    """The verifier's policy object for one authority's options (named as the CLI flags)."""
    from ..verify.policy import policy_from_options

    return policy_from_options(**options)


def flag_scope(authority_options: dict[str, Any]) -> ScopePolicy:
    """A one-authority scope from cosign-style flags, so flags and files are judged alike."""
    from ..verify.policy import key_fingerprint, load_public_key

    key = authority_options.get("key")
    if key is not None:
        auth = Authority(
            name="--key",
            kind="key",
            key_path=Path(key),
            fingerprint=key_fingerprint(load_public_key(Path(key))),
            trust_config=Path(authority_options["trust_config"]) if authority_options.get("trust_config") else None,
            ignore_tlog=bool(authority_options.get("insecure_ignore_tlog")),
        )
    else:
        kind: Literal["x509", "keyless"] = "x509" if authority_options.get("ca_roots") else "keyless"
        make_policy(authority_options)  # flag combinations the verifier refuses are usage errors now
        auth = Authority(
            name="--ca-roots" if kind == "x509" else "--certificate-identity",
            kind=kind,
            identity=authority_options.get("certificate_identity"),
            identity_regexp=authority_options.get("certificate_identity_regexp"),
            issuer=authority_options.get("certificate_oidc_issuer"),
            issuer_regexp=authority_options.get("certificate_oidc_issuer_regexp"),
            ca_roots=Path(authority_options["ca_roots"]) if kind == "x509" else None,
            intermediates=Path(authority_options["certificate_chain"]) if authority_options.get("certificate_chain") else None,
            trust_config=Path(authority_options["trust_config"]) if authority_options.get("trust_config") else None,
            staging=bool(authority_options.get("staging")),
            offline=bool(authority_options.get("offline")),
            ignore_tlog=bool(authority_options.get("insecure_ignore_tlog")),
        )
    return ScopePolicy(
        name="flags",
        pattern=None,
        authorities=(auth,),
        annotations=dict(authority_options.get("annotations") or {}),
    )


# -- targets ----------------------------------------------------------------------------------
def parse_targets(targets: Iterable[str]) -> dict[str, list[Reference] | None]:
    """host -> explicit repositories, or None for "walk the catalog"."""
    out: dict[str, list[Reference] | None] = {}
    for text in targets:
        text = text.strip().rstrip("/")
        for prefix in ("https://", "http://"):
            text = text.removeprefix(prefix)
        if not text:
            raise UsageError("an empty audit target", hint="pass REGISTRY or REGISTRY/REPO")
        if "/" not in text:
            ref = parse_reference(f"{text}/catalog")  # checks the host; the repository is a stand-in
            lowered = text.lower()
            expected = canonical_registry(lowered)
            if ref.registry is None or ref.registry.lower() != expected:
                raise UsageError(f"{text!r} is not a registry host", hint="pass REGISTRY or REGISTRY/REPO")
            out[ref.registry] = None
            continue
        if "@" in text or ":" in text.rsplit("/", 1)[1]:
            raise UsageError(f"{text!r} names a tag or digest: audit takes repositories", hint="drop the :tag/@digest")
        ref = parse_reference(text)
        if ref.registry is None:
            raise UsageError(f"{text!r} is not a registry repository", hint="audit works on registries, not layouts")
        if ref.registry in out and out[ref.registry] is None:
            continue  # the whole catalog is walked anyway
        repos = out.setdefault(ref.registry, [])
        assert repos is not None
        if all(r.repository != ref.repository for r in repos):
            repos.append(ref)
    return out


# -- the walk ---------------------------------------------------------------------------------
def _collect_claims(store: Any, subject: str, model: ModelAudit) -> None:
    from ..store.referrers import list_referrers

    limits = store.limits
    for desc in list_referrers(store, subject):
        ann = dict(desc.annotations or {})
        source = f"referrer {desc.digest}"
        try:
            found = bundle_layer(store, desc)
        except (IntegrityError, LimitError, NotFoundError) as exc:
            model.signatures.append(SignatureClaim(source=source, format="bundle", error=exc.one_line()))
            continue
        if found is None:
            model.attestations.append(AttestationInfo(desc.digest, desc.artifact_type, ann.get(ANNOTATION_PREDICATE)))
            continue
        layer, manifest_ann = found
        try:
            bundle = store.read_blob(layer, limits.bundle_bytes)
        except (IntegrityError, LimitError, NotFoundError) as exc:
            model.signatures.append(SignatureClaim(source=source, format="bundle", error=exc.one_line()))
            continue
        claim = parse_bundle_claim(bundle, source, limits, {**ann, **manifest_ann})
        model.signatures.append(claim)
        model.attestations.append(AttestationInfo(desc.digest, desc.artifact_type, claim.predicate_type))
    tag = legacy_signature_tag(subject)
    try:
        data = store.get_manifest(tag).data
    except NotFoundError:
        return
    try:
        layers = legacy_layers(data, limits, tag)
        for i, raw in enumerate(layers):
            layer = Descriptor.from_json(raw, what=f"{tag} layer {i}")
            if layer.media_type == SIMPLE_SIGNING_MEDIA_TYPE:
                model.signatures.append(parse_legacy_claim(dict(layer.annotations or {}), f"{tag} layer {i}"))
    except (IntegrityError, LimitError) as exc:
        model.signatures.append(SignatureClaim(source=tag, format="legacy", error=exc.one_line()))


class _ModelView:
    """One model's reads on a repository, memoised for the length of its audit.

    The audit reads each referrer once to describe it and the verifier reads it again for
    every authority; manifests by digest and blobs are content-addressed, and the fallback
    and ``.sig`` tags are read once so every check judges the same snapshot.
    """

    def __init__(self, store: RegistryStore) -> None:
        self._base = store
        self.ref = store.ref
        self.limits = store.limits
        self._manifests: dict[str, ManifestData | NotFoundError] = {}
        self._blobs: dict[tuple[str, int], bytes] = {}
        self._referrers: dict[str, list[Descriptor] | None] = {}

    def get_manifest(self, identifier: str) -> ManifestData:
        if identifier not in self._manifests:
            try:
                self._manifests[identifier] = self._base.get_manifest(identifier)
            except NotFoundError as exc:
                self._manifests[identifier] = exc
        found = self._manifests[identifier]
        if isinstance(found, NotFoundError):
            raise found
        return found

    def read_blob(self, desc: Descriptor, max_bytes: int) -> bytes:
        key = (desc.digest, max_bytes)
        if key not in self._blobs:
            self._blobs[key] = self._base.read_blob(desc, max_bytes)
        return self._blobs[key]

    def referrers_api(self, digest: str) -> list[Descriptor] | None:
        if digest not in self._referrers:
            self._referrers[digest] = self._base.referrers_api(digest)
        return self._referrers[digest]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


class _Auditor:
    def __init__(self, verifiers: Verifiers, options: AuditOptions) -> None:
        self.verifiers = verifiers
        self.options = options
        self._cache = PolicyCache()  # keys and trust roots load once for the whole walk
        self._signed_by_policy: Any = None
        if options.signed_by is not None and options.signed_by.key_path is not None:
            self._signed_by_policy = make_policy({"key": str(options.signed_by.key_path), "insecure_ignore_tlog": True})

    def model(self, repository: RegistryStore, digest: str, tags: list[str]) -> ModelAudit | None:
        from ..model.unpack import layer_digests, parse_model_manifest
        from ..verify.discover import discover

        store: Any = _ModelView(repository)
        manifest = store.get_manifest(digest)
        try:
            model = parse_model_manifest(manifest.data, store.limits)
        except InputError:
            return None  # an index, anything that is not a single artifact
        if not model.files and model.skipped:
            return None  # only layers no model format knows: a container image
        value = load_json(manifest.data, max_bytes=store.limits.manifest_bytes, depth=store.limits.json_depth, what="manifest")
        audit = ModelAudit(
            repository=store.ref.repo_name,
            digest=digest,
            tags=sorted(tags),
            artifact_type=value.get("artifactType") if isinstance(value, dict) else None,
        )
        _collect_claims(store, digest, audit)
        by_source = {c.source: c for c in audit.signatures}
        digests = layer_digests(model)
        scope = self.verifiers.scope_for(f"{store.ref.repo_name}@{digest}")
        if scope is not None:
            # Signatures are read once and checked against every authority (``trust.judge``).
            outcome = judge(store, manifest.descriptor, scope, layer_digests=digests, cache=self._cache)
            for check in outcome.checks:
                claim = by_source.get(check.source)
                if claim is None or not check.verified_by:
                    continue
                claim.verified_by.extend(n for n in check.verified_by if n not in claim.verified_by)
                keys = [a for a in (scope.authority(n) for n in check.verified_by) if a is not None and a.kind == "key"]
                if keys and claim.kind == "key":
                    claim.fingerprint = keys[0].fingerprint  # proven by the key that verified it
                if check.predicate_type is not None and claim.predicate_type is None:
                    claim.predicate_type = check.predicate_type
            audit.decision = outcome.decision
        if self._signed_by_policy is not None and self.options.signed_by is not None:
            found = discover(store, manifest.descriptor, self._signed_by_policy, layer_digests=digests)
            fingerprint = self.options.signed_by.fingerprint
            for cand in found.result.candidates:
                claim = by_source.get(cand.source)
                if cand.ok and claim is not None:
                    claim.fingerprint = fingerprint  # proven: the key verified this signature
                    claim.kind = "key"
                    if "--signed-by" not in claim.verified_by:
                        claim.verified_by.append("--signed-by")
        return audit

    def matches(self, claim: SignatureClaim) -> bool:
        signed_by, between = self.options.signed_by, self.options.between
        if signed_by is not None:
            if signed_by.key_path is not None:
                if "--signed-by" not in claim.verified_by:
                    return False
            elif claim.identity != signed_by.identity:
                return False
        return between is None or (claim.signed_at is not None and between[0] <= claim.signed_at <= between[1])

    def selected(self, model: ModelAudit) -> bool:
        if self.options.signed_by is None and self.options.between is None:
            return True
        return any(self.matches(c) for c in model.signatures if c.error is None)


def _map(jobs: int, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    if jobs <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(fn, items))


def run_audit(
    targets: list[str],
    verifiers: Verifiers,
    store_options: StoreOptions | None = None,
    options: AuditOptions | None = None,
) -> AuditReport:
    """Audit the registries/repositories in ``targets``; see the module docstring for bounds."""
    options = options or AuditOptions()
    if options.jobs < 1:
        raise UsageError("-j must be at least 1")
    store_options = store_options or StoreOptions()
    store_options.concurrency = max(store_options.concurrency, options.jobs)
    report = AuditReport(targets=list(targets), policy_source=verifiers.source, options=options)
    auditor = _Auditor(verifiers, options)
    plan = parse_targets(targets)
    sessions: list[RegistrySession] = []
    try:
        stores: list[RegistryStore] = []
        for host, repos in plan.items():
            probe = parse_reference(f"{host}/catalog")
            session = RegistrySession.for_reference(probe, store_options)
            sessions.append(session)
            if repos is None:
                names = list_repositories(session, limit=options.max_repositories)
                repos = [parse_reference(f"{host}/{name}") for name in names]
            stores.extend(session.repository(r) for r in repos)
        if len(stores) > options.max_repositories:
            raise LimitError(
                f"{len(stores)} repositories to audit, over the limit of {options.max_repositories}",
                hint="raise --max-repositories",
            )
        report.repositories = len(stores)

        def tags_of(store: RegistryStore) -> list[tuple[RegistryStore, str, list[str]]]:
            try:
                tags = [t for t in store.list_tags(page_size=min(1000, options.max_tags + 1)) if not _SIGNATURE_TAG_RE.match(t)]
            except (NotFoundError, AuthError) as exc:  # gone, or not ours to read: the others still are
                report.errors.append((store.ref.repo_name, exc.one_line()))
                return []
            if len(tags) > options.max_tags:
                raise LimitError(
                    f"{store.ref.repo_name} has more than {options.max_tags} tags",
                    hint="raise --max-tags",
                )
            by_digest: dict[str, list[str]] = {}
            for tag in tags:
                try:
                    desc = store.resolve(tag)
                except NotFoundError as exc:  # deleted while we listed
                    report.errors.append((f"{store.ref.repo_name}:{tag}", exc.one_line()))
                    continue
                by_digest.setdefault(desc.digest, []).append(tag)
            return [(store, d, t) for d, t in by_digest.items()]

        work = [item for items in _map(options.jobs, tags_of, stores) for item in items]
        report.tags = sum(len(tags) for _, _, tags in work)

        def audit_one(item: tuple[RegistryStore, str, list[str]]) -> ModelAudit | None:
            store, digest, tags = item
            try:
                return auditor.model(store, digest, tags)
            except (IntegrityError, NotFoundError, AuthError) as exc:
                report.errors.append((f"{store.ref.repo_name}@{digest}", exc.one_line()))
                return None

        failed_before = len(report.errors)
        results = _map(options.jobs, audit_one, work)
        failed = len(report.errors) - failed_before
        for result in results:
            if result is None:
                continue
            report.examined += 1
            if auditor.selected(result):
                report.models.append(result)
        report.skipped = sum(1 for r in results if r is None) - failed
        report.models.sort(key=lambda m: (m.repository, m.digest))
        report.errors.sort()
        return report
    finally:
        for session in sessions:
            session.close()
