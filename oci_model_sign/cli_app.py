"""The ``omsign`` typer app, its ``command`` decorator, and the step from flags to library objects.

Every command module (``cli_transfer``, ``cli_signing``, ``cli_promote``, ``cli_attest``, ...)
registers on this one app; ``cli.py`` imports them all and maps every failure to one line and
an exit code.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from . import __version__
from .cli_options import (
    LocalPolicyArgs,
    PackArgs,
    PolicyArgs,
    RegistryArgs,
    SignerArgs,
    grouped,
)
from .errors import UsageError
from .interrupts import InterruptGuard

PROG = "omsign"

app = typer.Typer(
    name=PROG,
    help="Pack ML models as OCI artifacts, sign them with Sigstore, verify them on pull.",
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

class _Run:
    """What one run of ``main`` shares with its command: the Ctrl-C guard (one per run, so
    nothing carries over between in-process calls)."""

    guard = InterruptGuard()


RUN = _Run()

F = TypeVar("F", bound=Callable[..., Any])


def _example(*lines: str) -> str:
    return "[b]Examples[/b]\n\n" + "\n\n".join(f"  {line}" for line in lines)


def command(name: str | None = None, *, example: tuple[str, ...]) -> Callable[[F], F]:
    """``app.command`` with grouped options, an example in ``--help``, and a quiet closed pipe."""

    def decorate(fn: F) -> F:
        expanded = grouped(fn)

        @functools.wraps(expanded)
        def run(**kwargs: Any) -> Any:
            try:
                return expanded(**kwargs)
            except BrokenPipeError:
                _silence_stdout()
                raise typer.Exit(0) from None

        app.command(name, epilog=_example(*example))(run)
        return fn

    return decorate


def _silence_stdout() -> None:
    """The reader went away (``| head``): drop what is still buffered, exit without noise."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _stdout_gone() -> bool:
    """True once typer or rich has found stdout's reader gone: each swaps stdout for a sink
    (click's ``PacifyFlushWrapper``, or ``/dev/null`` on the descriptor) and exits 1."""
    if type(sys.stdout).__name__ == "PacifyFlushWrapper":
        return True
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(os.devnull))
    except (OSError, ValueError):
        return False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Pack ML models as OCI artifacts, sign them with Sigstore, verify them on pull."""
    if ctx.invoked_subcommand is None:  # a bare `omsign` is a usage error, whichever typer runs
        raise UsageError(
            "no command given", hint=f"run '{PROG} --help' for the commands, e.g. {PROG} push DIR REF"
        )


# -- from flags to library objects ------------------------------------------------------------
def _store_options(reg: RegistryArgs, concurrency: int = 4) -> Any:
    from .store.base import StoreOptions
    from .store.credentials import explicit_credentials

    password = None
    if reg.password_stdin:
        if not reg.username:
            raise UsageError("--password-stdin needs --username")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin was given but stdin held no password")
    username, password, source = explicit_credentials(reg.username, password)
    return StoreOptions(
        plain_http=reg.plain_http,
        insecure=reg.insecure,
        ca_file=str(reg.ca_file) if reg.ca_file is not None else None,
        username=username,
        password=password,
        credentials_source=source,
        concurrency=concurrency,
    )


def _annotations(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"annotation {item!r} is not key=value", hint="e.g. -a env=prod")
        out[key] = value
    return out


def _reporter(enabled: bool | None, total: int, label: str) -> Any:
    from .progress import make_reporter

    return make_reporter(enabled, total, label)


def _password_for_key() -> bytes | None:
    for name in ("OMSIGN_PASSWORD", "COSIGN_PASSWORD"):
        if name in os.environ:
            return os.environ[name].encode()
    return None


def _signer(
    key: Path | None,
    certificate: Path | None,
    certificate_chain: list[Path],
    identity_token: str | None,
    staging: bool,
    trust_config: Path | None,
    *,
    background: bool = False,
    tlog_upload: bool = True,
) -> Any:
    from .signing.options import password_from_env, signer_from_options

    return signer_from_options(
        key=key, certificate=certificate, certificate_chain=list(certificate_chain),
        identity_token=identity_token, staging=staging, trust_config=trust_config,
        password=password_from_env(), tlog_upload=tlog_upload, background=background,
    )


def _policy(
    key: Path | None,
    identity: str | None,
    identity_regexp: str | None,
    issuer: str | None,
    issuer_regexp: str | None,
    certificate_chain: Path | None,
    ca_roots: Path | None,
    ignore_tlog: bool,
    offline: bool,
    trust_config: Path | None,
    staging: bool,
    annotations: dict[str, str],
) -> Any:
    from .verify.policy import policy_from_options

    return policy_from_options(
        key=key, certificate_identity=identity, certificate_identity_regexp=identity_regexp,
        certificate_oidc_issuer=issuer, certificate_oidc_issuer_regexp=issuer_regexp,
        certificate_chain=certificate_chain, ca_roots=ca_roots, insecure_ignore_tlog=ignore_tlog,
        offline=offline, trust_config=trust_config, staging=staging, annotations=annotations,
    )


def _signer_from(args: SignerArgs, *, background: bool = False) -> Any:
    return _signer(
        args.key, args.certificate, list(args.certificate_chain), args.identity_token, args.staging,
        args.trust_config, background=background, tlog_upload=args.tlog_upload,
    )


def _policy_from(args: LocalPolicyArgs, *, ignore_tlog: bool, annotations: dict[str, str]) -> Any:
    return _policy(
        args.key, args.certificate_identity, args.certificate_identity_regexp, args.certificate_oidc_issuer,
        args.certificate_oidc_issuer_regexp, args.certificate_chain, args.ca_roots, ignore_tlog,
        args.offline, args.trust_config, args.staging, annotations,
    )


def _flag_policy(args: PolicyArgs, *, always: bool = False) -> Any:
    """The policy cosign-style flags describe, or None when none was given (then the policy
    file decides); ``always`` builds it regardless (a "no policy" usage error included)."""
    if not (always or args.given()):
        return None
    return _policy_from(args, ignore_tlog=args.insecure_ignore_tlog, annotations=_annotations(args.annotation))


def _pack_options(args: PackArgs) -> Any:
    from .model.pack import PackOptions

    if args.compress not in ("none", "zstd"):
        raise UsageError(f"--compress must be none or zstd, not {args.compress!r}")
    return PackOptions(
        ignore=list(args.ignore),
        allow_symlinks=args.allow_symlinks,
        dereference=args.dereference,
        pack_dirs=list(args.pack_dir),
        compress="zstd" if args.compress == "zstd" else None,
        media_types=args.media_types,
        artifact_kind=args.artifact_type,
    )


REQUIRE_ATTESTATION_HELP = (
    "Also require a verified attestation of TYPE by the same signer policy, passing the CEL "
    "check EXPR if given (repeatable); nothing is downloaded otherwise."
)


def _requirements(specs: list[str]) -> list[Any]:
    """``--require-attestation`` values, parsed (and CEL compiled) before any request."""
    if not specs:
        return []
    from .attestations import parse_requirements

    return parse_requirements(specs)


def _say(line: str, prefix: str = "omsign: error") -> None:
    try:
        sys.stderr.write(f"{prefix}: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _say_trust(trust: Any) -> None:
    """What the policy file decided, when it did not simply admit the model: on stderr."""
    if trust is None:
        return
    if trust.warned:
        _say(trust.reason, prefix="omsign: warning")
    elif not trust.applies and trust.policy_source is not None:
        typer.echo(f"note: {trust.reason}", err=True)
