"""Your own PKI (``--ca-roots``/``--certificate-chain``) with cosign's semantics: identity and
issuer required, and chains validated as Go's ``crypto/x509`` validates them for cosign (EKU
nesting, path length, name constraints)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from oci_model_sign.errors import UsageError
from oci_model_sign.verify.certs import verify_chain
from oci_model_sign.verify.policy import CertificateChainPolicy, policy_from_options
from oci_model_sign.verify.rejection import CandidateRejected
from tests.helpers import assert_cli_error, assert_untouched, make_model, prefilled_dest, run_cli
from tests.test_e2e_push_pull import omsign

NOW = datetime.datetime.now(datetime.timezone.utc)
CODE_SIGNING = [ExtendedKeyUsageOID.CODE_SIGNING]
SERVER_AUTH = [ExtendedKeyUsageOID.SERVER_AUTH]
EMAIL: list[x509.GeneralName] = [x509.RFC822Name("signer@example.com")]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
    *, ca: bool, path_length: int | None = None, eku: list[x509.ObjectIdentifier] | None = None,
    constraints: x509.NameConstraints | None = None, san: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    start = NOW - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if constraints is not None:
        builder = builder.add_extension(constraints, critical=True)
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class Hierarchy:
    """root -> intermediate (shaped by the test) -> code-signing leaf for signer@example.com."""

    def __init__(self, **intermediate: object) -> None:
        self.root_key, self.inter_key, self.leaf_key = _key(), _key(), _key()
        self.root = _cert("root", self.root_key, "root", self.root_key, ca=True)
        self.inter = _cert("intermediate", self.inter_key, "root", self.root_key, ca=True, **intermediate)  # type: ignore[arg-type]
        self.leaf = _cert("leaf", self.leaf_key, "intermediate", self.inter_key, ca=False, eku=CODE_SIGNING, san=EMAIL)

    def check(self) -> None:
        verify_chain(self.leaf, [self.inter], [self.root], NOW, require_eku=False)

    def write(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        pem = serialization.Encoding.PEM
        paths = {"root": folder / "root.pem", "inter": folder / "inter.pem", "leaf": folder / "leaf.pem", "key": folder / "leaf.key"}
        paths["root"].write_bytes(self.root.public_bytes(pem))
        paths["inter"].write_bytes(self.inter.public_bytes(pem))
        paths["leaf"].write_bytes(self.leaf.public_bytes(pem))
        paths["key"].write_bytes(self.leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return paths


def test_intermediate_without_eku_may_issue_code_signing_leaves() -> None:
    Hierarchy().check()


def test_intermediate_allowing_code_signing_may_issue_code_signing_leaves() -> None:
    Hierarchy(eku=[ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.SERVER_AUTH]).check()


def test_intermediate_limited_to_server_auth_cannot_issue_code_signing_leaves() -> None:
    with pytest.raises(CandidateRejected, match="not allowed to issue code-signing"):
        Hierarchy(eku=SERVER_AUTH).check()


def test_path_length_zero_intermediate_cannot_issue_another_ca() -> None:
    h = Hierarchy(path_length=0)
    sub_key = _key()
    sub = _cert("sub-ca", sub_key, "intermediate", h.inter_key, ca=True)
    leaf = _cert("leaf", h.leaf_key, "sub-ca", sub_key, ca=False, eku=CODE_SIGNING, san=EMAIL)
    with pytest.raises(CandidateRejected, match="path length"):
        verify_chain(leaf, [h.inter, sub], [h.root], NOW, require_eku=False)


def test_excluded_email_domain_name_constraint_is_honoured() -> None:
    constraints = x509.NameConstraints(permitted_subtrees=None, excluded_subtrees=[x509.RFC822Name("example.com")])
    with pytest.raises(CandidateRejected, match="name constraint"):
        Hierarchy(constraints=constraints).check()


def test_permitted_email_domain_name_constraint_admits_names_inside_it() -> None:
    constraints = x509.NameConstraints(permitted_subtrees=[x509.RFC822Name("example.com")], excluded_subtrees=None)
    Hierarchy(constraints=constraints).check()


def test_permitted_dns_name_constraint_rejects_names_outside_it() -> None:
    constraints = x509.NameConstraints(permitted_subtrees=[x509.DNSName("corp.example")], excluded_subtrees=None)
    h = Hierarchy(constraints=constraints)
    evil: list[x509.GeneralName] = [x509.DNSName("evil.example")]
    leaf = _cert("leaf", h.leaf_key, "intermediate", h.inter_key, ca=False, eku=CODE_SIGNING, san=evil)
    with pytest.raises(CandidateRejected, match="name constraint"):
        verify_chain(leaf, [h.inter], [h.root], NOW, require_eku=False)


def test_ca_roots_policy_requires_an_identity_and_an_issuer(tmp_path: Path) -> None:
    paths = Hierarchy().write(tmp_path)
    with pytest.raises(UsageError, match="certificate-identity"):
        CertificateChainPolicy(paths["root"], issuer_regexp=".*")
    with pytest.raises(UsageError, match="certificate-oidc-issuer"):
        CertificateChainPolicy(paths["root"], identity="signer@example.com")
    with pytest.raises(UsageError, match="certificate-identity"):
        policy_from_options(certificate_chain=paths["inter"], certificate_oidc_issuer="x")


def test_verify_with_ca_roots_but_no_identity_is_a_usage_error(repo: str, tmp_path: Path) -> None:
    paths = Hierarchy().write(tmp_path / "pki")
    result = run_cli("verify", f"{repo}:v1", "--ca-roots", paths["root"], "--insecure-ignore-tlog")
    assert_cli_error(result, 2, "certificate-identity")


def test_pull_refuses_a_leaf_issued_by_a_server_auth_only_intermediate(repo: str, tmp_path: Path) -> None:
    """Real registry, real signature by a certificate whose issuing CA may not issue code signing."""
    paths = Hierarchy(eku=SERVER_AUTH).write(tmp_path / "pki")
    ref = f"{repo}:v1"
    assert omsign("push", str(make_model(tmp_path / "m")), ref).returncode == 0
    signed = omsign(
        "sign", ref, "--key", str(paths["key"]), "--certificate", str(paths["leaf"]),
        "--certificate-chain", str(paths["inter"]), "--no-tlog-upload",
    )
    assert signed.returncode == 0, signed.stderr
    dest, before = prefilled_dest(tmp_path)
    policy: list[str | Path] = [
        "--ca-roots", paths["root"], "--certificate-chain", paths["inter"], "--insecure-ignore-tlog",
        "--certificate-identity", "signer@example.com", "--certificate-oidc-issuer-regexp", ".*",
    ]
    assert_cli_error(run_cli("pull", "--force", ref, dest, "--verify", *policy), 8, "code-signing")
    assert_untouched(dest, before)
    good = Hierarchy().write(tmp_path / "good")
    assert omsign(
        "sign", ref, "--key", str(good["key"]), "--certificate", str(good["leaf"]),
        "--certificate-chain", str(good["inter"]), "--no-tlog-upload",
    ).returncode == 0
    good_policy: list[str | Path] = [
        "--ca-roots", good["root"], "--certificate-chain", good["inter"], "--insecure-ignore-tlog",
        "--certificate-identity", "signer@example.com", "--certificate-oidc-issuer-regexp", ".*",
    ]
    assert run_cli("verify", ref, *good_policy).returncode == 0
