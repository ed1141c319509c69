"""The hub-side gate, fed by a real docker-registry's notifications (no mock events)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oci_model_sign import api
from oci_model_sign.gate import Gate, GateConfig, GateServer, Ledger
from oci_model_sign.gate.events import parse_envelope
from oci_model_sign.gate.wiring import manifest_reader, policy_evaluator
from oci_model_sign.store.base import StoreOptions
from oci_model_sign.verify.policy import KeyPolicy
from tests import registry_server
from tests.helpers import keypair, make_model, sign  # noqa: F401  (fixtures)

pytestmark = pytest.mark.registry


class Hub:
    """A registry that posts its events to a gate, and the gate."""

    def __init__(self, tmp: Path, pub: Path, token: str | None = None) -> None:
        self.db = tmp / "gate.sqlite"
        self.pub = pub
        self.token = token
        self.server = self._gate(port=0)
        notify = f"http://127.0.0.1:{self.server.port}/events"
        self.registry = registry_server.start(notify=notify, notify_token=token)
        self.server.gate.config.registry = self.registry.host
        self.server.start()

    def _gate(self, port: int) -> GateServer:
        options = StoreOptions()
        policy = KeyPolicy(self.pub, ignore_tlog=True)
        config = GateConfig(
            registry="", quarantine="incoming/", trusted="models/", token=self.token, max_attempts=4, retry_base=0.1
        )
        gate = Gate(
            config,
            Ledger(self.db),
            policy_evaluator(lambda ref: (policy, True), options),
            None,
            manifest_reader_for(config, options),
        )
        return GateServer(gate, "127.0.0.1", port)

    def restart_gate(self) -> None:
        self.stop_gate()
        self.start_gate()

    def stop_gate(self) -> None:
        self._port = self.server.port
        self._registry = self.server.gate.config.registry
        self.server.close()

    def start_gate(self) -> None:
        self.server = self._gate(self._port)
        self.server.gate.config.registry = self._registry
        self.server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def result(self, repository: str, digest: str, *, want: str | None = None, timeout: float = 20) -> dict[str, object]:
        """The gate's record of a manifest, once it has one (and, with ``want``, that verdict)."""
        deadline = time.monotonic() + timeout
        last: dict[str, object] = {}
        while time.monotonic() < deadline:
            for row in httpx.get(self.url + "/api/results").json()["results"]:
                if row["repository"] == repository and row["digest"] == digest:
                    last = dict(row)
                    if want is None or row["verdict"] == want:
                        return last
            time.sleep(0.1)
        raise AssertionError(f"no {want or 'verdict'} for {repository}@{digest} in {timeout}s; last: {last}")

    def close(self) -> None:
        self.registry.stop()
        self.server.close()


def manifest_reader_for(config: GateConfig, options: StoreOptions):  # type: ignore[no-untyped-def]
    """Reads from the registry the config names when it is asked (set after the registry starts)."""

    def read(repository: str, digest: str) -> bytes:
        return manifest_reader(config.registry, options)(repository, digest)

    return read


@pytest.fixture
def hub(tmp_path: Path, keypair: tuple[Path, Path]) -> Iterator[Hub]:  # noqa: F811
    h = Hub(tmp_path, keypair[1])
    yield h
    h.close()


def _push(hub: Hub, tmp_path: Path, repository: str, tag: str = "v1") -> str:
    model = make_model(tmp_path / uuid.uuid4().hex)
    return api.push(model, f"{hub.registry.host}/{repository}:{tag}").digest


def test_unsigned_upload_is_rejected_and_the_reason_kept(hub: Hub, tmp_path: Path) -> None:
    digest = _push(hub, tmp_path, "incoming/unsigned")
    row = hub.result("incoming/unsigned", digest)
    assert row["verdict"] == "rejected"
    assert row["tag"] == "v1"
    assert "no signature" in str(row["reason"]).lower() or "signature" in str(row["reason"]).lower()
    assert row["promotedTo"] is None


def test_signed_upload_is_admitted_with_its_signer(hub: Hub, tmp_path: Path, keypair: tuple[Path, Path]) -> None:  # noqa: F811
    digest = _push(hub, tmp_path, "incoming/signed")
    sign(f"{hub.registry.host}/incoming/signed@{digest}", keypair[0])
    row = hub.result("incoming/signed", digest, want="admitted")
    assert row["signers"], row


def test_signature_after_push_turns_a_rejection_into_admission(hub: Hub, tmp_path: Path, keypair: tuple[Path, Path]) -> None:  # noqa: F811
    digest = _push(hub, tmp_path, "incoming/later")
    assert hub.result("incoming/later", digest)["verdict"] == "rejected"
    sign(f"{hub.registry.host}/incoming/later:v1", keypair[0])
    row = hub.result("incoming/later", digest, want="admitted")
    assert int(str(row["checks"])) >= 2
    assert row["tag"] == "v1"


def test_signature_by_another_key_is_still_rejected(hub: Hub, tmp_path: Path) -> None:
    from tests.helpers import run_cli

    keys = tmp_path / "other"
    keys.mkdir()
    assert run_cli("generate-key-pair", "--dir", keys, env={"OMSIGN_PASSWORD": "pw"}).returncode == 0
    digest = _push(hub, tmp_path, "incoming/stranger")
    sign(f"{hub.registry.host}/incoming/stranger:v1", keys / "cosign.key")
    time.sleep(1.0)  # let every event of the signing land
    assert hub.server.gate.wait_idle(20)
    assert hub.result("incoming/stranger", digest)["verdict"] == "rejected"


def test_results_survive_a_gate_restart(hub: Hub, tmp_path: Path) -> None:
    digest = _push(hub, tmp_path, "incoming/durable")
    hub.result("incoming/durable", digest)
    hub.restart_gate()
    row = hub.result("incoming/durable", digest)
    assert row["verdict"] == "rejected"


def test_uploads_made_while_the_gate_is_down_are_checked_when_it_is_back(hub: Hub, tmp_path: Path) -> None:
    """The registry keeps an event until an endpoint acknowledges it: nothing is lost."""
    hub.stop_gate()
    digest = _push(hub, tmp_path, "incoming/while-down")
    time.sleep(1.0)  # the registry tries, fails, and backs off
    hub.start_gate()
    row = hub.result("incoming/while-down", digest, timeout=30)
    assert row["verdict"] == "rejected" and row["tag"] == "v1"


def test_resent_and_duplicate_events_change_nothing(hub: Hub, tmp_path: Path) -> None:
    digest = _push(hub, tmp_path, "incoming/dupes")
    row = hub.result("incoming/dupes", digest)
    checks = row["checks"]
    event = {
        "id": "resent-1",
        "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "repository": "incoming/dupes", "tag": "v1"},
    }
    body = json.dumps({"events": [event]})
    for _ in range(3):
        assert httpx.post(hub.url + "/events", content=body).status_code == 200
    assert hub.server.gate.wait_idle(20)
    after = hub.result("incoming/dupes", digest)
    assert after["checks"] == int(str(checks)) + 1  # one new event id: one more check, not three
    assert after["verdict"] == "rejected"


def test_malformed_event_bodies_are_refused_with_a_reason(hub: Hub) -> None:
    for body in (b"not json", b"[]", b'{"events": {}}', b'{"events": [{"action": "push"}]}'):
        r = httpx.post(hub.url + "/events", content=body)
        assert r.status_code == 400, body
        assert r.json()["error"]
    bad_repo = {"events": [{"id": "x", "action": "push", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "0" * 64, "repository": "../etc"}}]}
    assert httpx.post(hub.url + "/events", content=json.dumps(bad_repo)).status_code == 400


def test_event_for_a_manifest_the_registry_does_not_hold_is_recorded_as_an_error(hub: Hub) -> None:
    ghost = "sha256:" + "ab" * 32
    event = {"id": "ghost", "action": "push", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ghost, "repository": "incoming/ghost"}}
    assert httpx.post(hub.url + "/events", content=json.dumps({"events": [event]})).status_code == 200
    row = hub.result("incoming/ghost", ghost)
    assert row["verdict"] == "error"


def test_blob_and_pull_events_are_ignored() -> None:
    body = json.dumps(
        {
            "events": [
                {"id": "1", "action": "push", "target": {"mediaType": "application/octet-stream", "digest": "sha256:" + "1" * 64, "repository": "a"}},
                {"id": "2", "action": "pull", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "1" * 64, "repository": "a"}},
            ]
        }
    ).encode()
    events, ignored = parse_envelope(body)
    assert events == [] and ignored == 2


def test_status_page_lists_uploads_escaped(hub: Hub, tmp_path: Path) -> None:
    digest = _push(hub, tmp_path, "incoming/page", tag="v1")
    hub.result("incoming/page", digest)
    page = httpx.get(hub.url + "/").text
    assert "<script" not in page
    assert "incoming/page" in page and digest in page


def test_gate_with_a_token_refuses_unauthenticated_posts(tmp_path: Path, keypair: tuple[Path, Path]) -> None:  # noqa: F811
    h = Hub(tmp_path, keypair[1], token="s3cret")
    try:
        assert httpx.post(h.url + "/events", content=b'{"events": []}').status_code == 401
        digest = _push(h, tmp_path, "incoming/tokened")
        assert h.result("incoming/tokened", digest)["verdict"] == "rejected"  # the registry sent the token
    finally:
        h.close()


def _chromium() -> str:
    import os
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: `make test` should have installed it")
        pytest.skip("chromium not installed")
    return path


def test_status_page_renders_the_verdicts_in_headless_chromium(hub: Hub, tmp_path: Path, keypair: tuple[Path, Path]) -> None:  # noqa: F811
    """The page a hub operator opens: read back from the DOM Chromium rendered, row by row."""
    import subprocess
    from html.parser import HTMLParser

    unsigned = _push(hub, tmp_path, "incoming/shown-unsigned")
    signed = _push(hub, tmp_path, "incoming/shown-signed")
    sign(f"{hub.registry.host}/incoming/shown-signed:v1", keypair[0])
    hub.result("incoming/shown-unsigned", unsigned)
    hub.result("incoming/shown-signed", signed, want="admitted")

    proc = subprocess.run(
        [
            _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom", hub.url + "/",
        ],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    class Table(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[dict[str, str]] = []
            self._cls: str | None = None
            self._row: dict[str, str] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "tr":
                self._row = {}
            elif tag == "td" and self._row is not None:
                self._cls = dict(attrs).get("class") or ""

        def handle_endtag(self, tag: str) -> None:
            if tag == "tr" and self._row:
                self.rows.append(self._row)
                self._row = None
            elif tag == "td":
                self._cls = None

        def handle_data(self, data: str) -> None:
            if self._row is not None and self._cls is not None:
                self._row[self._cls] = self._row.get(self._cls, "") + data

    table = Table()
    table.feed(proc.stdout)
    by_repo = {row.get("repository"): row for row in table.rows}
    assert by_repo["incoming/shown-unsigned"]["digest"] == unsigned
    assert "rejected" in by_repo["incoming/shown-unsigned"]
    assert by_repo["incoming/shown-signed"]["digest"] == signed
    assert "admitted" in by_repo["incoming/shown-signed"]
