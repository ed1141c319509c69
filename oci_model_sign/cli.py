"""The ``omsign`` command line: parses flags, calls the API, maps errors to exit codes.

No logic lives here. Every failure prints one line on stderr (``omsign: error: ...``) and
exits with the code of its class (see ``errors.py`` and the README); a traceback is a bug and
is shown only with ``OMSIGN_DEBUG=1``. Options are defined once, in groups, in
``cli_options.py``; what is printed is shaped in ``cli_output.py``. The module runs past 500
lines only because it holds one short parse-and-call function per command (its help text and
examples included); commands with logic of their own live beside it (``cli_audit.py``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from . import __version__, api
from .cli_options import (
    PACKING,
    LocalPolicyArgs,
    OutputArgs,
    PackArgs,
    PolicyArgs,
    RegistryArgs,
    SignerArgs,
    TransferArgs,
    grouped,
)
from .cli_output import human_size, print_json
from .errors import OmsignError, UsageError
from .interrupts import InterruptGuard

PROG = "omsign"

app = typer.Typer(
    name=PROG,
    help="Pack ML models as OCI artifacts, sign them with Sigstore, verify them on pull.",
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

_guard = InterruptGuard()

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
    policy = None
    if policy_args.given():  # cosign-style flags take precedence over the policy file
        policy = _policy_from(
            policy_args, ignore_tlog=policy_args.insecure_ignore_tlog,
            annotations=_annotations(policy_args.annotation),
        )
    if cache:
        _pull_cache(reference, dest, include, force, policy, policy_args.policy_file, options, transfer, out)
        return
    if dest is None:
        raise UsageError(
            "missing argument DEST for 'omsign pull'",
            hint="usage: omsign pull [OPTIONS] REF DEST, or omsign pull --cache REF; see 'omsign pull --help'",
        )
    _guard.watch(Path(os.path.abspath(dest)).parent)  # Ctrl-C removes our staging folder there
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


def _say_trust(trust: Any) -> None:
    """What the policy file decided, when it did not simply admit the model: on stderr."""
    if trust is None:
        return
    if trust.warned:
        _say(trust.reason, prefix="omsign: warning")
    elif not trust.applies and trust.policy_source is not None:
        typer.echo(f"note: {trust.reason}", err=True)


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


@command(
    example=(
        "omsign sign --key cosign.key localhost:5000/models/m:v1",
        "SIGSTORE_ID_TOKEN=$(cat token) omsign sign registry.example.com/models/m:v1",
    )
)
def sign(
    reference: Annotated[
        str, typer.Argument(metavar="REF", help="The model to sign (a tag is resolved to its digest once).", show_default=False)
    ],
    *,
    signing: SignerArgs,
    format: Annotated[
        str,
        typer.Option(
            "--format", metavar="bundle|legacy|both", help="bundle (cosign v3 referrer), legacy (.sig tag) or both.",
            rich_help_panel="Signing",
        ),
    ] = "bundle",
    output_bundle: Annotated[
        Path | None,
        typer.Option("--output-bundle", metavar="FILE", help="Also write the cosign bundle here.", rich_help_panel="Output"),
    ] = None,
    no_model_signing_bundle: Annotated[
        bool,
        typer.Option(
            "--no-model-signing-bundle", help="Attach only the cosign signature, not the model-signing one.",
            rich_help_panel="Signing",
        ),
    ] = False,
    reg: RegistryArgs,
    out: OutputArgs,
) -> None:
    """Sign a model's manifest digest and attach the signature as an OCI referrer."""
    options = _store_options(reg)
    annotations = _annotations(signing.annotation)
    signer = _signer_from(signing, background=True)
    try:
        result = api.sign(
            reference, signer, options=options, annotations=annotations, format=format,
            model_signing_bundle=not no_model_signing_bundle, output_bundle=output_bundle,
        )
    finally:
        close = getattr(signer, "close", None)
        if callable(close):
            close()
    if out.json_out:
        print_json(result.to_json())
        return
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"signed {result.reference} ({', '.join(s['format'] for s in result.signatures)})", err=True)
    typer.echo(result.digest)


@command(
    example=(
        "omsign verify --key cosign.pub --insecure-ignore-tlog localhost:5000/models/m:v1",
        "omsign verify --certificate-identity ci@example.com "
        "--certificate-oidc-issuer https://token.actions.githubusercontent.com registry.example.com/models/m:v1",
        "omsign verify --policy policy.yaml registry.example.com/models/m:v1   # the policy file's scope decides",
    )
)
def verify(
    reference: Annotated[str, typer.Argument(metavar="REF", help="registry/repo:tag[@digest] or oci:PATH[:TAG].", show_default=False)],
    *,
    policy_args: PolicyArgs,
    reg: RegistryArgs,
    out: OutputArgs,
) -> None:
    """Check that a model carries a signature satisfying the policy (no model download)."""
    options = _store_options(reg)
    policy = None
    if policy_args.given() or policy_args.policy_file == "none":  # flags take precedence over the policy file
        policy = _policy_from(
            policy_args, ignore_tlog=policy_args.insecure_ignore_tlog, annotations=_annotations(policy_args.annotation)
        )
    result, trust = api.verify_with_trust(reference, policy, options=options, policy_file=policy_args.policy_file)
    if out.json_out:
        doc = result.to_dict()
        if trust is not None:
            doc["policy"] = trust.to_dict()
        print_json(doc)
    if trust is not None:
        trust.raise_if_denied()  # the scope's reason: revoked, threshold, unsigned
        _say_trust(trust)
    result.raise_if_failed()  # the one-line error names the closest candidate
    if not out.json_out:
        for c in result.candidates:
            mark = "ok  " if c.ok else "fail"
            typer.echo(f"  {mark} {c.kind} {c.source}: {c.reason}", err=True)
        typer.echo(result.summary(), err=True)
        if trust is not None and not trust.warned:
            typer.echo(f"policy {trust.policy_source}: {trust.reason}", err=True)
        typer.echo(result.subject_digest)


@command("verify-local", example=("omsign verify-local ./model --key cosign.pub",))
def verify_local(
    model_dir: Annotated[
        Path, typer.Argument(metavar="DIR", help="A model folder, e.g. one written by omsign pull.", show_default=False)
    ],
    *,
    signature: Annotated[
        Path | None,
        typer.Option("--signature", metavar="FILE", help="model-signing bundle (default DIR/model.sig)."),
    ] = None,
    policy_args: LocalPolicyArgs,
    ignore: Annotated[
        list[str], typer.Option("--ignore", metavar="PAT", help="Path to leave out of the check (repeatable).")
    ] = [],  # noqa: B006
    allow_symlinks: Annotated[
        bool, typer.Option("--allow-symlinks", help="Hash the targets of symlinks (as model_signing --allow_symlinks).")
    ] = False,
    out: OutputArgs,
) -> None:
    """Verify a local model folder against a model-signing signature (offline)."""
    from .verify.local import verify_local as _verify_local

    policy = _policy_from(policy_args, ignore_tlog=True, annotations={})
    sig = signature or (model_dir / api.MODEL_SIG_NAME)
    result = _verify_local(model_dir, sig, policy, ignore_paths=list(ignore), allow_symlinks=allow_symlinks)
    if out.json_out:
        print_json(result.to_dict())
    result.raise_if_failed()
    if not out.json_out:
        typer.echo(result.summary(), err=True)


@command("generate-key-pair", example=("COSIGN_PASSWORD=... omsign generate-key-pair --output-key-prefix release",))
def generate_key_pair(
    *,
    output_prefix: Annotated[
        str, typer.Option("--output-key-prefix", metavar="PREFIX", help="Writes PREFIX.key and PREFIX.pub.")
    ] = "cosign",
    directory: Annotated[Path, typer.Option("--dir", metavar="DIR", help="Folder to write the keys in.")] = Path("."),
) -> None:
    """Write an encrypted cosign.key and cosign.pub (cosign's format, ECDSA P-256)."""
    import getpass

    from .signing.keys import generate_key_pair as _gen

    password = _password_for_key()
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("no password", hint="set OMSIGN_PASSWORD or COSIGN_PASSWORD (may be empty)")
        first = getpass.getpass("Enter password for private key: ")
        if getpass.getpass("Enter password for private key again: ") != first:
            raise UsageError("the passwords do not match")
        password = first.encode()
    key_path, pub_path = _gen(directory, password, prefix=output_prefix)
    typer.echo(f"Private key written to {key_path}", err=True)
    typer.echo(f"Public key written to {pub_path}", err=True)


@command(example=("echo \"$TOKEN\" | omsign login ghcr.io -u me --password-stdin",))
def login(
    registry: Annotated[str, typer.Argument(metavar="HOST", help="Registry host, e.g. ghcr.io or 127.0.0.1:5000.", show_default=False)],
    *,
    reg: RegistryArgs,
) -> None:
    """Check credentials against a registry and store them in ~/.docker/config.json."""
    from .store.auth import save_credentials

    if not reg.username:
        raise UsageError("login needs --username", hint=f"e.g. omsign login {registry} -u USER --password-stdin")
    if reg.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass

        if not sys.stdin.isatty():
            raise UsageError("no password", hint="pass --password-stdin")
        password = getpass.getpass("Password: ")
    options = _store_options(dataclasses.replace(reg, username=None, password_stdin=False))
    options.username, options.password = reg.username, password
    options.credentials_source = "--username and --password-stdin" if reg.password_stdin else "--username"
    api.check_login(registry, options)
    path = save_credentials(registry, reg.username, password)
    typer.echo(f"Login succeeded; credentials stored in {path}", err=True)


@command(example=("omsign logout ghcr.io",))
def logout(
    registry: Annotated[str, typer.Argument(metavar="HOST", help="Registry host whose credentials to remove.", show_default=False)],
) -> None:
    """Remove stored credentials for a registry."""
    from .store.auth import remove_credentials

    removed = remove_credentials(registry)
    typer.echo(f"{'Removed' if removed else 'No'} credentials for {registry}", err=True)


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
    policy = None
    if policy_args.given():  # cosign-style flags take precedence over the policy file
        policy = _policy_from(
            policy_args, ignore_tlog=policy_args.insecure_ignore_tlog,
            annotations=_annotations(policy_args.annotation),
        )
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


def _say(line: str, prefix: str = "omsign: error") -> None:
    try:
        sys.stderr.write(f"{prefix}: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _exit(code: int) -> NoReturn:
    sys.exit(code)


from .cli_audit import audit_command  # noqa: E402  (registered after the commands above)

app.command("audit")(audit_command)

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
    global _guard
    _guard = InterruptGuard()  # one per run: nothing carries over between in-process calls
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
    _guard.exit_now()
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
        if _guard.interrupted:
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
        if _guard.interrupted:
            return 130
        if os.environ.get("OMSIGN_DEBUG"):
            raise
        _say(f"{type(exc).__name__}: {exc} (set OMSIGN_DEBUG=1 for details)", prefix="omsign: internal error")
        return 1
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    main()
