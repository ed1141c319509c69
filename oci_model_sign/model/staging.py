"""Where a pull puts a model: a staging folder beside DEST, then one step into place.

Verified files collect in a staging folder on DEST's filesystem and become DEST only once
every layer has been checked: renamed in when DEST is absent or empty, exchanged with it in
one step for ``--force``. A failed, interrupted or killed pull leaves DEST as it was; the
names of temporary files say which process of which host made them, so the next run removes
the debris of dead ones (and finishes a replace that one of them left half-done).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import socket
import stat
import sys
from pathlib import Path, PurePosixPath
from types import TracebackType

from ..durable import fsync_dir
from ..errors import InputError
from .unpack import ModelEntry, safe_relpath

DEBRIS_PREFIXES = (".omsign-staging-", ".omsign-layer-", ".omsign-old-")
_SWAP_PREFIX = ".omsign-swap-"  # journal of a replace in progress: names the folder swapped


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "host"


def debris_name(kind: str) -> str:
    """``.omsign-<kind>-<host>-<pid>-`` : who made a temporary file, so a later run can tell
    whether its maker is dead (a ``kill -9``) and remove it. The host keeps a process on one
    machine from judging another machine's work on a shared filesystem."""
    return f".omsign-{kind}-{_host_tag()}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _dead_maker(rest: str, host: str) -> bool:
    """True if ``<host>-<pid>-…`` names a process of this host that no longer runs."""
    if not rest.startswith(host + "-"):
        return False
    pid_text = rest[len(host) + 1:].split("-", 1)[0]
    return pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _finish_swaps(parent: Path, names: list[str], host: str) -> list[str]:
    """Complete the replaces that dead runs left half-done (fallback swap only, see ``_swap``).

    A journal whose previous tree is still aside means the run died between its two renames
    or before removing the old tree: if the destination is missing, the old tree goes back
    (nothing verified was placed); otherwise the new tree is in and the old one is removed.
    """
    done: list[str] = []
    for name in names:
        if not name.startswith(_SWAP_PREFIX) or not _dead_maker(name[len(_SWAP_PREFIX):], host):
            continue
        journal = parent / name
        aside = parent / (".omsign-old-" + name[len(_SWAP_PREFIX):])
        try:
            dest_name = os.fsdecode(journal.read_bytes())
            if not dest_name or "/" in dest_name or dest_name in (".", ".."):
                continue  # not a journal omsign wrote: leave everything as it is
            target = parent / dest_name
            if os.path.lexists(aside):
                if not os.path.lexists(target):
                    os.rename(aside, target)
                else:
                    shutil.rmtree(aside)
            journal.unlink()
            done.append(name)
        except OSError:
            continue
    return done


def sweep_debris(parent: Path) -> list[str]:
    """Remove staging folders and layer files left in ``parent`` by omsign runs of this host
    that died (SIGKILL, power loss of the process), after finishing any replace they left
    half-done. Anything whose maker may still run, or that another host made, is left alone.
    Returns the names removed."""
    host = _host_tag()
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return []
    removed = _finish_swaps(parent, names, host)
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return removed
    for name in names:
        prefix = next((p for p in DEBRIS_PREFIXES if name.startswith(p)), None)
        if prefix is None or not _dead_maker(name[len(prefix):], host):
            continue
        if (parent / (_SWAP_PREFIX + name[len(prefix):])).exists():
            continue  # a journal still needs this folder (its maker's host judged it alive)
        try:
            _remove(parent / name)
            removed.append(name)
        except OSError:
            continue
    return removed


def check_destination(dest: Path, *, replace: bool = False) -> Path:
    """The folder a pull will create or replace, checked before anything is downloaded.

    DEST may be absent or an empty folder; a folder with anything in it is refused unless
    ``replace`` (``--force``), and a file is always refused. A DEST that is a symbolic link to
    a folder stands for that folder (the link is the user's own, and is kept). A DEST filled in
    place (see ``fills_in_place``) may hold the debris of a killed pull: it is swept first.
    """
    path = Path(os.path.abspath(dest))
    if os.path.islink(path):
        target = Path(os.path.realpath(path))
        if not target.is_dir():
            raise InputError(f"{dest} is a symbolic link to {target}, which is not a folder",
                             hint="remove the link or point it at a folder")
        path = target
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise InputError(f"cannot access {dest}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{dest} exists and is not a folder", hint="pull into a folder")
    in_place = fills_in_place(path)
    if in_place:
        sweep_debris(path)
    try:
        entries = os.listdir(path)
    except OSError as exc:
        raise InputError(f"cannot list {dest}: {exc.strerror or exc}") from exc
    if entries and not replace:
        raise InputError(f"{dest} is not empty",
                         hint="pull into an empty folder, or use --force to replace its contents")
    if entries and in_place:
        what = "a mount point" if os.path.ismount(path) else "the current folder"
        raise InputError(f"{dest} is {what}, which --force cannot swap for the model in one step",
                         hint="empty it first, or pull into another folder")
    return path


def fills_in_place(path: Path) -> bool:
    """True for a DEST that must keep its identity: a mount point (a volume: nothing beside it
    is on its filesystem, and it cannot be renamed) or the current folder (renaming a folder
    over it would leave the shell that ran the pull in a deleted folder). Such a DEST, when
    empty, is filled entry by entry from a staging folder inside it."""
    try:
        return os.path.ismount(path) or os.path.samefile(path, os.getcwd())
    except OSError:
        return False


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # filesystem or kernel cannot
        return False
    raise OSError(err, os.strerror(err), str(b))


class Staging:
    """Files land in a temporary folder next to ``dest`` and move in only after verification.

    The staging folder sits in ``dest``'s parent (same filesystem, so moves are renames).
    ``commit()`` renames the whole folder into place when ``dest`` is absent or empty; with
    ``replace`` a non-empty ``dest`` is swapped for it in one step, and the previous tree is
    removed only afterwards. Nothing is ever written inside an existing ``dest``, so a link
    planted there cannot redirect a write. One exception: an empty ``dest`` that is a mount
    point or the current folder holds the staging folder and is filled entry by entry from it
    (``fills_in_place``). On an exception the staging folder is removed and ``dest`` is untouched.
    """

    def __init__(self, dest: Path, *, replace: bool = False) -> None:
        self.given = Path(dest)
        self.dest = Path(os.path.abspath(dest))
        self.replace = replace
        self.in_place = False
        self.root: Path | None = None

    def __enter__(self) -> Staging:
        self.dest = check_destination(self.given, replace=self.replace)
        self.in_place = os.path.isdir(self.dest) and fills_in_place(self.dest)
        parent = self.dest if self.in_place else self.dest.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            sweep_debris(parent)
            self.root = parent / f"{debris_name('staging')}{secrets.token_hex(6)}"
            os.mkdir(self.root, 0o755)
        except OSError as exc:
            raise InputError(f"cannot create a staging folder next to {self.dest}: {exc.strerror or exc}") from exc
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        if self.root is not None and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)

    def temp_path_for(self, entry: ModelEntry | str | PurePosixPath) -> Path:
        """Where to write a raw file entry while it is being fetched and verified."""
        assert self.root is not None, "use Staging as a context manager"
        rel = entry.path if isinstance(entry, ModelEntry) else safe_relpath(str(entry))
        target = self.root.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    @property
    def path(self) -> Path:
        """The staging folder (tar layers are extracted straight into it)."""
        assert self.root is not None, "use Staging as a context manager"
        return self.root

    def _staged_files(self) -> list[str]:
        assert self.root is not None
        out: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, self.root)
            for name in sorted(filenames):
                out.append(name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/"))
        return out

    def commit(self) -> list[str]:
        """Put everything staged in place as ``dest``; returns the relative paths placed."""
        assert self.root is not None, "use Staging as a context manager"
        files = self._staged_files()
        for rel in files:
            with open(self.root / rel, "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(self.root)
        try:
            self._place(self.root)
        except OSError as exc:
            raise InputError(f"cannot put the model in place as {self.given}: {exc.strerror or exc}") from exc
        fsync_dir(self.dest.parent)
        return files

    def _place(self, root: Path) -> None:
        try:
            st = os.lstat(self.dest)
        except FileNotFoundError:
            os.rename(root, self.dest)
            self.root = None
            return
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(f"{self.given} is no longer a folder")
        if self.in_place:
            self._move_entries_into(root)
            return
        os.chmod(root, stat.S_IMODE(st.st_mode))  # the folder keeps its permissions
        try:
            os.rename(root, self.dest)  # onto an empty folder: one step
            self.root = None
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        if not self.replace:
            raise InputError(f"{self.given} is not empty (files appeared in it during the pull)",
                             hint="pull into an empty folder, or use --force to replace its contents")
        self._swap(root)

    def _move_entries_into(self, root: Path) -> None:
        """Fill an empty DEST that must keep its identity entry by entry (``fills_in_place``)."""
        if [n for n in os.listdir(self.dest) if n != root.name]:
            raise InputError(f"{self.given} is not empty (files appeared in it during the pull)",
                             hint="pull into an empty folder")
        for name in sorted(os.listdir(root)):
            if os.path.lexists(self.dest / name):
                raise InputError(f"{self.dest / name} appeared during the pull")
            os.rename(root / name, self.dest / name)
        os.rmdir(root)
        self.root = None

    def _swap(self, root: Path) -> None:
        """Replace the non-empty ``dest`` with ``root``; the old tree is removed last."""
        if _exchange(root, self.dest):
            shutil.rmtree(root, ignore_errors=True)  # now the previous tree
            self.root = None
            return
        # No atomic exchange here: rename the old tree aside, then the new one in, with a
        # journal so that a run killed between the two renames is finished by the next one.
        token = root.name[len(".omsign-staging-"):]
        parent = self.dest.parent
        aside = parent / f".omsign-old-{token}"
        journal = parent / f"{_SWAP_PREFIX}{token}"
        with open(journal, "wb") as f:
            f.write(os.fsencode(self.dest.name))
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(parent)
        try:
            os.rename(self.dest, aside)
            try:
                os.rename(root, self.dest)
            except OSError:
                os.rename(aside, self.dest)
                raise
            self.root = None
            journal.unlink()
        except BaseException:
            with contextlib.suppress(OSError):
                if os.path.lexists(aside) and not os.path.lexists(self.dest):
                    os.rename(aside, self.dest)  # interrupted between the renames: undo
                if not os.path.lexists(aside):
                    journal.unlink()
            raise
        shutil.rmtree(aside, ignore_errors=True)
