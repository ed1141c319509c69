"""Blob downloads: streamed through ``VerifyingWriter``, resumed with ``Range`` after a drop.

Memory never grows with blob size: each piece the transport hands over is hashed and written
as it comes (no coalescing copy). A dropped connection continues with ``Range: bytes=N-``;
only real progress earns a fresh set of retries, so a server that delivers a byte and then
stalls, over and over, cannot keep a pull forever.
"""

from __future__ import annotations

import io
import time
from typing import BinaryIO

import httpx

from ..digest import CHUNK, VerifyingWriter
from ..errors import LimitError, RegistryError
from ..oci.descriptor import Descriptor
from ..progress import HighWater, Progress
from .session import RepositoryClient
from .transport import describe_transport_error

MIN_RESUME_PROGRESS = 1024 * 1024  # a dropped download that moved less than this counts as a failure


def fetch_blob(repo: RepositoryClient, desc: Descriptor, out: BinaryIO, progress: Progress | None = None) -> None:
    """``Store.fetch_blob`` for a registry (see there for the contract)."""
    try:
        start: int | None = out.tell()
    except (OSError, ValueError):
        start = None
    writer = VerifyingWriter(out, desc.digest, desc.size)
    mark = HighWater(progress)
    failures = 0
    url = repo.blob_url(desc.digest)
    while True:
        headers = {"Accept-Encoding": "identity"}
        if writer.written:
            headers["Range"] = f"bytes={writer.written}-"
        before = writer.written
        try:
            resp = repo.send("GET", url, scopes=repo.pull_scopes, headers=headers, stream=True)
            try:
                if resp.status_code == 206 and writer.written:
                    content_range = resp.headers.get("content-range", "")
                    if not content_range.startswith(f"bytes {writer.written}-"):
                        raise RegistryError(
                            f"{repo.host} answered a resume at {writer.written} with range {content_range!r}"
                        )
                elif resp.status_code == 200 and writer.written:
                    # No range support: start over from the beginning of ``out``.
                    if start is None:
                        raise RegistryError(
                            f"{repo.host} cannot resume blob {desc.digest} and the output is not seekable"
                        )
                    out.seek(start)
                    out.truncate()
                    writer = VerifyingWriter(out, desc.digest, desc.size)
                    before = 0
                elif resp.status_code != 200:
                    raise repo.error(resp, f"blob {desc.digest}")
                _drain(repo, resp, writer, mark)
            finally:
                resp.close()
            writer.finish()
            return
        except httpx.TransportError as exc:
            if writer.written == desc.size:
                # Every byte arrived and only the end of the response was lost (a length
                # that overstated the body, a dropped final chunk): the digest decides.
                writer.finish()
                return
            moved = writer.written - before
            failures = 0 if moved >= MIN_RESUME_PROGRESS else failures + 1
            if failures > repo.options.retries:
                raise RegistryError(
                    f"download of blob {desc.digest} from {repo.host} keeps failing: {describe_transport_error(exc)}",
                    hint="check the network and try again",
                ) from exc
            time.sleep(repo.backoff(max(failures - 1, 0)))


def _drain(repo: RepositoryClient, resp: httpx.Response, writer: VerifyingWriter, mark: HighWater) -> None:
    """Hash and write each piece as the transport hands it over.

    ``iter_raw``: blobs are requested with ``Accept-Encoding: identity``, so there is
    nothing to decode; a server that compresses anyway fails the digest check. Whatever
    arrived before a dropped connection has been written, so the resume offset is exactly
    what ``out`` holds. Progress and statistics are reported about every 4 MiB.
    """
    unreported = 0
    try:
        for piece in resp.iter_raw():
            writer.write(piece)
            unreported += len(piece)
            if unreported >= CHUNK:
                repo.stats.add(downloaded_bytes=unreported)
                mark.reach(writer.written)
                unreported = 0
    finally:
        if unreported:
            repo.stats.add(downloaded_bytes=unreported)
            mark.reach(writer.written)


def read_blob(repo: RepositoryClient, desc: Descriptor, max_bytes: int) -> bytes:
    """A small blob in memory, verified, refused above ``max_bytes`` before any byte moves."""
    if desc.size > max_bytes:
        raise LimitError(
            f"blob {desc.digest} is {desc.size} bytes, over the limit of {max_bytes}",
            hint="raise it with the matching OMSIGN_MAX_* variable if this is expected",
        )
    buf = io.BytesIO()
    fetch_blob(repo, desc, buf)
    return buf.getvalue()
