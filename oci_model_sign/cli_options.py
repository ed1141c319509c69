"""The ``omsign`` option groups (registry, signing, policy, output), each defined once.

A command asks for a group by declaring one parameter typed with the group's class
(``reg: RegistryArgs``). ``@grouped`` shows typer the group's fields instead of that parameter,
each an ``Annotated`` typer option that carries its help text and help panel, and hands the
command one group object built from the parsed values. So ``--plain-http`` or ``--key`` is
spelled, documented and defaulted in one place, whichever commands accept it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

REGISTRY = "Registry"
SIGNING = "Signing"
POLICY = "Policy"
OUTPUT = "Output"
PACKING = "Packing"


class OptionGroup:
    """Marker base: dataclasses deriving from it are expanded into their fields by ``@grouped``."""


@dataclasses.dataclass
class RegistryArgs(OptionGroup):
    plain_http: Annotated[
        bool | None,
        typer.Option(
            "--plain-http/--no-plain-http",
            help="Speak HTTP, not HTTPS (automatic for localhost and 127.0.0.1).",
            rich_help_panel=REGISTRY,
        ),
    ] = None
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="HTTPS without certificate verification.", rich_help_panel=REGISTRY),
    ] = False
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            metavar="FILE",
            help="CA certificates (PEM) to trust for the registry's TLS certificate (SSL_CERT_FILE is honoured too).",
            rich_help_panel=REGISTRY,
        ),
    ] = None
    username: Annotated[
        str | None,
        typer.Option(
            "--username", "-u", help="Registry user name (else OMSIGN_USERNAME, omsign login or docker's config).",
            rich_help_panel=REGISTRY,
        ),
    ] = None
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the registry password from stdin (with --username).",
            rich_help_panel=REGISTRY,
        ),
    ] = False


@dataclasses.dataclass
class OutputArgs(OptionGroup):
    json_out: Annotated[
        bool,
        typer.Option("--json", help="Print the result as JSON on stdout (keys: docs/json.md).", rich_help_panel=OUTPUT),
    ] = False


@dataclasses.dataclass
class TransferArgs(OptionGroup):
    """Push and pull move many blobs: how many at once, and whether to draw bars."""

    concurrency: Annotated[
        int,
        typer.Option("--concurrency", "-j", min=1, max=64, help="Blobs transferred in parallel (1-64).", rich_help_panel=REGISTRY),
    ] = 4
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress", help="Progress bars with rate and ETA (default: only on a terminal).",
            rich_help_panel=OUTPUT,
        ),
    ] = None


@dataclasses.dataclass
class PackArgs(OptionGroup):
    ignore: Annotated[
        list[str],
        typer.Option("--ignore", metavar="PAT", help="Path or glob to leave out (repeatable).", rich_help_panel=PACKING),
    ] = dataclasses.field(default_factory=list)
    pack_dir: Annotated[
        list[str],
        typer.Option(
            "--pack-dir", metavar="SUB", help="Folder packed as one tar layer (repeatable).", rich_help_panel=PACKING
        ),
    ] = dataclasses.field(default_factory=list)
    compress: Annotated[
        str,
        typer.Option(
            "--compress",
            metavar="none|zstd",
            help="Compression of --pack-dir layers: none (plain tar, read by every ModelPack client) or zstd (read only by omsign and ORAS-style clients).",
            rich_help_panel=PACKING,
        ),
    ] = "none"
    allow_symlinks: Annotated[
        bool,
        typer.Option(
            "--allow-symlinks", help="Follow symlinks that stay inside the folder.", rich_help_panel=PACKING
        ),
    ] = False
    dereference: Annotated[
        bool,
        typer.Option(
            "--dereference", help="Read through every symbolic link, to files and folders (Hugging Face cache snapshots are read through without it).",
            rich_help_panel=PACKING,
        ),
    ] = False
    media_types: Annotated[
        str,
        typer.Option(
            "--media-types", metavar="modelpack|oras", help="Layer media-type convention: modelpack or oras.",
            rich_help_panel=PACKING,
        ),
    ] = "modelpack"
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Re-hash every file (ignore the digest cache).", rich_help_panel=PACKING),
    ] = False
    artifact_type: Annotated[
        str,
        typer.Option(
            "--artifact-type", metavar="auto|model|dataset",
            help="What the folder is: a model, a dataset (omsign's dataset artifactType, ModelPack dataset layers), or auto (a dataset when it holds only parquet/jsonl/arrow/csv shards and docs).",
            rich_help_panel=PACKING,
        ),
    ] = "auto"


@dataclasses.dataclass
class SignerArgs(OptionGroup):
    """Who signs: a key, a key with a certificate, or Sigstore keyless (the default)."""

    key: Annotated[
        Path | None,
        typer.Option(
            "--key", metavar="FILE|URI", help="Private key (cosign.key or PEM, or a pkcs11: URI); keyless when absent.",
            rich_help_panel=SIGNING,
        ),
    ] = None
    certificate: Annotated[
        Path | None,
        typer.Option(
            "--certificate", metavar="FILE", help="Signing certificate (PEM) for --key (X.509 PKI).",
            rich_help_panel=SIGNING,
        ),
    ] = None
    certificate_chain: Annotated[
        list[Path],
        typer.Option(
            "--certificate-chain", metavar="FILE", help="Intermediate and root certificates (PEM) for --certificate.",
            rich_help_panel=SIGNING,
        ),
    ] = dataclasses.field(default_factory=list)
    identity_token: Annotated[
        str | None,
        typer.Option(
            "--identity-token",
            envvar="SIGSTORE_ID_TOKEN",
            show_envvar=True,
            metavar="JWT",
            help="OIDC identity token for keyless signing (else ambient CI credentials or a browser sign-in).",
            rich_help_panel=SIGNING,
        ),
    ] = None
    staging: Annotated[
        bool, typer.Option("--staging", help="Sign with Sigstore's staging instance.", rich_help_panel=SIGNING)
    ] = False
    trust_config: Annotated[
        Path | None,
        typer.Option(
            "--trust-config", metavar="FILE", help="ClientTrustConfig JSON of a private Sigstore.",
            rich_help_panel=SIGNING,
        ),
    ] = None
    tlog_upload: Annotated[
        bool,
        typer.Option(
            "--tlog-upload/--no-tlog-upload",
            help="Log key signatures in the signing config's Rekor (--trust-config; else public-good), as cosign does; --tlog-upload=false works too.",
            rich_help_panel=SIGNING,
        ),
    ] = True
    annotation: Annotated[
        list[str],
        typer.Option(
            "-a", "--annotation", metavar="KEY=VALUE", help="Annotation carried in the signed payload (repeatable).",
            rich_help_panel=SIGNING,
        ),
    ] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class LocalPolicyArgs(OptionGroup):
    """Whose signature admits a model; flags named as cosign names them."""

    key: Annotated[
        Path | None,
        typer.Option("--key", metavar="FILE", help="Public key (PEM) that must have signed.", rich_help_panel=POLICY),
    ] = None
    certificate_identity: Annotated[
        str | None,
        typer.Option(
            "--certificate-identity", metavar="ID", help="Exact signer identity (certificate SAN).",
            rich_help_panel=POLICY,
        ),
    ] = None
    certificate_identity_regexp: Annotated[
        str | None,
        typer.Option(
            "--certificate-identity-regexp", metavar="RE", help="Regexp the signer identity must match.",
            rich_help_panel=POLICY,
        ),
    ] = None
    certificate_oidc_issuer: Annotated[
        str | None,
        typer.Option(
            "--certificate-oidc-issuer", metavar="URL", help="Exact OIDC issuer of the signer's certificate.",
            rich_help_panel=POLICY,
        ),
    ] = None
    certificate_oidc_issuer_regexp: Annotated[
        str | None,
        typer.Option(
            "--certificate-oidc-issuer-regexp", metavar="RE", help="Regexp the OIDC issuer must match.",
            rich_help_panel=POLICY,
        ),
    ] = None
    certificate_chain: Annotated[
        Path | None,
        typer.Option(
            "--certificate-chain", metavar="FILE", help="Intermediate certificates (PEM) for --ca-roots.",
            rich_help_panel=POLICY,
        ),
    ] = None
    ca_roots: Annotated[
        Path | None,
        typer.Option(
            "--ca-roots", metavar="FILE", help="Root certificates (PEM) a signing certificate must chain to.",
            rich_help_panel=POLICY,
        ),
    ] = None
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Use the embedded Sigstore trust root; no network.", rich_help_panel=POLICY),
    ] = False
    trust_config: Annotated[
        Path | None,
        typer.Option(
            "--trust-config", metavar="FILE", help="Trusted root or ClientTrustConfig JSON (private Sigstore).",
            rich_help_panel=POLICY,
        ),
    ] = None
    staging: Annotated[
        bool, typer.Option("--staging", help="Trust Sigstore's staging instance.", rich_help_panel=POLICY)
    ] = False

    def given(self) -> bool:
        """True when any flag naming a signer was passed (pull then verifies without --verify)."""
        return any(
            value is not None
            for value in (
                self.key,
                self.certificate_identity,
                self.certificate_identity_regexp,
                self.certificate_oidc_issuer,
                self.certificate_oidc_issuer_regexp,
                self.certificate_chain,
                self.ca_roots,
            )
        )


@dataclasses.dataclass
class PolicyArgs(LocalPolicyArgs):
    """The registry-side policy: also the policy file, the transparency log and required annotations."""

    policy_file: Annotated[
        str | None,
        typer.Option(
            "--policy",
            metavar="FILE|none",
            help="Trust policy file (default: $OMSIGN_POLICY, ~/.config/omsign/policy.yaml, /etc/omsign/policy.yaml; "
            "docs/policy.md); none: use no policy file. --key and the other signer flags take precedence over it.",
            rich_help_panel=POLICY,
        ),
    ] = None

    insecure_ignore_tlog: Annotated[
        bool,
        typer.Option(
            "--insecure-ignore-tlog", help="Accept signatures without a transparency-log entry.",
            rich_help_panel=POLICY,
        ),
    ] = False
    annotation: Annotated[
        list[str],
        typer.Option(
            "-a", "--annotation", metavar="KEY=VALUE", help="Annotation the signed payload must carry (repeatable).",
            rich_help_panel=POLICY,
        ),
    ] = dataclasses.field(default_factory=list)


F = TypeVar("F", bound=Callable[..., Any])


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"option {f.name} needs a default")


def grouped(fn: F) -> F:
    """Expand the ``OptionGroup`` parameters of a command into their options (see module doc)."""
    signature = inspect.signature(fn, eval_str=True)
    hints = get_type_hints(fn, include_extras=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[type[Any], list[str]]] = {}
    for p in signature.parameters.values():
        annotation = hints.get(p.name, p.annotation)
        if isinstance(annotation, type) and issubclass(annotation, OptionGroup):
            field_hints = get_type_hints(annotation, include_extras=True)
            names = []
            for f in dataclasses.fields(annotation):  # type: ignore[arg-type]
                params.append(
                    inspect.Parameter(
                        f.name, inspect.Parameter.KEYWORD_ONLY, default=_field_default(f), annotation=field_hints[f.name]
                    )
                )
                names.append(f.name)
            groups[p.name] = (annotation, names)
        else:
            params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation))
    seen = [p.name for p in params]
    duplicates = {n for n in seen if seen.count(n) > 1}
    if duplicates:
        raise TypeError(f"{fn.__name__}: option names used twice: {sorted(duplicates)}")

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        for name, (cls, names) in groups.items():
            kwargs[name] = cls(**{n: kwargs.pop(n) for n in names})
        return fn(**kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command  # type: ignore[return-value]
