"""An on-disk OCI layout is untrusted input: whatever sits where a blob, ``index.json`` or
``oci-layout`` should be (a FIFO, a device, a folder, a symlink loop), every command ends
promptly with one error line and a documented exit code, and DEST stays untouched."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from oci_model_sign import api
from tests.helpers import assert_cli_error, assert_untouched, make_model, prefilled_dest, run_cli

# Anything that blocks would hit this; every command here must finish far sooner.
TIMEOUT = 60


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _device(path: Path) -> None:
    os.symlink("/dev/zero", path)  # endless bytes: a read without a bound never returns


def _folder(path: Path) -> None:
    path.mkdir()


def _loop(path: Path) -> None:
    os.symlink(path.name, path)  # a link to itself: ELOOP


HOSTILE: dict[str, Callable[[Path], None]] = {"fifo": _fifo, "device": _device, "folder": _folder, "symlink-loop": _loop}


def _layout(tmp_path: Path) -> tuple[Path, str, dict[str, str]]:
    store = tmp_path / "store"
    result = api.push(make_model(tmp_path / "m"), f"oci:{store}:v1")
    layers = {layer.path: layer.digest for layer in result.layers}
    return store, result.digest, layers


def _replace(path: Path, kind: str) -> None:
    path.unlink()
    HOSTILE[kind](path)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("where", ["oci-layout", "index.json", "manifest", "layer"])
def test_hostile_file_types_in_a_layout_end_pull_promptly_with_one_error(
    where: str, kind: str, tmp_path: Path
) -> None:
    store, digest, layers = _layout(tmp_path)
    targets = {
        "oci-layout": store / "oci-layout",
        "index.json": store / "index.json",
        "manifest": store / "blobs" / "sha256" / digest.split(":")[1],
        "layer": store / "blobs" / "sha256" / layers["model.safetensors"].split(":")[1],
    }
    _replace(targets[where], kind)
    dest, before = prefilled_dest(tmp_path)
    result = run_cli("pull", "--force", f"oci:{store}:v1", dest, timeout=TIMEOUT)
    # 6 (not found: no layout there) or 7 (integrity: not a regular file); never 1, never a hang.
    assert result.returncode in (6, 7), result.stderr
    assert_cli_error(result, result.returncode)
    assert_untouched(dest, before)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_inspect_and_verify_do_not_block_on_a_fifo_or_device_index(kind: str, tmp_path: Path) -> None:
    store, _, _ = _layout(tmp_path)
    _replace(store / "index.json", kind)
    assert_cli_error(run_cli("inspect", f"oci:{store}:v1", timeout=TIMEOUT), 7, "not a regular file")
    pub = tmp_path / "k.pub"
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pub.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    result = run_cli("verify", f"oci:{store}:v1", "--key", pub, "--insecure-ignore-tlog", timeout=TIMEOUT)
    assert_cli_error(result, 7, "not a regular file")


def test_a_fifo_as_public_key_is_an_input_error_not_a_hang(tmp_path: Path) -> None:
    store, _, _ = _layout(tmp_path)
    pub = tmp_path / "k.pub"
    os.mkfifo(pub)
    result = run_cli("verify", f"oci:{store}:v1", "--key", pub, "--insecure-ignore-tlog", timeout=TIMEOUT)
    assert_cli_error(result, 3, "not a regular file")


def test_the_untouched_layout_still_pulls(tmp_path: Path) -> None:
    """Control: the same layout, unchanged, pulls."""
    store, _, _ = _layout(tmp_path)
    result = run_cli("pull", f"oci:{store}:v1", tmp_path / "out", timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out" / "config.json").read_bytes()) == {"arch": "tiny"}


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_pushing_into_a_layout_whose_blob_folder_is_not_a_folder_is_an_input_error(kind: str, tmp_path: Path) -> None:
    store, _, _ = _layout(tmp_path)
    blobs = store / "blobs" / "sha256"
    for child in blobs.iterdir():
        child.unlink()
    blobs.rmdir()
    HOSTILE[kind](blobs)
    result = run_cli("pack", make_model(tmp_path / "other"), f"oci:{store}:v2", timeout=TIMEOUT)
    assert_cli_error(result, 3, "cannot write blobs")
