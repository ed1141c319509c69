"""The admission rule: which verified statements may admit a model into ``pull --verify``.

A valid signature proves who signed *something* about the manifest digest; the predicate type
says what. A signed vulnerability report or SBOM whose subject is the model says nothing
about whether the model may be used, so only cosign's image signature statement
(``https://sigstore.dev/cosign/sign/v1``) and the legacy simple-signing payload (which has no
predicate and means exactly "signed") admit a model. The model-signing statement vouches for
files, and is checked against the layers instead.

This is deliberately stricter than ``cosign verify``, which accepts any verifiable bundle.
"""

from __future__ import annotations

from ..oci.mediatypes import COSIGN_SIGN_PREDICATE

MODEL_ADMITTING_PREDICATES: tuple[str, ...] = (COSIGN_SIGN_PREDICATE,)


def admission_problem(predicate_type: str | None, allowed: tuple[str, ...] | None) -> str | None:
    """Why a verified statement of ``predicate_type`` does not admit (None when it does)."""
    if allowed is None or predicate_type in allowed:
        return None
    shown = str(predicate_type)[:120] if predicate_type is not None else "(none)"
    return (
        f"signed statement has predicateType {shown}, which does not admit a model "
        f"(only {', '.join(allowed)} does)"
    )
