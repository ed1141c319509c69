"""The on-disk OCI image layout store (``oci:PATH[:TAG]``)."""

from __future__ import annotations

import io
import json
import multiprocessing
import shutil
import subprocess
from pathlib import Path

import pytest

from oci_model_sign.digest import sha256_digest
from oci_model_sign.errors import InputError, IntegrityError, LimitError, NotFoundError
from oci_model_sign.limits import Limits
from oci_model_sign.oci.descriptor import Descriptor
from oci_model_sign.oci.mediatypes import EMPTY_DIGEST, EMPTY_JSON, OCI_EMPTY, OCI_MANIFEST
from oci_model_sign.reference import parse_reference
from oci_model_sign.store import open_store
from oci_model_sign.store.base import BlobSource, Store, StoreOptions
from oci_model_sign.store.layout import LayoutStore


def layout(path: Path, *, create: bool = True, limits: Limits | None = None) -> LayoutStore:
    options = StoreOptions(limits=limits or Limits())
    return LayoutStore(parse_reference(f"oci:{path}"), options, create=create)


def tiny_manifest(store: LayoutStore, content: bytes = b"hello model\n") -> tuple[bytes, Descriptor]:
    """A small ORAS-style artifact: one file layer and the empty config."""
    layer = store.push_blob(BlobSource(size=len(content), data=content))
    store.push_blob(BlobSource(size=2, data=EMPTY_JSON, digest=EMPTY_DIGEST))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.test",
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.digest,
                    "size": layer.size, "annotations": {"org.opencontainers.image.title": "hello.txt"}}],
    }
    return json.dumps(manifest, separators=(",", ":")).encode(), layer


def test_new_layout_has_oci_layout_file_and_empty_index(tmp_path: Path) -> None:
    layout(tmp_path / "lay")
    assert json.loads((tmp_path / "lay/oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((tmp_path / "lay/index.json").read_text())
    assert index["schemaVersion"] == 2 and index["manifests"] == []


def test_layout_store_satisfies_the_store_protocol(tmp_path: Path) -> None:
    store = open_store(f"oci:{tmp_path / 'lay'}", create=True)
    assert isinstance(store, LayoutStore)
    assert isinstance(store, Store)


def test_missing_layout_without_create_is_not_found_with_hint(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        layout(tmp_path / "nope", create=False)
    assert info.value.hint


def test_create_refuses_a_non_empty_folder_that_is_not_a_layout(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model/weights.bin").write_bytes(b"x")
    with pytest.raises(InputError):
        layout(tmp_path / "model")


def test_push_blob_stores_file_under_its_digest(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights" * 1000)
    desc = store.push_blob(BlobSource(size=src.stat().st_size, path=src))
    assert desc.digest == sha256_digest(src.read_bytes())
    assert (tmp_path / "lay/blobs/sha256" / desc.digest.split(":")[1]).read_bytes() == src.read_bytes()
    assert store.blob_exists(desc.digest)
    assert [p.name for p in (tmp_path / "lay/blobs/sha256").iterdir()] == [desc.digest.split(":")[1]]


def test_push_blob_reports_progress_for_every_byte(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    seen: list[int] = []
    store.push_blob(BlobSource(size=10, data=b"0123456789"), progress=seen.append)
    assert sum(seen) == 10


def test_push_blob_with_known_digest_skips_existing_blob(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    data = b"abc"
    first = store.push_blob(BlobSource(size=3, data=data))
    # A source that would fail if read: proves the existing blob is not re-read.
    missing = BlobSource(size=3, path=tmp_path / "does-not-exist", digest=first.digest)
    assert store.push_blob(missing).digest == first.digest


def test_push_blob_refuses_a_file_whose_size_changed(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    src = tmp_path / "w.bin"
    src.write_bytes(b"12345")
    with pytest.raises(InputError, match="changed size"):
        store.push_blob(BlobSource(size=3, path=src))
    assert list((tmp_path / "lay/blobs/sha256").iterdir()) == []


def test_push_blob_refuses_content_that_does_not_match_the_given_digest(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    with pytest.raises(InputError, match="changed while being read"):
        store.push_blob(BlobSource(size=3, data=b"abc", digest=sha256_digest(b"xyz")))
    assert not store.blob_exists(sha256_digest(b"abc"))


def test_fetch_blob_streams_verified_bytes(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    desc = store.push_blob(BlobSource(size=5, data=b"hello"))
    out = io.BytesIO()
    store.fetch_blob(desc, out)
    assert out.getvalue() == b"hello"


def test_fetch_blob_detects_a_tampered_blob_file(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    desc = store.push_blob(BlobSource(size=5, data=b"hello"))
    (tmp_path / "lay/blobs/sha256" / desc.digest.split(":")[1]).write_bytes(b"jello")
    with pytest.raises(IntegrityError):
        store.fetch_blob(desc, io.BytesIO())


def test_fetch_blob_refuses_a_blob_longer_than_its_descriptor(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    desc = store.push_blob(BlobSource(size=5, data=b"hello"))
    (tmp_path / "lay/blobs/sha256" / desc.digest.split(":")[1]).write_bytes(b"hello, and much more")
    out = io.BytesIO()
    with pytest.raises(IntegrityError):
        store.fetch_blob(desc, out)
    assert len(out.getvalue()) <= 5


def test_fetch_missing_blob_is_not_found(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    with pytest.raises(NotFoundError):
        store.fetch_blob(Descriptor("application/octet-stream", sha256_digest(b"x"), 1), io.BytesIO())


def test_read_blob_refuses_blobs_over_the_limit(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    desc = store.push_blob(BlobSource(size=10, data=b"0123456789"))
    with pytest.raises(LimitError):
        store.read_blob(desc, max_bytes=5)
    assert store.read_blob(desc, max_bytes=10) == b"0123456789"


def test_put_manifest_with_tag_resolves_and_round_trips_exact_bytes(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    data, _ = tiny_manifest(store)
    digest = store.put_manifest(data, OCI_MANIFEST, tag="v1")
    assert digest == sha256_digest(data)
    desc = store.resolve("v1")
    assert desc.digest == digest and desc.media_type == OCI_MANIFEST
    assert desc.artifact_type == "application/vnd.example.test"
    got = store.get_manifest("v1")
    assert got.data == data and got.digest == digest
    assert store.get_manifest(digest).data == data
    assert store.list_tags() == ["v1"]


def test_retagging_moves_the_tag_to_the_new_manifest(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    first, _ = tiny_manifest(store, b"one")
    second, _ = tiny_manifest(store, b"two")
    store.put_manifest(first, OCI_MANIFEST, tag="latest")
    d2 = store.put_manifest(second, OCI_MANIFEST, tag="latest")
    assert store.resolve("latest").digest == d2
    names = [m.get("annotations", {}).get("org.opencontainers.image.ref.name")
             for m in json.loads((tmp_path / "lay/index.json").read_text())["manifests"]]
    assert names.count("latest") == 1


def test_untagged_manifest_is_listed_once_and_resolvable_by_digest(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    data, _ = tiny_manifest(store)
    d1 = store.put_manifest(data, OCI_MANIFEST)
    store.put_manifest(data, OCI_MANIFEST)
    assert len(json.loads((tmp_path / "lay/index.json").read_text())["manifests"]) == 1
    assert store.resolve(d1).digest == d1
    assert store.list_tags() == []


def test_fallback_referrers_tag_names_are_accepted(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    data, _ = tiny_manifest(store)
    tag = "sha256-" + "a" * 64
    store.put_manifest(data, OCI_MANIFEST, tag=tag)
    assert store.list_tags() == [tag]


def test_get_manifest_detects_tampered_manifest_blob(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    data, _ = tiny_manifest(store)
    digest = store.put_manifest(data, OCI_MANIFEST, tag="v1")
    (tmp_path / "lay/blobs/sha256" / digest.split(":")[1]).write_bytes(data.replace(b"hello", b"jello"))
    with pytest.raises(IntegrityError):
        store.get_manifest("v1")


def test_unknown_tag_is_not_found(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    with pytest.raises(NotFoundError):
        store.resolve("nope")


def test_oversized_index_json_is_a_limit_error(tmp_path: Path) -> None:
    layout(tmp_path / "lay")
    store = layout(tmp_path / "lay", limits=Limits(index_bytes=64))
    index = {"schemaVersion": 2, "manifests": [], "annotations": {"pad": "x" * 100}}
    (tmp_path / "lay/index.json").write_text(json.dumps(index))
    with pytest.raises(LimitError):
        store.list_tags()


def test_put_manifest_over_the_limit_is_refused(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay", limits=Limits(manifest_bytes=32))
    data, _ = tiny_manifest(store)
    with pytest.raises(LimitError):
        store.put_manifest(data, OCI_MANIFEST, tag="v1")


def test_delete_manifest_removes_entry_and_blob(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    data, _ = tiny_manifest(store)
    digest = store.put_manifest(data, OCI_MANIFEST, tag="v1")
    store.delete_manifest(digest)
    assert store.list_tags() == []
    with pytest.raises(NotFoundError):
        store.get_manifest(digest)


def test_layout_has_no_referrers_api_and_mounts_only_present_blobs(tmp_path: Path) -> None:
    store = layout(tmp_path / "lay")
    desc = store.push_blob(BlobSource(size=1, data=b"x"))
    assert store.referrers_api(desc.digest) is None
    assert store.mount_blob(desc.digest, "elsewhere") is True
    assert store.mount_blob(sha256_digest(b"y"), "elsewhere") is False


def _tag_many(path: str, worker: int) -> None:
    store = LayoutStore(parse_reference(f"oci:{path}"), StoreOptions(), create=True)
    for i in range(8):
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "w": worker, "i": i,
                           "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
                           "layers": []}).encode()
        store.put_manifest(body, OCI_MANIFEST, tag=f"w{worker}-{i}")


def test_concurrent_processes_creating_and_tagging_never_lose_each_others_tags(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_tag_many, args=(str(tmp_path / "lay"), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = layout(tmp_path / "lay", create=False)
    assert store.list_tags() == sorted(f"w{w}-{i}" for w in range(3) for i in range(8))


@pytest.mark.registry
def test_skopeo_copies_the_layout_to_a_registry_and_back(tmp_path: Path, registry: object, repo: str) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    store = layout(tmp_path / "lay")
    data, _ = tiny_manifest(store)
    digest = store.put_manifest(data, OCI_MANIFEST, tag="v1")

    def skopeo(*args: str) -> None:
        subprocess.run(["skopeo", "copy", "--quiet", *args], check=True, timeout=120,
                       capture_output=True)

    skopeo(f"oci:{tmp_path / 'lay'}:v1", f"docker://{repo}:v1", "--dest-tls-verify=false")
    skopeo(f"docker://{repo}:v1", f"oci:{tmp_path / 'back'}:v1", "--src-tls-verify=false")
    back = layout(tmp_path / "back", create=False)
    assert back.resolve("v1").digest == digest
    assert back.get_manifest("v1").data == data
