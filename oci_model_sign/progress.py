"""Progress reporting: rich bars on a terminal, nothing on a pipe.

The transfer engine only calls a ``Reporter``; it never knows whether a human is watching.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import TaskID

Progress = Callable[[int], None]  # called with each count of new bytes moved


class HighWater:
    """Feeds a ``Progress`` callback positions, reporting only the part past the highest seen.

    A resumed upload re-sends bytes, a download the registry cannot resume starts over: the bar
    must count no byte twice and never move backwards.
    """

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.reported = 0

    def reach(self, position: int) -> None:
        if self.progress is not None and position > self.reported:
            self.progress(position - self.reported)
        self.reported = max(self.reported, position)


class Reporter(Protocol):
    def task(self, description: str, total: int) -> Progress:
        """Start a task; the returned callable is fed byte counts as they move."""

    def done(self, progress: Progress) -> None:
        """Mark a task finished (its bar disappears or completes)."""

    def set_total(self, total: int) -> None:
        """The total byte count, once known (a pull learns it from the manifest)."""

    def close(self) -> None: ...


class NullReporter:
    """Used on pipes, in CI logs and from the Python API: silent and free."""

    def task(self, description: str, total: int) -> Progress:
        return _noop

    def done(self, progress: Progress) -> None:
        return None

    def set_total(self, total: int) -> None:
        return None

    def close(self) -> None:
        return None


def _noop(_: int) -> None:
    return None


class RichReporter:
    """One bar per file plus a total, with bytes, rate and ETA (rich)."""

    def __init__(self, total_bytes: int, label: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._lock = threading.Lock()
        self._progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=True,
            console=Console(stderr=True),
        )
        self._progress.start()
        self._total = self._progress.add_task(label, total=total_bytes)
        self._tasks: dict[int, TaskID] = {}

    def task(self, description: str, total: int) -> Progress:
        with self._lock:
            task_id = self._progress.add_task(f"  {description}", total=total)

        def advance(n: int) -> None:
            self._progress.update(task_id, advance=n)
            self._progress.update(self._total, advance=n)

        with self._lock:
            self._tasks[id(advance)] = task_id
        return advance

    def done(self, progress: Progress) -> None:
        with self._lock:
            task_id = self._tasks.pop(id(progress), None)
            if task_id is not None:
                self._progress.remove_task(task_id)

    def set_total(self, total: int) -> None:
        with self._lock:
            self._progress.update(self._total, total=total)

    def close(self) -> None:
        self._progress.stop()


def make_reporter(enabled: bool | None, total_bytes: int, label: str) -> Reporter:
    """Bars when ``enabled`` (None: only when stderr is a terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return NullReporter()
    return RichReporter(total_bytes, label)
