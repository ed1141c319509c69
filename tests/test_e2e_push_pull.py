"""End to end on the real registry: push -> inspect -> pull gives identical bytes, bad input fails cleanly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli_inprocess import run_in_process
from tests.conftest import TESTDATA
from tests.registry_server import RegistryServer

MODEL = TESTDATA / "tiny-model"


def omsign(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``omsign ARGS`` run in-process as a fresh ``python -m oci_model_sign.cli`` would run."""
    res = run_in_process(list(args), env={**os.environ, **(env or {})}, input=stdin, timeout=300)
    return subprocess.CompletedProcess(["omsign", *args], res.returncode, res.stdout, res.stderr)


def files_of(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> None:
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("omsign: error:"), proc.stderr
    assert "Traceback" not in proc.stderr


def push_json(model: Path, ref: str, *args: str) -> dict[str, object]:
    proc = omsign("push", str(model), ref, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    value = json.loads(proc.stdout)
    assert isinstance(value, dict)
    return value


def test_push_inspect_pull_round_trip_is_byte_identical(repo: str, model: Path, tmp_path: Path) -> None:
    ref = f"{repo}:v1"
    pushed = omsign("push", str(model), ref, "--json")
    assert pushed.returncode == 0, pushed.stderr
    digest = json.loads(pushed.stdout)["digest"]
    shown = omsign("inspect", ref, "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["digest"] == digest
    assert info["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert {f["path"] for f in info["files"]} == set(files_of(model))
    dest = tmp_path / "out"
    pulled = omsign("pull", ref, str(dest))
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == digest
    assert files_of(dest) == files_of(model)


def test_push_prints_the_manifest_digest_last(repo: str, model: Path) -> None:
    proc = omsign("push", str(model), f"{repo}:v1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("sha256:") and len(proc.stdout.strip()) == 71


def test_round_trip_with_basic_auth(auth_registry: RegistryServer, model: Path, tmp_path: Path) -> None:
    ref = f"{auth_registry.host}/auth/model:v1"
    creds = ("--username", str(auth_registry.username), "--password-stdin")
    pushed = omsign("push", str(model), ref, *creds, stdin=f"{auth_registry.password}\n")
    assert pushed.returncode == 0, pushed.stderr
    dest = tmp_path / "out"
    pulled = omsign("pull", ref, str(dest), *creds, stdin=f"{auth_registry.password}\n")
    assert pulled.returncode == 0, pulled.stderr
    assert files_of(dest) == files_of(model)


def test_login_then_push_uses_stored_credentials(auth_registry: RegistryServer, model: Path) -> None:
    login = omsign("login", auth_registry.host, "-u", str(auth_registry.username), "--password-stdin", stdin=f"{auth_registry.password}\n")
    assert login.returncode == 0, login.stderr
    pushed = omsign("push", str(model), f"{auth_registry.host}/auth/login:v1")
    assert pushed.returncode == 0, pushed.stderr


def test_second_push_uploads_nothing(repo: str, model: Path) -> None:
    first = omsign("push", str(model), f"{repo}:v1", "--json")
    assert first.returncode == 0, first.stderr
    second = omsign("push", str(model), f"{repo}:v1", "--json")
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["uploadedBytes"] == 0
    assert not any(layer["uploaded"] for layer in result["layers"])
    assert result["digest"] == json.loads(first.stdout)["digest"]


def test_second_push_without_cache_uploads_nothing(repo: str, model: Path) -> None:
    assert omsign("push", str(model), f"{repo}:v1", "--no-cache").returncode == 0
    second = omsign("push", str(model), f"{repo}:v1", "--json", "--no-cache")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["uploadedBytes"] == 0


def test_model_differing_in_one_file_uploads_one_blob(repo: str, model: Path) -> None:
    assert omsign("push", str(model), f"{repo}:v1").returncode == 0
    (model / "config.json").write_text('{"changed": true}\n')
    second = omsign("push", str(model), f"{repo}:v2", "--json")
    assert second.returncode == 0, second.stderr
    uploaded = [layer["path"] for layer in json.loads(second.stdout)["layers"] if layer["uploaded"]]
    assert uploaded == ["config.json"]


def test_push_with_mount_from_uploads_nothing_already_in_that_repository(
    registry: RegistryServer, model: Path
) -> None:
    source = f"{registry.host}/mount/source"
    assert omsign("push", str(model), f"{source}:v1").returncode == 0
    result = push_json(model, f"{registry.host}/mount/target:v1", "--no-cache", "--mount-from", "mount/source")
    assert result["uploadedBytes"] == 0


def test_pack_to_layout_then_pull_from_layout(model: Path, tmp_path: Path) -> None:
    ref = f"oci:{tmp_path / 'store'}:v1"
    packed = omsign("pack", str(model), ref)
    assert packed.returncode == 0, packed.stderr
    dest = tmp_path / "out"
    pulled = omsign("pull", ref, str(dest))
    assert pulled.returncode == 0, pulled.stderr
    assert files_of(dest) == files_of(model)


def test_pull_include_pulls_only_matching_files(repo: str, model: Path, tmp_path: Path) -> None:
    assert omsign("push", str(model), f"{repo}:v1").returncode == 0
    dest = tmp_path / "out"
    pulled = omsign("pull", f"{repo}:v1", str(dest), "--include", "*.json")
    assert pulled.returncode == 0, pulled.stderr
    names = set(files_of(dest))
    assert names and all(n.endswith(".json") for n in names)


def test_pull_into_a_non_empty_folder_is_refused_without_force(repo: str, model: Path, tmp_path: Path) -> None:
    assert omsign("push", str(model), f"{repo}:v1").returncode == 0
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    proc = omsign("pull", f"{repo}:v1", str(dest))
    assert_one_line_error(proc, 3)
    assert "--force" in proc.stderr
    assert files_of(dest) == {"keep.txt": b"mine"}


def test_pull_force_replaces_the_whole_folder_with_the_model(repo: str, model: Path, tmp_path: Path) -> None:
    assert omsign("push", str(model), f"{repo}:v1").returncode == 0
    dest = tmp_path / "out"
    (dest / "old-model").mkdir(parents=True)
    (dest / "old-model/weights.bin").write_text("previous")
    (dest / "config.json").write_text("stale")
    assert omsign("pull", "--force", f"{repo}:v1", str(dest)).returncode == 0
    assert files_of(dest) == files_of(model)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".omsign")] == []


def test_pull_into_an_empty_folder_needs_no_force(repo: str, model: Path, tmp_path: Path) -> None:
    assert omsign("push", str(model), f"{repo}:v1").returncode == 0
    dest = tmp_path / "out"
    dest.mkdir()
    assert omsign("pull", f"{repo}:v1", str(dest)).returncode == 0
    assert files_of(dest) == files_of(model)


# -- interop ------------------------------------------------------------------------------
def test_oras_py_pulls_what_omsign_pushed(registry: RegistryServer, model: Path, tmp_path: Path) -> None:
    import oras.client

    ref = f"{registry.host}/interop/omsign-pushed:v1"
    assert omsign("push", str(model), ref).returncode == 0
    out = tmp_path / "oras-out"
    client = oras.client.OrasClient(insecure=True)
    client.pull(target=ref, outdir=str(out))
    assert files_of(out) == files_of(model)


def test_omsign_pulls_what_oras_py_pushed(registry: RegistryServer, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import oras.client

    ref = f"{registry.host}/interop/oras-pushed:v1"
    monkeypatch.chdir(model)
    names = ["config.json", "tokenizer.json", "README.md"]
    client = oras.client.OrasClient(insecure=True)
    client.push(target=ref, files=names)
    dest = tmp_path / "out"
    pulled = omsign("pull", ref, str(dest))
    assert pulled.returncode == 0, pulled.stderr
    assert {n: (model / n).read_bytes() for n in names} == files_of(dest)


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_skopeo_moves_omsign_layout_to_registry_and_back(registry: RegistryServer, model: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    assert omsign("pack", str(model), f"oci:{layout}:v1").returncode == 0
    remote = f"{registry.host}/interop/skopeo:v1"
    up = subprocess.run(
        ["skopeo", "copy", f"oci:{layout}:v1", f"docker://{remote}", "--dest-tls-verify=false"],
        capture_output=True, text=True, timeout=300,
    )
    assert up.returncode == 0, up.stderr
    back = tmp_path / "back"
    down = subprocess.run(
        ["skopeo", "copy", f"docker://{remote}", f"oci:{back}:v1", "--src-tls-verify=false"],
        capture_output=True, text=True, timeout=300,
    )
    assert down.returncode == 0, down.stderr
    for ref in (remote, f"oci:{back}:v1"):
        dest = tmp_path / ("out-" + str(abs(hash(ref))))
        pulled = omsign("pull", ref, str(dest))
        assert pulled.returncode == 0, pulled.stderr
        assert files_of(dest) == files_of(model)


# -- bad input: one line, documented exit code, DEST untouched ------------------------------
def test_missing_model_folder_is_an_input_error(repo: str, tmp_path: Path) -> None:
    assert_one_line_error(omsign("push", str(tmp_path / "nope"), f"{repo}:v1"), 3)


def test_bad_reference_is_a_usage_error(model: Path) -> None:
    assert_one_line_error(omsign("push", str(model), "Bad/Ref:x y"), 2)


def test_unknown_tag_is_not_found_and_dest_untouched(repo: str, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    assert_one_line_error(omsign("pull", f"{repo}:missing", str(dest)), 6)
    assert not dest.exists()


def test_wrong_credentials_are_an_auth_error(auth_registry: RegistryServer, model: Path) -> None:
    proc = omsign(
        "push", str(model), f"{auth_registry.host}/auth/model:v1", "--username", "omsign", "--password-stdin",
        stdin="wrong\n",
    )
    assert_one_line_error(proc, 5)


def test_registry_down_is_a_registry_error(model: Path) -> None:
    from tests.registry_server import free_port

    proc = omsign("push", str(model), f"127.0.0.1:{free_port()}/x/y:v1", env={"OMSIGN_RETRIES": "1"})
    assert_one_line_error(proc, 4)


def test_tampered_blob_in_registry_storage_is_refused_and_dest_untouched(
    private_registry: RegistryServer, model: Path, tmp_path: Path
) -> None:
    registry, repo = private_registry, f"{private_registry.host}/tamper/model"
    layers = push_json(model, f"{repo}:v1")["layers"]
    assert isinstance(layers, list)
    layer = next(x for x in layers if x["path"].endswith(".safetensors"))
    blob = registry.blob_path(layer["digest"])
    data = bytearray(blob.read_bytes())
    data[100] ^= 0x01
    blob.write_bytes(bytes(data))
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("previous model")
    assert_one_line_error(omsign("pull", "--force", f"{repo}:v1", str(dest)), 7)
    assert files_of(dest) == {"old.txt": b"previous model"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".omsign")] == []


def test_blob_of_wrong_size_in_registry_storage_is_refused(
    private_registry: RegistryServer, model: Path, tmp_path: Path
) -> None:
    registry, repo = private_registry, f"{private_registry.host}/tamper/model"
    layers = push_json(model, f"{repo}:v1")["layers"]
    assert isinstance(layers, list)
    layer = next(x for x in layers if x["path"] == "config.json")
    blob = registry.blob_path(layer["digest"])
    blob.write_bytes(blob.read_bytes() + b"extra")
    dest = tmp_path / "out"
    assert_one_line_error(omsign("pull", f"{repo}:v1", str(dest)), 7)
    assert not dest.exists()
