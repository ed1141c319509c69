"""model-signing (OpenSSF Model Signing v1.0) statements, built from digests already known.

A model pushed by omsign has one layer per file, so the OCI manifest already lists every
file's sha256. Re-reading 100 GB to sign it would double the I/O; instead the OMS statement is
assembled from those layer digests. The result is what ``model_signing sign`` would produce
for the same folder (checked against model-signing 1.1.1 in the tests), so users can verify a
pulled folder with ``model_signing verify``.

The builtin encoder is the production path, not model-signing's own classes, because:
model-signing is not a runtime dependency; its private modules may move between releases; and
its payload JSON comes from protobuf ``Struct`` whose key order changes from one process to
the next (upb map order), whereas ours is deterministic. Verifiers parse the payload, so only
its meaning has to match, and :func:`model_signing_statement_via_library` lets tests prove it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence

from ..errors import InputError
from ..oci.mediatypes import IN_TOTO_STATEMENT_V1, MODEL_SIGNING_PREDICATE

# model_signing.hashing.Config.hash adds these unless --no-ignore-git-paths.
GIT_IGNORE_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
# model_signing's CLI always ignores the signature file it writes (default name).
DEFAULT_SIGNATURE_NAME = "model.sig"
MODEL_SIGNING_VERSION = "1.1.1"

_SHA256_RE = re.compile(r"^sha256:([0-9a-f]{64})$")


def check_relpath(path: str, what: str = "file path") -> str:
    """A normalized relative POSIX path (OMS v1.0 §paths), returned unchanged."""
    if not isinstance(path, str) or not path:
        raise InputError(f"{what} must be a non-empty string")
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\x00" in path:
        raise InputError(
            f"{what} {path!r} is not a normalized relative path",
            hint="use paths like 'dir/file.bin': no leading '/', no '.', '..' or empty parts",
        )
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{what} {path!r} is not valid UTF-8") from exc
    return path


def sort_key(path: str) -> tuple[str, ...]:
    """model-signing's order: ``sorted()`` of PurePosixPath, i.e. component by component.

    So ``a/b`` < ``a-b`` (component ``a`` < ``a-b``), unlike a plain string sort.
    """
    return tuple(path.split("/"))


def _is_under(path: str, ignore: str) -> bool:
    """pathlib's ``is_relative_to``: the path is the ignored one or lies inside it."""
    return path == ignore or path.startswith(ignore + "/")


def effective_ignore_paths(
    ignore_paths: Iterable[str] = (),
    *,
    ignore_git_paths: bool = True,
    signature_name: str | None = DEFAULT_SIGNATURE_NAME,
) -> list[str]:
    """The ``ignore_paths`` model-signing's CLI records: user paths, git paths, the signature.

    model-signing stores them in a frozenset (arbitrary order); we sort them.
    """
    result = {check_relpath(p.rstrip("/"), "ignore path") for p in ignore_paths}
    if ignore_git_paths:
        result.update(GIT_IGNORE_PATHS)
    if signature_name:
        result.add(check_relpath(signature_name, "signature file name"))
    return sorted(result)


def model_signing_resources(
    files: Iterable[tuple[str, str]], ignore_paths: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """``(name, hex)`` in model-signing's order, minus ignored paths; rejects duplicates."""
    seen: dict[str, str] = {}
    for rel, digest in files:
        check_relpath(rel)
        m = _SHA256_RE.match(digest) if isinstance(digest, str) else None
        if not m:
            raise InputError(f"digest of {rel!r} must be sha256:<64 lowercase hex>, not {digest!r}")
        if rel in seen:
            raise InputError(f"file {rel!r} is listed twice")
        if any(_is_under(rel, ig) for ig in ignore_paths):
            continue
        seen[rel] = m.group(1)
    return sorted(seen.items(), key=lambda item: sort_key(item[0]))


def root_digest(resources: Iterable[tuple[str, str]]) -> str:
    """sha256 over the concatenated raw digests, in resource order (hex)."""
    h = hashlib.sha256()
    for _, hexdigest in resources:
        h.update(bytes.fromhex(hexdigest))
    return h.hexdigest()


def model_signing_statement(
    model_name: str,
    files: list[tuple[str, str]],
    ignore_paths: Sequence[str] = (),
    *,
    ignore_git_paths: bool = True,
    signature_name: str | None = DEFAULT_SIGNATURE_NAME,
) -> bytes:
    """The OMS v1.0 in-toto statement for a model whose file digests are known.

    ``files`` are ``(relative path, "sha256:<hex>")``, e.g. from the layer titles and digests
    of an OCI manifest. Files under an ignore path are left out, since ``model_signing
    verify`` would not hash them either. Defaults match ``model_signing sign`` run on the
    pulled folder with the signature saved as ``model.sig`` inside it.
    """
    if not isinstance(model_name, str) or not model_name:
        raise InputError("the model name (the statement's subject name) must not be empty")
    ignores = effective_ignore_paths(
        ignore_paths, ignore_git_paths=ignore_git_paths, signature_name=signature_name
    )
    resources = model_signing_resources(files, ignores)
    if not resources:
        raise InputError(f"model {model_name!r} has no files to sign")
    serialization: dict[str, object] = {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
    }
    if ignores:
        serialization["ignore_paths"] = ignores
    doc = {
        "_type": IN_TOTO_STATEMENT_V1,
        "subject": [{"name": model_name, "digest": {"sha256": root_digest(resources)}}],
        "predicateType": MODEL_SIGNING_PREDICATE,
        "predicate": {
            "serialization": serialization,
            "resources": [
                {"name": name, "algorithm": "sha256", "digest": hexdigest}
                for name, hexdigest in resources
            ],
        },
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def model_signing_statement_via_library(
    model_name: str,
    files: list[tuple[str, str]],
    ignore_paths: Sequence[str] = (),
    *,
    ignore_git_paths: bool = True,
    signature_name: str | None = DEFAULT_SIGNATURE_NAME,
) -> bytes:
    """The same statement built by model-signing's own classes (exactly 1.1.1), for checks.

    Raises InputError when model-signing is missing or another version: its private modules
    are not a stable API.
    """
    try:
        import pathlib

        import model_signing
        from google.protobuf import json_format
        from model_signing import manifest as ms_manifest
        from model_signing._hashing import hashing as ms_hashing
        from model_signing._signing import signing as ms_signing
    except ImportError as exc:
        raise InputError(
            "model-signing is not installed",
            hint=f"pip install model-signing=={MODEL_SIGNING_VERSION}",
        ) from exc
    if model_signing.__version__ != MODEL_SIGNING_VERSION:
        raise InputError(
            f"model-signing {model_signing.__version__} is installed; "
            f"only {MODEL_SIGNING_VERSION} is known to match"
        )
    ignores = effective_ignore_paths(
        ignore_paths, ignore_git_paths=ignore_git_paths, signature_name=signature_name
    )
    items = [
        ms_manifest.FileManifestItem(
            path=pathlib.PurePosixPath(rel),
            digest=ms_hashing.Digest("sha256", bytes.fromhex(hexdigest)),
        )
        for rel, hexdigest in model_signing_resources(files, ignores)
    ]
    serialization = ms_manifest._FileSerialization(
        "sha256", allow_symlinks=False, ignore_paths=[pathlib.Path(p) for p in ignores]
    )
    payload = ms_signing.Payload(ms_manifest.Manifest(model_name, items, serialization))
    text: str = json_format.MessageToJson(payload.statement.pb)
    return text.encode("utf-8")
