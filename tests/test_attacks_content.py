"""Attacks on content: the registry (or something between us and it) serves other bytes.

Every test plays one attacker against a real registry and then runs ``omsign pull`` as a
user would. The contract: the pull fails with one ``omsign: error:`` line and exit 7
(IntegrityError) or 9 (LimitError), and DEST is exactly as it was: never created when it was
absent, byte-identical when it held the user's files. Nothing unverified lands.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

from oci_model_sign import api
from tests import helpers, registry_server
from tests.faultproxy import Fault, FaultProxy, Rule
from tests.helpers import (
    UNCOMPRESSED,
    WEIGHT_TAR_ZSTD,
    RawRegistry,
    assert_cli_error,
    assert_ok,
    assert_untouched,
    layer,
    make_model,
    prefilled_dest,
    push_model_manifest,
    run_cli,
    sha256,
    snapshot,
)

BIG = "model.safetensors"
proxy = helpers.proxy  # fixtures shared through tests/helpers.py
raw = helpers.raw


@pytest.fixture
def pushed(tmp_path: Path, repo: str) -> tuple[str, api.PushResult]:
    """A small model pushed by omsign itself: (tag reference, push result).

    Its bytes are unique to the test: distribution stores blobs once for all repositories, so
    a blob tampered with by one test must not be shared by another.
    """
    model = make_model(tmp_path / "model")
    ref = f"{repo}:v1"
    return ref, api.push(model, ref)


def _layer_digest(result: api.PushResult, path: str) -> str:
    return next(layer.digest for layer in result.layers if layer.path == path)


@pytest.fixture(params=["absent", "prefilled"])
def dest(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, Any] | None]:
    if request.param == "absent":
        d = tmp_path / "out" / "dest"
        return d, None
    return prefilled_dest(tmp_path)


def _via(proxy_: FaultProxy, ref: str, registry: registry_server.RegistryServer) -> str:
    return ref.replace(registry.host, proxy_.host)


def test_blob_altered_in_registry_storage_is_refused(
    registry: registry_server.RegistryServer, pushed: tuple[str, api.PushResult],
    dest: tuple[Path, dict[str, Any] | None],
) -> None:
    """A weight blob rewritten on the registry's disk (same size) is refused, DEST untouched."""
    ref, result = pushed
    blob = registry.blob_path(_layer_digest(result, BIG))
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0x01
    blob.write_bytes(bytes(data))
    out, before = dest
    assert_cli_error(run_cli("pull", "--force", ref, out), 7, "digest")
    assert_untouched(out, before)


def test_blob_truncated_in_registry_storage_is_refused(
    registry: registry_server.RegistryServer, pushed: tuple[str, api.PushResult], tmp_path: Path
) -> None:
    """A blob whose stored bytes are a prefix of the real ones (right digest name, short body)."""
    ref, result = pushed
    blob = registry.blob_path(_layer_digest(result, BIG))
    blob.write_bytes(blob.read_bytes()[:50_000])
    out, before = prefilled_dest(tmp_path)
    res = run_cli("pull", "--force", ref, out)
    assert_cli_error(res, 7)
    assert_untouched(out, before)


def test_proxy_serving_other_bytes_is_refused(
    registry: registry_server.RegistryServer, proxy: FaultProxy, pushed: tuple[str, api.PushResult],
    dest: tuple[Path, dict[str, Any] | None],
) -> None:
    """A middlebox flips every blob byte after offset 100 (same length): refused, DEST untouched."""
    ref, result = pushed
    proxy.add(Rule("GET", "/blobs/" + _layer_digest(result, BIG), Fault.CORRUPT, after=100, times=1000))
    out, before = dest
    assert_cli_error(run_cli("pull", "--force", _via(proxy, ref, registry), out), 7, "digest")
    assert_untouched(out, before)


def test_content_length_shorter_than_the_blob_is_refused(
    registry: registry_server.RegistryServer, proxy: FaultProxy, pushed: tuple[str, api.PushResult], tmp_path: Path
) -> None:
    """Content-Length claims 10 bytes fewer and the body is cut there: a clean, short response."""
    ref, result = pushed
    proxy.add(Rule("GET", "/blobs/" + _layer_digest(result, BIG), Fault.CONTENT_LENGTH, delta=-10, times=1000))
    out = tmp_path / "dest"
    assert_cli_error(run_cli("pull", _via(proxy, ref, registry), out), 7)
    assert_untouched(out, None)


def test_content_length_longer_than_the_blob_still_pulls_verified_bytes(
    registry: registry_server.RegistryServer, proxy: FaultProxy, pushed: tuple[str, api.PushResult], tmp_path: Path
) -> None:
    """Content-Length claims 10 bytes more, then the connection ends: every real byte arrived
    and verifies against the digest, so the pull completes byte-identical."""
    ref, result = pushed
    proxy.add(Rule("GET", "/blobs/" + _layer_digest(result, BIG), Fault.CONTENT_LENGTH, delta=10, times=1000))
    out = tmp_path / "dest"
    assert_ok(run_cli("pull", _via(proxy, ref, registry), out))
    assert (out / BIG).read_bytes() == (tmp_path / "model" / BIG).read_bytes()


def test_zstd_bomb_layer_is_stopped_at_its_recorded_size(
    raw: RawRegistry, registry: registry_server.RegistryServer, repo: str, tmp_path: Path
) -> None:
    """A tar+zstd layer recorded as 10 KiB that inflates to 64 MiB of zeros: LimitError or
    IntegrityError long before the disk fills; DEST untouched."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("weights/zeros.bin")
        info.size = 64 * 1024 * 1024
        tar.addfile(info, _Zeros(info.size))
    plain = tar_buf.getvalue()
    bomb = zstandard.ZstdCompressor(level=19).compress(plain)
    assert len(bomb) < 100_000
    spec = layer("weights", bomb, WEIGHT_TAR_ZSTD, **{UNCOMPRESSED: "10240"})
    spec["diff_id"] = sha256(plain)
    repo_path = repo.split("/", 1)[1]
    push_model_manifest(raw, repo_path, [spec])
    out = tmp_path / "dest"
    res = run_cli("pull", f"{repo}:v1", out)
    assert_cli_error(res, 9, "decompresses beyond")
    assert_untouched(out, None)


def test_zstd_layer_without_recorded_size_is_bounded_by_the_ratio_limit(
    raw: RawRegistry, repo: str, tmp_path: Path
) -> None:
    """No uncompressed-size annotation: the decompression ratio limit (1000x) still stops a bomb."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("weights/zeros.bin")
        info.size = 64 * 1024 * 1024
        tar.addfile(info, _Zeros(info.size))
    plain = tar_buf.getvalue()
    bomb = zstandard.ZstdCompressor(level=19).compress(plain)
    spec = layer("weights", bomb, WEIGHT_TAR_ZSTD)
    spec["diff_id"] = sha256(plain)
    push_model_manifest(raw, repo.split("/", 1)[1], [spec])
    out = tmp_path / "dest"
    res = run_cli("pull", f"{repo}:v1", out)
    assert_cli_error(res, 9, "decompresses beyond")
    assert_untouched(out, None)


def test_manifest_altered_in_storage_is_refused_by_digest(
    registry: registry_server.RegistryServer, pushed: tuple[str, api.PushResult], tmp_path: Path
) -> None:
    """The registry serves other manifest bytes for the digest asked for: refused (exit 7)."""
    ref, result = pushed
    path = registry.blob_path(result.digest)
    value = json.loads(path.read_bytes())
    value["annotations"] = {"evil": "yes"}
    path.write_bytes(json.dumps(value).encode())
    out = tmp_path / "dest"
    assert_cli_error(run_cli("pull", f"{ref.rsplit(':', 1)[0]}@{result.digest}", out), 7)
    assert_untouched(out, None)


def test_manifest_altered_in_storage_is_refused_by_tag(
    registry: registry_server.RegistryServer, pushed: tuple[str, api.PushResult], tmp_path: Path
) -> None:
    """By tag, the registry's Docker-Content-Digest no longer matches the bytes: refused."""
    ref, result = pushed
    path = registry.blob_path(result.digest)
    value = json.loads(path.read_bytes())
    value["annotations"] = {"evil": "yes"}
    path.write_bytes(json.dumps(value).encode())
    out, before = prefilled_dest(tmp_path)
    assert_cli_error(run_cli("pull", "--force", ref, out), 7)
    assert_untouched(out, before)


def test_manifest_bytes_changed_in_transit_are_refused(
    registry: registry_server.RegistryServer, proxy: FaultProxy, pushed: tuple[str, api.PushResult], tmp_path: Path
) -> None:
    """A middlebox alters the manifest body (same length) of a pull by digest: refused."""
    ref, result = pushed
    proxy.add(Rule("GET", "/manifests/sha256:", Fault.CORRUPT, after=200, times=1000))
    out = tmp_path / "dest"
    pinned = f"{ref.rsplit(':', 1)[0]}@{result.digest}"
    assert_cli_error(run_cli("pull", _via(proxy, pinned, registry), out), 7)
    assert_untouched(out, None)


def test_config_blob_altered_is_refused(
    registry: registry_server.RegistryServer, pushed: tuple[str, api.PushResult], tmp_path: Path
) -> None:
    """The config blob (which names diffIds) is rewritten in storage: the pull is refused."""
    ref, result = pushed
    config_digest = json.loads(result.manifest)["config"]["digest"]
    path = registry.blob_path(config_digest)
    path.write_bytes(path.read_bytes().replace(b"modelfs", b"modelFS"))
    out = tmp_path / "dest"
    assert_cli_error(run_cli("pull", ref, out), 7)
    assert_untouched(out, None)


def test_untampered_pull_through_the_proxy_works(
    registry: registry_server.RegistryServer, proxy: FaultProxy, pushed: tuple[str, api.PushResult], tmp_path: Path
) -> None:
    """Control: the same pull through the proxy with no fault succeeds byte-identically."""
    ref, _ = pushed
    out = tmp_path / "dest"
    assert_ok(run_cli("pull", _via(proxy, ref, registry), out))
    assert snapshot(out) == snapshot(tmp_path / "model")


def test_proxy_truncating_every_download_fails_cleanly(
    registry: registry_server.RegistryServer, proxy: FaultProxy, pushed: tuple[str, api.PushResult], tmp_path: Path
) -> None:
    """Every response for the weight blob is cut after 10 KB (clean close, full Content-Length):
    omsign resumes a few times, then gives up with exit 4; nothing partial lands."""
    ref, result = pushed
    proxy.add(Rule("GET", "/blobs/" + _layer_digest(result, BIG), Fault.TRUNCATE, after=10_000, times=10_000))
    out, before = prefilled_dest(tmp_path)
    assert_cli_error(run_cli("pull", "--force", _via(proxy, ref, registry), out, env={"OMSIGN_RETRIES": "3"}), 4)
    assert_untouched(out, before)


HOSTILE_ANSWERS: dict[str, dict[str, Any]] = {
    "redirect-loop": {"status": 307, "headers": {"Location": "/v2/loop/blobs/sha256:x"}, "body": b""},
    "bad-content-length": {"status": 200, "headers": {"Content-Length": "abc"}, "body": b"xx"},
    "huge-error-document": {"status": 500, "headers": {"Content-Type": "application/json"},
                            "body": lambda: (b"x" * 65536 for _ in range(160))},
    "html-instead-of-a-blob": {"status": 200, "headers": {"Content-Type": "text/html"},
                               "body": b"<html>login required</html>"},
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ANSWERS))
def test_hostile_http_answers_to_blob_requests_fail_cleanly(
    case: str, registry: registry_server.RegistryServer, proxy: FaultProxy, pushed: tuple[str, api.PushResult],
    tmp_path: Path,
) -> None:
    """Blob GETs answered with a redirect loop, an unparsable Content-Length, a 10 MB error
    document, or an HTML page: one error line (4 or 7), no traceback, DEST untouched."""
    ref, _ = pushed
    proxy.add(Rule("GET", "/blobs/sha256:", Fault.SERVE, times=10_000, **HOSTILE_ANSWERS[case]))
    out, before = prefilled_dest(tmp_path)
    res = run_cli("pull", "--force", _via(proxy, ref, registry), out, env={"OMSIGN_RETRIES": "2"})
    assert res.returncode in (4, 7), res.stderr
    assert_cli_error(res, res.returncode)
    assert_untouched(out, before)


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, str]:
    """A model packed into an on-disk OCI layout by ``omsign pack``: (layout dir, reference)."""
    model = make_model(tmp_path / "model")
    lay = tmp_path / "layout"
    assert_ok(run_cli("pack", model, f"oci:{lay}:v1"))
    return lay, f"oci:{lay}:v1"


def _layout_blob(lay: Path, model: Path) -> Path:
    digest = sha256((model / BIG).read_bytes())
    return lay / "blobs" / "sha256" / digest.split(":", 1)[1]


def test_blob_altered_in_an_oci_layout_is_refused(layout: tuple[Path, str], tmp_path: Path) -> None:
    """The same tampering on an on-disk layout (a copied or downloaded folder): exit 7."""
    lay, ref = layout
    blob = _layout_blob(lay, tmp_path / "model")
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    out = tmp_path / "dest"
    assert_cli_error(run_cli("pull", ref, out), 7)
    assert_untouched(out, None)


def test_layout_blob_replaced_by_a_symlink_out_is_refused(layout: tuple[Path, str], tmp_path: Path) -> None:
    """A layout whose weight blob is a symlink to a file elsewhere (/etc/hostname): never read
    through into DEST; refused with exit 7 (or 3 when the link itself is refused)."""
    lay, ref = layout
    blob = _layout_blob(lay, tmp_path / "model")
    blob.unlink()
    blob.symlink_to("/etc/hostname")
    out = tmp_path / "dest"
    res = run_cli("pull", ref, out)
    assert res.returncode in (3, 7), res.stderr
    assert_cli_error(res, res.returncode)
    assert_untouched(out, None)


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, produced lazily (the bomb is built without holding 64 MiB twice)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n
