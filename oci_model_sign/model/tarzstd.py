"""Reproducible tar(+zstd) layers for folders, and bounded, path-safe extraction.

Writing: entries sorted, uid/gid 0, empty owner names, mtime 0, modes normalised to 0644 /
0755, PAX format, no device numbers. The same folder therefore always gives the same bytes and
the same layer digest, so re-pushing an unchanged model gives the same manifest digest (the
ModelPack spec's reproducibility SHOULD, which modctl does not meet). Sources are read once:
the tar stream is hashed uncompressed (the ``diffId``) and, after zstd, compressed (the layer
digest) on its way to a temporary file.

Reading: the decompressed stream is bounded by the layer's recorded uncompressed size, every
member name goes through ``unpack.safe_relpath`` and only regular files and directories are
accepted, so a layer cannot write outside its destination, plant links, or fill the disk.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

import zstandard

from ..digest import CHUNK
from ..errors import InputError, IntegrityError, LimitError

Compression = Literal["zstd", "gzip"] | None

ZSTD_LEVEL = 3


@dataclass(frozen=True)
class TarMember:
    """One entry to write: ``name`` inside the tar (POSIX, relative); ``source`` None for a dir."""

    name: str
    source: Path | None
    size: int = 0
    executable: bool = False

    @property
    def is_dir(self) -> bool:
        return self.source is None


@dataclass(frozen=True)
class BuiltTar:
    """A layer built into ``path``: its digest/size as stored and as uncompressed tar."""

    path: Path
    digest: str
    size: int
    diff_id: str
    uncompressed_size: int
    compression: Compression


class _HashingSink:
    """A write-only file that hashes and counts what passes through to ``out``."""

    def __init__(self, out: BinaryIO | _HashingSink | zstandard.ZstdCompressionWriter) -> None:
        self.out = out
        self.hasher = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        self.hasher.update(data)
        self.count += len(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        pass


def sort_key(name: str) -> tuple[str, ...]:
    """Component-wise order (``a/b`` before ``a-b``), the order model-signing sorts paths in."""
    return PurePosixPath(name).parts


def _tarinfo(member: TarMember) -> tarfile.TarInfo:
    info = tarfile.TarInfo(member.name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.devmajor = info.devminor = 0
    if member.is_dir:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.size = 0
    else:
        info.type = tarfile.REGTYPE
        info.mode = 0o755 if member.executable else 0o644
        info.size = member.size
    return info


def write_tar(members: list[TarMember], out_path: Path, *, compression: Compression = "zstd",
              level: int = ZSTD_LEVEL) -> BuiltTar:
    """Write ``members`` (sorted here) as a reproducible tar, zstd-compressed unless None.

    Raises InputError if a source file cannot be read or changes size while being written.
    """
    if compression == "gzip":
        raise InputError("omsign writes tar or tar+zstd folder layers, not tar+gzip")
    ordered = sorted(members, key=lambda m: sort_key(m.name))
    with open(out_path, "wb") as raw:
        stored = _HashingSink(raw)
        writer: zstandard.ZstdCompressionWriter | None = None
        if compression == "zstd":
            cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
            writer = cctx.stream_writer(stored, closefd=False)  # type: ignore[arg-type]
            plain = _HashingSink(writer)
        else:
            plain = _HashingSink(stored)
        tf = tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]  # noqa: SIM115
        tf.copybufsize = CHUNK
        try:
            for member in ordered:
                info = _tarinfo(member)
                if member.source is None:
                    tf.addfile(info)
                    continue
                try:
                    with open(member.source, "rb") as f:
                        if os.fstat(f.fileno()).st_size != member.size:
                            raise InputError(f"{member.source} changed size while being packed",
                                             hint="pack again once the model folder is not being written")
                        tf.addfile(info, f)
                except OSError as exc:
                    raise InputError(f"cannot read {member.source}: {exc.strerror or exc}") from exc
        finally:
            tf.close()
        if writer is not None:
            writer.flush(zstandard.FLUSH_FRAME)
            writer.close()  # type: ignore[no-untyped-call]
        raw.flush()
        os.fsync(raw.fileno())
    return BuiltTar(
        path=out_path,
        digest="sha256:" + stored.hasher.hexdigest(),
        size=stored.count,
        diff_id="sha256:" + plain.hasher.hexdigest(),
        uncompressed_size=plain.count,
        compression=compression,
    )


def members_for_folder(root: Path, folder: str, files: list[tuple[str, Path, int]]) -> list[TarMember]:
    """Tar members for ``folder`` (relative to ``root``): its directories and the given files.

    ``files`` are (relpath from root, source path, size); directories on the way are added so
    extraction recreates empty-looking parents with normal modes.
    """
    top = PurePosixPath(folder)
    dirs: set[str] = {folder}
    out: list[TarMember] = []
    for rel, source, size in files:
        for parent in PurePosixPath(rel).parents:
            if parent != top and parent.is_relative_to(top):
                dirs.add(str(parent))
        mode = os.stat(source).st_mode
        out.append(TarMember(rel, source, size, executable=bool(mode & stat.S_IXUSR)))
    out.extend(TarMember(d, None) for d in dirs)
    return out


# -- extraction --------------------------------------------------------------------------------
class _BoundedReader:
    """Reads a decompressed stream, refusing to go past ``limit`` bytes; hashes what it reads."""

    def __init__(self, inner: BinaryIO, limit: int, what: str) -> None:
        self.inner = inner
        self.limit = limit
        self.what = what
        self.count = 0
        self.hasher = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = CHUNK
        data = self.inner.read(min(n, self.limit - self.count + 1))
        self.count += len(data)
        if self.count > self.limit:
            raise LimitError(f"{self.what} decompresses beyond its recorded size of {self.limit} bytes")
        self.hasher.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def _open_decompressed(src: BinaryIO, compression: Compression) -> BinaryIO:
    if compression == "zstd":
        dctx = zstandard.ZstdDecompressor()
        return dctx.stream_reader(src, read_across_frames=True, closefd=False)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[return-value]
    return src


def extract_tar(
    src: BinaryIO,
    dest: Path,
    *,
    compression: Compression,
    max_output: int,
    expected_diff_id: str | None = None,
    include: Callable[[str], bool] | None = None,
    what: str = "layer",
) -> list[str]:
    """Extract a (verified) tar stream into ``dest``, an empty staging directory we own.

    ``max_output`` bounds the uncompressed bytes (LimitError past it). Member names are
    checked with ``safe_relpath``; symlinks, hardlinks, devices, fifos, duplicate or
    look-alike names and a file where a directory is needed are IntegrityError. Files for
    which ``include(relpath)`` is False are skipped. Returns the file paths written.
    """
    from .unpack import check_unique, safe_relpath

    reader = _BoundedReader(_open_decompressed(src, compression), max_output, what)
    written: list[str] = []
    seen: list[str] = []
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tf:  # type: ignore[call-overload]
            for member in tf:
                name = member.name.rstrip("/") if member.isdir() else member.name
                rel = safe_relpath(name, what=f"{what} member")
                seen.append(str(rel))
                if not (member.isreg() or member.isdir()):
                    raise IntegrityError(
                        f"{what} member {member.name!r} is not a regular file or directory "
                        f"(tar type {member.type!r})",
                        hint="omsign refuses links and device files in layers",
                    )
                target = dest.joinpath(*rel.parts)
                if member.isdir():
                    _make_dirs(dest, rel)
                    continue
                if include is not None and not include(str(rel)):
                    continue
                _make_dirs(dest, rel.parent)
                fobj = tf.extractfile(member)
                assert fobj is not None
                mode = 0o755 if member.mode & 0o111 else 0o644
                try:
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
                except FileExistsError as exc:
                    raise IntegrityError(f"{what} contains {rel} twice, or a file where a folder is") from exc
                with os.fdopen(fd, "wb") as out:
                    remaining = member.size
                    while remaining:
                        chunk = fobj.read(min(CHUNK, remaining))
                        if not chunk:
                            raise IntegrityError(f"{what} ends inside {rel}")
                        out.write(chunk)
                        remaining -= len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                written.append(str(rel))
            check_unique(seen, what=what, allow_dirs=True)
        reader.drain()
    except tarfile.TarError as exc:
        raise IntegrityError(f"{what} is not a valid tar archive: {exc}") from exc
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what} is not valid zstd data: {exc}") from exc
    except (OSError, EOFError) as exc:
        if isinstance(exc, (gzip.BadGzipFile, EOFError)):
            raise IntegrityError(f"{what} is not valid gzip data: {exc}") from exc
        raise
    if expected_diff_id is not None:
        actual = "sha256:" + reader.hasher.hexdigest()
        if actual != expected_diff_id:
            raise IntegrityError(
                f"{what} uncompressed content does not match its diffId: expected {expected_diff_id}, got {actual}"
            )
    return written


def _make_dirs(dest: Path, rel: PurePosixPath) -> None:
    """Create ``dest/rel`` one component at a time, refusing to pass through a non-directory."""
    current = dest
    for part in rel.parts:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise IntegrityError(f"layer needs folder {rel} where a file already is")
