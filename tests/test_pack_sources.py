"""Model folders as users have them: Hugging Face cache snapshots, links, tool clutter, odd names."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from oci_model_sign.errors import InputError
from oci_model_sign.model.pack import PackOptions, hf_cache_repo, plan_model
from tests.helpers import assert_cli_error, assert_ok, run_cli, snapshot

REV = "0123456789abcdef0123456789abcdef01234567"
HF_FILES = {
    "config.json": b'{"model_type": "tiny"}\n',
    "model.safetensors": os.urandom(50_000),
    "tokenizer/vocab.json": b'{"a": 0}\n',
}


def nocache(**kw: object) -> PackOptions:
    return PackOptions(use_cache=False, **kw)  # type: ignore[arg-type]


def hf_cache(root: Path, files: dict[str, bytes] | None = None) -> Path:
    """A hub cache as huggingface_hub writes it: blobs stored once, the snapshot of relative
    links into ``../../blobs``. Returns the snapshot folder (what a user pushes)."""
    repo = root / "hub" / "models--acme--tiny"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REV)
    snap = repo / "snapshots" / REV
    for rel, data in (files or HF_FILES).items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snap


def regular_copy(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


# -- Hugging Face cache ---------------------------------------------------------------------------
def test_hf_cache_snapshot_is_recognised_by_its_layout(tmp_path: Path) -> None:
    snap = hf_cache(tmp_path)
    assert hf_cache_repo(snap) == snap.parent.parent
    assert hf_cache_repo(snap / "tokenizer") is None
    assert hf_cache_repo(tmp_path) is None


def test_hf_cache_snapshot_packs_the_blobs_under_the_file_names(tmp_path: Path) -> None:
    snap = hf_cache(tmp_path)
    with plan_model(snap, nocache()) as plan:
        assert [e.relpath for e in plan.entries] == ["config.json", "model.safetensors", "tokenizer/vocab.json"]
        for e in plan.entries:
            assert e.size == len(HF_FILES[e.relpath])
        assert plan.name == "acme/tiny"


def test_hf_cache_snapshot_pushes_and_pulls_back_as_regular_files(repo: str, tmp_path: Path) -> None:
    snap = hf_cache(tmp_path)
    assert_ok(run_cli("push", snap, f"{repo}:v1"))
    out = tmp_path / "out"
    assert_ok(run_cli("pull", f"{repo}:v1", out))
    assert snapshot(out) == snapshot(regular_copy(tmp_path / "expected", HF_FILES))


def test_link_in_a_snapshot_leaving_the_cache_repository_is_still_refused(tmp_path: Path) -> None:
    snap = hf_cache(tmp_path)
    (tmp_path / "secret").write_bytes(b"s")
    (snap / "leak.bin").symlink_to(tmp_path / "secret")
    with pytest.raises(InputError, match="symbolic link"):
        plan_model(snap, nocache())


def test_folder_merely_named_like_a_snapshot_keeps_the_symlink_refusal(tmp_path: Path) -> None:
    snap = tmp_path / "models--x--y" / "snapshots" / "main"
    snap.mkdir(parents=True)
    (snap.parent.parent / "data.bin").write_bytes(b"d")
    (snap / "data.bin").symlink_to("../../data.bin")
    with pytest.raises(InputError, match="symbolic link"):
        plan_model(snap, nocache())


# -- --dereference --------------------------------------------------------------------------------
def test_dereference_reads_through_links_to_files_and_folders_anywhere(tmp_path: Path) -> None:
    shared = regular_copy(tmp_path / "shared", {"weights.bin": b"w" * 10, "tok/vocab.txt": b"v"})
    model = regular_copy(tmp_path / "m", {"config.json": b"{}"})
    (model / "weights.bin").symlink_to(shared / "weights.bin")
    (model / "tok").symlink_to(shared / "tok")
    with pytest.raises(InputError, match="symbolic link"):
        plan_model(model, nocache())
    with plan_model(model, nocache(dereference=True)) as plan:
        assert [(e.relpath, e.size) for e in plan.entries] == [
            ("config.json", 2), ("tok/vocab.txt", 1), ("weights.bin", 10)]


def test_dereference_refuses_a_link_loop(tmp_path: Path) -> None:
    model = regular_copy(tmp_path / "m", {"sub/a.bin": b"a"})
    (model / "sub" / "again").symlink_to(model)
    with pytest.raises(InputError, match="loop"):
        plan_model(model, nocache(dereference=True))


def test_dereference_refuses_a_broken_link(tmp_path: Path) -> None:
    model = regular_copy(tmp_path / "m", {"a.bin": b"a"})
    (model / "gone.bin").symlink_to(tmp_path / "nowhere")
    with pytest.raises(InputError, match="broken"):
        plan_model(model, nocache(dereference=True))


def test_cli_push_dereference_packs_the_link_targets(repo: str, tmp_path: Path) -> None:
    shared = regular_copy(tmp_path / "shared", {"weights.bin": os.urandom(1000)})
    model = regular_copy(tmp_path / "m", {"config.json": b"{}"})
    (model / "weights.bin").symlink_to(shared / "weights.bin")
    assert_cli_error(run_cli("push", model, f"{repo}:v1"), 3, "symbolic link", "--dereference")
    assert_ok(run_cli("push", "--dereference", model, f"{repo}:v1"))
    out = tmp_path / "out"
    assert_ok(run_cli("pull", f"{repo}:v1", out))
    assert (out / "weights.bin").read_bytes() == (shared / "weights.bin").read_bytes()
    assert not (out / "weights.bin").is_symlink()


# -- tool clutter ---------------------------------------------------------------------------------
CLUTTER = {
    ".DS_Store": b"\x00\x00\x00\x01Bud1",
    "tokenizer/.DS_Store": b"\x00\x00\x00\x01Bud1",
    ".cache/huggingface/download/model.safetensors.metadata": b"etag\n",
    ".cache/huggingface/.gitignore": b"*\n",
}


def test_hf_download_metadata_and_finder_files_are_ignored_by_default(tmp_path: Path) -> None:
    model = regular_copy(tmp_path / "m", {**HF_FILES, **CLUTTER})
    with plan_model(model, nocache()) as plan:
        assert [e.relpath for e in plan.entries] == sorted(HF_FILES, key=lambda p: Path(p).parts)
    with plan_model(model, nocache(ignore_tool_files=False)) as plan:
        assert set(CLUTTER) <= {e.relpath for e in plan.entries}


def test_only_the_top_level_cache_folder_is_tool_clutter(tmp_path: Path) -> None:
    model = regular_copy(tmp_path / "m", {"a.bin": b"a", "data/.cache/huggingface/x.json": b"{}"})
    with plan_model(model, nocache()) as plan:
        assert "data/.cache/huggingface/x.json" in [e.relpath for e in plan.entries]


# -- names that are not UTF-8 ---------------------------------------------------------------------
def _with_latin1_name(root: Path, name: bytes = b"caf\xe9.bin") -> Path:
    model = regular_copy(root, {"config.json": b"{}"})
    with open(os.path.join(os.fsencode(model), name), "wb") as f:
        f.write(b"latin-1 name")
    return model


def test_file_name_that_is_not_utf8_is_an_input_error_naming_it(tmp_path: Path) -> None:
    model = _with_latin1_name(tmp_path / "m")
    with pytest.raises(InputError, match=r"caf\\xe9\.bin.*not valid UTF-8"):
        plan_model(model, nocache())


def test_folder_name_that_is_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    model = regular_copy(tmp_path / "m", {"config.json": b"{}"})
    inner = os.path.join(os.fsencode(model), b"d\xfcr")
    os.mkdir(inner)
    with open(os.path.join(inner, b"x.bin"), "wb") as f:
        f.write(b"x")
    with pytest.raises(InputError, match="not valid UTF-8"):
        plan_model(model, nocache())


def test_file_name_that_is_not_utf8_can_be_ignored(tmp_path: Path) -> None:
    model = _with_latin1_name(tmp_path / "m")
    with plan_model(model, nocache(ignore=[os.fsdecode(b"caf\xe9.bin")])) as plan:
        assert [e.relpath for e in plan.entries] == ["config.json"]


def test_cli_push_of_a_file_name_that_is_not_utf8_is_exit_3_without_traceback(repo: str, tmp_path: Path) -> None:
    model = _with_latin1_name(tmp_path / "m")
    res = run_cli("push", model, f"{repo}:v1")
    assert_cli_error(res, 3, "caf\\xe9.bin", "not valid utf-8")
