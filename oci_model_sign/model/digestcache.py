"""A persistent cache of file digests, so re-pushing an unchanged 2 GB folder hashes nothing.

Keyed on (realpath, size, mtime_ns, ctime_ns, inode, dev): any write to a file changes its
mtime and ctime (ctime cannot be set back by ``touch``), and a replaced file has a new inode.
A stale hit is not a security problem anyway: the store (or registry) checks the bytes sent
against the digest, so a wrong cached digest fails the push instead of mislabelling a file.

Stored in SQLite (``$XDG_CACHE_HOME/omsign/digests.sqlite``); like every ``SqliteCache`` it
never fails a command.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..sqlitecache import SqliteCache, cache_file


def default_cache_path() -> Path:
    return cache_file("digests.sqlite")


class DigestCache(SqliteCache):
    """``get``/``put`` of sha256 digests by file identity; ``enabled=False`` for ``--no-cache``."""

    SCHEMA = """
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

    def __init__(self, path: Path | None = None, *, enabled: bool = True) -> None:
        super().__init__(path or default_cache_path(), enabled=enabled)

    @staticmethod
    def _key(path: Path | str, st: os.stat_result) -> tuple[str, int, int, int, int, int]:
        return (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

    def get(self, path: Path | str, st: os.stat_result) -> str | None:
        """The cached digest of ``path`` if its identity still matches ``st``, else None."""
        key = self._key(path, st)

        def query(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT digest FROM digests WHERE realpath=? AND size=? AND mtime_ns=? "
                "AND ctime_ns=? AND inode=? AND dev=?",
                key,
            ).fetchone()
            return str(row[0]) if row else None

        return self._run(query, None)

    def put(self, path: Path | str, st: os.stat_result, digest: str) -> None:
        """Remember ``digest`` for ``path`` as it was when ``st`` was taken (before hashing)."""
        row = (*self._key(path, st), digest)
        self._run(lambda conn: conn.execute("INSERT OR REPLACE INTO digests VALUES (?,?,?,?,?,?,?)", row), None)
