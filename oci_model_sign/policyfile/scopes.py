"""Scope patterns: which entry of a policy applies to a reference.

The forms and their meaning follow containers-policy.json(5) for the ``docker:`` transport,
with Sigstore policy-controller's globs added:

* ``host[:port]``: every repository on that registry;
* ``*.example.com``: every registry whose host name ends in ``.example.com`` (a port, when
  present, is part of the host: write ``*.example.com:5000`` for one);
* ``host/ns`` or ``host/ns/repo``: that repository and every repository beneath it
  (path-component boundaries only: ``host/ns`` does not cover ``host/ns2``);
* ``host/repo:tag`` and ``host/repo@sha256:…``: one tag, one manifest;
* globs (any other ``*``): ``*`` matches within one path component, ``**`` across
  components; matched against ``host/repo`` and against the reference with its tag/digest
  (a glob must name a repository part: ``reg*.example.com`` alone is refused);
* ``oci:/abs/path``: on-disk layouts at or below that folder.

A scope with no host (``ubuntu``, ``acme/model``, ``acme/*``) is a Docker Hub name and is expanded as
``docker pull`` would (``docker.io/library/ubuntu``, ``docker.io/acme/model``);
``index.docker.io`` and ``registry-1.docker.io`` mean ``docker.io``.

Among the scopes that match, the one that names the most characters of the reference
literally (wildcards not counted) wins; on a tie a literal scope beats a glob, then the scope
written first in the file wins. ``explain`` shows the whole ranking.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..digest import is_digest
from ..reference import DOCKER_HUB, canonical_registry, parse_reference

_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST_RE = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$"
)
_GLOB_CHARS_RE = re.compile(r"^[A-Za-z0-9._\-:/*@\[\]]+$")

KIND_TEXT = {
    "registry": "registry host",
    "subdomains": "subdomain wildcard",
    "repository": "repository or namespace prefix",
    "tag": "exact tag",
    "digest": "exact digest",
    "glob": "glob",
    "layout": "layout path prefix",
}


@dataclass(frozen=True)
class Target:
    """A reference reduced to the strings scopes are matched against."""

    text: str
    name: str  # host/repo, or the absolute layout path
    host: str | None  # None for an on-disk layout
    tag: str | None
    digest: str | None

    @property
    def is_layout(self) -> bool:
        return self.host is None

    def full_names(self) -> list[str]:
        """``name`` with each suffix it has (``:tag``, ``@digest``, both): what globs see."""
        names = [self.name]
        if self.tag:
            names.append(f"{self.name}:{self.tag}")
        if self.digest:
            names.append(f"{self.name}@{self.digest}")
            if self.tag:
                names.append(f"{self.name}:{self.tag}@{self.digest}")
        return names

    def display(self) -> str:
        if self.host is None:
            return f"oci:{self.name}"
        return self.full_names()[-1]


def target_for(reference: str) -> Target:
    """Parse ``reference`` (``UsageError`` when invalid) with Docker Hub normalisation."""
    ref = parse_reference(reference)
    if ref.layout is not None:
        path = os.path.normpath(os.path.abspath(ref.layout))
        return Target(reference, path, None, ref.tag, ref.digest)
    assert ref.registry is not None
    host = ref.registry.lower()  # host names are case-insensitive; repositories are lowercase already
    return Target(reference, f"{host}/{ref.repository}", host, ref.tag, ref.digest)


@dataclass(frozen=True)
class ScopePattern:
    """One scope key of a policy file, parsed and normalised."""

    text: str  # as written in the file
    kind: str  # a key of KIND_TEXT
    value: str  # the normalised name (host, host/repo, glob, path)
    tag: str | None = None
    digest: str | None = None

    @property
    def is_wildcard(self) -> bool:
        return self.kind in ("glob", "subdomains")

    @property
    def normalised(self) -> str:
        if self.kind == "tag":
            return f"{self.value}:{self.tag}"
        if self.kind == "digest":
            return f"{self.value}@{self.digest}"
        if self.kind == "subdomains":
            return f"*.{self.value}"
        if self.kind == "layout":
            return f"oci:{self.value}"
        return self.value

    @property
    def literal_length(self) -> int:
        """How many characters of a matching reference this scope names literally."""
        return len(self.normalised.replace("*", ""))

    def matches(self, target: Target) -> bool:
        if self.kind == "layout":
            if not target.is_layout:
                return False
            root = self.value.rstrip(os.sep) or os.sep
            return target.name == root or target.name.startswith(root.rstrip(os.sep) + os.sep)
        if target.is_layout:
            return False
        host = target.host or ""
        if self.kind == "registry":
            return host == self.value
        if self.kind == "subdomains":
            return host.endswith("." + self.value)
        if self.kind == "repository":
            return target.name == self.value or target.name.startswith(self.value + "/")
        if self.kind == "tag":
            return target.name == self.value and target.tag == self.tag
        if self.kind == "digest":
            return target.name == self.value and target.digest == self.digest
        regex = _glob_regex(self.value)
        return any(regex.fullmatch(name) for name in target.full_names())


def _glob_regex(glob: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*)", glob)
    out = []
    for part in parts:
        if part == "**":
            out.append(".*")
        elif part == "*":
            out.append("[^/]*")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def _is_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")


def _canonical_host(host: str) -> str:
    host = host.lower()
    return canonical_registry(host.lower())


def _check_host(host: str, text: str) -> None:
    if not _HOST_RE.match(host):
        raise ValueError(f"{host!r} is not a registry host name (in scope {text!r})")


def _check_path(parts: list[str], text: str) -> None:
    for part in parts:
        if not _COMPONENT_RE.match(part):
            raise ValueError(
                f"repository component {part!r} is not valid (in scope {text!r}): "
                "use lowercase letters, digits and . _ - separated by /"
            )


def parse_scope(text: str) -> ScopePattern:
    """Parse a scope key; ``ValueError`` says what is wrong with it."""
    if not text or text != text.strip():
        raise ValueError("a scope is a non-empty string without surrounding spaces")
    if text.startswith("oci:"):
        folder = text[len("oci:") :]
        if "*" in folder:
            raise ValueError(f"layout scope {text!r}: wildcards are not supported in layout paths")
        if not os.path.isabs(folder):
            raise ValueError(f"layout scope {text!r} must name an absolute path (oci:/path/to/layouts)")
        return ScopePattern(text, "layout", os.path.normpath(folder))
    if "://" in text:
        raise ValueError(f"scope {text!r} has a scheme: write host/repo, without https://")
    if "*" in text:
        if text.startswith("*.") and "*" not in text[2:] and "/" not in text:
            rest = text[2:].lower()
            _check_host(rest, text)
            return ScopePattern(text, "subdomains", rest)
        if not _GLOB_CHARS_RE.match(text) or "***" in text:
            raise ValueError(f"glob {text!r} has characters a glob cannot hold (letters, digits, . _ - : / @ * and **)")
        head, sep, rest = text.partition("/")
        if not sep:
            if _is_host(head):
                raise ValueError(
                    f"glob {text!r} names no repository: write *.example.com for subdomains, "
                    "or host/** for every repository of a registry"
                )
            return ScopePattern(text, "glob", f"{DOCKER_HUB}/library/{text}")
        if "*" not in head:
            head = _canonical_host(head) if _is_host(head) else f"{DOCKER_HUB}/{head}"
        return ScopePattern(text, "glob", head + sep + rest)
    name, digest = text, None
    if "@" in text:
        name, digest = text.rsplit("@", 1)
        if not is_digest(digest):
            raise ValueError(f"scope {text!r}: {digest!r} is not a digest (sha256:<64 lowercase hex>)")
    tag = None
    host: str
    path: list[str]
    parts = name.split("/")
    if len(parts) == 1:
        only = parts[0]
        port_only = ":" in only and only.rsplit(":", 1)[1].isdigit()
        if port_only or (_is_host(only) and ":" not in only):
            if digest is not None:
                raise ValueError(f"scope {text!r}: a registry host scope takes no digest")
            host = _canonical_host(only)
            _check_host(host, text)
            return ScopePattern(text, "registry", host)
        if ":" in only:
            only, tag = only.rsplit(":", 1)
        host, path = DOCKER_HUB, ["library", only]
    else:
        if ":" in parts[-1]:
            parts[-1], tag = parts[-1].rsplit(":", 1)
        if _is_host(parts[0]):
            host, path = _canonical_host(parts[0]), parts[1:]
            _check_host(host, text)
        else:
            host, path = DOCKER_HUB, parts
    if tag is not None and not _TAG_RE.match(tag):
        raise ValueError(f"scope {text!r}: {tag!r} is not a valid tag")
    _check_path(path, text)
    value = f"{host}/{'/'.join(path)}"
    if digest is not None:
        if tag is not None:
            raise ValueError(f"scope {text!r}: name a tag or a digest, not both")
        return ScopePattern(text, "digest", value, digest=digest)
    if tag is not None:
        return ScopePattern(text, "tag", value, tag=tag)
    return ScopePattern(text, "repository", value)

