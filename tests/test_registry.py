"""The registry store against a real registry: blobs, manifests, tags, failures, limits."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from oci_model_sign.digest import hash_file, sha256_digest
from oci_model_sign.errors import (
    InputError,
    IntegrityError,
    LimitError,
    NotFoundError,
    RegistryError,
)
from oci_model_sign.limits import Limits
from oci_model_sign.oci.descriptor import Descriptor
from oci_model_sign.oci.mediatypes import EMPTY_DIGEST, EMPTY_JSON, OCI_EMPTY, OCI_MANIFEST
from oci_model_sign.reference import parse_reference
from oci_model_sign.store import open_store
from oci_model_sign.store.base import BlobSource, StoreOptions
from oci_model_sign.store.registry import RegistryStore, parse_next_link
from oci_model_sign.store.transport import retry_after_seconds
from oci_model_sign.store.upload import parse_upload_range, rehash, with_digest
from tests import registry_server

MiB = 1024 * 1024


def make_store(name: str, **options: object) -> RegistryStore:
    return RegistryStore(parse_reference(name), StoreOptions(**options))  # type: ignore[arg-type]


@pytest.fixture
def store(repo: str) -> Iterator[RegistryStore]:
    with make_store(repo) as s:
        yield s


def record_requests(store: RegistryStore) -> list[tuple[str, str]]:
    """(method, path) of every request the store sends from now on."""
    seen: list[tuple[str, str]] = []
    store.session.client.event_hooks["request"].append(lambda r: seen.append((r.method, r.url.path)))
    return seen


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def manifest_for(store: RegistryStore, layer: bytes, **extra: object) -> bytes:
    """A small valid OCI manifest whose blobs exist in ``store``."""
    store.push_blob(BlobSource(size=len(EMPTY_JSON), data=EMPTY_JSON))
    desc = store.push_blob(BlobSource(size=len(layer), data=layer))
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": desc.digest, "size": desc.size}],
        **extra,
    }
    return json.dumps(body, separators=(",", ":")).encode()


# -- blobs ----------------------------------------------------------------------------------


def test_small_blob_round_trip(store: RegistryStore) -> None:
    data = b"hello model\n" * 100
    desc = store.push_blob(BlobSource(size=len(data), data=data))
    assert desc == Descriptor("application/octet-stream", sha256_digest(data), len(data))
    assert store.blob_exists(desc.digest)
    assert store.read_blob(desc, max_bytes=1 * MiB) == data


def test_small_file_is_hashed_and_pushed_in_one_put(store: RegistryStore, tmp_path: Path) -> None:
    path = random_file(tmp_path / "small.bin", 300_000)
    requests = record_requests(store)
    desc = store.push_blob(BlobSource(size=300_000, path=path))
    assert desc.digest == hash_file(str(path))[0]
    assert [m for m, _ in requests].count("PUT") == 1
    assert "PATCH" not in [m for m, _ in requests]


def test_large_blob_goes_up_in_chunks_hashed_while_sending(repo: str, tmp_path: Path) -> None:
    size = 3 * MiB + 12345
    path = random_file(tmp_path / "large.bin", size)
    with make_store(repo, chunk_size=1 * MiB, monolithic_max=1 * MiB) as store:
        requests = record_requests(store)
        desc = store.push_blob(BlobSource(size=size, path=path))
        assert desc.digest == hash_file(str(path))[0]
        assert desc.size == size
        assert [m for m, _ in requests].count("PATCH") == 4
        assert store.stats.uploaded_bytes == size
        out = tmp_path / "back.bin"
        with out.open("wb") as f:
            store.fetch_blob(desc, f)
        assert out.read_bytes() == path.read_bytes()


def test_progress_reports_every_byte_once(repo: str, tmp_path: Path) -> None:
    size = 2 * MiB + 7
    path = random_file(tmp_path / "p.bin", size)
    moved: list[int] = []
    with make_store(repo, chunk_size=1 * MiB, monolithic_max=1 * MiB) as store:
        desc = store.push_blob(BlobSource(size=size, path=path), progress=moved.append)
        assert sum(moved) == size
        down: list[int] = []
        store.fetch_blob(desc, io.BytesIO(), progress=down.append)
        assert sum(down) == size


def test_known_existing_blob_is_not_uploaded_again(store: RegistryStore) -> None:
    data = os.urandom(5000)
    desc = store.push_blob(BlobSource(size=len(data), data=data))
    before = store.stats.snapshot()
    requests = record_requests(store)
    again = store.push_blob(BlobSource(size=len(data), data=data, digest=desc.digest))
    assert again.digest == desc.digest
    assert [m for m, _ in requests] == ["HEAD"]
    assert store.stats.uploaded_bytes == before["uploaded_bytes"]
    assert store.stats.skipped_blobs == before["skipped_blobs"] + 1


def test_file_shorter_than_planned_is_refused(repo: str, tmp_path: Path) -> None:
    path = random_file(tmp_path / "f.bin", 2 * MiB)
    with make_store(repo, chunk_size=1 * MiB, monolithic_max=1 * MiB) as store:
        with pytest.raises(InputError, match="file changed while pushing"):
            store.push_blob(BlobSource(size=3 * MiB, path=path))
        with pytest.raises(InputError, match="file changed while pushing"):
            store.push_blob(BlobSource(size=2 * MiB - 1, path=path))
    small = random_file(tmp_path / "s.bin", 100)
    with make_store(repo) as store, pytest.raises(InputError, match="file changed while pushing"):
        store.push_blob(BlobSource(size=99, path=small))


def test_blobs_push_in_parallel_through_one_store(store: RegistryStore) -> None:
    blobs = [os.urandom(50_000 + i) for i in range(12)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        descs = list(pool.map(lambda b: store.push_blob(BlobSource(size=len(b), data=b)), blobs))
    assert [d.digest for d in descs] == [sha256_digest(b) for b in blobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        back = list(pool.map(lambda d: store.read_blob(d, max_bytes=MiB), descs))
    assert back == blobs


def test_mount_from_another_repository(registry: registry_server.RegistryServer, repo: str) -> None:
    data = os.urandom(4096)
    with make_store(repo) as source:
        desc = source.push_blob(BlobSource(size=len(data), data=data))
    with make_store(f"{registry.host}/other/{desc.digest[7:19]}") as target:
        assert not target.blob_exists(desc.digest)
        assert target.mount_blob(desc.digest, source.ref.repository)
        assert target.blob_exists(desc.digest)


def test_mount_of_unknown_blob_returns_false(registry: registry_server.RegistryServer, store: RegistryStore) -> None:
    assert store.mount_blob(sha256_digest(b"never pushed"), "test/nowhere") is False


def test_unknown_blob_is_not_found(store: RegistryStore) -> None:
    desc = Descriptor("application/octet-stream", sha256_digest(b"nope"), 4)
    assert not store.blob_exists(desc.digest)
    with pytest.raises(NotFoundError):
        store.fetch_blob(desc, io.BytesIO())


def test_tampered_blob_on_registry_disk_fails_fetch(
    registry: registry_server.RegistryServer, store: RegistryStore
) -> None:
    data = os.urandom(10_000)
    desc = store.push_blob(BlobSource(size=len(data), data=data))
    blob = registry.blob_path(desc.digest)
    blob.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    with pytest.raises(IntegrityError, match="does not match"):
        store.fetch_blob(desc, io.BytesIO())


def test_blob_longer_than_its_descriptor_is_refused(store: RegistryStore) -> None:
    data = os.urandom(1000)
    desc = store.push_blob(BlobSource(size=len(data), data=data))
    with pytest.raises(IntegrityError, match="larger than"):
        store.fetch_blob(Descriptor(desc.media_type, desc.digest, 10), io.BytesIO())


def test_read_blob_refuses_blobs_over_the_limit(store: RegistryStore) -> None:
    desc = Descriptor("application/octet-stream", sha256_digest(b"x"), 2 * MiB)
    with pytest.raises(LimitError):
        store.read_blob(desc, max_bytes=MiB)


# -- manifests and tags ---------------------------------------------------------------------


def test_manifest_by_tag_and_by_digest_keeps_exact_bytes(store: RegistryStore) -> None:
    # Unusual spacing and key order: a re-serialising client would change the digest.
    raw = manifest_for(store, b"layer-1")
    data = raw.replace(b'"schemaVersion":2', b'"schemaVersion" :  2')
    digest = store.put_manifest(data, OCI_MANIFEST, tag="v1")
    assert digest == sha256_digest(data)
    by_tag = store.get_manifest("v1")
    by_digest = store.get_manifest(digest)
    assert by_tag.data == by_digest.data == data
    assert by_tag.digest == by_digest.digest == digest
    assert by_tag.media_type == OCI_MANIFEST


def test_resolve_gives_the_manifest_descriptor(store: RegistryStore) -> None:
    data = manifest_for(store, b"layer-2")
    digest = store.put_manifest(data, OCI_MANIFEST, tag="latest")
    assert store.resolve("latest") == Descriptor(OCI_MANIFEST, digest, len(data))
    assert store.resolve(digest) == Descriptor(OCI_MANIFEST, digest, len(data))


def test_manifest_put_without_tag_is_stored_by_digest(store: RegistryStore) -> None:
    data = manifest_for(store, b"layer-3")
    digest = store.put_manifest(data, OCI_MANIFEST)
    assert store.get_manifest(digest).data == data
    with pytest.raises(NotFoundError):
        store.list_tags()  # nothing was tagged, so the repository has no tags


def test_unknown_tag_is_not_found(store: RegistryStore) -> None:
    with pytest.raises(NotFoundError):
        store.get_manifest("missing")
    with pytest.raises(NotFoundError):
        store.resolve("missing")


def test_tampered_manifest_fetched_by_digest_is_refused(
    registry: registry_server.RegistryServer, store: RegistryStore
) -> None:
    data = manifest_for(store, b"layer-4")
    digest = store.put_manifest(data, OCI_MANIFEST, tag="t")
    registry.blob_path(digest).write_bytes(data.replace(b"layer", b"LAYER", 1) if b"layer" in data else data + b" ")
    with pytest.raises(IntegrityError):
        store.get_manifest(digest)


def test_manifest_over_the_limit_is_refused(repo: str) -> None:
    with make_store(repo) as store:
        big = manifest_for(store, b"x", annotations={"pad": "p" * 200_000})
        store.put_manifest(big, OCI_MANIFEST, tag="big")
    small = make_store(repo, limits=Limits(manifest_bytes=64 * 1024))
    with small, pytest.raises(LimitError, match="over the limit"):
        small.get_manifest("big")


def test_deleted_manifest_is_gone(store: RegistryStore) -> None:
    digest = store.put_manifest(manifest_for(store, b"layer-5"), OCI_MANIFEST, tag="gone")
    store.delete_manifest(digest)
    with pytest.raises(NotFoundError):
        store.get_manifest(digest)


def test_tags_are_listed_sorted_with_small_pages(store: RegistryStore) -> None:
    # distribution 2.8 ignores ?n= and sends no Link header, so this checks the request
    # shape and result; Link following itself is covered by test_link_header_next_target.
    data = manifest_for(store, b"layer-6")
    names = [f"t{i}" for i in range(7)]
    for name in reversed(names):
        store.put_manifest(data, OCI_MANIFEST, tag=name)
    assert store.list_tags(page_size=2) == sorted(names)


def test_open_store_gives_a_registry_store_speaking_http_on_loopback(repo: str) -> None:
    store = open_store(repo)
    assert isinstance(store, RegistryStore)
    assert store.base_url.startswith("http://127.0.0.1:")
    store.close()


def test_non_loopback_registry_defaults_to_https() -> None:
    with make_store("registry.example.com/a/b") as store:
        assert store.base_url == "https://registry.example.com"
    with make_store("registry.example.com/a/b", plain_http=True) as store:
        assert store.base_url == "http://registry.example.com"


# -- failures -------------------------------------------------------------------------------


def test_registry_that_never_answered_is_a_registry_error_without_retries() -> None:
    """Nothing listens there: retrying a refused connection would only delay the message."""
    port = registry_server.free_port()
    with make_store(f"127.0.0.1:{port}/x/y", retries=2, max_retry_time=5) as store:
        with pytest.raises(RegistryError, match=f"cannot reach 127.0.0.1:{port}: connection refused"):
            store.resolve("latest")
        assert store.stats.requests == 1


def test_referrers_api_absent_on_distribution_is_cached(store: RegistryStore) -> None:
    digest = sha256_digest(b"subject")
    requests = record_requests(store)
    assert store.referrers_api(digest) is None
    assert store.referrers_api(digest) is None
    assert len([p for _, p in requests if "/referrers/" in p]) == 1


# -- pure helpers ---------------------------------------------------------------------------


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_link_header_next_target() -> None:
    assert parse_next_link('</v2/a/tags/list?n=2&last=b>; rel="next"') == "/v2/a/tags/list?n=2&last=b"
    assert parse_next_link('<http://x/y>; rel="prev"') is None
    assert parse_next_link(None) is None


def test_upload_range_header_gives_bytes_held() -> None:
    assert parse_upload_range("0-1048575") == 1048576
    assert parse_upload_range("0-0") == 0
    assert parse_upload_range("bytes=0-9") == 10
    assert parse_upload_range("junk") is None


def test_location_keeps_existing_query_when_digest_is_added() -> None:
    url = with_digest("http://h/v2/r/blobs/uploads/u?_state=abc%3D", "sha256:" + "a" * 64)
    assert url == "http://h/v2/r/blobs/uploads/u?_state=abc%3D&digest=sha256:" + "a" * 64
    assert with_digest("http://h/u", "sha256:00").endswith("/u?digest=sha256:00")


def test_store_is_usable_as_context_manager_and_closes(repo: str) -> None:
    with make_store(repo) as store:
        pass
    with pytest.raises(RuntimeError):
        store.session.client.get(store.base_url + "/v2/")



def test_rehash_after_resume_matches_the_bytes_the_registry_holds(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(3 * MiB + 5)
    path = tmp_path / "r.bin"
    path.write_bytes(data)
    checkpoint_hasher = hashlib.sha256(data[: 1 * MiB])
    buf = bytearray(64 * 1024)
    changed = InputError("changed")
    with path.open("rb") as f:
        # The registry kept part of an interrupted chunk: ahead of our checkpoint.
        h = rehash(f, (1 * MiB, checkpoint_hasher), 2 * MiB + 17, "sha256", buf, changed)
        assert h.hexdigest() == hashlib.sha256(data[: 2 * MiB + 17]).hexdigest()
        assert f.tell() == 2 * MiB + 17
        # The registry lost data we thought confirmed: rebuilt from the start of the file.
        h = rehash(f, (2 * MiB, hashlib.sha256(data[: 2 * MiB])), 100, "sha256", buf, changed)
        assert h.hexdigest() == hashlib.sha256(data[:100]).hexdigest()
        assert f.tell() == 100
