"""Trust policy files: which signers omsign trusts for which models.

``load_policy`` reads and validates a file (``docs/policy.md`` documents the format,
``docs/policy.schema.json`` is its JSON Schema); ``TrustPolicy.scope_for`` picks the scope for
a reference; ``ScopePolicy.authority_options`` gives the verifier its options, one set per
authority; ``decide`` turns the verified signers into a verdict. ``find_policy`` says which
file applies when none is named; ``applicable_scope`` does discovery, loading and matching
in one call.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .decide import decide
from .discovery import ENV_VAR, SYSTEM_POLICY, find_policy, user_policy_path
from .model import (
    AttestationRequirement,
    Authority,
    Decision,
    Revocation,
    ScopePolicy,
    SignerInfo,
    TrustPolicy,
)

if TYPE_CHECKING:
    from .explain import check, explain
    from .loader import load_policy
    from .resolve import AppliedScope, applicable_scope
    from .schema import API_VERSION, SCHEMA

# The loader, its YAML and JSON Schema, and what builds on them load on first use: a
# verification with no policy file in force (``find_policy`` found none) never needs them.
_WHERE = {
    "API_VERSION": "schema",
    "AppliedScope": "resolve",
    "SCHEMA": "schema",
    "applicable_scope": "resolve",
    "check": "explain",
    "explain": "explain",
    "load_policy": "loader",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    loaded = importlib.import_module(f"{__name__}.{module}")
    # Importing ``explain`` binds the submodule under its own name here; every name that module
    # provides is bound at once, so the function ``explain`` replaces the module ``explain``.
    for other, where in _WHERE.items():
        if where == module:
            globals()[other] = getattr(loaded, other)
    return globals()[name]


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
