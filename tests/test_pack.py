"""Packing a model folder: classification, layer plan, ModelPack config and manifest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from oci_model_sign.errors import InputError, UsageError
from oci_model_sign.model import conventions
from oci_model_sign.model.digestcache import DigestCache
from oci_model_sign.model.pack import PackOptions, plan_model
from oci_model_sign.oci import mediatypes as mt
from oci_model_sign.reference import parse_reference
from oci_model_sign.store.base import StoreOptions
from oci_model_sign.store.layout import LayoutStore
from oci_model_sign.transfer import PushResult, push_model
from tests.conftest import TESTDATA

TINY = TESTDATA / "tiny-model"


def layout(path: Path) -> LayoutStore:
    return LayoutStore(parse_reference(f"oci:{path}"), StoreOptions(), create=True)


def push(model: Path, store_path: Path, options: PackOptions, *, tag: str | None = None,
         cache: DigestCache | None = None) -> PushResult:
    """Push ``model`` into the layout at ``store_path`` with the engine the CLI runs."""
    ref = parse_reference(f"oci:{store_path}" + (f":{tag}" if tag else ""))
    return push_model(model, ref, LayoutStore(ref, StoreOptions(), create=True), pack=options, cache=cache)


def copy_tiny(tmp_path: Path) -> Path:
    dest = tmp_path / "tiny-model"
    shutil.copytree(TINY, dest)
    return dest


def sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def nocache() -> PackOptions:
    return PackOptions(use_cache=False)


# -- classification ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("model-00001-of-00002.safetensors", "weight"),
        ("pytorch_model.bin", "weight"),
        ("onnx/model.onnx_data", "weight"),
        ("model.gguf", "weight"),
        ("config.json", "weight.config"),
        ("tokenizer.model", "weight.config"),
        ("merges.txt", "weight.config"),
        ("vocab.txt", "weight.config"),
        ("chat_template.jinja", "weight.config"),
        ("model.safetensors.index.json", "weight.config"),
        ("README.md", "doc"),
        ("LICENSE", "doc"),
        ("notes.txt", "doc"),
        ("code/modeling.py", "code"),
        ("train.jsonl", "dataset"),
        ("data/part-0.parquet", "dataset"),
    ],
)
def test_classify_assigns_modelpack_roles(path: str, role: str) -> None:
    assert conventions.classify(path) == role
    assert conventions.classify_certain(path)[1] is True


def test_unknown_files_are_docs_marked_as_a_guess() -> None:
    assert conventions.classify_certain("weird.xyz") == ("doc", False)


def test_layer_types_follow_the_modelpack_pattern() -> None:
    assert mt.model_layer_type("weight", "raw") == "application/vnd.cncf.model.weight.v1.raw"
    assert mt.model_layer_type("weight.config", "tar+zstd") == "application/vnd.cncf.model.weight.config.v1.tar+zstd"
    assert mt.parse_model_layer_type("application/vnd.cnai.model.doc.v1.tar") == ("doc", "tar")
    assert mt.parse_model_layer_type("application/vnd.oci.image.layer.v1.tar") is None


def test_unknown_media_type_convention_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        conventions.get_media_types("nope")


# -- planning ----------------------------------------------------------------------------------
def test_plan_lists_every_file_once_in_component_order_with_roles() -> None:
    with plan_model(TINY, nocache()) as plan:
        paths = [e.relpath for e in plan.entries]
        assert paths == [
            "LICENSE", "README.md", "code/modeling_tiny.py", "code/utils/helpers.py", "config.json",
            "generation_config.json", "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json",
            "tokenizer_config.json",
        ]
        roles = {e.relpath: e.role for e in plan.entries}
        assert roles["model-00001-of-00002.safetensors"] == "weight"
        assert roles["code/utils/helpers.py"] == "code"
        assert roles["README.md"] == "doc"
        assert plan.name == "tiny-model"
        assert all(e.media_type.endswith(".v1.raw") for e in plan.entries)


def test_git_paths_are_ignored_at_top_level_only(tmp_path: Path) -> None:
    model = tmp_path / "m"
    (model / ".git").mkdir(parents=True)
    (model / ".git/HEAD").write_text("ref")
    (model / ".gitattributes").write_text("*.bin lfs")
    (model / "sub/.gitignore").parent.mkdir()
    (model / "sub/.gitignore").write_text("x")
    (model / "w.bin").write_bytes(b"w")
    with plan_model(model, nocache()) as plan:
        assert [e.relpath for e in plan.entries] == ["sub/.gitignore", "w.bin"]
        assert ".git" in plan.ignore_paths
    with plan_model(model, PackOptions(use_cache=False, ignore_git=False)) as plan:
        assert ".git/HEAD" in [e.relpath for e in plan.entries]


def test_ignore_accepts_exact_paths_folders_and_globs(tmp_path: Path) -> None:
    model = tmp_path / "m"
    for rel in ("a.bin", "b.tmp", "logs/x.log", "keep/c.tmp", "model.sig"):
        (model / rel).parent.mkdir(parents=True, exist_ok=True)
        (model / rel).write_bytes(b"x")
    opts = PackOptions(use_cache=False, ignore=["model.sig", "logs/", "*.tmp"])
    with plan_model(model, opts) as plan:
        assert [e.relpath for e in plan.entries] == ["a.bin"]


def test_ignore_path_escaping_the_model_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"x")
    with pytest.raises(UsageError):
        plan_model(tmp_path, PackOptions(use_cache=False, ignore=["../x"]))


def test_symlink_is_refused_by_default(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"x")
    (tmp_path / "link.bin").symlink_to("a.bin")
    with pytest.raises(InputError, match="symbolic link"):
        plan_model(tmp_path, nocache())


def test_allowed_symlink_inside_the_model_packs_the_target_under_the_link_name(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"target bytes")
    (tmp_path / "link.bin").symlink_to("a.bin")
    with plan_model(tmp_path, PackOptions(use_cache=False, allow_symlinks=True)) as plan:
        entry = next(e for e in plan.entries if e.relpath == "link.bin")
        assert entry.size == len(b"target bytes")
        assert entry.source.path is not None and entry.source.path.read_bytes() == b"target bytes"


def test_allowed_symlink_pointing_outside_the_model_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_bytes(b"s")
    model = tmp_path / "m"
    model.mkdir()
    (model / "a.bin").write_bytes(b"x")
    (model / "leak").symlink_to(outside)
    with pytest.raises(InputError, match="outside"):
        plan_model(model, PackOptions(use_cache=False, allow_symlinks=True))


def test_special_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InputError, match="not a regular file"):
        plan_model(tmp_path, nocache())


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads everything")
def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"x")
    f.chmod(0)
    with pytest.raises(InputError, match="cannot read"):
        plan_model(tmp_path, nocache())


def test_missing_model_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        plan_model(tmp_path / "missing", nocache())


def test_empty_model_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no files"):
        plan_model(tmp_path, nocache())


def test_single_file_model_uses_its_basename(tmp_path: Path) -> None:
    f = tmp_path / "model.gguf"
    f.write_bytes(b"GGUF")
    with plan_model(f, nocache()) as plan:
        assert [e.relpath for e in plan.entries] == ["model.gguf"]
        assert plan.name == "model.gguf"


# -- manifest and config -----------------------------------------------------------------------
def test_raw_layer_digests_are_the_file_sha256_and_model_signing_digests(tmp_path: Path) -> None:
    from model_signing import hashing

    stored = push(TINY, tmp_path / "lay", nocache(), tag="v1")
    manifest = json.loads(stored.manifest)
    by_path = {lay["annotations"][mt.ANNOTATION_FILEPATH]: lay["digest"] for lay in manifest["layers"]}
    for rel, digest in by_path.items():
        assert digest == sha(TINY / rel)
    oms = hashing.Config().use_file_serialization().hash(TINY)  # type: ignore[no-untyped-call]
    oms_digests = {str(r.identifier): "sha256:" + r.digest.digest_hex for r in oms.resource_descriptors()}
    assert oms_digests == by_path


def test_manifest_is_a_modelpack_artifact_with_fields_in_oci_order(tmp_path: Path) -> None:
    stored = push(TINY, tmp_path / "lay", nocache())
    manifest = json.loads(stored.manifest)
    assert list(manifest) == ["schemaVersion", "mediaType", "artifactType", "config", "layers"]
    assert manifest["artifactType"] == mt.MODEL_ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == mt.MODEL_CONFIG
    assert b" " not in stored.manifest.split(b'"annotations"')[0]  # compact JSON
    layer = next(lay for lay in manifest["layers"] if lay["annotations"][mt.ANNOTATION_FILEPATH] == "code/utils/helpers.py")
    assert layer["mediaType"] == "application/vnd.cncf.model.code.v1.raw"
    assert layer["annotations"][mt.ANNOTATION_TITLE] == "code/utils/helpers.py"
    meta = json.loads(layer["annotations"][mt.ANNOTATION_FILE_METADATA])
    assert meta == {"name": "helpers.py", "mode": 0o644, "uid": 0, "gid": 0,
                    "size": (TINY / "code/utils/helpers.py").stat().st_size, "typeflag": 0}


def test_config_records_format_name_and_diff_ids_without_a_timestamp(tmp_path: Path) -> None:
    stored = push(TINY, tmp_path / "lay", nocache())
    store = layout(tmp_path / "lay")
    manifest = json.loads(stored.manifest)
    from oci_model_sign.oci.descriptor import Descriptor

    config = json.loads(store.read_blob(Descriptor.from_json(manifest["config"]), 1 << 20))
    assert config["descriptor"] == {"name": "tiny-model"}
    assert config["config"]["format"] == "safetensors"
    assert config["modelfs"] == {"type": "layers", "diffIds": [lay["digest"] for lay in manifest["layers"]]}


def test_repacking_an_unchanged_folder_gives_the_same_manifest_bytes(tmp_path: Path) -> None:
    model = copy_tiny(tmp_path)
    opts = PackOptions(use_cache=False, pack_dirs=["code"])
    first = push(model, tmp_path / "one", opts)
    os.utime(model / "config.json", ns=(0, 123))  # metadata change only
    second = push(model, tmp_path / "two", opts)
    assert first.manifest == second.manifest
    assert first.digest == second.digest


def test_guessed_roles_are_marked_untested(tmp_path: Path) -> None:
    (tmp_path / "blob.xyz").write_bytes(b"?")
    stored = push(tmp_path, tmp_path.parent / "lay", nocache())
    layer = json.loads(stored.manifest)["layers"][0]
    assert layer["annotations"][mt.ANNOTATION_MEDIATYPE_UNTESTED] == "true"
    assert layer["mediaType"] == "application/vnd.cncf.model.doc.v1.raw"


def test_manifest_annotations_are_sorted_and_kept(tmp_path: Path) -> None:
    opts = PackOptions(use_cache=False, annotations={"z": "1", "a": "2"})
    stored = push(TINY, tmp_path / "lay", opts)
    assert list(json.loads(stored.manifest)["annotations"]) == ["a", "z"]


# -- folder layers -----------------------------------------------------------------------------
def test_pack_dir_with_zstd_becomes_one_tar_zstd_layer_with_recorded_size(tmp_path: Path) -> None:
    opts = PackOptions(use_cache=False, pack_dirs=["code"], compress="zstd")
    with plan_model(TINY, opts) as plan:
        entry = next(e for e in plan.entries if e.relpath == "code")
        assert entry.files == ["code/modeling_tiny.py", "code/utils/helpers.py"]
        assert "code/modeling_tiny.py" not in [e.relpath for e in plan.entries]
    stored = push(TINY, tmp_path / "lay", opts)
    store = layout(tmp_path / "lay")
    manifest = json.loads(stored.manifest)
    layer = next(lay for lay in manifest["layers"] if lay["annotations"][mt.ANNOTATION_FILEPATH] == "code")
    assert layer["mediaType"] == "application/vnd.cncf.model.code.v1.tar+zstd"
    assert int(layer["annotations"][mt.ANNOTATION_UNCOMPRESSED_SIZE]) == entry.uncompressed_size
    from oci_model_sign.oci.descriptor import Descriptor

    config = json.loads(store.read_blob(Descriptor.from_json(manifest["config"]), 1 << 20))
    i = manifest["layers"].index(layer)
    assert config["modelfs"]["diffIds"][i] == entry.diff_id != layer["digest"]


def test_pack_dir_is_a_plain_reproducible_modelpack_tar_by_default(tmp_path: Path) -> None:
    """ModelPack peers (modctl) read ``…v1.tar`` folder layers, not ``…v1.tar+zstd``."""
    import tarfile

    opts = PackOptions(use_cache=False, pack_dirs=["code"])
    with plan_model(TINY, opts) as plan, plan_model(TINY, opts) as again:
        entry = next(e for e in plan.entries if e.relpath == "code")
        assert entry.format == "tar"
        assert entry.media_type == "application/vnd.cncf.model.code.v1.tar"
        assert entry.source.digest == entry.diff_id and entry.size == entry.uncompressed_size
        assert next(e for e in again.entries if e.relpath == "code").source.digest == entry.source.digest
        assert entry.source.path is not None
        with tarfile.open(entry.source.path, mode="r:") as tf:
            assert [m.name for m in tf.getmembers() if m.isfile()] == entry.files
    stored = push(TINY, tmp_path / "lay", opts)
    layer = next(x for x in json.loads(stored.manifest)["layers"] if x["annotations"][mt.ANNOTATION_FILEPATH] == "code")
    assert layer["mediaType"] == "application/vnd.cncf.model.code.v1.tar"


def test_pack_dir_that_is_not_a_folder_is_an_input_error() -> None:
    with pytest.raises(InputError):
        plan_model(TINY, PackOptions(use_cache=False, pack_dirs=["config.json"]))


def test_pack_dir_temp_files_are_removed_on_cleanup() -> None:
    plan = plan_model(TINY, PackOptions(use_cache=False, pack_dirs=["code"]))
    assert plan.temp_dir is not None and plan.temp_dir.exists()
    temp = plan.temp_dir
    plan.cleanup()
    assert not temp.exists()


def test_oras_convention_writes_oci_tar_layers_with_titles_and_empty_config(tmp_path: Path) -> None:
    opts = PackOptions(use_cache=False, media_types="oras")
    stored = push(TINY, tmp_path / "lay", opts)
    manifest = json.loads(stored.manifest)
    assert manifest["artifactType"] == mt.ORAS_DEFAULT_ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    for layer in manifest["layers"]:
        assert layer["mediaType"] == mt.OCI_LAYER_TAR
        assert list(layer["annotations"]) == [mt.ANNOTATION_TITLE]


# -- digest cache ------------------------------------------------------------------------------
def test_second_plan_takes_digests_from_the_cache(tmp_path: Path) -> None:
    model = copy_tiny(tmp_path)
    cache = DigestCache(tmp_path / "c.sqlite")
    with plan_model(model, cache=cache) as plan:
        assert all(e.source.digest is None for e in plan.entries)
    push(model, tmp_path / "lay", PackOptions(), cache=cache)
    with plan_model(model, cache=cache) as plan:
        assert all(e.source.digest == sha(model / e.relpath) for e in plan.entries)


def test_changed_file_is_not_taken_from_the_cache(tmp_path: Path) -> None:
    model = copy_tiny(tmp_path)
    cache = DigestCache(tmp_path / "c.sqlite")
    push(model, tmp_path / "lay", PackOptions(), cache=cache)
    (model / "config.json").write_text('{"changed": true}\n')
    with plan_model(model, cache=cache) as plan:
        entry = next(e for e in plan.entries if e.relpath == "config.json")
        assert entry.source.digest is None


def test_no_cache_option_neither_reads_nor_writes_the_default_cache(tmp_path: Path) -> None:
    from oci_model_sign.model.digestcache import default_cache_path

    push(TINY, tmp_path / "lay", nocache(), cache=None)
    assert not default_cache_path().exists()


@pytest.mark.registry
def test_packed_model_layout_survives_a_skopeo_round_trip(tmp_path: Path, registry: object, repo: str) -> None:
    import subprocess

    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    stored = push(TINY, tmp_path / "lay", PackOptions(use_cache=False, pack_dirs=["code"]), tag="v1")
    for src, dst, flag in ((f"oci:{tmp_path / 'lay'}:v1", f"docker://{repo}:v1", "--dest-tls-verify=false"),
                           (f"docker://{repo}:v1", f"oci:{tmp_path / 'back'}:v1", "--src-tls-verify=false")):
        subprocess.run(["skopeo", "copy", "--quiet", flag, src, dst], check=True, timeout=120, capture_output=True)
    back = LayoutStore(parse_reference(f"oci:{tmp_path / 'back'}"), StoreOptions(), create=False)
    assert back.get_manifest("v1").data == stored.manifest


@pytest.mark.registry
def test_oras_py_pulls_a_packed_model_with_nested_paths(tmp_path: Path, registry: object, repo: str) -> None:
    import subprocess

    import oras.client

    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    push(TINY, tmp_path / "lay", PackOptions(use_cache=False), tag="v1")
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{tmp_path / 'lay'}:v1",
                    f"docker://{repo}:v1"], check=True, timeout=120, capture_output=True)
    files = oras.client.OrasClient(insecure=True).pull(target=f"{repo}:v1", outdir=str(tmp_path / "out"))
    pulled = sorted(str(Path(f).relative_to(tmp_path / "out")) for f in files)
    assert pulled == sorted(str(p.relative_to(TINY)) for p in TINY.rglob("*") if p.is_file())
    assert (tmp_path / "out/code/utils/helpers.py").read_bytes() == (TINY / "code/utils/helpers.py").read_bytes()
