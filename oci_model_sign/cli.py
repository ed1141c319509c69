"""The ``omsign`` command line: parses flags, calls the API, maps errors to exit codes.

No logic lives here. Every failure prints one line on stderr (``omsign: error: ...``) and
exits with the code of its class (see ``errors.py`` and the README); a traceback is a bug and
is shown only with ``OMSIGN_DEBUG=1``. The app and the step from flags to library objects are
in ``cli_app.py``; options are defined once, in groups, in ``cli_options.py``; what is printed
is shaped in ``cli_output.py``; the commands live in ``cli_transfer``, ``cli_signing``,
``cli_promote``, ``cli_attest``, ``cli_audit``, ``cli_gate`` and ``cli_policy``, one
parse-and-call function each.
"""

from __future__ import annotations

import difflib
import os
import sys
from typing import Any, NoReturn

import typer

from .cli_app import (
    PROG,
    RUN,
    _annotations,
    _policy_from,
    _say,
    _signer_from,
    _silence_stdout,
    _stdout_gone,
    _store_options,
    app,
    command,
)
from .cli_output import print_json
from .errors import OmsignError
from .interrupts import InterruptGuard

__all__ = ["app", "main", "usage_line"]


def _load_commands() -> None:
    """Each module registers its commands on ``app``; this order is the order of ``--help``."""
    import importlib

    for name in ("cli_transfer", "cli_signing", "cli_promote"):
        importlib.import_module(f"{__package__}.{name}")


_load_commands()


# -- errors -----------------------------------------------------------------------------------
def _parser_errors() -> tuple[type[BaseException], ...]:
    """The command-line parser's exception types, whichever click typer runs on.

    typer 0.29 carries its own copy of click (``typer.TyperException`` at the root); older
    releases raise the ``click`` package's. Both are matched so an upgrade cannot turn a typo
    into an "internal error" again.
    """
    kinds: list[type[BaseException]] = []
    vendored = getattr(typer, "TyperException", None)
    if isinstance(vendored, type) and issubclass(vendored, BaseException):
        kinds.append(vendored)
    try:
        import click
    except ImportError:  # typer >= 0.29 does not need it
        pass
    else:
        kinds.append(click.ClickException)
    return tuple(kinds)


def _aborts() -> tuple[type[BaseException], ...]:
    kinds: list[type[BaseException]] = [typer.Abort]
    try:
        import click
    except ImportError:
        pass
    else:
        kinds.append(click.exceptions.Abort)
    return tuple(kinds)


def _suggest(word: str, choices: list[str], cutoff: float = 0.6) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    return close[0] if close else None


def _usage(ctx: Any, where: str) -> str:
    params = getattr(getattr(ctx, "command", None), "params", []) or []
    args = [
        str(getattr(p, "metavar", None) or p.name).upper()
        for p in params
        if getattr(p, "param_type_name", "") == "argument"
    ]
    return " ".join([where, "[OPTIONS]", *args])


def _options_of(ctx: Any) -> list[str]:
    names: list[str] = []
    for param in getattr(getattr(ctx, "command", None), "params", []) or []:
        names += [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]
    return [n for n in names if n.startswith("-")]


def usage_line(exc: BaseException) -> str:
    """One line naming what was wrong on the command line and how to fix it."""
    try:
        return _usage_line(exc)
    except Exception:  # a parser error shaped unlike the ones known: its own words
        return " ".join(str(getattr(exc, "message", "") or exc).split())


def _usage_line(exc: BaseException) -> str:
    ctx = getattr(exc, "ctx", None)
    where = getattr(ctx, "command_path", None) or PROG
    see = f"see '{where} --help'"
    kind = type(exc).__name__
    message = str(getattr(exc, "message", "") or exc)
    if kind == "NoArgsIsHelpError" or (ctx is not None and kind == "UsageError" and not message.strip()):
        if where == PROG:
            return f"no command given (run '{PROG} --help' for the commands, e.g. {PROG} push DIR REF)"
        return f"'{where}' needs arguments ({see})"
    if kind == "NoSuchOption":
        option = str(getattr(exc, "option_name", "") or message)
        possible = list(getattr(exc, "possibilities", None) or [])
        guess = possible[0] if possible else _suggest(option, _options_of(ctx), 0.7)
        hint = f"did you mean {guess}? {see}" if guess else see
        return f"'{where}' has no option {option} ({hint})"
    if kind == "MissingParameter":
        param = getattr(exc, "param", None)
        if param is not None and getattr(param, "param_type_name", "") == "argument":
            what = f"missing argument {str(getattr(param, 'metavar', None) or param.name).upper()}"
        elif param is not None:
            what = f"missing option {'/'.join(param.opts)}"
        else:
            what = message.rstrip(".")
        return f"{what} for '{where}' (usage: {_usage(ctx, where)}; {see})"
    if kind in ("BadParameter", "BadOptionUsage", "BadArgumentUsage"):
        param = getattr(exc, "param", None)
        names = "/".join(getattr(param, "opts", []) or []) if param is not None else ""
        label = names or str(getattr(exc, "param_hint", "") or "")
        text = message.rstrip(".")
        return f"invalid value for {label}: {text} ({see})" if label else f"{text} ({see})"
    if message.startswith("No such command"):
        name = message.split("'")[1] if message.count("'") >= 2 else ""
        commands: list[str] = []
        if ctx is not None:
            try:
                commands = list(ctx.command.list_commands(ctx))
            except Exception:  # a parser without a command list: no suggestion
                commands = []
        guess = _suggest(name, commands) if name else None
        hint = f"did you mean '{PROG} {guess}'? " if guess else ""
        return f"unknown command '{name}' ({hint}run '{PROG} --help' for the commands)"
    text = " ".join(getattr(exc, "format_message", lambda: message)().split())
    return f"{text.rstrip('.')} ({see})"


def _exit(code: int) -> NoReturn:
    sys.exit(code)


from .cli_audit import audit_command  # noqa: E402  (registered after the commands above)

command(
    "audit",
    example=(
        "omsign audit registry.example.com --signed-by ci@example.com --between 2026-03-01T00:00:00Z 2026-03-08T00:00:00Z",
        "omsign audit registry.example.com/models --policy policy.yaml --html audit.html",
    ),
)(audit_command)

from .cli_gate import gate_command  # noqa: E402

command(
    "gate",
    example=(
        "omsign gate --registry hub.example.com --policy policy.yaml --listen 127.0.0.1:8780",
        "# in the registry's config.yml: notifications.endpoints: [{name: gate, url: http://127.0.0.1:8780/events}]",
    ),
)(gate_command)

from .cli_policy import policy_app  # noqa: E402

app.add_typer(policy_app, name="policy")

from .cli_attest import Helpers as _AttestHelpers  # noqa: E402
from .cli_attest import register as _register_attest  # noqa: E402

_register_attest(
    command,
    _AttestHelpers(
        store_options=_store_options, signer_from=_signer_from, policy_from=_policy_from,
        annotations=_annotations, print_json=print_json,
    ),
)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning every failure into one line and an exit code."""
    RUN.guard = InterruptGuard()  # one per run: nothing carries over between in-process calls
    _guard = RUN.guard
    _guard.install()
    try:
        code = _run(argv)
    finally:
        _guard.restore()
    if _guard.interrupted:
        _interrupted()
    _exit(code)


def _interrupted() -> NoReturn:
    """Staging folders go, the process ends with 130 even if worker threads are still blocked."""
    RUN.guard.exit_now()
    raise AssertionError("unreachable")  # pragma: no cover


# cosign spells boolean flags with a value (``--tlog-upload=false``); click's on/off flags do not
# take one, so those spellings are rewritten to the flag pair before parsing.
_COSIGN_BOOL_FLAGS = ("--tlog-upload",)


def _cosign_bool_flags(argv: list[str]) -> list[str]:
    out: list[str] = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        if sep and name in _COSIGN_BOOL_FLAGS and value.lower() in ("true", "false", "1", "0"):
            arg = name if value.lower() in ("true", "1") else "--no-" + name[2:]
        out.append(arg)
    return out


def _run(argv: list[str] | None) -> int:
    args = _cosign_bool_flags(list(sys.argv[1:] if argv is None else argv))
    try:
        rv = app(args=args, prog_name=PROG, standalone_mode=False)
    except OmsignError as exc:
        if RUN.guard.interrupted:
            return 130
        _say(exc.one_line())
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except _parser_errors() as exc:
        if int(getattr(exc, "exit_code", 2)) != 2:  # e.g. a file the parser could not open
            _say(" ".join(str(exc).split()))
            return 3
        _say(usage_line(exc))
        return 2
    except _aborts():
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except SystemExit as stop:
        if stop.code == 1 and _stdout_gone():  # typer or rich met a closed pipe (--help | head)
            _silence_stdout()
            return 0
        raise
    except Exception as exc:  # a bug: say so in one line, keep the traceback for debugging
        if RUN.guard.interrupted:
            return 130
        if os.environ.get("OMSIGN_DEBUG"):
            raise
        _say(f"{type(exc).__name__}: {exc} (set OMSIGN_DEBUG=1 for details)", prefix="omsign: internal error")
        return 1
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    main()
