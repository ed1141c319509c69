"""The gate's durable state: events seen, work to do, verdicts given (one SQLite file).

An event is acknowledged to the registry only after it is written here, so a gate killed
between the two loses nothing: the registry resends what was not acknowledged, and work that
was acknowledged but not done is still queued when the gate starts again. Every write is
keyed (event id; repository + digest), so resent and duplicated events change nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    received REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    tag TEXT,
    media_type TEXT NOT NULL,
    requested INTEGER NOT NULL DEFAULT 1,
    done INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (repository, digest)
);
CREATE TABLE IF NOT EXISTS results (
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    tag TEXT,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    signers TEXT NOT NULL DEFAULT '[]',
    attestations TEXT NOT NULL DEFAULT '[]',
    promoted_to TEXT,
    checks INTEGER NOT NULL DEFAULT 1,
    first_seen REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX IF NOT EXISTS results_updated ON results (updated DESC);
"""


@dataclass(frozen=True)
class Job:
    repository: str
    digest: str
    tag: str | None
    media_type: str
    requested: int
    attempts: int


@dataclass
class Result:
    repository: str
    digest: str
    tag: str | None
    verdict: str  # admitted | rejected | warned | error
    reason: str
    signers: list[str] = field(default_factory=list)
    attestations: list[str] = field(default_factory=list)
    promoted_to: str | None = None
    checks: int = 1
    first_seen: float = 0.0
    updated: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "tag": self.tag,
            "verdict": self.verdict,
            "reason": self.reason,
            "signers": self.signers,
            "attestations": self.attestations,
            "promotedTo": self.promoted_to,
            "checks": self.checks,
            "firstSeen": _iso(self.first_seen),
            "updated": _iso(self.updated),
        }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Ledger:
    """Thread-safe access to the gate's SQLite file (WAL: the page reads while the worker writes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- intake --------------------------------------------------------------------------
    def record_events(self, events: list[tuple[str, str, str, str, str | None]]) -> int:
        """Queue (id, repository, digest, media type, tag) events; returns how many were new.

        A job already queued for the same manifest is asked to run once more (``requested``
        grows), so a signature arriving while its model is being checked is not missed.
        """
        new = 0
        now = time.time()
        with self._tx() as db:
            for event_id, repository, digest, media_type, tag in events:
                cur = db.execute("INSERT OR IGNORE INTO events (id, received) VALUES (?, ?)", (event_id, now))
                if cur.rowcount == 0:
                    continue
                new += 1
                db.execute(
                    """INSERT INTO jobs (repository, digest, tag, media_type) VALUES (?, ?, ?, ?)
                       ON CONFLICT (repository, digest) DO UPDATE SET
                         requested = requested + 1, attempts = 0, not_before = 0,
                         tag = COALESCE(excluded.tag, jobs.tag)""",
                    (repository, digest, tag, media_type),
                )
        return new

    def requeue(self, repository: str, digest: str, tag: str | None, media_type: str) -> None:
        """Ask for a check without an event (a subject whose signature just arrived)."""
        with self._tx() as db:
            db.execute(
                """INSERT INTO jobs (repository, digest, tag, media_type) VALUES (?, ?, ?, ?)
                   ON CONFLICT (repository, digest) DO UPDATE SET
                     requested = requested + 1, attempts = 0, not_before = 0,
                     tag = COALESCE(excluded.tag, jobs.tag)""",
                (repository, digest, tag, media_type),
            )

    # -- work ----------------------------------------------------------------------------
    def next_job(self) -> Job | None:
        with self._lock:
            row = self._db.execute(
                """SELECT repository, digest, tag, media_type, requested, attempts FROM jobs
                   WHERE done < requested AND not_before <= ? ORDER BY not_before, rowid LIMIT 1""",
                (time.time(),),
            ).fetchone()
        return Job(*row) if row else None

    def pending(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM jobs WHERE done < requested").fetchone()
        return int(n)

    def finish(self, job: Job) -> None:
        """Mark the job done up to the request it started from (later requests still run)."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET done = ?, attempts = 0 WHERE repository = ? AND digest = ? AND done < ?",
                (job.requested, job.repository, job.digest, job.requested),
            )

    def retry_later(self, job: Job, delay: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET attempts = attempts + 1, not_before = ? WHERE repository = ? AND digest = ?",
                (time.time() + delay, job.repository, job.digest),
            )

    # -- verdicts ------------------------------------------------------------------------
    def record_result(self, result: Result) -> None:
        now = time.time()
        with self._tx() as db:
            db.execute(
                """INSERT INTO results (repository, digest, tag, verdict, reason, signers, attestations,
                                        promoted_to, checks, first_seen, updated)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
                   ON CONFLICT (repository, digest) DO UPDATE SET
                     tag = COALESCE(excluded.tag, results.tag), verdict = excluded.verdict,
                     reason = excluded.reason, signers = excluded.signers,
                     attestations = excluded.attestations,
                     promoted_to = COALESCE(excluded.promoted_to, results.promoted_to),
                     checks = results.checks + 1, updated = excluded.updated""",
                (
                    result.repository,
                    result.digest,
                    result.tag,
                    result.verdict,
                    result.reason,
                    json.dumps(result.signers),
                    json.dumps(result.attestations),
                    result.promoted_to,
                    now,
                    now,
                ),
            )

    def result(self, repository: str, digest: str) -> Result | None:
        rows = self._select("WHERE repository = ? AND digest = ?", (repository, digest), 1)
        return rows[0] if rows else None

    def results(self, limit: int = 100) -> list[Result]:
        return self._select("", (), max(1, min(limit, 10_000)))

    def _select(self, where: str, args: tuple[Any, ...], limit: int) -> list[Result]:
        with self._lock:
            rows = self._db.execute(
                f"""SELECT repository, digest, tag, verdict, reason, signers, attestations, promoted_to,
                           checks, first_seen, updated FROM results {where}
                    ORDER BY updated DESC, rowid DESC LIMIT ?""",
                (*args, limit),
            ).fetchall()
        return [
            Result(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]), r[7], r[8], r[9], r[10])
            for r in rows
        ]
