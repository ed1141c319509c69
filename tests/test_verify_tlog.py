"""Key signatures in the transparency log: uploaded by default (like cosign), verified without
``--insecure-ignore-tlog``, against the local Sigstore services (Rekor v1) and the real registry.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from oci_model_sign.oci.descriptor import Descriptor
from oci_model_sign.oci.mediatypes import COSIGN_SIGN_PREDICATE
from oci_model_sign.signing.attach import attach_bundle
from oci_model_sign.store import open_store
from oci_model_sign.store.base import StoreOptions
from tests.pki import make_test_ca
from tests.sigstore_local.fixture import SigstoreLocal
from tests.test_e2e_push_pull import assert_one_line_error, omsign

PASSWORD = {"COSIGN_PASSWORD": "test-password"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tlog-keys")
    proc = omsign("generate-key-pair", "--dir", str(d), env=PASSWORD)
    assert proc.returncode == 0, proc.stderr
    return d / "cosign.key", d / "cosign.pub"


def _push(model: Path, ref: str) -> dict[str, object]:
    proc = omsign("push", str(model), ref, "--json")
    assert proc.returncode == 0, proc.stderr
    value: dict[str, object] = json.loads(proc.stdout)
    return value


def _sign(ref: str, key: Path, services: SigstoreLocal, *extra: str) -> None:
    proc = omsign("sign", ref, "--key", str(key), "--trust-config", str(services.trust_config), *extra, env=PASSWORD)
    assert proc.returncode == 0, proc.stderr


def test_key_signature_is_logged_by_default_and_verifies_without_the_insecure_flag(
    repo: str, model: Path, keypair: tuple[Path, Path], sigstore_local: SigstoreLocal, tmp_path: Path
) -> None:
    ref = f"{repo}:v1"
    _push(model, ref)
    bundle_path = tmp_path / "cosign.bundle"
    _sign(ref, keypair[0], sigstore_local, "--output-bundle", str(bundle_path))
    entries = json.loads(bundle_path.read_bytes())["verificationMaterial"]["tlogEntries"]
    assert len(entries) == 1
    assert entries[0]["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    assert entries[0]["inclusionPromise"]["signedEntryTimestamp"]
    assert entries[0]["inclusionProof"]["checkpoint"]["envelope"]
    verified = omsign("verify", ref, "--key", str(keypair[1]), "--trust-config", str(sigstore_local.trust_config))
    assert verified.returncode == 0, verified.stderr
    pulled = omsign(
        "pull", ref, str(tmp_path / "out"), "--verify", "--key", str(keypair[1]),
        "--trust-config", str(sigstore_local.trust_config),
    )
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "out" / "model.sig").is_file()


def test_logged_legacy_signature_carries_the_rekor_bundle_and_verifies(
    repo: str, model: Path, keypair: tuple[Path, Path], sigstore_local: SigstoreLocal
) -> None:
    ref = f"{repo}:v1"
    _push(model, ref)
    _sign(ref, keypair[0], sigstore_local, "--format", "legacy")
    proc = omsign("verify", ref, "--key", str(keypair[1]), "--trust-config", str(sigstore_local.trust_config), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accepted"]["kind"] == "legacy"


def test_no_tlog_upload_opts_out_and_then_verify_needs_the_insecure_flag(
    repo: str, model: Path, keypair: tuple[Path, Path], sigstore_local: SigstoreLocal
) -> None:
    ref = f"{repo}:v1"
    _push(model, ref)
    _sign(ref, keypair[0], sigstore_local, "--no-tlog-upload")
    refused = omsign("verify", ref, "--key", str(keypair[1]), "--trust-config", str(sigstore_local.trust_config))
    assert_one_line_error(refused, 8)
    assert "--insecure-ignore-tlog" in refused.stderr
    allowed = omsign("verify", ref, "--key", str(keypair[1]), "--insecure-ignore-tlog")
    assert allowed.returncode == 0, allowed.stderr


def test_log_entry_from_a_log_the_verifier_does_not_trust_is_refused(
    repo: str, model: Path, keypair: tuple[Path, Path], sigstore_local: SigstoreLocal
) -> None:
    """Logged in the local Rekor, verified against the public-good root: the SET's log is unknown."""
    ref = f"{repo}:v1"
    _push(model, ref)
    _sign(ref, keypair[0], sigstore_local)
    refused = omsign("verify", ref, "--key", str(keypair[1]))
    assert_one_line_error(refused, 8)
    assert "not in the trusted root" in refused.stderr


@pytest.mark.parametrize("tamper", ["inclusion-proof", "set", "no-proof"])
def test_tampered_log_entry_is_refused(
    tamper: str, repo: str, model: Path, keypair: tuple[Path, Path], sigstore_local: SigstoreLocal, tmp_path: Path
) -> None:
    """The attacker controls the registry: a real logged bundle with its proof or SET altered,
    attached to a model signed by nobody else, must not admit it."""
    template_ref = f"{repo}-template:v1"
    template = _push(model, template_ref)
    bundle_path = tmp_path / "cosign.bundle"
    _sign(template_ref, keypair[0], sigstore_local, "--output-bundle", str(bundle_path), "--no-model-signing-bundle")
    doc = json.loads(bundle_path.read_bytes())
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    if tamper == "inclusion-proof":
        proof = entry["inclusionProof"]
        proof["rootHash"] = base64.b64encode(b"\x00" * 32).decode()
    elif tamper == "set":
        sig = bytearray(base64.b64decode(entry["inclusionPromise"]["signedEntryTimestamp"]))
        sig[-1] ^= 1
        entry["inclusionPromise"]["signedEntryTimestamp"] = base64.b64encode(bytes(sig)).decode()
    else:
        del entry["inclusionProof"]
    # Same signed statement, so the subject is the template's manifest: attach it there again
    # (as the only signature) after removing the honest one.
    target_ref = f"{repo}-target:v1"
    pushed = _push(model, target_ref)
    assert pushed["digest"] == template["digest"]  # the same folder packs to the same manifest
    store = open_store(target_ref, StoreOptions())
    try:
        subject = Descriptor(OCI_MANIFEST, str(pushed["digest"]), int(str(pushed["size"])))
        attach_bundle(store, subject, json.dumps(doc).encode(), COSIGN_SIGN_PREDICATE)
    finally:
        store.close()  # type: ignore[attr-defined]
    refused = omsign("verify", target_ref, "--key", str(keypair[1]), "--trust-config", str(sigstore_local.trust_config))
    assert_one_line_error(refused, 8)
    # Without a proof the bundle does not even parse as v0.3 (the proof is required there).
    assert ("malformed bundle" if tamper == "no-proof" else "transparency log") in refused.stderr


def test_certificate_signature_is_logged_and_verifies_against_ca_roots_without_the_insecure_flag(
    repo: str, model: Path, sigstore_local: SigstoreLocal, tmp_path: Path
) -> None:
    pki = make_test_ca(tmp_path / "pki")
    ref = f"{repo}:v1"
    _push(model, ref)
    signed = omsign(
        "sign", ref, "--key", str(pki.leaf_key_path), "--certificate", str(pki.leaf_path),
        "--certificate-chain", str(pki.intermediate_path), "--trust-config", str(sigstore_local.trust_config),
    )
    assert signed.returncode == 0, signed.stderr
    proc = omsign(
        "verify", ref, "--ca-roots", str(pki.root_path), "--certificate-chain", str(pki.intermediate_path),
        "--certificate-identity", "signer@example.com", "--certificate-oidc-issuer-regexp", ".*",
        "--trust-config", str(sigstore_local.trust_config),
    )
    assert proc.returncode == 0, proc.stderr


def test_unreachable_rekor_fails_the_signing_with_a_hint_and_attaches_nothing(
    repo: str, model: Path, keypair: tuple[Path, Path], sigstore_local: SigstoreLocal, tmp_path: Path
) -> None:
    config = json.loads(sigstore_local.trust_config.read_text())
    for service in config["signingConfig"]["rekorTlogUrls"]:
        service["url"] = "http://127.0.0.1:9"  # discard port: nothing listens
    broken = tmp_path / "trust_config.json"
    broken.write_text(json.dumps(config))
    ref = f"{repo}:v1"
    _push(model, ref)
    proc = omsign("sign", ref, "--key", str(keypair[0]), "--trust-config", str(broken), env=PASSWORD)
    assert_one_line_error(proc, 4)
    assert "--no-tlog-upload" in proc.stderr
    inspected = omsign("inspect", ref, "--json")
    assert json.loads(inspected.stdout)["referrers"] == []


def test_a_keyless_entry_without_a_set_gives_no_legacy_annotation_so_legacy_signing_refuses(
    sigstore_local: SigstoreLocal,
) -> None:
    """A Rekor v2 entry has no signed entry timestamp: cosign's legacy verifier could not check
    it offline, so ``KeylessSigner.sign_simple`` refuses when this returns None."""
    from sigstore.models import Bundle, ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    from oci_model_sign.signing.keyless import rekor_bundle_annotation

    cfg = ClientTrustConfig.from_json(sigstore_local.trust_config.read_text())
    with SigningContext.from_trust_config(cfg).signer(IdentityToken(sigstore_local.token())) as signer:
        bundle = signer.sign_artifact(b"payload")
    assert rekor_bundle_annotation(bundle) is not None  # Rekor v1: a SET, an annotation
    doc = json.loads(bundle.to_json())
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    del entry["inclusionPromise"]
    entry.pop("integratedTime", None)
    assert rekor_bundle_annotation(Bundle.from_json(json.dumps(doc))) is None


def test_keyless_legacy_signing_with_a_rekor_v2_log_is_refused_before_anything_is_attached(
    repo: str, model: Path, sigstore_local: SigstoreLocal, tmp_path: Path
) -> None:
    config = json.loads(sigstore_local.trust_config.read_text())
    for service in config["signingConfig"]["rekorTlogUrls"]:
        service["majorApiVersion"] = 2
    v2 = tmp_path / "trust_config_rekor_v2.json"
    v2.write_text(json.dumps(config))
    ref = f"{repo}:v1"
    _push(model, ref)
    proc = omsign(
        "sign", ref, "--format", "legacy", "--trust-config", str(v2),
        "--identity-token", sigstore_local.token(),
    )
    assert_one_line_error(proc, 2)
    assert "Rekor v1" in proc.stderr
    inspected = json.loads(omsign("inspect", ref, "--json").stdout)
    assert inspected["legacySignatures"] == 0
    assert inspected["referrers"] == []
