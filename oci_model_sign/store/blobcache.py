"""Where each blob was last seen: registry and repository, so a push or copy can mount it.

Registries store a blob once and let a client link it into another repository with a mount
(``POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<other>``); skopeo's blob-info cache
gets its speed from this. The cache is only a hint: a stale entry (blob deleted, repository
gone, no pull access) makes the registry refuse the mount and the caller uploads as usual.

Stored in SQLite beside the digest cache (``$XDG_CACHE_HOME/omsign/blobs.sqlite``). Like the
digest cache it never fails a command: any database error disables it for the process.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS locations (
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (registry, digest, repository)
)
"""
MAX_CANDIDATES = 3  # mounts to try per blob before uploading: each refusal costs a round trip


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "omsign" / "blobs.sqlite"


class BlobLocationCache:
    """``record`` where blobs are; ``repositories`` of a registry that last held a digest."""

    def __init__(self, path: Path | None = None, *, enabled: bool = True) -> None:
        self.path = path or default_cache_path()
        self.enabled = enabled
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection | None:
        if not self.enabled:
            return None
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_SCHEMA)
                self._conn = conn
            except (sqlite3.Error, OSError):
                self.enabled = False
                return None
        return self._conn

    def repositories(self, registry: str, digest: str) -> list[str]:
        """Repositories of ``registry`` that held ``digest``, most recently seen first."""
        with self._lock:
            conn = self._connect()
            if conn is None:
                return []
            try:
                rows = conn.execute(
                    "SELECT repository FROM locations WHERE registry=? AND digest=? ORDER BY seen DESC LIMIT ?",
                    (registry, digest, MAX_CANDIDATES),
                ).fetchall()
            except sqlite3.Error:
                self.enabled = False
                return []
            return [str(r[0]) for r in rows]

    def record(self, registry: str, repository: str, digests: Iterable[str]) -> None:
        """Remember that ``repository`` on ``registry`` now holds each of ``digests``."""
        now = time.time()
        rows = [(registry, repository, d, now) for d in digests]
        if not rows:
            return
        with self._lock:
            conn = self._connect()
            if conn is None:
                return
            try:
                conn.execute("BEGIN")
                conn.executemany("INSERT OR REPLACE INTO locations VALUES (?,?,?,?)", rows)
                conn.execute("COMMIT")
            except sqlite3.Error:
                self.enabled = False

    def forget(self, registry: str, repository: str, digest: str) -> None:
        """Drop an entry a registry refused to mount from."""
        with self._lock:
            conn = self._connect()
            if conn is None:
                return
            try:
                conn.execute(
                    "DELETE FROM locations WHERE registry=? AND repository=? AND digest=?",
                    (registry, repository, digest),
                )
            except sqlite3.Error:
                self.enabled = False

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
