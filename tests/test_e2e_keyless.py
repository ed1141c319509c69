"""Keyless (local Sigstore services), certificate chains and sigstore-js as a peer, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import TESTDATA
from tests.pki import make_test_ca
from tests.registry_server import RegistryServer
from tests.sigstore_local.fixture import SigstoreLocal, sigstore_js_attach
from tests.test_e2e_push_pull import assert_one_line_error, files_of, omsign

MODEL = TESTDATA / "tiny-model"
ALICE = "alice@example.com"
ISSUER = "https://issuer.example.com"


def keyless_sign(ref: str, services: SigstoreLocal, identity: str = ALICE, issuer: str = ISSUER, *extra: str) -> None:
    proc = omsign(
        "sign", ref, "--trust-config", str(services.trust_config),
        "--identity-token", services.token(identity, issuer), *extra,
    )
    assert proc.returncode == 0, proc.stderr


def identity_policy(services: SigstoreLocal, identity: str = ALICE, issuer: str = ISSUER) -> list[str]:
    return [
        "--trust-config", str(services.trust_config),
        "--certificate-identity", identity,
        "--certificate-oidc-issuer", issuer,
    ]


def test_keyless_sign_then_pull_verify_with_identity_and_issuer(
    base: str, model: Path, sigstore_local: SigstoreLocal, tmp_path: Path
) -> None:
    ref = f"{base}:v1"
    assert omsign("push", str(model), ref).returncode == 0
    keyless_sign(ref, sigstore_local)
    dest = tmp_path / "out"
    pulled = omsign("pull", ref, str(dest), "--verify", *identity_policy(sigstore_local))
    assert pulled.returncode == 0, pulled.stderr
    got = files_of(dest)
    assert got.pop("model.sig")
    assert got == files_of(model)


def test_keyless_identity_regexp_matches(base: str, model: Path, sigstore_local: SigstoreLocal) -> None:
    ref = f"{base}:v1"
    assert omsign("push", str(model), ref).returncode == 0
    keyless_sign(ref, sigstore_local)
    proc = omsign(
        "verify", ref, "--trust-config", str(sigstore_local.trust_config),
        "--certificate-identity-regexp", r"^alice@example\.com$",
        "--certificate-oidc-issuer-regexp", r"^https://issuer\.example\.",
    )
    assert proc.returncode == 0, proc.stderr


def test_keyless_another_identity_is_rejected(base: str, model: Path, sigstore_local: SigstoreLocal, tmp_path: Path) -> None:
    ref = f"{base}:v1"
    assert omsign("push", str(model), ref).returncode == 0
    keyless_sign(ref, sigstore_local)
    dest = tmp_path / "out"
    proc = omsign("pull", ref, str(dest), "--verify", *identity_policy(sigstore_local, identity="mallory@example.com"))
    assert_one_line_error(proc, 8)
    assert not dest.exists()


def test_keyless_another_issuer_is_rejected(base: str, model: Path, sigstore_local: SigstoreLocal) -> None:
    ref = f"{base}:v1"
    assert omsign("push", str(model), ref).returncode == 0
    keyless_sign(ref, sigstore_local)
    proc = omsign("verify", ref, *identity_policy(sigstore_local, issuer="https://evil.example.com"))
    assert_one_line_error(proc, 8)


def test_keyless_signature_by_another_identity_is_rejected(base: str, model: Path, sigstore_local: SigstoreLocal) -> None:
    ref = f"{base}:v1"
    assert omsign("push", str(model), ref).returncode == 0
    keyless_sign(ref, sigstore_local, "mallory@example.com")
    assert_one_line_error(omsign("verify", ref, *identity_policy(sigstore_local)), 8)


def test_keyless_legacy_format_verifies(base: str, model: Path, sigstore_local: SigstoreLocal) -> None:
    ref = f"{base}:v1"
    assert omsign("push", str(model), ref).returncode == 0
    keyless_sign(ref, sigstore_local, ALICE, ISSUER, "--format", "legacy", "--no-model-signing-bundle")
    proc = omsign("verify", ref, *identity_policy(sigstore_local), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accepted"]["kind"] == "legacy"


def test_keyless_model_sig_verifies_locally(model: Path, repo: str, sigstore_local: SigstoreLocal, tmp_path: Path) -> None:
    ref = f"{repo}:v1"
    assert omsign("push", str(model), ref).returncode == 0
    keyless_sign(ref, sigstore_local)
    dest = tmp_path / "out"
    assert omsign("pull", ref, str(dest), "--verify", *identity_policy(sigstore_local)).returncode == 0
    assert omsign("verify-local", str(dest), *identity_policy(sigstore_local)).returncode == 0


# -- certificate chains (PKI without Sigstore's CA) -----------------------------------------
# cosign requires an identity and an issuer with --ca-roots too; the test CA's leaf has no
# Fulcio issuer extension, so its issuer is "" (matched by any issuer regexp).
PKI_IDENTITY = ("--certificate-identity", "signer@example.com", "--certificate-oidc-issuer-regexp", ".*")

def test_certificate_chain_sign_and_verify_against_root(base: str, model: Path, tmp_path: Path) -> None:
    pki = make_test_ca(tmp_path / "pki")
    ref = f"{base}:v1"
    assert omsign("push", str(model), ref).returncode == 0
    signed = omsign(
        "sign", ref, "--key", str(pki.leaf_key_path), "--certificate", str(pki.leaf_path),
        "--certificate-chain", str(pki.intermediate_path), "--certificate-chain", str(pki.root_path),
        "--no-tlog-upload",
    )
    assert signed.returncode == 0, signed.stderr
    dest = tmp_path / "out"
    no_tlog = omsign("verify", ref, "--ca-roots", str(pki.root_path), "--certificate-chain", str(pki.intermediate_path), *PKI_IDENTITY)
    assert_one_line_error(no_tlog, 8)  # like cosign: no transparency log entry without the explicit flag
    pulled = omsign(
        "pull", ref, str(dest), "--verify", "--ca-roots", str(pki.root_path),
        "--certificate-chain", str(pki.intermediate_path), "--insecure-ignore-tlog", *PKI_IDENTITY,
    )
    assert pulled.returncode == 0, pulled.stderr


def test_certificate_from_another_ca_is_rejected(base: str, model: Path, tmp_path: Path) -> None:
    ours = make_test_ca(tmp_path / "ours")
    theirs = make_test_ca(tmp_path / "theirs")
    ref = f"{base}:v1"
    assert omsign("push", str(model), ref).returncode == 0
    signed = omsign(
        "sign", ref, "--key", str(theirs.leaf_key_path), "--certificate", str(theirs.leaf_path),
        "--certificate-chain", str(theirs.intermediate_path), "--no-tlog-upload",
    )
    assert signed.returncode == 0, signed.stderr
    proc = omsign(
        "verify", ref, "--ca-roots", str(ours.root_path), "--certificate-chain", str(ours.intermediate_path),
        "--insecure-ignore-tlog", *PKI_IDENTITY,
    )
    assert_one_line_error(proc, 8)


# -- sigstore-js as an independent peer -------------------------------------------------------
def test_bundle_attached_by_sigstore_js_is_found_and_verified(
    auth_registry: RegistryServer, model: Path, sigstore_local: SigstoreLocal, tmp_path: Path
) -> None:
    """A cosign-style statement signed by sigstore-python, attached by `sigstore attach`."""
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    from oci_model_sign.signing.keyless import sigstore_statement
    from oci_model_sign.signing.statements import cosign_sign_statement

    ref = f"{auth_registry.host}/peer/model:v1"
    creds = ("--username", str(auth_registry.username), "--password-stdin")
    pushed = omsign("push", str(model), ref, "--json", *creds, stdin=f"{auth_registry.password}\n")
    assert pushed.returncode == 0, pushed.stderr
    digest = json.loads(pushed.stdout)["digest"]
    cfg = ClientTrustConfig.from_json(sigstore_local.trust_config.read_text())
    ctx = SigningContext.from_trust_config(cfg)
    with ctx.signer(IdentityToken(sigstore_local.token(ALICE, ISSUER))) as signer:
        bundle = signer.sign_dsse(sigstore_statement(cosign_sign_statement(digest, {})))
    bundle_path = tmp_path / "bundle.json"
    bundle_path.write_text(bundle.to_json())
    sigstore_js_attach(bundle_path, f"{auth_registry.host}/peer/model@{digest}", str(auth_registry.username), str(auth_registry.password))
    proc = omsign("verify", ref, *identity_policy(sigstore_local), "--json", *creds, stdin=f"{auth_registry.password}\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accepted"]["kind"] == "cosign-bundle"
