"""The command lines of every tool the benchmark compares, and the fixtures they need.

Each function returns an argv (plus cwd/env where it matters) so ``measure.run`` times the
same thing for every tool: a fresh process doing one operation, start-up included.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from make_models import Model

VENV_BIN = Path(sys.executable).parent
OMSIGN = str(VENV_BIN / "omsign")
MODEL_SIGNING = str(VENV_BIN / "model_signing")
PYTHON = sys.executable


@dataclass
class Cmd:
    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)


# -- omsign -------------------------------------------------------------------------------------
def omsign_env(cache_home: Path) -> dict[str, str]:
    """A private digest cache per benchmark run: a user's ~/.cache can neither help nor hurt."""
    return {"XDG_CACHE_HOME": str(cache_home), "COSIGN_PASSWORD": "", "OMSIGN_PASSWORD": ""}


def omsign_push(model: Path, ref: str, env: dict[str, str], *, no_cache: bool = True) -> Cmd:
    argv = [OMSIGN, "push", str(model), ref, "--no-progress"]
    if no_cache:
        argv.append("--no-cache")
    return Cmd(argv, env=env)


def omsign_pack(model: Path, layout_ref: str, env: dict[str, str]) -> Cmd:
    return Cmd([OMSIGN, "pack", str(model), layout_ref, "--no-cache"], env=env)


def omsign_pull(ref: str, dest: Path, env: dict[str, str], *, verify_key: Path | None = None) -> Cmd:
    argv = [OMSIGN, "pull", ref, str(dest), "--no-progress"]
    if verify_key is not None:
        argv += ["--verify", "--key", str(verify_key), "--insecure-ignore-tlog"]
    return Cmd(argv, env=env)


def omsign_keygen(directory: Path, env: dict[str, str]) -> Cmd:
    return Cmd([OMSIGN, "generate-key-pair", "--dir", str(directory)], env=env)


def omsign_sign(ref: str, key: Path, env: dict[str, str]) -> Cmd:
    return Cmd([OMSIGN, "sign", "--key", str(key), "--no-tlog-upload", ref], env=env)  # no Rekor offline


def omsign_attest(ref: str, key: Path, predicate: Path, env: dict[str, str]) -> Cmd:
    """An evaluation attestation, signed like ``omsign_sign`` (no Rekor offline)."""
    return Cmd([OMSIGN, "attest", "--key", str(key), "--no-tlog-upload", "--type", "eval",
                "--predicate", str(predicate), ref], env=env)


def omsign_verify(ref: str, pub: Path, env: dict[str, str]) -> Cmd:
    return Cmd([OMSIGN, "verify", "--key", str(pub), "--insecure-ignore-tlog", ref], env=env)


def omsign_verify_local(model: Path, pub: Path, env: dict[str, str], signature: Path | None = None) -> Cmd:
    argv = [OMSIGN, "verify-local", str(model), "--key", str(pub)]
    if signature is not None:
        argv += ["--signature", str(signature)]
    return Cmd(argv, env=env)


# -- skopeo -------------------------------------------------------------------------------------
def skopeo_push(layout: Path, tag: str, ref: str) -> Cmd:
    return Cmd(["skopeo", "copy", f"oci:{layout}:{tag}", f"docker://{ref}", "--dest-tls-verify=false"])


def omsign_copy(src: str, dst: str, env: dict[str, str], *, no_cache: bool = True) -> Cmd:
    argv = [OMSIGN, "copy", src, dst, "--no-progress"]
    if no_cache:
        argv.append("--no-cache")
    return Cmd(argv, env=env)


def skopeo_copy(src: str, dst: str) -> Cmd:
    """Registry to registry; skopeo carries the image only (signatures and referrers stay behind)."""
    return Cmd(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                f"docker://{src}", f"docker://{dst}"])


def skopeo_pull(ref: str, dest: Path, tag: str = "v1") -> Cmd:
    return Cmd(["skopeo", "copy", f"docker://{ref}", f"oci:{dest}:{tag}", "--src-tls-verify=false"])


# -- oras-py ------------------------------------------------------------------------------------
# oras-py checks that pushed paths are under the working directory, so the push runs from the
# model folder with relative names (as its README shows). http because insecure=True.
_ORAS_PUSH = """
import os, sys
import oras.client
files = sorted(f for f in os.listdir('.') if os.path.isfile(f))
oras.client.OrasClient(insecure=True).push(target=sys.argv[1], files=files, quiet=True)
"""
_ORAS_PULL = """
import sys
import oras.client
oras.client.OrasClient(insecure=True).pull(target=sys.argv[1], outdir=sys.argv[2])
"""


def oras_push(model: Path, ref: str) -> Cmd:
    return Cmd([PYTHON, "-c", _ORAS_PUSH, ref], cwd=str(model))


def oras_pull(ref: str, dest: Path) -> Cmd:
    return Cmd([PYTHON, "-c", _ORAS_PULL, ref, str(dest)])


# -- model_signing (sigstore/model-transparency) ------------------------------------------------
def model_signing_sign(model: Path, private_pem: Path, signature: Path) -> Cmd:
    return Cmd([MODEL_SIGNING, "sign", "key", str(model), "--private_key", str(private_pem),
                "--signature", str(signature)])


def model_signing_verify(model: Path, public_pem: Path, signature: Path) -> Cmd:
    return Cmd([MODEL_SIGNING, "verify", "key", str(model), "--public_key", str(public_pem),
                "--signature", str(signature)])


def make_ec_keypair(directory: Path) -> tuple[Path, Path]:
    """An unencrypted EC P-256 key pair in PEM, the form ``model_signing ... key`` reads."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = directory / "ec.pem", directory / "ec.pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


# -- an OCI layout for skopeo when omsign pack is not available ---------------------------------
MODEL_ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
MODEL_CONFIG = "application/vnd.cncf.model.config.v1+json"


def _layer_type(name: str) -> str:
    if name.endswith((".safetensors", ".bin", ".gguf", ".pt")):
        return "application/vnd.cncf.model.weight.v1.raw"
    if name.endswith(".md"):
        return "application/vnd.cncf.model.doc.v1.raw"
    return "application/vnd.cncf.model.weight.config.v1.raw"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(4 * 2**20):
            h.update(chunk)
    return h.hexdigest()


def write_layout(model: Model, layout: Path, tag: str) -> None:
    """A ModelPack-style OCI layout, one layer per file, blobs hard-linked to the model's files
    (same bytes, no copy). Used as skopeo's push source only when ``omsign pack`` fails.
    Linking changes the files' ctime: call it before anything fills omsign's digest cache."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def put(data: bytes) -> tuple[str, int]:
        hexd = hashlib.sha256(data).hexdigest()
        (blobs / hexd).write_bytes(data)
        return f"sha256:{hexd}", len(data)

    layers = []
    for p in model.files:
        hexd = _sha256_file(p)
        target = blobs / hexd
        if not target.exists():
            try:
                os.link(p, target)
            except OSError:
                target.write_bytes(p.read_bytes())
        layers.append({
            "mediaType": _layer_type(p.name),
            "digest": f"sha256:{hexd}",
            "size": p.stat().st_size,
            "annotations": {"org.cncf.model.filepath": p.name, "org.opencontainers.image.title": p.name},
        })
    config = {"descriptor": {"name": "bench"}, "config": {}, "modelfs": {
        "type": "layers", "diffIds": [layer["digest"] for layer in layers]}}
    cdig, csize = put(json.dumps(config, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": MODEL_ARTIFACT_TYPE,
        "config": {"mediaType": MODEL_CONFIG, "digest": cdig, "size": csize},
        "layers": layers,
    }
    mdig, msize = put(json.dumps(manifest, separators=(",", ":")).encode())
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig, "size": msize,
        "artifactType": MODEL_ARTIFACT_TYPE, "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (layout / "index.json").write_text(json.dumps(index))


# -- versions ----------------------------------------------------------------------------------
def _first_line(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else ""
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"


def _dist(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def tool_versions() -> dict[str, str]:
    return {
        "omsign": _dist("oci-model-sign"),
        "skopeo": _first_line(["skopeo", "--version"]),
        "oras-py": _dist("oras"),
        "model_signing": _dist("model-signing"),
        "docker-registry": _first_line(["docker-registry", "--version"]),
    }
