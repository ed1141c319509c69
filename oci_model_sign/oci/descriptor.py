"""OCI content descriptors and manifest bytes as stored.

Every store returns and accepts these; parsing is strict because descriptors come from
registries and files that may be hostile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..digest import is_digest
from ..errors import IntegrityError


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor. Field order on output follows the OCI/ggcr order."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, value: Any, what: str = "descriptor") -> Descriptor:
        """Parse a descriptor from untrusted JSON, refusing wrong types with a clear error."""
        if not isinstance(value, dict):
            raise IntegrityError(f"{what} is not a JSON object")
        media_type = value.get("mediaType")
        digest = value.get("digest")
        size = value.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise IntegrityError(f"{what} has no mediaType")
        if not isinstance(digest, str) or not is_digest(digest):
            raise IntegrityError(f"{what} has an invalid digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise IntegrityError(f"{what} has an invalid size {size!r}")
        annotations = value.get("annotations")
        if annotations is not None and (not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        )):
            raise IntegrityError(f"{what} has annotations that are not string pairs")
        artifact_type = value.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise IntegrityError(f"{what} has a non-string artifactType")
        return cls(media_type, digest, size, annotations or None, artifact_type)


@dataclass(frozen=True)
class ManifestData:
    """Manifest bytes exactly as stored, with the digest that was checked against them."""

    data: bytes
    media_type: str
    digest: str

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))
