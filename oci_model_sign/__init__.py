"""omsign: pack, push, sign and verify ML models as OCI artifacts.

The public API is loaded lazily so ``import oci_model_sign`` costs nothing and has no side
effects (no network, no files, no heavy imports) until a function is used.

``oci_model_sign.verify`` is both a function of the API and the name of a subpackage. Loading
the subpackage (``from oci_model_sign.verify.policy import KeyPolicy``) binds it as the parent's
attribute, which used to replace the function. So the subpackage itself is made callable: it is
loaded here (its ``__init__`` is empty) and calling it calls ``api.verify``. Every import form
keeps working (``import oci_model_sign.verify.policy as p`` included) and ``oms.verify(ref,
policy)`` works whatever was imported before.
"""

from __future__ import annotations

import types
from typing import Any

from . import verify as _verify_package
from .errors import AuthError as AuthError
from .errors import InputError as InputError
from .errors import IntegrityError as IntegrityError
from .errors import LimitError as LimitError
from .errors import NotFoundError as NotFoundError
from .errors import OmsignError as OmsignError
from .errors import RegistryError as RegistryError
from .errors import UsageError as UsageError
from .errors import VerificationError as VerificationError


class _CallableVerifyPackage(types.ModuleType):
    """The ``verify`` subpackage, which is also the API's ``verify(ref, policy, *, options)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .api import verify as _verify

        return _verify(*args, **kwargs)


_verify_package.__class__ = _CallableVerifyPackage

__version__ = "0.1.0"

_API = {
    "push": "api",
    "pull": "api",
    "inspect": "api",
    "sign": "api",
    "ensure_can_sign": "api",
    "copy": "promote",
    "tag": "promote",
    "list_tags": "promote",
    "snapshot": "snapshot",
    "check_trust": "trust",
    "TrustOutcome": "trust",
    "CopyResult": "promote",
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
    "Signer": "signing.signers",
    "KeyPolicy": "verify.policy",
    "IdentityPolicy": "verify.policy",
    "CertificateChainPolicy": "verify.policy",
    "Policy": "verify.policy",
    "VerificationResult": "verify.result",
    "verify_local": "verify.local",
    "generate_key_pair": "signing.keys",
    "attest": "attestations",
    "verify_attestation": "attestations",
    "AttestResult": "attestations",
    "tree": "referrer_tree",
}

_ERRORS = [
    "AuthError",
    "InputError",
    "IntegrityError",
    "LimitError",
    "NotFoundError",
    "OmsignError",
    "RegistryError",
    "UsageError",
    "VerificationError",
]

__all__ = sorted([*_API, *_ERRORS, "__version__", "verify"])


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'oci_model_sign' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
