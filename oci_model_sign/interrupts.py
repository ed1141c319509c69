"""Ctrl-C: stop promptly, remove this process's staging folders, exit 130.

The first SIGINT raises ``KeyboardInterrupt`` in the main thread, so every ``with`` block
unwinds and cleans up as it would for any error. Transfers run on worker threads blocked in
network reads, which Python cannot interrupt and which the interpreter waits for at exit; so a
watchdog gives the unwinding ``GRACE_SECONDS``, then removes the staging folders this process
made beside the destinations it was told about and ends the process. A second Ctrl-C does the
same at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_CODE = 130
GRACE_SECONDS = 3.0


def remove_own_debris(parent: Path) -> list[str]:
    """Remove the staging folders and layer files this process left in ``parent``."""
    from .model.staging import debris_name

    prefixes = tuple(debris_name(kind) for kind in ("staging", "layer"))
    removed: list[str] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefixes):
            continue
        path = parent / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()
            removed.append(name)
        except OSError:
            continue
    return removed


class InterruptGuard:
    """Installed by the CLI for the duration of one command (main thread only)."""

    def __init__(self) -> None:
        self.folders: list[Path] = []
        self.signals = 0
        self._previous: Any = None
        self._installed = False
        self._lock = threading.Lock()
        self._exiting = False

    def watch(self, folder: str | os.PathLike[str]) -> None:
        """Staging folders of this process may appear in ``folder``: remove them on Ctrl-C."""
        self.folders.append(Path(os.path.abspath(folder)))

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.signal(signal.SIGINT, self._handle)
        self._installed = True

    def restore(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    @property
    def interrupted(self) -> bool:
        return self.signals > 0

    def cleanup(self) -> None:
        for folder in self.folders:
            remove_own_debris(folder)

    def exit_now(self) -> None:
        """Clean up and end the process without waiting for blocked worker threads."""
        with self._lock:
            if self._exiting:
                return
            self._exiting = True
        with contextlib.suppress(Exception):  # the exit must happen even if cleaning up fails
            self.cleanup()
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write("omsign: interrupted\n")
            sys.stderr.flush()
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        os._exit(EXIT_CODE)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:
            self.exit_now()
        threading.Thread(target=self._deadline, name="omsign-interrupt", daemon=True).start()
        raise KeyboardInterrupt

    def _deadline(self) -> None:
        time.sleep(GRACE_SECONDS)
        self.exit_now()
