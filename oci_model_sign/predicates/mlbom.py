"""A CycloneDX 1.6 ML-BOM for a model: the model, its base models and its datasets, by digest.

The BOM is built with ``cyclonedx-python-lib`` (components, hashes, licences, package URLs,
the dependency graph, metadata, serialisation), so its structure is the library's and not a
hand-written imitation. The library does not model two CycloneDX 1.5+ objects yet: a
component's ``modelCard`` and a data component's ``data``. omsign adds exactly those two to
the library's JSON output, and then checks the whole document with the library's own strict
1.6 JSON validator, so what is added is held to the same schema as the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from ..errors import InputError
from .provenance import Artifact

MODEL_REF = "model"
MODEL_CARD_REF = "model-card"
CARD_DIGEST_PROPERTY = "omsign:modelcard:sha256"
HF_BASE = "https://huggingface.co"


def _hashes(digest: Mapping[str, str] | str | None) -> list[Any]:
    from cyclonedx.model import HashAlgorithm, HashType

    from .evaluation import digest_set

    if digest is None:
        return []
    algs = {"sha256": HashAlgorithm.SHA_256, "sha512": HashAlgorithm.SHA_512}
    return [
        HashType(alg=algs[k], content=v)
        for k, v in sorted(digest_set(digest).items())
        if k in algs
    ]


def _component(
    kind: str, ref: str, name: str, *, digest: Mapping[str, str] | str | None = None,
    uri: str | None = None, hub_path: str | None = None,
) -> Any:
    from cyclonedx.model import ExternalReference, ExternalReferenceType, XsUri
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    ctype = ComponentType.DATA if kind == "data" else ComponentType.MACHINE_LEARNING_MODEL
    purl = PackageURL.from_string(uri) if uri and uri.startswith("pkg:") else None
    refs = []
    link = uri if uri and uri.startswith(("https://", "http://")) else hub_path
    if link:
        refs.append(ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(link)))
    return Component(
        type=ctype, name=name, bom_ref=ref, hashes=_hashes(digest), purl=purl, external_references=refs
    )


def ml_bom(
    model_name: str,
    manifest_digest: str,
    *,
    repository: str | None = None,
    version: str | None = None,
    card: Mapping[str, Any] | None = None,
    datasets: Sequence[Artifact] = (),
    base_models: Sequence[Artifact] = (),
    serial_number: UUID | None = None,
    timestamp: datetime | None = None,
    validate: bool = True,
) -> dict[str, Any]:
    """The CycloneDX 1.6 ML-BOM as a JSON object (the ``cyclonedx`` predicate).

    ``card`` is a ``modelcard`` predicate (from ``modelcard_predicate``): it gives licences,
    task, metrics and the names of base models and datasets. ``datasets``/``base_models`` name
    inputs by digest; a card name with no artifact still appears, as a hub reference without
    a hash. ``serial_number`` and ``timestamp`` make the output reproducible.
    """
    from cyclonedx.contrib.license.factories import LicenseFactory
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    from .statement import check_sha256_digest

    digest = check_sha256_digest(manifest_digest, "model manifest")
    card = dict(card or {})
    licenses = []
    if isinstance(card.get("license"), str):
        licenses.append(LicenseFactory().make_from_string(card["license"]))
    purl = None
    if repository:
        purl = PackageURL(
            type="oci", name=repository.rsplit("/", 1)[-1].lower(), version=digest,
            qualifiers={"repository_url": repository},
        )
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=model_name,
        version=version,
        bom_ref=MODEL_REF,
        hashes=_hashes(digest),
        licenses=licenses,
        purl=purl,
    )
    components: list[Any] = []
    data_refs: dict[str, str] = {}  # bom-ref -> dataset name, for the ``data`` objects

    def add(kind: str, artifacts: Sequence[Artifact], card_names: list[str], prefix: str, hub: str) -> None:
        seen: set[str] = set()
        count = 0
        for a in artifacts:
            count += 1
            ref = f"{prefix}-{count}"
            name = a.name or a.uri or ref
            components.append(_component(kind, ref, name, digest=a.digest, uri=a.uri))
            seen.add(name)
            if kind == "data":
                data_refs[ref] = name
        for name in card_names:
            if name in seen:
                continue
            count += 1
            ref = f"{prefix}-{count}"
            components.append(_component(kind, ref, name, hub_path=f"{hub}/{name}"))
            if kind == "data":
                data_refs[ref] = name

    add("model", base_models, list(card.get("baseModel") or []), "base-model", HF_BASE)
    add("data", datasets, list(card.get("datasets") or []), "dataset", f"{HF_BASE}/datasets")
    try:
        from cyclonedx.model.tool import ToolRepository

        tools = ToolRepository(
            components=[Component(type=ComponentType.APPLICATION, name="omsign", version=_version())]
        )
        bom = Bom(
            metadata=BomMetaData(component=model, tools=tools, timestamp=timestamp),
            components=components,
            serial_number=serial_number,
        )
        bom.register_dependency(model, components)
        doc: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot build the ML-BOM: {' '.join(str(exc).split())}") from exc

    for comp in doc.get("components", []):
        name = data_refs.get(comp.get("bom-ref", ""))
        if name is not None:
            comp["data"] = [{"type": "dataset", "name": name}]
    doc["metadata"]["component"]["modelCard"] = _model_card(card, sorted(data_refs))
    if validate:
        validate_ml_bom(doc)
    return doc


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("oci-model-sign")
    except PackageNotFoundError:
        return "unknown"


def _model_card(card: Mapping[str, Any], dataset_refs: list[str]) -> dict[str, Any]:
    """CycloneDX ``modelCard`` from the model-card predicate (metric values are strings there)."""
    params: dict[str, Any] = {}
    if isinstance(card.get("pipelineTag"), str):
        params["task"] = card["pipelineTag"]
    if dataset_refs:
        params["datasets"] = [{"ref": r} for r in dataset_refs]
    metrics: list[dict[str, Any]] = []
    for result in card.get("results") or []:
        ds = result.get("dataset", {})
        where = " ".join(str(x) for x in (ds.get("type") or ds.get("name"), ds.get("split")) if x)
        for m in result.get("metrics", []):
            entry = {"type": str(m.get("type")), "value": str(m.get("value"))}
            if where:
                entry["slice"] = where
            metrics.append(entry)
    out: dict[str, Any] = {"bom-ref": MODEL_CARD_REF}
    if params:
        out["modelParameters"] = params
    if metrics:
        out["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    card_digest = (card.get("card") or {}).get("digest", {}).get("sha256")
    if card_digest:
        out["properties"] = [{"name": CARD_DIGEST_PROPERTY, "value": f"sha256:{card_digest}"}]
    return out


def validate_ml_bom(doc: Mapping[str, Any] | str) -> None:
    """Check a BOM with cyclonedx-python-lib's strict CycloneDX 1.6 JSON validator."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = doc if isinstance(doc, str) else json.dumps(doc)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise InputError(f"the ML-BOM is not valid CycloneDX 1.6: {' '.join(str(error).split())[:300]}")
