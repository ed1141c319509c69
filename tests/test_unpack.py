"""From an untrusted model manifest to files on disk: parsing, path safety, staging."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import zstandard

from oci_model_sign.errors import InputError, IntegrityError, LimitError
from oci_model_sign.limits import Limits
from oci_model_sign.model import mediatypes as mt
from oci_model_sign.model.pack import PackOptions, plan_model
from oci_model_sign.model.tarzstd import extract_tar
from oci_model_sign.model.unpack import (
    ModelEntry,
    Staging,
    check_unique,
    filter_entries,
    matches_include,
    parse_model_manifest,
    safe_relpath,
)
from oci_model_sign.reference import parse_reference
from oci_model_sign.store.base import Descriptor, StoreOptions
from oci_model_sign.store.layout import LayoutStore
from oci_model_sign.transfer import push_model
from tests.conftest import TESTDATA

TINY = TESTDATA / "tiny-model"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
EMPTY = {"mediaType": "application/vnd.oci.empty.v1+json",
         "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2}


def manifest(layers: list[dict[str, Any]], *, artifact_type: str | None = None,
             config: dict[str, Any] | None = None) -> bytes:
    value: dict[str, Any] = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}
    if artifact_type:
        value["artifactType"] = artifact_type
    value["config"] = config or EMPTY
    value["layers"] = layers
    return json.dumps(value).encode()


def layer(media_type: str, digest: str, **annotations: str) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": 10, "annotations": annotations}


# -- safe_relpath / check_unique ---------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    ["", "/etc/passwd", "../evil", "a/../../evil", "a/./b", "a//b", "a/", "C:evil", "c:\\windows",
     "a\\b", "a\x00b", "a\nb", "a\x7fb", ".", "..", "x" * 300],
)
def test_safe_relpath_refuses_unsafe_paths(bad: str) -> None:
    with pytest.raises(IntegrityError):
        safe_relpath(bad)


@pytest.mark.parametrize("good", ["model.safetensors", "code/utils/helpers.py", "ünïcode/файл.txt", "a..b", ".hidden"])
def test_safe_relpath_accepts_clean_relative_paths(good: str) -> None:
    assert safe_relpath(good) == PurePosixPath(good)


def test_safe_relpath_refuses_non_strings() -> None:
    with pytest.raises(IntegrityError):
        safe_relpath(None)


def test_check_unique_refuses_exact_duplicates() -> None:
    with pytest.raises(IntegrityError, match="twice"):
        check_unique(["a.bin", "b.bin", "a.bin"])


@pytest.mark.parametrize("pair", [("README.md", "readme.md"), ("caf\u00e9.txt", "cafe\u0301.txt"), ("ﬁle", "file")])
def test_check_unique_refuses_lookalike_paths(pair: tuple[str, str]) -> None:
    with pytest.raises(IntegrityError, match="look-alike"):
        check_unique(list(pair))


def test_check_unique_refuses_a_file_under_another_file() -> None:
    with pytest.raises(IntegrityError, match="under"):
        check_unique(["a", "a/b"])


def test_check_unique_accepts_siblings() -> None:
    check_unique(["a/b", "a/c", "ab"])


# -- include -----------------------------------------------------------------------------------
def test_include_matches_globs_exact_paths_and_folders() -> None:
    assert matches_include("config.json", ["*.json"])
    assert matches_include("code/utils/helpers.py", ["code/"])
    assert matches_include("README.md", ["README.md"])
    assert not matches_include("model.safetensors", ["*.json", "code"])
    assert matches_include("anything", [])


def test_filter_entries_keeps_selected_files_and_all_tar_layers() -> None:
    d = Descriptor("x", D1, 1)
    entries = [ModelEntry(PurePosixPath("a.json"), d, "raw", 1), ModelEntry(PurePosixPath("b.bin"), d, "raw", 1),
               ModelEntry(PurePosixPath("code"), d, "tar+zstd", 5)]
    assert [str(e.path) for e in filter_entries(entries, ["*.json"])] == ["a.json", "code"]


# -- parse_model_manifest ----------------------------------------------------------------------
def test_parses_what_pack_writes(tmp_path: Path) -> None:
    ref = parse_reference(f"oci:{tmp_path / 'lay'}")
    store = LayoutStore(ref, StoreOptions(), create=True)
    opts = PackOptions(use_cache=False, pack_dirs=["code"], compress="zstd")
    stored = push_model(TINY, ref, store, pack=opts, cache=None)
    config_desc = Descriptor.from_json(json.loads(stored.manifest)["config"])
    parsed = parse_model_manifest(stored.manifest, Limits(), config=store.read_blob(config_desc, 1 << 20))
    assert parsed.format == "modelpack"
    assert parsed.artifact_type == mt.MODEL_ARTIFACT_TYPE
    paths = {str(e.path): e for e in parsed.files}
    assert paths["config.json"].kind == "raw" and paths["config.json"].role == "weight.config"
    assert paths["code"].kind == "tar+zstd"
    with plan_model(TINY, opts) as plan:
        code = next(e for e in plan.entries if e.relpath == "code")
    assert paths["code"].uncompressed_size == code.uncompressed_size
    assert paths["code"].diff_id == code.diff_id
    assert parsed.skipped == []


def test_legacy_cnai_modelpack_manifests_are_read() -> None:
    data = manifest([layer("application/vnd.cnai.model.weight.v1.raw", D1, **{"org.cnai.model.filepath": "w.bin"})],
                    artifact_type="application/vnd.cnai.model.manifest.v1+json")
    parsed = parse_model_manifest(data, Limits())
    assert parsed.format == "modelpack"
    assert [(str(e.path), e.kind, e.role) for e in parsed.files] == [("w.bin", "raw", "weight")]


def test_plain_oras_artifacts_use_titles_and_skip_untitled_layers() -> None:
    data = manifest([
        layer(mt.OCI_LAYER_TAR, D1, **{mt.ANNOTATION_TITLE: "model.onnx"}),
        layer(mt.OCI_LAYER_TAR_GZIP, D2, **{mt.ANNOTATION_TITLE: "folder", mt.ORAS_ANNOTATION_UNPACK: "true"}),
        layer("application/octet-stream", D3),
    ], artifact_type="application/vnd.unknown.artifact.v1")
    parsed = parse_model_manifest(data, Limits())
    assert parsed.format == "oras"
    assert [(str(e.path), e.kind) for e in parsed.files] == [("model.onnx", "raw"), ("folder", "tar+gzip")]
    assert [d.digest for d in parsed.skipped] == [D3]


def test_kitops_modelkits_take_paths_from_the_kitfile() -> None:
    kitfile = json.dumps({
        "manifestVersion": "1.0.0", "package": {"name": "tiny"},
        "model": {"path": "models/tiny.gguf", "parts": [{"path": "models/lora.gguf"}]},
        "code": [{"path": "src"}], "docs": [{"path": "README.md", "layerInfo": {"digest": D3}}],
    }).encode()
    data = manifest([
        layer("application/vnd.kitops.modelkit.docs.v1.tar", D3),
        layer("application/vnd.kitops.modelkit.model.v1.tar", D1),
        layer("application/vnd.kitops.modelkit.code.v1.tar+gzip", D2),
    ], config={"mediaType": mt.KITOPS_CONFIG, "digest": D1, "size": len(kitfile)})
    parsed = parse_model_manifest(data, Limits(), config=kitfile)
    assert parsed.format == "kitops"
    assert [(str(e.path), e.kind) for e in parsed.files] == [
        ("README.md", "tar"), ("models/tiny.gguf", "tar"), ("src", "tar+gzip")]


def test_too_many_layers_is_a_limit_error() -> None:
    data = manifest([layer(mt.OCI_LAYER_TAR, D1, **{mt.ANNOTATION_TITLE: f"f{i}"}) for i in range(11)])
    with pytest.raises(LimitError):
        parse_model_manifest(data, Limits(layers=10))


@pytest.mark.parametrize("path", ["../../.bashrc", "/etc/cron.d/x", "C:/Windows/x", "a\\..\\b"])
def test_manifest_with_unsafe_path_is_refused(path: str) -> None:
    data = manifest([layer("application/vnd.cncf.model.weight.v1.raw", D1, **{mt.ANNOTATION_FILEPATH: path})])
    with pytest.raises(IntegrityError):
        parse_model_manifest(data, Limits())


def test_manifest_with_duplicate_or_nested_file_paths_is_refused() -> None:
    for a, b in (("w.bin", "w.bin"), ("W.bin", "w.bin"), ("w", "w/x")):
        data = manifest([
            layer("application/vnd.cncf.model.weight.v1.raw", D1, **{mt.ANNOTATION_FILEPATH: a}),
            layer("application/vnd.cncf.model.weight.v1.raw", D2, **{mt.ANNOTATION_FILEPATH: b}),
        ])
        with pytest.raises(IntegrityError):
            parse_model_manifest(data, Limits())


def test_an_index_is_not_a_model_manifest() -> None:
    data = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": []}).encode()
    with pytest.raises(InputError):
        parse_model_manifest(data, Limits())


def test_malformed_manifests_are_integrity_errors() -> None:
    for data in (b"not json", b"[]", json.dumps({"schemaVersion": 2, "config": EMPTY}).encode(),
                 manifest([{"mediaType": "x", "digest": "md5:abc", "size": 1}])):
        with pytest.raises(IntegrityError):
            parse_model_manifest(data, Limits())


def test_bad_uncompressed_size_annotation_is_refused() -> None:
    data = manifest([layer("application/vnd.cncf.model.code.v1.tar+zstd", D1,
                           **{mt.ANNOTATION_FILEPATH: "code", mt.ANNOTATION_UNCOMPRESSED_SIZE: "-5"})])
    with pytest.raises(IntegrityError):
        parse_model_manifest(data, Limits())


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
    from oci_model_sign.model import unpack

    monkeypatch.setattr(unpack, "_exchange", lambda a, b: False)
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
    from oci_model_sign.model.unpack import debris_name, sweep_debris

    mine = debris_name("staging")
    dead = mine.replace(f"-{os.getpid()}-", f"-{_dead_pid()}-")
    (tmp_path / f"{dead}abc").mkdir()
    (tmp_path / f"{dead}abc" / "weights.bin").write_bytes(b"partial")
    (tmp_path / f"{dead.replace('staging', 'layer')}xyz").write_bytes(b"partial")
    removed = sweep_debris(tmp_path)
    assert len(removed) == 2 and list(tmp_path.iterdir()) == []


def test_sweep_keeps_work_of_live_processes_and_other_hosts(tmp_path: Path) -> None:
    from oci_model_sign.model.unpack import debris_name, sweep_debris

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
    from oci_model_sign.model.unpack import debris_name

    token = debris_name("x").removeprefix(".omsign-x-").replace(f"-{os.getpid()}-", f"-{_dead_pid()}-") + "abc"
    aside = tmp_path / f".omsign-old-{token}"
    aside.mkdir()
    (aside / "old.txt").write_bytes(b"the previous model")
    journal = tmp_path / f".omsign-swap-{token}"
    journal.write_bytes(dest_name.encode())
    return journal, aside


def test_sweep_puts_back_the_old_tree_of_a_replace_killed_between_its_renames(tmp_path: Path) -> None:
    from oci_model_sign.model.unpack import sweep_debris

    _dead_swap(tmp_path, "dest")
    sweep_debris(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert (tmp_path / "dest/old.txt").read_bytes() == b"the previous model"


def test_sweep_removes_the_old_tree_once_the_new_one_is_in_place(tmp_path: Path) -> None:
    from oci_model_sign.model.unpack import sweep_debris

    (tmp_path / "dest").mkdir()
    (tmp_path / "dest/new.txt").write_bytes(b"verified")
    _dead_swap(tmp_path, "dest")
    sweep_debris(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["new.txt"]


# -- artifacts that are not models -----------------------------------------------------------------
def _pulled(value: dict[str, Any]) -> Any:
    from oci_model_sign.model.unpack import parse_pulled_model

    return parse_pulled_model(json.dumps(value).encode(), Limits(), what="r/x:v1")


def test_docker_image_is_named_a_container_image() -> None:
    from oci_model_sign.errors import NotFoundError

    docker = "application/vnd.docker.distribution.manifest.v2+json"
    value = {"schemaVersion": 2, "mediaType": docker,
             "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": D1, "size": 10},
             "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": D2, "size": 10}]}
    expected = f"r/x:v1 is a container image ({docker} with application/vnd.docker.image.rootfs.diff.tar.gzip layers), not a model"
    with pytest.raises(NotFoundError, match=re.escape(expected)):
        _pulled(value)


def test_docker_manifest_list_and_oci_index_without_media_type_are_named_indexes() -> None:
    from oci_model_sign.errors import NotFoundError

    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D1, "size": 10}
    for value in ({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                   "manifests": [entry]},
                  {"schemaVersion": 2, "manifests": [entry, entry]}):
        with pytest.raises(NotFoundError, match="is an image index"):
            _pulled(value)


def test_manifest_without_layers_is_not_a_model() -> None:
    from oci_model_sign.errors import NotFoundError

    value = json.loads(manifest([], artifact_type="application/vnd.example+json"))
    with pytest.raises(NotFoundError, match=re.escape("application/vnd.example+json with no layers, not a model")):
        _pulled(value)


def test_a_model_is_returned_as_parsed() -> None:
    value = json.loads(manifest([layer("application/vnd.cncf.model.weight.v1.raw", D1, **{mt.ANNOTATION_FILEPATH: "w.bin"})],
                                artifact_type=mt.MODEL_ARTIFACT_TYPE))
    assert [str(e.path) for e in _pulled(value).files] == ["w.bin"]
