"""From an untrusted model manifest to files on disk: parsing, path safety, staging."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from oci_model_sign.errors import InputError, IntegrityError, LimitError
from oci_model_sign.limits import Limits
from oci_model_sign.model.pack import PackOptions, plan_model
from oci_model_sign.model.unpack import (
    ModelEntry,
    check_unique,
    filter_entries,
    matches_include,
    parse_model_manifest,
    safe_relpath,
)
from oci_model_sign.oci import mediatypes as mt
from oci_model_sign.oci.descriptor import Descriptor
from oci_model_sign.reference import parse_reference
from oci_model_sign.store.base import StoreOptions
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
