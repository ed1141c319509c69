"""Ctrl-C clean-up removes only what this process staged (the signal itself: test_cli_contract)."""

from __future__ import annotations

import os
from pathlib import Path

from oci_model_sign.interrupts import remove_own_debris
from oci_model_sign.model.staging import debris_name


def test_only_this_processes_staging_folders_and_layer_files_are_removed(tmp_path: Path) -> None:
    mine = tmp_path / f"{debris_name('staging')}abc"
    (mine / "sub").mkdir(parents=True)
    (mine / "sub" / "w.bin").write_bytes(b"partial")
    layer = tmp_path / f"{debris_name('layer')}def"
    layer.write_bytes(b"tar")
    other = tmp_path / debris_name("staging").replace(f"-{os.getpid()}-", "-1-")
    other.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_bytes(b"the user's\n")
    removed = remove_own_debris(tmp_path)
    assert sorted(removed) == sorted([mine.name, layer.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other.name, "dest"])
    assert (dest / "keep.txt").read_bytes() == b"the user's\n"


def test_a_missing_folder_is_nothing_to_clean(tmp_path: Path) -> None:
    assert remove_own_debris(tmp_path / "absent") == []
