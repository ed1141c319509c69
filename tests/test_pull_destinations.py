"""Where a pull puts a model, and what it refuses to pull, on the real registry.

DEST may be absent or empty; a DEST with anything in it is refused before the first request
unless ``--force``, which swaps the verified tree in whole once every layer checked out. A
failed or killed forced pull leaves DEST exactly as it was. An artifact that is not a model
(a container image, an index, layers naming no file) is refused with exit 6, named.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oci_model_sign import api
from oci_model_sign.errors import InputError, NotFoundError
from tests import helpers, registry_server
from tests.faultproxy import Fault, FaultProxy, Rule
from tests.helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    RawRegistry,
    assert_cli_error,
    assert_ok,
    assert_untouched,
    make_model,
    mounted_tmpfs,
    prefilled_dest,
    run_cli,
    sha256,
    snapshot,
    start_cli,
)

proxy = helpers.proxy
raw = helpers.raw


def _via(proxy_: FaultProxy, repo: str, registry: registry_server.RegistryServer) -> str:
    return repo.replace(registry.host, proxy_.host)


def _no_debris(parent: Path) -> None:
    assert [p.name for p in parent.iterdir() if p.name.startswith(".omsign")] == []


# -- non-empty DEST -------------------------------------------------------------------------------
def test_non_empty_dest_is_refused_before_any_request(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    api.push(make_model(tmp_path / "model"), f"{repo}:v1")
    out, before = prefilled_dest(tmp_path)
    res = run_cli("pull", f"{_via(proxy, repo, registry)}:v1", out)
    assert_cli_error(res, 3, "not empty", "--force")
    assert proxy.log() == []
    assert_untouched(out, before)


def test_force_replaces_every_old_file_with_exactly_the_model(repo: str, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model", {"model.safetensors": 100_000, "sub/config.json": b"{}"})
    api.push(model, f"{repo}:v1")
    out, _ = prefilled_dest(tmp_path)
    (out / "sub").mkdir()
    (out / "sub/config.json").write_bytes(b"stale")
    (out / "sub/foreign.bin").write_bytes(b"foreign")
    assert_ok(run_cli("pull", "--force", f"{repo}:v1", out))
    assert snapshot(out) == snapshot(model)
    _no_debris(tmp_path)


def test_force_with_a_blob_failing_its_digest_leaves_dest_as_it_was(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    result = api.push(make_model(tmp_path / "model"), f"{repo}:v1")
    big = next(layer.digest for layer in result.layers if layer.path == "model.safetensors")
    proxy.add(Rule("GET", "/blobs/" + big, Fault.CORRUPT, after=10, times=1000))
    out, before = prefilled_dest(tmp_path)
    assert_cli_error(run_cli("pull", "--force", f"{_via(proxy, repo, registry)}:v1", out), 7, "digest")
    assert_untouched(out, before)


def test_force_pull_killed_mid_download_leaves_dest_as_it_was_and_a_rerun_replaces_it(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model", {"model.safetensors": 2_000_000, "config.json": b"{}"})
    api.push(model, f"{repo}:v1")
    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.DELAY, drip_bytes=16 * 1024, drip_interval=0.05, times=100))
    out, before = prefilled_dest(tmp_path / "pulls")
    proc = start_cli("pull", "--force", f"{_via(proxy, repo, registry)}:v1", out)
    deadline = time.monotonic() + 30
    while not proxy.log("GET", r"/blobs/sha256:") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    proc.stderr.close()
    assert snapshot(out) == before
    proxy.clear()
    assert_ok(run_cli("pull", "--force", f"{repo}:v1", out))
    assert snapshot(out) == snapshot(model)
    _no_debris(out.parent)


def test_dest_that_is_a_link_to_a_folder_is_filled_through_the_link(repo: str, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    api.push(model, f"{repo}:v1")
    real = tmp_path / "volume"
    real.mkdir()
    link = tmp_path / "dest"
    link.symlink_to(real)
    assert_ok(run_cli("pull", f"{repo}:v1", link))
    assert link.is_symlink() and snapshot(real) == snapshot(model)
    assert_cli_error(run_cli("pull", f"{repo}:v1", link), 3, "not empty")
    assert_ok(run_cli("pull", "--force", f"{repo}:v1", link))
    assert link.is_symlink() and snapshot(real) == snapshot(model)
    _no_debris(tmp_path)


def test_pull_into_the_empty_current_folder_fills_it_in_place(
    repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model(tmp_path / "model")
    api.push(model, f"{repo}:v1")
    here = tmp_path / "here"
    here.mkdir()
    inode = here.stat().st_ino
    monkeypatch.chdir(here)
    api.pull(f"{repo}:v1", ".")
    assert here.stat().st_ino == inode and snapshot(here) == snapshot(model)
    with pytest.raises(InputError, match="current folder"):
        api.pull(f"{repo}:v1", ".", force=True)
    assert snapshot(here) == snapshot(model)
    _no_debris(tmp_path)


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """An empty 16 MiB tmpfs mounted at DEST, as a container volume is (root only)."""
    with mounted_tmpfs(tmp_path / "volume", "16m") as mnt:
        yield mnt


def test_pull_into_an_empty_mount_point_fills_it_in_place(repo: str, tmp_path: Path, volume: Path) -> None:
    """A volume cannot be renamed and nothing beside it is on its filesystem: the model is
    staged inside it and moved up once verified; the mount stays."""
    model = make_model(tmp_path / "model", {"model.safetensors": 200_000, "sub/config.json": b"{}"})
    api.push(model, f"{repo}:v1")
    assert_ok(run_cli("pull", f"{repo}:v1", volume))
    assert os.path.ismount(volume) and snapshot(volume) == snapshot(model)
    before = snapshot(volume)
    assert_cli_error(run_cli("pull", f"{repo}:v1", volume), 3, "not empty")
    assert_cli_error(run_cli("pull", "--force", f"{repo}:v1", volume), 3, "mount point")
    assert snapshot(volume) == before


def test_failed_pull_into_a_mount_point_leaves_it_empty(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path, volume: Path
) -> None:
    result = api.push(make_model(tmp_path / "model"), f"{repo}:v1")
    big = next(layer.digest for layer in result.layers if layer.path == "model.safetensors")
    proxy.add(Rule("GET", "/blobs/" + big, Fault.CORRUPT, after=10, times=1000))
    assert_cli_error(run_cli("pull", f"{_via(proxy, repo, registry)}:v1", volume), 7, "digest")
    assert os.listdir(volume) == []


def test_pull_killed_into_a_mount_point_leaves_debris_the_next_pull_sweeps(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path, volume: Path
) -> None:
    model = make_model(tmp_path / "model", {"model.safetensors": 2_000_000, "config.json": b"{}"})
    api.push(model, f"{repo}:v1")
    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.DELAY, drip_bytes=16 * 1024, drip_interval=0.05, times=100))
    proc = start_cli("pull", f"{_via(proxy, repo, registry)}:v1", volume)
    deadline = time.monotonic() + 30
    while not proxy.log("GET", r"/blobs/sha256:") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    proc.stderr.close()
    assert all(name.startswith(".omsign-") for name in os.listdir(volume))
    proxy.clear()
    assert_ok(run_cli("pull", f"{repo}:v1", volume))
    assert snapshot(volume) == snapshot(model)


def test_dest_that_is_a_dangling_link_is_an_input_error(repo: str, tmp_path: Path) -> None:
    api.push(make_model(tmp_path / "model"), f"{repo}:v1")
    dest = tmp_path / "dest"
    dest.symlink_to(tmp_path / "nowhere")
    assert_cli_error(run_cli("pull", "--force", f"{repo}:v1", dest), 3, "symbolic link")
    assert os.readlink(dest) == str(tmp_path / "nowhere") and not (tmp_path / "nowhere").exists()


def test_dest_that_is_a_file_is_refused_even_with_force(repo: str, tmp_path: Path) -> None:
    api.push(make_model(tmp_path / "model"), f"{repo}:v1")
    dest = tmp_path / "dest"
    dest.write_bytes(b"not a folder")
    assert_cli_error(run_cli("pull", "--force", f"{repo}:v1", dest), 3, "not a folder")
    assert dest.read_bytes() == b"not a folder"


# -- artifacts that are not models ----------------------------------------------------------------
def _layer_tgz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("bin/sh")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"#!sh"))
    return gzip.compress(buf.getvalue(), mtime=0)


def _push_image(raw_: RawRegistry, repo: str, tag: str) -> tuple[str, bytes]:
    """A minimal OCI container image (config + one tar+gzip layer); (digest, manifest bytes)."""
    layer = _layer_tgz()
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    raw_.put_blob(repo, layer)
    raw_.put_blob(repo, config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(layer), "size": len(layer)}],
    }).encode()
    return raw_.put_manifest(repo, tag, manifest), manifest


def test_container_image_is_refused_and_named(raw: RawRegistry, repo: str, tmp_path: Path) -> None:
    _push_image(raw, repo.split("/", 1)[1], "v1")
    dest = tmp_path / "dest"
    res = run_cli("pull", f"{repo}:v1", dest)
    assert_cli_error(
        res, 6, "is a container image (application/vnd.oci.image.manifest.v1+json with "
        "application/vnd.oci.image.layer.v1.tar+gzip layers), not a model",
    )
    assert_untouched(dest, None)


def test_image_index_is_refused_and_named(raw: RawRegistry, repo: str, tmp_path: Path) -> None:
    path = repo.split("/", 1)[1]
    digest, manifest = _push_image(raw, path, "image")
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }).encode()
    raw.put_manifest(path, "v1", index, OCI_INDEX)
    dest = tmp_path / "dest"
    assert_cli_error(run_cli("pull", f"{repo}:v1", dest), 6, "image index", "not a model")
    assert_untouched(dest, None)


def test_artifact_whose_layers_name_no_file_is_refused(raw: RawRegistry, repo: str, tmp_path: Path) -> None:
    path = repo.split("/", 1)[1]
    blob = os.urandom(64)
    raw.put_blob(path, blob)
    raw.put_blob(path, b"{}")
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.thing.v1",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha256(blob), "size": len(blob)}],
    }).encode()
    raw.put_manifest(path, "v1", manifest)
    dest = tmp_path / "dest"
    assert_cli_error(run_cli("pull", f"{repo}:v1", dest), 6, "application/vnd.example.thing.v1", "not a model")
    assert_untouched(dest, None)


def test_artifact_that_is_not_a_model_is_refused_by_the_api_too(raw: RawRegistry, repo: str, tmp_path: Path) -> None:
    _push_image(raw, repo.split("/", 1)[1], "v1")
    with pytest.raises(NotFoundError, match="container image"):
        api.pull(f"{repo}:v1", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


# -- --pack-dir formats, read back ----------------------------------------------------------------
def _pack_dir_round_trip(repo: str, tmp_path: Path, *flags: str) -> str:
    model = make_model(tmp_path / "model", {"model.safetensors": 50_000, "code/a.py": b"a\n", "code/sub/b.py": b"b\n"})
    res = run_cli("push", "--json", "--pack-dir", "code", *flags, model, f"{repo}:v1")
    assert_ok(res)
    media_type = next(x["mediaType"] for x in json.loads(res.stdout)["layers"] if x["path"] == "code")
    out = tmp_path / "out"
    assert_ok(run_cli("pull", f"{repo}:v1", out))
    assert snapshot(out) == snapshot(model)
    return str(media_type)


def test_pack_dir_is_a_plain_modelpack_tar_by_default_and_pulls_back(repo: str, tmp_path: Path) -> None:
    assert _pack_dir_round_trip(repo, tmp_path) == "application/vnd.cncf.model.code.v1.tar"


def test_pack_dir_with_compress_zstd_is_tar_zstd_and_pulls_back(repo: str, tmp_path: Path) -> None:
    assert _pack_dir_round_trip(repo, tmp_path, "--compress", "zstd") == "application/vnd.cncf.model.code.v1.tar+zstd"


def test_compress_help_says_who_reads_zstd() -> None:
    for command in ("push", "pack"):
        proc = subprocess.run([*helpers.cli_command(command, "--help")], capture_output=True, text=True,
                              env={**helpers.cli_env(), "COLUMNS": "300"}, cwd=helpers.ROOT, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "only by omsign and ORAS-style clients" in " ".join(proc.stdout.split())
