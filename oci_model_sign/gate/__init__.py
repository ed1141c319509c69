"""A hub-side gate on registry webhooks: verify each upload, promote what the policy admits."""

from __future__ import annotations

from .events import Event, parse_envelope
from .ledger import Ledger, Result
from .service import Gate, GateConfig, GateServer, Verdict

__all__ = ["Event", "Gate", "GateConfig", "GateServer", "Ledger", "Result", "Verdict", "parse_envelope"]
