"""Regular expressions with Go's RE2 semantics, as cosign evaluates its ``-regexp`` flags.

cosign is written in Go, so ``--certificate-identity-regexp`` and
``--certificate-oidc-issuer-regexp`` are RE2 (``regexp.MatchString``: unanchored search). Python's
``re`` differs where it matters for a policy: ``$`` also matches before a final newline (so
``^ci@example\\.com$`` would admit ``"ci@example.com\\n"``), it accepts look-arounds and
back-references that RE2 rejects, and it spells ``\\z`` as ``\\Z``. Using the RE2 engine itself
(``google-re2``) removes the whole class of differences instead of patching them one by one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

from ..errors import UsageError


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the error is reported as a UsageError, not on stderr by RE2
    return options


@lru_cache(maxsize=64)
def compile_re2(pattern: str, flag: str = "regexp") -> Any:
    """The compiled RE2 program, or a ``UsageError`` naming ``flag`` for invalid syntax."""
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise UsageError(
            f"{flag} {pattern!r} is not a valid RE2 regular expression: {detail}",
            hint="cosign's regexps are Go RE2: no look-arounds or back-references; \\z ends the text",
        ) from exc


def re2_search(pattern: str, text: str, flag: str = "regexp") -> bool:
    """Go's ``regexp.MatchString(pattern, text)``: true when the pattern matches anywhere."""
    return compile_re2(pattern, flag).search(text) is not None
