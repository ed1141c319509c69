"""A throwaway X.509 hierarchy for tests: root CA -> intermediate CA -> code-signing leaf."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TestPKI:
    root_cert: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate_cert: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    leaf_cert: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    root_path: Path
    intermediate_path: Path
    leaf_path: Path
    leaf_key_path: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    email: str | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
        if email:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False
            )
    return builder.sign(issuer_key, hashes.SHA256())


def make_test_ca(
    directory: Path,
    *,
    curve: ec.EllipticCurve | None = None,
    leaf_validity: datetime.timedelta = datetime.timedelta(days=1),
) -> TestPKI:
    """Create root -> intermediate -> leaf (code signing, ``signer@example.com``) in ``directory``.

    Files: ``root.pem``, ``intermediate.pem``, ``leaf.pem`` and ``leaf.key`` (PKCS#8, no password).
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    root_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(curve or ec.SECP256R1())
    year = datetime.timedelta(days=365)
    root = _cert(
        "omsign test root", root_key, "omsign test root", root_key,
        ca=True, not_before=now, not_after=now + year,
    )  # fmt: skip
    inter = _cert(
        "omsign test intermediate", inter_key, "omsign test root", root_key,
        ca=True, not_before=now, not_after=now + year,
    )  # fmt: skip
    leaf = _cert(
        "omsign test signer", leaf_key, "omsign test intermediate", inter_key,
        ca=False, not_before=now, not_after=now + leaf_validity, email="signer@example.com",
    )  # fmt: skip

    def write(name: str, data: bytes) -> Path:
        path = directory / name
        path.write_bytes(data)
        return path

    pem = serialization.Encoding.PEM
    return TestPKI(
        root_cert=root,
        root_key=root_key,
        intermediate_cert=inter,
        intermediate_key=inter_key,
        leaf_cert=leaf,
        leaf_key=leaf_key,
        root_path=write("root.pem", root.public_bytes(pem)),
        intermediate_path=write("intermediate.pem", inter.public_bytes(pem)),
        leaf_path=write("leaf.pem", leaf.public_bytes(pem)),
        leaf_key_path=write(
            "leaf.key",
            leaf_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        ),
    )
