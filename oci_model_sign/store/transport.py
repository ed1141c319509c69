"""The HTTP layer under every registry call: the client, retries, and typed errors.

What lives here is the part of go-containerregistry's ``transport`` package that omsign needs:

* ``build_client``: one ``httpx.Client`` per registry host, with the TLS trust the user asked
  for (``--ca-file``, else ``SSL_CERT_FILE``, else the bundled roots; ``--insecure`` turns
  verification off) and large socket reads (``READ_SIZE``, see ``LargeReadBackend``);
* the retry policy: which answers are worth another try (429 and 5xx, honouring
  ``Retry-After``; a connection that dropped after the host had answered once) and how long to
  wait (exponential backoff with jitter). A refused connection to a host that never answered is
  not retried: nothing listens there, and waiting would only hide the typo;
* ``RegistryHTTPError``: an answer the registry refused, carrying the HTTP status and the
  distribution-spec error codes of its body (``{"errors": [{"code": "BLOB_UNKNOWN"}]}``), so
  callers test ``"BLOB_UNKNOWN" in err.codes`` instead of searching message text.
"""

from __future__ import annotations

import email.utils
import os
import random
import ssl
from datetime import datetime, timezone
from typing import Any

import httpcore
import httpx

from ..errors import AuthError, InputError, NotFoundError, RegistryError
from ..limits import load_json

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
ERROR_BODY_MAX = 64 * 1024  # enough for any registry error document; more is not read
BACKOFF_BASE = 0.25
BACKOFF_CAP = 10.0
USER_AGENT = "omsign/0.1 (+https://github.com/omsign)"
READ_SIZE = 1024 * 1024
HTTPS_ONLY_ANSWER = b"Client sent an HTTP request to an HTTPS server"  # Go's net/http, as a 400 body
TLS_HINT = "pass --ca-file FILE with the CA that signed the registry's certificate, or --insecure to skip verification"


# -- typed errors ---------------------------------------------------------------------------------


class RegistryHTTPError(RegistryError):
    """The registry answered, and the answer was a refusal: status and error codes, typed."""

    def __init__(
        self, message: str, *, status: int, codes: tuple[str, ...] = (), hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.codes = codes


class RegistryNotFoundError(NotFoundError, RegistryHTTPError):
    """A 404 (exit code 6, as every ``NotFoundError``)."""


class RegistryDeniedError(AuthError, RegistryHTTPError):
    """A 401/403 the auth flow could not cure (exit code 5, as every ``AuthError``)."""


def parse_error_body(body: bytes) -> tuple[tuple[str, ...], str]:
    """Distribution error codes of a body, and ``"CODE: message"`` of the first one for humans."""
    try:
        value = load_json(body[:ERROR_BODY_MAX], max_bytes=ERROR_BODY_MAX, depth=16, what="error")
    except Exception:  # not JSON, too deep, too big: a body with no codes
        return (), ""
    errors = value.get("errors") if isinstance(value, dict) else None
    if not isinstance(errors, list):
        return (), ""
    codes = tuple(e["code"] for e in errors if isinstance(e, dict) and isinstance(e.get("code"), str))
    detail = ""
    if errors and isinstance(errors[0], dict):
        code, message = errors[0].get("code", ""), errors[0].get("message", "")
        detail = f"{code}: {message}".strip(": ")
    return codes, detail


def read_error_body(resp: httpx.Response) -> bytes:
    """At most ``ERROR_BODY_MAX`` bytes of a (possibly streamed) body; closes the response."""
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
    return body


def http_error(resp: httpx.Response, what: str, *, host: str, repo_name: str, login: str) -> RegistryHTTPError:
    """A refusal folded into the error class its status calls for (``login``: the auth hint)."""
    body = read_error_body(resp)
    codes, detail = parse_error_body(body)
    status = resp.status_code
    if status == 400 and resp.request.url.scheme == "http" and HTTPS_ONLY_ANSWER in body:
        return RegistryHTTPError(
            f"{host} speaks HTTPS, and {what} was asked for over plain HTTP",
            status=status,
            hint="pass --no-plain-http (registries on localhost/127.0.0.1 get plain HTTP unless told)",
        )
    suffix = f" ({detail})" if detail else ""
    if status == 404:
        return RegistryNotFoundError(f"{what} not found in {repo_name}{suffix}", status=status, codes=codes)
    if status in (401, 403):
        return RegistryDeniedError(
            f"{host} denied access to {what} ({status}){suffix}", status=status, codes=codes, hint=login
        )
    if status in RETRY_STATUSES:
        return RegistryHTTPError(
            f"{host} answered {status} for {what}{suffix}, retries spent",
            status=status,
            codes=codes,
            hint="the registry is overloaded or failing; try again later",
        )
    return RegistryHTTPError(f"{host} answered {status} for {what}{suffix}", status=status, codes=codes)


# -- transport failures -----------------------------------------------------------------------------


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def tls_verification_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate-verification error behind an httpx error, if that is what it was."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
    return None


def is_connect_failure(exc: BaseException) -> bool:
    """No connection was made at all (refused, unknown host, connect timeout)."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


def describe_transport_error(exc: BaseException) -> str:
    """A short human reason for an httpx transport failure."""
    verify = tls_verification_failure(exc)
    if verify is not None:
        return f"TLS certificate not trusted: {verify.verify_message or verify.reason or verify}"
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


def failed_netloc(exc: httpx.TransportError, default: str) -> str:
    """The host:port a transport error happened on (a redirect target is not the registry)."""
    try:
        netloc = exc.request.url.netloc
    except RuntimeError:  # no request attached
        return default
    return netloc.decode() if isinstance(netloc, bytes) else str(netloc)


def transport_failure(exc: httpx.TransportError, host: str, method: str, url: str) -> RegistryError:
    """Say who failed and how: untrusted TLS, unreachable, or a connection broken midway."""
    where = failed_netloc(exc, host)
    if where != host:
        where = f"{where} (where {host} redirected)"
    if tls_verification_failure(exc) is not None:
        return RegistryError(f"cannot verify the TLS certificate of {where}: {describe_transport_error(exc)}", hint=TLS_HINT)
    handshake = next((c for c in _causes(exc) if isinstance(c, ssl.SSLError)), None)
    if handshake is not None:
        return RegistryError(
            f"TLS handshake with {where} failed: {handshake.reason or handshake}",
            hint="if the registry speaks plain HTTP, pass --plain-http",
        )
    if is_connect_failure(exc):
        return RegistryError(
            f"cannot reach {where}: {describe_transport_error(exc)}",
            hint="check the address, the network, and that the registry is running",
        )
    return RegistryError(
        f"{method} {httpx.URL(url).path} failed on {where}: {describe_transport_error(exc)}",
        hint="the registry or a proxy in front of it broke the connection; retry, or check the proxy",
    )


# -- waiting ----------------------------------------------------------------------------------------


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


# -- the client -------------------------------------------------------------------------------------


class _LargeReadStream(httpcore.NetworkStream):
    """A network stream whose reads ask the socket for at least ``read_size`` bytes."""

    def __init__(self, inner: httpcore.NetworkStream, read_size: int) -> None:
        self._stream = inner
        self._read_size = read_size

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max(max_bytes, self._read_size), timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _LargeReadStream(self._stream.start_tls(ssl_context, server_hostname, timeout), self._read_size)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class LargeReadBackend(httpcore.NetworkBackend):
    """Let httpcore read up to ``read_size`` bytes per socket read instead of its 64 KiB.

    Blob downloads are the hot loop of a pull: every read costs a timeout ioctl, an h11 event
    and a trip through the interpreter (and a GIL hand-off between download threads). Sixteen
    times fewer reads cut pull CPU by about a fifth. httpcore has no setting for this, but it
    does take a network backend; this one wraps the default and enlarges each read. A read
    still returns whatever the socket has, so latency is unchanged.
    """

    def __init__(self, inner: httpcore.NetworkBackend, read_size: int = READ_SIZE) -> None:
        self._stream = inner
        self.read_size = read_size

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._stream.connect_tcp(host, port, timeout, local_address, socket_options)
        return _LargeReadStream(stream, self.read_size)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _LargeReadStream(self._stream.connect_unix_socket(path, timeout, socket_options), self.read_size)

    def sleep(self, seconds: float) -> None:
        self._stream.sleep(seconds)


def _install_read_size(client: httpx.Client, read_size: int) -> None:
    """Put ``LargeReadBackend`` under each connection pool of ``client`` (its own and proxies').

    httpx builds its pools itself (keeping proxy settings from the environment), so the backend
    is swapped in after construction; an httpx or httpcore whose layout differs keeps its
    default read size, which costs speed only.
    """
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, LargeReadBackend):
            pool._network_backend = LargeReadBackend(backend, read_size)  # type: ignore[union-attr]


def tls_verify(*, insecure: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    """What to trust: ``ca_file``, else ``$SSL_CERT_FILE``, else httpx's bundled roots."""
    if insecure:
        return False
    chosen = ca_file or os.environ.get("SSL_CERT_FILE") or None
    if chosen is None:
        return True
    try:
        return ssl.create_default_context(cafile=chosen)
    except (OSError, ssl.SSLError) as exc:
        what = "--ca-file" if ca_file else "SSL_CERT_FILE"
        raise InputError(f"cannot load CA certificates from {chosen} ({what}): {exc}") from exc


def build_client(
    *,
    timeout: float,
    pool_size: int,
    insecure: bool = False,
    ca_file: str | None = None,
    read_size: int = READ_SIZE,
    event_hooks: dict[str, list[Any]] | None = None,
) -> httpx.Client:
    """The one client a registry host is spoken to through (see the module docstring)."""
    client = httpx.Client(
        timeout=httpx.Timeout(timeout),  # per connect / per read / per write: no progress
        limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size),
        verify=tls_verify(insecure=insecure, ca_file=ca_file),
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
        event_hooks=event_hooks or {},
    )
    _install_read_size(client, read_size)
    return client
