"""RE2 regular expressions for identity and issuer patterns in policy files.

cosign and Sigstore policy-controller evaluate ``--certificate-identity-regexp`` with Go's
``regexp`` package: RE2 syntax, linear time, no backreferences. A policy file read by omsign
must mean the same thing, and a hostile identity string must not make matching slow, so
patterns are compiled with google-re2 and never with Python's backtracking ``re``. As in Go's
``MatchString``, a pattern is *searched*, not anchored: write ``^…$`` for a whole-string match.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..errors import UsageError


def _re2() -> Any:
    try:
        import re2
    except ImportError as exc:  # pragma: no cover - google-re2 is a dependency
        raise UsageError(
            "regular expressions in a policy file need the google-re2 package",
            hint="pip install google-re2",
        ) from exc
    return re2


@lru_cache(maxsize=512)
def compile_re2(pattern: str) -> Any:
    """A compiled RE2 pattern; ``ValueError`` (with RE2's own message) when it is invalid."""
    re2 = _re2()
    options = re2.Options()
    options.log_errors = False  # RE2 would print parse errors on stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(f"not a valid RE2 regular expression: {detail}") from None


def re2_search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches anywhere in ``text`` (Go ``regexp.MatchString``)."""
    return compile_re2(pattern).search(text) is not None
