"""Building a signer from plain options: what ``omsign sign``'s flags describe, for the library.

Model hubs and CI scripts configure signing with strings and paths; this turns them into one
of the signers (``KeySigner``, ``CertificateSigner``, ``KeylessSigner``) with cosign's
defaults, the transparency-log upload of key signatures included.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import UsageError
from .keyless import KeylessSigner
from .keys import PASSWORD_ENV
from .keyuri import is_file_key, private_signer
from .signers import CertificateSigner, KeySigner, Signer
from .tlog_upload import uploader_for


def password_from_env() -> bytes | None:
    """``OMSIGN_PASSWORD``, else ``COSIGN_PASSWORD`` (may be empty), else None."""
    for name in PASSWORD_ENV:
        if name in os.environ:
            return os.environ[name].encode()
    return None


def signer_from_options(
    *,
    key: str | Path | None = None,
    certificate: str | Path | None = None,
    certificate_chain: Sequence[str | Path] = (),
    identity_token: str | None = None,
    staging: bool = False,
    trust_config: str | Path | None = None,
    password: bytes | None = None,
    tlog_upload: bool = True,
    background: bool = False,
) -> Signer:
    """The signer cosign's sign flags describe.

    ``key`` (+ ``certificate``/``certificate_chain`` for your own PKI) signs with a key; its
    signatures are uploaded to the Rekor v1 log of the signing config (``trust_config``, else
    the public-good instance) unless ``tlog_upload`` is False, as ``cosign sign
    --tlog-upload=false``. Without a key, Sigstore keyless. ``password`` defaults to the
    ``OMSIGN_PASSWORD``/``COSIGN_PASSWORD`` environment. ``background`` decrypts the key in a
    thread (errors surface at first use).
    """
    if certificate is not None and key is None:
        raise UsageError("--certificate needs --key (the certificate's private key)")
    if key is None:
        return KeylessSigner(identity_token=identity_token, trust_config=trust_config, staging=staging)
    secret = password if password is not None else password_from_env()
    tlog = uploader_for(trust_config, staging=staging) if tlog_upload else None
    if not is_file_key(key):  # a pkcs11: URI; cloud KMS URIs are refused as not supported yet
        return private_signer(key, secret, certificate=certificate, tlog=tlog)
    if certificate is not None:
        return CertificateSigner(key, certificate, list(certificate_chain), secret, tlog=tlog)
    return KeySigner(key, secret, background=background, tlog=tlog)
