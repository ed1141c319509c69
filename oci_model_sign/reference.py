"""References: where a model lives, parsed once into a value.

Two kinds, interchangeable everywhere (the go-containerregistry ``name`` idea):

* remote: ``registry/repo[:tag][@sha256:...]`` with Docker Hub normalisation
  (``ubuntu`` -> ``docker.io/library/ubuntu``) and ``localhost:PORT`` hosts;
* layout: ``oci:PATH[:TAG][@digest]`` or ``oci-layout://PATH[:TAG][@digest]`` for an on-disk
  OCI image layout, or ``oci-archive:FILE.tar[:TAG]`` for one packed in a tar file (skopeo's
  name and format).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .digest import is_digest
from .errors import UsageError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_ALIASES = (DOCKER_HUB, "index.docker.io", DOCKER_HUB_API)


def canonical_registry(host: str) -> str:
    """Docker Hub under any of its names -> ``docker.io``; every other host as given.

    References, stored credentials and policy scopes all compare registries by this name.
    """
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)


def check_digest(value: str, what: str = "digest") -> str:
    if not is_digest(value):
        raise UsageError(f"invalid {what} {value!r}: expected sha256:<64 hex> or sha512:<128 hex>")
    return value


@dataclass(frozen=True)
class Reference:
    """A parsed reference. Exactly one of ``registry`` (remote) or ``layout`` (disk) is set."""

    repository: str
    registry: str | None = None
    layout: str | None = None
    tag: str | None = None
    digest: str | None = None
    archive: bool = False  # ``layout`` names a tar file holding the layout

    @property
    def is_layout(self) -> bool:
        return self.layout is not None

    @property
    def identifier(self) -> str:
        """What to ask the store for: the digest when pinned, else the tag (``latest``)."""
        return self.digest or self.tag or "latest"

    @property
    def api_host(self) -> str:
        """The host to talk to: Docker Hub's API lives on a different name than its references."""
        assert self.registry is not None
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def is_loopback(self) -> bool:
        """Local registries speak plain HTTP by default, as docker, cosign and oras assume."""
        if self.registry is None:
            return False
        host = self.registry.rsplit(":", 1)[0] if not self.registry.startswith("[") else self.registry
        host = host.strip("[]").split("]")[0]
        return host in ("localhost", "::1") or host.startswith("127.")

    @property
    def repo_name(self) -> str:
        """``registry/repo`` (cosign's docker-reference), or ``oci:PATH`` for a layout."""
        if self.layout is not None:
            return f"{'oci-archive' if self.archive else 'oci'}:{self.layout}"
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=check_digest(digest))

    def with_tag(self, tag: str | None) -> Reference:
        return replace(self, tag=tag)

    def pinned(self, digest: str) -> Reference:
        """The same repository, addressed only by digest (what omsign works with after resolving)."""
        return replace(self, tag=None, digest=check_digest(digest))

    def __str__(self) -> str:
        base = self.repo_name
        if self.tag:
            base += f":{self.tag}"
        if self.digest:
            base += f"@{self.digest}"
        return base


def _split_digest(text: str, original: str) -> tuple[str, str | None]:
    if "@" not in text:
        return text, None
    name, digest = text.rsplit("@", 1)
    if not is_digest(digest):
        raise UsageError(
            f"invalid reference {original!r}: {digest!r} is not a digest",
            hint="a digest looks like sha256:<64 lowercase hex digits>",
        )
    return name, digest


def _parse_layout(body: str, original: str) -> Reference:
    body, digest = _split_digest(body, original)
    tag: str | None = None
    # The tag follows the last ':' only when that ':' is past the last path separator,
    # so Windows drive letters and paths with colons in folder names keep working.
    if ":" in body:
        head, candidate = body.rsplit(":", 1)
        if "/" not in candidate and "\\" not in candidate and head and candidate:
            if not _TAG_RE.match(candidate):
                raise UsageError(f"invalid reference {original!r}: bad tag {candidate!r}")
            body, tag = head, candidate
    if not body:
        raise UsageError(f"invalid reference {original!r}: the layout path is empty")
    return Reference(repository=body.rstrip("/") or "/", layout=body, tag=tag, digest=digest)


def parse_reference(text: str) -> Reference:
    """Parse a user-supplied reference, refusing anything ambiguous with a one-line hint."""
    original = text
    text = text.strip()
    if not text:
        raise UsageError("empty reference")
    if text.startswith("oci-archive:"):
        return replace(_parse_layout(text[len("oci-archive:") :], original), archive=True)
    for prefix in ("oci-layout://", "oci:"):
        if text.startswith(prefix):
            return _parse_layout(text[len(prefix) :], original)
    if "://" in text:
        raise UsageError(
            f"invalid reference {original!r}: a scheme is not part of a reference",
            hint="write host/repo:tag, or oci:PATH for an on-disk layout",
        )
    name, digest = _split_digest(text, original)
    tag: str | None = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
        if not _TAG_RE.match(tag):
            raise UsageError(f"invalid reference {original!r}: bad tag {tag!r}")
    parts = name.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path_parts = first, parts[1:]
        if not _HOST_RE.match(registry):
            raise UsageError(f"invalid reference {original!r}: bad registry host {registry!r}")
    else:
        registry, path_parts = DOCKER_HUB, parts
    registry = canonical_registry(registry)
    if registry == DOCKER_HUB and len(path_parts) == 1:
        path_parts = ["library", *path_parts]
    for part in path_parts:
        if not _COMPONENT_RE.match(part):
            raise UsageError(
                f"invalid reference {original!r}: repository component {part!r} is not valid",
                hint="repository names are lowercase letters, digits and . _ - separated by /",
            )
    repository = "/".join(path_parts)
    if len(repository) > 255:
        raise UsageError(f"invalid reference {original!r}: repository name longer than 255")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(repository=repository, registry=registry, tag=tag, digest=digest)


def fallback_tag(digest: str) -> str:
    """The referrers tag-schema name for a subject digest (distribution-spec 1.1)."""
    alg, hexpart = digest.split(":", 1)
    clean = re.sub(r"[^a-zA-Z0-9._-]", "-", f"{alg[:32]}-{hexpart[:64]}")
    return clean


def legacy_signature_tag(digest: str, suffix: str = "sig") -> str:
    """cosign's legacy tag for signatures of ``digest``: ``sha256-<hex>.sig``."""
    alg, hexpart = digest.split(":", 1)
    return f"{alg}-{hexpart}.{suffix}"
