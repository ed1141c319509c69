"""Sign -> verify -> pull --verify on the real registry and on the layout store, key-based."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import TESTDATA
from tests.registry_server import RegistryServer
from tests.test_e2e_push_pull import assert_one_line_error, files_of, omsign

MODEL = TESTDATA / "tiny-model"
PASSWORD = {"COSIGN_PASSWORD": "test-password"}
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    for sub in ("a", "b"):
        (d / sub).mkdir()
        proc = omsign("generate-key-pair", "--dir", str(d / sub), env=PASSWORD)
        assert proc.returncode == 0, proc.stderr
    return d


def push_signed(model: Path, ref: str, keys: Path, *extra: str) -> str:
    proc = omsign("push", str(model), ref, "--json", "--sign", "--key", str(keys / "a" / "cosign.key"), "--no-tlog-upload", *extra, env=PASSWORD)
    assert proc.returncode == 0, proc.stderr
    return str(json.loads(proc.stdout)["digest"])


def verify_args(keys: Path, which: str = "a") -> list[str]:
    return ["--key", str(keys / which / "cosign.pub"), "--insecure-ignore-tlog"]


def test_sign_then_verify_then_pull_verify(base: str, model: Path, keys: Path, tmp_path: Path) -> None:
    ref = f"{base}:v1"
    digest = push_signed(model, ref, keys)
    checked = omsign("verify", ref, *verify_args(keys))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == digest
    dest = tmp_path / "out"
    pulled = omsign("pull", ref, str(dest), "--verify", *verify_args(keys))
    assert pulled.returncode == 0, pulled.stderr
    got = files_of(dest)
    assert "model.sig" in got
    del got["model.sig"]
    assert got == files_of(model)


def test_verify_json_reports_every_candidate(base: str, model: Path, keys: Path) -> None:
    ref = f"{base}:v1"
    push_signed(model, ref, keys)
    proc = omsign("verify", ref, *verify_args(keys), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    kinds = {c["kind"] for c in report["candidates"]}
    assert {"cosign-bundle", "model-signing-bundle"} <= kinds


def test_verify_without_policy_is_refused(base: str, model: Path, keys: Path) -> None:
    push_signed(model, f"{base}:v1", keys)
    assert_one_line_error(omsign("verify", f"{base}:v1"), 2)


def test_wrong_key_is_rejected_and_dest_untouched(base: str, model: Path, keys: Path, tmp_path: Path) -> None:
    ref = f"{base}:v1"
    push_signed(model, ref, keys)
    assert_one_line_error(omsign("verify", ref, *verify_args(keys, "b")), 8)
    dest = tmp_path / "out"
    assert_one_line_error(omsign("pull", ref, str(dest), "--verify", *verify_args(keys, "b")), 8)
    assert not dest.exists()


def test_unsigned_model_is_rejected(base: str, model: Path, keys: Path, tmp_path: Path) -> None:
    ref = f"{base}:v1"
    assert omsign("push", str(model), ref).returncode == 0
    dest = tmp_path / "out"
    assert_one_line_error(omsign("pull", ref, str(dest), "--verify", *verify_args(keys)), 8)
    assert not dest.exists()


def test_tag_moved_to_another_manifest_is_rejected(base: str, model: Path, keys: Path, tmp_path: Path) -> None:
    ref = f"{base}:v1"
    push_signed(model, ref, keys)
    (model / "config.json").write_text('{"swapped": true}\n')
    assert omsign("push", str(model), ref).returncode == 0  # same tag, unsigned manifest
    dest = tmp_path / "out"
    assert_one_line_error(omsign("pull", ref, str(dest), "--verify", *verify_args(keys)), 8)
    assert not dest.exists()


def test_annotation_mismatch_is_rejected(base: str, model: Path, keys: Path) -> None:
    ref = f"{base}:v1"
    push_signed(model, ref, keys, "-a", "stage=prod")
    assert omsign("verify", ref, *verify_args(keys), "-a", "stage=prod").returncode == 0
    assert_one_line_error(omsign("verify", ref, *verify_args(keys), "-a", "stage=dev"), 8)


def test_legacy_format_verifies(base: str, model: Path, keys: Path) -> None:
    ref = f"{base}:v1"
    assert omsign("push", str(model), ref).returncode == 0
    signed = omsign("sign", ref, "--key", str(keys / "a" / "cosign.key"), "--format", "legacy", "--no-model-signing-bundle", "--no-tlog-upload", env=PASSWORD)
    assert signed.returncode == 0, signed.stderr
    proc = omsign("verify", ref, *verify_args(keys), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accepted"]["kind"] == "legacy"


def test_second_signature_keeps_the_first(base: str, model: Path, keys: Path) -> None:
    ref = f"{base}:v1"
    push_signed(model, ref, keys)
    again = omsign("sign", ref, "--key", str(keys / "b" / "cosign.key"), "--no-tlog-upload", env=PASSWORD)
    assert again.returncode == 0, again.stderr
    assert omsign("verify", ref, *verify_args(keys, "a")).returncode == 0
    assert omsign("verify", ref, *verify_args(keys, "b")).returncode == 0


def test_pulled_model_verifies_with_model_signing_cli(repo: str, model: Path, keys: Path, tmp_path: Path) -> None:
    ref = f"{repo}:v1"
    push_signed(model, ref, keys)
    dest = tmp_path / "out"
    assert omsign("pull", ref, str(dest), "--verify", *verify_args(keys)).returncode == 0
    tool = shutil.which("model_signing") or str(Path(__import__("sys").executable).with_name("model_signing"))
    proc = subprocess.run(
        [tool, "verify", "key", str(dest), "--public_key", str(keys / "a" / "cosign.pub"), "--signature", str(dest / "model.sig")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert omsign("verify-local", str(dest), "--key", str(keys / "a" / "cosign.pub")).returncode == 0
    (dest / "config.json").write_text("{}")
    assert_one_line_error(omsign("verify-local", str(dest), "--key", str(keys / "a" / "cosign.pub")), 8)


def _registry_get(registry: RegistryServer, path: str, accept: str) -> httpx.Response:
    return httpx.get(f"{registry.url}{path}", headers={"Accept": accept}, timeout=10)


def test_referrer_manifest_and_fallback_index_have_cosign_shapes(
    registry: RegistryServer, repo: str, model: Path, keys: Path
) -> None:
    ref = f"{repo}:v1"
    digest = push_signed(model, ref, keys)
    name = repo.split("/", 1)[1]
    index = _registry_get(registry, f"/v2/{name}/manifests/sha256-{digest.split(':')[1]}", "application/vnd.oci.image.index.v1+json").json()
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    entries = {e["annotations"]["dev.sigstore.bundle.predicateType"]: e for e in index["manifests"]}
    assert set(entries) == {"https://sigstore.dev/cosign/sign/v1", "https://model_signing/signature/v1.0"}
    entry = entries["https://sigstore.dev/cosign/sign/v1"]
    assert entry["artifactType"] == BUNDLE_TYPE
    manifest = _registry_get(registry, f"/v2/{name}/manifests/{entry['digest']}", "application/vnd.oci.image.manifest.v1+json").json()
    assert list(manifest) == ["schemaVersion", "mediaType", "config", "layers", "annotations", "subject", "artifactType"]
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "size": 2,
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "artifactType": BUNDLE_TYPE,
    }
    assert manifest["subject"]["digest"] == digest
    assert manifest["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == BUNDLE_TYPE
    bundle = httpx.get(f"{registry.url}/v2/{name}/blobs/{layer['digest']}", timeout=10).json()
    assert list(bundle) == ["mediaType", "verificationMaterial", "dsseEnvelope"]
    assert "hint" in bundle["verificationMaterial"]["publicKey"]
    envelope = bundle["dsseEnvelope"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert [list(s) for s in envelope["signatures"]] == [["sig"]]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://sigstore.dev/cosign/sign/v1"
    assert statement["subject"] == [{"digest": {"sha256": digest.split(":")[1]}, "annotations": {}}]


def test_signature_copied_onto_another_model_is_rejected(
    registry: RegistryServer, model: Path, keys: Path, tmp_path: Path
) -> None:
    """A referrer whose bundle signs model A, attached to model B, must not admit B."""
    a_ref = f"{registry.host}/copy/a:v1"
    b_ref = f"{registry.host}/copy/b:v1"
    push_signed(model, a_ref, keys)
    (model / "config.json").write_text('{"other": 1}\n')
    b = omsign("push", str(model), b_ref, "--json")
    b_digest = json.loads(b.stdout)["digest"]
    from oci_model_sign.oci.mediatypes import COSIGN_SIGN_PREDICATE
    from oci_model_sign.reference import parse_reference
    from oci_model_sign.signing.attach import attach_bundle
    from oci_model_sign.store import open_store
    from oci_model_sign.store.referrers import list_referrers

    a_store = open_store(parse_reference(a_ref))
    a_digest = a_store.resolve("v1").digest
    [bundle_ref] = [r for r in list_referrers(a_store, a_digest) if (r.annotations or {}).get("dev.sigstore.bundle.predicateType") == COSIGN_SIGN_PREDICATE]
    manifest = json.loads(a_store.get_manifest(bundle_ref.digest).data)
    from oci_model_sign.oci.descriptor import Descriptor

    bundle = a_store.read_blob(Descriptor.from_json(manifest["layers"][0]), 1 << 20)
    b_store = open_store(parse_reference(b_ref))
    attach_bundle(b_store, b_store.resolve("v1"), bundle, COSIGN_SIGN_PREDICATE)
    dest = tmp_path / "out"
    proc = omsign("pull", b_ref, str(dest), "--verify", *verify_args(keys))
    assert_one_line_error(proc, 8)
    assert b_digest not in proc.stderr or "another" in proc.stderr or "sha256" in proc.stderr
    assert not dest.exists()


def test_tampered_layer_of_signed_model_is_refused(
    private_registry: RegistryServer, model: Path, keys: Path, tmp_path: Path
) -> None:
    registry, repo = private_registry, f"{private_registry.host}/tamper/model"
    ref = f"{repo}:v1"
    push_signed(model, ref, keys)
    info = json.loads(omsign("inspect", ref, "--json").stdout)
    victim = next(f for f in info["files"] if f["path"].endswith(".safetensors"))
    blob = registry.blob_path(victim["digest"])
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    dest = tmp_path / "out"
    assert_one_line_error(omsign("pull", ref, str(dest), "--verify", *verify_args(keys)), 7)
    assert not dest.exists()
