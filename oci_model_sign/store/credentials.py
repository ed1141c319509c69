"""Where registry credentials come from, and where ``omsign login`` keeps them.

Three sources, in the order docker itself uses them: explicit ``--username``/``--password``,
a credential helper (``credHelpers`` for the host, or the global ``credsStore``), and the
``auths`` section of the docker config file. Lookups are lazy (see ``auth.HostAuth``): only a
registry that answers 401 makes omsign read the config or run a helper program.

oras-py's ``oras.auth.utils.load_configs`` always mixes in the default config, keeps only the
last ``credsStore`` and logs warnings for missing files; the little we need is written here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AuthError, InputError
from ..reference import canonical_registry

LOGIN_HINT = "run omsign login {host} or pass --username/--password-stdin"
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"  # the key docker login writes for Hub
HELPER_TIMEOUT = 30.0


def login_hint(host: str) -> str:
    return LOGIN_HINT.format(host=host)


@dataclass(frozen=True)
class Credentials:
    """A username/password pair, or an OAuth2 refresh ("identity") token."""

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    source: str = "options"  # where they came from, for error messages

    @property
    def has_secret(self) -> bool:
        return bool(self.identity_token) or (self.username is not None and self.password is not None)


def explicit_credentials(
    username: str | None, password: str | None, *, environ: dict[str, str] | None = None
) -> tuple[str | None, str | None, str | None]:
    """``(username, password, source)`` from flags, else ``OMSIGN_USERNAME`` and
    ``OMSIGN_REGISTRY_PASSWORD``; ``source`` names what the user set, so a refusal says which
    setting to fix (a stale variable is easy to forget)."""
    env = os.environ if environ is None else environ
    user_from = "--username" if username else "OMSIGN_USERNAME" if env.get("OMSIGN_USERNAME") else None
    username = username or env.get("OMSIGN_USERNAME") or None
    pass_from = "--password-stdin" if password is not None else None
    if password is None and env.get("OMSIGN_REGISTRY_PASSWORD") is not None:
        password, pass_from = env["OMSIGN_REGISTRY_PASSWORD"], "OMSIGN_REGISTRY_PASSWORD"
    if user_from is None:
        return None, password, None
    return username, password, user_from if pass_from is None else f"{user_from} and {pass_from}"


# -- docker config ----------------------------------------------------------------------------


def docker_config_path(explicit: Path | None = None) -> Path:
    """``explicit`` (a file, or a folder holding config.json), else $DOCKER_CONFIG, else ~/.docker."""
    if explicit is not None:
        explicit = Path(explicit).expanduser()
        if explicit.is_dir() or explicit.suffix != ".json":
            return explicit / "config.json"
        return explicit
    env = os.environ.get("DOCKER_CONFIG")
    if env:
        return Path(env).expanduser() / "config.json"
    return Path.home() / ".docker" / "config.json"


def load_docker_config(path: Path) -> dict[str, Any]:
    """The config as a dict; a missing file is an empty config, a broken one an InputError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InputError(f"cannot read docker config {path}: {exc.strerror or exc}") from exc
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InputError(
            f"docker config {path} is not valid JSON: {exc}", hint="fix or remove the file"
        ) from exc
    if not isinstance(value, dict):
        raise InputError(f"docker config {path} is not a JSON object", hint="fix or remove the file")
    return value


def normalize_server(key: str) -> str:
    """``https://host:5000/v1/`` -> ``host:5000``; Docker Hub's many names -> ``docker.io``."""
    text = key.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].lower()
    return canonical_registry(text)


def helper_server_url(host: str) -> str:
    """What docker passes to credential helpers for ``host``."""
    return DOCKER_HUB_SERVER if normalize_server(host) == "docker.io" else host


def _decode_auth_entry(entry: Any, host: str, path: Path) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    identity = entry.get("identitytoken")
    username = entry.get("username")
    password = entry.get("password")
    encoded = entry.get("auth")
    source = f"docker config {path}"
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=False).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"the auth entry for {host} in {path} is not valid base64") from exc
        if ":" not in decoded:
            raise InputError(f"the auth entry for {host} in {path} is not user:password")
        username, password = decoded.split(":", 1)
    if isinstance(identity, str) and identity:
        return Credentials(
            username if isinstance(username, str) else None, None, identity, source=source
        )
    if isinstance(username, str) and isinstance(password, str):
        return Credentials(username, password, source=source)
    return None


def run_credential_helper(name: str, server: str) -> Credentials | None:
    """``docker-credential-<name> get``: server URL on stdin, JSON on stdout; None if it has none."""
    program = f"docker-credential-{name}"
    exe = shutil.which(program)
    if exe is None:
        raise AuthError(
            f"credential helper {program} is configured but not installed",
            hint="install it, or remove credsStore/credHelpers from your docker config",
        )
    try:
        proc = subprocess.run(
            [exe, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AuthError(f"credential helper {program} failed: {exc}") from exc
    out = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        text = (out or proc.stderr.decode("utf-8", "replace")).strip()
        if "credentials not found" in text.lower():
            return None
        first = text.splitlines()[0] if text else f"exit status {proc.returncode}"
        raise AuthError(f"credential helper {program} failed for {server}: {first}")
    try:
        value = json.loads(out)
    except ValueError as exc:
        raise AuthError(f"credential helper {program} printed something that is not JSON") from exc
    if not isinstance(value, dict):
        raise AuthError(f"credential helper {program} printed something that is not a JSON object")
    username = value.get("Username")
    secret = value.get("Secret")
    if not isinstance(secret, str) or not secret:
        return None
    source = f"credential helper {program}"
    if username == "<token>":
        return Credentials(None, None, secret, source=source)
    return Credentials(username if isinstance(username, str) else "", secret, source=source)


def credentials_from_config(host: str, config_path: Path | None = None) -> Credentials | None:
    """Credentials for ``host`` from the docker config: credHelpers, then auths, then credsStore."""
    path = docker_config_path(config_path)
    config = load_docker_config(path)
    wanted = normalize_server(host)
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if isinstance(name, str) and name and normalize_server(key) == wanted:
                return run_credential_helper(name, helper_server_url(host))
    auths = config.get("auths")
    if isinstance(auths, dict):
        # Prefer an exact key, then any key that names the same host.
        keys = sorted(auths, key=lambda k: k != host)
        for key in keys:
            if normalize_server(key) == wanted:
                found = _decode_auth_entry(auths[key], host, path)
                if found is not None:
                    return found
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return run_credential_helper(store, helper_server_url(host))
    return None


def _write_config(path: Path, config: dict[str, Any]) -> None:
    """Atomic write with 0600 permissions: the file holds secrets."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(config, f, indent="\t")
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_credentials(
    registry: str, username: str, password: str, config_path: Path | None = None
) -> Path:
    """Store a login in the docker config's ``auths`` (base64 ``user:password``), keeping the rest.

    The key is the host as typed (Docker Hub's historic URL for Hub), which is what docker login
    writes, so docker, cosign and oras read the same entry. Returns the file written.
    """
    if ":" in username:
        raise InputError("a username cannot contain ':'")
    path = docker_config_path(config_path)
    config = load_docker_config(path)
    auths = config.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    wanted = normalize_server(registry)
    for key in [k for k in auths if normalize_server(k) == wanted]:
        del auths[key]
    key = DOCKER_HUB_SERVER if wanted == "docker.io" else registry
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    auths[key] = {"auth": token}
    config["auths"] = auths
    _write_config(path, config)
    return path


def remove_credentials(registry: str, config_path: Path | None = None) -> bool:
    """Forget the ``auths`` entry for ``registry``; False if there was none."""
    path = docker_config_path(config_path)
    config = load_docker_config(path)
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return False
    wanted = normalize_server(registry)
    keys = [k for k in auths if normalize_server(k) == wanted]
    if not keys:
        return False
    for key in keys:
        del auths[key]
    _write_config(path, config)
    return True
