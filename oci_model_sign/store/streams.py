"""Streaming a blob out of one store and into another, with bounded memory.

``Store.fetch_blob`` pushes verified bytes into a writer; ``Store.push_blob`` pulls bytes from a
reader. ``blob_stream`` joins the two through a small bounded queue filled by a thread running
``fetch_blob``, so every store (registry, layout, archive) can be a copy source without a
second download path, the source's own digest and size checks see every byte, and at most a
few chunks are in memory per blob. ``ReopeningReader`` lets the upload side seek (a resumed
chunked upload rewinds to its last checkpoint) by reopening the source at that offset.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from ..oci.descriptor import Descriptor
from .base import Store

QUEUE_DEPTH = 1  # pieces of at most a few MiB each: bounded memory per stream
_POLL = 0.2  # seconds between checks that the reader has not gone away


class _Cancelled(Exception):
    """The reading side closed the stream: stop the download."""


class _QueueSink:
    """The writer ``fetch_blob`` writes into: drops the first ``skip`` bytes, queues the rest."""

    def __init__(self, q: queue.Queue[tuple[str, Any]], skip: int, stop: threading.Event) -> None:
        self._q = q
        self._skip = skip
        self._stop = stop

    def tell(self) -> int:
        raise io.UnsupportedOperation("a stream has no position")

    def write(self, data: Any) -> int:
        n = len(data)
        piece = data if isinstance(data, bytes) else bytes(data)
        if self._skip:
            drop = min(self._skip, n)
            self._skip -= drop
            piece = piece[drop:]
        if piece:
            while True:
                if self._stop.is_set():
                    raise _Cancelled()
                try:
                    self._q.put(("data", piece), timeout=_POLL)
                    break
                except queue.Full:
                    continue
        return n


class BlobStream(io.RawIOBase):
    """Bytes of one blob of ``store`` from ``offset`` on, checked by the store as they pass.

    End of stream is reported only after the store verified the whole blob; a mismatch raises
    the store's ``IntegrityError`` from ``read`` instead, so a consumer that commits on EOF
    (a registry upload's final PUT, a layout's rename) never commits wrong bytes.
    """

    def __init__(self, store: Store, desc: Descriptor, offset: int = 0) -> None:
        super().__init__()
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._stop = threading.Event()
        self._piece = memoryview(b"")
        self._eof = False
        sink = _QueueSink(self._q, offset, self._stop)
        self._thread = threading.Thread(
            target=self._run, args=(store, desc, sink), name=f"blob-stream {desc.digest[:19]}", daemon=True
        )
        self._thread.start()

    def _run(self, store: Store, desc: Descriptor, sink: _QueueSink) -> None:
        try:
            store.fetch_blob(desc, sink)  # type: ignore[arg-type]
        except _Cancelled:
            return
        except BaseException as exc:  # handed to the reader, raised there
            self._put(("error", exc))
            return
        self._put(("eof", None))

    def _put(self, item: tuple[str, Any]) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._eof:
            return 0
        while not self._piece:
            kind, value = self._q.get()
            if kind == "eof":
                self._eof = True
                return 0
            if kind == "error":
                self._eof = True
                raise value
            self._piece = memoryview(value)
        n = min(len(b), len(self._piece))
        b[:n] = self._piece[:n]
        self._piece = self._piece[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            # Unblock a producer waiting on a full queue.
            while True:
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break
        super().close()


def blob_opener(store: Store, desc: Descriptor) -> Callable[[int], BinaryIO]:
    """``BlobSource.opener`` for a blob held by ``store``."""

    def open_at(offset: int) -> BinaryIO:
        return BlobStream(store, desc, offset)  # type: ignore[return-value]

    return open_at


class ReopeningReader(io.RawIOBase):
    """A seekable reader over ``opener(offset)``: seeking closes the stream and reopens it later."""

    def __init__(self, opener: Callable[[int], BinaryIO], size: int) -> None:
        super().__init__()
        self._opener = opener
        self._size = size
        self._pos = 0
        self._current: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self._pos + offset, io.SEEK_END: self._size + offset}[whence]
        if target < 0:
            raise ValueError("negative seek position")
        if target != self._pos and self._current is not None:
            self._current.close()
            self._current = None
        self._pos = target
        return target

    def readinto(self, b: Any) -> int:
        if self._current is None:
            self._current = self._opener(self._pos)
        n = self._current.readinto(b)  # type: ignore[attr-defined]
        n = n or 0
        self._pos += n
        return int(n)

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()
