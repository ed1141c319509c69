"""`make demo`: the main job end to end, narrated.

push -> inspect -> pull -> compare; then generate a key pair, push --sign, pull --verify, attest
an evaluation, show the tree, pull through the attestation gate; then tamper with one blob in the registry's storage and watch `pull --verify` refuse it. Uses a throwaway
local registry (Debian's docker-registry) or, when none is installed, the on-disk layout store.
"""

from __future__ import annotations

import filecmp
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OMSIGN = [str(Path(sys.executable).with_name("omsign"))]
MODEL = ROOT / "testdata" / "tiny-model"


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def run(
    *args: str, check: bool = True, env: dict[str, str] | None = None, quiet: bool = False
) -> subprocess.CompletedProcess[str]:
    print("$ omsign " + shlex.join(args), flush=True)
    proc = subprocess.run([*OMSIGN, *args], text=True, capture_output=True, env=env)
    if proc.stdout and not quiet:
        print(proc.stdout.rstrip())
    if proc.stderr:
        print(proc.stderr.rstrip())
    if check and proc.returncode != 0:
        print(f"demo failed: omsign exited with {proc.returncode}", file=sys.stderr)
        sys.exit(1)
    return proc


def same_tree(a: Path, b: Path, ignore: tuple[str, ...] = ()) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=list(ignore))
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(same_tree(a / d, b / d, ignore) for d in cmp.common_dirs)


def policy_steps(work: Path, base: str, signed_ref: str, keys: Path, env: dict[str, str]) -> bool:
    """A trust policy file in force: pull verifies without --verify; an unsigned model is refused."""
    step("a trust policy file: this repository must be signed by our key (enforce mode)")
    policy = work / "policy.yaml"
    policy.write_text(
        "apiVersion: omsign/v1\n"
        "scopes:\n"
        f"  '{base}':\n"
        "    mode: enforce\n"
        "    authorities:\n"
        f"      - {{name: release, key: {{path: {keys / 'cosign.pub'}}}, ignoreTlog: true}}\n"
    )
    print(policy.read_text().rstrip())
    run("policy", "check", str(policy))
    run("policy", "explain", "--policy", str(policy), signed_ref)
    policy_env = dict(os.environ, OMSIGN_POLICY=str(policy))
    step("push a changed copy of the model that nobody signs")
    changed = work / "unsigned-model"
    shutil.copytree(MODEL, changed)
    (changed / "NOTES.txt").write_text("a change nobody reviewed\n")
    unsigned_ref = f"{base}:unsigned"
    run("push", str(changed), unsigned_ref, "--no-progress")
    step("pull of the unsigned model under the policy: refused, no --verify needed")
    refused = work / "policy-refused"
    proc = run("pull", unsigned_ref, str(refused), "--no-progress", check=False, env=policy_env)
    print(f"exit code {proc.returncode} (8 = verification); destination untouched: {not refused.exists()}")
    if proc.returncode != 8 or refused.exists():
        return False
    step("pull of the signed model under the policy: verified automatically, then placed")
    run("pull", signed_ref, str(work / "policy-admitted"), "--no-progress", env=policy_env)
    return verified_from_pretrained(work, base, keys, env, policy)


def verified_from_pretrained(work: Path, base: str, keys: Path, env: dict[str, str], policy: Path) -> bool:
    """``from_pretrained("oci://...")`` through the verified cache (skipped without transformers)."""
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError:
        step("verified from_pretrained: skipped (transformers and torch are not installed: make test installs them)")
        return True
    step("a tiny transformers model, pushed and signed, loaded with from_pretrained('oci://...') under the policy")
    folder = work / "tiny-bert"
    config = transformers.BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=37,
                                     vocab_size=99)
    transformers.BertModel(config).save_pretrained(folder)
    ref = f"{base}:bert"
    run("push", str(folder), ref, "--no-progress", "--sign", "--key", str(keys / "cosign.key"), "--no-tlog-upload",
        env=env)
    os.environ["OMSIGN_POLICY"] = str(policy)
    os.environ.setdefault("XDG_CACHE_HOME", str(work / "cache"))
    from oci_model_sign.integrations import transformers as oms_tf

    name = "oci://" + ref
    print(f">>> with oms_tf.verified(): transformers.AutoModel.from_pretrained({name!r})")
    try:
        with oms_tf.verified():
            model = transformers.AutoModel.from_pretrained(name)
    finally:
        del os.environ["OMSIGN_POLICY"]
    print(f"loaded {type(model).__name__} with {sum(p.numel() for p in model.parameters())} parameters, "
          "signature verified by the policy file, weights checked against the signed digests")
    return True


def main() -> int:
    from tests import registry_server

    work = Path(tempfile.mkdtemp(prefix="omsign-demo-"))
    server = None
    try:
        if registry_server.available():
            server = registry_server.start()
            base = f"{server.host}/demo/tiny-model"
            step(f"started a throwaway registry at {server.url}")
        else:
            base = f"oci:{work / 'store'}"
            step("docker-registry is not installed: running the same flow on the on-disk layout store")
        ref = f"{base}:v1"

        step("push the model folder (one layer per file, CNCF ModelPack media types)")
        run("push", str(MODEL), ref, "--no-progress")
        step("push again: every blob is already there, nothing is uploaded")
        run("push", str(MODEL), ref, "--no-progress")
        step("inspect it (no download)")
        run("inspect", ref)
        step("pull it into a new folder; every layer is checked against its digest")
        dest = work / "pulled"
        run("pull", ref, str(dest), "--no-progress")
        ok = same_tree(MODEL, dest)
        print(f"pulled files identical to testdata/tiny-model: {ok}")
        if not ok:
            return 1

        step("generate a cosign-format key pair")
        env = dict(os.environ, COSIGN_PASSWORD="demo-password")
        keys = work / "keys"
        keys.mkdir()
        run("generate-key-pair", "--dir", str(keys), env=env)
        step("push and sign (cosign bundle + model-signing bundle, attached as OCI referrers)")
        signed_ref = f"{base}:signed"
        # --no-tlog-upload: the demo runs offline, with no Rekor to log the signature in
        run("push", str(MODEL), signed_ref, "--no-progress", "--sign", "--key", str(keys / "cosign.key"), "--no-tlog-upload", env=env)
        step("verify the signature against the public key")
        run("verify", signed_ref, "--key", str(keys / "cosign.pub"), "--insecure-ignore-tlog")
        step("pull --verify: signature first, then every layer, then files move into place")
        verified = work / "verified"
        run("pull", signed_ref, str(verified), "--verify", "--key", str(keys / "cosign.pub"), "--insecure-ignore-tlog", "--no-progress")
        print(f"model.sig written for model_signing: {(verified / 'model.sig').exists()}")
        step("model_signing (the OpenSSF reference tool) accepts the pulled folder as it is")
        tool = Path(sys.executable).with_name("model_signing")
        cmd = [str(tool), "verify", "key", str(verified), "--public_key", str(keys / "cosign.pub"),
               "--signature", str(verified / "model.sig")]
        print("$ " + " ".join(["model_signing", *cmd[1:]]), flush=True)
        ms = subprocess.run(cmd, text=True, capture_output=True)
        print((ms.stdout + ms.stderr).strip())
        if ms.returncode != 0:
            return 1

        if not policy_steps(work, base, signed_ref, keys, env):
            return 1

        step("attest: sign the model's evaluation results as an in-toto statement (cosign v3 referrer)")
        pub = ["--key", str(keys / "cosign.pub"), "--insecure-ignore-tlog"]
        run("attest", signed_ref, "--key", str(keys / "cosign.key"), "--no-tlog-upload", "--type", "eval",
            "--predicate", str(ROOT / "testdata" / "modelcards" / "eval.json"), env=env)
        step("tree: everything attached to the model (described, not verified), with the dataset it names")
        run("tree", signed_ref)
        step("a gated pull: the signature AND an evaluation with accuracy >= 0.9, before any download")
        gate = 'eval:predicate.metrics.exists(m, m.name == "accuracy" && m.value >= {})'
        gated = work / "gated"
        run("pull", signed_ref, str(gated), "--verify", *pub, "--require-attestation", gate.format("0.9"), "--no-progress")
        step("the same gate at accuracy >= 0.99 refuses the model; nothing is downloaded")
        strict = work / "strict"
        proc = run("pull", signed_ref, str(strict), "--verify", *pub, "--require-attestation", gate.format("0.99"),
                   "--no-progress", check=False)
        print(f"exit code {proc.returncode} (8 = verification); destination untouched: {not strict.exists()}")
        if proc.returncode != 8 or strict.exists():
            return 1

        step("tamper with one weight blob in the registry's storage")
        inspect = run("inspect", signed_ref, "--json", quiet=True)
        import json

        files = json.loads(inspect.stdout)["files"]
        victim = next(f for f in files if f["path"].endswith(".safetensors"))
        if server is not None:
            blob = server.blob_path(victim["digest"])
        else:
            blob = work / "store" / "blobs" / "sha256" / victim["digest"].split(":", 1)[1]
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
        print(f"flipped one byte of {victim['path']} ({victim['digest'][:19]}…)")
        step("pull --verify refuses the tampered model and leaves the destination untouched")
        refused = work / "refused"
        proc = run(
            "pull", signed_ref, str(refused), "--verify", "--key", str(keys / "cosign.pub"),
            "--insecure-ignore-tlog", "--no-progress", check=False,
        )
        untouched = not refused.exists() or not any(refused.iterdir())
        print(f"exit code {proc.returncode} (7 = integrity error); destination untouched: {untouched}")
        if proc.returncode == 0 or not untouched:
            return 1
        if server is not None and not gate_demo(work, keys, env):
            return 1
        step("demo complete")
        return 0
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def gate_demo(work: Path, keys: Path, env: dict[str, str]) -> bool:
    """A hub: the registry posts every push to `omsign gate`, which verifies and promotes."""
    import json
    import time
    import urllib.request

    from tests import registry_server

    port = registry_server.free_port()
    registry = registry_server.start(notify=f"http://127.0.0.1:{port}/events")
    policy = work / "hub-policy.yaml"
    policy.write_text(
        "apiVersion: omsign/v1\nscopes:\n"
        f"  {registry.host}/incoming:\n    authorities:\n      - key: {{path: {keys / 'cosign.pub'}}}\n        ignoreTlog: true\n"
        f"  {registry.host}/models:\n    authorities:\n      - key: {{path: {keys / 'cosign.pub'}}}\n        ignoreTlog: true\n"
    )
    args = ["gate", "--registry", registry.host, "--policy", str(policy), "--listen", f"127.0.0.1:{port}",
            "--db", str(work / "gate.sqlite")]
    print("$ omsign " + " ".join(args) + " &", flush=True)
    gate = subprocess.Popen([*OMSIGN, *args], stderr=subprocess.PIPE, text=True)

    def verdict(repo: str, digest: str, want: str) -> dict[str, object]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/results") as r:
                    rows = json.load(r)["results"]
            except OSError:
                rows = []
            for row in rows:
                if row["repository"] == repo and row["digest"] == digest and row["verdict"] == want:
                    return dict(row)
            time.sleep(0.2)
        raise SystemExit(f"demo failed: the gate gave no {want} verdict for {repo}@{digest}")

    try:
        step("a hub: the registry posts each push to `omsign gate`; uploads land in incoming/")
        pushed = run("push", str(MODEL), f"{registry.host}/incoming/tiny:v1", "--no-progress")
        digest = pushed.stdout.strip().splitlines()[-1]
        row = verdict("incoming/tiny", digest, "rejected")
        print(f"gate: incoming/tiny {row['verdict']}: {row['reason']}")
        step("the publisher signs it: the gate checks again, admits it and promotes it with its signature")
        run("sign", f"{registry.host}/incoming/tiny:v1", "--key", str(keys / "cosign.key"), "--no-tlog-upload", env=env)
        row = verdict("incoming/tiny", digest, "admitted")
        print(f"gate: incoming/tiny {row['verdict']}, promoted to {row['promotedTo']}")
        run("verify", f"{registry.host}/models/tiny:v1", "--key", str(keys / "cosign.pub"), "--insecure-ignore-tlog")
        print(f"status page: http://127.0.0.1:{port}/ (JSON: /api/results)")
        return True
    finally:
        gate.terminate()
        gate.wait(timeout=30)
        registry.stop()


if __name__ == "__main__":
    sys.exit(main())
