"""Digests and the streaming writer that checks them.

Every byte omsign receives passes through a ``VerifyingWriter`` (or ``verify_bytes``): the
digest and size are checked as bytes arrive, so nothing is trusted because a server said so.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import BinaryIO, Protocol

from .errors import IntegrityError

CHUNK = 4 * 1024 * 1024  # large reads keep per-chunk Python overhead negligible
_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


def is_digest(value: str) -> bool:
    """True for the digests omsign accepts: ``sha256:`` or ``sha512:`` with lowercase hex."""
    return bool(_DIGEST_RE.match(value))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def new_hasher(digest: str) -> hashlib._Hash:
    alg = digest.split(":", 1)[0]
    if alg not in ("sha256", "sha512"):
        raise IntegrityError(f"unsupported digest algorithm {alg!r} in {digest}")
    return hashlib.new(alg)


def verify_bytes(data: bytes, digest: str, size: int | None = None, what: str = "blob") -> bytes:
    """Return ``data`` if it matches ``digest`` (and ``size``), else raise IntegrityError."""
    if size is not None and len(data) != size:
        raise IntegrityError(f"{what} {digest} is {len(data)} bytes, expected {size}")
    h = new_hasher(digest)
    h.update(data)
    actual = f"{digest.split(':', 1)[0]}:{h.hexdigest()}"
    if actual != digest:
        raise IntegrityError(f"{what} content does not match its digest: expected {digest}, got {actual}")
    return data


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def copy_verified(
    src: Readable, out: BinaryIO, digest: str, size: int, progress: Callable[[int], None] | None = None
) -> None:
    """Copy a blob from ``src`` to ``out``, checking ``digest`` and ``size`` (reads one byte past
    ``size`` so an overlong source fails instead of being cut)."""
    writer = VerifyingWriter(out, digest, size)
    while True:
        chunk = src.read(min(CHUNK, size - writer.written + 1))
        if not chunk:
            break
        writer.write(chunk)
        if progress is not None:
            progress(len(chunk))
    writer.finish()


class VerifyingWriter:
    """Writes to a file while hashing; ``finish()`` checks digest and size.

    Writing more than ``size`` bytes fails at once, so a server that streams forever cannot fill
    the disk. ``offset``/``hasher`` allow resuming after a dropped connection.
    """

    def __init__(self, out: BinaryIO, digest: str, size: int, what: str = "blob") -> None:
        self.out = out
        self.digest = digest
        self.size = size
        self.what = what
        self.hasher = new_hasher(digest)
        self.written = 0

    def write(self, chunk: bytes | memoryview) -> None:
        n = len(chunk)
        if self.written + n > self.size:
            raise IntegrityError(
                f"{self.what} {self.digest} is larger than the {self.size} bytes its descriptor declares"
            )
        self.hasher.update(chunk)
        self.out.write(chunk)
        self.written += n

    def finish(self) -> None:
        if self.written != self.size:
            raise IntegrityError(
                f"{self.what} {self.digest} ended after {self.written} of {self.size} bytes"
            )
        actual = f"{self.digest.split(':', 1)[0]}:{self.hasher.hexdigest()}"
        if actual != self.digest:
            raise IntegrityError(
                f"{self.what} content does not match its digest: expected {self.digest}, got {actual}"
            )


def hash_file(path: str, algorithm: str = "sha256") -> tuple[str, int]:
    """Digest and size of a file, read once in large chunks (hashlib releases the GIL)."""
    h = hashlib.new(algorithm)
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            size += n
    return f"{algorithm}:{h.hexdigest()}", size
