"""Human-readable accounts of a policy: ``omsign policy check`` and ``omsign policy explain``."""

from __future__ import annotations

from pathlib import Path

from .loader import load_policy
from .model import ScopePolicy, TrustPolicy
from .scopes import KIND_TEXT


def _scope_lines(scope: ScopePolicy, indent: str = "  ") -> list[str]:
    if scope.reject:
        what = "refuses every model"
    elif scope.accept_anything:
        what = "accepts models without verification"
    else:
        what = f"requires {scope.requirement_text()}"
    lines = [f"{indent}mode {scope.mode}; {what}"]
    for a in scope.authorities:
        lines.append(f"{indent}authority {a.describe()}")
    if scope.annotations:
        pairs = ", ".join(f"{k}={v}" for k, v in scope.annotations.items())
        lines.append(f"{indent}annotations {pairs}")
    for att in scope.attestations:
        lines.append(f"{indent}attestation {att.describe()}")
    for r in scope.revoked:
        lines.append(f"{indent}revocation: {r.describe()}")
    return lines


def _scope_title(scope: ScopePolicy) -> str:
    if scope.pattern is None:
        return "default (references no scope matches)"
    p = scope.pattern
    norm = f" = {p.normalised}" if p.normalised != p.text else ""
    return f"{scope.name!r}{norm} [{KIND_TEXT[p.kind]}]"


def explain(policy: TrustPolicy, reference: str) -> str:
    """Which scope applies to ``reference`` and why: every candidate, ranked, and the winner."""
    target, considered = policy.consider(reference)
    out = [f"policy {policy.source}", f"reference {reference} -> {target.display()}"]
    matched = [m for m in considered if m.matched]
    out.append("candidates:")
    if not considered:
        out.append("  (the policy has no scopes)")
    for m in considered:
        assert m.scope.pattern is not None
        mark = "match" if m.matched else "no   "
        detail = f"{m.scope.pattern.literal_length} literal characters" if m.matched else "does not match"
        out.append(f"  {mark} {_scope_title(m.scope)} (line {m.scope.line}): {detail}")
    if matched:
        best = matched[0]
        why = "the only matching scope" if len(matched) == 1 else "the most specific matching scope"
        if len(matched) > 1:
            runner = matched[1]
            if runner.rank[0] == best.rank[0]:
                why += (
                    " (a literal scope beats a glob)"
                    if runner.rank[1] != best.rank[1]
                    else " (tie: the scope written first wins)"
                )
            else:
                why += f" ({best.rank[0]} literal characters against {runner.rank[0]})"
        out.append(f"applies: {best.scope.name!r}, {why}")
        out.extend(_scope_lines(best.scope))
    elif policy.default is not None:
        out.append("applies: default (no scope matches)")
        out.extend(_scope_lines(policy.default))
    else:
        out.append("applies: nothing (no scope matches and the policy has no default): not verified by policy")
    return "\n".join(out)


def check(path: str | Path) -> list[str]:
    """Validate a policy file: a summary of what it says, plus warnings. Raises ``UsageError``."""
    policy = load_policy(path)
    n = len(policy.scopes)
    lines = [
        f"{policy.source}: valid ({policy.api_version}, {n} scope{'s' if n != 1 else ''}"
        f"{', a default' if policy.default else ', no default'}"
        f"{f', {len(policy.revoked)} global revocation(s)' if policy.revoked else ''})"
    ]
    scopes = list(policy.scopes) + ([policy.default] if policy.default else [])
    for scope in scopes:
        lines.append(f"scope {_scope_title(scope)}, line {scope.line}:")
        lines.extend(_scope_lines(scope))
    lines.extend(_warnings(policy, scopes))
    return lines


def _warnings(policy: TrustPolicy, scopes: list[ScopePolicy]) -> list[str]:
    out = []
    if policy.default is None:
        out.append("warning: no default scope: references no scope matches are not verified by this policy")
    for scope in scopes:
        if scope.mode == "warn":
            out.append(f"warning: scope {scope.name!r} is in warn mode: failures are reported, not refused")
        if scope.accept_anything:
            out.append(f"warning: scope {scope.name!r} accepts models without verification")
        for a in scope.authorities:
            for label, rx in (("identityRegexp", a.identity_regexp), ("issuerRegexp", a.issuer_regexp)):
                if rx is not None and not rx.startswith("^"):
                    out.append(
                        f"warning: scope {scope.name!r}, authority {a.name!r}: {label} /{rx}/ does not start "
                        "with ^: it matches anywhere in the value"
                    )
            if a.ignore_tlog:
                out.append(f"warning: scope {scope.name!r}, authority {a.name!r} accepts signatures without a transparency log")
    return out
