"""One exception hierarchy for omsign.

Every failure a user can cause or meet is one of these. Each carries a one-line message
(what went wrong) and an optional hint (what to do next). The CLI maps the class to an exit
code in one place; library code never calls ``sys.exit``.

Exit codes (documented in the README):

====  =====================  ==================================================
code  class                  meaning
====  =====================  ==================================================
1     OmsignError            unexpected failure (a bug: please report it)
2     UsageError             bad flags, bad reference, missing policy
3     InputError             model folder, key or local file unusable
4     RegistryError          registry unreachable, protocol error, retries spent
5     AuthError              credentials missing or refused
6     NotFoundError          repository, tag, manifest or blob does not exist
7     IntegrityError         bytes do not match their digest/size; unsafe content
8     VerificationError      no signature satisfies the policy
9     LimitError             a configured limit was exceeded (hostile input)
130   (Ctrl-C)               interrupted; staging folders removed (cli.py)
====  =====================  ==================================================

Usage errors found by the command-line parser itself (unknown option, missing argument) are
mapped to 2 in ``cli.py`` as well.
"""

from __future__ import annotations


class OmsignError(Exception):
    """Base class: a failure with a user-facing message."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message (and hint) folded onto one line for terminals and logs."""
        text = " ".join(self.message.split())
        if self.hint:
            text += f" ({' '.join(self.hint.split())})"
        return text


class UsageError(OmsignError):
    exit_code = 2


class InputError(OmsignError):
    exit_code = 3


class RegistryError(OmsignError):
    exit_code = 4


class AuthError(RegistryError):
    exit_code = 5


class NotFoundError(RegistryError):
    exit_code = 6


class IntegrityError(OmsignError):
    exit_code = 7


class VerificationError(OmsignError):
    exit_code = 8


class LimitError(OmsignError):
    exit_code = 9

