"""Where each blob was last seen: registry and repository, so a push or copy can mount it.

Registries store a blob once and let a client link it into another repository with a mount
(``POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<other>``); skopeo's blob-info cache
gets its speed from this. The cache is only a hint: a stale entry (blob deleted, repository
gone, no pull access) makes the registry refuse the mount and the caller uploads as usual.

Stored in SQLite beside the digest cache (``$XDG_CACHE_HOME/omsign/blobs.sqlite``); like every
``SqliteCache`` it never fails a command.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from ..sqlitecache import SqliteCache, cache_file

MAX_CANDIDATES = 3  # mounts to try per blob before uploading: each refusal costs a round trip


def default_cache_path() -> Path:
    return cache_file("blobs.sqlite")


class BlobLocationCache(SqliteCache):
    """``record`` where blobs are; ``repositories`` of a registry that last held a digest."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS locations (
        registry TEXT NOT NULL,
        repository TEXT NOT NULL,
        digest TEXT NOT NULL,
        seen REAL NOT NULL,
        PRIMARY KEY (registry, digest, repository)
    )
    """

    def __init__(self, path: Path | None = None, *, enabled: bool = True) -> None:
        super().__init__(path or default_cache_path(), enabled=enabled)

    def repositories(self, registry: str, digest: str) -> list[str]:
        """Repositories of ``registry`` that held ``digest``, most recently seen first."""

        def query(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT repository FROM locations WHERE registry=? AND digest=? ORDER BY seen DESC LIMIT ?",
                (registry, digest, MAX_CANDIDATES),
            ).fetchall()
            return [str(r[0]) for r in rows]

        return self._run(query, [])

    def record(self, registry: str, repository: str, digests: Iterable[str]) -> None:
        """Remember that ``repository`` on ``registry`` now holds each of ``digests``."""
        now = time.time()
        rows = [(registry, repository, d, now) for d in digests]
        if not rows:
            return

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN")
            try:
                conn.executemany("INSERT OR REPLACE INTO locations VALUES (?,?,?,?)", rows)
            except sqlite3.Error:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        self._run(write, None)

    def forget(self, registry: str, repository: str, digest: str) -> None:
        """Drop an entry a registry refused to mount from."""
        self._run(
            lambda conn: conn.execute(
                "DELETE FROM locations WHERE registry=? AND repository=? AND digest=?",
                (registry, repository, digest),
            ),
            None,
        )
