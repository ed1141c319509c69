"""Shared helpers for the attack and fault tests: run the CLI, make models, build hostile
manifests by hand, and check that a failed pull left DEST exactly as it was.

The attack tests speak to the registry with plain httpx when they play the attacker (a
registry or middlebox is free to store and serve anything), and through the real ``omsign``
CLI when they play the user, so what is asserted is what a user sees: one line on stderr,
the documented exit code, and no stray bytes on disk.

``run_cli`` runs the CLI in the test process, set up as a fresh ``python -m
oci_model_sign.cli`` would be (``tests/cli_inprocess.py``; ``tests/test_cli_harness.py``
checks it against a child). Tests about the process itself (signals, kill -9, concurrent
processes, another user, a timeout that must kill) use ``run_cli_subprocess`` or
``start_cli`` and carry ``@pytest.mark.subprocess``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import registry_server
from tests.faultproxy import FaultProxy

ROOT = Path(__file__).resolve().parent.parent
TINY_MODEL = ROOT / "testdata" / "tiny-model"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MODEL_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
MODEL_CONFIG = "application/vnd.cncf.model.config.v1+json"
WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_TAR = "application/vnd.cncf.model.weight.v1.tar"
WEIGHT_TAR_ZSTD = "application/vnd.cncf.model.weight.v1.tar+zstd"
TITLE = "org.opencontainers.image.title"
FILEPATH = "org.cncf.model.filepath"
UNCOMPRESSED = "org.omsign.tar.uncompressed-size"

# Fast failure in tests: short backoff, few retries (overridable per call).
FAST_ENV = {"OMSIGN_BACKOFF_BASE": "0.05", "OMSIGN_RETRIES": "5", "OMSIGN_MAX_RETRY_TIME": "30"}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- the CLI ------------------------------------------------------------------------------------
@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_line(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        return lines[-1] if lines else ""


def cli_command(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "oci_model_sign.cli", *(str(a) for a in args)]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(FAST_ENV)
    env.pop("OMSIGN_DEBUG", None)
    if extra:
        env.update(extra)
    return env


def run_cli(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 180,
) -> CliResult:
    """Run ``omsign`` in this process: the user's view (exit code, stdout, stderr), without
    paying a fresh interpreter per call. ``run_cli_subprocess`` is the same in a real process,
    for what only a process shows (signals, kill -9, process-wide state)."""
    from tests.cli_inprocess import run_in_process

    return run_in_process(
        [str(a) for a in args], env=cli_env(env), input=input, cwd=ROOT, timeout=timeout
    )


def run_cli_subprocess(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 180,
) -> CliResult:
    """Run ``omsign`` as ``python -m oci_model_sign.cli`` in a child process."""
    proc = subprocess.run(
        cli_command(*args), capture_output=True, text=True, env=cli_env(env), input=input,
        timeout=timeout, cwd=ROOT,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def start_cli(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``omsign`` without waiting (for kill -9 and concurrency tests)."""
    return subprocess.Popen(
        cli_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(env), cwd=ROOT,
    )


def assert_ok(result: CliResult) -> None:
    assert result.returncode == 0, f"omsign failed ({result.returncode}): {result.stderr}"


def assert_cli_error(result: CliResult, exit_code: int, *needles: str) -> None:
    """One ``omsign: error:`` line, no traceback, the documented exit code, the words expected."""
    assert "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stderr, result.stderr
    assert result.returncode == exit_code, f"exit {result.returncode}, wanted {exit_code}: {result.stderr}"
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("omsign: error:")]
    assert len(errors) == 1, result.stderr
    low = errors[0].lower()
    for needle in needles:
        assert needle.lower() in low, f"{needle!r} not in {errors[0]!r}"


# -- models on disk -----------------------------------------------------------------------------
def make_model(root: Path, files: dict[str, bytes | int] | None = None, seed: int | None = None) -> Path:
    """A small model folder; an int value means that many pseudo-random bytes.

    Random by default: the registry stores a blob once for all repositories, so two tests
    sharing bytes would share (and could tamper with) each other's blobs.
    """
    import random
    import secrets

    rng = random.Random(secrets.randbits(64) if seed is None else seed)
    files = files or {"model.safetensors": 200_000, "config.json": b'{"arch":"tiny"}\n', "README.md": b"# tiny\n"}
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(content) if isinstance(content, int) else content)
    return root


def snapshot(path: Path) -> dict[str, Any] | None:
    """Everything observable about a folder tree (names, types, bytes, modes); None if absent."""
    if not os.path.lexists(path):
        return None
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            rel = str(full.relative_to(path))
            st = os.lstat(full)
            if full.is_symlink():
                out[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                out[rel] = ("dir", st.st_mode)
            else:
                out[rel] = ("file", st.st_mode, hashlib.sha256(full.read_bytes()).hexdigest())
    return out


def assert_untouched(dest: Path, before: dict[str, Any] | None) -> None:
    """DEST is exactly as it was (absent stays absent) and no staging debris sits beside it."""
    assert snapshot(dest) == before, f"{dest} changed"
    debris = [p.name for p in dest.parent.iterdir() if p.name.startswith(".omsign")] if dest.parent.exists() else []
    assert not debris, f"left behind next to {dest}: {debris}"


def prefilled_dest(tmp_path: Path) -> tuple[Path, dict[str, Any] | None]:
    """A DEST that already holds a user's file (the harder case: it must stay byte-identical)."""
    dest = tmp_path / "dest"
    dest.mkdir(parents=True)
    (dest / "keep.txt").write_bytes(b"the user's own file\n")
    return dest, snapshot(dest)


# -- the registry as an attacker sees it --------------------------------------------------------
class RawRegistry:
    """Direct distribution-API access (no omsign): what a hostile registry owner can do."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Plain HTTP on 127.0.0.1: no CA bundle to load (that alone costs ~20 ms of CPU a client).
        self.client = httpx.Client(base_url=url, timeout=60, verify=False)

    def close(self) -> None:
        self.client.close()

    def put_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        if self.client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200:
            return digest
        r = self.client.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, r.text
        loc = r.headers["location"]
        r = self.client.put(f"{loc}{'&' if '?' in loc else '?'}digest={digest}", content=data)
        assert r.status_code == 201, r.text
        return digest

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str = OCI_MANIFEST) -> str:
        r = self.client.put(f"/v2/{repo}/manifests/{ref}", content=data, headers={"Content-Type": media_type})
        assert r.status_code == 201, r.text
        return sha256(data)

    def get_manifest(self, repo: str, ref: str) -> bytes:
        r = self.client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
        assert r.status_code == 200, r.text
        return r.content

    def get_blob(self, repo: str, digest: str) -> bytes:
        r = self.client.get(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 200
        return r.content

    def referrers(self, repo: str, digest: str) -> list[dict[str, Any]]:
        r = self.client.get(f"/v2/{repo}/referrers/{digest}")
        if r.status_code == 200 and r.headers.get("content-type", "").startswith(OCI_INDEX):
            return list(r.json().get("manifests", []))
        tag = digest.replace(":", "-")
        r = self.client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_INDEX})
        if r.status_code != 200:
            return []
        return list(r.json().get("manifests", []))


def layer(title: str, data: bytes, media_type: str = WEIGHT_RAW, **annotations: str) -> dict[str, Any]:
    """A layer spec for ``push_model_manifest``: ``title`` None-able, extra annotations allowed."""
    ann = {TITLE: title, FILEPATH: title} if title is not None else {}
    ann.update(annotations)
    return {"data": data, "mediaType": media_type, "annotations": ann}


def model_manifest(layers: list[dict[str, Any]], config: bytes, extra: dict[str, Any] | None = None) -> bytes:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": MODEL_ARTIFACT,
        "config": {"mediaType": MODEL_CONFIG, "size": len(config), "digest": sha256(config)},
        "layers": [
            {
                "mediaType": spec["mediaType"],
                "size": spec.get("size", len(spec["data"])),
                "digest": spec.get("digest", sha256(spec["data"])),
                "annotations": spec["annotations"],
            }
            for spec in layers
        ],
    }
    manifest.update(extra or {})
    return json.dumps(manifest, separators=(",", ":")).encode()


def model_config(layers: list[dict[str, Any]]) -> bytes:
    diff_ids = [spec.get("diff_id", sha256(spec["data"])) for spec in layers]
    value = {"descriptor": {"name": "hostile"}, "config": {}, "modelfs": {"type": "layers", "diffIds": diff_ids}}
    return json.dumps(value, separators=(",", ":")).encode()


def push_model_manifest(
    raw: RawRegistry, repo: str, layers: list[dict[str, Any]], tag: str = "v1", extra: dict[str, Any] | None = None
) -> str:
    """Upload blobs and a hand-built ModelPack manifest; returns the manifest digest."""
    for spec in layers:
        if spec.get("upload", True):
            raw.put_blob(repo, spec["data"])
    config = model_config(layers)
    raw.put_blob(repo, config)
    return raw.put_manifest(repo, tag, model_manifest(layers, config, extra))


# -- fixtures (import them into a test module to use them) --------------------------------------
@pytest.fixture
def raw(registry: registry_server.RegistryServer) -> Iterator[RawRegistry]:
    r = RawRegistry(registry.url)
    yield r
    r.close()


@pytest.fixture
def proxy(registry: registry_server.RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(registry.url) as p:
        yield p


@pytest.fixture
def repo_name() -> str:
    import uuid

    return f"test/{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def keypair(session_keypairs: dict[str, tuple[Path, Path]]) -> tuple[Path, Path]:
    """(cosign.key, cosign.pub) written by ``omsign generate-key-pair`` with password ``pw``.

    One pair for the whole session (scrypt makes each pair cost a noticeable fraction of a
    second): treat the files as read-only, copy them to change them.
    """
    return session_keypairs["keys"]


@pytest.fixture(scope="session")
def other_keypair(session_keypairs: dict[str, tuple[Path, Path]]) -> tuple[Path, Path]:
    """A second, unrelated pair (same password), shared by the session like ``keypair``."""
    return session_keypairs["other-keys"]


SIGN_ENV = {"OMSIGN_PASSWORD": "pw"}


def sign(ref: str, key: Path, *extra: str) -> CliResult:
    """``omsign sign --key`` without the transparency log (no Rekor here; verify with
    ``--insecure-ignore-tlog``, see ``verify_args``)."""
    result = run_cli("sign", "--key", key, ref, "--no-tlog-upload", *extra, env=SIGN_ENV)
    assert_ok(result)
    return result


def verify_args(pub: Path) -> list[str]:
    return ["--key", str(pub), "--insecure-ignore-tlog"]


@contextlib.contextmanager
def mounted_tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` mounted at ``mnt`` (root only; the test skips elsewhere)."""
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
