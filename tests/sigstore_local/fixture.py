"""Offline keyless Sigstore for tests, and the sigstore-js CLI as an independent peer.

``server.js`` runs Sigstore's own JS emulation (npm ``@sigstore/mock``) of Fulcio, Rekor v1 and a
timestamp authority on 127.0.0.1. This module starts it, turns the trust material it prints into
a ``ClientTrustConfig`` (what sigstore-python and omsign consume) and into a small signed TUF
repository (what the sigstore-js CLI consumes, served by the same process), and mints OIDC
tokens: Fulcio's mock, like sigstore-python, never checks a token's signature, so tests can sign
as any identity without the internet.

Use from tests (``tests/conftest.py`` registers the fixture)::

    def test_x(sigstore_local: SigstoreLocal) -> None:
        cfg = ClientTrustConfig.from_json(sigstore_local.trust_config.read_text())
        ctx = SigningContext.from_trust_config(cfg)
        with ctx.signer(IdentityToken(sigstore_local.token("alice@example.com"))) as signer:
            bundle = signer.sign_artifact(b"data")

and ``sigstore_js_attach`` / ``sigstore_js_verify`` to let sigstore-js attach or check bundles.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
SERVER_JS = HERE / "server.js"
NODE_MODULES = HERE / "node_modules"
SIGSTORE_CLI = NODE_MODULES / ".bin" / "sigstore"

DEFAULT_IDENTITY = "alice@example.com"
DEFAULT_ISSUER = "https://issuer.example.com"

CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"

_OPERATOR = "omsign-tests.local"
_START_TIMEOUT = 60.0  # the first start compiles a lot of JS on a busy 2-core box
_CLI_TIMEOUT = 180.0


class SigstoreLocalError(RuntimeError):
    """The local services or the sigstore-js CLI did not do what a test needed."""


# ---------------------------------------------------------------------------- availability


def missing_reason() -> str | None:
    """Why the Node side cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (keyless tests need Node >= 20; then run `make node-deps`)"
    if not (NODE_MODULES / "@sigstore" / "mock").is_dir() or not SIGSTORE_CLI.exists():
        return "tests/sigstore_local/node_modules is missing: run `make node-deps`"
    return None


def require_node() -> None:
    """Skip the calling test when Node deps are missing; in CI, where `make test` installs
    them, their absence is a broken setup and fails instead of silently skipping."""
    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI: `make test` should have installed them)")
    pytest.skip(reason)


# ---------------------------------------------------------------------------- tokens


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_token(
    identity: str = DEFAULT_IDENTITY,
    issuer: str = DEFAULT_ISSUER,
    *,
    lifetime: int = 600,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    """A JWT shaped like a real OIDC ID token but signed by nobody.

    sigstore-python decodes tokens without verifying them (Fulcio would), and the mock Fulcio
    does not verify either, so the signature segment is random bytes. The certificate's SAN
    becomes ``sub`` and its issuer extension ``iss``.
    """
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": "omsign-test-unsigned"}
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": identity,
        "email": identity,
        "email_verified": True,
        "aud": "sigstore",
        "iat": now,
        "nbf": now - 5,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    claims.update(extra_claims or {})
    segments = [
        _b64url(json.dumps(header, separators=(",", ":")).encode()),
        _b64url(json.dumps(claims, separators=(",", ":")).encode()),
        _b64url(os.urandom(64)),
    ]
    return ".".join(segments)


# ---------------------------------------------------------------------------- trust material


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_id(spki_der_b64: str) -> str:
    """Sigstore's log id: base64(sha256(DER SubjectPublicKeyInfo))."""
    return base64.b64encode(hashlib.sha256(base64.b64decode(spki_der_b64)).digest()).decode()


def build_trusted_root(material: dict[str, Any], start: str) -> dict[str, Any]:
    """A trusted_root.json shaped like the production one shipped inside sigstore-python."""
    url = material["url"]
    tlog_key = material["tlog"]["public_key_der"]
    ctlog_key = material["ctlog"]["public_key_der"]
    return {
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": [
            {
                "baseUrl": material["tlog"]["base_url"],
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": tlog_key,
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start},
                },
                "logId": {"keyId": key_id(tlog_key)},
            }
        ],
        "certificateAuthorities": [
            {
                "subject": {"organization": "sigstore.mock", "commonName": "sigstore"},
                "uri": url,
                "certChain": {"certificates": [{"rawBytes": material["ca"]["root_der"]}]},
                "validFor": {"start": start},
            }
        ],
        "ctlogs": [
            {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": ctlog_key,
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start},
                },
                "logId": {"keyId": key_id(ctlog_key)},
            }
        ],
        "timestampAuthorities": [
            {
                "subject": {"organization": "sigstore.mock", "commonName": "tsa"},
                "uri": material["tsa"]["url"],
                "certChain": {
                    "certificates": [{"rawBytes": c} for c in material["tsa"]["cert_chain_der"]]
                },
                "validFor": {"start": start},
            }
        ],
    }


def build_signing_config(material: dict[str, Any], start: str, *, tsa: bool) -> dict[str, Any]:
    """A signing_config.v0.2.json pointing every service at the local server."""

    def service(url: str) -> dict[str, Any]:
        return {
            "url": url,
            "majorApiVersion": 1,
            "validFor": {"start": start},
            "operator": _OPERATOR,
        }

    return {
        "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
        "caUrls": [service(material["url"])],
        "oidcUrls": [],
        "rekorTlogUrls": [service(material["tlog"]["base_url"])],
        "tsaUrls": [service(material["tsa"]["url"])] if tsa else [],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaConfig": {"selector": "ANY"},
    }


def build_client_trust_config(
    material: dict[str, Any], *, tsa: bool = True, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The ClientTrustConfig JSON that ``ClientTrustConfig.from_json`` accepts."""
    start = _rfc3339((now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(hours=1))
    return {
        "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
        "trustedRoot": build_trusted_root(material, start),
        "signingConfig": build_signing_config(material, start, tsa=tsa),
    }


def write_tuf_repository(repo: Path, trusted_root: bytes, *, days: int = 7) -> Path:
    """A minimal signed TUF repository whose only target is ``trusted_root.json``.

    The sigstore-js CLI reads its trust root only through TUF (``--tuf-mirror-url`` and
    ``--tuf-root-path``), so that is the only way to make it trust the local services.
    One ed25519 key signs all four roles; returns the path of ``root.json``.
    """
    # Documented public import paths; these modules re-export without __all__ (mypy --strict).
    from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]
    from tuf.api.metadata import (  # type: ignore[attr-defined]
        Metadata,
        MetaFile,
        Root,
        Snapshot,
        TargetFile,
        Targets,
        Timestamp,
    )

    expires = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=days)
    signer = CryptoSigner.generate_ed25519()
    root = Root(expires=expires, consistent_snapshot=False)
    for role in ("root", "timestamp", "snapshot", "targets"):
        root.add_key(signer.public_key, role)
    targets = Targets(expires=expires)
    targets.targets["trusted_root.json"] = TargetFile.from_data("trusted_root.json", trusted_root)
    targets_md = Metadata(targets)
    targets_md.sign(signer)
    targets_bytes = targets_md.to_bytes()
    snapshot = Snapshot(expires=expires)
    snapshot.meta["targets.json"] = MetaFile(version=targets.version)
    snapshot_md = Metadata(snapshot)
    snapshot_md.sign(signer)
    timestamp = Timestamp(expires=expires, snapshot_meta=MetaFile(version=snapshot.version))
    timestamp_md = Metadata(timestamp)
    timestamp_md.sign(signer)
    root_md = Metadata(root)
    root_md.sign(signer)

    (repo / "targets").mkdir(parents=True, exist_ok=True)
    root_bytes = root_md.to_bytes()
    (repo / "root.json").write_bytes(root_bytes)
    (repo / "1.root.json").write_bytes(root_bytes)
    (repo / "timestamp.json").write_bytes(timestamp_md.to_bytes())
    (repo / "snapshot.json").write_bytes(snapshot_md.to_bytes())
    (repo / "targets.json").write_bytes(targets_bytes)
    (repo / "targets" / "trusted_root.json").write_bytes(trusted_root)
    return repo / "root.json"


# ---------------------------------------------------------------------------- the server


@dataclass
class SigstoreLocal:
    """One running server.js and the trust files describing it."""

    url: str
    port: int
    trust_config: Path  # ClientTrustConfig JSON (trusted root + signing config)
    trusted_root: Path  # the trusted root alone (cosign --trusted-root, sigstore-js via TUF)
    tuf_root: Path  # root.json of the TUF repository served at tuf_mirror_url
    tuf_mirror_url: str
    material: dict[str, Any]
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    default_issuer: str = DEFAULT_ISSUER
    _log_handle: Any = field(default=None, repr=False)

    def token(self, identity: str = DEFAULT_IDENTITY, issuer: str = DEFAULT_ISSUER) -> str:
        """An OIDC token for ``identity`` from ``issuer`` (the SAN and issuer of the cert)."""
        return make_token(identity, issuer)

    def log(self) -> str:
        """The server's request log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Close stdin (the server exits on EOF); escalate only if it lingers."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self._log_handle is not None:
            self._log_handle.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _read_first_line(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SigstoreLocalError(f"server.js printed no trust material in {timeout:.0f}s")
            if not sel.select(timeout=left):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                raise SigstoreLocalError(f"server.js exited early (code {process.wait()})")
            buf += chunk
    return buf.split(b"\n", 1)[0]


def start(*, tsa: bool = True, workdir: Path | None = None) -> SigstoreLocal:
    """Start server.js on a random loopback port and write the trust files.

    With ``tsa=False`` the signing config lists no timestamp authority, so bundles carry
    only Rekor's integrated time (what production Rekor v1 bundles look like).
    """
    reason = missing_reason()
    if reason is not None:
        raise SigstoreLocalError(reason)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="omsign-sigstore-"))
    tuf_repo = workdir / "tuf"
    tuf_repo.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    log_handle = open(log_path, "ab")  # noqa: SIM115 - owned by the SigstoreLocal
    process = subprocess.Popen(
        ["node", str(SERVER_JS), "0", str(tuf_repo)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log_handle,
        cwd=HERE,
    )
    try:
        line = _read_first_line(process, _START_TIMEOUT)
        material: dict[str, Any] = json.loads(line)
        config = build_client_trust_config(material, tsa=tsa)
        trust_config = workdir / "trust_config.json"
        trust_config.write_text(json.dumps(config, indent=2))
        trusted_root = workdir / "trusted_root.json"
        trusted_root_bytes = json.dumps(config["trustedRoot"], indent=2).encode()
        trusted_root.write_bytes(trusted_root_bytes)
        tuf_root = write_tuf_repository(tuf_repo, trusted_root_bytes)
    except BaseException as exc:
        if process.stdin is not None:
            process.stdin.close()
        process.kill()
        process.wait()
        log_handle.close()
        log = log_path.read_text(errors="replace")
        shutil.rmtree(workdir, ignore_errors=True)
        if isinstance(exc, SigstoreLocalError | ValueError):
            raise SigstoreLocalError(f"{exc}\n--- server.js log ---\n{log}") from exc
        raise
    return SigstoreLocal(
        url=material["url"],
        port=int(material["port"]),
        trust_config=trust_config,
        trusted_root=trusted_root,
        tuf_root=tuf_root,
        tuf_mirror_url=f"{material['url']}/tuf",
        material=material,
        workdir=workdir,
        process=process,
        log_path=log_path,
        _log_handle=log_handle,
    )


@pytest.fixture(scope="session")
def sigstore_local() -> Iterator[SigstoreLocal]:
    """Fulcio + Rekor v1 + TSA on 127.0.0.1 for the whole session (skips without Node deps)."""
    require_node()
    services = start()
    try:
        yield services
    finally:
        services.stop()


# ---------------------------------------------------------------------------- sigstore-js CLI


def _run_cli(args: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    require_node()
    cmd = [str(SIGSTORE_CLI), *args]
    env = dict(os.environ)
    env.setdefault("NO_COLOR", "1")
    try:
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=_CLI_TIMEOUT,
            env=env,
            cwd=HERE,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SigstoreLocalError(f"sigstore-js {what} timed out after {_CLI_TIMEOUT:.0f}s") from exc
    if result.returncode != 0:
        raise SigstoreLocalError(
            f"sigstore-js {what} failed (exit {result.returncode}): {' '.join(_redact(cmd))}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def _redact(cmd: Sequence[str]) -> list[str]:
    out: list[str] = []
    hide = False
    for arg in cmd:
        out.append("***" if hide else arg)
        hide = arg in ("-p", "--password")
    return out


def sigstore_js_attach(bundle_path: Path, ref: str, username: str, password: str) -> None:
    """Attach a Sigstore bundle to ``ref`` (``127.0.0.1:PORT/repo@sha256:...``) with sigstore-js.

    ``@sigstore/oci`` pushes it as an OCI 1.1 referrer the way GitHub's attestation tooling does
    (empty config, one bundle layer, ``subject``), and on registries without the referrers API
    also maintains the ``sha256-<hex>`` fallback index. Plain HTTP is used for 127.0.0.1; the
    registry must demand credentials (htpasswd), else the CLI never sends them.
    """
    _run_cli(
        ["attach", "--attestation", str(bundle_path), "-u", username, "-p", password, ref],
        "attach",
    )


def sigstore_js_verify(
    bundle_path: Path,
    services: SigstoreLocal,
    *,
    artifact: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
) -> dict[str, Any] | None:
    """Verify a bundle with the sigstore-js CLI against the local services' trusted root.

    ``artifact`` is required for message-signature bundles (``sign_artifact``); DSSE bundles
    carry their payload. ``identity`` is matched against the certificate's SAN, ``issuer``
    against its OIDC-issuer extension. The CLI only takes trust from TUF, so this points it at
    the TUF repository served by ``services`` with a fresh cache. Raises SigstoreLocalError
    (with the CLI's output) when verification fails; returns the CLI's JSON output if any.
    """
    cache = Path(tempfile.mkdtemp(prefix="omsign-sigstore-js-tuf-"))
    args = [
        "verify",
        str(bundle_path),
        "--json",
        "--tuf-mirror-url",
        services.tuf_mirror_url,
        "--tuf-root-path",
        str(services.tuf_root),
        "--tuf-cache-path",
        str(cache),
    ]
    if artifact is not None:
        args += ["--blob-file", str(artifact)]
    if identity is not None:
        flag = (
            "--certificate-identity-email"
            if "@" in identity and ":" not in identity
            else ("--certificate-identity-uri")
        )
        args += [flag, identity]
    if issuer is not None:
        args += ["--certificate-issuer", issuer]
    try:
        result = _run_cli(args, "verify")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    out = result.stdout.strip()
    if not out:
        return None
    try:
        parsed = json.loads(out)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else {"result": parsed}
