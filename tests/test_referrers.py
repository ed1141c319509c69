"""Referrers on distribution (no referrers API): the fallback tag index, written and read."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from oci_model_sign.errors import InputError, LimitError, RegistryError
from oci_model_sign.limits import Limits
from oci_model_sign.oci.descriptor import Descriptor
from oci_model_sign.oci.mediatypes import (
    EMPTY_DIGEST,
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
)
from oci_model_sign.reference import fallback_tag, parse_reference
from oci_model_sign.store.base import BlobSource, StoreOptions
from oci_model_sign.store.referrers import attach_referrer, detach_referrer, list_referrers
from oci_model_sign.store.registry import RegistryStore

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def make_store(repo: str, **options: object) -> RegistryStore:
    return RegistryStore(parse_reference(repo), StoreOptions(**options))  # type: ignore[arg-type]


@pytest.fixture
def store(repo: str) -> Iterator[RegistryStore]:
    with make_store(repo) as s:
        yield s


def dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def push_subject(store: RegistryStore) -> Descriptor:
    store.push_blob(BlobSource(size=2, data=EMPTY_JSON))
    data = dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
            "layers": [],
        }
    )
    digest = store.put_manifest(data, OCI_MANIFEST, tag="v1")
    return Descriptor(OCI_MANIFEST, digest, len(data))


def referrer(store: RegistryStore, subject: Descriptor, payload: bytes, artifact_type: str | None = BUNDLE) -> bytes:
    layer = store.push_blob(BlobSource(size=len(payload), data=payload))
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": BUNDLE, "digest": layer.digest, "size": layer.size}],
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope", "n": payload.decode()},
        "subject": subject.to_json(),
    }
    if artifact_type:
        body["artifactType"] = artifact_type
    return dumps(body)


def test_attach_writes_the_fallback_index_with_type_and_annotations(store: RegistryStore) -> None:
    subject = push_subject(store)
    data = referrer(store, subject, b"one")
    digest = attach_referrer(store, data, OCI_MANIFEST)
    index = store.get_manifest(fallback_tag(subject.digest))
    assert index.media_type == OCI_INDEX
    content = json.loads(index.data)
    assert content["mediaType"] == OCI_INDEX
    assert content["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "size": len(data),
            "digest": digest,
            "annotations": {"dev.sigstore.bundle.content": "dsse-envelope", "n": "one"},
            "artifactType": BUNDLE,
        }
    ]
    assert store.get_manifest(digest).data == data


def test_listed_referrers_match_what_was_attached(store: RegistryStore) -> None:
    subject = push_subject(store)
    first = attach_referrer(store, referrer(store, subject, b"a"), OCI_MANIFEST)
    second = attach_referrer(store, referrer(store, subject, b"b"), OCI_MANIFEST)
    found = list_referrers(store, subject.digest)
    assert [d.digest for d in found] == [first, second]
    assert found[0].artifact_type == BUNDLE
    assert found[1].annotations == {"dev.sigstore.bundle.content": "dsse-envelope", "n": "b"}


def test_attaching_twice_keeps_one_entry(store: RegistryStore) -> None:
    subject = push_subject(store)
    data = referrer(store, subject, b"same")
    attach_referrer(store, data, OCI_MANIFEST)
    attach_referrer(store, data, OCI_MANIFEST)
    assert len(list_referrers(store, subject.digest)) == 1


def test_existing_entries_written_by_others_are_preserved(store: RegistryStore) -> None:
    subject = push_subject(store)
    other = referrer(store, subject, b"written by another tool")
    foreign = {
        "mediaType": OCI_MANIFEST,
        "size": len(other),
        "digest": store.put_manifest(other, OCI_MANIFEST),
        "artifactType": "application/x-other",
        "platform": {"os": "linux", "architecture": "amd64"},
    }
    store.put_manifest(
        dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [foreign]}),
        OCI_INDEX,
        tag=fallback_tag(subject.digest),
    )
    mine = attach_referrer(store, referrer(store, subject, b"x"), OCI_MANIFEST)
    entries = json.loads(store.get_manifest(fallback_tag(subject.digest)).data)["manifests"]
    assert entries[0] == foreign
    assert [e["digest"] for e in entries] == [foreign["digest"], mine]


def test_artifact_type_filter_is_client_side_and_keeps_cosign_mislabels(store: RegistryStore) -> None:
    subject = push_subject(store)
    bundle = attach_referrer(store, referrer(store, subject, b"b"), OCI_MANIFEST)
    # cosign <= 3.0.6 labels its bundle entries with the config media type.
    legacy = attach_referrer(store, referrer(store, subject, b"l", artifact_type=None), OCI_MANIFEST)
    other = attach_referrer(store, referrer(store, subject, b"o", artifact_type="application/x-sbom"), OCI_MANIFEST)
    assert [d.digest for d in list_referrers(store, subject.digest)] == [bundle, legacy, other]
    assert [d.digest for d in list_referrers(store, subject.digest, BUNDLE)] == [bundle, legacy]


def test_no_fallback_tag_means_no_referrers(store: RegistryStore) -> None:
    subject = push_subject(store)
    assert list_referrers(store, subject.digest) == []


def test_fallback_tag_that_is_not_an_index_means_no_referrers_and_is_not_overwritten(
    store: RegistryStore,
) -> None:
    subject = push_subject(store)
    manifest = store.get_manifest("v1")
    store.put_manifest(manifest.data, OCI_MANIFEST, tag=fallback_tag(subject.digest))
    assert list_referrers(store, subject.digest) == []
    with pytest.raises(RegistryError, match="not a referrers index"):
        attach_referrer(store, referrer(store, subject, b"z"), OCI_MANIFEST)


def test_referrer_without_subject_is_refused(store: RegistryStore) -> None:
    with pytest.raises(InputError, match="subject"):
        attach_referrer(store, dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}), OCI_MANIFEST)


def test_detach_removes_only_that_entry(store: RegistryStore) -> None:
    subject = push_subject(store)
    keep = attach_referrer(store, referrer(store, subject, b"k"), OCI_MANIFEST)
    drop = attach_referrer(store, referrer(store, subject, b"d"), OCI_MANIFEST)
    assert detach_referrer(store, subject.digest, drop)
    assert [d.digest for d in list_referrers(store, subject.digest)] == [keep]
    assert not detach_referrer(store, subject.digest, drop)


def test_too_many_referrers_is_a_limit_error(repo: str) -> None:
    with make_store(repo) as store:
        subject = push_subject(store)
        for payload in (b"1", b"2", b"3"):
            attach_referrer(store, referrer(store, subject, payload), OCI_MANIFEST)
    with make_store(repo, limits=Limits(referrers=2)) as small, pytest.raises(LimitError):
        list_referrers(small, subject.digest)


def test_concurrent_attachers_lose_no_referrer(repo: str) -> None:
    with make_store(repo) as setup:
        subject = push_subject(setup)
        manifests = {
            who: [referrer(setup, subject, f"{who}{i}".encode()) for i in range(5)] for who in ("a", "b")
        }
    attached: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def attach_all(who: str) -> None:
        try:
            with make_store(repo) as store:  # its own connections, like another process
                start.wait()
                attached[who] = [attach_referrer(store, m, OCI_MANIFEST) for m in manifests[who]]
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=attach_all, args=(who,)) for who in manifests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with make_store(repo) as check:
        listed = {d.digest for d in list_referrers(check, subject.digest)}
    assert listed == set(attached["a"]) | set(attached["b"])
    assert len(listed) == 10
