"""Manifest and index bytes, built the way go-containerregistry and cosign build them.

Pure functions from descriptors to bytes: compact JSON, fields in OCI/ggcr order, so the
digests match what cosign or ORAS write for the same content. Storing them is the caller's job
(``signing.attach``, ``store.referrers``, ``store.layout``, ``model.pack``).
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import Any

from ..digest import sha256_digest
from .descriptor import Descriptor
from .mediatypes import (
    ANNOTATION_CONTENT,
    ANNOTATION_CREATED,
    ANNOTATION_PREDICATE,
    BUNDLE_MEDIA_TYPE,
    EMPTY_DIGEST,
    EMPTY_JSON,
    MODEL_ARTIFACT_TYPE,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
)


def compact_json(value: Any) -> bytes:
    """JSON without whitespace, UTF-8, keys in insertion order: the bytes that get digested."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _now_rfc3339() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_manifest(config_desc: Descriptor, layer_descs: list[Descriptor],
                   annotations: dict[str, str] | None = None, *,
                   artifact_type: str | None = MODEL_ARTIFACT_TYPE) -> bytes:
    """Compact manifest JSON, fields in OCI order; annotations sorted for reproducibility."""
    value: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type:
        value["artifactType"] = artifact_type
    value["config"] = config_desc.to_json()
    value["layers"] = [d.to_json() for d in layer_descs]
    if annotations:
        value["annotations"] = dict(sorted(annotations.items()))
    return compact_json(value)


def build_index(entries: list[dict[str, Any]]) -> bytes:
    """An image index listing ``entries`` (raw descriptor objects, kept as given)."""
    return compact_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})


def bundle_referrer_manifest(
    bundle: bytes, subject: Descriptor, predicate_type: str, created: str | None = None
) -> bytes:
    """The referrer manifest cosign v3 writes for a bundle, byte for byte."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_EMPTY,
            "size": len(EMPTY_JSON),
            "digest": EMPTY_DIGEST,
            "artifactType": BUNDLE_MEDIA_TYPE,
        },
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "size": len(bundle), "digest": sha256_digest(bundle)}],
        "annotations": {
            ANNOTATION_CONTENT: "dsse-envelope",
            ANNOTATION_PREDICATE: predicate_type,
            ANNOTATION_CREATED: created or _now_rfc3339(),
        },
        "subject": {"mediaType": subject.media_type, "size": subject.size, "digest": subject.digest},
        "artifactType": BUNDLE_MEDIA_TYPE,
    }
    return compact_json(manifest)


@dataclass(frozen=True)
class LegacyLayer:
    """One signature in a ``.sig`` manifest: its payload descriptor and annotations."""

    digest: str
    size: int
    media_type: str
    annotations: dict[str, str]


def legacy_config(layers: list[LegacyLayer]) -> bytes:
    """ggcr ``empty.Image`` + ``mutate.Append`` config: one history entry and diff_id per layer."""
    zero = "0001-01-01T00:00:00Z"
    config = {
        "architecture": "",
        "created": zero,
        "history": [{"created": zero} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "config": {},
    }
    return compact_json(config)


def legacy_manifest(layers: list[LegacyLayer]) -> tuple[bytes, bytes]:
    """(manifest bytes, config bytes) of a cosign ``.sig`` artifact in ggcr field order."""
    config = legacy_config(layers)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": sha256_digest(config)},
        "layers": [
            {
                "mediaType": layer.media_type,
                "size": layer.size,
                "digest": layer.digest,
                "annotations": dict(sorted(layer.annotations.items())),
            }
            for layer in layers
        ],
    }
    return compact_json(manifest), config
