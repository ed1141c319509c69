"""``omsign gate``: the hub-side service that verifies every upload a registry reports.

Registered on the main app by ``cli.py`` (with its option groups and example). It runs until
SIGINT or SIGTERM; each verdict is one line on stderr and a row in the ledger
(``GET /api/results``, ``GET /``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_options import RegistryArgs
from .errors import InputError, UsageError

GATE = "Gate"


def gate_command(
    *,
    registry: Annotated[
        str,
        typer.Option(
            "--registry", metavar="HOST[:PORT]", help="The registry whose notifications the gate receives, and reads from.",
            rich_help_panel=GATE, show_default=False,
        ),
    ],
    policy: Annotated[
        Path,
        typer.Option(
            "--policy", metavar="FILE", help="Trust policy (docs/policy.md) every upload is checked against.",
            rich_help_panel=GATE, show_default=False,
        ),
    ],
    listen: Annotated[
        str, typer.Option("--listen", metavar="HOST:PORT", help="Where the webhook endpoint and status page listen.", rich_help_panel=GATE)
    ] = "127.0.0.1:8780",
    quarantine: Annotated[
        str, typer.Option("--quarantine", metavar="PREFIX", help="Repositories uploads land in before promotion.", rich_help_panel=GATE)
    ] = "incoming/",
    promote_to: Annotated[
        str,
        typer.Option(
            "--promote-to", metavar="PREFIX", help="Prefix replacing --quarantine for admitted models (incoming/x -> PREFIX x).",
            rich_help_panel=GATE,
        ),
    ] = "models/",
    no_promote: Annotated[
        bool, typer.Option("--no-promote", help="Record verdicts only; copy nothing.", rich_help_panel=GATE)
    ] = False,
    db: Annotated[
        Path | None,
        typer.Option("--db", metavar="FILE", help="The ledger (SQLite); default $XDG_STATE_HOME/omsign/gate.sqlite.", rich_help_panel=GATE),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", metavar="FILE",
            help="Shared secret the registry must send as 'Authorization: Bearer …' (else $OMSIGN_GATE_TOKEN; none: open).",
            rich_help_panel=GATE,
        ),
    ] = None,
    reg: RegistryArgs,
) -> None:
    """Verify every model pushed to a registry against a policy; promote what it admits."""
    from .gate import Gate, GateConfig, GateServer, Ledger
    from .gate.service import default_db, parse_listen
    from .gate.wiring import copy_promoter, manifest_reader, trust_evaluator

    if quarantine and not quarantine.endswith("/"):
        raise UsageError(f"--quarantine {quarantine!r} must end with '/' (a namespace)")
    if promote_to and not promote_to.endswith("/"):
        raise UsageError(f"--promote-to {promote_to!r} must end with '/' (a namespace)")
    if not no_promote and quarantine == promote_to:
        raise UsageError("--promote-to must differ from --quarantine", hint="or pass --no-promote")
    token = _token(token_file)
    host, port = parse_listen(listen)
    from .cli_app import _store_options  # the registry flags mean what they mean everywhere

    options = _store_options(reg)
    from .policyfile import load_policy

    load_policy(policy)  # a malformed policy stops the gate before it listens (exit 2, file:line)
    evaluate = trust_evaluator(policy, options)
    config = GateConfig(registry=registry, quarantine=quarantine, trusted=promote_to, token=token)
    gate = Gate(
        config,
        Ledger(db or default_db()),
        evaluate,
        None if no_promote else copy_promoter(options, policy),
        manifest_reader(registry, options),
    )
    try:
        server = GateServer(gate, host, port)
    except OSError as exc:
        raise InputError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
    logging.basicConfig(level=logging.INFO, format="omsign gate: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    typer.echo(f"omsign gate: listening on http://{host}:{server.port} for {registry}", err=True)
    with contextlib.suppress(_Stopped):  # SIGTERM: the server closed its ledger on the way out
        server.serve_forever()


class _Stopped(Exception):
    pass


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise _Stopped()


def _token(path: Path | None) -> str | None:
    if path is not None:
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise InputError(f"cannot read --token-file {path}: {exc.strerror or exc}") from exc
        if not text:
            raise InputError(f"--token-file {path} is empty")
        return text
    return os.environ.get("OMSIGN_GATE_TOKEN") or None
