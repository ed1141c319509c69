"""Faults: the network and the registry fail in ordinary ways, and nothing is lost.

Through ``FaultProxy`` in front of the real registry: connections reset mid-blob, rate limits,
5xx bursts, a registry restart, slow links, a registry that never recovers, an ``omsign`` killed
with SIGKILL, two ``omsign`` processes racing, a disk that fills. The contract: transient faults
are absorbed (the result is byte-identical to a fault-free run); permanent ones end in one
``omsign: error:`` line within bounded time, and DEST is never left half-written.

Blobs are a few MB, chunk sizes are lowered through ``StoreOptions`` and backoff through
``OMSIGN_BACKOFF_BASE`` so the whole file runs in well under a minute.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from oci_model_sign import api
from oci_model_sign.errors import RegistryError
from oci_model_sign.store.base import StoreOptions
from tests import helpers, registry_server
from tests.faultproxy import Fault, FaultProxy, Rule
from tests.helpers import (
    RawRegistry,
    assert_cli_error,
    assert_ok,
    assert_untouched,
    make_model,
    mounted_tmpfs,
    prefilled_dest,
    run_cli,
    snapshot,
    start_cli,
    verify_args,
)

proxy = helpers.proxy
raw = helpers.raw
keypair = helpers.keypair
other_keypair = helpers.other_keypair

def _chunked() -> StoreOptions:
    """Uploads in 512 KiB chunks (anything over 256 KiB), so a 3 MB file takes several PATCHes."""
    return StoreOptions(chunk_size=512 * 1024, monolithic_max=256 * 1024)


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short backoff for in-process API calls too (StoreOptions reads these at construction)."""
    for k, v in helpers.FAST_ENV.items():
        monkeypatch.setenv(k, v)


def _via(proxy_: FaultProxy, repo: str, registry: registry_server.RegistryServer) -> str:
    return repo.replace(registry.host, proxy_.host)


def _model(tmp_path: Path, size: int = 3_000_000) -> Path:
    return make_model(tmp_path / "model", {"model.safetensors": size, "config.json": b'{"a":1}\n'})


def _pull_identical(ref: str, model: Path, tmp_path: Path) -> None:
    """A fault-free pull straight from the registry gives back exactly the model."""
    out = tmp_path / f"check-{uuid.uuid4().hex[:6]}"
    api.pull(ref, out)
    assert snapshot(out) == snapshot(model)


# -- transient faults are absorbed ------------------------------------------------------------------
def test_connection_reset_mid_chunk_on_push_recovers(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """The second PATCH of a chunked upload is cut after 200 KB: the push recovers and the
    model is byte-identical. (distribution 2.8 cancels a session whose stored size no longer
    matches its state token, so omsign asks for the status, learns the session is gone, and
    uploads the blob again in a new session.)"""
    model = _model(tmp_path)
    proxy.add(Rule("PATCH", r"/blobs/uploads/", Fault.RESET_REQUEST, after=200_000, skip=1, times=1))
    api.push(model, f"{_via(proxy, repo, registry)}:v1", options=_chunked(), use_cache=False)
    assert proxy.rules[0].fired == 1
    _pull_identical(f"{repo}:v1", model, tmp_path)


def test_upload_sessions_lost_again_and_again_give_a_clear_error(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """Every chunked upload session is cut: after two lost sessions, exit with RegistryError
    and nothing tagged (bounded work, not an endless re-upload)."""
    model = _model(tmp_path)
    proxy.add(Rule("PATCH", r"/blobs/uploads/", Fault.RESET_REQUEST, after=200_000, times=10_000))
    with pytest.raises(RegistryError):
        api.push(model, f"{_via(proxy, repo, registry)}:v1", options=_chunked(), use_cache=False)
    r = RawRegistry(registry.url)
    try:
        assert r.client.head(f"/v2/{repo.split('/', 1)[1]}/manifests/v1").status_code == 404
    finally:
        r.close()


def test_connection_reset_mid_monolithic_put_is_retried(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """A one-PUT upload (the CLI default for files under 8 MiB) cut after 100 KB is retried."""
    model = _model(tmp_path, 2_000_000)
    proxy.add(Rule("PUT", r"/blobs/uploads/", Fault.RESET_REQUEST, after=100_000, times=1))
    assert_ok(run_cli("push", "--no-cache", model, f"{_via(proxy, repo, registry)}:v1"))
    assert proxy.rules[0].fired == 1
    _pull_identical(f"{repo}:v1", model, tmp_path)


def test_connection_reset_mid_blob_on_pull_resumes_with_range(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """The blob download is cut twice: omsign continues with ``Range`` and the files match."""
    model = _model(tmp_path)
    pushed = api.push(model, f"{repo}:v1")
    big = next(layer.digest for layer in pushed.layers if layer.path == "model.safetensors")
    proxy.add(Rule("GET", f"/blobs/{big}", Fault.RESET_RESPONSE, after=700_000, times=2))
    out = tmp_path / "dest"
    assert_ok(run_cli("pull", f"{_via(proxy, repo, registry)}:v1", out))
    assert snapshot(out) == snapshot(model)
    assert proxy.rules[0].fired == 2
    ranged = [r for r in proxy.log("GET", f"/blobs/{big}") if "range" in r.headers]
    assert ranged, "the download was not resumed with Range"


def test_rate_limit_429_with_retry_after_is_honoured(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """429 + ``Retry-After: 1`` on the manifest PUT and on blob GETs: push and pull succeed."""
    model = _model(tmp_path, 500_000)
    proxy.add(Rule("PUT", r"/manifests/", Fault.STATUS, status=429, retry_after="1", times=1))
    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.STATUS, status=429, retry_after="1", times=1))
    via = _via(proxy, repo, registry)
    assert_ok(run_cli("push", model, f"{via}:v1"))
    out = tmp_path / "dest"
    assert_ok(run_cli("pull", f"{via}:v1", out))
    assert snapshot(out) == snapshot(model)
    assert all(r.fired == 1 for r in proxy.rules)
    statuses = [r.status for r in proxy.log("PUT", r"/manifests/v1")]
    assert statuses[0] == 429 and statuses[-1] == 201


@pytest.mark.parametrize("status", [502, 503])
def test_burst_of_5xx_is_retried(
    status: int, registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """Three 502s (or 503s) in a row on uploads, manifests and downloads: all absorbed."""
    model = _model(tmp_path, 500_000)
    for method, path in (("POST", r"/blobs/uploads/"), ("PUT", r"/manifests/"), ("GET", r"/blobs/sha256:")):
        proxy.add(Rule(method, path, Fault.STATUS, status=status, times=3))
    via = _via(proxy, repo, registry)
    assert_ok(run_cli("push", model, f"{via}:v1"))
    out = tmp_path / "dest"
    assert_ok(run_cli("pull", f"{via}:v1", out))
    assert snapshot(out) == snapshot(model)
    assert all(r.fired == 3 for r in proxy.rules)


def test_registry_restart_mid_push_is_survived(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """The registry process restarts while a chunked upload is in flight (upload sessions live
    on disk): the push completes and the model is byte-identical."""
    model = _model(tmp_path)

    def restart(_req: object) -> None:
        registry.restart()

    proxy.add(Rule("PATCH", r"/blobs/uploads/", Fault.HOOK, hook=restart, times=1))
    api.push(model, f"{_via(proxy, repo, registry)}:v1", options=_chunked(), use_cache=False)
    assert proxy.rules[0].fired == 1
    _pull_identical(f"{repo}:v1", model, tmp_path)


def test_registry_down_briefly_mid_pull_is_survived(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """The registry restarts as the first blob download starts: the pull retries and completes."""
    model = _model(tmp_path)
    api.push(model, f"{repo}:v1")

    def restart(_req: object) -> None:
        registry.restart()

    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.HOOK, hook=restart, times=1))
    out = tmp_path / "dest"
    assert_ok(run_cli("pull", f"{_via(proxy, repo, registry)}:v1", out))
    assert snapshot(out) == snapshot(model)


def test_slow_but_moving_download_completes(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """Blob bodies dripped 32 KB at a time with pauses: slow is not failed."""
    model = _model(tmp_path, 1_000_000)
    api.push(model, f"{repo}:v1")
    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.DELAY, drip_bytes=32 * 1024, drip_interval=0.01, times=10))
    out = tmp_path / "dest"
    assert_ok(run_cli("pull", f"{_via(proxy, repo, registry)}:v1", out))
    assert snapshot(out) == snapshot(model)


# -- permanent faults fail cleanly, in bounded time ----------------------------------------------
def test_registry_that_keeps_failing_gives_a_clear_error_and_dest_untouched(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """Every blob GET answers 503: the retries are spent, exit 4, DEST as it was."""
    api.push(_model(tmp_path, 500_000), f"{repo}:v1")
    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.STATUS, status=503, times=10_000))
    out, before = prefilled_dest(tmp_path)
    res = run_cli("pull", "--force", f"{_via(proxy, repo, registry)}:v1", out, env={"OMSIGN_RETRIES": "3"}, timeout=120)
    assert_cli_error(res, 4, "503")
    assert_untouched(out, before)


def test_connection_reset_on_every_attempt_gives_a_clear_error(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """Every blob download is cut before its first byte: exit 4 once retries are spent."""
    api.push(_model(tmp_path, 500_000), f"{repo}:v1")
    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.RESET_RESPONSE, after=0, times=10_000))
    out = tmp_path / "dest"
    res = run_cli("pull", f"{_via(proxy, repo, registry)}:v1", out, env={"OMSIGN_RETRIES": "3"}, timeout=120)
    assert_cli_error(res, 4)
    assert_untouched(out, None)


def test_unreachable_registry_gives_a_clear_error(tmp_path: Path) -> None:
    """Nothing listens on the port: exit 4, 'connection refused', no traceback."""
    port = registry_server.free_port()
    out = tmp_path / "dest"
    res = run_cli("pull", f"127.0.0.1:{port}/nothing/here:v1", out, env={"OMSIGN_RETRIES": "2"}, timeout=60)
    assert_cli_error(res, 4, "refused")
    assert_untouched(out, None)


def test_stalled_download_times_out_and_fails_cleanly(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """A response that stops moving (one byte, then a 3 s pause per byte) against a 1 s
    no-progress timeout: RegistryError after the retries, nothing placed."""
    api.push(_model(tmp_path, 200_000), f"{repo}:v1")
    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.DELAY, drip_bytes=1, drip_interval=3.0, times=10_000))
    out = tmp_path / "dest"
    options = StoreOptions(timeout=1.0, retries=1)
    with pytest.raises(RegistryError):
        api.pull(f"{_via(proxy, repo, registry)}:v1", out, options=options)
    assert_untouched(out, None)


# -- processes killed, racing ---------------------------------------------------------------------
def _wait_for(predicate: object, timeout: float = 30.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    proc.stderr.close()


@pytest.mark.subprocess
def test_kill_9_mid_push_then_rerun_completes(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """``omsign push`` SIGKILLed while a blob is uploading (slowed by the proxy): no tag was
    published; a second push completes and the model pulls back byte-identical."""
    model = _model(tmp_path, 4_000_000)
    via = _via(proxy, repo, registry)
    proxy.add(Rule("PUT", r"/blobs/uploads/", Fault.HOOK, hook=lambda _r: time.sleep(30), times=1))
    proc = start_cli("push", "--no-cache", model, f"{via}:v1")
    _wait_for(lambda: proxy.rules[0].fired == 1)
    _kill(proc)
    r = RawRegistry(registry.url)
    try:
        assert r.client.head(f"/v2/{repo.split('/', 1)[1]}/manifests/v1").status_code == 404
    finally:
        r.close()
    assert_ok(run_cli("push", model, f"{repo}:v1"))
    _pull_identical(f"{repo}:v1", model, tmp_path)


@pytest.mark.subprocess
def test_kill_9_mid_pull_then_rerun_completes_without_stale_files(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """``omsign pull`` SIGKILLed mid-download: DEST was never created; a re-run places exactly
    the model in DEST (no partial or temporary file inside it)."""
    model = _model(tmp_path)
    api.push(model, f"{repo}:v1")
    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.DELAY, drip_bytes=16 * 1024, drip_interval=0.05, times=100))
    out = tmp_path / "pulls" / "dest"
    proc = start_cli("pull", f"{_via(proxy, repo, registry)}:v1", out)
    _wait_for(lambda: len(proxy.log("GET", r"/blobs/sha256:")) >= 1)
    time.sleep(0.5)
    _kill(proc)
    assert not out.exists()
    proxy.clear()
    assert_ok(run_cli("pull", f"{repo}:v1", out))
    assert snapshot(out) == snapshot(model)


@pytest.mark.subprocess
def test_kill_9_mid_pull_leaves_no_debris_beside_dest(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """After a killed pull and a successful re-run, nothing omsign wrote is left beside DEST."""
    model = _model(tmp_path)
    api.push(model, f"{repo}:v1")
    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.DELAY, drip_bytes=16 * 1024, drip_interval=0.05, times=100))
    out = tmp_path / "pulls" / "dest"
    proc = start_cli("pull", f"{_via(proxy, repo, registry)}:v1", out)
    _wait_for(lambda: len(proxy.log("GET", r"/blobs/sha256:")) >= 1)
    time.sleep(0.5)
    _kill(proc)
    assert_ok(run_cli("pull", f"{repo}:v1", out))
    assert sorted(p.name for p in out.parent.iterdir()) == ["dest"]


@pytest.mark.subprocess
def test_two_processes_pushing_and_signing_the_same_model_both_succeed(
    registry: registry_server.RegistryServer, raw: RawRegistry, repo: str, tmp_path: Path,
    keypair: tuple[Path, Path], other_keypair: tuple[Path, Path],
) -> None:
    """Two ``omsign push --sign`` of the same folder at once, with two keys: both exit 0, the
    referrers index holds both signatures, and each key verifies."""
    model = _model(tmp_path, 1_000_000)
    procs = [
        start_cli("push", "--sign", "--key", key, "--no-tlog-upload", model, f"{repo}:v1", env={"OMSIGN_PASSWORD": "pw"})
        for key in (keypair[0], other_keypair[0])
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()
    digests = {out.decode().strip() for out, _ in outs}
    assert len(digests) == 1
    digest = digests.pop()
    entries = raw.referrers(repo.split("/", 1)[1], digest)
    predicates = [(e.get("annotations") or {}).get("dev.sigstore.bundle.predicateType") for e in entries]
    assert predicates.count("https://sigstore.dev/cosign/sign/v1") == 2, entries
    for _key, pub in (keypair, other_keypair):
        assert_ok(run_cli("verify", *verify_args(pub), f"{repo}:v1"))


# -- a full disk ------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only); skipped where mounting is not allowed."""
    with mounted_tmpfs(tmp_path / "small", "2m") as mnt:
        yield mnt


def test_disk_filling_during_pull_fails_cleanly_and_dest_is_unchanged(
    small_disk: Path, repo: str, tmp_path: Path
) -> None:
    """A 3 MB model pulled onto a 2 MiB filesystem: one error line (exit 3), and DEST (which
    held a user's file) unchanged, no staging debris left on the small disk."""
    model = _model(tmp_path, 3_000_000)
    api.push(model, f"{repo}:v1")
    out, before = prefilled_dest(small_disk)
    res = run_cli("pull", "--force", f"{repo}:v1", out)
    assert_cli_error(res, 3)
    assert_untouched(out, before)
    fresh = small_disk / "fresh"
    res = run_cli("pull", f"{repo}:v1", fresh)
    assert_cli_error(res, 3)
    assert_untouched(fresh, None)
