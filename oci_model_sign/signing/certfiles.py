"""Certificates in files the user names: a PEM bundle or one DER certificate.

The signer reads its leaf and chain here and the verifier its CA roots and chains, so a file
that one side accepts the other accepts too.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509

from ..errors import InputError


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, or the one DER certificate; ``ValueError`` if neither."""
    if b"-----BEGIN" in data:
        return list(x509.load_pem_x509_certificates(data))
    return [x509.load_der_x509_certificate(data)]


def read_certificates(path: str | os.PathLike[str], what: str) -> list[x509.Certificate]:
    """Certificates from a file the user named (an ``InputError`` when unusable)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        certs = parse_certificates(data)
    except ValueError as exc:
        raise InputError(f"{what} {path} is not a valid certificate (PEM or DER)") from exc
    if not certs:
        raise InputError(f"{what} {path} holds no certificate")
    return certs
