"""omsign's benchmark: push, pull, re-push, sign, verify, local hashing and audit against real peers.

Peers: skopeo (push from / pull to an OCI layout), oras-py (the Python ORAS client), and
model_signing (sigstore/model-transparency) for signing and local hashing. Everything talks to a
Debian docker-registry started here on 127.0.0.1 with fresh storage for every measured push.
Last, ``bench/audit_bench.py`` times ``omsign audit`` over a catalog of signed models (its row
joins the table; ``--skip audit`` leaves it out).
See bench/README.md for what is measured and the fairness rules.

    python bench/run.py                 # 2 GiB model, 3 repeats (medians), all operations
    python bench/run.py --quick         # 256 MiB, 1 repeat: smoke test
    python bench/run.py --scaling       # push/pull at 0.25..4 GiB, then the rest at --size
    python bench/run.py --report-only   # rebuild latest.md / throughput.png from latest.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import make_models  # noqa: E402
import measure  # noqa: E402
import peers  # noqa: E402
from make_models import Model, human, parse_size  # noqa: E402

from tests import registry_server  # noqa: E402

TOOLS = ("omsign", "skopeo", "oras-py")
SCALING_SIZES = ("256M", "512M", "1G", "2G", "4G")
RESULTS = BENCH / "results"
RSS_LIMIT_MB = 150.0  # "150 MB" read strictly: 150 x 10^6 bytes
RSS_LIMIT_MIB = RSS_LIMIT_MB * 1e6 / 2**20  # = 143.05 MiB, the unit of our measurements

# -- targets (issue "Measured speed") -----------------------------------------------------------
PUSH_VS_SKOPEO = 0.7
PULL_VS_SKOPEO = 0.7
REPUSH_UNCHANGED_S = 1.0
ONE_SHARD_VS_SINGLE = 1.25  # "≈ single shard time": within 25 %
SIGN_S = 0.5
ATTEST_S = 0.5  # attest: like sign, one signature and a referrer, no model download
VERIFY_S = 0.5
PULL_VERIFY_VS_PULL = 1.1
HASHING_VS_MODEL_SIGNING = 1.0
COPY_VS_SKOPEO = 0.8
SECOND_REPO_VS_SKOPEO = 2.0
SECOND_REPO_S = 1.0
IN_REGISTRY_COPY_S = 1.0
SNAPSHOT_CACHED_VS_PULL = 0.2  # snapshot of a cached model (files re-hashed) vs a fresh pull
SNAPSHOT_WARM_S = 1.0  # snapshot with the digest cache warm


class Bench:
    """State of one benchmark invocation: where things live, every raw run, progress output."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        base = Path(args.workdir)
        base.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="run-", dir=base))
        self.runs: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.cache_home = self.work / "xdg-cache"
        self.env = peers.omsign_env(self.cache_home)
        self.registries: list[registry_server.RegistryServer] = []
        self.timeout = max(300.0, 150.0 * parse_size(args.size) / 2**30)

    # -- output -----------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", flush=True)

    def note(self, msg: str) -> None:
        if msg not in self.notes:
            self.notes.append(msg)
        self.log("note: " + msg)

    # -- registries -------------------------------------------------------------------------
    def registry(self) -> registry_server.RegistryServer:
        reg = registry_server.start()
        self.registries.append(reg)
        return reg

    def stop(self, reg: registry_server.RegistryServer) -> None:
        reg.stop()
        if reg in self.registries:
            self.registries.remove(reg)

    def stop_all(self) -> None:
        for reg in list(self.registries):
            self.stop(reg)

    # -- one measured run -------------------------------------------------------------------
    def measure(
        self,
        op: str,
        tool: str,
        cmd: peers.Cmd,
        *,
        size: int,
        nbytes: int,
        repeat: int,
        check: Callable[[], str | None] | None = None,
        warm: Model | None = None,
        extra: dict[str, Any] | None = None,
        registry: registry_server.RegistryServer | None = None,
    ) -> dict[str, Any]:
        """Same preparation for every tool: optional page-cache warm-up read, then ``sync`` so
        no earlier run's write-back lands in this one's time; then run and record."""
        if warm is not None:
            make_models.read_all(warm)
        os.sync()
        load = _loadavg()
        m = measure.run(cmd.argv, cwd=cmd.cwd, env=cmd.env or None, timeout=self.timeout,
                        registry_pid=registry.process.pid if registry is not None else None)
        rec: dict[str, Any] = {"op": op, "tool": tool, "size_bytes": size, "bytes": nbytes,
                               "repeat": repeat, "loadavg_before": load, **m.to_json()}
        rec["throughput_MBps"] = round(nbytes / 2**20 / m.wall_s, 1) if m.ok and m.wall_s > 0 else None
        if extra:
            rec["extra"] = {**rec.get("extra", {}), **extra}
        if m.ok and check is not None:
            problem = check()
            if problem:
                rec["ok"] = False
                rec["check_failed"] = problem
        if m.ok:  # keep tails short for successes: the JSON stays readable
            rec["stdout_tail"] = rec["stdout_tail"][-300:]
            rec["stderr_tail"] = rec["stderr_tail"][-300:]
        self.runs.append(rec)
        label = f"{op:<18} {tool:<14} {human(size):>10} r{repeat}"
        if rec["ok"]:
            tp = f" ({rec['throughput_MBps']:.0f} MiB/s)" if nbytes else ""
            self.log(f"{label}: {m.wall_s:7.2f} s{tp}  cpu {m.cpu_s:6.2f} s  "
                     f"rss {m.peak_rss_tree_mb:6.0f} MiB")
        else:
            why = rec.get("check_failed") or f"rc={m.returncode}{' TIMEOUT' if m.timed_out else ''}"
            tail = (m.stderr_tail or m.stdout_tail).strip().splitlines()[-3:]
            self.log(f"{label}: FAILED {why}: {' | '.join(tail)[:400]}")
        return rec

    def skip(self, op: str, tool: str, size: int, repeat: int, reason: str) -> None:
        self.runs.append({"op": op, "tool": tool, "size_bytes": size, "bytes": 0, "repeat": repeat,
                          "ok": False, "skipped": reason, "argv": []})
        self.log(f"{op:<18} {tool:<14} {human(size):>10} r{repeat}: SKIPPED ({reason})")


# -- content checks: a fast tool that wrote nothing must not look fast --------------------------
def _sample(path: Path) -> bytes:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(2**20)
        f.seek(max(0, size - 2**20))
        return head + f.read(2**20)


def files_match(model: Model, dest: Path) -> str | None:
    """Every model file present with the same size and the same first and last MiB."""
    for p in model.files:
        q = dest / p.name
        if not q.is_file():
            return f"missing {p.name} in {dest}"
        if q.stat().st_size != p.stat().st_size:
            return f"{p.name}: size {q.stat().st_size} != {p.stat().st_size}"
        if _sample(p) != _sample(q):
            return f"{p.name}: content differs"
    return None


def layout_complete(model: Model, dest: Path) -> str | None:
    """An OCI layout holding blobs for at least all the model's bytes."""
    if not (dest / "index.json").is_file():
        return f"no index.json in {dest}"
    blobs = dest / "blobs" / "sha256"
    total = sum(p.stat().st_size for p in blobs.iterdir()) if blobs.is_dir() else 0
    if total < model.total_bytes:
        return f"layout holds {total} bytes < model {model.total_bytes}"
    return None


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _loadavg() -> list[float]:
    """1/5/15-minute load: other work on the shared cores shows up here, not in our numbers."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def _has_index(layout: Path) -> str | None:
    return None if (layout / "index.json").is_file() else f"no index.json in {layout}"


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- phases -------------------------------------------------------------------------------------
def prepare_model(b: Bench, size: int) -> Model:
    b.log(f"generating a {human(size)} model (random shards + config/tokenizer/README) ...")
    model = make_models.make_model(b.work / f"model-{size}", size)
    b.log(f"model: {len(model.files)} files, {human(model.total_bytes)} at {model.path}")
    return model


def skopeo_layout(b: Bench, model: Model) -> Path | None:
    """skopeo pushes from an OCI layout of the same files, made beforehand (not timed)."""
    layout = b.work / f"layout-{model.total_bytes}"
    rmtree(layout)
    b.log("writing skopeo's source OCI layout with omsign pack (not timed) ...")
    if "omsign" in b.args.tools_list:
        m = measure.run(peers.omsign_pack(model.path, f"oci:{layout}:v1", b.env).argv,
                        env=b.env, timeout=b.timeout)
        if m.ok and (layout / "index.json").is_file():
            b.notes_layout = "omsign pack"  # type: ignore[attr-defined]
            return layout
        b.note(f"omsign pack failed (rc={m.returncode}: {m.stderr_tail.strip()[-300:]}); "
               "skopeo's layout written by bench/peers.py instead")
        rmtree(layout)
    peers.write_layout(model, layout, "v1")
    b.notes_layout = "bench/peers.py write_layout"  # type: ignore[attr-defined]
    return layout


def phase_transfer(b: Bench, model: Model, layout: Path | None) -> None:
    """Cold first push (fresh registry per tool and run) then a pull from that same registry."""
    size = model.total_bytes
    tools = list(b.args.tools_list)
    for r in range(1, b.args.repeat + 1):
        k = (r - 1) % len(tools)
        for tool in tools[k:] + tools[:k]:  # rotate the order each repeat
            reg = b.registry()
            ref = f"{reg.host}/bench/m:v1"
            try:
                if tool == "omsign":
                    # a fresh digest cache too: --no-cache makes it hash every file like the peers
                    rmtree(b.cache_home)
                    push = peers.omsign_push(model.path, ref, b.env, no_cache=True)
                elif tool == "skopeo":
                    if layout is None:
                        b.skip("push", tool, size, r, "no OCI layout")
                        continue
                    push = peers.skopeo_push(layout, "v1", ref)
                else:
                    push = peers.oras_push(model.path, ref)
                rec = b.measure("push", tool, push, size=size, nbytes=size, repeat=r, warm=model, registry=reg)
                if not rec["ok"]:
                    b.skip("pull", tool, size, r, "its push failed")
                    continue
                dest = b.work / f"pull-{tool}"
                rmtree(dest)
                if tool == "omsign":
                    pull = peers.omsign_pull(ref, dest, b.env)
                    check = partial(files_match, model, dest)
                elif tool == "skopeo":
                    pull = peers.skopeo_pull(ref, dest)
                    check = partial(layout_complete, model, dest)
                else:
                    pull = peers.oras_pull(ref, dest)
                    check = partial(files_match, model, dest)
                b.measure("pull", tool, pull, size=size, nbytes=size, repeat=r, check=check, registry=reg)
                rmtree(dest)
            finally:
                b.stop(reg)


def phase_omsign(b: Bench, model: Model) -> None:
    """omsign-only operations on one registry: warm re-push, sign, verify, pull --verify,
    verify-local, one changed shard."""
    size = model.total_bytes
    rep = b.args.repeat
    reg = b.registry()
    ref = f"{reg.host}/bench/m:v1"
    try:
        b.log("omsign: first push with the digest cache on (not timed) ...")
        m = measure.run(peers.omsign_push(model.path, ref, b.env, no_cache=False).argv, env=b.env,
                        timeout=b.timeout)
        if not m.ok:
            b.note(f"omsign warm-up push failed: rc={m.returncode}: {m.stderr_tail.strip()[-300:]}")
            for op in ("repush_unchanged", "sign", "verify", "pull_plain", "pull_verify",
                       "verify_local", "repush_one_shard", "push_single_shard"):
                b.skip(op, "omsign", size, 0, "warm-up push failed")
            return
        for r in range(1, rep + 1):
            b.measure("repush_unchanged", "omsign", peers.omsign_push(model.path, ref, b.env, no_cache=False),
                      size=size, nbytes=size, repeat=r, warm=model, registry=reg)

        keys = b.work / "cosign-keys"
        rmtree(keys)
        keys.mkdir()
        m = measure.run(peers.omsign_keygen(keys, b.env).argv, env=b.env)
        priv, pub = keys / "cosign.key", keys / "cosign.pub"
        signed = False
        if not (m.ok and priv.is_file() and pub.is_file()):
            b.note(f"omsign generate-key-pair failed: rc={m.returncode}: {m.stderr_tail.strip()[-300:]}")
            for op in ("sign", "attest", "verify", "pull_verify"):
                b.skip(op, "omsign", size, 0, "no key pair")
        else:
            for r in range(1, rep + 1):
                rec = b.measure("sign", "omsign", peers.omsign_sign(ref, priv, b.env), size=size, nbytes=0, repeat=r,
                                registry=reg)
                signed = signed or rec["ok"]
            evaluation = b.work / "eval.json"
            evaluation.write_text(json.dumps({
                "task": "text-classification", "dataset": "bench", "metrics": {"accuracy": 0.9},
            }))
            for r in range(1, rep + 1):
                b.measure("attest", "omsign", peers.omsign_attest(ref, priv, evaluation, b.env), size=size, nbytes=0,
                          repeat=r, registry=reg)
            for r in range(1, rep + 1):
                b.measure("verify", "omsign", peers.omsign_verify(ref, pub, b.env), size=size, nbytes=0, repeat=r,
                          registry=reg)

        last_pull: Path | None = None
        for r in range(1, rep + 1):
            order = ("plain", "verify") if r % 2 else ("verify", "plain")
            for kind in order:
                dest = b.work / f"pullv-{kind}"
                rmtree(dest)
                if kind == "verify":
                    if not signed:
                        b.skip("pull_verify", "omsign", size, r, "sign failed")
                        continue
                    cmd = peers.omsign_pull(ref, dest, b.env, verify_key=pub)
                else:
                    cmd = peers.omsign_pull(ref, dest, b.env)
                rec = b.measure(f"pull_{kind}", "omsign", cmd, size=size, nbytes=size, repeat=r, registry=reg,
                                check=partial(files_match, model, dest))
                if kind == "verify" and rec["ok"]:
                    if last_pull is not None:
                        rmtree(last_pull)
                    last_pull = dest.rename(b.work / "pulled-signed")
                else:
                    rmtree(dest)

        if last_pull is not None and (last_pull / "model.sig").is_file():
            # Like for like: the same pulled folder and the same model.sig (a model_signing bundle
            # omsign wrote), checked by omsign verify-local and by model_signing itself.
            pulled = make_models.load_model(last_pull)
            sig = last_pull / "model.sig"
            for r in range(1, rep + 1):
                for tool in (("omsign", "model_signing") if r % 2 else ("model_signing", "omsign")):
                    cmd = (peers.omsign_verify_local(last_pull, pub, b.env) if tool == "omsign"
                           else peers.model_signing_verify(last_pull, pub, sig))
                    b.measure("verify_local", tool, cmd, size=size, nbytes=size, repeat=r, warm=pulled)
        else:
            why = "no signed pull" if last_pull is None else "pull --verify wrote no model.sig"
            b.skip("verify_local", "omsign", size, 0, why)
        if last_pull is not None:
            rmtree(last_pull)

        for r in range(1, rep + 1):
            shard = model.shards[(r - 1) % len(model.shards)]
            make_models.rewrite_shard(shard)
            single_dir = b.work / "single-shard"
            rmtree(single_dir)
            single_dir.mkdir()
            # a copy, not a hard link: linking changes the shard's ctime, which omsign's digest
            # cache (rightly) treats as "maybe changed", making the next re-push hash it again
            shutil.copyfile(shard, single_dir / shard.name)
            shard_bytes = shard.stat().st_size
            b.measure("repush_one_shard", "omsign", peers.omsign_push(model.path, ref, b.env, no_cache=False),
                      size=size, nbytes=shard_bytes, repeat=r, warm=model, extra={"shard": shard.name},
                      registry=reg)
            reg2 = b.registry()
            try:
                b.measure("push_single_shard", "omsign",
                          peers.omsign_push(single_dir, f"{reg2.host}/bench/single:v1", b.env, no_cache=True),
                          size=size, nbytes=shard_bytes, repeat=r, extra={"shard": shard.name}, registry=reg2)
            finally:
                b.stop(reg2)
            rmtree(single_dir)
    finally:
        b.stop(reg)


def phase_promotion(b: Bench, model: Model, layout: Path | None) -> None:
    """Promotion, side by side with skopeo: registry-to-registry copy (fresh destination per
    run), a push to a second repository of the same registry (blob-location cache vs skopeo's
    blob-info cache), and a copy within one registry (all mounts)."""
    size = model.total_bytes
    src_reg = b.registry()
    src = f"{src_reg.host}/bench/m:v1"
    try:
        m = measure.run(peers.omsign_push(model.path, src, b.env, no_cache=False).argv, env=b.env, timeout=b.timeout)
        if not m.ok:
            b.note(f"promotion: the source push failed: {m.stderr_tail.strip()[-300:]}")
            return
        for r in range(1, b.args.repeat + 1):
            for tool in (("omsign", "skopeo") if r % 2 else ("skopeo", "omsign")):
                dst_reg = b.registry()
                dst = f"{dst_reg.host}/bench/copy:v1"
                try:
                    cmd = peers.omsign_copy(src, dst, b.env) if tool == "omsign" else peers.skopeo_copy(src, dst)
                    b.measure("copy", tool, cmd, size=size, nbytes=size, repeat=r, registry=dst_reg)
                finally:
                    b.stop(dst_reg)
        if layout is not None:
            m = measure.run(peers.skopeo_push(layout, "v1", f"{src_reg.host}/bench/skopeo-first:v1").argv,
                            timeout=b.timeout)
            if not m.ok:
                b.note(f"promotion: skopeo's first push failed: {m.stderr_tail.strip()[-300:]}")
        for r in range(1, b.args.repeat + 1):
            b.measure("push_second_repo", "omsign",
                      peers.omsign_push(model.path, f"{src_reg.host}/bench/second-{r}:v1", b.env, no_cache=False),
                      size=size, nbytes=size, repeat=r, warm=model, registry=src_reg)
            if layout is not None:
                b.measure("push_second_repo", "skopeo",
                          peers.skopeo_push(layout, "v1", f"{src_reg.host}/bench/skopeo-second-{r}:v1"),
                          size=size, nbytes=size, repeat=r, warm=model, registry=src_reg)
            b.measure("copy_in_registry", "omsign",
                      peers.omsign_copy(src, f"{src_reg.host}/bench/promoted-{r}:v1", b.env),
                      size=size, nbytes=size, repeat=r, registry=src_reg)
    finally:
        b.stop(src_reg)


def phase_snapshot(b: Bench, model: Model) -> None:
    """The verified model cache: ``omsign pull --cache`` under a policy file, against a fresh
    pull of the same signed model. Every call verifies the signature; a cached model is
    re-checked file by file: re-hashed when the digest cache is cold, not when it is warm."""
    size = model.total_bytes
    reg = b.registry()
    ref = f"{reg.host}/bench/cached:v1"
    keys = b.work / "snapshot-keys"
    cache_home = b.work / "snapshot-cache"
    try:
        rmtree(keys)
        keys.mkdir()
        ok = measure.run(peers.omsign_push(model.path, ref, b.env, no_cache=False).argv, env=b.env, timeout=b.timeout).ok
        ok = ok and measure.run(peers.omsign_keygen(keys, b.env).argv, env=b.env).ok
        ok = ok and measure.run(peers.omsign_sign(ref, keys / "cosign.key", b.env).argv, env=b.env).ok
        if not ok:
            for op in ("snapshot_fresh_pull", "snapshot_cached", "snapshot_warm"):
                b.skip(op, "omsign", size, 0, "push, key generation or signing failed")
            return
        policy = keys / "policy.yaml"
        policy.write_text(
            "apiVersion: omsign/v1\ndefault:\n  authorities:\n"
            f"    - {{name: bench, key: {{path: {keys / 'cosign.pub'}}}, ignoreTlog: true}}\n"
        )
        env = {**b.env, "XDG_CACHE_HOME": str(cache_home), "OMSIGN_POLICY": str(policy)}
        cached = peers.Cmd([peers.OMSIGN, "pull", "--cache", ref, "--no-progress"], env=env)
        for r in range(1, b.args.repeat + 1):
            dest = b.work / "snapshot-fresh"
            rmtree(dest)
            b.measure("snapshot_fresh_pull", "omsign", peers.omsign_pull(ref, dest, env),
                      size=size, nbytes=size, repeat=r, registry=reg, check=partial(files_match, model, dest))
            rmtree(dest)
        rmtree(cache_home)
        if not measure.run(cached.argv, env=env, timeout=b.timeout).ok:  # fills the cache (not timed)
            b.note("snapshot: the first pull --cache failed")
            return
        for r in range(1, b.args.repeat + 1):
            (cache_home / "omsign" / "digests.sqlite").unlink(missing_ok=True)  # every cached file re-hashed
            b.measure("snapshot_cached", "omsign", cached, size=size, nbytes=size, repeat=r, registry=reg)
        for r in range(1, b.args.repeat + 1):
            b.measure("snapshot_warm", "omsign", cached, size=size, nbytes=size, repeat=r, registry=reg)
    finally:
        rmtree(cache_home)
        b.stop(reg)


def phase_hashing(b: Bench, model: Model) -> None:
    """Local, hashing-dominated work: omsign pack --no-cache vs model_signing sign/verify."""
    size = model.total_bytes
    keys = b.work / "ec-keys"
    priv, pub = peers.make_ec_keypair(keys)
    sig = b.work / "model_signing.sig"
    have_omsign = "omsign" in b.args.tools_list
    for r in range(1, b.args.repeat + 1):
        order = ("model_signing", "omsign") if r % 2 else ("omsign", "model_signing")
        for tool in order:
            if tool == "model_signing":
                sig.unlink(missing_ok=True)
                b.measure("sign", "model_signing", peers.model_signing_sign(model.path, priv, sig),
                          size=size, nbytes=size, repeat=r, warm=model,
                          check=lambda: None if sig.is_file() else "no signature written")
            elif have_omsign:
                layout = b.work / "pack-timed"
                rmtree(layout)
                b.measure("pack_nocache", "omsign", peers.omsign_pack(model.path, f"oci:{layout}:v1", b.env),
                          size=size, nbytes=size, repeat=r, warm=model,
                          check=partial(_has_index, layout))
                rmtree(layout)
    for r in range(1, b.args.repeat + 1):
        if sig.is_file():
            b.measure("verify", "model_signing", peers.model_signing_verify(model.path, pub, sig),
                      size=size, nbytes=size, repeat=r, warm=model)
        else:
            b.skip("verify", "model_signing", size, r, "model_signing sign failed")


# -- machine info -------------------------------------------------------------------------------
AUDIT_SCALE = {"full": (200, 20), "quick": (40, 4)}  # signed models, repositories


def phase_audit(b: Bench) -> dict[str, Any]:
    """``omsign audit`` over a catalog of signed models (bench/audit_bench.py, its own registry).

    Its row joins the table; a failure is recorded with its stderr tail, as every run is.
    """
    models, repos = AUDIT_SCALE["quick" if b.args.quick else "full"]
    out = b.work / "audit.json"
    b.log(f"audit: {models} signed models in {repos} repositories")
    cmd = [sys.executable, str(BENCH / "audit_bench.py"), "--models", str(models), "--repos", str(repos),
           "--json", str(out)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=b.timeout)
    except subprocess.TimeoutExpired:
        return {"operation": "audit", "models": models, "repositories": repos, "ok": False,
                "error": f"timed out after {b.timeout:.0f} s"}
    if out.exists():
        row: dict[str, Any] = json.loads(out.read_text())
    else:
        row = {"operation": "audit", "models": models, "repositories": repos, "ok": False}
    if proc.returncode != 0:
        row["ok"] = False
        row["error"] = " ".join((proc.stderr or proc.stdout).split())[-300:]
    b.log(f"audit: {row.get('seconds', '?')} s, ok={row['ok']}")
    return row


def _audit_row(audit: dict[str, Any] | None) -> tuple[str, ...] | None:
    if audit is None:
        return None
    what = f"audit: {audit['models']} signed models in {audit['repositories']} repositories (-j {audit.get('jobs', 4)})"
    if "seconds" not in audit:
        return (what, "FAILED", "", "", "", "", "every model found and passing", "n/a")
    found = f"found {audit['found']} / passing {audit['passing']}"
    return (what, f"{audit['seconds']:.2f} s", "", "", "", found, "every model found and passing",
            "met" if audit["ok"] else "NOT met")


def _git_describe() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    sha_ni = "sha_ni" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else None
    git = _git_describe()
    return {
        "cpu_model": cpu, "cores": os.cpu_count(), "sha_ni": sha_ni,
        "ram_bytes": mem, "ram": human(mem), "kernel": platform.release(),
        "os": platform.platform(), "python": platform.python_version(),
        "omsign_git": git,
    }


# -- summaries, targets, Markdown, plot ---------------------------------------------------------
def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    groups: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["size_bytes"], r["op"], r["tool"]), []).append(r)
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for (size, op, tool), rs in sorted(groups.items()):
        ok = [r for r in rs if r.get("ok")]
        entry: dict[str, Any] = {"runs": len(rs), "ok_runs": len(ok), "failed_runs": len(rs) - len(ok)}
        if ok:
            entry.update({
                "wall_s": round(statistics.median(r["wall_s"] for r in ok), 3),
                "cpu_s": round(statistics.median(r["cpu_s"] for r in ok), 3),
                "peak_rss_tree_mb": round(statistics.median(r["peak_rss_tree_mb"] for r in ok), 1),
                "peak_rss_tree_mb_max": round(max(r["peak_rss_tree_mb"] for r in ok), 1),
                "max_rss_single_mb_max": round(max(r["max_rss_single_mb"] for r in ok), 1),
                "bytes": ok[0]["bytes"],
            })
            for key in ("registry_cpu_s", "other_cpu_s"):
                vals = [r["extra"][key] for r in ok if key in r.get("extra", {})]
                if vals:
                    entry[key] = round(statistics.median(vals), 2)
            if ok[0]["bytes"]:
                entry["throughput_MBps"] = round(ok[0]["bytes"] / 2**20 / entry["wall_s"], 1)
        bad = [r for r in rs if not r.get("ok")]
        if bad:
            last = bad[-1]
            entry["failure"] = last.get("skipped") or last.get("check_failed") or (
                f"rc={last.get('returncode')}: " + (last.get("stderr_tail") or last.get("stdout_tail") or "").strip()[-300:])
        out.setdefault(str(size), {}).setdefault(op, {})[tool] = entry
    return out


def _get(med: dict[str, Any], op: str, tool: str, key: str = "wall_s") -> float | None:
    v = med.get(op, {}).get(tool, {}).get(key)
    return float(v) if v is not None else None


def evaluate(med: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: measured value, bound, met / not met / n/a (a needed run failed)."""
    t: list[dict[str, Any]] = []

    def add(name: str, value: float | None, bound: float | None, met: bool | None, detail: str) -> None:
        t.append({"target": name, "value": value, "bound": bound,
                  "status": "n/a" if met is None else ("met" if met else "NOT met"), "detail": detail})

    def ratio_target(name: str, op: str, peer: str, factor: float) -> None:
        a, p = _get(med, op, "omsign"), _get(med, op, peer)
        if a is None or p is None:
            add(name, None, factor, None, f"omsign={a} {peer}={p}")
        else:
            add(name, round(a / p, 3), factor, a <= factor * p, f"{a:.2f} s vs {peer} {p:.2f} s")

    ratio_target("push <= 0.7 x skopeo (wall)", "push", "skopeo", PUSH_VS_SKOPEO)
    ratio_target("pull <= 0.7 x skopeo (wall)", "pull", "skopeo", PULL_VS_SKOPEO)
    ratio_target("push faster than oras-py", "push", "oras-py", 1.0)
    ratio_target("pull faster than oras-py", "pull", "oras-py", 1.0)
    v = _get(med, "repush_unchanged", "omsign")
    add("unchanged re-push <= 1 s", v, REPUSH_UNCHANGED_S, None if v is None else v <= REPUSH_UNCHANGED_S,
        "omsign push, digest cache warm, all blobs present")
    a, s = _get(med, "repush_one_shard", "omsign"), _get(med, "push_single_shard", "omsign")
    add("one-shard-changed re-push ~ single-shard push (<= 1.25 x)", None if a is None or s is None else round(a / s, 3),
        ONE_SHARD_VS_SINGLE, None if a is None or s is None else a <= ONE_SHARD_VS_SINGLE * s,
        f"re-push {a} s vs that shard alone {s} s")
    v = _get(med, "sign", "omsign")
    add("sign <= 0.5 s", v, SIGN_S, None if v is None else v <= SIGN_S, "omsign sign --key (registry round trips incl.)")
    v = _get(med, "attest", "omsign")
    add("attest <= 0.5 s", v, ATTEST_S, None if v is None else v <= ATTEST_S,
        "omsign attest --key --type eval (registry round trips incl.)")
    v = _get(med, "verify", "omsign")
    add("verify <= 0.5 s", v, VERIFY_S, None if v is None else v <= VERIFY_S, "omsign verify --key --insecure-ignore-tlog")
    a, p = _get(med, "pull_verify", "omsign"), _get(med, "pull_plain", "omsign")
    add("pull --verify <= 1.1 x pull", None if a is None or p is None else round(a / p, 3), PULL_VERIFY_VS_PULL,
        None if a is None or p is None else a <= PULL_VERIFY_VS_PULL * p, f"{a} s vs {p} s (alternated)")
    for op in ("push", "pull"):
        v = _get(med, op, "omsign", "peak_rss_tree_mb_max")
        add(f"peak RSS <= 150 MB ({op})", v, round(RSS_LIMIT_MIB, 2), None if v is None else v <= RSS_LIMIT_MIB,
            "MiB; max over runs of the summed RSS of the process tree; 150 MB = 143.05 MiB")
    ratio_target("copy registry->registry <= 0.8 x skopeo copy (wall)", "copy", "skopeo", COPY_VS_SKOPEO)
    ratio_target("second-repository push <= 2 x skopeo (wall)", "push_second_repo", "skopeo", SECOND_REPO_VS_SKOPEO)
    v = _get(med, "push_second_repo", "omsign")
    add("second-repository push < 1 s", v, SECOND_REPO_S, None if v is None else v < SECOND_REPO_S,
        "omsign push, digest and blob-location caches warm: every blob mounted")
    v = _get(med, "copy_in_registry", "omsign")
    add("copy within one registry < 1 s", v, IN_REGISTRY_COPY_S, None if v is None else v < IN_REGISTRY_COPY_S,
        "omsign copy to another repository of the source registry: every blob mounted")
    v = _get(med, "copy", "omsign", "peak_rss_tree_mb_max")
    add("peak RSS <= 150 MB (copy)", v, round(RSS_LIMIT_MIB, 2), None if v is None else v <= RSS_LIMIT_MIB,
        "MiB; omsign copy registry->registry")
    a, p = _get(med, "snapshot_cached", "omsign"), _get(med, "snapshot_fresh_pull", "omsign")
    add("snapshot of a cached model <= 0.2 x a fresh pull", None if a is None or p is None else round(a / p, 3),
        SNAPSHOT_CACHED_VS_PULL, None if a is None or p is None else a <= SNAPSHOT_CACHED_VS_PULL * p,
        f"omsign pull --cache (signature verified, files re-hashed) {a} s vs omsign pull --verify by policy {p} s")
    v = _get(med, "snapshot_warm", "omsign")
    add("snapshot with a warm digest cache <= 1 s", v, SNAPSHOT_WARM_S, None if v is None else v <= SNAPSHOT_WARM_S,
        "omsign pull --cache: signature verified, files checked through the digest cache")
    a, p = _get(med, "pack_nocache", "omsign", "throughput_MBps"), _get(med, "sign", "model_signing", "throughput_MBps")
    add("local hashing >= 1.0 x model_signing throughput (pack --no-cache vs model_signing sign)",
        None if a is None or p is None else round(a / p, 3), HASHING_VS_MODEL_SIGNING,
        None if a is None or p is None else a >= HASHING_VS_MODEL_SIGNING * p, f"{a} vs {p} MiB/s")
    a, p = _get(med, "verify_local", "omsign", "throughput_MBps"), _get(med, "verify_local", "model_signing", "throughput_MBps")
    add("verify-local >= 1.0 x model_signing verify throughput (same folder, same model.sig)",
        None if a is None or p is None else round(a / p, 3), HASHING_VS_MODEL_SIGNING,
        None if a is None or p is None else a >= HASHING_VS_MODEL_SIGNING * p, f"{a} vs {p} MiB/s")
    return t


def _cell(med: dict[str, Any], op: str, tool: str, what: str = "time") -> str:
    e = med.get(op, {}).get(tool)
    if e is None:
        return "—"
    if "wall_s" not in e:
        return "FAILED"
    if what == "rss":
        s = f"{e['peak_rss_tree_mb_max']:.0f} MiB"
    elif what == "cpu":
        s = f"{e['cpu_s']:.2f} s"
    else:
        s = f"{e['wall_s']:.2f} s"
        if e.get("throughput_MBps"):
            s += f" ({e['throughput_MBps']:.0f} MiB/s)"
    if e.get("failed_runs"):
        s += f" [{e['failed_runs']} failed]"
    return s


def _load_line(runs: list[dict[str, Any]]) -> str:
    """Other work on the shared cores inflates every number: say how busy the machine was."""
    timed = [r for r in runs if "other_cpu_s" in r.get("extra", {}) and r.get("wall_s")]
    if not timed:
        return ""
    other = sum(r["extra"]["other_cpu_s"] for r in timed)
    wall = sum(r["wall_s"] for r in timed)
    share = other / wall
    worst = max(timed, key=lambda r: r["extra"]["other_cpu_s"] / r["wall_s"])
    return (f"CPU used outside the tool, the registry and the harness (other users' processes, kernel "
            f"threads such as write-back) averaged {share:.2f} cores during the measured runs "
            f"(worst: {worst['extra']['other_cpu_s'] / worst['wall_s']:.2f} cores in "
            f"{worst['op']}/{worst['tool']} r{worst['repeat']})"
            + ("; the machine was shared, numbers are noisier." if share > 0.2 else "."))


def _ratio(a: float | None, b: float | None, what: str) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}× {what}"


def markdown(data: dict[str, Any]) -> str:
    size = str(data["config"]["size_bytes"])
    med = data["medians"].get(size, {})
    targets = {t["target"]: t for t in data["targets"]}

    def status(*names: str) -> str:
        out = []
        for n in names:
            tt = targets.get(n)
            if tt:
                out.append(tt["status"])
        return " / ".join(out) or ""

    def ratio(op: str, peer_op: str, peer: str, key: str = "wall_s") -> str:
        a, p = _get(med, op, "omsign", key), _get(med, peer_op, peer, key)
        if a is None or p is None or p == 0:
            return "—"
        return f"{a / p:.2f}× {peer}"

    rows = [
        ("push (first, cold cache)", _cell(med, "push", "omsign"), _cell(med, "push", "skopeo"),
         _cell(med, "push", "oras-py"), "", f"{ratio('push', 'push', 'skopeo')}, {ratio('push', 'push', 'oras-py')}",
         "≤ 0.7× skopeo; < oras-py", status("push <= 0.7 x skopeo (wall)", "push faster than oras-py")),
        ("pull", _cell(med, "pull", "omsign"), _cell(med, "pull", "skopeo"), _cell(med, "pull", "oras-py"), "",
         f"{ratio('pull', 'pull', 'skopeo')}, {ratio('pull', 'pull', 'oras-py')}", "≤ 0.7× skopeo; < oras-py",
         status("pull <= 0.7 x skopeo (wall)", "pull faster than oras-py")),
        ("CPU time push (user+sys)", _cell(med, "push", "omsign", "cpu"), _cell(med, "push", "skopeo", "cpu"),
         _cell(med, "push", "oras-py", "cpu"), "", ratio("push", "push", "skopeo", "cpu_s"), "", ""),
        ("CPU time pull (user+sys)", _cell(med, "pull", "omsign", "cpu"), _cell(med, "pull", "skopeo", "cpu"),
         _cell(med, "pull", "oras-py", "cpu"), "", ratio("pull", "pull", "skopeo", "cpu_s"), "", ""),
        ("peak RSS push (process tree)", _cell(med, "push", "omsign", "rss"), _cell(med, "push", "skopeo", "rss"),
         _cell(med, "push", "oras-py", "rss"), "", "", "≤ 150 MB", status("peak RSS <= 150 MB (push)")),
        ("peak RSS pull (process tree)", _cell(med, "pull", "omsign", "rss"), _cell(med, "pull", "skopeo", "rss"),
         _cell(med, "pull", "oras-py", "rss"), "", "", "≤ 150 MB", status("peak RSS <= 150 MB (pull)")),
        ("copy registry→registry (skopeo drops signatures)", _cell(med, "copy", "omsign"), _cell(med, "copy", "skopeo"),
         "", "", ratio("copy", "copy", "skopeo"), "≤ 0.8× skopeo",
         status("copy registry->registry <= 0.8 x skopeo copy (wall)")),
        ("peak RSS copy (process tree)", _cell(med, "copy", "omsign", "rss"), _cell(med, "copy", "skopeo", "rss"),
         "", "", "", "≤ 150 MB", status("peak RSS <= 150 MB (copy)")),
        ("push to a second repository of the registry", _cell(med, "push_second_repo", "omsign"),
         _cell(med, "push_second_repo", "skopeo"), "", "", ratio("push_second_repo", "push_second_repo", "skopeo"),
         "≤ 2× skopeo; < 1 s",
         status("second-repository push <= 2 x skopeo (wall)", "second-repository push < 1 s")),
        ("copy within one registry (all mounts)", _cell(med, "copy_in_registry", "omsign"), "", "", "", "", "< 1 s",
         status("copy within one registry < 1 s")),
        ("re-push, unchanged (cache warm)", _cell(med, "repush_unchanged", "omsign"), "", "", "", "", "≤ 1 s",
         status("unchanged re-push <= 1 s")),
        ("re-push, one shard changed", _cell(med, "repush_one_shard", "omsign"), "", "", "",
         _ratio(_get(med, "repush_one_shard", "omsign"), _get(med, "push_single_shard", "omsign"), "single shard"),
         "≈ single shard", status("one-shard-changed re-push ~ single-shard push (<= 1.25 x)")),
        ("push of that single shard alone (--no-cache)", _cell(med, "push_single_shard", "omsign"), "", "", "", "", "", ""),
        ("sign (omsign: manifest in registry; model_signing: hashes folder)", _cell(med, "sign", "omsign"), "", "",
         _cell(med, "sign", "model_signing"), ratio("sign", "sign", "model_signing"), "≤ 0.5 s", status("sign <= 0.5 s")),
        ("attest (omsign: an eval attestation of the manifest in the registry)", _cell(med, "attest", "omsign"), "", "",
         "", "", "≤ 0.5 s", status("attest <= 0.5 s")),
        ("verify (omsign: registry signature; model_signing: hashes folder)", _cell(med, "verify", "omsign"), "", "",
         _cell(med, "verify", "model_signing"), ratio("verify", "verify", "model_signing"), "≤ 0.5 s",
         status("verify <= 0.5 s")),
        ("pull (alternated with pull --verify)", _cell(med, "pull_plain", "omsign"), "", "", "", "", "", ""),
        ("pull --verify --key", _cell(med, "pull_verify", "omsign"), "", "", "",
         _ratio(_get(med, "pull_verify", "omsign"), _get(med, "pull_plain", "omsign"), "pull"),
         "≤ 1.1× pull", status("pull --verify <= 1.1 x pull")),
        ("pull by policy file (fresh, into DEST)", _cell(med, "snapshot_fresh_pull", "omsign"), "", "", "", "", "", ""),
        ("snapshot of the cached model (pull --cache, digest cache cold)", _cell(med, "snapshot_cached", "omsign"), "", "",
         "", _ratio(_get(med, "snapshot_cached", "omsign"), _get(med, "snapshot_fresh_pull", "omsign"), "fresh pull"),
         "≤ 0.2× fresh pull", status("snapshot of a cached model <= 0.2 x a fresh pull")),
        ("snapshot, digest cache warm", _cell(med, "snapshot_warm", "omsign"), "", "", "", "", "≤ 1 s",
         status("snapshot with a warm digest cache <= 1 s")),
        ("local hashing: pack --no-cache vs model_signing sign", _cell(med, "pack_nocache", "omsign"), "", "",
         _cell(med, "sign", "model_signing"),
         _ratio(_get(med, "pack_nocache", "omsign", "throughput_MBps"),
                _get(med, "sign", "model_signing", "throughput_MBps"), "throughput"),
         "≥ 1.0× throughput",
         status("local hashing >= 1.0 x model_signing throughput (pack --no-cache vs model_signing sign)")),
        ("local verify: verify-local vs model_signing verify (same pulled folder, same model.sig)",
         _cell(med, "verify_local", "omsign"), "", "", _cell(med, "verify_local", "model_signing"),
         _ratio(_get(med, "verify_local", "omsign", "throughput_MBps"),
                _get(med, "verify_local", "model_signing", "throughput_MBps"), "throughput"),
         "≥ 1.0× throughput",
         status("verify-local >= 1.0 x model_signing verify throughput (same folder, same model.sig)")),
    ]
    m = data["machine"]
    cfg = data["config"]
    lines = [
        "# omsign benchmark results",
        "",
        f"Model: {human(cfg['size_bytes'])} ({cfg.get('files', '?')} files: {cfg.get('shards', '?')} random shards + small files), "
        f"{cfg['repeat']} repeat(s), medians. Run {data['started']} in {data['elapsed_s']:.0f} s"
        f"{' (quick smoke run)' if cfg.get('quick') else ''}.",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram']} RAM, kernel {m['kernel']}, "
        f"Python {m['python']}, omsign {data['versions'].get('omsign')} (git {m.get('omsign_git')}).",
        "Tools: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ".",
        _load_line(data["runs"]),
        "",
        "| operation | omsign | skopeo | oras-py | model_signing | ratio omsign/peer | target | met? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    audit_row = _audit_row(data.get("audit"))
    for row in [*rows, *([audit_row] if audit_row else [])]:
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Targets", ""]
    for tt in data["targets"]:
        lines.append(f"- **{tt['status']}** — {tt['target']}: value {tt['value']} (bound {tt['bound']}); {tt['detail']}")
    failures = [r for r in data["runs"] if not r.get("ok")]
    audit_error = (data.get("audit") or {}).get("error")
    if failures or audit_error:
        lines += ["", "## Failed or skipped runs", ""]
        for r in failures:
            why = r.get("skipped") or r.get("check_failed") or (
                f"rc={r.get('returncode')}: " + " ".join((r.get("stderr_tail") or r.get("stdout_tail") or "").split())[-300:])
            lines.append(f"- {r['op']} / {r['tool']} / {human(r['size_bytes'])} / r{r['repeat']}: {why}")
        if audit_error:
            lines.append(f"- audit / omsign: {audit_error}")
    scaling = {s: v for s, v in data["medians"].items() if "push" in v}
    if len(scaling) > 1:
        lines += ["", "## Scaling (push / pull throughput, MiB/s)", "",
                  "| size | " + " | ".join(f"{t} push | {t} pull" for t in TOOLS) + " |",
                  "|---|" + "---|---|" * len(TOOLS)]
        for s in sorted(scaling, key=int):
            cells = []
            for t in TOOLS:
                for op in ("push", "pull"):
                    v = scaling[s].get(op, {}).get(t, {}).get("throughput_MBps")
                    cells.append(f"{v:.0f}" if v else "—")
            lines.append(f"| {human(int(s))} | " + " | ".join(cells) + " |")
    lines += ["", "## How it was measured", ""] + [f"- {n}" for n in data["notes"]]
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, op in zip(axes, ("push", "pull"), strict=True):
        for tool in TOOLS:
            pts = []
            for s, ops in data["medians"].items():
                v = ops.get(op, {}).get(tool, {}).get("throughput_MBps")
                if v:
                    pts.append((int(s) / 2**30, v))
            if pts:
                pts.sort()
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=tool)
        ax.set_title(f"{op} throughput (registry on 127.0.0.1)")
        ax.set_xlabel("model size (GiB)")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("MiB/s (model bytes / wall time, median)")
    fig.suptitle(f"omsign vs peers — {data['machine']['cpu_model']}, {data['machine']['cores']} cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(data: dict[str, Any], out: Path) -> None:
    data["medians"] = medians(data["runs"])
    sizes = [int(k) for k in data["medians"]]
    if sizes and str(data["config"]["size_bytes"]) not in data["medians"]:
        # older JSON keyed the config by the requested size: use the measured size nearest to it
        data["config"]["size_bytes"] = min(sizes, key=lambda k: abs(k - data["config"]["size_bytes"]))
    data["targets"] = evaluate(data["medians"].get(str(data["config"]["size_bytes"]), {}))
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "latest.md").write_text(markdown(data))
    try:
        plot(data, out / "throughput.png")
    except Exception as exc:  # a missing matplotlib must not lose the numbers
        print(f"plot failed: {exc}", file=sys.stderr)
    if out.resolve() == RESULTS.resolve():
        update_readme(markdown(data))


def update_readme(report: str) -> None:
    """Copy the results (not the method notes) into the README's bench section."""
    from tests.readme_sections import replace_section

    body = report.split("\n## How it was measured", 1)[0].strip()
    body = body.replace("# omsign benchmark results\n", "", 1).strip().replace("\n## ", "\n### ")
    replace_section("bench", body + "\n\n![throughput against model size](bench/results/throughput.png)")


# -- main -------------------------------------------------------------------------------------
FAIRNESS_NOTES = [
    "Every measured push goes to a freshly started docker-registry (distribution 2.8.2, filesystem storage "
    "in a new temp folder) on 127.0.0.1: no tool finds another's blobs. Each pull reads from the "
    "registry that tool's own push of that repeat filled.",
    "omsign's first push uses --no-cache and an empty private XDG_CACHE_HOME: it hashes every file, like the peers.",
    "skopeo pushes from an OCI layout of the same files, written beforehand (not timed) by {layout}; "
    "skopeo pulls into an OCI layout (blobs), omsign and oras-py into a folder of files.",
    "oras-py runs as `python -c` with OrasClient(insecure=True).push(files=[...]) from the model folder "
    "and .pull(outdir=...); it keeps each whole blob in memory and does not check digests on pull.",
    "Durability differs on pull: omsign and skopeo fsync every file/blob before returning, oras-py does "
    "not (measured here: fsync adds about 0.3 s per GiB). Each tool is timed as users run it.",
    "Page cache: nothing is dropped (no root tricks). Before each measured push, re-push, pack and "
    "model_signing run, the harness reads the whole model once (same warm cache for every tool) and "
    "calls sync() so earlier write-back does not land in the next run. Pulls read blobs the registry "
    "has just written (warm for every tool).",
    "Order of tools rotates every repeat; pull and pull --verify alternate; pack and model_signing sign alternate.",
    "Wall time from fork to exit, start-up included. CPU = user+sys of the tool's whole process tree "
    "(os.wait4 rusage). Peak RSS = largest sum of RSS over the tool's process tree, sampled every 20 ms "
    "from /proc (ru_maxrss of the largest single process is in the JSON too).",
    "The registry's own CPU and memory are NOT counted for any tool (it is a separate process; it takes "
    "a large share of the 2 cores while ingesting, which slows every tool alike).",
    "Throughput = model bytes / wall time (MiB/s). Pulls are checked afterwards (not timed): every file "
    "present with the right size and first/last MiB; a run that fails or writes wrong data counts as a failure.",
    "omsign sign/verify act on the manifest in the registry (files were hashed at push); model_signing "
    "sign/verify hash the whole folder, so their times are not like for like: the local-hashing rows "
    "compare hashing throughput (omsign pack --no-cache, verify-local) instead.",
    "One-shard-changed: one shard is rewritten with new random bytes (new file, renamed over), then "
    "`omsign push` with its digest cache on to the registry that has the old model; compared with a "
    "--no-cache push of that one shard alone to a fresh registry. '≈' is read as within 25 %.",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="2G", help="total weight bytes (default 2G = 4 x 512 MiB shards)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; medians are reported")
    ap.add_argument("--quick", action="store_true", help="256 MiB, 1 repeat: a smoke test")
    ap.add_argument("--scaling", action="store_true", help="push/pull at 0.25, 0.5, 1, 2, 4 GiB too")
    ap.add_argument("--tools", default=",".join(TOOLS), help="transfer tools to compare (comma list)")
    ap.add_argument("--skip", default="", help="phases to leave out: transfer,omsign,promotion,snapshot,hashing,audit")
    ap.add_argument("--workdir", default=str(RESULTS / "tmp"), help="scratch space (needs ~5x the model size)")
    ap.add_argument("--out", default=str(RESULTS), help="where latest.json/.md/throughput.png go")
    ap.add_argument("--report-only", action="store_true", help="rebuild reports from OUT/latest.json")
    args = ap.parse_args()
    out = Path(args.out)
    if args.report_only:
        old: dict[str, Any] = json.loads((out / "latest.json").read_text())
        write_reports(old, out)
        print((out / "latest.md").read_text())
        return 0
    if args.quick:
        args.size, args.repeat = "256M", 1
    args.tools_list = [t for t in args.tools.split(",") if t]
    unknown = set(args.tools_list) - set(TOOLS)
    if unknown:
        ap.error(f"unknown tools {sorted(unknown)}; choose from {TOOLS}")
    skip = {s for s in args.skip.split(",") if s}

    size = parse_size(args.size)
    sizes = sorted({parse_size(s) for s in SCALING_SIZES} | {size}) if args.scaling else [size]
    biggest = max(sizes)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.workdir).free
    need = 5 * biggest + 2**30  # model + layout + registry + pull + pack layout, + slack
    if free < need:
        print(f"error: {human(free)} free in {args.workdir}, the benchmark needs about {human(need)} "
              f"(5x the {human(biggest)} model + 1 GiB); pass --workdir elsewhere or a smaller --size",
              file=sys.stderr)
        return 2
    for tool, ok in (("docker-registry", registry_server.available()), ("skopeo", shutil.which("skopeo"))):
        if not ok:
            print(f"error: {tool} not found (make system-deps)", file=sys.stderr)
            return 2

    b = Bench(args)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    b.log(f"workdir {b.work}; sizes {[human(s) for s in sizes]}; repeat {args.repeat}; tools {args.tools_list}")
    data: dict[str, Any] = {
        "started": started, "machine": machine_info(), "versions": peers.tool_versions(),
        "config": {"requested_size_bytes": size, "size_bytes": size, "repeat": args.repeat, "quick": args.quick, "scaling": args.scaling,
                   "sizes": sizes, "tools": args.tools_list},
        "runs": b.runs, "notes": b.notes,
    }
    b.log("versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()))
    try:
        for s in sizes:
            model = prepare_model(b, s)
            b.log("warm-up: reading the model once")
            make_models.read_all(model)
            if s == size:
                # results are keyed by the real byte count (weights + small files)
                data["config"].update(files=len(model.files), shards=len(model.shards),
                                      size_bytes=model.total_bytes)
            if "transfer" not in skip:
                layout = skopeo_layout(b, model) if "skopeo" in args.tools_list else None
                phase_transfer(b, model, layout)
                if layout is not None:
                    rmtree(layout)
            if s == size:
                if "omsign" not in skip and "omsign" in args.tools_list:
                    phase_omsign(b, model)
                if "promotion" not in skip and "omsign" in args.tools_list:
                    promo_layout = skopeo_layout(b, model) if "skopeo" in args.tools_list else None
                    phase_promotion(b, model, promo_layout)
                    if promo_layout is not None:
                        rmtree(promo_layout)
                if "snapshot" not in skip and "omsign" in args.tools_list:
                    phase_snapshot(b, model)
                if "hashing" not in skip:
                    phase_hashing(b, model)
            rmtree(model.path)
            data["elapsed_s"] = time.monotonic() - b.t0
            try:
                write_reports(data, out)  # partial results survive an interrupted run
            except Exception as exc:  # a report bug must not end the measurements
                b.log(f"partial report failed: {type(exc).__name__}: {exc}")
        if "audit" not in skip:
            data["audit"] = phase_audit(b)
    finally:
        b.stop_all()
        rmtree(b.work)
    if any("kdamond" in _comm(p) for p in os.listdir("/proc") if p.isdigit()):
        b.notes.append("This kernel runs DAMON (kdamond), which may reclaim cold page cache even with free "
                       "RAM; the warm-up read right before each run gives every tool the same state anyway.")
    end_git = _git_describe()
    data["machine"]["omsign_git_end"] = end_git
    if end_git != data["machine"].get("omsign_git"):
        b.notes.append(f"omsign's tree changed during the run (git {data['machine'].get('omsign_git')} -> "
                       f"{end_git}; the editable install runs whatever is checked out at each step).")
    layout_src = getattr(b, "notes_layout", "omsign pack")
    for n in FAIRNESS_NOTES:
        b.notes.append(n.replace("{layout}", f"`{layout_src}`"))
    data["elapsed_s"] = time.monotonic() - b.t0
    write_reports(data, out)
    print()
    print((out / "latest.md").read_text())
    b.log(f"done in {data['elapsed_s']:.0f} s; results in {out}/latest.json, latest.md, throughput.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
