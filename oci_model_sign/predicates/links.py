"""The artifacts an attestation says a model came from, for ``tree`` to show.

Each predicate names its inputs in its own way: SLSA provenance in ``resolvedDependencies``,
an ML-BOM in hashed components, an evaluation in its dataset digest. ``tree`` describes and
does not trust, so these readers take any JSON (the statement may be unverified) and skip
what they cannot read instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import types
from .provenance import Link, provenance_links

_CDX_ALGS = {"SHA-256": "sha256", "SHA-512": "sha512"}


def _digest_map(value: object) -> dict[str, str] | None:
    if not isinstance(value, Mapping) or not value:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    return dict(value)


def ml_bom_links(bom: object) -> list[Link]:
    """Hashed components of a CycloneDX BOM: ``data`` as datasets, models as base models."""
    if not isinstance(bom, Mapping):
        return []
    comps = bom.get("components")
    links: list[Link] = []
    for c in comps if isinstance(comps, list) else []:
        if not isinstance(c, Mapping):
            continue
        hashes = c.get("hashes")
        digest: dict[str, str] = {}
        for h in hashes if isinstance(hashes, list) else []:
            if isinstance(h, Mapping) and h.get("alg") in _CDX_ALGS and isinstance(h.get("content"), str):
                digest[_CDX_ALGS[str(h["alg"])]] = str(h["content"])
        if not digest:
            continue
        kind = c.get("type")
        role = "dataset" if kind == "data" else "base-model" if kind == "machine-learning-model" else "other"
        name, purl = c.get("name"), c.get("purl")
        links.append(
            Link(role=role, digest=digest, name=name if isinstance(name, str) else None,
                 uri=purl if isinstance(purl, str) else None)
        )
    return links


def eval_links(predicate: object) -> list[Link]:
    """The evaluated dataset, when the evaluation names it by digest."""
    if not isinstance(predicate, Mapping):
        return []
    ds = predicate.get("dataset")
    if not isinstance(ds, Mapping):
        return []
    digest = _digest_map(ds.get("digest"))
    if digest is None:
        return []
    name, uri = ds.get("name"), ds.get("uri")
    return [Link(role="dataset", digest=digest, name=name if isinstance(name, str) else None,
                 uri=uri if isinstance(uri, str) else None)]


def attestation_links(statement: Mapping[str, Any]) -> list[Link]:
    """Every input artifact a statement names by digest, whatever its predicate type."""
    ptype = statement.get("predicateType")
    predicate = statement.get("predicate")
    if ptype == types.SLSA_PROVENANCE_V1:
        return provenance_links(predicate)
    if ptype == types.CYCLONEDX_BOM:
        return ml_bom_links(predicate)
    if ptype == types.OMSIGN_EVAL_V1:
        return eval_links(predicate)
    return []
