"""The persistent digest cache that spares re-hashing unchanged files."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from oci_model_sign.model.digestcache import DigestCache, default_cache_path

DIGEST = "sha256:" + "ab" * 32


def test_default_location_is_under_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_cache_path() == tmp_path / "cache/omsign/digests.sqlite"


def test_put_then_get_returns_digest_for_unchanged_file(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    cache = DigestCache(tmp_path / "c.sqlite")
    cache.put(f, os.stat(f), DIGEST)
    assert cache.get(f, os.stat(f)) == DIGEST


def test_cache_persists_across_instances(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    DigestCache(tmp_path / "c.sqlite").put(f, os.stat(f), DIGEST)
    assert DigestCache(tmp_path / "c.sqlite").get(f, os.stat(f)) == DIGEST


def test_modified_file_misses(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    cache = DigestCache(tmp_path / "c.sqlite")
    cache.put(f, os.stat(f), DIGEST)
    f.write_bytes(b"abd")
    os.utime(f, ns=(os.stat(f).st_atime_ns, os.stat(f).st_mtime_ns + 1_000_000))
    assert cache.get(f, os.stat(f)) is None


def test_same_size_and_restored_mtime_still_misses_because_ctime_changed(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    before = os.stat(f)
    cache = DigestCache(tmp_path / "c.sqlite")
    cache.put(f, before, DIGEST)
    f.write_bytes(b"xyz")
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(f)
    if after.st_ctime_ns == before.st_ctime_ns:
        return  # filesystem with coarse ctime: nothing to observe
    assert cache.get(f, after) is None


def test_replaced_file_with_new_inode_misses(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    st = os.stat(f)
    cache = DigestCache(tmp_path / "c.sqlite")
    cache.put(f, st, DIGEST)
    other = tmp_path / "new.bin"
    other.write_bytes(b"abc")
    os.replace(other, f)
    assert cache.get(f, os.stat(f)) is None


def test_disabled_cache_never_stores_or_returns(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    cache = DigestCache(tmp_path / "c.sqlite", enabled=False)
    cache.put(f, os.stat(f), DIGEST)
    assert cache.get(f, os.stat(f)) is None
    assert not (tmp_path / "c.sqlite").exists()


def test_unusable_cache_location_disables_the_cache_without_failing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    cache = DigestCache(blocker / "sub" / "c.sqlite")
    cache.put(f, os.stat(f), DIGEST)
    assert cache.get(f, os.stat(f)) is None


def _fill(db: str, folder: str, worker: int) -> None:
    cache = DigestCache(Path(db))
    for i in range(20):
        f = Path(folder) / f"{worker}-{i}"
        cache.put(f, os.stat(f), f"sha256:{worker:02d}{i:062d}")


def test_concurrent_processes_share_the_cache(tmp_path: Path) -> None:
    for w in range(3):
        for i in range(20):
            (tmp_path / f"{w}-{i}").write_bytes(b"x")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_fill, args=(str(tmp_path / "c.sqlite"), str(tmp_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = DigestCache(tmp_path / "c.sqlite")
    for w in range(3):
        for i in range(20):
            f = tmp_path / f"{w}-{i}"
            assert cache.get(f, os.stat(f)) == f"sha256:{w:02d}{i:062d}"
