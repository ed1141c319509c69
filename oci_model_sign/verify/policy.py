"""Verification policies: *who* must have signed, and *what else* must hold.

A policy names a key, a Sigstore identity, or a certificate from the user's own CA, plus the
``-a`` annotations the signed claims must carry and whether a transparency-log entry is
required. It is built once (``policy_from_options``, the CLI's flags as plain values) and then
applied to every candidate; nothing here touches the network unless an ``IdentityPolicy`` is
asked for the production trust root with ``offline=False`` (a TUF refresh, as sigstore-python
does it). The checks a policy stands for live beside it: ``trust`` (roots), ``tlog`` (Rekor),
``certs`` (X.509 chains and identities), ``regexp`` (RE2).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from ..errors import InputError, UsageError
from ..signing.keys import PublicKey, key_fingerprint, load_public_key
from .certs import IdentityMatcher, read_certificates
from .regexp import compile_re2
from .rejection import CandidateRejected
from .tlog import TLOG_HINT
from .trust import load_trusted_root

__all__ = [
    "TLOG_HINT",
    "AnyPolicy",
    "CandidateRejected",
    "CertificateChainPolicy",
    "IdentityPolicy",
    "KeyPolicy",
    "Policy",
    "check_claim_annotations",
    "key_fingerprint",
    "load_public_key",
    "policy_from_options",
]


def _check_regexp(value: str | None, flag: str) -> None:
    if value is not None:
        compile_re2(value, flag)


def _require_identity(identity: str | None, identity_regexp: str | None,
                      issuer: str | None, issuer_regexp: str | None, what: str) -> None:
    if (identity is None) == (identity_regexp is None):
        raise UsageError(
            f"{what} needs exactly one of --certificate-identity or "
            "--certificate-identity-regexp: no policy, no verification",
            hint="e.g. --certificate-identity you@example.com --certificate-oidc-issuer https://accounts.google.com",
        )
    if (issuer is None) == (issuer_regexp is None):
        raise UsageError(
            f"{what} needs exactly one of --certificate-oidc-issuer or "
            "--certificate-oidc-issuer-regexp: no policy, no verification",
            hint="e.g. --certificate-oidc-issuer https://token.actions.githubusercontent.com "
            "(a certificate without the Fulcio issuer extension has the issuer \"\": "
            "--certificate-oidc-issuer-regexp '^$')",
        )
    _check_regexp(identity_regexp, "--certificate-identity-regexp")
    _check_regexp(issuer_regexp, "--certificate-oidc-issuer-regexp")


@dataclass
class Policy:
    """What every policy has: ``-a key=value`` annotations the signed claims must carry.

    The base type the API is annotated with; verification dispatches on the subclasses.
    """

    annotations: dict[str, str] = field(default_factory=dict, kw_only=True)

    def for_model_signing(self) -> Policy:
        """The policy a model-signing bundle (``model.sig``) is held to: the same signer, no
        ``-a`` claims (they belong to the cosign statement; model_signing has none).

        It vouches for the files only, never admits the model, and is checked afterwards
        against the layer digests; key and certificate signers do not log it (model_signing
        does not log key signatures), so no tlog entry is required for it.
        """
        return self._derived(annotations={})

    def _derived(self, **changes: Any) -> Policy:
        """A copy with ``changes`` that keeps what was already loaded (keys, trust roots: a
        TUF refresh is not repeated)."""
        derived = dataclasses.replace(self, **changes)
        for name, value in vars(self).items():
            if name.startswith("_") and value is not None:
                setattr(derived, name, value)
        return derived


@dataclass
class KeyPolicy(Policy):
    """Signed with this key (cosign ``--key``).

    With ``ignore_tlog`` False a transparency-log entry whose SET verifies against a Rekor key
    of ``trusted_root`` (default: the public-good root embedded in sigstore-python, read
    offline) and that records this very signature is required, as cosign requires it.
    """

    public_key: str | Path | bytes | PublicKey
    ignore_tlog: bool = False
    trusted_root: str | Path | None = None

    def __post_init__(self) -> None:
        self._key: PublicKey | None = None
        self._root: Any = None

    def key(self) -> PublicKey:
        if self._key is None:
            self._key = load_public_key(self.public_key)
        return self._key

    def fingerprint(self) -> str:
        return key_fingerprint(self.key())

    def for_model_signing(self) -> Policy:
        return self._derived(annotations={}, ignore_tlog=True)

    def root(self) -> Any:
        if self._root is None:
            self._root = load_trusted_root(self.trusted_root)
        return self._root


@dataclass
class IdentityPolicy(Policy):
    """Keyless: a Fulcio certificate for this identity from this OIDC issuer (cosign
    ``--certificate-identity[-regexp]`` + ``--certificate-oidc-issuer[-regexp]``).

    Trust: ``trust_config`` (a trusted root or ClientTrustConfig JSON file), else staging or
    production; with ``offline`` the root embedded in sigstore-python is used, otherwise
    sigstore-python refreshes it over TUF. ``ignore_sct`` mirrors ``--insecure-ignore-sct`` and
    is only needed for certificates issued before Fulcio embedded SCTs (2021).
    """

    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    trust_config: str | Path | None = None
    staging: bool = False
    offline: bool = False
    ignore_sct: bool = False

    def __post_init__(self) -> None:
        _require_identity(self.identity, self.identity_regexp, self.issuer, self.issuer_regexp,
                          "keyless verification")
        self._root: Any = None

    def matcher(self) -> IdentityMatcher:
        return IdentityMatcher(self.identity, self.identity_regexp, self.issuer, self.issuer_regexp)

    def root(self) -> Any:
        if self._root is None:
            if self.trust_config is not None or self.offline:
                self._root = load_trusted_root(self.trust_config, staging=self.staging)
            else:
                from sigstore.models import ClientTrustConfig

                try:
                    config = ClientTrustConfig.staging() if self.staging else ClientTrustConfig.production()
                except Exception as exc:  # TUF errors: network or metadata
                    raise InputError(
                        f"cannot refresh the Sigstore trust root over TUF: {exc}",
                        hint="pass --offline to use the trust root embedded in sigstore-python, or --trust-config FILE",
                    ) from exc
                self._root = config.trusted_root
        return self._root


@dataclass
class CertificateChainPolicy(Policy):
    """Signed by a certificate that chains to ``ca_roots`` (cosign ``--ca-roots`` /
    ``--certificate-chain``), for an identity and issuer, which are required as cosign
    requires them.

    The chain is checked at the tlog integrated time when a verified SET is present (the
    signature time Rekor vouches for), else at the current time: an expired certificate with
    no transparency-log timestamp is rejected. A tlog entry is required unless ``ignore_tlog``.
    """

    ca_roots: str | Path
    chain: str | Path | None = None
    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    ignore_tlog: bool = False
    trusted_root: str | Path | None = None

    def __post_init__(self) -> None:
        _require_identity(self.identity, self.identity_regexp, self.issuer, self.issuer_regexp,
                          "certificate-chain verification (--ca-roots/--certificate-chain)")
        self._roots: list[x509.Certificate] | None = None
        self._intermediates: list[x509.Certificate] | None = None
        self._root: Any = None

    def matcher(self) -> IdentityMatcher:
        return IdentityMatcher(self.identity, self.identity_regexp, self.issuer, self.issuer_regexp)

    def roots(self) -> list[x509.Certificate]:
        if self._roots is None:
            self._roots = read_certificates(self.ca_roots, "CA roots file")
        return self._roots

    def for_model_signing(self) -> Policy:
        return self._derived(annotations={}, ignore_tlog=True)

    def intermediates(self) -> list[x509.Certificate]:
        if self._intermediates is None:
            self._intermediates = [] if self.chain is None else read_certificates(self.chain, "certificate chain")
        return self._intermediates

    def root(self) -> Any:
        if self._root is None:
            self._root = load_trusted_root(self.trusted_root)
        return self._root


AnyPolicy = KeyPolicy | IdentityPolicy | CertificateChainPolicy


def check_claim_annotations(expected: dict[str, str], actual: object, where: str) -> None:
    """cosign ``-a k=v``: every expected key must be present with exactly that string value."""
    have = actual if isinstance(actual, dict) else {}
    for k, v in expected.items():
        if k not in have:
            raise CandidateRejected(f"annotation {k!r} is missing from the {where}")
        if have[k] != v:
            raise CandidateRejected(f"annotation {k!r} is {have[k]!r} in the {where}, expected {v!r}")


def policy_from_options(
    *,
    key: str | Path | None = None,
    certificate_identity: str | None = None,
    certificate_identity_regexp: str | None = None,
    certificate_oidc_issuer: str | None = None,
    certificate_oidc_issuer_regexp: str | None = None,
    certificate_chain: str | Path | None = None,
    ca_roots: str | Path | None = None,
    insecure_ignore_tlog: bool = False,
    offline: bool = False,
    trust_config: str | Path | None = None,
    staging: bool = False,
    annotations: dict[str, str] | None = None,
) -> Policy:
    """The policy cosign's verify flags describe, from plain values (what the CLI passes).

    ``--key`` wins; then ``--ca-roots``/``--certificate-chain`` (your own PKI; a chain alone is
    its own root, as in cosign); then a keyless identity. Raises ``UsageError`` when the flags
    describe no policy or an incomplete one, ``InputError`` when a named file is unusable.
    """
    ann = dict(annotations or {})
    if key is not None:
        from ..signing.keyuri import verification_key  # a file, or the public key of a pkcs11: URI

        policy = KeyPolicy(
            verification_key(key), ignore_tlog=insecure_ignore_tlog, trusted_root=trust_config, annotations=ann
        )
        policy.key()  # an unusable key is the user's input error, not "no signature found" later
        return policy
    if ca_roots is not None or certificate_chain is not None:
        roots = ca_roots if ca_roots is not None else certificate_chain
        assert roots is not None
        return CertificateChainPolicy(
            roots,
            chain=certificate_chain if ca_roots is not None else None,
            identity=certificate_identity,
            identity_regexp=certificate_identity_regexp,
            issuer=certificate_oidc_issuer,
            issuer_regexp=certificate_oidc_issuer_regexp,
            ignore_tlog=insecure_ignore_tlog,
            trusted_root=trust_config,
            annotations=ann,
        )
    if certificate_identity or certificate_identity_regexp or certificate_oidc_issuer or certificate_oidc_issuer_regexp:
        return IdentityPolicy(
            identity=certificate_identity,
            identity_regexp=certificate_identity_regexp,
            issuer=certificate_oidc_issuer,
            issuer_regexp=certificate_oidc_issuer_regexp,
            trust_config=trust_config,
            staging=staging,
            offline=offline,
            annotations=ann,
        )
    raise UsageError(
        "no policy, no verification",
        hint="pass --key PUB, or --certificate-identity and --certificate-oidc-issuer, or --ca-roots",
    )
