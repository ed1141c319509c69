"""``omsign gate`` as a hub runs it: the console command, a real registry posting to it, a policy file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oci_model_sign import api
from tests import registry_server
from tests.helpers import assert_ok, cli_command, cli_env, keypair, make_model, run_cli, sign  # noqa: F401
from tests.registry_server import free_port

pytestmark = [pytest.mark.registry, pytest.mark.subprocess]


class RunningGate:
    def __init__(self, tmp: Path, pub: Path) -> None:
        self.port = free_port()
        self.registry = registry_server.start(notify=f"http://127.0.0.1:{self.port}/events")
        self.policy = tmp / "policy.yaml"
        self.policy.write_text(
            "apiVersion: omsign/v1\n"
            "scopes:\n"
            f"  {self.registry.host}/incoming:\n"
            "    authorities:\n"
            f"      - key: {{path: {pub}}}\n"
            "        ignoreTlog: true\n"
            f"  {self.registry.host}/models:\n"
            "    authorities:\n"
            f"      - key: {{path: {pub}}}\n"
            "        ignoreTlog: true\n"
        )
        self.db = tmp / "gate.sqlite"
        self.log = tmp / "gate.log"  # a file, not a pipe nobody reads: a full pipe would block the gate
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            cli_command(
                "gate", "--registry", self.registry.host, "--policy", self.policy,
                "--listen", f"127.0.0.1:{self.port}", "--db", self.db,
            ),
            stdout=subprocess.DEVNULL, stderr=self.log.open("ab"), env=cli_env(),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"gate exited {proc.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return proc
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("gate did not start")

    def restart(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.proc = self._start()

    def result(
        self, repository: str, digest: str, want: str | None = None, timeout: float = 30, reason: str = ""
    ) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        last: dict[str, object] = {}
        while time.monotonic() < deadline:
            for row in httpx.get(f"http://127.0.0.1:{self.port}/api/results").json()["results"]:
                if row["repository"] == repository and row["digest"] == digest:
                    last = dict(row)
                    if (want is None or row["verdict"] == want) and reason in str(row["reason"]):
                        return last
            time.sleep(0.2)
        raise AssertionError(f"no {want or 'verdict'} for {repository}@{digest}; last {last}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.registry.stop()


@pytest.fixture
def gate(tmp_path: Path, keypair: tuple[Path, Path]) -> Iterator[RunningGate]:  # noqa: F811
    g = RunningGate(tmp_path, keypair[1])
    yield g
    g.close()


def _push(gate: RunningGate, tmp_path: Path, repo: str) -> str:
    return api.push(make_model(tmp_path / uuid.uuid4().hex), f"{gate.registry.host}/{repo}:v1").digest


def test_unsigned_upload_stays_in_quarantine(gate: RunningGate, tmp_path: Path) -> None:
    digest = _push(gate, tmp_path, "incoming/plain")
    row = gate.result("incoming/plain", digest)
    assert row["verdict"] == "rejected" and row["promotedTo"] is None
    listed = run_cli("ls", f"{gate.registry.host}/models/plain")
    assert listed.returncode == 6  # nothing was promoted: the repository does not exist


def test_signed_upload_is_promoted_with_its_signature(gate: RunningGate, tmp_path: Path, keypair: tuple[Path, Path]) -> None:  # noqa: F811
    digest = _push(gate, tmp_path, "incoming/good")
    sign(f"{gate.registry.host}/incoming/good:v1", keypair[0])
    row = gate.result("incoming/good", digest, want="admitted")
    assert row["promotedTo"] == f"{gate.registry.host}/models/good:v1"
    promoted = run_cli("verify", f"{gate.registry.host}/models/good:v1", "--key", keypair[1], "--insecure-ignore-tlog")
    assert_ok(promoted)


def test_signed_model_with_a_tampered_blob_is_never_promoted(tmp_path: Path, keypair: tuple[Path, Path]) -> None:  # noqa: F811
    gate = RunningGate(tmp_path, keypair[1])
    try:
        model = make_model(tmp_path / "m", {"w.bin": 300_000, "config.json": b"{}\n"})
        pushed = api.push(model, f"{gate.registry.host}/incoming/tampered:v1")
        weights = next(layer for layer in pushed.layers if layer.path == "w.bin")
        blob = gate.registry.root / "docker/registry/v2/blobs/sha256" / weights.digest[7:9] / weights.digest[7:] / "data"
        data = bytearray(blob.read_bytes())
        data[0] ^= 0xFF
        blob.write_bytes(bytes(data))  # same size, other bytes: the signature still names the manifest
        sign(f"{gate.registry.host}/incoming/tampered:v1", keypair[0])
        row = gate.result("incoming/tampered", pushed.digest, want="rejected", timeout=40, reason="do not match")
        assert "digest" in str(row["reason"]).lower() or "integrity" in str(row["reason"]).lower(), row
        assert run_cli("ls", f"{gate.registry.host}/models/tampered").returncode == 6
    finally:
        gate.close()


def test_verdicts_survive_a_gate_restart(gate: RunningGate, tmp_path: Path) -> None:
    digest = _push(gate, tmp_path, "incoming/kept")
    gate.result("incoming/kept", digest)
    gate.restart()
    assert gate.result("incoming/kept", digest)["verdict"] == "rejected"


def test_malformed_policy_stops_the_gate_before_it_listens(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("apiVersion: omsign/v1\nscopes:\n  x:\n    thresold: 2\n")
    result = run_cli("gate", "--registry", "127.0.0.1:1", "--policy", bad, "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert "policy.yaml:" in result.stderr


def test_sigterm_ends_the_gate_cleanly(gate: RunningGate) -> None:
    gate.proc.send_signal(signal.SIGTERM)
    assert gate.proc.wait(timeout=30) == 0
    assert os.path.exists(gate.db)
