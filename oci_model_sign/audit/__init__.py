"""``omsign audit``: which models does a registry hold, who signed them, do they pass the policy?

``run_audit`` walks a registry's catalog (or named repositories), their tags and each model's
referrers and legacy signatures; ``report`` renders the result as JSON, a table or HTML.
Limits and their defaults are in ``results`` and ``docs/audit.md``.
"""

from __future__ import annotations

from .engine import run_audit
from .results import MAX_REPOSITORIES, MAX_TAGS, AuditOptions, AuditReport, ModelAudit, SignedBy
from .verifiers import Verifiers, flag_scope

__all__ = [
    "MAX_REPOSITORIES",
    "MAX_TAGS",
    "AuditOptions",
    "AuditReport",
    "ModelAudit",
    "SignedBy",
    "Verifiers",
    "flag_scope",
    "run_audit",
]
