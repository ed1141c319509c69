"""Transfer progress through the ``Reporter`` API: it moves per piece sent, never backwards.

A large blob goes up in 64 MiB PATCHes; a bar fed only when each PATCH is answered would sit
still for the whole chunk and then jump, so rate and ETA would mean nothing. Bytes sent or
received twice (a resumed upload, a download started over) are counted once.
"""

from __future__ import annotations

import io
import os
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from oci_model_sign import api
from oci_model_sign.digest import CHUNK
from oci_model_sign.progress import Progress
from oci_model_sign.reference import parse_reference
from oci_model_sign.store.base import BlobSource, StoreOptions
from oci_model_sign.store.registry import RegistryStore
from tests import helpers, registry_server
from tests.faultproxy import Fault, FaultProxy, Rule

MiB = 1024 * 1024
proxy = helpers.proxy


class RecordingReporter:
    """Keeps every progress event, per task, in the order it arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: dict[str, list[int]] = defaultdict(list)
        self.totals: dict[str, int] = {}
        self.finished: list[str] = []

    def task(self, description: str, total: int) -> Progress:
        self.totals[description] = total

        def advance(n: int) -> None:
            with self.lock:
                self.events[description].append(n)

        advance.description = description  # type: ignore[attr-defined]
        return advance

    def done(self, progress: Progress) -> None:
        self.finished.append(progress.description)  # type: ignore[attr-defined]

    def set_total(self, total: int) -> None:
        return None

    def close(self) -> None:
        return None


def _model(tmp_path: Path, size: int) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    with (root / "model.safetensors").open("wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
        f.write(os.urandom(size % MiB))
    (root / "config.json").write_bytes(b'{"a":1}\n')
    return root


def test_push_of_a_large_file_reports_many_small_monotonic_steps(repo: str, tmp_path: Path) -> None:
    size = 100 * MiB + 12345  # two 64 MiB PATCHes with the default chunk size
    model = _model(tmp_path, size)
    reporter = RecordingReporter()
    api.push(model, f"{repo}:v1", reporter=reporter, use_cache=False)
    steps = reporter.events["model.safetensors"]
    assert sum(steps) == size
    assert all(0 < n <= CHUNK for n in steps), "a step went backwards or jumped a whole chunk"
    assert len(steps) >= size // CHUNK
    assert "model.safetensors" in reporter.finished


def test_progress_never_goes_back_when_an_upload_is_resumed(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """The second PATCH is cut mid-way and the blob is sent again: the bytes re-sent are not
    counted twice, so the task ends exactly at the file size."""
    size = 3_000_000
    model = _model(tmp_path, size)
    proxy.add(Rule("PATCH", r"/blobs/uploads/", Fault.RESET_REQUEST, after=200_000, skip=1, times=1))
    reporter = RecordingReporter()
    options = StoreOptions(chunk_size=512 * 1024, monolithic_max=256 * 1024)
    api.push(model, f"{repo.replace(registry.host, proxy.host)}:v1", options=options, reporter=reporter, use_cache=False)
    assert proxy.rules[0].fired == 1
    steps = reporter.events["model.safetensors"]
    assert all(n > 0 for n in steps)
    assert sum(steps) == size


def test_download_started_over_counts_each_byte_once(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str
) -> None:
    """The first GET is cut after 1 MB and the next one ignores Range (200, whole body): the
    blob is fetched again from byte 0, and progress ends exactly at its size."""
    data = os.urandom(3_000_000)
    with RegistryStore(parse_reference(repo), StoreOptions()) as direct:
        desc = direct.push_blob(BlobSource(size=len(data), data=data))
    blob_path = rf"/blobs/{desc.digest}$"
    proxy.add(Rule("GET", blob_path, Fault.RESET_RESPONSE, after=1_000_000, times=1))
    proxy.add(Rule("GET", blob_path, Fault.SERVE, status=200, body=data,
                   headers={"Content-Type": "application/octet-stream", "Docker-Content-Digest": desc.digest}))
    steps: list[int] = []
    out = io.BytesIO()
    with RegistryStore(parse_reference(repo.replace(registry.host, proxy.host)), StoreOptions()) as store:
        store.fetch_blob(desc, out, progress=steps.append)
    assert [r.fired for r in proxy.rules] == [1, 1]
    assert out.getvalue() == data
    assert all(n > 0 for n in steps)
    assert sum(steps) == len(data)


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in helpers.FAST_ENV.items():
        monkeypatch.setenv(k, v)
