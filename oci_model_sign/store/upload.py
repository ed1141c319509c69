"""Blob uploads: one PUT for small blobs, resumable chunked PATCHes for large ones.

Every file is read once: large blobs are hashed while they are sent (chunked PATCH uploads fed
by a generator doing 4 MiB ``readinto`` calls into a reused buffer), small ones are read into
memory once, hashed and sent from there. A dropped connection costs a round trip, not the
transfer: the registry is asked how much it holds (``GET <location>`` -> ``Range``) and the
upload continues from there with the hasher rewound to a checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from ..digest import CHUNK, new_hasher
from ..errors import InputError, RegistryError
from ..oci.descriptor import Descriptor
from ..oci.mediatypes import OCTET_STREAM
from ..progress import HighWater, Progress
from .auth import repository_scope
from .base import BlobSource
from .session import AuthRefreshed, RepositoryClient
from .transport import RETRY_STATUSES, describe_transport_error


class UploadLost(Exception):
    """The registry no longer knows the upload session (or refused to resume): start over."""


def parse_upload_range(header: str | None) -> int | None:
    """``Range: 0-N`` of an upload session -> bytes the registry holds (N+1; "0-0" read as 0).

    distribution reports both an empty and a one-byte upload as ``0-0``; reading it as 0 is the
    safe side (a wrong guess gives 416 and another status query, never corrupt data).
    """
    if not header:
        return None
    text = header.strip()
    if text.lower().startswith("bytes="):
        text = text[6:]
    start, sep, end = text.partition("-")
    if not sep:
        return None
    try:
        s, e = int(start), int(end)
    except ValueError:
        return None
    if s != 0 or e < 0:
        return None
    return 0 if e == 0 else e + 1


def with_digest(location: str, digest: str) -> str:
    """Append ``digest=`` keeping distribution's ``?_state=``: replacing the query breaks it."""
    return f"{location}{'&' if '?' in location else '?'}digest={quote(digest, safe=':')}"


def rehash(
    f: BinaryIO,
    checkpoint: tuple[int, Any],
    target: int,
    algorithm: str,
    buf: bytearray,
    changed: InputError,
) -> Any:
    """A hasher holding exactly bytes [0, target) of the file; leaves ``f`` at ``target``.

    Starts from the last confirmed checkpoint when it lies before ``target`` (normally: only
    the partial chunk the registry kept is re-read), else from the start of the file.
    """
    ck_offset, ck_hasher = checkpoint
    if ck_offset <= target:
        hasher, pos = ck_hasher.copy(), ck_offset
    else:
        hasher, pos = hashlib.new(algorithm), 0
    f.seek(pos)
    view = memoryview(buf)
    while pos < target:
        n = f.readinto(view[: min(len(buf), target - pos)])  # type: ignore[attr-defined]
        if not n:
            raise changed
        hasher.update(view[:n])
        pos += n
    return hasher


def _changed(source: BlobSource, detail: str) -> InputError:
    name = str(source.path) if source.path is not None else "the data"
    return InputError(
        f"file changed while pushing: {name} {detail}",
        hint="re-run once nothing is writing to the model folder",
    )


def push_blob(
    repo: RepositoryClient, source: BlobSource, progress: Progress | None = None, *, known_absent: bool = False
) -> Descriptor:
    """``Store.push_blob`` for a registry (see there for the contract)."""
    if source.digest is not None and not known_absent and repo.blob_exists(source.digest):
        repo.stats.add(skipped_blobs=1)
        return Descriptor(OCTET_STREAM, source.digest, source.size)
    if source.data is not None or source.size <= repo.options.monolithic_max:
        return _push_monolithic(repo, source, progress)
    return _push_chunked(repo, source, progress)


def mount_blob(repo: RepositoryClient, digest: str, from_repository: str) -> bool:
    """Cross-repository mount; False when the registry would rather have the bytes."""
    url = f"{repo.repo_url}/blobs/uploads/?mount={quote(digest, safe=':')}&from={quote(from_repository, safe='/')}"
    scopes = [*repo.push_scopes, repository_scope(from_repository)]
    resp = repo.send("POST", url, scopes=scopes, headers={"Content-Length": "0"})
    if resp.status_code == 201:
        repo.stats.add(skipped_blobs=1)
        return True
    if resp.status_code == 202 and resp.headers.get("location"):
        # The registry opened an ordinary upload instead: cancel it, the caller pushes.
        with contextlib.suppress(RegistryError):
            repo.send("DELETE", repo.resolve_location(resp), scopes=repo.push_scopes).close()
    resp.close()
    return False


def _read_small(source: BlobSource) -> bytes:
    """Read a small file once, noticing if it is not the planned size."""
    with source.open() as f:
        data = f.read(source.size + 1)
    if len(data) != source.size:
        more = "+" if len(data) > source.size else ""
        raise _changed(source, f"is now {len(data)}{more} bytes, planned {source.size}")
    return data


def _start_upload(repo: RepositoryClient) -> tuple[str, int]:
    resp = repo.send(
        "POST", f"{repo.repo_url}/blobs/uploads/", scopes=repo.push_scopes, headers={"Content-Length": "0"}
    )
    if resp.status_code != 202:
        raise repo.error(resp, "a blob upload")
    raw_min = resp.headers.get("oci-chunk-min-length", "")
    return repo.resolve_location(resp), int(raw_min) if raw_min.isdigit() else 0


def _push_monolithic(repo: RepositoryClient, source: BlobSource, progress: Progress | None) -> Descriptor:
    data = source.data if source.data is not None else _read_small(source)
    if len(data) != source.size:
        raise _changed(source, f"is {len(data)} bytes, planned {source.size}")
    algorithm = source.digest.split(":", 1)[0] if source.digest else "sha256"
    h = new_hasher(f"{algorithm}:")
    h.update(data)
    digest = f"{algorithm}:{h.hexdigest()}"
    if source.digest is not None and digest != source.digest:
        raise _changed(source, f"now hashes to {digest}, planned {source.digest}")
    if source.digest is None and repo.blob_exists(digest):
        repo.stats.add(skipped_blobs=1)
        return Descriptor(OCTET_STREAM, digest, len(data))
    for round_ in range(2):
        location, _ = _start_upload(repo)
        resp = repo.send(
            "PUT",
            with_digest(location, digest),
            scopes=repo.push_scopes,
            headers={"Content-Type": OCTET_STREAM},
            content=data,
        )
        if resp.status_code in (201, 204):
            repo.stats.add(uploaded_bytes=len(data))
            if progress is not None:
                progress(len(data))
            return Descriptor(OCTET_STREAM, digest, len(data))
        if resp.status_code == 404:
            resp.close()
            # A retried PUT whose first answer was lost: the blob may be there already.
            if repo.blob_exists(digest):
                return Descriptor(OCTET_STREAM, digest, len(data))
            if round_ == 0:
                continue
        raise repo.error(resp, f"upload of blob {digest}")
    raise RegistryError(f"{repo.host} lost the upload of blob {digest} twice")


def _push_chunked(repo: RepositoryClient, source: BlobSource, progress: Progress | None) -> Descriptor:
    algorithm = source.digest.split(":", 1)[0] if source.digest else "sha256"
    last: Exception | None = None
    mark = HighWater(progress)  # shared by both rounds: a restarted session re-sends from 0
    for _round in range(2):
        location, min_chunk = _start_upload(repo)
        try:
            return _ChunkedUpload(repo, source, location, min_chunk, algorithm, mark).run()
        except UploadLost as exc:
            last = exc
            with contextlib.suppress(RegistryError, httpx.HTTPError):
                repo.send("DELETE", location, scopes=repo.push_scopes).close()
    raise RegistryError(
        f"{repo.host} refused to resume the upload of {source.path} twice ({last})",
        hint="try again; if it keeps failing, check for a proxy in between that cuts long uploads",
    )


class _ChunkedUpload:
    """One upload session of a large blob: PATCH chunk by chunk, resume, commit."""

    def __init__(
        self,
        repo: RepositoryClient,
        source: BlobSource,
        location: str,
        min_chunk: int,
        algorithm: str,
        mark: HighWater,
    ) -> None:
        self.repo = repo
        self.source = source
        self.location = location
        self.chunk = max(repo.options.chunk_size, min_chunk, 1)
        self.algorithm = algorithm
        self.mark = mark
        self.buf = bytearray(min(CHUNK, max(self.chunk, 1)))

    def _body(self, f: BinaryIO, hasher: Any, offset: int, length: int, sent: list[int]) -> Iterator[bytes]:
        """Yield ``length`` bytes of ``f`` in large reads, hashing each before it goes out.

        The buffer is reused: the HTTP layer copies each piece into its send buffer before asking
        for the next one, so no piece outlives its yield. That request for the next piece is
        also the moment a piece has been sent, so progress moves per piece (at most ``CHUNK``
        bytes), not per chunk answered: a 64 MiB PATCH would otherwise freeze the bar.
        """
        view = memoryview(self.buf)
        remaining = length
        while remaining:
            n = f.readinto(view[: min(len(self.buf), remaining)])  # type: ignore[attr-defined]
            if not n:
                raise _changed(self.source, "got shorter while being read")
            piece = view[:n]
            hasher.update(piece)
            sent[0] += n
            remaining -= n
            yield piece  # type: ignore[misc]
            self.mark.reach(offset + length - remaining)

    def _status(self) -> int:
        """Ask the registry where an interrupted upload stands; returns the bytes it holds."""
        repo = self.repo
        try:
            resp = repo.send("GET", self.location, scopes=repo.push_scopes)
        except RegistryError as exc:
            raise UploadLost(exc.message) from exc
        if resp.status_code not in (200, 204):
            resp.close()
            raise UploadLost(f"upload status answered {resp.status_code}")
        offset = parse_upload_range(resp.headers.get("range"))
        if resp.headers.get("location"):
            self.location = repo.resolve_location(resp)
        return 0 if offset is None else offset

    def _patch(self, f: BinaryIO, hasher: Any, offset: int, end: int) -> tuple[str | None, httpx.Response | None]:
        """Send bytes [offset, end); (failure, None) if the connection or auth broke."""
        sent = [0]
        headers = {
            "Content-Type": OCTET_STREAM,
            "Content-Range": f"{offset}-{end - 1}",
            "Content-Length": str(end - offset),
        }
        try:
            body = self._body(f, hasher, offset, end - offset, sent)
            resp = self.repo.send(
                "PATCH", self.location, scopes=self.repo.push_scopes, headers=headers, content=body, replayable=False
            )
            return None, resp
        except httpx.TransportError as exc:
            return describe_transport_error(exc), None
        except AuthRefreshed:
            return "credentials expired", None
        finally:
            self.repo.stats.add(uploaded_bytes=sent[0])

    def run(self) -> Descriptor:
        repo, source, size = self.repo, self.source, self.source.size
        hasher = hashlib.new(self.algorithm)
        checkpoint: tuple[int, Any] = (0, hasher.copy())
        offset = failures = 0
        shrunk = _changed(source, "got shorter while being read")
        with source.open() as f:
            while offset < size:
                end = min(offset + self.chunk, size)
                failure, resp = self._patch(f, hasher, offset, end)
                if resp is not None:
                    if resp.status_code == 202:
                        self.location = repo.resolve_location(resp)
                        held = parse_upload_range(resp.headers.get("range"))
                        if held is None or held == end:
                            offset = end
                            checkpoint = (end, hasher.copy())
                            failures = 0
                            self.mark.reach(end)
                            continue
                        failure = f"registry holds {held} bytes after a chunk ending at {end}"
                    elif resp.status_code in (416, *RETRY_STATUSES):
                        resp.close()
                        failure = f"chunk answered {resp.status_code}"
                    elif resp.status_code == 404:
                        resp.close()
                        raise UploadLost("upload session unknown")
                    else:
                        raise repo.error(resp, f"upload of {source.path}")
                # Something went wrong mid-chunk: ask the registry what it has and carry on.
                failures += 1
                if failures > repo.options.retries:
                    raise RegistryError(
                        f"upload of {source.path} to {repo.host} keeps failing: {failure}",
                        hint="check the network or proxy; re-running resumes nothing but skips finished blobs",
                    )
                time.sleep(repo.backoff(failures - 1))
                held = self._status()
                if held > size:
                    raise UploadLost(f"registry holds {held} bytes of a {size}-byte blob")
                hasher = rehash(f, checkpoint, held, self.algorithm, self.buf, shrunk)
                offset = held
                checkpoint = (held, hasher.copy())
            if f.read(1):
                raise _changed(source, f"grew past the planned {size} bytes")
        digest = f"{self.algorithm}:{hasher.hexdigest()}"
        if source.digest is not None and digest != source.digest:
            raise _changed(source, f"now hashes to {digest}, planned {source.digest}")
        return self._commit(digest, size)

    def _commit(self, digest: str, size: int) -> Descriptor:
        repo = self.repo
        resp = repo.send(
            "PUT", with_digest(self.location, digest), scopes=repo.push_scopes, headers={"Content-Length": "0"}
        )
        if resp.status_code not in (201, 204):
            if resp.status_code == 404:
                resp.close()
                if repo.blob_exists(digest):
                    return Descriptor(OCTET_STREAM, digest, size)
                raise UploadLost("upload session vanished before it was committed")
            raise repo.error(resp, f"commit of blob {digest}")
        resp.close()
        return Descriptor(OCTET_STREAM, digest, size)
