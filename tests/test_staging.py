"""Where a pull puts a model: staging beside DEST, one step into place, debris of dead runs."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard

from oci_model_sign.errors import InputError, IntegrityError
from oci_model_sign.limits import Limits
from oci_model_sign.model.pack import PackOptions
from oci_model_sign.model.staging import Staging
from oci_model_sign.model.tarzstd import extract_tar
from oci_model_sign.model.unpack import parse_model_manifest
from oci_model_sign.oci.descriptor import Descriptor
from oci_model_sign.reference import parse_reference
from oci_model_sign.store.base import StoreOptions
from oci_model_sign.store.layout import LayoutStore
from oci_model_sign.transfer import push_model
from tests.conftest import TESTDATA

TINY = TESTDATA / "tiny-model"


# -- staging -----------------------------------------------------------------------------------
def test_staging_lives_next_to_dest_and_commit_renames_into_a_new_dest(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with Staging(dest) as staging:
        assert staging.path.parent == tmp_path and staging.path.name.startswith(".omsign-staging-")
        staging.temp_path_for("a/b.txt").write_bytes(b"b")
        staging.temp_path_for("c.txt").write_bytes(b"c")
        assert sorted(staging.commit()) == ["a/b.txt", "c.txt"]
    assert (dest / "a/b.txt").read_bytes() == b"b"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staging_refuses_a_non_empty_dest_unless_replacing(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_bytes(b"keep")
    with pytest.raises(InputError, match="not empty"), Staging(dest):
        pass
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_commit_with_replace_swaps_the_whole_tree(tmp_path: Path) -> None:
    """The old tree goes entirely (foreign files included); nothing is left beside DEST."""
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "c.txt").write_bytes(b"old")
    (dest / "keep.txt").write_bytes(b"foreign")
    with Staging(dest, replace=True) as staging:
        staging.temp_path_for("c.txt").write_bytes(b"new")
        staging.commit()
    assert sorted(p.name for p in dest.iterdir()) == ["c.txt"]
    assert (dest / "c.txt").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_commit_into_an_empty_dest_keeps_its_permissions(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    dest.chmod(0o700)
    with Staging(dest) as staging:
        staging.temp_path_for("a.txt").write_bytes(b"a")
        staging.commit()
    assert (dest / "a.txt").read_bytes() == b"a"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_before_commit_leaves_dest_untouched_and_removes_staging(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "c.txt").write_bytes(b"old")
    with pytest.raises(IntegrityError), Staging(dest, replace=True) as staging:
        staging.temp_path_for("c.txt").write_bytes(b"half-writt")
        raise IntegrityError("digest mismatch")
    assert (dest / "c.txt").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replace_never_writes_through_a_symlink_in_dest(tmp_path: Path) -> None:
    """A link planted in DEST is swapped away with the old tree, never followed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "code").symlink_to(elsewhere)
    with Staging(dest, replace=True) as staging:
        staging.temp_path_for("code/x.py").write_bytes(b"x")
        staging.temp_path_for("a.txt").write_bytes(b"a")
        staging.commit()
    assert list(elsewhere.iterdir()) == []
    assert not (dest / "code").is_symlink() and (dest / "code/x.py").read_bytes() == b"x"
    assert (dest / "a.txt").read_bytes() == b"a"


def test_dest_symlink_to_a_folder_stands_for_that_folder(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "old.txt").write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to(real)
    with Staging(link, replace=True) as staging:
        staging.temp_path_for("new.txt").write_bytes(b"new")
        staging.commit()
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert sorted(p.name for p in real.iterdir()) == ["new.txt"]


@pytest.mark.parametrize("kind", ["dangling-link", "file", "link-to-file"])
def test_dest_that_is_not_a_folder_is_refused_even_when_replacing(tmp_path: Path, kind: str) -> None:
    dest = tmp_path / "out"
    if kind == "dangling-link":
        dest.symlink_to(tmp_path / "nowhere")
    elif kind == "file":
        dest.write_bytes(b"mine")
    else:
        (tmp_path / "f").write_bytes(b"mine")
        dest.symlink_to(tmp_path / "f")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError), Staging(dest, replace=True):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_commit_into_the_empty_current_folder_keeps_that_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``omsign pull REF .`` from an empty folder: the shell's folder is filled, not replaced."""
    dest = tmp_path / "out"
    dest.mkdir()
    inode = dest.stat().st_ino
    monkeypatch.chdir(dest)
    with Staging(Path(".")) as staging:
        staging.temp_path_for("sub/a.txt").write_bytes(b"a")
        staging.commit()
    assert dest.stat().st_ino == inode
    assert (dest / "sub/a.txt").read_bytes() == b"a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replacing_the_current_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_bytes(b"old")
    monkeypatch.chdir(dest)
    with pytest.raises(InputError, match="current folder"), Staging(Path("."), replace=True):
        pass
    assert [p.name for p in dest.iterdir()] == ["old.txt"]


def test_replace_without_an_atomic_exchange_renames_aside_then_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the filesystem cannot exchange two folders, the fallback gives the same result."""
    from oci_model_sign.model import staging as staging_module

    monkeypatch.setattr(staging_module, "_exchange", lambda a, b: False)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_bytes(b"old")
    with Staging(dest, replace=True) as staging:
        staging.temp_path_for("new.txt").write_bytes(b"new")
        staging.commit()
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_commit_refuses_a_folder_where_a_file_goes(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    (dest / "a.txt").mkdir(parents=True)
    with pytest.raises(InputError), Staging(dest) as staging:
        staging.temp_path_for("a.txt").write_bytes(b"a")
        staging.commit()


def test_temp_path_for_refuses_unsafe_paths(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError), Staging(tmp_path / "out") as staging:
        staging.temp_path_for("../escape")


def test_tar_layer_extracts_into_staging_then_commits(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("code/x.py")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    data = zstandard.ZstdCompressor().compress(buf.getvalue())
    dest = tmp_path / "out"
    with Staging(dest) as staging:
        extract_tar(io.BytesIO(data), staging.path, compression="zstd", max_output=len(buf.getvalue()))
        staging.temp_path_for("README.md").write_bytes(b"r")
        staging.commit()
    assert (dest / "code/x.py").read_bytes() == b"x"
    assert os.path.isfile(dest / "README.md")


def test_packed_model_unpacks_to_identical_files(tmp_path: Path) -> None:
    ref = parse_reference(f"oci:{tmp_path / 'lay'}")
    store = LayoutStore(ref, StoreOptions(), create=True)
    opts = PackOptions(use_cache=False, pack_dirs=["code"], compress="zstd")
    stored = push_model(TINY, ref, store, pack=opts, cache=None)
    config_desc = Descriptor.from_json(json.loads(stored.manifest)["config"])
    parsed = parse_model_manifest(stored.manifest, Limits(), config=store.read_blob(config_desc, 1 << 20))
    dest = tmp_path / "out"
    with Staging(dest) as staging:
        for entry in parsed.files:
            if entry.kind == "raw":
                with open(staging.temp_path_for(entry), "wb") as out:
                    store.fetch_blob(entry.descriptor, out)
            else:
                blob = tmp_path / "layer.tmp"
                with open(blob, "wb") as out:
                    store.fetch_blob(entry.descriptor, out)
                assert entry.uncompressed_size is not None
                with open(blob, "rb") as src:
                    extract_tar(src, staging.path, compression="zstd", max_output=entry.uncompressed_size,
                                expected_diff_id=entry.diff_id)
                blob.unlink()
        staging.commit()
    originals = sorted(str(p.relative_to(TINY)) for p in TINY.rglob("*") if p.is_file())
    copies = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copies == originals
    for rel in originals:
        assert (dest / rel).read_bytes() == (TINY / rel).read_bytes()


# -- debris of killed runs -----------------------------------------------------------------------
def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_removes_staging_and_layer_files_of_dead_processes(tmp_path: Path) -> None:
    from oci_model_sign.model.staging import debris_name, sweep_debris

    mine = debris_name("staging")
    dead = mine.replace(f"-{os.getpid()}-", f"-{_dead_pid()}-")
    (tmp_path / f"{dead}abc").mkdir()
    (tmp_path / f"{dead}abc" / "weights.bin").write_bytes(b"partial")
    (tmp_path / f"{dead.replace('staging', 'layer')}xyz").write_bytes(b"partial")
    removed = sweep_debris(tmp_path)
    assert len(removed) == 2 and list(tmp_path.iterdir()) == []


def test_sweep_keeps_work_of_live_processes_and_other_hosts(tmp_path: Path) -> None:
    from oci_model_sign.model.staging import debris_name, sweep_debris

    alive = tmp_path / f"{debris_name('staging')}abc"  # this very process
    alive.mkdir()
    other_host = tmp_path / f".omsign-staging-elsewhere.example-{_dead_pid()}-abc"
    other_host.mkdir()
    user_file = tmp_path / ".omsign-notes"
    user_file.write_text("not ours to delete")
    assert sweep_debris(tmp_path) == []
    assert alive.exists() and other_host.exists() and user_file.exists()


def _dead_swap(tmp_path: Path, dest_name: str) -> tuple[Path, Path]:
    """The journal and the aside tree of a fallback replace whose process died between renames."""
    from oci_model_sign.model.staging import debris_name

    token = debris_name("x").removeprefix(".omsign-x-").replace(f"-{os.getpid()}-", f"-{_dead_pid()}-") + "abc"
    aside = tmp_path / f".omsign-old-{token}"
    aside.mkdir()
    (aside / "old.txt").write_bytes(b"the previous model")
    journal = tmp_path / f".omsign-swap-{token}"
    journal.write_bytes(dest_name.encode())
    return journal, aside


def test_sweep_puts_back_the_old_tree_of_a_replace_killed_between_its_renames(tmp_path: Path) -> None:
    from oci_model_sign.model.staging import sweep_debris

    _dead_swap(tmp_path, "dest")
    sweep_debris(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert (tmp_path / "dest/old.txt").read_bytes() == b"the previous model"


def test_sweep_removes_the_old_tree_once_the_new_one_is_in_place(tmp_path: Path) -> None:
    from oci_model_sign.model.staging import sweep_debris

    (tmp_path / "dest").mkdir()
    (tmp_path / "dest/new.txt").write_bytes(b"verified")
    _dead_swap(tmp_path, "dest")
    sweep_debris(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["new.txt"]
