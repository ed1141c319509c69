"""Promotion: ``copy`` (with every referrer), ``tag`` and ``ls``."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from .cli_app import (
    REQUIRE_ATTESTATION_HELP,
    _flag_policy,
    _reporter,
    _requirements,
    _store_options,
    command,
)
from .cli_options import (
    OutputArgs,
    PolicyArgs,
    RegistryArgs,
    TransferArgs,
)
from .cli_output import human_size, print_json
from .errors import UsageError


# -- promotion: copy, tag, ls -------------------------------------------------------------------
def _with_creds(options: Any, creds: str | None, flag: str) -> Any:
    """``USER[:PASSWORD]`` for one side of a copy (skopeo's --src-creds/--dest-creds)."""
    if creds is None:
        return options
    user, sep, password = creds.partition(":")
    if not user:
        raise UsageError(f"{flag} must be USER[:PASSWORD]")
    return dataclasses.replace(options, username=user, password=password if sep else "", credentials_source=flag)


def _explicit_tag(text: str) -> bool:
    """True when a reference names its tag (``repo`` alone defaults to ``latest`` silently)."""
    from .reference import parse_reference

    ref = parse_reference(text)
    if ref.tag is None:
        return False
    name = text.split("@", 1)[0]
    return name.endswith(f":{ref.tag}")


@command(
    example=(
        "omsign copy --verify --key cosign.pub train.example.com/m:v1 prod.example.com/m:v1",
        "omsign copy registry.example.com/m:v1 oci-archive:m.tar   # for an air gap",
    )
)
def copy(
    source: Annotated[str, typer.Argument(metavar="SRC", help="registry/repo:tag, oci:PATH[:TAG] or oci-archive:FILE.tar[:TAG].", show_default=False)],
    destination: Annotated[str, typer.Argument(metavar="DST", help="Where to copy to (any store; created if missing).", show_default=False)],
    *,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Tag at the destination (default: its own, else the source's).")
    ] = None,
    no_referrers: Annotated[
        bool, typer.Option("--no-referrers", help="Copy only the model, not its signatures and attestations.")
    ] = False,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Write nothing unless the source verifies (needs a policy).", rich_help_panel="Policy"),
    ] = False,
    policy_args: PolicyArgs,
    require_attestation: Annotated[
        list[str],
        typer.Option("--require-attestation", metavar="TYPE[:EXPR]", help=REQUIRE_ATTESTATION_HELP, rich_help_panel="Policy"),
    ] = [],  # noqa: B006
    src_creds: Annotated[
        str | None,
        typer.Option("--src-creds", metavar="USER[:PASS]", help="Credentials for the source registry.", rich_help_panel="Registry"),
    ] = None,
    dest_creds: Annotated[
        str | None,
        typer.Option("--dest-creds", metavar="USER[:PASS]", help="Credentials for the destination registry.", rich_help_panel="Registry"),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither use nor update the blob-location cache.")
    ] = False,
    reg: RegistryArgs,
    transfer: TransferArgs,
    out: OutputArgs,
) -> None:
    """Copy a model and, by default, every signature and attestation attached to it."""
    from . import promote
    from .reference import parse_reference

    options = _store_options(reg, transfer.concurrency)
    src_options = _with_creds(options, src_creds, "--src-creds")
    dst_options = _with_creds(options, dest_creds, "--dest-creds")
    requirements = _requirements(require_attestation)
    policy = _flag_policy(policy_args)  # cosign-style flags take precedence over the policy file
    target = parse_reference(destination)
    if not _explicit_tag(destination):
        target = dataclasses.replace(target, tag=None)  # the source's tag, if it has one
    reporter = _reporter(transfer.progress, 0, f"copy {source}")
    try:
        result = promote.copy(
            source, target, src_options=src_options, dst_options=dst_options,
            referrers=not no_referrers, policy=policy, tag=tag, concurrency=transfer.concurrency,
            reporter=reporter, use_cache=not no_cache, verify=verify,
            policy_file=policy_args.policy_file if verify else None,
            require_attestations=requirements,
        )
    finally:
        reporter.close()
    if out.json_out:
        print_json(result.to_json())
        return
    if result.verification is not None:
        typer.echo(result.verification.summary(), err=True)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    s = result.stats
    typer.echo(
        f"copied {s.blobs} blobs ({s.copied_blobs} sent, {human_size(s.copied_bytes)}; {s.mounted_blobs} mounted; "
        f"{s.skipped_blobs} already there), {s.referrers} referrers, {s.legacy_signatures} legacy signatures "
        f"to {result.destination}",
        err=True,
    )
    typer.echo(result.digest)


@command("tag", example=("omsign tag localhost:5000/models/m:v1 stable",))
def tag_command(
    reference: Annotated[str, typer.Argument(metavar="REF", help="The model to tag (tag or digest).", show_default=False)],
    new_tag: Annotated[str, typer.Argument(metavar="NEWTAG", help="The new tag, in the same repository.", show_default=False)],
    *,
    reg: RegistryArgs,
    out: OutputArgs,
) -> None:
    """Add a tag to a model in its repository (the manifest only: no blob traffic)."""
    from . import promote

    result = promote.tag(reference, new_tag, options=_store_options(reg))
    if out.json_out:
        print_json(result.to_json())
        return
    typer.echo(f"tagged {result.reference}", err=True)
    typer.echo(result.digest)


@command("ls", example=("omsign ls localhost:5000/models/m", "omsign ls --json oci:./store"))
def ls_command(
    repository: Annotated[str, typer.Argument(metavar="REPO", help="registry/repo, oci:PATH or oci-archive:FILE.tar.", show_default=False)],
    *,
    page_size: Annotated[
        int | None, typer.Option("--page-size", min=1, help="Tags asked for per page (registries).", rich_help_panel="Registry")
    ] = None,
    reg: RegistryArgs,
    out: OutputArgs,
) -> None:
    """List the tags of a repository, one per line (every page of the registry's list)."""
    from . import promote

    tags = promote.list_tags(repository, options=_store_options(reg), page_size=page_size)
    if out.json_out:
        print_json({"repository": repository, "tags": tags})
        return
    for t in tags:
        typer.echo(t)
