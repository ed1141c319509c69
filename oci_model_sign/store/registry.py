"""An OCI distribution-spec v1.1 registry as a ``Store``, on one pooled httpx client.

This is the data path for 100 GB models, so it is written around three rules:

* every file is read once: large blobs are hashed while they are sent (chunked PATCH uploads
  fed by a generator doing 4 MiB ``readinto`` calls into a reused buffer), small ones are read
  into memory once, hashed and sent from there;
* memory never grows with blob size: uploads stream chunk by chunk, downloads stream through
  ``VerifyingWriter``; manifests and indexes are read under explicit byte limits;
* a dropped connection costs a round trip, not the transfer: uploads ask the registry how much
  it has (``GET <location>`` -> ``Range``) and continue from there with the hasher rewound to a
  checkpoint; downloads continue with ``Range: bytes=N-``.

One client per store (keep-alive pool sized for the caller's thread pool); httpx's sync client
is safe to share between threads, and the only shared mutable state here (auth, stats, the
referrers-API probe) sits behind locks.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from ..digest import CHUNK, VerifyingWriter, is_digest, new_hasher, verify_bytes
from ..errors import AuthError, InputError, IntegrityError, LimitError, NotFoundError, RegistryError
from ..limits import load_json
from ..oci.descriptor import Descriptor, ManifestData
from ..oci.mediatypes import MANIFEST_TYPES, OCI_INDEX, OCTET_STREAM
from ..reference import Reference
from .auth import (
    Challenge,
    Credentials,
    TokenCache,
    basic_header,
    credentials_from_config,
    login_hint,
    parse_challenge,
    parse_token_response,
    repository_scope,
)
from .base import BlobSource, Progress, StoreOptions

ACCEPT_MANIFESTS = ", ".join(MANIFEST_TYPES)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
ERROR_BODY_MAX = 64 * 1024  # enough for any registry error document; more is not read
MAX_PAGES = 10_000  # tags/referrers pagination: a registry looping on Link cannot keep us forever
BACKOFF_BASE = 0.25
BACKOFF_CAP = 10.0
MANIFEST_BLOB_RETRIES = 3  # manifest PUTs refused because a just-written blob is not visible yet
MIN_RESUME_PROGRESS = 1024 * 1024  # a dropped download that moved less than this counts as a failure
USER_AGENT = "omsign/0.1 (+https://github.com/omsign)"
TRANSPORT_READ = 1024 * 1024


def _raise_transport_read_size() -> None:
    """Let httpcore read up to 1 MiB per socket read instead of 64 KiB.

    Blob downloads are the hot loop of a pull: every read costs a timeout ioctl, an h11 event
    and a trip through the interpreter (and a GIL hand-off between download threads). Sixteen
    times fewer reads cut pull CPU by about a fifth. httpcore reads this as an instance
    attribute of its HTTP/1.1 connections and offers no public knob, so the class default is
    raised (never lowered) once; a read still returns whatever the socket has.
    """
    try:
        from httpcore._sync.http11 import HTTP11Connection
    except ImportError:  # a future httpcore layout: keep its default
        return
    if getattr(HTTP11Connection, "READ_NUM_BYTES", TRANSPORT_READ) < TRANSPORT_READ:
        HTTP11Connection.READ_NUM_BYTES = TRANSPORT_READ


_raise_transport_read_size()


class _UploadLost(Exception):
    """The registry no longer knows the upload session (or refused to resume): start over."""


class _AuthRefreshed(Exception):
    """A streamed request got 401 and new credentials are ready; the body cannot be replayed."""


@dataclass
class TransferStats:
    """Counters the push/pull engines report from (bytes actually moved, not planned)."""

    uploaded_bytes: int = 0
    downloaded_bytes: int = 0
    skipped_blobs: int = 0
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(
        self,
        *,
        uploaded_bytes: int = 0,
        downloaded_bytes: int = 0,
        skipped_blobs: int = 0,
        requests: int = 0,
    ) -> None:
        with self._lock:
            self.uploaded_bytes += uploaded_bytes
            self.downloaded_bytes += downloaded_bytes
            self.skipped_blobs += skipped_blobs
            self.requests += requests

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "uploaded_bytes": self.uploaded_bytes,
                "downloaded_bytes": self.downloaded_bytes,
                "skipped_blobs": self.skipped_blobs,
                "requests": self.requests,
            }


def describe_transport_error(exc: BaseException) -> str:
    """A short human reason for an httpx transport failure."""
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "connection refused" in low or "errno 111" in low:
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out (no progress)"
    if "name or service not known" in low or "nodename nor servname" in low or "name resolution" in low:
        return "unknown host"
    if "certificate" in low:
        return f"TLS certificate problem: {text}"
    return " ".join(text.split())


def _transport_failure(exc: httpx.TransportError, host: str, method: str, url: str) -> RegistryError:
    """Say who failed (a redirect target is not the registry) and how (unreachable vs broken)."""
    try:
        failed = exc.request.url
        where = failed.netloc.decode() if isinstance(failed.netloc, bytes) else str(failed.netloc)
    except RuntimeError:  # no request attached
        where = host
    if where != host:
        where = f"{where} (where {host} redirected)"
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return RegistryError(
            f"cannot reach {where}: {describe_transport_error(exc)}",
            hint="check the address, the network, and that the registry is running",
        )
    return RegistryError(
        f"{method} {httpx.URL(url).path} failed on {where}: {describe_transport_error(exc)}",
        hint="the registry or a proxy in front of it broke the connection; retry, or check the proxy",
    )


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: an integer, or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(int(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(attempt: int, first: float = BACKOFF_BASE) -> float:
    """Exponential backoff with jitter (half fixed, half random) so parallel workers spread out."""
    base = min(BACKOFF_CAP, first * (2**attempt))
    return float(base / 2 + random.uniform(0, base / 2))


def parse_next_link(header: str | None) -> str | None:
    """The target of ``Link: <url>; rel="next"`` (RFC 8288), or None."""
    if not header:
        return None
    for part in header.split(","):
        segs = part.split(";")
        target = segs[0].strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        for param in segs[1:]:
            key, _, val = param.strip().partition("=")
            if key.strip().lower() == "rel" and "next" in val.strip().strip('"').split():
                return target[1:-1]
    return None


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


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip()


class RegistryStore:
    """A repository on a distribution-spec registry (see module docstring for the design)."""

    def __init__(self, ref: Reference, options: StoreOptions) -> None:
        if ref.registry is None:
            raise ValueError("RegistryStore needs a remote reference")
        self.ref = ref
        self.options = options
        self.limits = options.limits
        self.host = ref.api_host
        plain = options.plain_http if options.plain_http is not None else ref.is_loopback
        self.base_url = f"{'http' if plain else 'https'}://{self.host}"
        self.repo_url = f"{self.base_url}/v2/{ref.repository}"
        self.stats = TransferStats()
        timeout = httpx.Timeout(options.timeout)  # per connect / per read / per write: no progress
        pool = max(4, options.concurrency * 2 + 2)
        self._client = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            verify=not options.insecure,
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
            event_hooks={"request": [self._count_request]},
        )
        self._auth_lock = threading.Lock()
        self._scheme: str | None = None  # "basic" or "bearer" once the registry challenged us
        self._challenge: Challenge | None = None
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        self._tokens = TokenCache()
        self._referrers_lock = threading.Lock()
        self._referrers_supported: bool | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RegistryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryStore({self.base_url}/{self.ref.repository})"

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, float(getattr(self.options, "backoff_base", BACKOFF_BASE)))

    def check_auth(self) -> None:
        """Prove the credentials work (``omsign login``): GET /v2/ through the normal auth dance."""
        resp = self._send("GET", f"{self.base_url}/v2/", scopes=self._pull)
        if resp.status_code != 200:
            raise self._error(resp, "the registry API")
        resp.close()

    def _count_request(self, request: httpx.Request) -> None:
        self.stats.add(requests=1)

    # -- scopes ---------------------------------------------------------------------------
    @property
    def _pull(self) -> list[str]:
        return [repository_scope(self.ref.repository)]

    @property
    def _push(self) -> list[str]:
        return [repository_scope(self.ref.repository, push=True)]

    # -- auth -----------------------------------------------------------------------------
    def _get_credentials(self) -> Credentials | None:
        """Explicit options first, else the docker config; looked up once, only when challenged."""
        if not self._credentials_loaded:
            if self.options.username is not None:
                self._credentials = Credentials(
                    self.options.username, self.options.password or "", source="--username"
                )
            else:
                assert self.ref.registry is not None
                self._credentials = credentials_from_config(self.ref.registry, self.options.docker_config)
            self._credentials_loaded = True
        return self._credentials

    def _no_credentials(self) -> AuthError:
        return AuthError(
            f"{self.host} requires authentication and no credentials were found",
            hint=login_hint(self.ref.registry or self.host),
        )

    def _refused(self, creds: Credentials | None) -> AuthError:
        if creds is None or not creds.has_secret:
            return self._no_credentials()
        who = f"user {creds.username!r}" if creds.username else "the identity token"
        return AuthError(
            f"{self.host} refused the credentials of {who} (from {creds.source})",
            hint=login_hint(self.ref.registry or self.host),
        )

    def _auth_header(self, scopes: list[str]) -> str | None:
        scheme = self._scheme
        if scheme is None:
            return None
        if scheme == "basic":
            creds = self._credentials
            return basic_header(creds) if creds is not None and creds.has_secret else None
        challenge = self._challenge
        assert challenge is not None and challenge.realm is not None
        token = self._tokens.get(challenge.realm, challenge.service, scopes)
        if token is None:
            with self._auth_lock:
                token = self._tokens.get(challenge.realm, challenge.service, scopes)
                if token is None:
                    token = self._fetch_token(challenge, scopes)
        return f"Bearer {token}"

    def _fetch_token(self, challenge: Challenge, scopes: list[str]) -> str:
        """Trade credentials (or nothing: anonymous pull) for a bearer token for ``scopes``."""
        assert challenge.realm is not None
        creds = self._get_credentials()
        service = challenge.service
        try:
            if creds is not None and creds.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "omsign",
                    "scope": " ".join(scopes),
                }
                if service:
                    form["service"] = service
                resp = self._client.post(challenge.realm, data=form)
            else:
                params: list[tuple[str, str | int | float | bool | None]] = []
                if service:
                    params.append(("service", service))
                params.extend(("scope", s) for s in scopes)
                headers: dict[str, str] = {}
                if creds is not None and creds.has_secret:
                    headers["Authorization"] = basic_header(creds)
                    if creds.username:
                        params.append(("account", creds.username))
                params.append(("client_id", "omsign"))
                resp = self._client.get(challenge.realm, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise RegistryError(
                f"cannot reach the token service {challenge.realm}: {describe_transport_error(exc)}"
            ) from exc
        if resp.status_code in (401, 403):
            raise self._refused(creds)
        if resp.status_code != 200:
            raise RegistryError(f"the token service {challenge.realm} answered {resp.status_code}")
        if len(resp.content) > ERROR_BODY_MAX * 16:
            raise LimitError("the token service sent an oversized answer")
        token, lifetime = parse_token_response(resp.content)
        self._tokens.put(challenge.realm, service, scopes, token, lifetime)
        return token

    def _on_unauthorized(self, resp: httpx.Response, scopes: list[str], sent: str | None) -> list[str]:
        """Learn from a 401: switch scheme, drop a stale token; raise if nothing can help.

        Returns the scopes to ask for next (ours plus whatever the challenge names).
        """
        challenge = parse_challenge(resp.headers.get("www-authenticate", ""))
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            raise AuthError(
                f"{self.host} demands authentication with an unsupported scheme",
                hint=login_hint(self.ref.registry or self.host),
            )
        with self._auth_lock:
            creds = self._get_credentials()
            if challenge.scheme == "basic":
                if creds is None or creds.username is None or creds.password is None:
                    raise self._no_credentials()
                if sent is not None and sent.startswith("Basic "):
                    raise self._refused(creds)
                self._scheme = "basic"
                return scopes
            if not challenge.realm:
                raise AuthError(f"{self.host} sent a Bearer challenge without a realm")
            merged = sorted(set(scopes) | set(challenge.scopes))
            if sent is not None and sent.startswith("Bearer "):
                old = self._challenge
                if old is not None and old.realm:
                    self._tokens.invalidate(old.realm, old.service, scopes)
            self._scheme = "bearer"
            self._challenge = challenge
            return merged

    # -- the one request loop -------------------------------------------------------------
    def _send(
        self,
        method: str,
        url: str,
        *,
        scopes: list[str],
        headers: dict[str, str] | None = None,
        content: bytes | Iterator[bytes] | None = None,
        stream: bool = False,
        replayable: bool = True,
    ) -> httpx.Response:
        """Send with auth, retries (transport errors, 429, 5xx) and ``Retry-After``.

        A non-replayable body (a generator) is sent once: transport errors propagate as httpx
        exceptions and a 401 raises ``_AuthRefreshed``, so the caller resumes from the registry's
        upload status instead of resending bytes it no longer has.
        """
        deadline = time.monotonic() + self.options.max_retry_time
        attempt = 0
        auth_rounds = 0
        while True:
            request_headers = dict(headers or {})
            sent = self._auth_header(scopes)
            if sent is not None:
                request_headers["Authorization"] = sent
            request = self._client.build_request(method, url, headers=request_headers, content=content)
            try:
                resp = self._client.send(request, stream=stream)
            except httpx.TooManyRedirects as exc:
                raise RegistryError(
                    f"{self.host} redirected {method} {httpx.URL(url).path} too many times (a redirect loop)",
                    hint="the registry or a proxy in front of it is misconfigured",
                ) from exc
            except httpx.TransportError as exc:
                if not replayable:
                    raise
                delay = self._backoff(attempt)
                attempt += 1
                if attempt > self.options.retries or time.monotonic() + delay > deadline:
                    raise _transport_failure(exc, self.host, method, url) from exc
                time.sleep(delay)
                continue
            if resp.status_code == 401:
                resp.close()
                if auth_rounds >= 2:
                    raise self._refused(self._credentials)
                auth_rounds += 1
                scopes = self._on_unauthorized(resp, scopes, sent)
                if not replayable:
                    raise _AuthRefreshed()
                continue
            if resp.status_code in RETRY_STATUSES and replayable:
                wait = retry_after_seconds(resp.headers.get("retry-after"))
                delay = wait if wait is not None else self._backoff(attempt)
                if attempt >= self.options.retries or time.monotonic() + delay > deadline:
                    return resp  # the caller turns it into an error naming the operation
                resp.close()
                attempt += 1
                time.sleep(delay)
                continue
            return resp

    def _error(self, resp: httpx.Response, what: str) -> RegistryError:
        """The registry's error document folded into one of our errors (reads at most 64 KiB)."""
        body = b""
        try:
            for piece in resp.iter_bytes():
                body += piece
                if len(body) > ERROR_BODY_MAX:
                    break
        except (httpx.HTTPError, httpx.StreamError):
            pass
        finally:
            resp.close()
        detail = ""
        try:
            value = load_json(body[:ERROR_BODY_MAX], max_bytes=ERROR_BODY_MAX, depth=16, what="error")
            errors = value.get("errors") if isinstance(value, dict) else None
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                code = errors[0].get("code", "")
                message = errors[0].get("message", "")
                detail = f"{code}: {message}".strip(": ")
        except Exception:
            detail = ""
        status = resp.status_code
        suffix = f" ({detail})" if detail else ""
        if status == 404:
            return NotFoundError(f"{what} not found in {self.ref.repo_name}{suffix}")
        if status in (401, 403):
            return AuthError(
                f"{self.host} denied access to {what} ({status}){suffix}",
                hint=login_hint(self.ref.registry or self.host),
            )
        if status in RETRY_STATUSES:
            return RegistryError(
                f"{self.host} answered {status} for {what}{suffix}, retries spent",
                hint="the registry is overloaded or failing; try again later",
            )
        return RegistryError(f"{self.host} answered {status} for {what}{suffix}")

    def _resolve_location(self, resp: httpx.Response) -> str:
        location = resp.headers.get("location")
        if not location:
            raise RegistryError(f"{self.host} started an upload without a Location header")
        return str(resp.request.url.join(location))

    @staticmethod
    def _with_digest(location: str, digest: str) -> str:
        """Append ``digest=`` keeping distribution's ``?_state=``: replacing the query breaks it."""
        return f"{location}{'&' if '?' in location else '?'}digest={quote(digest, safe=':')}"

    def _read_limited(self, resp: httpx.Response, limit: int, what: str) -> bytes:
        """Read a response body, refusing (before and while reading) anything over ``limit``."""
        try:
            length = resp.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise LimitError(
                    f"{what} is {int(length)} bytes, over the limit of {limit}",
                    hint="raise it with the matching OMSIGN_MAX_* variable if this is expected",
                )
            data = bytearray()
            for piece in resp.iter_bytes():
                data += piece
                if len(data) > limit:
                    raise LimitError(
                        f"{what} is over the limit of {limit} bytes",
                        hint="raise it with the matching OMSIGN_MAX_* variable if this is expected",
                    )
            self.stats.add(downloaded_bytes=len(data))
            return bytes(data)
        finally:
            resp.close()

    # -- blobs ----------------------------------------------------------------------------
    def _blob_url(self, digest: str) -> str:
        return f"{self.repo_url}/blobs/{digest}"

    def blob_exists(self, digest: str) -> bool:
        resp = self._send("HEAD", self._blob_url(digest), scopes=self._pull)
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._error(resp, f"blob {digest}")

    def push_blob(
        self, source: BlobSource, progress: Progress | None = None, *, known_absent: bool = False
    ) -> Descriptor:
        if source.digest is not None and not known_absent and self.blob_exists(source.digest):
            self.stats.add(skipped_blobs=1)
            return Descriptor(OCTET_STREAM, source.digest, source.size)
        if source.data is not None or source.size <= self.options.monolithic_max:
            return self._push_monolithic(source, progress)
        return self._push_chunked(source, progress)

    def _changed(self, source: BlobSource, detail: str) -> InputError:
        name = str(source.path) if source.path is not None else "the data"
        return InputError(
            f"file changed while pushing: {name} {detail}",
            hint="re-run once nothing is writing to the model folder",
        )

    def _read_small(self, source: BlobSource) -> bytes:
        """Read a small file once, noticing if it is not the planned size."""
        with source.open() as f:
            data = f.read(source.size + 1)
        if len(data) != source.size:
            raise self._changed(source, f"is now {len(data)}{'+' if len(data) > source.size else ''} bytes, planned {source.size}")
        return data

    def _start_upload(self) -> tuple[str, int]:
        resp = self._send(
            "POST", f"{self.repo_url}/blobs/uploads/", scopes=self._push, headers={"Content-Length": "0"}
        )
        if resp.status_code != 202:
            raise self._error(resp, "a blob upload")
        raw_min = resp.headers.get("oci-chunk-min-length", "")
        return self._resolve_location(resp), int(raw_min) if raw_min.isdigit() else 0

    def _push_monolithic(self, source: BlobSource, progress: Progress | None) -> Descriptor:
        data = source.data if source.data is not None else self._read_small(source)
        if len(data) != source.size:
            raise self._changed(source, f"is {len(data)} bytes, planned {source.size}")
        algorithm = source.digest.split(":", 1)[0] if source.digest else "sha256"
        h = new_hasher(f"{algorithm}:")
        h.update(data)
        digest = f"{algorithm}:{h.hexdigest()}"
        if source.digest is not None and digest != source.digest:
            raise self._changed(source, f"now hashes to {digest}, planned {source.digest}")
        if source.digest is None and self.blob_exists(digest):
            self.stats.add(skipped_blobs=1)
            return Descriptor(OCTET_STREAM, digest, len(data))
        for round_ in range(2):
            location, _ = self._start_upload()
            resp = self._send(
                "PUT",
                self._with_digest(location, digest),
                scopes=self._push,
                headers={"Content-Type": OCTET_STREAM},
                content=data,
            )
            if resp.status_code in (201, 204):
                self.stats.add(uploaded_bytes=len(data))
                if progress is not None:
                    progress(len(data))
                return Descriptor(OCTET_STREAM, digest, len(data))
            if resp.status_code == 404:
                resp.close()
                # A retried PUT whose first answer was lost: the blob may be there already.
                if self.blob_exists(digest):
                    return Descriptor(OCTET_STREAM, digest, len(data))
                if round_ == 0:
                    continue
            raise self._error(resp, f"upload of blob {digest}")
        raise RegistryError(f"{self.host} lost the upload of blob {digest} twice")

    def _push_chunked(self, source: BlobSource, progress: Progress | None) -> Descriptor:
        algorithm = source.digest.split(":", 1)[0] if source.digest else "sha256"
        last: Exception | None = None
        for _round in range(2):
            location, min_chunk = self._start_upload()
            try:
                return self._upload_chunks(source, location, min_chunk, algorithm, progress)
            except _UploadLost as exc:
                last = exc
                with contextlib.suppress(RegistryError, httpx.HTTPError):
                    self._send("DELETE", location, scopes=self._push).close()
        raise RegistryError(
            f"{self.host} refused to resume the upload of {source.path} twice ({last})",
            hint="try again; if it keeps failing lower --chunk-size or check a proxy in between",
        )

    def _chunk_body(
        self, f: BinaryIO, hasher: Any, length: int, buf: bytearray, sent: list[int], source: BlobSource
    ) -> Iterator[bytes]:
        """Yield ``length`` bytes of ``f`` in large reads, hashing each before it goes out.

        The buffer is reused: the HTTP layer copies each piece into its send buffer before asking
        for the next one, so no piece outlives its yield.
        """
        view = memoryview(buf)
        remaining = length
        while remaining:
            n = f.readinto(view[: min(len(buf), remaining)])  # type: ignore[attr-defined]
            if not n:
                raise self._changed(source, "got shorter while being read")
            piece = view[:n]
            hasher.update(piece)
            sent[0] += n
            remaining -= n
            yield piece  # type: ignore[misc]

    def _upload_status(self, location: str) -> tuple[str, int]:
        """Ask the registry where an interrupted upload stands: (location, bytes it holds)."""
        try:
            resp = self._send("GET", location, scopes=self._push)
        except RegistryError as exc:
            raise _UploadLost(exc.message) from exc
        if resp.status_code not in (200, 204):
            resp.close()
            raise _UploadLost(f"upload status answered {resp.status_code}")
        offset = parse_upload_range(resp.headers.get("range"))
        new_location = self._resolve_location(resp) if resp.headers.get("location") else location
        return new_location, 0 if offset is None else offset

    @staticmethod
    def _rehash(
        f: BinaryIO,
        source: BlobSource,
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

    def _upload_chunks(
        self,
        source: BlobSource,
        location: str,
        min_chunk: int,
        algorithm: str,
        progress: Progress | None,
    ) -> Descriptor:
        size = source.size
        chunk = max(self.options.chunk_size, min_chunk, 1)
        hasher = hashlib.new(algorithm)
        checkpoint: tuple[int, Any] = (0, hasher.copy())
        offset = 0
        reported = 0
        failures = 0
        buf = bytearray(min(CHUNK, max(chunk, 1)))
        shrunk = self._changed(source, "got shorter while being read")
        with source.open() as f:
            while offset < size:
                end = min(offset + chunk, size)
                sent = [0]
                body = self._chunk_body(f, hasher, end - offset, buf, sent, source)
                headers = {
                    "Content-Type": OCTET_STREAM,
                    "Content-Range": f"{offset}-{end - 1}",
                    "Content-Length": str(end - offset),
                }
                failure: str | None = None
                try:
                    resp = self._send(
                        "PATCH", location, scopes=self._push, headers=headers, content=body, replayable=False
                    )
                except httpx.TransportError as exc:
                    failure = describe_transport_error(exc)
                except _AuthRefreshed:
                    failure = "credentials expired"
                finally:
                    self.stats.add(uploaded_bytes=sent[0])
                if failure is None:
                    if resp.status_code == 202:
                        location = self._resolve_location(resp)
                        held = parse_upload_range(resp.headers.get("range"))
                        if held is None or held == end:
                            offset = end
                            checkpoint = (end, hasher.copy())
                            failures = 0
                            if progress is not None and offset > reported:
                                progress(offset - reported)
                            reported = max(reported, offset)
                            continue
                        failure = f"registry holds {held} bytes after a chunk ending at {end}"
                    elif resp.status_code in (416, *RETRY_STATUSES):
                        resp.close()
                        failure = f"chunk answered {resp.status_code}"
                    elif resp.status_code == 404:
                        resp.close()
                        raise _UploadLost("upload session unknown")
                    else:
                        raise self._error(resp, f"upload of {source.path}")
                # Something went wrong mid-chunk: ask the registry what it has and carry on.
                failures += 1
                if failures > self.options.retries:
                    raise RegistryError(
                        f"upload of {source.path} to {self.host} keeps failing: {failure}",
                        hint="check the network or proxy; re-running resumes nothing but skips finished blobs",
                    )
                time.sleep(self._backoff(failures - 1))
                location, held = self._upload_status(location)
                if held > size:
                    raise _UploadLost(f"registry holds {held} bytes of a {size}-byte blob")
                hasher = self._rehash(f, source, checkpoint, held, algorithm, buf, shrunk)
                offset = held
                checkpoint = (held, hasher.copy())
            if f.read(1):
                raise self._changed(source, f"grew past the planned {size} bytes")
        digest = f"{algorithm}:{hasher.hexdigest()}"
        if source.digest is not None and digest != source.digest:
            raise self._changed(source, f"now hashes to {digest}, planned {source.digest}")
        resp = self._send(
            "PUT", self._with_digest(location, digest), scopes=self._push, headers={"Content-Length": "0"}
        )
        if resp.status_code not in (201, 204):
            if resp.status_code == 404:
                resp.close()
                if self.blob_exists(digest):
                    return Descriptor(OCTET_STREAM, digest, size)
                raise _UploadLost("upload session vanished before it was committed")
            raise self._error(resp, f"commit of blob {digest}")
        return Descriptor(OCTET_STREAM, digest, size)

    def mount_blob(self, digest: str, from_repository: str) -> bool:
        url = f"{self.repo_url}/blobs/uploads/?mount={quote(digest, safe=':')}&from={quote(from_repository, safe='/')}"
        scopes = [*self._push, repository_scope(from_repository)]
        resp = self._send("POST", url, scopes=scopes, headers={"Content-Length": "0"})
        if resp.status_code == 201:
            self.stats.add(skipped_blobs=1)
            return True
        if resp.status_code == 202 and resp.headers.get("location"):
            # The registry opened an ordinary upload instead: cancel it, the caller pushes.
            with contextlib.suppress(RegistryError):
                self._send("DELETE", self._resolve_location(resp), scopes=self._push).close()
        resp.close()
        return False

    def fetch_blob(self, desc: Descriptor, out: BinaryIO, progress: Progress | None = None) -> None:
        try:
            start = out.tell()
        except (OSError, ValueError):
            start = None
        writer = VerifyingWriter(out, desc.digest, desc.size)
        failures = 0
        url = self._blob_url(desc.digest)
        while True:
            headers = {"Accept-Encoding": "identity"}
            if writer.written:
                headers["Range"] = f"bytes={writer.written}-"
            before = writer.written
            try:
                resp = self._send("GET", url, scopes=self._pull, headers=headers, stream=True)
                try:
                    if resp.status_code == 206 and writer.written:
                        content_range = resp.headers.get("content-range", "")
                        if not content_range.startswith(f"bytes {writer.written}-"):
                            raise RegistryError(
                                f"{self.host} answered a resume at {writer.written} with range {content_range!r}"
                            )
                    elif resp.status_code == 200 and writer.written:
                        # No range support: start over from the beginning of ``out``.
                        if start is None:
                            raise RegistryError(
                                f"{self.host} cannot resume blob {desc.digest} and the output is not seekable"
                            )
                        out.seek(start)
                        out.truncate()
                        writer = VerifyingWriter(out, desc.digest, desc.size)
                        before = 0
                    elif resp.status_code != 200:
                        raise self._error(resp, f"blob {desc.digest}")
                    self._drain(resp, writer, progress)
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
                # Only real progress earns a fresh set of retries: a server that delivers a
                # byte and then stalls or drops, over and over, must not keep us forever.
                moved = writer.written - before
                failures = 0 if moved >= MIN_RESUME_PROGRESS else failures + 1
                if failures > self.options.retries:
                    raise RegistryError(
                        f"download of blob {desc.digest} from {self.host} keeps failing: {describe_transport_error(exc)}",
                        hint="check the network and try again",
                    ) from exc
                time.sleep(self._backoff(max(failures - 1, 0)))

    def _drain(self, resp: httpx.Response, writer: VerifyingWriter, progress: Progress | None) -> None:
        """Hash and write each piece as the transport hands it over (no coalescing copy).

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
                    self._report(unreported, progress)
                    unreported = 0
        finally:
            if unreported:
                self._report(unreported, progress)

    def _report(self, n: int, progress: Progress | None) -> None:
        self.stats.add(downloaded_bytes=n)
        if progress is not None:
            progress(n)

    def read_blob(self, desc: Descriptor, max_bytes: int) -> bytes:
        if desc.size > max_bytes:
            raise LimitError(
                f"blob {desc.digest} is {desc.size} bytes, over the limit of {max_bytes}",
                hint="raise it with the matching OMSIGN_MAX_* variable if this is expected",
            )
        import io

        buf = io.BytesIO()
        self.fetch_blob(desc, buf)
        return buf.getvalue()

    # -- manifests ------------------------------------------------------------------------
    def _manifest_url(self, identifier: str) -> str:
        return f"{self.repo_url}/manifests/{identifier}"

    def resolve(self, identifier: str) -> Descriptor:
        resp = self._send(
            "HEAD", self._manifest_url(identifier), scopes=self._pull, headers={"Accept": ACCEPT_MANIFESTS}
        )
        if resp.status_code != 200:
            raise self._error(resp, f"manifest {identifier}")
        digest = resp.headers.get("docker-content-digest", "")
        media_type = _media_type(resp.headers.get("content-type"))
        length = resp.headers.get("content-length", "")
        if is_digest(digest) and media_type in MANIFEST_TYPES and length.isdigit():
            if is_digest(identifier) and digest != identifier:
                raise IntegrityError(f"{self.host} resolved {identifier} to a different digest {digest}")
            return Descriptor(media_type, digest, int(length))
        return self.get_manifest(identifier).descriptor

    def get_manifest(self, identifier: str) -> ManifestData:
        resp = self._send(
            "GET",
            self._manifest_url(identifier),
            scopes=self._pull,
            headers={"Accept": ACCEPT_MANIFESTS},
            stream=True,
        )
        if resp.status_code != 200:
            raise self._error(resp, f"manifest {identifier}")
        header_digest = resp.headers.get("docker-content-digest", "")
        media_type = _media_type(resp.headers.get("content-type"))
        data = self._read_limited(resp, self.limits.manifest_bytes, f"manifest {identifier}")
        if is_digest(identifier):
            verify_bytes(data, identifier, what=f"manifest {identifier}")
            digest = identifier
        else:
            algorithm = header_digest.split(":", 1)[0] if is_digest(header_digest) else "sha256"
            h = hashlib.new(algorithm)
            h.update(data)
            digest = f"{algorithm}:{h.hexdigest()}"
            if is_digest(header_digest) and header_digest != digest:
                raise IntegrityError(
                    f"manifest {identifier}: {self.host} says {header_digest} but the bytes hash to {digest}"
                )
            if algorithm != "sha256":
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if media_type not in MANIFEST_TYPES:
            media_type = self._media_type_from_body(data) or media_type
        return ManifestData(data, media_type, digest)

    def _media_type_from_body(self, data: bytes) -> str | None:
        try:
            value = load_json(
                data, max_bytes=self.limits.manifest_bytes, depth=self.limits.json_depth, what="manifest"
            )
        except (IntegrityError, LimitError):
            return None
        media_type = value.get("mediaType") if isinstance(value, dict) else None
        return media_type if isinstance(media_type, str) else None

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        target = tag or digest
        attempt = 0
        while True:
            resp = self._send(
                "PUT",
                self._manifest_url(target),
                scopes=self._push,
                headers={"Content-Type": media_type},
                content=data,
            )
            if resp.status_code in (200, 201, 202, 204):
                break
            error = self._error(resp, f"manifest {target}")
            # A blob this manifest names was committed a moment ago, possibly by a concurrent
            # pusher of the same model (distribution 2.8 rewrites the blob link in place and
            # answers DIGEST_INVALID or MANIFEST_BLOB_UNKNOWN meanwhile; eventually consistent
            # storage does the same): the blob is there, so ask again shortly.
            transient = resp.status_code == 400 and any(
                code in error.message for code in ("MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "DIGEST_INVALID")
            )
            if not transient or attempt >= MANIFEST_BLOB_RETRIES:
                raise error
            time.sleep(self._backoff(attempt))
            attempt += 1
        returned = resp.headers.get("docker-content-digest", "")
        resp.close()
        if returned.startswith("sha256:") and returned != digest:
            raise IntegrityError(f"{self.host} stored manifest {target} as {returned}, expected {digest}")
        self.stats.add(uploaded_bytes=len(data))
        return digest

    def delete_manifest(self, digest: str) -> None:
        resp = self._send("DELETE", self._manifest_url(digest), scopes=self._push)
        if resp.status_code in (200, 202, 204):
            resp.close()
            return
        if resp.status_code == 405:
            resp.close()
            raise RegistryError(
                f"{self.host} does not allow deleting manifests",
                hint="enable deletes on the registry, or leave the manifest in place",
            )
        raise self._error(resp, f"manifest {digest}")

    def list_tags(self, *, page_size: int = 1000) -> list[str]:
        """All tags, following ``Link`` pagination (``page_size`` is the ``n`` asked per page)."""
        url: str | None = f"{self.repo_url}/tags/list?n={page_size}"
        tags: set[str] = set()
        pages = 0
        while url:
            pages += 1
            if pages > MAX_PAGES:
                raise LimitError(f"{self.ref.repo_name} has more than {MAX_PAGES} pages of tags")
            resp = self._send("GET", url, scopes=self._pull, stream=True)
            if resp.status_code != 200:
                raise self._error(resp, "repository")
            link = resp.headers.get("link")
            page_url = resp.request.url
            data = self._read_limited(resp, self.limits.index_bytes, "tag list")
            value = load_json(data, max_bytes=self.limits.index_bytes, depth=8, what="tag list")
            names = value.get("tags") if isinstance(value, dict) else None
            if names is not None:
                if not isinstance(names, list) or not all(isinstance(t, str) for t in names):
                    raise IntegrityError(f"{self.host} sent a tag list that is not a list of strings")
                tags.update(names)
            nxt = parse_next_link(link)
            url = str(page_url.join(nxt)) if nxt else None
        return sorted(tags)

    # -- referrers ------------------------------------------------------------------------
    def referrers_api(self, digest: str) -> list[Descriptor] | None:
        if self._referrers_supported is False:
            return None
        url: str | None = f"{self.repo_url}/referrers/{digest}"
        found: list[Descriptor] = []
        visited: set[str] = set()
        pages = 0
        while url:
            pages += 1
            if pages > MAX_PAGES:
                raise LimitError(f"referrers of {digest} span more than {MAX_PAGES} pages")
            resp = self._send("GET", url, scopes=self._pull, headers={"Accept": OCI_INDEX}, stream=True)
            content_type = resp.headers.get("content-type", "")
            if resp.status_code != 200 or content_type != OCI_INDEX:
                resp.close()
                if pages == 1 and (resp.status_code in (400, 404, 405) or resp.status_code == 200):
                    with self._referrers_lock:
                        self._referrers_supported = False
                return None
            link = resp.headers.get("link")
            page_url = resp.request.url
            data = self._read_limited(resp, self.limits.index_bytes, f"referrers of {digest}")
            value = load_json(
                data, max_bytes=self.limits.index_bytes, depth=self.limits.json_depth, what="referrers index"
            )
            manifests = value.get("manifests") if isinstance(value, dict) else None
            if not isinstance(manifests, list):
                raise IntegrityError(f"{self.host} sent a referrers index without a manifests list")
            if len(found) + len(manifests) > self.limits.referrers:
                raise LimitError(
                    f"{digest} has more than {self.limits.referrers} referrers",
                    hint="raise OMSIGN_MAX_REFERRERS if this is expected",
                )
            found.extend(Descriptor.from_json(m, "referrer descriptor") for m in manifests)
            nxt = parse_next_link(link)
            url = str(page_url.join(nxt)) if nxt else None
            # Every page but the last must bring referrers: otherwise a registry could keep us
            # fetching empty pages (or one page linking to itself) MAX_PAGES times.
            visited.add(str(page_url))
            if url is not None and (not manifests or url in visited):
                raise RegistryError(
                    f"{self.host} paginates the referrers of {digest} without progress (an empty page or a Link loop)"
                )
        with self._referrers_lock:
            self._referrers_supported = True
        return found

