"""Reproducible tar(+zstd) folder layers and their bounded, path-safe extraction."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import zstandard

from oci_model_sign.errors import IntegrityError, LimitError
from oci_model_sign.model.tarzstd import (
    BuiltTar,
    Compression,
    TarMember,
    extract_tar,
    members_for_folder,
    write_tar,
)


def make_folder(root: Path) -> list[tuple[str, Path, int]]:
    files = {"code/b.py": b"print('b')\n", "code/a.py": b"print('a')\n", "code/sub/c.sh": b"#!/bin/sh\n"}
    out = []
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        out.append((rel, p, len(data)))
    (root / "code/sub/c.sh").chmod(0o755)
    return out


def build(root: Path, out: Path, compression: Compression = "zstd") -> BuiltTar:
    files = make_folder(root)
    return write_tar(members_for_folder(root, "code", files), out, compression=compression)


def zstd_tar(members: dict[str, bytes] | list[tuple[str, bytes]], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    pairs = list(members.items()) if isinstance(members, dict) else members
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in pairs:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tf.addfile(info)
    return zstandard.ZstdCompressor().compress(buf.getvalue())


def test_same_folder_gives_identical_bytes_and_digest(tmp_path: Path) -> None:
    a = build(tmp_path / "one", tmp_path / "a.tar.zst")
    b = build(tmp_path / "two", tmp_path / "b.tar.zst")
    assert (tmp_path / "a.tar.zst").read_bytes() == (tmp_path / "b.tar.zst").read_bytes()
    assert a.digest == b.digest


def test_digests_and_sizes_describe_the_written_file(tmp_path: Path) -> None:
    built = build(tmp_path / "m", tmp_path / "l.tar.zst")
    data = (tmp_path / "l.tar.zst").read_bytes()
    plain = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    assert built.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert built.size == len(data)
    assert built.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert built.uncompressed_size == len(plain)


def test_entries_are_sorted_and_normalised(tmp_path: Path) -> None:
    build(tmp_path / "m", tmp_path / "l.tar", compression=None)
    with tarfile.open(tmp_path / "l.tar") as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == ["code", "code/a.py", "code/b.py", "code/sub", "code/sub/c.sh"]
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", 0)
    modes = {m.name: m.mode for m in members}
    assert modes["code"] == 0o755 and modes["code/a.py"] == 0o644 and modes["code/sub/c.sh"] == 0o755


def test_lookalike_members_are_refused(tmp_path: Path) -> None:
    data = zstd_tar([("Readme.md", b"first"), ("README.md", b"second")])
    with pytest.raises(IntegrityError, match="look-alike"):
        extract_tar(io.BytesIO(data), tmp_path, compression="zstd", max_output=1 << 20)


def test_extraction_restores_files(tmp_path: Path) -> None:
    built = build(tmp_path / "m", tmp_path / "l.tar.zst")
    dest = tmp_path / "out"
    dest.mkdir()
    with open(tmp_path / "l.tar.zst", "rb") as f:
        written = extract_tar(f, dest, compression="zstd", max_output=built.uncompressed_size,
                              expected_diff_id=built.diff_id)
    assert sorted(written) == ["code/a.py", "code/b.py", "code/sub/c.sh"]
    assert (dest / "code/sub/c.sh").read_bytes() == b"#!/bin/sh\n"
    assert (dest / "code/sub/c.sh").stat().st_mode & 0o111


def test_extraction_include_filter_skips_other_files(tmp_path: Path) -> None:
    built = build(tmp_path / "m", tmp_path / "l.tar.zst")
    dest = tmp_path / "out"
    dest.mkdir()
    with open(tmp_path / "l.tar.zst", "rb") as f:
        written = extract_tar(f, dest, compression="zstd", max_output=built.uncompressed_size,
                              include=lambda rel: rel.endswith("a.py"))
    assert written == ["code/a.py"]
    assert not (dest / "code/b.py").exists()


def test_a_layer_expanding_past_its_recorded_size_is_a_limit_error(tmp_path: Path) -> None:
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (8 * 1024 * 1024))
    assert len(bomb) < 4096
    with pytest.raises(LimitError, match="decompresses beyond its recorded size"):
        extract_tar(io.BytesIO(bomb), tmp_path, compression="zstd", max_output=10_000)


def test_a_member_escaping_with_dotdot_is_refused(tmp_path: Path) -> None:
    data = zstd_tar({"../evil": b"x"})
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(IntegrityError):
        extract_tar(io.BytesIO(data), dest, compression="zstd", max_output=1 << 20)
    assert not (tmp_path / "evil").exists()


def test_an_absolute_member_is_refused(tmp_path: Path) -> None:
    data = zstd_tar({"/tmp/evil": b"x"})
    with pytest.raises(IntegrityError):
        extract_tar(io.BytesIO(data), tmp_path, compression="zstd", max_output=1 << 20)


def test_symlink_members_are_refused(tmp_path: Path) -> None:
    data = zstd_tar({"a.txt": b"x"}, symlink="link")
    with pytest.raises(IntegrityError, match="not a regular file"):
        extract_tar(io.BytesIO(data), tmp_path, compression="zstd", max_output=1 << 20)


def test_duplicate_members_are_refused(tmp_path: Path) -> None:
    data = zstd_tar([("a.txt", b"first"), ("b.txt", b"b"), ("a.txt", b"second")])
    with pytest.raises(IntegrityError, match="twice"):
        extract_tar(io.BytesIO(data), tmp_path, compression="zstd", max_output=1 << 20)


def test_wrong_diff_id_is_an_integrity_error(tmp_path: Path) -> None:
    data = zstd_tar({"a.txt": b"x"})
    with pytest.raises(IntegrityError, match="diffId"):
        extract_tar(io.BytesIO(data), tmp_path, compression="zstd", max_output=1 << 20,
                    expected_diff_id="sha256:" + "0" * 64)


def test_garbage_is_an_integrity_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError):
        extract_tar(io.BytesIO(b"not zstd at all"), tmp_path, compression="zstd", max_output=1 << 20)


def test_gzip_layers_extract_too(tmp_path: Path) -> None:
    import gzip

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("dir/a.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    written = extract_tar(io.BytesIO(gzip.compress(buf.getvalue())), tmp_path, compression="gzip",
                          max_output=1 << 20)
    assert written == ["dir/a.txt"] and (tmp_path / "dir/a.txt").read_bytes() == b"hi"


def test_source_file_changing_size_is_an_input_error(tmp_path: Path) -> None:
    from oci_model_sign.errors import InputError

    src = tmp_path / "a.txt"
    src.write_bytes(b"abc")
    with pytest.raises(InputError):
        write_tar([TarMember("a.txt", src, 10)], tmp_path / "o.tar", compression=None)
