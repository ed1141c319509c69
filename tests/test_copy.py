"""``omsign copy``: a signed model moves between stores with everything attached to it.

Real registries on both sides (one plain, one demanding credentials), real layouts, the real
CLI. What is asserted is what a promotion needs: the manifest digest is unchanged, ``verify``
and ``pull --verify`` pass at the destination with the same policy, every referrer (nested
ones too) and legacy signature arrives, and nothing reaches the destination when
``--verify`` fails.
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oci_model_sign.digest import sha256_digest
from oci_model_sign.errors import NotFoundError
from oci_model_sign.oci.mediatypes import (
    EMPTY_DIGEST,
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
)
from oci_model_sign.reference import fallback_tag, legacy_signature_tag, parse_reference
from oci_model_sign.store import open_store
from oci_model_sign.store.base import BlobSource, StoreOptions
from oci_model_sign.store.referrers import attach_referrers, list_referrers
from tests.faultproxy import Fault, FaultProxy, Rule
from tests.helpers import assert_cli_error, assert_ok, make_model, run_cli, start_cli
from tests.registry_server import RegistryServer
from tests.s3_registry import S3Registry
from tests.sigstore_local.fixture import SigstoreLocal

PASSWORD = {"COSIGN_PASSWORD": "test-password"}
SBOM_TYPE = "application/vnd.example.sbom.v1+json"
REVIEW_TYPE = "application/vnd.example.review.v1+json"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    for sub in ("a", "b"):
        (d / sub).mkdir()
        assert_ok(run_cli("generate-key-pair", "--dir", d / sub, env=PASSWORD))
    return d


def policy(keys: Path, which: str = "a") -> list[str]:
    return ["--key", str(keys / which / "cosign.pub"), "--insecure-ignore-tlog"]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def new_repo(server: RegistryServer) -> str:
    return f"{server.host}/copy/{uuid.uuid4().hex[:12]}"


def creds(server: RegistryServer) -> str:
    return f"{server.username}:{server.password}"


def options_for(server: RegistryServer | None) -> StoreOptions:
    if server is not None and server.username:
        return StoreOptions(username=server.username, password=server.password)
    return StoreOptions()


def push_and_sign(model: Path, ref: str, keys: Path, *, fmt: str = "both", extra: tuple[str, ...] = ()) -> str:
    pushed = run_cli("push", model, ref, "--json", *extra)
    assert_ok(pushed)
    digest = str(json.loads(pushed.stdout)["digest"])
    assert_ok(run_cli("sign", ref, "--key", keys / "a" / "cosign.key", "--no-tlog-upload", "--format", fmt, *extra, env=PASSWORD))
    return digest


def close_store(store: object) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


def referrer_manifest(subject: dict[str, Any], artifact_type: str, blob: bytes) -> bytes:
    value = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "size": len(EMPTY_JSON), "digest": EMPTY_DIGEST},
        "layers": [{"mediaType": "application/json", "size": len(blob), "digest": sha256_digest(blob)}],
        "subject": subject,
        "annotations": {"org.example.kind": artifact_type},
    }
    return json.dumps(value, separators=(",", ":")).encode()


def attach_attestations(ref: str, digest: str, options: StoreOptions | None = None) -> tuple[str, str]:
    """An SBOM-like referrer of the model, and a review referrer of that SBOM (two levels)."""
    store = open_store(parse_reference(ref), options or StoreOptions())
    try:
        desc = store.resolve(digest)
        store.push_blob(BlobSource(size=len(EMPTY_JSON), data=EMPTY_JSON, digest=EMPTY_DIGEST))
        sbom = json.dumps({"packages": [uuid.uuid4().hex]}).encode()
        store.push_blob(BlobSource(size=len(sbom), data=sbom, digest=sha256_digest(sbom)))
        sbom_manifest = referrer_manifest(desc.to_json(), SBOM_TYPE, sbom)
        (sbom_digest,) = attach_referrers(store, [(sbom_manifest, OCI_MANIFEST)])
        review = json.dumps({"approved": True, "id": uuid.uuid4().hex}).encode()
        store.push_blob(BlobSource(size=len(review), data=review, digest=sha256_digest(review)))
        sbom_desc = {"mediaType": OCI_MANIFEST, "size": len(sbom_manifest), "digest": sbom_digest}
        (review_digest,) = attach_referrers(store, [(referrer_manifest(sbom_desc, REVIEW_TYPE, review), OCI_MANIFEST)])
        return sbom_digest, review_digest
    finally:
        close_store(store)


def referrer_digests(ref: str, digest: str, options: StoreOptions | None = None) -> list[str]:
    store = open_store(parse_reference(ref), options or StoreOptions())
    try:
        return sorted(d.digest for d in list_referrers(store, digest))
    finally:
        close_store(store)


def raw_fallback_entries(ref: str, digest: str, options: StoreOptions | None = None) -> list[str]:
    store = open_store(parse_reference(ref), options or StoreOptions())
    try:
        data = store.get_manifest(fallback_tag(digest)).data
        return [m["digest"] for m in json.loads(data)["manifests"]]
    finally:
        close_store(store)


def legacy_layers(ref: str, digest: str, options: StoreOptions | None = None) -> list[str]:
    store = open_store(parse_reference(ref), options or StoreOptions())
    try:
        data = store.get_manifest(legacy_signature_tag(digest)).data
        return [x["digest"] for x in json.loads(data)["layers"]]
    finally:
        close_store(store)


# -- end to end ----------------------------------------------------------------------------------
def test_copy_between_registries_with_different_credentials_keeps_every_signature(
    registry: RegistryServer, auth_registry: RegistryServer, keys: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    dst = f"{new_repo(auth_registry)}:prod"
    digest = push_and_sign(model, src, keys)
    sbom, review = attach_attestations(src, digest)

    copied = run_cli("copy", src, dst, "--dest-creds", creds(auth_registry), "--json")
    assert_ok(copied)
    report = json.loads(copied.stdout)
    assert report["digest"] == digest
    assert report["referrers"] == 4  # cosign bundle, model-signing bundle, SBOM, review of the SBOM

    auth_env = {"OMSIGN_USERNAME": str(auth_registry.username), "OMSIGN_REGISTRY_PASSWORD": str(auth_registry.password)}
    checked = run_cli("verify", dst, *policy(keys), env=auth_env)
    assert_ok(checked)
    assert checked.stdout.strip() == digest
    dest = tmp_path / "pulled"
    assert_ok(run_cli("pull", "--verify", *policy(keys), dst, dest, env=auth_env))
    got = files_of(dest)
    assert "model.sig" in got
    del got["model.sig"]
    assert got == files_of(model)

    opts = options_for(auth_registry)
    assert sbom in referrer_digests(dst, digest, opts)
    assert referrer_digests(dst, sbom, opts) == [review]
    assert legacy_layers(dst, digest, opts) == legacy_layers(src, digest)


@pytest.mark.parametrize("pair", ["registry->layout", "layout->registry", "layout->layout"])
def test_copy_between_registry_and_layouts_keeps_digest_and_signatures(
    pair: str, registry: RegistryServer, keys: Path, tmp_path: Path
) -> None:
    def place(kind: str, name: str) -> str:
        return f"{new_repo(registry)}:v1" if kind == "registry" else f"oci:{tmp_path / name}:v1"

    first, second = pair.split("->")
    src, dst = place(first, "src"), place(second, "dst")
    model = make_model(tmp_path / "model")
    digest = push_and_sign(model, src, keys)
    sbom, review = attach_attestations(src, digest)

    assert_ok(run_cli("copy", src, dst))
    checked = run_cli("verify", dst, *policy(keys))
    assert_ok(checked)
    assert checked.stdout.strip() == digest
    dest = tmp_path / "pulled"
    assert_ok(run_cli("pull", "--verify", *policy(keys), dst, dest))
    assert files_of(dest)["model.safetensors"] == (model / "model.safetensors").read_bytes()
    assert referrer_digests(dst, digest) == referrer_digests(src, digest)
    assert referrer_digests(dst, sbom) == [review]


def test_copy_without_a_destination_tag_uses_the_source_tag(registry: RegistryServer, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:release-3"
    assert_ok(run_cli("push", model, src))
    dst_repo = new_repo(registry)
    assert_ok(run_cli("copy", src, dst_repo))
    listed = run_cli("ls", dst_repo)
    assert_ok(listed)
    assert listed.stdout.split() == ["release-3"]


def test_copy_tag_option_names_the_destination_tag(registry: RegistryServer, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    assert_ok(run_cli("push", model, src))
    dst = f"oci:{tmp_path / 'dst'}"
    assert_ok(run_cli("copy", src, dst, "--tag", "stable"))
    assert run_cli("ls", dst).stdout.split() == ["stable"]


def test_no_referrers_copies_only_the_model(registry: RegistryServer, keys: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    digest = push_and_sign(model, src, keys)
    dst = f"oci:{tmp_path / 'dst'}:v1"
    assert_ok(run_cli("copy", "--no-referrers", src, dst))
    assert referrer_digests(dst, digest) == []
    assert run_cli("ls", dst).stdout.split() == ["v1"]
    assert_cli_error(run_cli("verify", dst, *policy(keys)), 8)


def test_legacy_signatures_merge_with_those_already_at_the_destination(
    registry: RegistryServer, keys: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    dst = f"{new_repo(registry)}:v1"
    digest = push_and_sign(model, src, keys, fmt="legacy")
    # The destination already holds the model, signed there by another key.
    assert_ok(run_cli("copy", "--no-referrers", src, dst))
    assert_ok(run_cli("sign", dst, "--key", keys / "b" / "cosign.key", "--no-tlog-upload", "--format", "legacy", env=PASSWORD))
    before = legacy_layers(dst, digest)
    assert len(before) == 1

    assert_ok(run_cli("copy", src, dst))
    after = legacy_layers(dst, digest)
    assert len(after) == 2 and before[0] in after
    assert_ok(run_cli("verify", dst, *policy(keys, "a")))
    assert_ok(run_cli("verify", dst, *policy(keys, "b")))
    # Copying again adds nothing.
    assert_ok(run_cli("copy", src, dst))
    assert legacy_layers(dst, digest) == after


def test_copy_within_one_registry_mounts_every_blob(registry: RegistryServer, keys: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model", {"a.bin": 3_000_000, "b.bin": 1_000_000, "config.json": b"{}"})
    src = f"{new_repo(registry)}:v1"
    digest = push_and_sign(model, src, keys, fmt="bundle")
    copied = run_cli("copy", src, f"{new_repo(registry)}:v1", "--json", "--no-cache")
    assert_ok(copied)
    report = json.loads(copied.stdout)
    assert report["digest"] == digest
    assert report["copiedBytes"] == 0
    assert report["copiedBlobs"] == 0
    assert report["mountedBlobs"] + report["skippedBlobs"] == report["blobs"]
    assert report["mountedBlobs"] >= 4  # three files and the config at least


def test_blobs_already_at_the_destination_are_skipped(registry: RegistryServer, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    assert_ok(run_cli("push", model, src))
    dst = f"oci:{tmp_path / 'dst'}:v1"
    first = json.loads(run_cli("copy", src, dst, "--json").stdout)
    assert first["copiedBlobs"] == first["blobs"]
    again = json.loads(run_cli("copy", src, dst, "--json").stdout)
    assert again["copiedBlobs"] == 0 and again["skippedBlobs"] == again["blobs"]


# -- verified copy ------------------------------------------------------------------------------
def destination_is_empty(ref: str, options: StoreOptions | None = None) -> bool:
    listed = run_cli("ls", ref, *(["-u", options.username, "--password-stdin"] if options and options.username else []),
                     input=(options.password + "\n") if options and options.password else None)
    return listed.returncode == 6 or (listed.returncode == 0 and not listed.stdout.split())


def test_verified_copy_of_an_unsigned_model_writes_nothing(
    registry: RegistryServer, keys: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    assert_ok(run_cli("push", model, src))
    dst = f"{new_repo(registry)}:v1"
    result = run_cli("copy", "--verify", *policy(keys), src, dst)
    assert_cli_error(result, 8)
    assert destination_is_empty(dst)
    layout = tmp_path / "dst"
    assert_cli_error(run_cli("copy", "--verify", *policy(keys), src, f"oci:{layout}:v1"), 8)
    assert not layout.exists()


def test_verified_copy_signed_by_another_key_writes_nothing(
    registry: RegistryServer, keys: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    push_and_sign(model, src, keys)
    dst = f"{new_repo(registry)}:v1"
    assert_cli_error(run_cli("copy", "--verify", *policy(keys, "b"), src, dst), 8)
    assert destination_is_empty(dst)


def test_verified_copy_of_a_tampered_blob_leaves_no_model_at_the_destination(
    private_registry: RegistryServer, keys: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(private_registry)}:v1"
    push_and_sign(model, src, keys)
    weights = sha256_digest((model / "model.safetensors").read_bytes())
    path = private_registry.blob_path(weights)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    dst = tmp_path / "dst"
    result = run_cli("copy", "--verify", *policy(keys), src, f"oci:{dst}:v1")
    assert_cli_error(result, 7)
    assert run_cli("ls", f"oci:{dst}").stdout.split() == []
    assert not (dst / "blobs" / "sha256" / weights.split(":")[1]).exists()


def test_verified_copy_passes_and_reports_the_verification(
    registry: RegistryServer, keys: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    digest = push_and_sign(model, src, keys)
    result = run_cli("copy", "--verify", *policy(keys), src, f"oci:{tmp_path / 'dst'}:v1", "--json")
    assert_ok(result)
    report = json.loads(result.stdout)
    assert report["digest"] == digest and report["verification"]["ok"] is True


def wait_for_blobs(registry: RegistryServer, repository: str, digests: list[str], count: int) -> None:
    """Until ``count`` of ``digests`` are in ``repository`` (the copy is under way), at most 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        present = [d for d in digests if httpx.head(f"{registry.url}/v2/{repository}/blobs/{d}").status_code == 200]
        if len(present) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"the copy did not get {count} blobs across in 60 s")


def test_interrupted_copy_rerun_completes_without_duplicates(
    registry: RegistryServer, keys: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model", {f"shard-{i}.bin": 4_000_000 for i in range(4)})
    shards = [sha256_digest((model / f"shard-{i}.bin").read_bytes()) for i in range(4)]
    with FaultProxy(registry.url) as proxy:
        # The source is reached through a proxy (another host, so the copy streams rather than
        # mounts) that drips one shard slowly: the copy is surely mid-way when it is killed.
        src = f"{proxy.host}/copy/{uuid.uuid4().hex[:12]}:v1"
        digest = push_and_sign(model, src, keys)
        sbom, _ = attach_attestations(src, digest)
        proxy.add(Rule("GET", f"/blobs/{shards[3]}", Fault.DELAY, drip_bytes=64 * 1024, drip_interval=0.05))
        dst_repo = f"copy/{uuid.uuid4().hex[:12]}"
        dst = f"{registry.host}/{dst_repo}:v1"
        proc = start_cli("copy", src, dst, "-j", "1", "--no-cache")
        wait_for_blobs(registry, dst_repo, shards, 2)
        assert proc.poll() is None, "the copy finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert_cli_error(run_cli("verify", dst, *policy(keys)), 6)  # no tag yet: nothing half-promoted

        assert_ok(run_cli("copy", src, dst, "--no-cache"))
        assert_ok(run_cli("copy", src, dst, "--no-cache"))  # and once more: still nothing doubled
        assert_ok(run_cli("verify", dst, *policy(keys)))
        entries = raw_fallback_entries(dst, digest)
        assert len(entries) == len(set(entries)) == 3
        assert sorted(entries) == referrer_digests(src, digest)
        assert legacy_layers(dst, digest) == legacy_layers(src, digest)
        assert len(raw_fallback_entries(dst, sbom)) == 1
        dest = tmp_path / "pulled"
        assert_ok(run_cli("pull", "--verify", *policy(keys), dst, dest))
        assert files_of(dest)["shard-3.bin"] == (model / "shard-3.bin").read_bytes()


def test_copy_with_a_wrong_destination_digest_is_a_usage_error(registry: RegistryServer, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    assert_ok(run_cli("push", model, src))
    wrong = "sha256:" + "0" * 64
    assert_cli_error(run_cli("copy", src, f"{new_repo(registry)}@{wrong}"), 2, "digest")


# -- both referrer discovery modes ----------------------------------------------------------------
class ReferrersFront(FaultProxy):
    """distribution 2.8 with the OCI 1.1 referrers API added in front of it.

    ``GET /v2/<repo>/referrers/<digest>`` is answered from the registry's own storage (every
    manifest revision of the repository whose ``subject`` names the digest), the way a
    registry with the API computes it; everything else passes through to the real registry.
    """

    def __init__(self, server: RegistryServer) -> None:
        super().__init__(server.url)
        self.server = server

    def _index(self, repository: str, digest: str) -> bytes:
        revisions = self.server.root / "docker/registry/v2/repositories" / repository / "_manifests/revisions/sha256"
        found: list[dict[str, Any]] = []
        for link in sorted(revisions.glob("*/link")) if revisions.is_dir() else []:
            candidate = link.read_text().strip()
            data = self.server.blob_path(candidate).read_bytes()
            value = json.loads(data)
            subject = value.get("subject") if isinstance(value, dict) else None
            if not isinstance(subject, dict) or subject.get("digest") != digest:
                continue
            entry: dict[str, Any] = {"mediaType": value.get("mediaType", OCI_MANIFEST), "digest": candidate, "size": len(data)}
            artifact_type = value.get("artifactType") or value.get("config", {}).get("mediaType")
            if artifact_type:
                entry["artifactType"] = artifact_type
            if value.get("annotations"):
                entry["annotations"] = value["annotations"]
            found.append(entry)
        return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}).encode()

    def _pick(self, method: str, path: str) -> Rule | None:
        match = re.match(r"^/v2/(.+)/referrers/(sha256:[a-f0-9]{64})", path)
        if match and method.upper() == "GET":
            body = self._index(match.group(1), match.group(2))
            return Rule("GET", ".", Fault.SERVE, status=200, headers={"Content-Type": OCI_INDEX}, body=body)
        return super()._pick(method, path)


@pytest.fixture
def api_registry(registry: RegistryServer) -> Iterator[ReferrersFront]:
    front = ReferrersFront(registry)
    front.start()
    yield front
    front.stop()


def has_fallback_tag(ref: str, digest: str) -> bool:
    store = open_store(parse_reference(ref), StoreOptions())
    try:
        store.resolve(fallback_tag(digest))
        return True
    except NotFoundError:
        return False
    finally:
        close_store(store)


def test_referrers_found_through_the_api_are_written_as_a_fallback_index_and_back(
    api_registry: ReferrersFront, registry: RegistryServer, keys: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    src = f"{api_registry.host}/copy/{uuid.uuid4().hex[:12]}:v1"
    digest = push_and_sign(model, src, keys, fmt="bundle")
    sbom, review = attach_attestations(src, digest)
    assert not has_fallback_tag(src, digest)  # the source speaks the referrers API only

    middle = f"{new_repo(registry)}:v1"
    assert_ok(run_cli("copy", src, middle))
    assert has_fallback_tag(middle, digest)  # no API here: the tag schema
    assert referrer_digests(middle, digest) == referrer_digests(src, digest)
    assert_ok(run_cli("verify", middle, *policy(keys)))

    back = f"{api_registry.host}/copy/{uuid.uuid4().hex[:12]}:v1"
    assert_ok(run_cli("copy", middle, back))
    assert not has_fallback_tag(back, digest)
    assert referrer_digests(back, digest) == referrer_digests(src, digest)
    assert referrer_digests(back, sbom) == [review]
    dest = tmp_path / "pulled"
    assert_ok(run_cli("pull", "--verify", *policy(keys), back, dest))
    assert files_of(dest)["model.safetensors"] == (model / "model.safetensors").read_bytes()


# -- keyless ----------------------------------------------------------------------------------------
def test_keyless_signed_model_verifies_after_copy_with_the_same_identity_policy(
    registry: RegistryServer, auth_registry: RegistryServer, sigstore_local: SigstoreLocal, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    dst = f"{new_repo(auth_registry)}:v1"
    assert_ok(run_cli("push", model, src))
    token = sigstore_local.token("alice@example.com", "https://issuer.example.com")
    assert_ok(run_cli("sign", src, "--trust-config", sigstore_local.trust_config, "--identity-token", token))
    identity = [
        "--trust-config", str(sigstore_local.trust_config),
        "--certificate-identity", "alice@example.com",
        "--certificate-oidc-issuer", "https://issuer.example.com",
    ]
    assert_ok(run_cli("copy", "--verify", *identity, src, dst, "--dest-creds", creds(auth_registry)))
    auth_env = {"OMSIGN_USERNAME": str(auth_registry.username), "OMSIGN_REGISTRY_PASSWORD": str(auth_registry.password)}
    assert_ok(run_cli("verify", dst, *identity, env=auth_env))
    wrong = [*identity[:3], "mallory@example.com", *identity[4:]]
    assert_cli_error(run_cli("copy", "--verify", *wrong, src, f"oci:{tmp_path / 'never'}:v1"), 8)
    assert not (tmp_path / "never").exists()


# -- tag and ls -------------------------------------------------------------------------------------
def test_tag_adds_a_tag_without_any_blob_traffic(registry: RegistryServer, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    with FaultProxy(registry.url) as proxy:
        repo = f"{proxy.host}/copy/{uuid.uuid4().hex[:12]}"
        assert_ok(run_cli("push", model, f"{repo}:v1"))
        proxy.clear()
        tagged = run_cli("tag", f"{repo}:v1", "stable", "--json")
        assert_ok(tagged)
        assert not proxy.log(path=r"/blobs/")
        digest = json.loads(tagged.stdout)["digest"]
        assert run_cli("ls", repo).stdout.split() == ["stable", "v1"]
        assert run_cli("inspect", f"{repo}:stable", "--json").stdout.count(digest) >= 1


@pytest.mark.parametrize("kind", ["oci", "oci-archive"])
def test_tag_works_on_layouts_and_archives(kind: str, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    where = f"{kind}:{tmp_path / ('store.tar' if kind == 'oci-archive' else 'store')}"
    assert_ok(run_cli("push", model, f"{where}:v1"))
    assert_ok(run_cli("tag", f"{where}:v1", "prod"))
    assert run_cli("ls", where).stdout.split() == ["prod", "v1"]


def test_ls_follows_every_page_of_the_tag_list(registry: RegistryServer) -> None:
    # distribution 2.8 sends every tag at once; a registry that pages (GHCR, Harbor) sends a
    # Link header, played here by the proxy in front of the real registry.
    with FaultProxy(registry.url) as proxy:
        name = f"copy/{uuid.uuid4().hex[:12]}"
        first = json.dumps({"name": name, "tags": ["a", "c"]}).encode()
        second = json.dumps({"name": name, "tags": ["b"]}).encode()
        proxy.add(Rule("GET", r"/tags/list\?n=2$", Fault.SERVE, status=200, body=first, headers={
            "Content-Type": "application/json", "Link": f'</v2/{name}/tags/list?n=2&last=c>; rel="next"'}))
        proxy.add(Rule("GET", r"/tags/list\?n=2&last=c$", Fault.SERVE, status=200, body=second,
                       headers={"Content-Type": "application/json"}))
        listed = run_cli("ls", f"{proxy.host}/{name}", "--page-size", "2", "--json")
        assert_ok(listed)
        assert json.loads(listed.stdout)["tags"] == ["a", "b", "c"]
        assert len(proxy.log("GET", r"/tags/list")) == 2


def test_ls_of_a_missing_repository_is_not_found(registry: RegistryServer) -> None:
    assert_cli_error(run_cli("ls", new_repo(registry)), 6)


def test_tag_refuses_an_invalid_tag_before_any_traffic(registry: RegistryServer) -> None:
    assert_cli_error(run_cli("tag", f"{new_repo(registry)}:v1", "no/slashes"), 2, "invalid tag")


def test_connections_reset_on_both_sides_of_a_copy_are_absorbed(
    registry: RegistryServer, private_registry: RegistryServer, keys: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model", {"weights.bin": 20_000_000, "config.json": b"{}"})
    with FaultProxy(registry.url) as src_proxy, FaultProxy(private_registry.url) as dst_proxy:
        src = f"{src_proxy.host}/copy/{uuid.uuid4().hex[:12]}:v1"
        digest = push_and_sign(model, src, keys)
        weights = sha256_digest((model / "weights.bin").read_bytes())
        src_proxy.add(Rule("GET", f"/blobs/{weights}", Fault.RESET_RESPONSE, after=3_000_000))
        dst_proxy.add(Rule("PATCH", r"/blobs/uploads/", Fault.RESET_REQUEST, after=2_000_000))
        dst = f"{dst_proxy.host}/copy/{uuid.uuid4().hex[:12]}:v1"
        copied = run_cli("copy", src, dst, "--json")
        assert_ok(copied)
        assert json.loads(copied.stdout)["digest"] == digest
        assert src_proxy.rules[0].fired == 1 and dst_proxy.rules[0].fired == 1
        dest = tmp_path / "pulled"
        assert_ok(run_cli("pull", "--verify", *policy(keys), dst, dest))
        assert files_of(dest)["weights.bin"] == (model / "weights.bin").read_bytes()


# -- a registry on object storage, redirecting blob downloads ----------------------------------------
@pytest.fixture(scope="module")
def s3_registry() -> Iterator[S3Registry]:
    from tests import s3_registry as s3

    if not s3.available():
        pytest.skip("moto[server] or docker-registry missing")
    server = s3.start()
    yield server
    server.stop()


def presigned(storage: FaultProxy) -> list[dict[str, str]]:
    """Headers of the requests that followed a registry redirect (signature in the URL)."""
    return [r.headers for r in storage.log() if "X-Amz-Signature=" in r.path]


def test_push_pull_and_copy_follow_storage_redirects_without_sending_registry_credentials(
    s3_registry: S3Registry, registry: RegistryServer, keys: Path, tmp_path: Path
) -> None:
    s3 = s3_registry.server
    env = {"OMSIGN_USERNAME": str(s3.username), "OMSIGN_REGISTRY_PASSWORD": str(s3.password)}
    model = make_model(tmp_path / "model", {"weights.bin": 1_000_000, "config.json": b"{}"})
    ref = f"{new_repo(s3)}:v1"
    pushed = run_cli("push", model, ref, "--json", env=env)
    assert_ok(pushed)
    digest = json.loads(pushed.stdout)["digest"]
    assert_ok(run_cli("sign", ref, "--key", keys / "a" / "cosign.key", "--no-tlog-upload", env={**env, **PASSWORD}))
    s3_registry.storage.clear()

    dest = tmp_path / "pulled"
    assert_ok(run_cli("pull", "--verify", *policy(keys), ref, dest, env=env))
    assert files_of(dest)["weights.bin"] == (model / "weights.bin").read_bytes()
    plain = f"{new_repo(registry)}:v1"
    assert_ok(run_cli("copy", ref, plain, "--src-creds", creds(s3)))  # S3 -> registry
    back = f"{new_repo(s3)}:v1"
    assert_ok(run_cli("copy", plain, back, "--dest-creds", creds(s3)))  # registry -> S3
    checked = run_cli("verify", back, *policy(keys), env=env)
    assert_ok(checked)
    assert checked.stdout.strip() == digest

    followed = presigned(s3_registry.storage)
    assert len(followed) >= 4  # the blobs of a pull and of a copy came from the storage host
    assert not [h for h in followed if "authorization" in h]


def test_a_listed_referrer_that_is_gone_is_left_behind_with_a_note(
    registry: RegistryServer, keys: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    digest = push_and_sign(model, src, keys, fmt="bundle")
    sbom, _ = attach_attestations(src, digest)
    store = open_store(parse_reference(src), StoreOptions())
    try:
        store.delete_manifest(sbom)  # the fallback index still lists it
    finally:
        close_store(store)
    dst = f"oci:{tmp_path / 'dst'}:v1"
    copied = run_cli("copy", src, dst, "--json")
    assert_ok(copied)
    report = json.loads(copied.stdout)
    assert any(sbom in note for note in report["notes"])
    assert sbom not in referrer_digests(dst, digest)
    assert_ok(run_cli("verify", dst, *policy(keys)))
