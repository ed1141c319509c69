"""``omsign audit`` at registry scale: 200 signed models in 20 repositories, timed.

Starts a fresh Debian docker-registry on 127.0.0.1, pushes small distinct ModelPack models
through the distribution API, signs every one with a key (the real ``oci_model_sign.sign``,
four at a time), then times one ``omsign audit HOST --key cosign.pub --insecure-ignore-tlog
--json`` over the whole catalog and checks that every model was found and passes. Prints one
Markdown row; ``--json FILE`` also writes it as JSON.

    .venv/bin/python bench/audit_bench.py [--models 200] [--repos 20] [-j 4]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests import registry_server  # noqa: E402
from tests.helpers import RawRegistry, layer, push_model_manifest  # noqa: E402


def _populate(reg: registry_server.RegistryServer, models: int, repos: int, key: Path, jobs: int) -> list[str]:
    import oci_model_sign as oms
    from oci_model_sign.signing.signers import KeySigner

    raw = RawRegistry(reg.url)
    refs = []
    try:
        for i in range(models):
            repo = f"bench/repo{i % repos:02d}"
            tag = f"v{i // repos}"
            push_model_manifest(raw, repo, [layer("weights.bin", secrets.token_bytes(256))], tag=tag)
            refs.append(f"{reg.host}/{repo}:{tag}")
    finally:
        raw.close()
    signer = KeySigner(key, b"bench")
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda ref: oms.sign(ref, signer), refs))
    return refs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("-j", "--jobs", type=int, default=4, help="audit concurrency (and signing threads)")
    parser.add_argument("--json", type=Path, default=None, help="also write the row as JSON here")
    args = parser.parse_args(argv)
    if not registry_server.available():
        print("docker-registry is not installed (make system-deps)", file=sys.stderr)
        return 2
    env = dict(os.environ, OMSIGN_PASSWORD="bench")
    with tempfile.TemporaryDirectory(prefix="omsign-audit-bench-") as tmp:
        keys = Path(tmp)
        subprocess.run([sys.executable, "-m", "oci_model_sign.cli", "generate-key-pair", "--dir", str(keys)],
                       check=True, env=env, cwd=ROOT, capture_output=True)
        reg = registry_server.start()
        try:
            started = time.monotonic()
            _populate(reg, args.models, args.repos, keys / "cosign.key", args.jobs)
            setup = time.monotonic() - started
            cmd = [sys.executable, "-m", "oci_model_sign.cli", "audit", reg.host, "--key", str(keys / "cosign.pub"),
                   "--insecure-ignore-tlog", "--json", "-j", str(args.jobs)]
            started = time.monotonic()
            proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
            elapsed = time.monotonic() - started
        finally:
            reg.stop()
    if proc.returncode != 0:
        print(f"audit failed ({proc.returncode}): {proc.stderr.strip()}", file=sys.stderr)
        return 1
    summary = json.loads(proc.stdout)["summary"]
    ok = summary["modelsExamined"] == args.models and summary["passing"] == args.models
    row: dict[str, Any] = {
        "operation": "audit",
        "tool": "omsign",
        "models": args.models,
        "repositories": args.repos,
        "jobs": args.jobs,
        "seconds": round(elapsed, 2),
        "setupSeconds": round(setup, 1),
        "found": summary["modelsExamined"],
        "passing": summary["passing"],
        "ok": ok,
    }
    print("| operation | tool | models / repositories | -j | time | models found / passing |")
    print("|---|---|---|---|---|---|")
    print(f"| audit | omsign | {args.models} / {args.repos} | {args.jobs} | {elapsed:.2f} s | "
          f"{summary['modelsExamined']} / {summary['passing']} |")
    if args.json is not None:
        args.json.write_text(json.dumps(row, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
