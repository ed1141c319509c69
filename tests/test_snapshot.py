"""``snapshot``: a verified, content-addressed model cache, against the real registry.

Blob requests are counted by a recording proxy in front of the registry (``proxy`` fixture):
what a snapshot downloads is what the registry was asked for.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import oci_model_sign as oms
import oci_model_sign.snapshot as snapshot_module
from oci_model_sign.errors import UsageError, VerificationError
from oci_model_sign.signing.signers import KeySigner
from oci_model_sign.snapshot import resolve_snapshot, snapshot
from oci_model_sign.verify.policy import KeyPolicy
from tests import helpers
from tests.faultproxy import FaultProxy
from tests.helpers import make_model

proxy = helpers.proxy


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One signing key for the module (cosign format, password ``pw``): signing is not under test."""
    from oci_model_sign.signing.keys import generate_key_pair

    return generate_key_pair(tmp_path_factory.mktemp("keys"), b"pw")

ROOT = Path(__file__).resolve().parent.parent


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def push_signed(model: Path, ref: str, key: Path) -> str:
    digest = str(oms.push(model, ref).digest)
    oms.sign(ref, KeySigner(key, b"pw"))
    return digest


def layer_gets(proxy: FaultProxy, model: Path) -> list[str]:
    """The blob GETs that fetched model files (bundles of signatures are blobs too)."""
    import hashlib

    digests = {"sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in model.rglob("*") if p.is_file()}
    return [r.path for r in proxy.log("GET", "/blobs/") if r.path.rsplit("/", 1)[-1] in digests]


@pytest.fixture
def signed(tmp_path: Path, proxy: FaultProxy, keypair: tuple[Path, Path]) -> tuple[Path, str, KeyPolicy, str]:
    """A model pushed and signed through the proxy: (folder, ref, policy, manifest digest)."""
    model = make_model(tmp_path / "model", {"model.safetensors": 300_000, "config.json": b'{"a": 1}\n',
                                            "sub/tokenizer.json": b'{"t": 2}\n'})
    ref = f"{proxy.host}/test/{uuid.uuid4().hex[:12]}:v1"
    digest = push_signed(model, ref, keypair[0])
    return model, ref, KeyPolicy(keypair[1], ignore_tlog=True), digest


def test_snapshot_holds_exactly_the_signed_files_under_the_digest(signed: tuple[Path, str, KeyPolicy, str]) -> None:
    model, ref, policy, digest = signed
    path = snapshot(ref, policy)
    assert files_of(path) == files_of(model)
    assert path.name == digest.split(":", 1)[1]
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "omsign" / "models"
    host, repo = ref.rsplit(":", 1)[0].split("/", 1)
    assert path == cache / host.replace(":", "_") / repo / "_snapshots" / path.name
    assert (path.parent.parent / "_refs" / "v1").read_text().strip() == digest


def test_a_second_snapshot_downloads_nothing(signed: tuple[Path, str, KeyPolicy, str], proxy: FaultProxy) -> None:
    model, ref, policy, _ = signed
    first = resolve_snapshot(ref, policy)
    assert sorted(first.fetched) == sorted(files_of(model))
    proxy.clear()
    second = resolve_snapshot(ref, policy)
    assert second.path == first.path
    assert second.fetched == [] and second.downloaded_bytes == 0
    assert layer_gets(proxy, model) == []
    assert proxy.log(None, "/manifests/v1"), "the tag is resolved again on every call"


def test_unchanged_cached_files_are_not_hashed_again(
    signed: tuple[Path, str, KeyPolicy, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ref, policy, _ = signed
    snapshot(ref, policy)
    hashed: list[str] = []
    real = snapshot_module.hash_file  # type: ignore[attr-defined]

    def counting(path: str, algorithm: str = "sha256") -> tuple[str, int]:
        hashed.append(path)
        return real(path, algorithm)

    monkeypatch.setattr(snapshot_module, "hash_file", counting)
    snapshot(ref, policy)
    assert hashed == []


def test_a_modified_cache_file_is_detected_and_fetched_again(
    signed: tuple[Path, str, KeyPolicy, str], proxy: FaultProxy
) -> None:
    model, ref, policy, _ = signed
    path = snapshot(ref, policy)
    weights = path / "model.safetensors"
    os.chmod(weights, 0o644)
    with open(weights, "r+b") as f:  # same size, one byte flipped: only the digest can tell
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    proxy.clear()
    again = resolve_snapshot(ref, policy)
    assert again.fetched == ["model.safetensors"]
    assert files_of(again.path) == files_of(model)
    assert len(layer_gets(proxy, model)) == 1


def test_a_cache_file_replaced_by_a_symlink_is_fetched_again(
    signed: tuple[Path, str, KeyPolicy, str], tmp_path: Path
) -> None:
    model, ref, policy, _ = signed
    path = snapshot(ref, policy)
    elsewhere = tmp_path / "evil.json"
    elsewhere.write_bytes((model / "config.json").read_bytes())  # even the right bytes
    (path / "config.json").unlink()
    (path / "config.json").symlink_to(elsewhere)
    again = resolve_snapshot(ref, policy)
    assert again.fetched == ["config.json"]
    assert not (again.path / "config.json").is_symlink()
    assert files_of(again.path) == files_of(model)


def test_a_deleted_cache_file_is_fetched_again(signed: tuple[Path, str, KeyPolicy, str]) -> None:
    model, ref, policy, _ = signed
    path = snapshot(ref, policy)
    (path / "sub" / "tokenizer.json").unlink()
    assert resolve_snapshot(ref, policy).fetched == ["sub/tokenizer.json"]
    assert files_of(path) == files_of(model)


def test_a_file_the_signature_does_not_name_is_removed(signed: tuple[Path, str, KeyPolicy, str]) -> None:
    model, ref, policy, _ = signed
    path = snapshot(ref, policy)
    (path / "pytorch_model.bin").write_bytes(b"unsigned weights a framework would pick up")
    assert files_of(snapshot(ref, policy)) == files_of(model)


def test_a_moved_tag_is_followed_on_the_next_call(
    signed: tuple[Path, str, KeyPolicy, str], keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    _, ref, policy, digest = signed
    first = snapshot(ref, policy)
    newer = make_model(tmp_path / "newer", {"model.safetensors": 1000})
    new_digest = push_signed(newer, ref, keypair[0])
    second = snapshot(ref, policy)
    assert new_digest != digest
    assert second.name == new_digest.split(":", 1)[1] != first.name
    assert files_of(second) == files_of(newer)


def test_an_unsigned_model_is_refused_and_nothing_is_cached(
    tmp_path: Path, proxy: FaultProxy, keypair: tuple[Path, Path]
) -> None:
    model = make_model(tmp_path / "model")
    ref = f"{proxy.host}/test/unsigned-{uuid.uuid4().hex[:8]}:v1"
    oms.push(model, ref)
    proxy.clear()
    with pytest.raises(VerificationError, match="no signature"):
        snapshot(ref, KeyPolicy(keypair[1], ignore_tlog=True), cache_dir=tmp_path / "cache")
    assert layer_gets(proxy, model) == []
    assert not list((tmp_path / "cache").rglob("_snapshots"))


def test_a_model_signed_by_another_key_is_refused(
    signed: tuple[Path, str, KeyPolicy, str], tmp_path: Path
) -> None:
    from oci_model_sign.signing.keys import generate_key_pair

    _, other = generate_key_pair(tmp_path, b"pw", prefix="other")
    _, ref, _, _ = signed
    with pytest.raises(VerificationError):
        snapshot(ref, KeyPolicy(other, ignore_tlog=True))


def test_no_policy_is_refused(signed: tuple[Path, str, KeyPolicy, str]) -> None:
    _, ref, _, _ = signed
    with pytest.raises(UsageError, match="no policy"):
        snapshot(ref)
    with pytest.raises(UsageError, match="allow_unsigned"):
        snapshot(ref, None)


def test_an_explicitly_unsigned_load_is_possible(tmp_path: Path, repo: str) -> None:
    model = make_model(tmp_path / "model")
    oms.push(model, f"{repo}:v1")
    path = snapshot(f"{repo}:v1", None, allow_unsigned=True)
    assert files_of(path) == files_of(model)


def test_concurrent_processes_share_one_complete_snapshot(
    signed: tuple[Path, str, KeyPolicy, str], tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    model, ref, _, _ = signed
    code = (
        "import sys; from oci_model_sign.snapshot import snapshot; "
        "from oci_model_sign.verify.policy import KeyPolicy; "
        "print(snapshot(sys.argv[1], KeyPolicy(sys.argv[2], ignore_tlog=True), cache_dir=sys.argv[3]))"
    )
    cache = tmp_path / "shared-cache"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, ref, str(keypair[1]), str(cache)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    paths = {out.strip() for out, _ in outs}
    assert len(paths) == 1
    assert files_of(Path(paths.pop())) == files_of(model)
    leftovers = [p.name for p in (cache.rglob(".omsign-*"))]
    assert leftovers == []


def test_a_pinned_digest_needs_no_tag(signed: tuple[Path, str, KeyPolicy, str]) -> None:
    model, ref, policy, digest = signed
    pinned = ref.rsplit(":", 1)[0] + "@" + digest
    assert files_of(snapshot(pinned, policy)) == files_of(model)


def test_a_model_in_an_oci_layout_is_snapshotted_too(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    model = make_model(tmp_path / "model")
    ref = f"oci:{tmp_path / 'store'}:v1"
    push_signed(model, ref, keypair[0])
    path = snapshot(ref, KeyPolicy(keypair[1], ignore_tlog=True))
    assert files_of(path) == files_of(model)
    assert "_layouts" in path.parts


def test_a_tampered_member_of_a_tar_layer_is_fetched_again(
    tmp_path: Path, proxy: FaultProxy, keypair: tuple[Path, Path]
) -> None:
    from oci_model_sign.model.pack import PackOptions

    model = make_model(tmp_path / "model", {"weights/a.bin": 5000, "weights/b.bin": 7000, "config.json": b"{}\n"})
    ref = f"{proxy.host}/test/tarred-{uuid.uuid4().hex[:8]}:v1"
    oms.push(model, ref, pack_options=PackOptions(pack_dirs=["weights"]))
    oms.sign(ref, KeySigner(keypair[0], b"pw"))
    policy = KeyPolicy(keypair[1], ignore_tlog=True)
    first = resolve_snapshot(ref, policy)
    assert files_of(first.path) == files_of(model)
    member = first.path / "weights" / "b.bin"
    os.chmod(member, 0o644)
    member.write_bytes(b"tampered")
    again = resolve_snapshot(ref, policy)
    assert again.fetched == ["weights"]  # the tar layer, from which only b.bin is taken
    assert files_of(again.path) == files_of(model)
    assert resolve_snapshot(ref, policy).fetched == []


def test_the_package_attribute_snapshot_is_callable(signed: tuple[Path, str, KeyPolicy, str]) -> None:
    import oci_model_sign.snapshot

    model, ref, policy, _ = signed
    assert files_of(oci_model_sign.snapshot(ref, policy)) == files_of(model)  # type: ignore[operator]


def test_rehash_hashes_every_cached_file_without_the_digest_cache(
    signed: tuple[Path, str, KeyPolicy, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, ref, policy, _ = signed
    snapshot(ref, policy)
    hashed: list[str] = []
    real = snapshot_module.hash_file  # type: ignore[attr-defined]

    def counting(path: str, algorithm: str = "sha256") -> tuple[str, int]:
        hashed.append(Path(path).name)
        return real(path, algorithm)

    monkeypatch.setattr(snapshot_module, "hash_file", counting)
    snapshot(ref, policy, rehash=True)
    assert sorted(hashed) == sorted(Path(p).name for p in files_of(model))
