"""One session per registry host: one client, one auth state, one request loop.

``copy`` and ``audit`` open many repositories on one host; each ``RegistryStore`` is a view of
a repository on a ``RegistrySession`` and shares its keep-alive pool, the scheme and
challenge the host taught us, and the bearer-token cache (tokens stay per scope, so sharing
them never widens what a request may do). A store opened on its own makes a private session
and closes it with itself; ``RegistrySession.repository`` hands out views that do not.

httpx's sync client is safe to share between threads; the only mutable state here (auth,
the hosts that answered, statistics) sits behind locks or is only ever added to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from ..errors import LimitError, RegistryError
from ..reference import Reference
from .auth import HostAuth, login_hint, repository_scope
from .base import StoreOptions
from .transport import (
    BACKOFF_BASE,
    RETRY_STATUSES,
    RegistryHTTPError,
    backoff_delay,
    build_client,
    failed_netloc,
    http_error,
    is_connect_failure,
    retry_after_seconds,
    tls_verification_failure,
    transport_failure,
)

if TYPE_CHECKING:
    from .registry import RegistryStore

STATS_EXTENSION = "omsign.stats"  # request extension naming the TransferStats a request counts in


class AuthRefreshed(Exception):
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


def _count_request(request: httpx.Request) -> None:
    stats = request.extensions.get(STATS_EXTENSION)
    if isinstance(stats, TransferStats):
        stats.add(requests=1)


LIMIT_HINT = "raise it with the matching OMSIGN_MAX_* variable if this is expected"


def read_bounded(resp: httpx.Response, limit: int, what: str, hint: str = LIMIT_HINT) -> bytes:
    """A response body, refused (from its Content-Length, then while reading) past ``limit``
    bytes, so a hostile registry cannot fill memory; the response is closed either way."""
    try:
        length = resp.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise LimitError(f"{what} is {int(length)} bytes, over the limit of {limit}", hint=hint)
        data = bytearray()
        for piece in resp.iter_bytes():
            data += piece
            if len(data) > limit:
                raise LimitError(f"{what} is over the limit of {limit} bytes", hint=hint)
        return bytes(data)
    finally:
        resp.close()


class RegistrySession:
    """A registry host: base URL, client and auth state shared by its repositories."""

    def __init__(self, registry: str, api_host: str, options: StoreOptions, *, plain_http: bool) -> None:
        self.registry = registry
        self.host = api_host
        self.options = options
        self.base_url = f"{'http' if plain_http else 'https'}://{api_host}"
        self._reached: set[str] = set()  # host:port that have answered at least once
        self.auth = HostAuth(
            api_host,
            registry,
            username=options.username,
            password=options.password,
            credentials_source=options.credentials_source,
            docker_config=options.docker_config,
        )
        self.client = build_client(
            timeout=options.timeout,
            pool_size=max(4, options.concurrency * 2 + 2),
            insecure=options.insecure,
            ca_file=options.ca_file,
            event_hooks={"request": [_count_request], "response": [self._answered]},
        )
        self.auth.client = self.client

    @classmethod
    def for_reference(cls, ref: Reference, options: StoreOptions) -> RegistrySession:
        if ref.registry is None:
            raise ValueError("a registry session needs a remote reference")
        plain = options.plain_http if options.plain_http is not None else ref.is_loopback
        return cls(ref.registry, ref.api_host, options, plain_http=plain)

    def repository(self, ref: Reference) -> RegistryStore:
        """A store for a repository on this host, sharing this session (it never closes it)."""
        from .registry import RegistryStore

        if ref.registry != self.registry:
            raise ValueError(f"{ref.repo_name} is not on {self.registry}")
        return RegistryStore(ref, self.options, session=self)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RegistrySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistrySession({self.base_url})"

    def _answered(self, response: httpx.Response) -> None:
        netloc = response.request.url.netloc
        self._reached.add(netloc.decode() if isinstance(netloc, bytes) else str(netloc))

    def backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, float(getattr(self.options, "backoff_base", BACKOFF_BASE)))

    def _retryable(self, exc: httpx.TransportError) -> bool:
        """Worth another try: a connection that broke, not one that never worked.

        An untrusted certificate stays untrusted, and a refused connection to a host that has
        never answered means nothing listens there: retrying would only delay the message.
        Once the host has answered, a refused connection is a restart or a failover: retried.
        """
        if tls_verification_failure(exc) is not None:
            return False
        if is_connect_failure(exc):
            return failed_netloc(exc, self.host) in self._reached
        return True

    # -- the one request loop ---------------------------------------------------------------
    def send(
        self,
        method: str,
        url: str,
        *,
        scopes: list[str],
        headers: dict[str, str] | None = None,
        content: bytes | Iterator[bytes] | None = None,
        stream: bool = False,
        replayable: bool = True,
        stats: TransferStats | None = None,
    ) -> httpx.Response:
        """Send with auth, retries (broken connections, 429, 5xx) and ``Retry-After``.

        A non-replayable body (a generator) is sent once: transport errors propagate as httpx
        exceptions and a 401 raises ``AuthRefreshed``, so the caller resumes from the registry's
        upload status instead of resending bytes it no longer has.
        """
        deadline = time.monotonic() + self.options.max_retry_time
        attempt = 0
        auth = self.auth.flow(scopes, replayable=replayable)
        extensions = {STATS_EXTENSION: stats} if stats is not None else None
        while True:
            request = self.client.build_request(method, url, headers=headers, content=content, extensions=extensions)
            try:
                resp = self.client.send(request, stream=stream, auth=auth)
            except httpx.TooManyRedirects as exc:
                raise RegistryError(
                    f"{self.host} redirected {method} {httpx.URL(url).path} too many times (a redirect loop)",
                    hint="the registry or a proxy in front of it is misconfigured",
                ) from exc
            except httpx.TransportError as exc:
                if not replayable:
                    raise
                delay = self.backoff(attempt)
                attempt += 1
                if (
                    not self._retryable(exc)
                    or attempt > self.options.retries
                    or time.monotonic() + delay > deadline
                ):
                    raise transport_failure(exc, self.host, method, url) from exc
                time.sleep(delay)
                continue
            if resp.status_code == 401:  # only a non-replayable request gets its 401 back
                resp.close()
                raise AuthRefreshed()
            if resp.status_code in RETRY_STATUSES and replayable:
                wait = retry_after_seconds(resp.headers.get("retry-after"))
                delay = wait if wait is not None else self.backoff(attempt)
                if attempt >= self.options.retries or time.monotonic() + delay > deadline:
                    return resp  # the caller turns it into an error naming the operation
                resp.close()
                attempt += 1
                time.sleep(delay)
                continue
            return resp


class RepositoryClient:
    """The HTTP side of one repository: URLs, scopes, statistics, error folding.

    ``RegistryStore`` builds on it; ``upload`` and ``download`` take it, so they never reach
    into the store's other business.
    """

    def __init__(self, ref: Reference, options: StoreOptions, session: RegistrySession | None = None) -> None:
        if ref.registry is None:
            raise ValueError("RegistryStore needs a remote reference")
        self.ref = ref
        self.options = options
        self.limits = options.limits
        self._owns_session = session is None
        self.session = session if session is not None else RegistrySession.for_reference(ref, options)
        self.host = self.session.host
        self.base_url = self.session.base_url
        self.repo_url = f"{self.base_url}/v2/{ref.repository}"
        self.stats = TransferStats()

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    @property
    def pull_scopes(self) -> list[str]:
        return [repository_scope(self.ref.repository)]

    @property
    def push_scopes(self) -> list[str]:
        return [repository_scope(self.ref.repository, push=True)]

    def backoff(self, attempt: int) -> float:
        return self.session.backoff(attempt)

    def send(
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
        return self.session.send(
            method,
            url,
            scopes=scopes,
            headers=headers,
            content=content,
            stream=stream,
            replayable=replayable,
            stats=self.stats,
        )

    def error(self, resp: httpx.Response, what: str) -> RegistryHTTPError:
        """The registry's error document folded into one of our errors (reads at most 64 KiB)."""
        return http_error(
            resp, what, host=self.host, repo_name=self.ref.repo_name, login=login_hint(self.ref.registry or self.host)
        )

    def blob_url(self, digest: str) -> str:
        return f"{self.repo_url}/blobs/{digest}"

    def blob_exists(self, digest: str) -> bool:
        resp = self.send("HEAD", self.blob_url(digest), scopes=self.pull_scopes)
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self.error(resp, f"blob {digest}")

    def resolve_location(self, resp: httpx.Response) -> str:
        location = resp.headers.get("location")
        if not location:
            raise RegistryError(f"{self.host} started an upload without a Location header")
        return str(resp.request.url.join(location))

    def read_limited(self, resp: httpx.Response, limit: int, what: str) -> bytes:
        """Read a response body, refusing (before and while reading) anything over ``limit``."""
        data = read_bounded(resp, limit, what)
        self.stats.add(downloaded_bytes=len(data))
        return data
