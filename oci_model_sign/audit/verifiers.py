"""How an audit judges a model: the policy file's scope for its repository, or one scope
built from cosign-style flags, so flags and files are applied the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..policyfile import Authority, ScopePolicy, TrustPolicy


@dataclass(frozen=True)
class Verifiers:
    """How the current policy is applied: a policy file's scopes, or one flag-built scope."""

    policy: TrustPolicy | None = None
    flag_scope: ScopePolicy | None = None
    source: str | None = None

    def scope_for(self, reference: str) -> ScopePolicy | None:
        if self.flag_scope is not None:
            return self.flag_scope
        if self.policy is None:
            return None
        found = self.policy.scope_for(reference)
        return found[1] if found is not None else None


def make_policy(options: dict[str, Any]) -> Any:
    """The verifier's policy object for one authority's options (named as the CLI flags), built
    by ``verify.policy.policy_from_options`` as for flags and policy files."""
    from ..verify.policy import policy_from_options

    return policy_from_options(**options)


def flag_scope(authority_options: dict[str, Any]) -> ScopePolicy:
    """A one-authority scope from cosign-style flags, so flags and files are judged alike."""
    from ..verify.policy import key_fingerprint, load_public_key

    key = authority_options.get("key")
    if key is not None:
        auth = Authority(
            name="--key",
            kind="key",
            key_path=Path(key),
            fingerprint=key_fingerprint(load_public_key(Path(key))),
            trust_config=Path(authority_options["trust_config"]) if authority_options.get("trust_config") else None,
            ignore_tlog=bool(authority_options.get("insecure_ignore_tlog")),
        )
    else:
        kind: Literal["x509", "keyless"] = "x509" if authority_options.get("ca_roots") else "keyless"
        make_policy(authority_options)  # flag combinations the verifier refuses are usage errors now
        auth = Authority(
            name="--ca-roots" if kind == "x509" else "--certificate-identity",
            kind=kind,
            identity=authority_options.get("certificate_identity"),
            identity_regexp=authority_options.get("certificate_identity_regexp"),
            issuer=authority_options.get("certificate_oidc_issuer"),
            issuer_regexp=authority_options.get("certificate_oidc_issuer_regexp"),
            ca_roots=Path(authority_options["ca_roots"]) if kind == "x509" else None,
            intermediates=Path(authority_options["certificate_chain"]) if authority_options.get("certificate_chain") else None,
            trust_config=Path(authority_options["trust_config"]) if authority_options.get("trust_config") else None,
            staging=bool(authority_options.get("staging")),
            offline=bool(authority_options.get("offline")),
            ignore_tlog=bool(authority_options.get("insecure_ignore_tlog")),
        )
    return ScopePolicy(
        name="flags",
        pattern=None,
        authorities=(auth,),
        annotations=dict(authority_options.get("annotations") or {}),
    )
