"""omsign: pack, push, sign and verify ML models as OCI artifacts.

The public API is loaded lazily so ``import oci_model_sign`` costs nothing and has no side
effects (no network, no files, no heavy imports) until a function is used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "push": "api",
    "pull": "api",
    "inspect": "api",
    "sign": "api",
    "verify": "api",
    "PushResult": "transfer",
    "PullResult": "transfer",
    "InspectResult": "api",
    "SignResult": "api",
    "parse_reference": "reference",
    "Reference": "reference",
    "StoreOptions": "store.base",
    "KeySigner": "signing.signers",
    "KeylessSigner": "signing.keyless",
    "CertificateSigner": "signing.signers",
    "KeyPolicy": "verify.policy",
    "IdentityPolicy": "verify.policy",
    "CertificateChainPolicy": "verify.policy",
    "VerificationResult": "verify.result",
    "verify_local": "verify.local",
    "generate_key_pair": "signing.keys",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'oci_model_sign' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
