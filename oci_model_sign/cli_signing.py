"""Trust commands: ``sign``, ``verify``, ``verify-local``, ``generate-key-pair``, ``login``, ``logout``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import typer

from . import api
from .cli_app import (
    _annotations,
    _flag_policy,
    _password_for_key,
    _policy_from,
    _say_trust,
    _signer_from,
    _store_options,
    command,
)
from .cli_options import (
    LocalPolicyArgs,
    OutputArgs,
    PolicyArgs,
    RegistryArgs,
    SignerArgs,
)
from .cli_output import print_json
from .errors import UsageError


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
    # flags take precedence over the policy file; with "--policy none" they are all there is
    policy = _flag_policy(policy_args, always=policy_args.policy_file == "none")
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
