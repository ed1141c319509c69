"""Making a rename survive a crash: the folder holding it is synced after the move.

A file fsynced and renamed into place is not durable until its directory entry is: the blob
store of an OCI layout and the staging of a pull both publish files by rename.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Sync ``path``'s directory entries; silently skipped where the platform cannot."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
