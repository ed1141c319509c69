"""The exact bytes cosign signs, built without cosign.

Signatures cover bytes, not meaning, but verifiers parse those bytes back, and tools such as
containers/image compare fields. Reproducing cosign's encoders exactly (Go ``encoding/json``
for the legacy payload, ``protojson`` shape for the v3 statement) means a signature made here
is indistinguishable from one cosign made, which is the whole point of compatibility.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from ..errors import InputError
from ..oci.mediatypes import COSIGN_SIGN_PREDICATE, IN_TOTO_STATEMENT_V1, SIMPLE_SIGNING_TYPE
from ..reference import DOCKER_HUB_ALIASES

_SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def _check_manifest_digest(manifest_digest: str) -> str:
    if not _SHA256_RE.match(manifest_digest):
        raise InputError(
            f"cannot sign {manifest_digest!r}: expected a manifest digest sha256:<64 lowercase hex>"
        )
    return manifest_digest


def _check_annotations(annotations: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (annotations or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InputError(f"annotation {k!r}={v!r}: keys and values must be strings")
        if not k:
            raise InputError("annotation keys must not be empty")
        out[k] = v
    return out


def go_json(value: object) -> bytes:
    """Go ``encoding/json.Marshal`` for plain data: compact, sorted map keys, HTML-escaped.

    Go escapes ``<``, ``>``, ``&``, U+2028 and U+2029 inside strings and leaves other non-ASCII
    as UTF-8. Those characters never occur in JSON structure, so replacing them after Python's
    encoder (which already escapes quotes, backslashes and control characters the same way,
    including ``\\b``/``\\f`` as Go 1.22+ does) gives Go's bytes. Dict order is the caller's:
    pass structs in field order, maps pre-sorted.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    return text.encode("utf-8")


def cosign_docker_reference(registry: str | None, repository: str) -> str:
    """The ``docker-reference`` cosign writes: go-containerregistry's ``Repository.Name()``,
    which spells Docker Hub ``index.docker.io`` (``docker.io/library/x`` ->
    ``index.docker.io/library/x``); other registries are written as given."""
    if not registry or registry in DOCKER_HUB_ALIASES:
        return f"index.docker.io/{repository}"
    return f"{registry}/{repository}"


def simple_signing_payload(
    docker_reference: str,
    manifest_digest: str,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """cosign's legacy ``.sig`` layer payload (sigstore/sigstore ``payload.Cosign``).

    ``docker_reference`` is what cosign writes: registry/repository without tag or digest
    (containers/image enforces it, cosign ignores it). ``optional`` is ``null`` without
    annotations, else the string map with sorted keys.
    """
    if not docker_reference:
        raise InputError("the docker-reference of a simple-signing payload must not be empty")
    digest = _check_manifest_digest(manifest_digest)
    optional = _check_annotations(annotations)
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIMPLE_SIGNING_TYPE,
        },
        "optional": {k: optional[k] for k in sorted(optional)} if optional else None,
    }
    return go_json(doc)


def cosign_sign_statement(
    manifest_digest: str, annotations: Mapping[str, str] | None = None
) -> bytes:
    """The in-toto v1 statement ``cosign sign`` (v3.0.5+) wraps in DSSE for an image.

    Subject has no name; ``annotations`` is always present (``{}`` when empty) and
    ``predicate`` is the empty object, exactly as cosign's protojson output. Annotation keys
    are sorted (protojson's deterministic map order); no HTML escaping (protojson does none).
    """
    digest = _check_manifest_digest(manifest_digest)
    ann = _check_annotations(annotations)
    doc = {
        "_type": IN_TOTO_STATEMENT_V1,
        "subject": [
            {
                "digest": {"sha256": digest.split(":", 1)[1]},
                "annotations": {k: ann[k] for k in sorted(ann)},
            }
        ],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def in_toto_statement(
    subjects: list[tuple[str | None, str]],
    predicate_type: str,
    predicate: Mapping[str, object],
) -> bytes:
    """A general in-toto v1 statement (attestations such as a model card).

    ``subjects`` are ``(name or None, "sha256:<hex>")``. Compact JSON, keys in spec order.
    """
    if not subjects:
        raise InputError("an in-toto statement needs at least one subject")
    subj: list[dict[str, object]] = []
    for name, digest in subjects:
        d = _check_manifest_digest(digest)
        entry: dict[str, object] = {}
        if name is not None:
            entry["name"] = name
        entry["digest"] = {"sha256": d.split(":", 1)[1]}
        subj.append(entry)
    if not predicate_type:
        raise InputError("an in-toto statement needs a predicateType")
    doc = {
        "_type": IN_TOTO_STATEMENT_V1,
        "subject": subj,
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
