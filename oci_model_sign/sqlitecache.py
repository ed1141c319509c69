"""A best-effort SQLite file under ``$XDG_CACHE_HOME/omsign``: the digest and blob-location caches.

Both caches are hints that only save work, so neither may ever fail a command: any database or
file-system error disables the cache for the rest of the process and the caller does the work
the slow way. SQLite serialises concurrent processes with its own locking (WAL journal).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TypeVar

T = TypeVar("T")


def cache_file(name: str) -> Path:
    """``$XDG_CACHE_HOME/omsign/NAME`` (``~/.cache`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "omsign" / name


class SqliteCache:
    """One lazily opened connection, shared by threads behind a lock; ``enabled=False`` for ``--no-cache``."""

    SCHEMA: ClassVar[str]  # CREATE TABLE IF NOT EXISTS ..., run when the file is first opened

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
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
                conn.execute(self.SCHEMA)
                self._conn = conn
            except (sqlite3.Error, OSError):
                self.enabled = False
                return None
        return self._conn

    def _run(self, query: Callable[[sqlite3.Connection], T], default: T) -> T:
        """``query(connection)``, or ``default`` when the cache is off or the database fails."""
        with self._lock:
            conn = self._connect()
            if conn is None:
                return default
            try:
                return query(conn)
            except sqlite3.Error:
                self.enabled = False
                return default

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
