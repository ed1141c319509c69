"""Trust policy files: which signers omsign trusts for which models.

``load_policy`` reads and validates a file (``docs/policy.md`` documents the format,
``docs/policy.schema.json`` is its JSON Schema); ``TrustPolicy.scope_for`` picks the scope for
a reference; ``ScopePolicy.authority_options`` gives the verifier its options, one set per
authority; ``decide`` turns the verified signers into a verdict. ``find_policy`` says which
file applies when none is named; ``applicable_scope`` does discovery, loading and matching
in one call.
"""

from __future__ import annotations

from .decide import decide
from .discovery import ENV_VAR, SYSTEM_POLICY, find_policy, user_policy_path
from .explain import check, explain
from .loader import load_policy
from .model import (
    AttestationRequirement,
    Authority,
    Decision,
    Revocation,
    ScopePolicy,
    SignerInfo,
    TrustPolicy,
)
from .resolve import AppliedScope, applicable_scope
from .schema import API_VERSION, SCHEMA

__all__ = [
    "API_VERSION",
    "ENV_VAR",
    "SCHEMA",
    "SYSTEM_POLICY",
    "AppliedScope",
    "AttestationRequirement",
    "Authority",
    "Decision",
    "Revocation",
    "ScopePolicy",
    "SignerInfo",
    "TrustPolicy",
    "applicable_scope",
    "check",
    "decide",
    "explain",
    "find_policy",
    "load_policy",
    "user_policy_path",
]
