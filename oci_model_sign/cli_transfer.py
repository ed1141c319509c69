"""Moving models: ``push``, ``pack``, ``pull`` (and ``pull --cache``), ``inspect``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from . import api
from .cli_app import (
    REQUIRE_ATTESTATION_HELP,
    RUN,
    _annotations,
    _flag_policy,
    _pack_options,
    _reporter,
    _requirements,
    _say_trust,
    _signer_from,
    _store_options,
    command,
)
from .cli_options import (
    PACKING,
    OutputArgs,
    PackArgs,
    PolicyArgs,
    RegistryArgs,
    SignerArgs,
    TransferArgs,
)
from .cli_output import human_size, print_json
from .errors import UsageError

# -- commands -------------------------------------------------------------------------------
ModelDir = Annotated[Path, typer.Argument(metavar="DIR", help="The model folder (or a single file).", show_default=False)]


@command(
    example=(
        "omsign push ./my-model registry.example.com/models/my-model:v1",
        "COSIGN_PASSWORD=... omsign push --sign --key cosign.key ./my-model localhost:5000/m:v1",
    )
)
def push(
    model_dir: ModelDir,
    reference: Annotated[str, typer.Argument(metavar="REF", help="registry/repo:tag, or oci:PATH[:TAG].", show_default=False)],
    *,
    pack: PackArgs,
    mount_from: Annotated[
        list[str],
        typer.Option(
            "--mount-from", metavar="REPO", help="Repository on the same registry to mount blobs from (repeatable).",
            rich_help_panel=PACKING,
        ),
    ] = [],  # noqa: B006 - typer reads the default, nothing mutates it
    sign: Annotated[
        bool, typer.Option("--sign", help="Sign the pushed manifest (see omsign sign --help).", rich_help_panel="Signing")
    ] = False,
    signing: SignerArgs,
    reg: RegistryArgs,
    transfer: TransferArgs,
    out: OutputArgs,
) -> None:
    """Pack a model folder (one layer per file, CNCF ModelPack) and push it."""
    options = _store_options(reg, transfer.concurrency)
    pack_options = _pack_options(pack)
    annotations = _annotations(signing.annotation)
    signer = _signer_from(signing) if sign else None
    if signer is not None:
        api.ensure_can_sign(signer)  # a wrong password or no token fails before any upload
    _run_push(
        model_dir, reference, pack_options, options, pack.no_cache, transfer.progress, out.json_out, signer,
        annotations, mount_from=list(mount_from),
    )


def _run_push(
    model_dir: Path,
    reference: str,
    pack: Any,
    options: Any,
    no_cache: bool,
    progress: bool | None,
    json_out: bool,
    signer: Any,
    annotations: dict[str, str],
    mount_from: list[str] | None = None,
) -> None:
    reporter = _reporter(progress, 0, f"push {model_dir.name}")  # the plan sets the total
    try:
        result = api.push(
            model_dir, reference, options=options, pack_options=pack, use_cache=not no_cache,
            reporter=reporter, mount_from=mount_from,
        )
    finally:
        reporter.close()
    doc: dict[str, Any] = result.to_json()
    if signer is not None:
        try:
            signed = api.sign(result.reference, signer, options=options, annotations=annotations)
        finally:
            signer.close()
        doc["signing"] = signed.to_json()
    if json_out:
        print_json(doc)
        return
    uploaded = sum(1 for layer in result.layers if layer.uploaded)
    typer.echo(
        f"pushed {len(result.layers)} files ({uploaded} uploaded, {human_size(result.uploaded_bytes)}) to {reference}",
        err=True,
    )
    if signer is not None:
        typer.echo(f"signed {result.digest}", err=True)
    typer.echo(result.digest)


@command(example=("omsign pack ./my-model oci:./store:v1",))
def pack(
    model_dir: ModelDir,
    reference: Annotated[str, typer.Argument(metavar="LAYOUT", help="oci:PATH[:TAG] of the on-disk layout to write.", show_default=False)],
    *,
    pack: PackArgs,
    transfer: TransferArgs,
    out: OutputArgs,
) -> None:
    """Write a model into an on-disk OCI image layout, offline."""
    from .reference import parse_reference
    from .store.base import StoreOptions

    if not parse_reference(reference).is_layout:
        raise UsageError(
            f"pack writes an on-disk layout: use oci:PATH[:TAG], not {reference!r}",
            hint="use omsign push for registries",
        )
    pack_options = _pack_options(pack)
    _run_push(
        model_dir, reference, pack_options, StoreOptions(concurrency=transfer.concurrency), pack.no_cache,
        transfer.progress, out.json_out, None, {},
    )


@command(
    example=(
        "omsign pull localhost:5000/models/m:v1 ./model",
        "omsign pull --verify --key cosign.pub --insecure-ignore-tlog registry.example.com/models/m:v1 ./model",
        "omsign pull --policy policy.yaml registry.example.com/models/m:v1 ./model   # verified by the policy file",
        "omsign pull --cache registry.example.com/models/m:v1   # prints the verified cache folder",
    )
)
def pull(
    reference: Annotated[str, typer.Argument(metavar="REF", help="registry/repo:tag[@digest] or oci:PATH[:TAG].", show_default=False)],
    dest: Annotated[
        Path | None,
        typer.Argument(metavar="DEST", help="Folder to place the model in (created if missing); not with --cache.", show_default=False),
    ] = None,
    *,
    include: Annotated[
        list[str], typer.Option("--include", metavar="PAT", help="Only files matching this glob (repeatable).")
    ] = [],  # noqa: B006
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace what DEST holds (in one swap, once every layer verified)."),
    ] = False,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache",
            help="Into the verified model cache ($XDG_CACHE_HOME/omsign/models), by manifest digest; prints its folder. "
            "Verified on every call; only missing or changed files are downloaded.",
        ),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify", help="Verify the signature before downloading (signer flags or a policy file; automatic when a policy file's scope matches).",
            rich_help_panel="Policy",
        ),
    ] = False,
    policy_args: PolicyArgs,
    require_attestation: Annotated[
        list[str],
        typer.Option("--require-attestation", metavar="TYPE[:EXPR]", help=REQUIRE_ATTESTATION_HELP, rich_help_panel="Policy"),
    ] = [],  # noqa: B006
    no_model_signing_bundle: Annotated[
        bool,
        typer.Option(
            "--no-model-signing-bundle", help="Do not write model.sig after a verified pull.", rich_help_panel="Output"
        ),
    ] = False,
    reg: RegistryArgs,
    transfer: TransferArgs,
    out: OutputArgs,
) -> None:
    """Pull a model; every layer is checked against its digest before files are placed."""
    options = _store_options(reg, transfer.concurrency)
    requirements = _requirements(require_attestation)
    policy = _flag_policy(policy_args)  # cosign-style flags take precedence over the policy file
    if cache:
        _pull_cache(reference, dest, include, force, policy, policy_args.policy_file, options, transfer, out)
        return
    if dest is None:
        raise UsageError(
            "missing argument DEST for 'omsign pull'",
            hint="usage: omsign pull [OPTIONS] REF DEST, or omsign pull --cache REF; see 'omsign pull --help'",
        )
    RUN.guard.watch(Path(os.path.abspath(dest)).parent)  # Ctrl-C removes our staging folder there
    reporter = _reporter(transfer.progress, 0, f"pull {reference}")
    try:
        result = api.pull(
            reference, dest, policy=policy, include=list(include) or None, options=options,
            write_model_sig=not no_model_signing_bundle, reporter=reporter, force=force,
            policy_file=policy_args.policy_file, require_policy=verify,
            require_attestations=requirements,
        )
    finally:
        reporter.close()
    _say_trust(result.trust)
    if out.json_out:
        print_json(result.to_json())
        return
    if result.verification is not None:
        typer.echo(result.verification.summary(), err=True)
    typer.echo(f"pulled {len(result.files)} files ({human_size(result.downloaded_bytes)}) into {dest}", err=True)
    typer.echo(result.digest)


def _pull_cache(
    reference: str, dest: Path | None, include: list[str], force: bool, policy: Any, policy_file: str | None,
    options: Any, transfer: TransferArgs, out: OutputArgs,
) -> None:
    from .snapshot import MISSING, resolve_snapshot

    if dest is not None or include or force:
        raise UsageError("--cache places the model in the model cache: it takes no DEST, --include or --force")
    allow_unsigned = policy is None and policy_file == "none"  # the explicit opt-out
    chosen = policy if policy is not None else (None if allow_unsigned else MISSING)
    reporter = _reporter(transfer.progress, 0, f"pull {reference}")
    try:
        snap = resolve_snapshot(
            reference, chosen, allow_unsigned=allow_unsigned, options=options, reporter=reporter,
            policy_file=None if allow_unsigned else policy_file,
        )
    finally:
        reporter.close()
    if out.json_out:
        doc: dict[str, Any] = {
            "reference": snap.reference, "digest": snap.digest, "path": str(snap.path),
            "fetched": list(snap.fetched), "downloadedBytes": snap.downloaded_bytes,
        }
        if snap.verification is not None:
            doc["verification"] = snap.verification.to_dict()
        if snap.trust is not None:
            doc["policy"] = snap.trust.to_dict()
        print_json(doc)
        return
    if snap.verification is not None:
        typer.echo(snap.verification.summary(), err=True)
    typer.echo(
        f"cached {snap.reference}: {len(snap.fetched)} files fetched ({human_size(snap.downloaded_bytes)})", err=True
    )
    typer.echo(str(snap.path))


@command(example=("omsign inspect localhost:5000/models/m:v1", "omsign inspect --json oci:./store:v1 | jq .files"))
def inspect(
    reference: Annotated[str, typer.Argument(metavar="REF", help="registry/repo:tag[@digest] or oci:PATH[:TAG].", show_default=False)],
    *,
    reg: RegistryArgs,
    out: OutputArgs,
) -> None:
    """Show a model's manifest, files, sizes, media types and signatures (no download)."""
    from .cli_output import inspect_lines, print_inspect_table

    result = api.inspect(reference, options=_store_options(reg))
    if out.json_out:
        print_json(result.to_json())
    elif sys.stdout.isatty():
        print_inspect_table(result)
    else:  # a pipe or a file: plain lines, full digests, nothing cut to a terminal width
        sys.stdout.write("\n".join(inspect_lines(result)) + "\n")
        sys.stdout.flush()
