"""The one small interface every place that holds models implements.

A registry (``registry.RegistryStore``) and an on-disk OCI image layout (``layout.LayoutStore``)
both implement ``Store``; push, pull, sign and verify never ask which one they have (the
go-containerregistry ``remote``/``layout`` split). Everything a store returns has been checked
against its digest; everything it accepts is addressed by digest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from ..limits import Limits
from ..oci.descriptor import Descriptor, ManifestData
from ..progress import Progress as Progress  # called with each count of new bytes moved
from ..reference import Reference


@dataclass(frozen=True)
class BlobSource:
    """Bytes to push: a file on disk (streamed, re-openable for resume) or a small buffer.

    ``digest`` is None when it is not known yet: the store hashes while sending (one read of
    the file) and returns the digest it computed. ``size`` is what the caller saw when it
    planned; a file that grows or shrinks meanwhile raises ``InputError``.
    """

    size: int
    path: Path | None = None
    data: bytes | None = None
    digest: str | None = None
    # Bytes that live elsewhere (a blob in another store): ``opener(offset)`` streams them from
    # ``offset`` on. ``open()`` wraps it in a seekable reader, so a resumed upload that rewinds
    # to a checkpoint simply reopens the source there.
    opener: Callable[[int], BinaryIO] | None = None

    def open(self) -> BinaryIO:
        import io

        if self.data is not None:
            return io.BytesIO(self.data)
        if self.opener is not None:
            from .streams import ReopeningReader

            return io.BufferedReader(ReopeningReader(self.opener, self.size), 256 * 1024)
        assert self.path is not None
        return open(self.path, "rb")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        from ..errors import UsageError

        raise UsageError(f"{name} must be an integer, not {raw!r}") from exc


@dataclass
class StoreOptions:
    """Connection settings shared by every store; layouts ignore the network ones."""

    plain_http: bool | None = None  # None: automatic (loopback registries speak HTTP)
    insecure: bool = False  # HTTPS without certificate verification
    ca_file: str | None = None  # PEM bundle to trust for HTTPS (else $SSL_CERT_FILE, else bundled roots)
    username: str | None = None
    password: str | None = None
    # Where username/password came from, named in "refused the credentials" errors: the flag
    # or variable the user set ("--username", "OMSIGN_USERNAME", "--src-creds"). The CLI fills it.
    credentials_source: str | None = None
    docker_config: Path | None = None
    concurrency: int = 4
    chunk_size: int = 64 * 1024 * 1024  # for chunked uploads of large blobs
    monolithic_max: int = 8 * 1024 * 1024  # blobs up to this size go in one PUT (held in memory)
    timeout: float = 60.0  # seconds without progress before a transfer is cut
    retries: int = field(default_factory=lambda: _env_int("OMSIGN_RETRIES", 5))
    max_retry_time: float = field(default_factory=lambda: float(_env_int("OMSIGN_MAX_RETRY_TIME", 120)))
    backoff_base: float = field(default_factory=lambda: float(os.environ.get("OMSIGN_BACKOFF_BASE", "0.5")))
    limits: Limits = field(default_factory=Limits.from_env)


@runtime_checkable
class Store(Protocol):
    """A repository of blobs and manifests, remote or on disk."""

    ref: Reference  # the repository (tag/digest of this value are ignored)
    limits: Limits

    # -- blobs -----------------------------------------------------------------------------
    def blob_exists(self, digest: str) -> bool:
        """True if the blob is present (HEAD); never downloads it."""

    def push_blob(
        self, source: BlobSource, progress: Progress | None = None, *, known_absent: bool = False
    ) -> Descriptor:
        """Store a blob, hashing while sending when ``source.digest`` is None.

        Returns a descriptor with media type ``application/octet-stream`` (callers set the real
        one). Skips the transfer when the digest is known and the blob exists, unless the caller
        says it just checked (``known_absent``: one HEAD per blob, not two). Resumes after a
        dropped connection. Raises ``InputError`` if the file changed size while being read.
        """

    def mount_blob(self, digest: str, from_repository: str) -> bool:
        """Cross-repository mount; False if the store could not mount (caller then pushes)."""

    def fetch_blob(self, desc: Descriptor, out: BinaryIO, progress: Progress | None = None) -> None:
        """Stream a blob into ``out``, verifying digest and size; resumes with ``Range``.

        Raises IntegrityError on any mismatch (``out`` then holds garbage; callers write to a
        temporary file). Never writes more than ``desc.size`` bytes.
        """

    def read_blob(self, desc: Descriptor, max_bytes: int) -> bytes:
        """A small blob (config, bundle) in memory, verified, refused above ``max_bytes``."""

    # -- manifests -------------------------------------------------------------------------
    def resolve(self, identifier: str) -> Descriptor:
        """Tag or digest -> descriptor of the manifest (media type, digest, size)."""

    def get_manifest(self, identifier: str) -> ManifestData:
        """Manifest bytes by tag or digest; by digest the bytes are checked against it."""

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> str:
        """Store manifest bytes exactly as given (by digest, and under ``tag`` if given).

        Returns the digest of ``data``. Does not maintain referrers: see ``referrers.attach``.
        """

    def delete_manifest(self, digest: str) -> None:
        """Remove a manifest by digest (used to clean up; may be unsupported -> RegistryError)."""

    def list_tags(self) -> list[str]:
        """All tags of the repository (pagination followed), sorted."""

    # -- referrers -------------------------------------------------------------------------
    def referrers_api(self, digest: str) -> list[Descriptor] | None:
        """Referrers from the store's native API, or None if it has none (-> fallback tag)."""
