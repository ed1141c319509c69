"""A persistent cache of file digests, so re-pushing an unchanged 2 GB folder hashes nothing.

Keyed on (realpath, size, mtime_ns, ctime_ns, inode, dev): any write to a file changes its
mtime and ctime (ctime cannot be set back by ``touch``), and a replaced file has a new inode.
A stale hit is not a security problem anyway: the store (or registry) checks the bytes sent
against the digest, so a wrong cached digest fails the push instead of mislabelling a file.

Stored in SQLite (``$XDG_CACHE_HOME/omsign/digests.sqlite``), which serialises concurrent
processes with its own locking. The cache never fails a command: any database error disables
it for the rest of the process.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    realpath TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    dev INTEGER NOT NULL,
    digest TEXT NOT NULL
)
"""


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "omsign" / "digests.sqlite"


class DigestCache:
    """``get``/``put`` of sha256 digests by file identity; ``enabled=False`` for ``--no-cache``."""

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
                conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                                       isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_SCHEMA)
                self._conn = conn
            except (sqlite3.Error, OSError):
                self.enabled = False
                return None
        return self._conn

    @staticmethod
    def _key(path: Path | str, st: os.stat_result) -> tuple[str, int, int, int, int, int]:
        return (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

    def get(self, path: Path | str, st: os.stat_result) -> str | None:
        """The cached digest of ``path`` if its identity still matches ``st``, else None."""
        with self._lock:
            conn = self._connect()
            if conn is None:
                return None
            real, size, mtime, ctime, ino, dev = self._key(path, st)
            try:
                row = conn.execute(
                    "SELECT digest FROM digests WHERE realpath=? AND size=? AND mtime_ns=? "
                    "AND ctime_ns=? AND inode=? AND dev=?",
                    (real, size, mtime, ctime, ino, dev),
                ).fetchone()
            except sqlite3.Error:
                self.enabled = False
                return None
            return str(row[0]) if row else None

    def put(self, path: Path | str, st: os.stat_result, digest: str) -> None:
        """Remember ``digest`` for ``path`` as it was when ``st`` was taken (before hashing)."""
        with self._lock:
            conn = self._connect()
            if conn is None:
                return
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO digests VALUES (?,?,?,?,?,?,?)",
                    (*self._key(path, st), digest),
                )
            except sqlite3.Error:
                self.enabled = False

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
