"""A safetensors guard: open a weights file only if its bytes are the signed bytes.

Checking a path and then loading the path is a race: between the two, the file can be
renamed over, replaced by a symlink, or rewritten in place. ``open_verified`` closes it by
never going back to the path after the first ``open``:

1. the file is opened once (``O_NOFOLLOW``: a symlink is refused) and ``fstat``-ed;
2. ``mode="sealed"`` (default where Linux offers ``memfd_create``): its bytes are copied,
   through that descriptor, into an anonymous memory file while being hashed; the memory
   file is then *sealed* (``F_SEAL_WRITE|SHRINK|GROW``), so nobody, its owner included, can
   change it, and ``safetensors.safe_open`` maps ``/proc/self/fd/<memfd>``. The bytes
   hashed are the bytes the tensors are made from, whatever happens to the file afterwards.
   Cost: the file's size in memory (the tensors alias it, as they would alias a file map).
3. ``mode="mmap"`` (elsewhere, or asked for, to keep very large weights out of memory): the
   descriptor is hashed, and ``safe_open`` opens ``/proc/self/fd/<fd>`` (``/dev/fd/<fd>``),
   which reaches the very inode that was hashed even if the path was swapped meanwhile. What
   this mode cannot stop is an in-place write to that same inode by a process allowed to
   write it: the guard re-``fstat``s when the file is closed and refuses a file whose
   size/mtime/ctime moved, but pages the framework had not read yet are served from the
   file, so a write after that check can still reach weights it maps lazily.

The digest cache (``model/digestcache``) may vouch for the bytes instead of hashing them when
the descriptor's identity (size, mtime, ctime, inode, device) is the one it recorded, and is
unchanged after the copy; an in-place write changes mtime and ctime, so it is re-hashed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from ..digest import CHUNK
from ..errors import InputError, IntegrityError, UsageError
from ..model.digestcache import DigestCache

Mode = Literal["sealed", "mmap"]


def sealing_available() -> bool:
    import fcntl

    return hasattr(os, "memfd_create") and hasattr(fcntl, "F_ADD_SEALS") and os.path.isdir("/proc/self/fd")


def _fd_path(fd: int) -> str:
    for base in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(base):
            return f"{base}/{fd}"
    raise UsageError("this system has no /proc/self/fd or /dev/fd: a weights file cannot be loaded from its descriptor")


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IntegrityError(f"weights file {path} is a symbolic link; only the file itself is trusted") from exc
        raise InputError(f"cannot open weights file {path}: {exc.strerror or exc}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise IntegrityError(f"weights file {path} is not a regular file")
    return fd, st


def _copy_hashing(src: int, dst: int | None, algorithm: str | None, limit: int) -> str | None:
    """Read ``src`` from offset 0 (``pread``), hashing with ``algorithm`` and/or copying to ``dst``.

    Stops one chunk past ``limit`` bytes: a file that grows while read cannot match anyway.
    """
    h = hashlib.new(algorithm) if algorithm else None
    offset = 0
    while offset <= limit:
        chunk = os.pread(src, CHUNK, offset)
        if not chunk:
            break
        if h is not None:
            h.update(chunk)
        if dst is not None:
            view = memoryview(chunk)
            while view:
                view = view[os.write(dst, view):]
        offset += len(chunk)
    return f"{algorithm}:{h.hexdigest()}" if h is not None else None


class VerifiedFile:
    """What ``open_verified`` returns: ``safe_open``'s handle, plus the descriptor it came from.

    Usable as ``safe_open`` is (``with``, ``keys()``, ``get_tensor``, ``get_slice``,
    ``metadata()``); closing re-checks the file (``mmap`` mode) and releases the descriptor.
    """

    def __init__(self, handle: Any, fd: int, before: os.stat_result, path: str, mode: Mode) -> None:
        self._handle = handle
        self._fd = fd  # the sealed memory file, or (mmap) the weights file itself
        self._before = before
        self.path = path
        self.mode = mode
        self._closed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> VerifiedFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(check=exc_type is None)

    def close(self, *, check: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._handle.__exit__(None, None, None)
        changed = self.mode == "mmap" and _identity(os.fstat(self._fd)) != _identity(self._before)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if check and changed:
            raise IntegrityError(f"weights file {self.path} was modified while it was being loaded")


def open_verified(
    path: str | os.PathLike[str],
    digest: str,
    *,
    framework: str = "pt",
    device: Any = "cpu",
    mode: Mode | None = None,
    digest_cache: DigestCache | None = None,
    **kwargs: Any,
) -> VerifiedFile:
    """``safetensors.safe_open(path)``, refused (``IntegrityError``) unless the bytes it will
    read have ``digest``. ``mode``: ``"sealed"`` or ``"mmap"`` (see the module docstring);
    default sealed where the system can seal memory files."""
    import safetensors

    algorithm = digest.split(":", 1)[0]
    if algorithm not in ("sha256", "sha512"):
        raise IntegrityError(f"unsupported digest algorithm in {digest}")
    mode = mode or ("sealed" if sealing_available() else "mmap")
    if mode == "sealed" and not sealing_available():
        raise UsageError("mode='sealed' needs Linux memfd sealing; use mode='mmap'")
    path = os.fspath(path)
    fd, before = _open_regular(path)
    mem: int | None = None
    try:
        known = digest_cache.get(path, before) if digest_cache is not None else None
        trusted = known == digest
        if mode == "sealed":
            import fcntl

            mem = os.memfd_create("omsign-weights", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            # Hash what is copied (the copy is what gets loaded), unless the cache vouches
            # for this very inode and it did not move while copied.
            actual = _copy_hashing(fd, mem, None if trusted else algorithm, before.st_size)
            if trusted and _identity(os.fstat(fd)) != _identity(before):
                actual = _copy_hashing(mem, None, algorithm, before.st_size)
            elif trusted:
                actual = digest
            fcntl.fcntl(mem, fcntl.F_ADD_SEALS,
                        fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        else:
            actual = digest if trusted else _copy_hashing(fd, None, algorithm, before.st_size)
        if actual != digest:
            raise IntegrityError(
                f"weights file {path} does not match its signed digest: expected {digest}, got {actual}",
                hint="the local copy was modified; fetch the model again",
            )
        if digest_cache is not None and not trusted and _identity(os.fstat(fd)) == _identity(before):
            digest_cache.put(path, before, digest)
        target = mem if mem is not None else fd
        handle: Any = safetensors.safe_open(_fd_path(target), framework=framework, device=device, **kwargs)
        handle.__enter__()
    except BaseException:
        for d in (fd, mem):
            if d is not None:
                with contextlib.suppress(OSError):
                    os.close(d)
        raise
    if mem is not None:
        os.close(fd)  # the sealed copy is all that is read from now on
        return VerifiedFile(handle, mem, before, path, mode)
    return VerifiedFile(handle, fd, before, path, mode)


def load_verified(
    path: str | os.PathLike[str],
    digest: str,
    *,
    device: Any = "cpu",
    mode: Mode | None = None,
    digest_cache: DigestCache | None = None,
) -> dict[str, Any]:
    """Every tensor of a verified file (``safetensors.torch.load_file``, guarded)."""
    with open_verified(path, digest, framework="pt", device=device, mode=mode,
                       digest_cache=digest_cache) as f:
        names: list[str] = f.keys()
        return {k: f.get_tensor(k) for k in names}


class Guard:
    """Signed digests of the files under some roots: which paths a patched loader may open.

    A file under a guarded root that the signature does not name is refused; a path outside
    every root is none of the guard's business (``None``).
    """

    def __init__(self) -> None:
        self._roots: dict[str, dict[str, str]] = {}

    def add(self, root: Path, files: dict[str, str]) -> None:
        self._roots[os.path.realpath(root)] = dict(files)

    def remove(self, root: Path) -> None:
        self._roots.pop(os.path.realpath(root), None)

    def __bool__(self) -> bool:
        return bool(self._roots)

    def digest_for(self, path: str | os.PathLike[str]) -> str | None:
        # The folders are resolved, the file name is not: a weights file swapped for a symlink
        # that leads out of the snapshot is still judged (and refused) as a snapshot file.
        absolute = os.path.abspath(path)
        real = os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))
        for root, files in self._roots.items():
            if real == root or real.startswith(root + os.sep):
                rel = os.path.relpath(real, root).replace(os.sep, "/")
                digest = files.get(rel)
                if digest is None:
                    raise IntegrityError(f"{path} is not one of the signed files of the model at {root}")
                return digest
        return None


def guarded_safe_open(guard: Guard, original: Any, *, mode: Mode | None = None,
                      digest_cache: DigestCache | None = None) -> Any:
    """A drop-in ``safe_open`` that verifies files under the guard's roots."""

    def safe_open(filename: Any, framework: str, device: Any = "cpu", **kwargs: Any) -> Any:
        digest = guard.digest_for(filename)
        if digest is None:
            return original(filename, framework=framework, device=device, **kwargs)
        return open_verified(filename, digest, framework=framework, device=device, mode=mode,
                             digest_cache=digest_cache, **kwargs)

    return safe_open


__all__ = ["Guard", "VerifiedFile", "guarded_safe_open", "load_verified", "open_verified", "sealing_available"]
