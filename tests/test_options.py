"""The library builds policies and signers from the CLI's plain options
(``policy_from_options``, ``signer_from_options``), with cosign's defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from oci_model_sign.errors import InputError, UsageError
from oci_model_sign.signing.keyless import KeylessSigner
from oci_model_sign.signing.options import signer_from_options
from oci_model_sign.signing.signers import KeySigner, Signer
from oci_model_sign.signing.tlog_upload import rekor_v1_urls
from oci_model_sign.verify.policy import (
    CertificateChainPolicy,
    IdentityPolicy,
    KeyPolicy,
    Policy,
    policy_from_options,
)
from tests.pki import make_test_ca


@pytest.fixture
def pem_key(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def _trust_config(tmp_path: Path, *services: dict[str, object]) -> Path:
    path = tmp_path / "tc.json"
    path.write_text(json.dumps({"signingConfig": {"rekorTlogUrls": list(services)}}))
    return path


def test_policy_from_a_key_requires_the_tlog_unless_told(pem_key: tuple[Path, Path]) -> None:
    policy = policy_from_options(key=pem_key[1], annotations={"a": "b"})
    assert isinstance(policy, KeyPolicy) and isinstance(policy, Policy)
    assert not policy.ignore_tlog and policy.annotations == {"a": "b"}
    assert policy_from_options(key=str(pem_key[1]), insecure_ignore_tlog=True).ignore_tlog  # type: ignore[attr-defined]


def test_policy_from_an_identity_and_from_ca_roots(tmp_path: Path) -> None:
    keyless = policy_from_options(certificate_identity="a@b.c", certificate_oidc_issuer="https://i", offline=True)
    assert isinstance(keyless, IdentityPolicy)
    pki = make_test_ca(tmp_path / "pki")
    chain = policy_from_options(
        ca_roots=pki.root_path, certificate_chain=pki.intermediate_path,
        certificate_identity="signer@example.com", certificate_oidc_issuer_regexp=".*",
    )
    assert isinstance(chain, CertificateChainPolicy) and chain.chain == pki.intermediate_path


def test_no_options_is_no_policy_and_an_unusable_key_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no policy"):
        policy_from_options()
    (tmp_path / "bad.pub").write_text("nope")
    with pytest.raises(InputError):
        policy_from_options(key=tmp_path / "bad.pub")


def test_signer_from_a_key_logs_to_the_signing_configs_rekor_v1(pem_key: tuple[Path, Path], tmp_path: Path) -> None:
    config = _trust_config(
        tmp_path,
        {"url": "https://rekor-v2.example", "majorApiVersion": 2},
        {"url": "https://rekor.example/", "majorApiVersion": 1},
    )
    signer = signer_from_options(key=pem_key[0], trust_config=config)
    assert isinstance(signer, KeySigner) and isinstance(signer, Signer)
    assert signer.tlog is not None and signer.tlog.url == "https://rekor.example"


def test_signer_defaults_to_the_public_good_rekor_and_opts_out(pem_key: tuple[Path, Path]) -> None:
    assert rekor_v1_urls() == ["https://rekor.sigstore.dev"]
    logged = signer_from_options(key=pem_key[0])
    assert isinstance(logged, KeySigner) and logged.tlog is not None
    assert logged.tlog.url == "https://rekor.sigstore.dev"
    quiet = signer_from_options(key=pem_key[0], tlog_upload=False)
    assert isinstance(quiet, KeySigner) and quiet.tlog is None


def test_signing_config_without_a_rekor_v1_log_is_a_usage_error(pem_key: tuple[Path, Path], tmp_path: Path) -> None:
    config = _trust_config(tmp_path, {"url": "https://rekor-v2.example", "majorApiVersion": 2})
    with pytest.raises(UsageError, match="no Rekor v1"):
        signer_from_options(key=pem_key[0], trust_config=config)
    assert isinstance(signer_from_options(key=pem_key[0], trust_config=config, tlog_upload=False), KeySigner)


def test_certificate_without_key_is_a_usage_error_and_no_key_is_keyless(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--certificate needs --key"):
        signer_from_options(certificate=tmp_path / "leaf.pem")
    assert isinstance(signer_from_options(identity_token="t"), KeylessSigner)
