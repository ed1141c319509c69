"""The verdict: do the verified signers satisfy a scope?

Pure: the verifier has already checked every signature cryptographically and reduced each
one to a ``SignerInfo``; this decides threshold, revocation and mode. Threshold counts
*distinct* authorities satisfied by *distinct* signers: one signature never counts twice,
even when it matches two authorities (a maximum bipartite matching between signers and
authorities), and the same key signing twice is one signer.
"""

from __future__ import annotations

from collections.abc import Iterable

from .model import Decision, ScopePolicy, SignerInfo


def _max_matching(signers: list[SignerInfo], scope: ScopePolicy) -> dict[int, int]:
    """authority index -> signer index, as many pairs as possible (Kuhn's algorithm)."""
    edges = [[a for a, auth in enumerate(scope.authorities) if auth.accepts(s)] for s in signers]
    owner: dict[int, int] = {}

    def augment(s: int, seen: set[int]) -> bool:
        for a in edges[s]:
            if a in seen:
                continue
            seen.add(a)
            if a not in owner or augment(owner[a], seen):
                owner[a] = s
                return True
        return False

    for s in range(len(signers)):
        augment(s, set())
    return owner


def _verdict(scope: ScopePolicy, failure: str, **fields: tuple[str, ...]) -> Decision:
    if scope.mode == "warn":
        return Decision("warn", f"warn mode, would refuse: {failure}", scope.name, scope.mode, **fields)
    return Decision("deny", failure, scope.name, scope.mode, **fields)


def decide(
    scope: ScopePolicy,
    verified_signers: list[SignerInfo],
    *,
    attestations: Iterable[str] | None = None,
) -> Decision:
    """Judge a model whose verified signatures were made by ``verified_signers``.

    ``attestations``, when given, are the predicate types of the model's verified (and
    checked) attestations; each required type must be among them. When None, attestation
    requirements are not judged here.
    """
    where = f"scope {scope.name}"
    if scope.reject:
        return _verdict(scope, f"{where} refuses every model (reject: true)")
    if scope.accept_anything:
        return Decision("allow", f"{where} accepts models without verification", scope.name, scope.mode)

    revoked_notes: list[str] = []
    unique: dict[tuple[str, ...], SignerInfo] = {}
    for signer in verified_signers:
        revocation = scope.is_revoked(signer)
        if revocation is not None:
            revoked_notes.append(f"{signer.describe()}: {revocation.describe()}")
            continue
        unique.setdefault(signer.identity_key(), signer)
    signers = list(unique.values())
    pairs = _max_matching(signers, scope)
    satisfied = tuple(scope.authorities[a].name for a in sorted(pairs))
    missing: tuple[str, ...] = ()
    if attestations is not None:
        have = set(attestations)
        missing = tuple(r.predicate_type for r in scope.attestations if r.predicate_type not in have)
    fields = {"satisfied": satisfied, "revoked": tuple(revoked_notes), "missing_attestations": missing}

    if len(satisfied) < scope.threshold:
        need = scope.threshold
        if not verified_signers:
            failure = f"{where} requires {scope.requirement_text()}; the model has no verified signature"
        elif revoked_notes and not signers:
            failure = f"{where}: every signature is revoked ({'; '.join(revoked_notes)})"
        elif need == 1:
            failure = (
                f"{where} requires {scope.requirement_text()}; no verified signer is a trusted authority"
                f" (signers: {', '.join(s.describe() for s in signers)})"
            )
        else:
            got = ", ".join(satisfied) if satisfied else "none"
            failure = f"{where} requires {need} distinct authorities, {len(satisfied)} satisfied ({got})"
        if revoked_notes and signers:
            failure += f"; revoked: {'; '.join(revoked_notes)}"
        return _verdict(scope, failure, **fields)
    if missing:
        return _verdict(scope, f"{where} requires attestation(s) missing from the model: {', '.join(missing)}", **fields)
    ok = f"{where}: satisfied by {', '.join(satisfied)} ({scope.threshold} required)"
    if revoked_notes:
        ok += f"; ignored revoked: {'; '.join(revoked_notes)}"
    return Decision("allow", ok, scope.name, scope.mode, **fields)
