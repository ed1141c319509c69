"""``omsign tree``: everything attached to a model, described and not trusted (cosign's ``tree``).

Every referrer of the manifest (the referrers API or the ``sha256-<hex>`` fallback index) and
cosign's legacy ``.sig`` and ``.att`` tags are listed: signatures, attestations grouped by
predicate type and by the signer they *claim*, model-signing bundles, other artifacts, and
the input artifacts (base models, datasets) that attestations name by digest. Nothing is
verified here: each entry says ``verified: false``, and what it claims (signer, predicate
type, links) is read from unverified bytes, defensively. ``verify`` and
``verify-attestation`` decide what to believe.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import OmsignError
from .oci.descriptor import Descriptor
from .oci.mediatypes import (
    ANNOTATION_CERTIFICATE,
    ANNOTATION_PREDICATE,
    COSIGN_SIGN_PREDICATE,
    MODEL_SIGNING_PREDICATE,
    MODEL_SIGNING_PREDICATE_COMPAT,
    SIMPLE_SIGNING_MEDIA_TYPE,
)
from .predicates.links import attestation_links
from .reference import Reference, legacy_signature_tag, parse_reference
from .store import open_store
from .store.base import Store, StoreOptions

KINDS = ("signature", "attestation", "model-signing", "artifact")


@dataclass
class TreeEntry:
    """One thing attached to the model, with what it claims (unverified)."""

    kind: str  # signature | attestation | model-signing | artifact
    format: str  # bundle | legacy | referrer
    source: str  # "referrer sha256:…" or "sha256-….att layer 0"
    predicate_type: str | None = None
    artifact_type: str | None = None
    signer: str | None = None
    links: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "format": self.format,
            "source": self.source,
            "predicateType": self.predicate_type,
            "artifactType": self.artifact_type,
            "signer": self.signer,
            "verified": False,
            "links": list(self.links),
            "problem": self.problem,
        }


@dataclass
class TreeResult:
    reference: str
    digest: str
    media_type: str
    artifact_type: str | None
    entries: list[TreeEntry] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[TreeEntry]:
        return [e for e in self.entries if e.kind == kind]

    def links(self) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for e in self.entries:
            for link in e.links:
                key = json.dumps(link, sort_keys=True)
                seen.setdefault(key, {**link, "from": e.source})
        return list(seen.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "verified": False,
            "entries": [e.to_json() for e in self.entries],
            "links": self.links(),
        }


def _kind_of(predicate_type: str | None) -> str:
    if predicate_type == COSIGN_SIGN_PREDICATE:
        return "signature"
    if predicate_type in (MODEL_SIGNING_PREDICATE, MODEL_SIGNING_PREDICATE_COMPAT):
        return "model-signing"
    return "attestation"


def _link_json(link: Any) -> dict[str, Any]:
    return {"role": link.role, "digest": dict(link.digest), "name": link.name, "uri": link.uri}


def _statement_links(statement: dict[str, Any] | None) -> list[dict[str, Any]]:
    if statement is None:
        return []
    try:
        return [_link_json(x) for x in attestation_links(statement)]
    except Exception:  # untrusted JSON: a predicate we cannot read links nothing
        return []


def _bundle_entry(store: Store, desc: Descriptor, source: str) -> TreeEntry:
    from .verify.bundle import parse_bundle_record
    from .verify.discover import referrer_bundle

    found = referrer_bundle(store, desc)
    if found is None:
        entry = TreeEntry("artifact", "referrer", source, artifact_type=desc.artifact_type)
        return entry
    layer, manifest = found
    annotations = manifest.get("annotations")
    claimed_type = annotations.get(ANNOTATION_PREDICATE) if isinstance(annotations, dict) else None
    entry = TreeEntry(
        _kind_of(claimed_type if isinstance(claimed_type, str) else None), "bundle", source,
        predicate_type=claimed_type if isinstance(claimed_type, str) else None,
        artifact_type=desc.artifact_type,
    )
    try:
        bundle = store.read_blob(layer, store.limits.bundle_bytes)
        _, record = parse_bundle_record(bundle, source)
    except Exception as exc:  # a broken bundle is shown, not skipped
        entry.problem = exc.one_line() if isinstance(exc, OmsignError) else f"unreadable bundle: {str(exc)[:200]}"
        return entry
    entry.signer = record.claimed_signer
    if record.predicate_type is not None:
        if entry.predicate_type not in (None, record.predicate_type):
            entry.problem = f"annotation says {entry.predicate_type}, the statement says {record.predicate_type}"
        entry.predicate_type = record.predicate_type
        entry.kind = _kind_of(record.predicate_type)
    entry.links = _statement_links(record.statement)
    return entry


def _legacy_layers(store: Store, tag: str) -> list[Descriptor]:
    from .limits import load_json

    try:
        data = store.get_manifest(tag).data
    except OmsignError:
        return []
    try:
        value = load_json(data, max_bytes=store.limits.manifest_bytes, depth=store.limits.json_depth, what=tag)
        layers = value.get("layers") if isinstance(value, dict) else None
        return [Descriptor.from_json(x) for x in (layers if isinstance(layers, list) else [])][: store.limits.referrers]
    except OmsignError:
        return []


def _certificate_signer(annotations: dict[str, str]) -> str | None:
    pem = annotations.get(ANNOTATION_CERTIFICATE)
    if not pem:
        return None
    from .verify.certs import describe_certificate, load_certificates

    try:
        certs = load_certificates(pem.encode(), "certificate annotation")
        return describe_certificate(certs[0]) if certs else None
    except Exception:
        return None


def _legacy_entries(store: Store, digest: str) -> list[TreeEntry]:
    from .verify.records import statement_claims

    out: list[TreeEntry] = []
    sig_tag = legacy_signature_tag(digest)
    for i, layer in enumerate(_legacy_layers(store, sig_tag)):
        ann = dict(layer.annotations or {})
        kind = "signature" if layer.media_type == SIMPLE_SIGNING_MEDIA_TYPE else "artifact"
        out.append(TreeEntry(kind, "legacy", f"{sig_tag} layer {i}", artifact_type=layer.media_type,
                             signer=_certificate_signer(ann)))
    att_tag = legacy_signature_tag(digest, "att")
    for i, layer in enumerate(_legacy_layers(store, att_tag)):
        ann = dict(layer.annotations or {})
        entry = TreeEntry("attestation", "legacy", f"{att_tag} layer {i}", predicate_type=ann.get("predicateType"),
                          artifact_type=layer.media_type, signer=_certificate_signer(ann))
        try:
            envelope = json.loads(store.read_blob(layer, store.limits.bundle_bytes))
            payload = base64.b64decode(envelope["payload"])
            statement, ptype, _ = statement_claims(payload)
            if ptype is not None:
                entry.predicate_type = ptype
            entry.links = _statement_links(statement)
        except (OmsignError, ValueError, KeyError, TypeError, binascii.Error) as exc:
            entry.problem = f"unreadable attestation: {str(exc)[:200]}"
        out.append(entry)
    return out


def tree(ref: str | Reference, *, options: StoreOptions | None = None) -> TreeResult:
    """Describe every referrer and legacy tag of the model (see module doc); nothing verified."""
    from .store.referrers import list_referrers

    reference = parse_reference(ref) if isinstance(ref, str) else ref
    store = open_store(reference, options or StoreOptions())
    try:
        desc = store.resolve(reference.identifier)
        manifest = store.get_manifest(desc.digest)
        try:
            doc = json.loads(manifest.data)
            artifact_type = doc.get("artifactType") if isinstance(doc, dict) else None
        except ValueError:
            artifact_type = None
        result = TreeResult(
            reference=str(reference.pinned(desc.digest)), digest=desc.digest,
            media_type=manifest.descriptor.media_type,
            artifact_type=artifact_type if isinstance(artifact_type, str) else None,
        )
        for ref_desc in list_referrers(store, desc.digest):
            source = f"referrer {ref_desc.digest}"
            try:
                result.entries.append(_bundle_entry(store, ref_desc, source))
            except OmsignError as exc:
                result.entries.append(TreeEntry("artifact", "referrer", source, artifact_type=ref_desc.artifact_type,
                                                problem=exc.one_line()))
        result.entries.extend(_legacy_entries(store, desc.digest))
        return result
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def _digest_text(digest: dict[str, Any]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in sorted(digest.items()))


def tree_lines(result: TreeResult) -> list[str]:
    """The text form: one branch per kind, attestations by predicate type, links under each."""
    lines = [f"📦 {result.reference}" + (f" ({result.artifact_type})" if result.artifact_type else "")]
    lines.append("   nothing below is verified: use omsign verify / verify-attestation to check")
    sections: list[tuple[str, list[TreeEntry]]] = [
        ("signatures", result.of_kind("signature")),
        ("attestations", result.of_kind("attestation")),
        ("model-signing bundles", result.of_kind("model-signing")),
        ("other artifacts", result.of_kind("artifact")),
    ]
    sections = [(t, es) for t, es in sections if es]
    if not sections:
        lines.append("└── (nothing attached)")
    for si, (title, entries) in enumerate(sections):
        last_section = si == len(sections) - 1
        lines.append(("└── " if last_section else "├── ") + f"{title} ({len(entries)})")
        pad = "    " if last_section else "│   "
        groups: dict[str, list[TreeEntry]] = {}
        for e in entries:
            groups.setdefault(e.predicate_type or e.artifact_type or "(unknown type)", []).append(e)
        for gi, (gname, members) in enumerate(groups.items()):
            last_group = gi == len(groups) - 1
            lines.append(pad + ("└── " if last_group else "├── ") + f"🔗 {gname}")
            gpad = pad + ("    " if last_group else "│   ")
            for mi, e in enumerate(members):
                last_member = mi == len(members) - 1
                who = f" by {e.signer}" if e.signer else ""
                problem = f" [{e.problem}]" if e.problem else ""
                lines.append(gpad + ("└── " if last_member else "├── ") + f"{e.source} ({e.format}){who} (unverified){problem}")
                mpad = gpad + ("    " if last_member else "│   ")
                for li, link in enumerate(e.links):
                    last_link = li == len(e.links) - 1
                    name = link.get("name") or link.get("uri") or ""
                    lines.append(mpad + ("└── " if last_link else "├── ") + f"{link['role']}: {name} {_digest_text(link['digest'])}".rstrip())
    return lines
