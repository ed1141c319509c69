"""The ``omsign`` command line: parses flags, calls the API, maps errors to exit codes.

No logic lives here. Every failure prints one line on stderr (``omsign: error: ...``) and
exits with the code of its class (see ``errors.py`` and the README); a traceback is a bug and
is shown only with ``OMSIGN_DEBUG=1``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

from . import api
from .errors import OmsignError, UsageError

app = typer.Typer(
    name="omsign",
    help="Pack ML models as OCI artifacts, sign them with Sigstore, verify them on pull.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# -- shared options -------------------------------------------------------------------------
PlainHttp = typer.Option(None, "--plain-http/--no-plain-http", help="Speak HTTP, not HTTPS (automatic for localhost/127.0.0.1).")
Insecure = typer.Option(False, "--insecure", help="HTTPS without certificate verification.")
Username = typer.Option(None, "--username", "-u", help="Registry user name.")
PasswordStdin = typer.Option(False, "--password-stdin", help="Read the registry password from stdin.")
Concurrency = typer.Option(4, "--concurrency", "-j", min=1, max=64, help="Blobs transferred in parallel.")
JsonOut = typer.Option(False, "--json", help="Print the result as JSON on stdout.")
ProgressOpt = typer.Option(None, "--progress/--no-progress", help="Progress bars (default: only on a terminal).")
Annotations = typer.Option([], "-a", "--annotation", help="key=value, carried in the signed payload / required at verify.")

# policy flags, named as cosign names them
KeyPub = typer.Option(None, "--key", help="Public key (PEM) that must have signed.")
CertIdentity = typer.Option(None, "--certificate-identity", help="Exact signer identity (certificate SAN).")
CertIdentityRe = typer.Option(None, "--certificate-identity-regexp", help="Regexp the signer identity must match.")
CertIssuer = typer.Option(None, "--certificate-oidc-issuer", help="Exact OIDC issuer of the signer's certificate.")
CertIssuerRe = typer.Option(None, "--certificate-oidc-issuer-regexp", help="Regexp the OIDC issuer must match.")
CertChain = typer.Option(None, "--certificate-chain", help="Intermediate certificates (PEM) for --ca-roots.")
CaRoots = typer.Option(None, "--ca-roots", help="Root certificates (PEM) a signing certificate must chain to.")
IgnoreTlog = typer.Option(False, "--insecure-ignore-tlog", help="Accept signatures without a transparency-log entry.")
Offline = typer.Option(False, "--offline", help="Use the embedded Sigstore trust root; no network.")
TrustConfig = typer.Option(None, "--trust-config", help="Trusted root or ClientTrustConfig JSON (private Sigstore).")
Staging = typer.Option(False, "--staging", help="Trust Sigstore's staging instance.")
TlogUpload = typer.Option(
    True, "--tlog-upload/--no-tlog-upload",
    help="Upload key signatures to the Rekor log of the signing config (--trust-config; default: public-good), as cosign does.",
)


def _fail(error: OmsignError) -> NoReturn:
    typer.echo(f"omsign: error: {error.one_line()}", err=True)
    raise typer.Exit(error.exit_code)


def _store_options(
    plain_http: bool | None, insecure: bool, username: str | None, password_stdin: bool, concurrency: int = 4
) -> Any:
    from .store.base import StoreOptions

    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin was given but stdin held no password")
        if not username:
            raise UsageError("--password-stdin needs --username")
    env_user, env_pass = os.environ.get("OMSIGN_USERNAME"), os.environ.get("OMSIGN_REGISTRY_PASSWORD")
    return StoreOptions(
        plain_http=plain_http,
        insecure=insecure,
        username=username or env_user,
        password=password if password is not None else env_pass,
        concurrency=concurrency,
    )


def _annotations(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"annotation {item!r} is not key=value")
        out[key] = value
    return out


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=False))


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
    from .signing.options import signer_from_options

    return signer_from_options(
        key=key, certificate=certificate, certificate_chain=list(certificate_chain),
        identity_token=identity_token, staging=staging, trust_config=trust_config,
        password=_password_for_key(), tlog_upload=tlog_upload, background=background,
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


# -- commands -------------------------------------------------------------------------------
@app.command()
def push(
    model_dir: Path = typer.Argument(..., help="The model folder (or a single file)."),
    reference: str = typer.Argument(..., help="registry/repo:tag, or oci:PATH[:TAG]."),
    ignore: list[str] = typer.Option([], "--ignore", help="Path or glob to leave out (repeatable)."),
    pack_dir: list[str] = typer.Option([], "--pack-dir", help="Folder packed as one tar layer (repeatable)."),
    compress: str = typer.Option("none", "--compress", help="Compression of --pack-dir layers: none or zstd."),
    allow_symlinks: bool = typer.Option(False, "--allow-symlinks", help="Follow symlinks that stay inside the folder."),
    media_types: str = typer.Option("modelpack", "--media-types", help="Layer media-type convention: modelpack or oras."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Re-hash every file (ignore the digest cache)."),
    mount_from: list[str] = typer.Option([], "--mount-from", help="Repository on the same registry to mount blobs from (repeatable)."),
    sign: bool = typer.Option(False, "--sign", help="Sign the pushed manifest (see omsign sign)."),
    key: Path | None = typer.Option(None, "--key", help="With --sign: private key file."),
    certificate: Path | None = typer.Option(None, "--certificate"),
    certificate_chain: list[Path] = typer.Option([], "--certificate-chain"),
    identity_token: str | None = typer.Option(None, "--identity-token"),
    trust_config: Path | None = TrustConfig,
    staging: bool = Staging,
    tlog_upload: bool = TlogUpload,
    annotation: list[str] = Annotations,
    plain_http: bool | None = PlainHttp,
    insecure: bool = Insecure,
    username: str | None = Username,
    password_stdin: bool = PasswordStdin,
    concurrency: int = Concurrency,
    json_out: bool = JsonOut,
    progress: bool | None = ProgressOpt,
) -> None:
    """Pack a model folder (one layer per file, CNCF ModelPack) and push it."""
    options = _store_options(plain_http, insecure, username, password_stdin, concurrency)
    pack = _pack_options(ignore, pack_dir, compress, allow_symlinks, media_types)
    signer = _signer(key, certificate, certificate_chain, identity_token, staging, trust_config, tlog_upload=tlog_upload) if sign else None
    _run_push(
        model_dir, reference, pack, options, no_cache, progress, json_out, signer, _annotations(annotation),
        mount_from=list(mount_from),
    )


def _pack_options(
    ignore: list[str], pack_dir: list[str], compress: str, allow_symlinks: bool, media_types: str
) -> Any:
    from .model.pack import PackOptions

    if compress not in ("none", "zstd"):
        raise UsageError(f"--compress must be none or zstd, not {compress!r}")
    return PackOptions(
        ignore=list(ignore),
        allow_symlinks=allow_symlinks,
        pack_dirs=list(pack_dir),
        compress="zstd" if compress == "zstd" else None,
        media_types=media_types,
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
    out: dict[str, Any] = result.to_json()
    if signer is not None:
        try:
            signed = api.sign(result.reference, signer, options=options, annotations=annotations)
        finally:
            signer.close()
        out["signing"] = signed.to_json()
    if json_out:
        _print_json(out)
        return
    uploaded = sum(1 for layer in result.layers if layer.uploaded)
    typer.echo(
        f"pushed {len(result.layers)} files ({uploaded} uploaded, {_human(result.uploaded_bytes)}) to {reference}",
        err=True,
    )
    if signer is not None:
        typer.echo(f"signed {result.digest}", err=True)
    typer.echo(result.digest)


@app.command()
def pack(
    model_dir: Path = typer.Argument(..., help="The model folder."),
    reference: str = typer.Argument(..., help="oci:PATH[:TAG] of the on-disk layout to write."),
    ignore: list[str] = typer.Option([], "--ignore"),
    pack_dir: list[str] = typer.Option([], "--pack-dir"),
    compress: str = typer.Option("none", "--compress"),
    allow_symlinks: bool = typer.Option(False, "--allow-symlinks"),
    media_types: str = typer.Option("modelpack", "--media-types"),
    no_cache: bool = typer.Option(False, "--no-cache"),
    json_out: bool = JsonOut,
    progress: bool | None = ProgressOpt,
) -> None:
    """Write a model into an on-disk OCI image layout, offline."""
    from .reference import parse_reference
    from .store.base import StoreOptions

    if not parse_reference(reference).is_layout:
        raise UsageError(
            f"pack writes an on-disk layout: use oci:PATH[:TAG], not {reference!r}",
            hint="use omsign push for registries",
        )
    pack = _pack_options(ignore, pack_dir, compress, allow_symlinks, media_types)
    _run_push(model_dir, reference, pack, StoreOptions(), no_cache, progress, json_out, None, {})


@app.command()
def pull(
    reference: str = typer.Argument(..., help="registry/repo:tag[@digest] or oci:PATH[:TAG]."),
    dest: Path = typer.Argument(..., help="Folder to place the model in (created if missing)."),
    include: list[str] = typer.Option([], "--include", help="Only files matching this glob (repeatable)."),
    verify: bool = typer.Option(False, "--verify", help="Verify the signature before downloading (needs a policy)."),
    key: Path | None = KeyPub,
    certificate_identity: str | None = CertIdentity,
    certificate_identity_regexp: str | None = CertIdentityRe,
    certificate_oidc_issuer: str | None = CertIssuer,
    certificate_oidc_issuer_regexp: str | None = CertIssuerRe,
    certificate_chain: Path | None = CertChain,
    ca_roots: Path | None = CaRoots,
    insecure_ignore_tlog: bool = IgnoreTlog,
    offline: bool = Offline,
    trust_config: Path | None = TrustConfig,
    staging: bool = Staging,
    annotation: list[str] = Annotations,
    no_model_signing_bundle: bool = typer.Option(False, "--no-model-signing-bundle", help="Do not write model.sig."),
    plain_http: bool | None = PlainHttp,
    insecure: bool = Insecure,
    username: str | None = Username,
    password_stdin: bool = PasswordStdin,
    concurrency: int = Concurrency,
    json_out: bool = JsonOut,
    progress: bool | None = ProgressOpt,
) -> None:
    """Pull a model; every layer is checked against its digest before files are placed."""
    options = _store_options(plain_http, insecure, username, password_stdin, concurrency)
    policy = None
    has_policy = any(
        x is not None
        for x in (key, certificate_identity, certificate_identity_regexp, certificate_oidc_issuer, certificate_oidc_issuer_regexp, certificate_chain, ca_roots)
    )
    if verify or has_policy:
        policy = _policy(
            key, certificate_identity, certificate_identity_regexp, certificate_oidc_issuer,
            certificate_oidc_issuer_regexp, certificate_chain, ca_roots, insecure_ignore_tlog,
            offline, trust_config, staging, _annotations(annotation),
        )
    reporter = _reporter(progress, 0, f"pull {reference}")
    try:
        result = api.pull(
            reference, dest, policy=policy, include=list(include) or None, options=options,
            write_model_sig=not no_model_signing_bundle, reporter=reporter,
        )
    finally:
        reporter.close()
    if json_out:
        _print_json(result.to_json())
    else:
        if result.verification is not None:
            typer.echo(result.verification.summary(), err=True)
        typer.echo(f"pulled {len(result.files)} files ({_human(result.downloaded_bytes)}) into {dest}", err=True)
        typer.echo(result.digest)


@app.command()
def inspect(
    reference: str = typer.Argument(...),
    plain_http: bool | None = PlainHttp,
    insecure: bool = Insecure,
    username: str | None = Username,
    password_stdin: bool = PasswordStdin,
    json_out: bool = JsonOut,
) -> None:
    """Show a model's manifest, files, sizes, media types and signatures (no download)."""
    options = _store_options(plain_http, insecure, username, password_stdin)
    result = api.inspect(reference, options=options)
    if json_out:
        _print_json(result.to_json())
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{result.reference}[/bold]")
    console.print(f"artifactType: {result.artifact_type}   manifest: {result.size} bytes")
    table = Table("path", "size", "media type", "digest")
    for f in result.files:
        table.add_row(f["path"], _human(f["size"]), f["mediaType"], f["digest"][:19] + "…")
    console.print(table)
    if result.referrers:
        refs = Table("referrer", "artifact type", "predicate")
        for r in result.referrers:
            refs.add_row(r["digest"][:19] + "…", r["artifactType"] or "", r["annotations"].get("dev.sigstore.bundle.predicateType", ""))
        console.print(refs)
    else:
        console.print("no referrers")
    if result.legacy_signatures:
        console.print(f"legacy .sig signatures: {result.legacy_signatures}")


@app.command()
def sign(
    reference: str = typer.Argument(..., help="The model to sign (a tag is resolved to its digest once)."),
    key: Path | None = typer.Option(None, "--key", help="Private key (cosign.key or PEM); keyless when absent."),
    certificate: Path | None = typer.Option(None, "--certificate", help="Signing certificate for --key (PKI)."),
    certificate_chain: list[Path] = typer.Option([], "--certificate-chain", help="Intermediate/root certificates."),
    identity_token: str | None = typer.Option(None, "--identity-token", help="OIDC token for keyless signing."),
    staging: bool = typer.Option(False, "--staging", help="Use Sigstore's staging instance."),
    trust_config: Path | None = typer.Option(None, "--trust-config", help="ClientTrustConfig JSON of a private Sigstore."),
    format: str = typer.Option("bundle", "--format", help="bundle (cosign v3), legacy (.sig tag) or both."),
    tlog_upload: bool = TlogUpload,
    annotation: list[str] = Annotations,
    output_bundle: Path | None = typer.Option(None, "--output-bundle", help="Also write the cosign bundle here."),
    no_model_signing_bundle: bool = typer.Option(False, "--no-model-signing-bundle"),
    plain_http: bool | None = PlainHttp,
    insecure: bool = Insecure,
    username: str | None = Username,
    password_stdin: bool = PasswordStdin,
    json_out: bool = JsonOut,
) -> None:
    """Sign a model's manifest digest and attach the signature as an OCI referrer."""
    options = _store_options(plain_http, insecure, username, password_stdin)
    signer = _signer(key, certificate, certificate_chain, identity_token, staging, trust_config, background=True, tlog_upload=tlog_upload)
    try:
        result = api.sign(
            reference, signer, options=options, annotations=_annotations(annotation), format=format,
            model_signing_bundle=not no_model_signing_bundle, output_bundle=output_bundle,
        )
    finally:
        close = getattr(signer, "close", None)
        if callable(close):
            close()
    if json_out:
        _print_json(result.to_json())
    else:
        for note in result.notes:
            typer.echo(f"note: {note}", err=True)
        typer.echo(f"signed {result.reference} ({', '.join(s['format'] for s in result.signatures)})", err=True)
        typer.echo(result.digest)


@app.command()
def verify(
    reference: str = typer.Argument(...),
    key: Path | None = KeyPub,
    certificate_identity: str | None = CertIdentity,
    certificate_identity_regexp: str | None = CertIdentityRe,
    certificate_oidc_issuer: str | None = CertIssuer,
    certificate_oidc_issuer_regexp: str | None = CertIssuerRe,
    certificate_chain: Path | None = CertChain,
    ca_roots: Path | None = CaRoots,
    insecure_ignore_tlog: bool = IgnoreTlog,
    offline: bool = Offline,
    trust_config: Path | None = TrustConfig,
    staging: bool = Staging,
    annotation: list[str] = Annotations,
    plain_http: bool | None = PlainHttp,
    insecure: bool = Insecure,
    username: str | None = Username,
    password_stdin: bool = PasswordStdin,
    json_out: bool = JsonOut,
) -> None:
    """Check that a model carries a signature satisfying the policy (no model download)."""
    options = _store_options(plain_http, insecure, username, password_stdin)
    policy = _policy(
        key, certificate_identity, certificate_identity_regexp, certificate_oidc_issuer,
        certificate_oidc_issuer_regexp, certificate_chain, ca_roots, insecure_ignore_tlog, offline,
        trust_config, staging, _annotations(annotation),
    )
    result = api.verify(reference, policy, options=options)
    if json_out:
        _print_json(result.to_dict())
    result.raise_if_failed()  # the one-line error names the closest candidate
    if not json_out:
        for c in result.candidates:
            mark = "ok  " if c.ok else "fail"
            typer.echo(f"  {mark} {c.kind} {c.source}: {c.reason}", err=True)
        typer.echo(result.summary(), err=True)
        typer.echo(result.subject_digest)


@app.command("verify-local")
def verify_local(
    model_dir: Path = typer.Argument(..., help="A model folder, e.g. one written by omsign pull."),
    signature: Path = typer.Option(None, "--signature", help="model-signing bundle (default DIR/model.sig)."),
    key: Path | None = KeyPub,
    certificate_identity: str | None = CertIdentity,
    certificate_identity_regexp: str | None = CertIdentityRe,
    certificate_oidc_issuer: str | None = CertIssuer,
    certificate_oidc_issuer_regexp: str | None = CertIssuerRe,
    certificate_chain: Path | None = CertChain,
    ca_roots: Path | None = CaRoots,
    offline: bool = Offline,
    trust_config: Path | None = TrustConfig,
    staging: bool = Staging,
    ignore: list[str] = typer.Option([], "--ignore"),
    json_out: bool = JsonOut,
) -> None:
    """Verify a local model folder against a model-signing signature (offline)."""
    from .verify.local import verify_local as _verify_local

    policy = _policy(
        key, certificate_identity, certificate_identity_regexp, certificate_oidc_issuer,
        certificate_oidc_issuer_regexp, certificate_chain, ca_roots, True, offline, trust_config,
        staging, {},
    )
    sig = signature or (model_dir / api.MODEL_SIG_NAME)
    result = _verify_local(model_dir, sig, policy, ignore_paths=list(ignore))
    if json_out:
        _print_json(result.to_dict())
    result.raise_if_failed()
    if not json_out:
        typer.echo(result.summary(), err=True)


@app.command("generate-key-pair")
def generate_key_pair(
    output_prefix: str = typer.Option("cosign", "--output-key-prefix", help="Writes PREFIX.key and PREFIX.pub."),
    directory: Path = typer.Option(Path("."), "--dir", help="Folder to write the keys in."),
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


@app.command()
def login(
    registry: str = typer.Argument(..., help="Registry host, e.g. ghcr.io or 127.0.0.1:5000."),
    username: str = typer.Option(..., "--username", "-u"),
    password_stdin: bool = typer.Option(False, "--password-stdin"),
    plain_http: bool | None = PlainHttp,
    insecure: bool = Insecure,
) -> None:
    """Check credentials against a registry and store them in ~/.docker/config.json."""
    from .store.auth import save_credentials

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass

        if not sys.stdin.isatty():
            raise UsageError("no password", hint="pass --password-stdin")
        password = getpass.getpass("Password: ")
    options = _store_options(plain_http, insecure, None, False)
    options.username, options.password = username, password
    _check_login(registry, options)
    path = save_credentials(registry, username, password)
    typer.echo(f"Login succeeded; credentials stored in {path}", err=True)


def _check_login(registry: str, options: Any) -> None:
    from .reference import parse_reference
    from .store import open_store

    store = open_store(parse_reference(f"{registry}/omsign-login-check"), options)
    try:
        check = getattr(store, "check_auth", None)
        if callable(check):
            check()
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


@app.command()
def logout(registry: str = typer.Argument(...)) -> None:
    """Remove stored credentials for a registry."""
    from .store.auth import remove_credentials

    removed = remove_credentials(registry)
    typer.echo(f"{'Removed' if removed else 'No'} credentials for {registry}", err=True)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning every omsign error into one line and an exit code."""
    try:
        app(args=argv, standalone_mode=False)
    except OmsignError as exc:
        try:
            _fail(exc)
        except typer.Exit as stop:
            sys.exit(stop.exit_code)
    except typer.Exit as stop:
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        typer.echo("omsign: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so in one line, keep the traceback for debugging
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.Abort):
            typer.echo("omsign: aborted", err=True)
            sys.exit(130)
        if os.environ.get("OMSIGN_DEBUG"):
            raise
        typer.echo(f"omsign: internal error: {type(exc).__name__}: {exc} (set OMSIGN_DEBUG=1 for details)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
