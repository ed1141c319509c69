"""The hub-side gate: verify every model pushed to a registry, promote only what verifies.

distribution posts an event for each manifest push (``notifications.endpoints`` in its
configuration). The gate writes the event to its ledger, answers 200, and a worker then
checks the manifest *as the registry holds it* against the trust policy, records the verdict
and, for a model admitted in the quarantine namespace (``incoming/…``), copies it with its
signatures into the trusted namespace. A signature pushed after its model (the usual order:
push, then sign) arrives as a manifest whose ``subject`` (or whose ``sha256-<hex>`` tag) names
the model; the gate then checks that model again.

The verifier and the copier are passed in (``Evaluator``, ``Promoter``) so the gate shares the
code ``pull --verify`` and ``copy`` run; it has no verifier of its own.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import (
    InputError,
    IntegrityError,
    LimitError,
    NotFoundError,
    OmsignError,
    RegistryError,
    VerificationError,
)
from ..limits import load_json
from ..oci.mediatypes import MANIFEST_TYPES
from .events import MAX_ENVELOPE_BYTES, Event, parse_envelope
from .ledger import Job, Ledger, Result
from .page import render_page

log = logging.getLogger("omsign.gate")

SCHEMA_VERSION = 1
MAX_ATTEMPTS = 8  # a manifest the registry cannot serve yet (out-of-order events) is retried this often
RETRY_BASE = 0.5


@dataclass
class Verdict:
    """What the policy said about one model."""

    admitted: bool
    reason: str
    signers: list[str] = field(default_factory=list)
    attestations: list[str] = field(default_factory=list)
    enforced: bool = True  # False: the scope is in warn mode (recorded, promoted anyway)
    is_model: bool = True


Evaluator = Callable[[str], Verdict]  # "host/repo@sha256:…" -> verdict
Promoter = Callable[[str, str], None]  # (source "host/repo@digest", destination "host/repo:tag")
ManifestReader = Callable[[str, str], bytes]  # (repository, digest) -> manifest bytes, verified


@dataclass
class GateConfig:
    registry: str  # the host the gate reads from; events' own URLs are never followed
    quarantine: str = "incoming/"
    trusted: str = ""  # prefix of promoted repositories: incoming/x -> <trusted>x
    token: str | None = None  # a shared secret the registry sends as "Authorization: Bearer …"
    max_attempts: int = MAX_ATTEMPTS
    retry_base: float = RETRY_BASE


class Gate:
    def __init__(
        self,
        config: GateConfig,
        ledger: Ledger,
        evaluate: Evaluator,
        promote: Promoter | None,
        read_manifest: ManifestReader,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.evaluate = evaluate
        self.promote = promote
        self.read_manifest = read_manifest
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._worker: threading.Thread | None = None

    # -- intake --------------------------------------------------------------------------
    def receive(self, body: bytes) -> tuple[int, int]:
        """Record an envelope; returns (new manifest events, ignored events)."""
        events, ignored = parse_envelope(body)
        new = self.ledger.record_events([(e.id, e.repository, e.digest, e.media_type, e.tag) for e in events])
        if new:
            self._wake.set()
        return new, ignored

    # -- work ----------------------------------------------------------------------------
    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="omsign-gate-worker", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=30)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job is due (tests and ``--once`` use this)."""
        with self._idle:
            return self._idle.wait_for(lambda: self.ledger.pending() == 0, timeout=timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self.ledger.next_job()
            if job is None:
                with self._idle:
                    self._idle.notify_all()
                self._wake.wait(timeout=RETRY_BASE)
                self._wake.clear()
                continue
            self.process(job)

    def process(self, job: Job) -> None:
        try:
            self._process(job)
        except (NotFoundError, RegistryError) as exc:
            # Out-of-order events (a signature before its model) and registry hiccups: later.
            if job.attempts + 1 >= self.config.max_attempts:
                self._record(job.repository, job.digest, job.tag, "error", exc.one_line())
                self.ledger.finish(job)
            else:
                self.ledger.retry_later(job, min(self.config.retry_base * 2**job.attempts, 60.0))
            return
        except OmsignError as exc:
            self._record(job.repository, job.digest, job.tag, "error", exc.one_line())
        except Exception as exc:  # a bug must not stop the gate; it is recorded, not hidden
            log.exception("gate: checking %s@%s failed", job.repository, job.digest)
            self._record(job.repository, job.digest, job.tag, "error", f"internal error: {exc!r}")
        self.ledger.finish(job)

    def _subject(self, job: Job) -> str | None:
        """The manifest this one is a signature/attestation/fallback index of, if any."""
        tagged = Event(job.repository, job.repository, job.digest, job.media_type, job.tag).subject_from_tag
        if tagged is not None:
            return tagged
        if job.media_type not in MANIFEST_TYPES:
            return None
        data = self.read_manifest(job.repository, job.digest)
        manifest = load_json(data, max_bytes=4 * 1024 * 1024, depth=64, what="manifest")
        subject = manifest.get("subject") if isinstance(manifest, dict) else None
        if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
            return str(subject["digest"])
        return None

    def _process(self, job: Job) -> None:
        subject = self._subject(job)
        if subject is not None:
            # A signature arrived: check its model again (it may now be admitted).
            known = self.ledger.result(job.repository, subject)
            self._check(job.repository, subject, known.tag if known else None)
            return
        self._check(job.repository, job.digest, job.tag)

    def _check(self, repository: str, digest: str, tag: str | None) -> None:
        source = f"{self.config.registry}/{repository}@{digest}"
        verdict = self.evaluate(source)
        if not verdict.is_model:
            self._record(repository, digest, tag, "rejected", verdict.reason)
            return
        state = "admitted" if verdict.admitted else ("warned" if not verdict.enforced else "rejected")
        promoted_to = None
        if state in ("admitted", "warned") and self.promote is not None and repository.startswith(self.config.quarantine):
            target_repo = self.config.trusted + repository[len(self.config.quarantine) :]
            destination = f"{self.config.registry}/{target_repo}" + (f":{tag}" if tag else f"@{digest}")
            try:
                self.promote(source, destination)
            except (IntegrityError, VerificationError, LimitError) as exc:
                # A blob that does not match its digest (tampered storage) is caught here,
                # while the copy re-hashes every byte: the model stays in quarantine.
                self._record(repository, digest, tag, "rejected", f"not promoted: {exc.one_line()}", verdict)
                return
            promoted_to = destination
        self._record(repository, digest, tag, state, verdict.reason, verdict, promoted_to)

    def _record(
        self,
        repository: str,
        digest: str,
        tag: str | None,
        state: str,
        reason: str,
        verdict: Verdict | None = None,
        promoted_to: str | None = None,
    ) -> None:
        log.info("gate: %s@%s %s: %s", repository, digest, state, reason)
        self.ledger.record_result(
            Result(
                repository,
                digest,
                tag,
                state,
                reason,
                list(verdict.signers) if verdict else [],
                list(verdict.attestations) if verdict else [],
                promoted_to,
            )
        )


# -- HTTP ----------------------------------------------------------------------------------
def _handler(gate: Gate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "omsign-gate"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("gate http: " + format, *args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: object) -> None:
            self._send(status, json.dumps(value, indent=2).encode(), "application/json")

        def do_POST(self) -> None:
            if urlsplit(self.path).path not in ("/events", "/"):
                self._json(HTTPStatus.NOT_FOUND, {"error": "post events to /events"})
                return
            if gate.config.token is not None and self.headers.get("Authorization") != f"Bearer {gate.config.token}":
                self._json(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length required"})
                return
            if length < 0 or length > MAX_ENVELOPE_BYTES:
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"envelope over {MAX_ENVELOPE_BYTES} bytes"})
                return
            body = self.rfile.read(length)
            try:
                new, ignored = gate.receive(body)
            except (InputError, LimitError) as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": exc.one_line()})
                return
            self._json(HTTPStatus.OK, {"accepted": new, "ignored": ignored})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            try:
                limit = int(query.get("limit", ["100"])[0])
            except ValueError:
                limit = 100
            if url.path == "/api/results":
                results = gate.ledger.results(limit)
                self._json(
                    HTTPStatus.OK,
                    {"schemaVersion": SCHEMA_VERSION, "pending": gate.ledger.pending(), "results": [r.to_json() for r in results]},
                )
            elif url.path == "/healthz":
                self._json(HTTPStatus.OK, {"ok": True})
            elif url.path == "/":
                page = render_page(gate.ledger.results(limit), gate.ledger.pending(), gate.config)
                self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    return Handler


class GateServer:
    """The gate's HTTP endpoint and worker, started and stopped together."""

    def __init__(self, gate: Gate, host: str, port: int) -> None:
        self.gate = gate
        self.httpd = ThreadingHTTPServer((host, port), _handler(gate))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self.gate.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="omsign-gate-http", daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        self.gate.start()
        try:
            self.httpd.serve_forever()
        finally:
            self.close()

    def close(self) -> None:
        self.httpd.shutdown() if self._thread is not None else None
        self.httpd.server_close()
        self.gate.stop()
        self.gate.ledger.close()


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not (0 <= int(port) <= 65535):
        raise InputError(f"--listen must be HOST:PORT, not {value!r}")
    return host or "127.0.0.1", int(port)


def default_db() -> Path:
    import os

    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "omsign" / "gate.sqlite"
