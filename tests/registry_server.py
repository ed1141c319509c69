"""A real OCI registry for tests and benchmarks: Debian's ``docker-registry`` (distribution 2.8).

Started on 127.0.0.1 with a random free port and temporary storage; optionally behind
htpasswd Basic auth. Used by the pytest fixtures, ``make demo`` and ``make bench``.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BINARY = "docker-registry"

# Where ``start`` makes each registry's folder; None is the system's temp folder. The test
# fixtures choose memory when there is room (tests/conftest.py); benchmarks stay on disk.
TMPDIR: str | None = None


def available() -> bool:
    return shutil.which(BINARY) is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RegistryServer:
    """One running registry process and where it keeps its blobs."""

    port: int
    root: Path
    process: subprocess.Popen[bytes]
    username: str | None = None
    password: str | None = None
    workdir: Path = field(default_factory=Path)
    token_server: object | None = None  # tests.token_server.TokenServer in token mode
    ca_file: Path | None = None  # set when the registry speaks HTTPS: the CA clients must trust

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://{self.host}"

    def blob_path(self, digest: str) -> Path:
        """Where distribution keeps a blob on disk: tests edit it to simulate tampering."""
        alg, hexpart = digest.split(":", 1)
        return self.root / "docker/registry/v2/blobs" / alg / hexpart[:2] / hexpart / "data"

    def stop(self) -> None:
        stop_tokens = getattr(self.token_server, "stop", None)
        if callable(stop_tokens):
            stop_tokens()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start the same registry on the same port and storage."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = _spawn(self.workdir / "config.yml", self.workdir / "registry.log")
        _wait_ready(self.url, self.process, self.ca_file)


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        [BINARY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ)
    )


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], ca_file: Path | None = None, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {process.returncode}")
        try:
            r = httpx.get(url + "/v2/", timeout=1.0, verify=verify)
            if r.status_code in (200, 401):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("docker-registry did not become ready")


def start(
    *,
    auth: bool = False,
    token: bool = False,
    username: str = "omsign",
    password: str = "s3cret-pass",
    tls: tuple[Path, Path, Path] | None = None,
    notify: str | None = None,
    notify_token: str | None = None,
) -> RegistryServer:
    """Start a registry; with ``auth`` it demands Basic credentials (htpasswd, bcrypt), with
    ``token`` Bearer tokens from a token service on 127.0.0.1 (``tests.token_server``); with
    ``tls`` = (CA, certificate, key) PEM files it speaks HTTPS only; with ``notify`` = URL it
    posts its notification events there (as a hub's webhook endpoint), with ``notify_token``
    sent as a bearer token."""
    if not available():
        raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
    workdir = Path(tempfile.mkdtemp(prefix="omsign-registry-", dir=TMPDIR))
    root = workdir / "storage"
    root.mkdir()
    port = free_port()
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if tls is not None:
        lines += ["  tls:", f"    certificate: {tls[1]}", f"    key: {tls[2]}"]
    if auth:
        import bcrypt

        htpasswd = workdir / "htpasswd"
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        htpasswd.write_text(f"{username}:{hashed}\n")
        lines += ["auth:", "  htpasswd:", "    realm: basic-realm", f"    path: {htpasswd}"]
    tokens = None
    if token:
        from tests.token_server import ISSUER, SERVICE, TokenServer

        tokens = TokenServer(username, password, workdir)
        lines += [
            "auth:",
            "  token:",
            f"    realm: {tokens.realm}",
            f"    service: {SERVICE}",
            f"    issuer: {ISSUER}",
            f"    rootcertbundle: {tokens.cert_path}",
        ]
    if notify is not None:
        lines += [
            "notifications:",
            "  events:",
            "    includereferences: true",
            "  endpoints:",
            "    - name: gate",
            f"      url: {notify}",
            "      timeout: 2s",
            "      threshold: 3",
            "      backoff: 200ms",
            "      ignoredmediatypes:",
            "        - application/octet-stream",
        ]
        if notify_token is not None:
            lines += ["      headers:", "        Authorization:", f"          - Bearer {notify_token}"]
    config = workdir / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    process = _spawn(config, workdir / "registry.log")
    server = RegistryServer(
        port=port,
        root=root,
        process=process,
        username=username if auth or token else None,
        password=password if auth or token else None,
        workdir=workdir,
        token_server=tokens,
        ca_file=tls[0] if tls is not None else None,
    )
    try:
        _wait_ready(server.url, process, server.ca_file)
    except Exception:
        server.stop()
        raise
    return server
