"""The one internal signal of verification: this candidate does not pass, and why."""

from __future__ import annotations


class CandidateRejected(Exception):
    """One candidate failed a check; the message is the user-facing reason.

    Internal to verification: every per-candidate entry point turns it into a failed
    ``CandidateResult`` so one bad signature never stops the others being tried.
    """
