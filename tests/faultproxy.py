"""A fault-injecting HTTP/1.1 reverse proxy for tests: a hostile network in front of a real registry.

Real registries misbehave in ways a mocked server never shows: connections drop halfway
through a 10 GB layer, rate limiters answer 429, load balancers answer 502 in bursts, a
middlebox serves other bytes or lies about a length. ``FaultProxy`` sits on 127.0.0.1 (random
port) in front of the real ``docker-registry`` and does exactly one of those things, to the
requests a rule picks, a bounded number of times; everything else passes through unchanged.

Bodies are streamed in both directions (64 KiB pieces), never buffered, so multi-megabyte
blobs cost nothing. Every request is recorded (method, path, headers, status) so tests can
assert what the client did, e.g. that a pull by tag asked for the tag exactly once.

    proxy = FaultProxy(registry.url).start()
    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.RESET_RESPONSE, after=100_000))
    ... talk to proxy.host instead of registry.host ...
    proxy.stop()

One upstream connection per request (``Connection: close`` upstream); the client side keeps
its connection alive unless a fault ends it.
"""

from __future__ import annotations

import contextlib
import enum
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

PIECE = 64 * 1024
MAX_HEADER_BYTES = 64 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
REASONS = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}


class Fault(enum.Enum):
    """What a rule does to the requests it matches."""

    RESET_REQUEST = "reset-request"  # RST after ``after`` bytes of the request body reached upstream
    RESET_RESPONSE = "reset-response"  # RST after ``after`` bytes of the response body reached the client
    STATUS = "status"  # answer ``status`` (429/502/503...) without asking upstream
    DELAY = "delay"  # drip the response body: ``drip_bytes`` every ``drip_interval`` seconds
    CORRUPT = "corrupt"  # same length, other bytes (XOR 0xFF) from offset ``after`` on
    TRUNCATE = "truncate"  # send ``after`` body bytes (Content-Length unchanged), then close cleanly
    CONTENT_LENGTH = "content-length"  # claim Content-Length = real + ``delta``; send what fits
    HOOK = "hook"  # call ``hook(request)`` before forwarding (e.g. move a tag mid-operation)
    SERVE = "serve"  # answer ``status`` + ``headers`` + ``body`` (bytes or a piece generator) ourselves


@dataclass
class Rule:
    """Fire ``fault`` on requests whose method and path match, at most ``times`` times."""

    method: str | None
    path: str
    fault: Fault
    times: int = 1
    after: int = 0
    status: int = 503
    retry_after: str | None = None
    delta: int = 0
    drip_bytes: int = 1024
    drip_interval: float = 0.01
    hook: object = None  # Callable[[RecordedRequest], None] for Fault.HOOK
    headers: dict[str, str] = field(default_factory=dict)  # Fault.SERVE response headers
    body: object = b""  # Fault.SERVE: bytes, or a callable returning an iterable of pieces (streamed)
    skip: int = 0  # let this many matching requests through untouched before firing
    fired: int = 0
    seen: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        if self.fired >= self.times:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self._regex.search(path) is not None


@dataclass
class RecordedRequest:
    """One request as the proxy saw it, and the status the client got (None: connection cut)."""

    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None
    fault: Fault | None = None


class _Closed(Exception):
    """A peer closed its side while we were reading."""


class _Reader:
    """Buffered reads of HTTP framing from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(PIECE)
        if not data:
            return False
        self.buf += data
        return True

    def read_head(self) -> bytes | None:
        """Bytes up to and including the blank line; None on a clean close before any byte."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[: end + 4])
                del self.buf[: end + 4]
                return head
            if len(self.buf) > MAX_HEADER_BYTES:
                raise _Closed("header too large")
            if not self._fill():
                if self.buf:
                    raise _Closed("closed mid-header")
                return None

    def read_line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                return line
            if not self._fill():
                raise _Closed("closed mid-line")

    def read_some(self, limit: int) -> bytes:
        if not self.buf and not self._fill():
            raise _Closed("closed mid-body")
        n = min(limit, len(self.buf))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self) -> Iterator[bytes]:
        if self.buf:
            out = bytes(self.buf)
            self.buf.clear()
            yield out
        while True:
            data = self.sock.recv(PIECE)
            if not data:
                return
            yield data

    def body(self, headers: dict[str, str], until_eof: bool) -> Iterator[bytes]:
        """The (decoded) body pieces according to the message framing."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int(self.read_line().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.read_line():  # trailers
                        pass
                    return
                left = size
                while left:
                    piece = self.read_some(min(left, PIECE))
                    left -= len(piece)
                    yield piece
                self.read_line()
        elif "content-length" in headers:
            left = int(headers["content-length"])
            while left > 0:
                piece = self.read_some(min(left, PIECE))
                left -= len(piece)
                yield piece
        elif until_eof:
            yield from self.read_to_eof()


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    pairs: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        pairs.append((name.strip(), value.strip()))
    return lines[0], pairs


def _lower(pairs: list[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in pairs}


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the peer sees 'connection reset', not a clean end."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """The proxy: ``start()``, point clients at ``host``, add rules, read ``requests``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError("upstream must be http://HOST:PORT")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self.upstream_netloc = f"{parts.hostname}:{parts.port}"
        self.rules: list[Rule] = []
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._stopping = False
        self.port = 0

    # -- public -----------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> FaultProxy:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        self.port = server.getsockname()[1]
        self._server = server
        self._thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            with contextlib.suppress(OSError):
                self._server.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop all rules and the request log."""
        with self._lock:
            self.rules.clear()
            self.requests.clear()

    def log(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, filtered by method and a path regex."""
        with self._lock:
            items = list(self.requests)
        rx = re.compile(path) if path is not None else None
        return [
            r for r in items
            if (method is None or r.method == method.upper()) and (rx is None or rx.search(r.path))
        ]

    # -- plumbing ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stopping:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _pick(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.seen += 1
                    if rule.seen <= rule.skip:
                        continue
                    rule.fired += 1
                    return rule
        return None

    def _serve(self, client: socket.socket) -> None:
        reader = _Reader(client)
        try:
            while not self._stopping:
                head = reader.read_head()
                if head is None:
                    break
                if not self._one_request(client, reader, head):
                    break
        except (_Closed, OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._conns.discard(client)
            with contextlib.suppress(OSError):
                client.close()

    def _one_request(self, client: socket.socket, reader: _Reader, head: bytes) -> bool:
        """Handle one request; False when the client connection must end."""
        request_line, pairs = _parse_head(head)
        method, target, _version = request_line.split(" ", 2)
        headers = _lower(pairs)
        record = RecordedRequest(method.upper(), target, dict(headers))
        with self._lock:
            self.requests.append(record)
        rule = self._pick(method, target)
        record.fault = rule.fault if rule is not None else None
        keep_alive = headers.get("connection", "").lower() != "close"
        body = reader.body(headers, until_eof=False)

        if rule is not None and rule.fault is Fault.HOOK and callable(rule.hook):
            rule.hook(record)
            rule = None
        if rule is not None and rule.fault is Fault.STATUS:
            for _ in body:  # drain: the connection stays usable
                pass
            extra = f"Retry-After: {rule.retry_after}\r\n" if rule.retry_after is not None else ""
            msg = b'{"errors":[{"code":"UNAVAILABLE","message":"injected by faultproxy"}]}'
            reason = REASONS.get(rule.status, "Error")
            client.sendall(
                f"HTTP/1.1 {rule.status} {reason}\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(msg)}\r\n\r\n".encode() + msg
            )
            record.status = rule.status
            return keep_alive

        if rule is not None and rule.fault is Fault.SERVE:
            for _ in body:
                pass
            return self._serve_own(client, rule, record, method) and keep_alive

        try:
            upstream = socket.create_connection((self.upstream_host, self.upstream_port), timeout=30)
        except OSError:
            for _ in body:
                pass
            msg = b"upstream unreachable"
            client.sendall(
                f"HTTP/1.1 502 Bad Gateway\r\nContent-Length: {len(msg)}\r\n\r\n".encode() + msg
            )
            record.status = 502
            return keep_alive
        try:
            return self._forward(client, reader, upstream, method, target, pairs, headers, body, rule, record,
                                 keep_alive)
        finally:
            with contextlib.suppress(OSError):
                upstream.close()

    def _forward(
        self,
        client: socket.socket,
        reader: _Reader,
        upstream: socket.socket,
        method: str,
        target: str,
        pairs: list[tuple[str, str]],
        headers: dict[str, str],
        body: Iterator[bytes],
        rule: Rule | None,
        record: RecordedRequest,
        keep_alive: bool,
    ) -> bool:
        chunked_in = "chunked" in headers.get("transfer-encoding", "").lower()
        expects = headers.get("expect", "").lower() == "100-continue"
        if expects:  # the proxy reads the body itself (Go's HTTP clients ask for this above 2 MB)
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        out = [f"{method} {target} HTTP/1.1"]
        for k, v in pairs:
            if k.lower() in HOP_BY_HOP or (expects and k.lower() == "expect"):
                continue
            out.append(f"{k}: {v}")
        if chunked_in:
            out.append("Transfer-Encoding: chunked")
        out.append("Connection: close")
        upstream.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        sent = 0
        for piece in body:
            if rule is not None and rule.fault is Fault.RESET_REQUEST and sent + len(piece) >= rule.after:
                keep = max(0, rule.after - sent)
                if keep:
                    self._send_body(upstream, piece[:keep], chunked_in)
                _reset(client)
                _reset(upstream)
                record.status = None
                return False
            self._send_body(upstream, piece, chunked_in)
            sent += len(piece)
        if chunked_in:
            upstream.sendall(b"0\r\n\r\n")

        up = _Reader(upstream)
        head = up.read_head()
        if head is None:
            raise _Closed("upstream closed without answering")
        status_line, rpairs = _parse_head(head)
        status = int(status_line.split(" ", 2)[1])
        record.status = status
        rheaders = _lower(rpairs)
        no_body = method.upper() == "HEAD" or status in (204, 304) or 100 <= status < 200
        length = None if no_body else (int(rheaders["content-length"]) if "content-length" in rheaders else None)
        chunked_out = not no_body and length is None and "chunked" in rheaders.get("transfer-encoding", "").lower()
        eof_body = not no_body and length is None and not chunked_out

        fault = rule.fault if rule is not None else None
        claimed = length
        if fault is Fault.CONTENT_LENGTH and length is not None and rule is not None:
            claimed = max(0, length + rule.delta)

        lines = [status_line]
        for k, v in rpairs:
            lk = k.lower()
            if lk in HOP_BY_HOP:
                continue
            if lk == "content-length" and claimed is not None and not (no_body and method.upper() == "HEAD"):
                v = str(claimed)
            if lk == "location":
                v = v.replace(f"//{self.upstream_netloc}", f"//{self.host}")
            lines.append(f"{k}: {v}")
        if chunked_out:
            lines.append("Transfer-Encoding: chunked")
        if eof_body or fault in (Fault.TRUNCATE, Fault.RESET_RESPONSE, Fault.CONTENT_LENGTH):
            keep_alive = False
        if not keep_alive:
            lines.append("Connection: close")
        client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if no_body:
            return keep_alive

        delivered = 0
        for piece in up.body(rheaders, until_eof=eof_body):
            if rule is not None and fault is Fault.CORRUPT:
                start = max(0, rule.after - delivered)
                if start < len(piece):
                    piece = piece[:start] + bytes(b ^ 0xFF for b in piece[start:])
            if (
                rule is not None
                and fault in (Fault.RESET_RESPONSE, Fault.TRUNCATE)
                and delivered + len(piece) >= rule.after
            ):
                keep = max(0, rule.after - delivered)
                if keep:
                    self._send_body(client, piece[:keep], chunked_out)
                if fault is Fault.RESET_RESPONSE:
                    _reset(client)
                return False
            if claimed is not None and fault is Fault.CONTENT_LENGTH:
                piece = piece[: max(0, claimed - delivered)]
                if not piece:
                    break
            if rule is not None and fault is Fault.DELAY:
                for i in range(0, len(piece), rule.drip_bytes):
                    self._send_body(client, piece[i : i + rule.drip_bytes], chunked_out)
                    time.sleep(rule.drip_interval)
            else:
                self._send_body(client, piece, chunked_out)
            delivered += len(piece)
        if chunked_out:
            client.sendall(b"0\r\n\r\n")
        return keep_alive

    def _serve_own(self, client: socket.socket, rule: Rule, record: RecordedRequest, method: str) -> bool:
        """Answer from the rule: bytes with a Content-Length, or generated pieces, chunked
        unless the rule's headers fix a Content-Length (then the connection closes after)."""
        record.status = rule.status
        head = [f"HTTP/1.1 {rule.status} {REASONS.get(rule.status, 'Response')}"]
        names = {k.lower() for k in rule.headers}
        head += [f"{k}: {v}" for k, v in rule.headers.items()]
        if isinstance(rule.body, bytes):
            if "content-length" not in names:
                head.append(f"Content-Length: {len(rule.body)}")
            client.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            if method.upper() != "HEAD":
                client.sendall(rule.body)
            return "content-length" not in names
        chunked = "content-length" not in names
        if chunked:
            head.append("Transfer-Encoding: chunked")
        else:
            head.append("Connection: close")
        client.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if method.upper() == "HEAD":
            return chunked
        assert callable(rule.body)
        for piece in rule.body():
            self._send_body(client, piece, chunked)
        if chunked:
            client.sendall(b"0\r\n\r\n")
        return chunked

    @staticmethod
    def _send_body(sock: socket.socket, piece: bytes, chunked: bool) -> None:
        if chunked:
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        else:
            sock.sendall(piece)
