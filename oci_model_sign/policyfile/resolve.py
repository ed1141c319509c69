"""From a command's ``--policy`` value and a reference to the scope that governs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .discovery import SYSTEM_POLICY, find_policy
from .loader import load_policy
from .model import ScopePolicy, TrustPolicy


@dataclass(frozen=True)
class AppliedScope:
    """The policy file in force for one reference and the scope of it that applies."""

    policy: TrustPolicy
    name: str
    scope: ScopePolicy

    @property
    def source(self) -> Path:
        return self.policy.source


def applicable_scope(
    reference: str, cli_value: str | None = None, *, system_path: Path = SYSTEM_POLICY
) -> AppliedScope | None:
    """The scope governing ``reference``, or None when no policy is in force for it.

    None means: opted out (``none``), no policy file anywhere, or a policy whose scopes do
    not cover the reference and that has no default. Callers then behave as without a
    policy (verify only when asked to).
    """
    location = find_policy(cli_value, system_path=system_path)
    if location is None or location == "none":
        return None
    policy = load_policy(location)
    found = policy.scope_for(reference)
    if found is None:
        return None
    return AppliedScope(policy, found[0], found[1])
