"""What a ``--key`` value names: a key file, a key on a PKCS#11 token, or a cloud KMS key.

cosign takes one ``--key`` flag for all of them and tells them apart by scheme; omsign does
the same, so that a ``--key`` copied from a cosign pipeline either works or fails with a
reason that names the scheme. A KMS URI must never fall through to "file not found": the
user would go hunting for a file that was never meant to exist.

Schemes are matched with one or two slashes after the colon because ``pathlib.Path`` (what a
CLI option typed as a path hands over) folds ``awskms://`` into ``awskms:/``.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from .keys import Prompt, PublicKey
    from .signers import KeySigner
    from .tlog_upload import RekorUploader


class KeyKind(enum.Enum):
    FILE = "file"
    PKCS11 = "pkcs11"
    KMS = "kms"


# cosign's other key-reference schemes (sigstore/sigstore kms providers, plus cosign's own
# Kubernetes-secret and GitLab-variable references), with the names users know them by.
UNSUPPORTED_SCHEMES: dict[str, str] = {
    "awskms": "AWS KMS",
    "gcpkms": "Google Cloud KMS",
    "azurekms": "Azure Key Vault",
    "hashivault": "HashiCorp Vault",
    "k8s": "Kubernetes secret",
    "gitlab": "GitLab CI/CD variable",
}

PKCS11_SCHEME = "pkcs11"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class KeyRef:
    """A classified ``--key`` value; ``value`` is the text exactly as given."""

    kind: KeyKind
    value: str
    scheme: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.value)

    def require_supported(self) -> KeyRef:
        """Raise the "not supported yet" usage error for KMS references; return self otherwise."""
        if self.kind is KeyKind.KMS:
            assert self.scheme is not None
            name = UNSUPPORTED_SCHEMES[self.scheme]
            raise UsageError(
                f"--key {self.scheme}://…: {name} keys are not supported yet",
                hint="use a key file, a pkcs11: URI (a key on an HSM or token), or keyless signing",
            )
        return self


def classify_key(value: str | os.PathLike[str]) -> KeyRef:
    """File path, ``pkcs11:`` URI or KMS URI. Anything else is a path, as in cosign."""
    text = os.fspath(value)
    m = _SCHEME.match(text)
    if m is not None:
        scheme = m.group(1).lower()
        if scheme == PKCS11_SCHEME:
            return KeyRef(KeyKind.PKCS11, text, scheme)
        if scheme in UNSUPPORTED_SCHEMES and text[m.end() : m.end() + 1] == "/":
            return KeyRef(KeyKind.KMS, text, scheme)
    return KeyRef(KeyKind.FILE, text)


def is_file_key(value: str | os.PathLike[str]) -> bool:
    return classify_key(value).kind is KeyKind.FILE


def private_signer(
    value: str | os.PathLike[str],
    password: bytes | None = None,
    *,
    prompt: Prompt | None = None,
    background: bool = False,
    certificate: str | os.PathLike[str] | None = None,
    tlog: RekorUploader | None = None,
) -> KeySigner:
    """The signer for a private ``--key``: a key file's, or a PKCS#11 token's."""
    ref = classify_key(value).require_supported()
    if ref.kind is KeyKind.PKCS11:
        if certificate is not None:
            raise UsageError("--certificate with a pkcs11: key is not supported yet")
        from .pkcs11 import Pkcs11Signer

        return Pkcs11Signer(ref.value, prompt=prompt, tlog=tlog)
    from .signers import KeySigner

    return KeySigner(ref.path, password, prompt=prompt, background=background, tlog=tlog)


def verification_key(value: str | os.PathLike[str]) -> Path | PublicKey:
    """What a public ``--key`` names: the file to read, or the public key read off a token."""
    ref = classify_key(value).require_supported()
    if ref.kind is KeyKind.PKCS11:
        from .pkcs11 import public_key_from_uri

        return public_key_from_uri(ref.value)
    return ref.path
