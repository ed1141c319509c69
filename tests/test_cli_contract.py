"""The command line's contract with its users, tested as a user meets it: a real process.

Every documented exit code (README "Exit codes"), usage errors as one line naming the flag,
Ctrl-C during push and pull (a real SIGINT, staging folders removed, exit 130), a closed pipe,
``--version``, completion, help text with examples and panels, and ``--json`` documents with
one key style and a ``schemaVersion``. These tests always start a new process, through the
installed ``omsign`` console script when there is one (with this checkout's package first on
``PYTHONPATH``): signals, exit codes and pipes are properties of a process, not of a call.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import pytest

from tests import helpers, registry_server
from tests.faultproxy import Fault, FaultProxy, Rule
from tests.helpers import ROOT, make_model

proxy = helpers.proxy

# The commands and every exit code the README documents.
README_EXIT_CODES = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 130}


def _console_script() -> str | None:
    """The ``omsign`` entry point pip installed beside this interpreter, else the one on PATH."""
    for folder in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        if (folder / "omsign").exists():
            return str(folder / "omsign")
    return shutil.which("omsign")


SCRIPT = _console_script()
# The installed console script when there is one (what users run), else the module; either way
# this checkout's package (PYTHONPATH) behind it.
OMSIGN = [SCRIPT] if SCRIPT else [sys.executable, "-m", "oci_model_sign.cli"]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(helpers.FAST_ENV)
    env.pop("OMSIGN_DEBUG", None)
    env.pop("SIGSTORE_ID_TOKEN", None)
    env["COLUMNS"] = "200"
    env.update(extra or {})
    return env


def omsign(*args: str | os.PathLike[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``omsign`` as a separate process, as a user starts it."""
    return subprocess.run(
        [*OMSIGN, *map(str, args)],
        capture_output=True, text=True, env=_env(env), cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def start(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*OMSIGN, *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(env), cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("omsign: error:")]


def assert_exit(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """The exit code, no traceback, exactly one error line (for failures) containing the needles."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}, wanted {code}: {proc.stderr}"
    if code in (0, 130):
        return ""
    lines = error_lines(proc.stderr) or [ln for ln in proc.stderr.splitlines() if ln.startswith("omsign: ")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle.lower() in lines[0].lower(), f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# -- exit 2: usage errors, one line naming the flag and the fix -------------------------------------
def test_unknown_option_exits_2_naming_the_option_and_the_closest_one() -> None:
    line = assert_exit(omsign("push", "--jsn", "dir", "oci:x"), 2, "--jsn", "did you mean --json", "omsign push --help")
    assert "internal error" not in line


def test_unknown_option_without_a_close_match_points_at_help() -> None:
    assert_exit(omsign("pull", "--frobnicate", "a", "b"), 2, "--frobnicate", "omsign pull --help")


def test_unknown_command_exits_2_and_suggests_the_command_meant() -> None:
    assert_exit(omsign("pul", "a", "b"), 2, "unknown command 'pul'", "omsign pull")


def test_missing_argument_exits_2_naming_it_and_the_usage() -> None:
    assert_exit(omsign("pull", "localhost:5000/m:v1"), 2, "missing argument DEST", "omsign pull [OPTIONS] REF DEST")


def test_out_of_range_value_exits_2_naming_the_flag() -> None:
    assert_exit(omsign("push", "-j", "0", "dir", "oci:x"), 2, "--concurrency", "omsign push --help")


def test_value_of_the_wrong_type_exits_2_naming_the_flag() -> None:
    assert_exit(omsign("pull", "--concurrency", "many", "a", "b"), 2, "--concurrency")


def test_bare_omsign_exits_2_and_says_how_to_list_the_commands() -> None:
    assert_exit(omsign(), 2, "no command given", "omsign --help")


def test_bad_reference_exits_2_before_any_network() -> None:
    assert_exit(omsign("inspect", "UPPER/Case!!:v1"), 2)


def test_verify_without_a_policy_exits_2_naming_the_policy_flags() -> None:
    assert_exit(omsign("verify", "oci:/nonexistent:v1"), 2, "--key", "--certificate-identity")


# -- the other documented exit codes ----------------------------------------------------------------
@pytest.fixture
def layout(tmp_path: Path) -> str:
    """A model packed into an on-disk layout (offline), as ``oci:PATH:v1``."""
    model = make_model(tmp_path / "model")
    ref = f"oci:{tmp_path / 'store'}:v1"
    assert_exit(omsign("pack", model, ref), 0)
    return ref


def test_exit_0_on_success_prints_the_digest_last(layout: str) -> None:
    proc = omsign("inspect", layout, "--json")
    assert_exit(proc, 0)
    assert json.loads(proc.stdout)["digest"].startswith("sha256:")


def test_exit_1_is_an_internal_error_in_one_line_with_the_traceback_behind_omsign_debug(layout: str) -> None:
    """A bug (here: an API function that raises something unexpected) is one line, exit 1."""
    code = (
        "import sys, oci_model_sign.api as a\n"
        "def boom(*_a, **_k): raise RuntimeError('a bug')\n"
        "a.inspect = boom\n"
        "from oci_model_sign.cli import main\n"
        f"main(['inspect', {layout!r}])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=ROOT)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "omsign: internal error: RuntimeError: a bug (set OMSIGN_DEBUG=1 for details)"
    ]
    debug = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env({"OMSIGN_DEBUG": "1"}), cwd=ROOT
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_exit_3_for_a_missing_model_folder(tmp_path: Path) -> None:
    assert_exit(omsign("pack", tmp_path / "absent", f"oci:{tmp_path / 'store'}:v1"), 3)


def test_exit_4_when_nothing_listens_at_the_registry() -> None:
    with_port = "127.0.0.1:9/models/m:v1"  # the discard port: nothing listens there on a test box
    assert_exit(omsign("inspect", with_port, env={"OMSIGN_RETRIES": "1"}), 4)


@pytest.mark.registry
def test_exit_5_when_the_registry_wants_credentials(auth_registry: registry_server.RegistryServer) -> None:
    assert_exit(omsign("inspect", f"{auth_registry.host}/private/m:v1"), 5)


@pytest.mark.registry
def test_exit_6_when_the_tag_does_not_exist(registry: registry_server.RegistryServer) -> None:
    assert_exit(omsign("inspect", f"{registry.host}/nothing/here:v1"), 6)


def test_exit_7_when_a_blob_does_not_match_its_digest(layout: str, tmp_path: Path) -> None:
    store = Path(layout[len("oci:") :].rsplit(":", 1)[0])
    blobs = sorted((store / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    biggest = blobs[-1]  # the 200 kB weight file, not a manifest or config
    biggest.write_bytes(bytes(b ^ 0xFF for b in biggest.read_bytes()))
    dest = tmp_path / "out"
    assert_exit(omsign("pull", layout, dest), 7)
    assert not dest.exists()


def test_exit_8_when_no_signature_satisfies_the_policy(layout: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    assert_exit(omsign("generate-key-pair", "--dir", keys, env={"OMSIGN_PASSWORD": "pw"}), 0)
    assert_exit(omsign("verify", layout, "--key", keys / "cosign.pub", "--insecure-ignore-tlog"), 8)


def test_exit_9_when_a_limit_is_exceeded(layout: str) -> None:
    assert_exit(omsign("inspect", layout, env={"OMSIGN_MAX_MANIFEST_BYTES": "64"}), 9)


def test_every_exit_code_in_the_readme_is_covered_here() -> None:
    """The table in the README and this file agree (a new code needs a test)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.M)}
    assert documented == README_EXIT_CODES


# -- 130: a real SIGINT during push and pull ----------------------------------------------------------
def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _interrupt(proc: subprocess.Popen[str]) -> tuple[int, str, float]:
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err, time.monotonic() - started


@pytest.mark.registry
def test_sigint_during_push_exits_130_promptly_and_publishes_no_tag(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model", {"model.safetensors": 4_000_000, "config.json": b"{}\n"})
    via = repo.replace(registry.host, proxy.host)
    proxy.add(Rule("PUT", r"/blobs/uploads/", Fault.HOOK, hook=lambda _r: time.sleep(20), times=1))
    proc = start("push", "--no-cache", model, f"{via}:v1")
    _wait_for(lambda: proxy.rules[0].fired == 1)
    code, err, took = _interrupt(proc)
    assert code == 130, err
    assert "Traceback" not in err
    assert "omsign: interrupted" in err
    assert took < 10, f"took {took:.1f} s to stop"
    raw = helpers.RawRegistry(registry.url)
    try:
        assert raw.client.head(f"/v2/{repo.split('/', 1)[1]}/manifests/v1").status_code == 404
    finally:
        raw.close()


@pytest.mark.registry
def test_sigint_during_pull_exits_130_and_removes_the_staging_folder(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model", {"a.bin": 3_000_000, "b.bin": 3_000_000, "config.json": b"{}\n"})
    assert_exit(omsign("push", model, f"{repo}:v1"), 0)
    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.DELAY, drip_bytes=16 * 1024, drip_interval=0.05, times=100))
    parent = tmp_path / "pulls"
    dest = parent / "dest"
    proc = start("pull", f"{repo.replace(registry.host, proxy.host)}:v1", dest)
    _wait_for(lambda: len(proxy.log("GET", r"/blobs/sha256:")) >= 1)
    _wait_for(lambda: parent.exists() and any(p.name.startswith(".omsign") for p in parent.iterdir()))
    code, err, took = _interrupt(proc)
    assert code == 130, err
    assert "Traceback" not in err
    assert took < 10, f"took {took:.1f} s to stop"
    assert not dest.exists()
    assert [p.name for p in parent.iterdir()] == [], "staging debris left beside DEST"


# -- a closed pipe -----------------------------------------------------------------------------------
def _into_a_closed_pipe(*args: str) -> tuple[int, str]:
    """Run omsign with a stdout whose reader is gone before it writes (``… | head``, head done)."""
    proc = subprocess.Popen(
        [*OMSIGN, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=ROOT, stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    proc.stderr.close()
    return proc.returncode, err


@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
def test_inspect_into_a_closed_pipe_exits_quietly(layout: str, json_out: bool) -> None:
    code, err = _into_a_closed_pipe("inspect", layout, *(["--json"] if json_out else []))
    assert (code, err) == (0, "")


def test_help_into_a_closed_pipe_exits_quietly() -> None:
    assert _into_a_closed_pipe("push", "--help") == (0, "")


def test_inspect_piped_into_head_prints_no_error(layout: str) -> None:
    shell = f"set -o pipefail; {' '.join(OMSIGN)} inspect {layout} | head -n 1"
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.strip() == layout.rsplit(":", 1)[0] + "@" + proc.stdout.strip().split("@", 1)[1]


# -- small things a user reaches for -------------------------------------------------------------------
def test_version_prints_the_package_version() -> None:
    from oci_model_sign import __version__

    proc = omsign("--version")
    assert_exit(proc, 0)
    assert proc.stdout.strip() == f"omsign {__version__}"


def test_shell_completion_completes_commands_and_options() -> None:
    commands = omsign(env={"_OMSIGN_COMPLETE": "complete_bash", "COMP_WORDS": "omsign pu", "COMP_CWORD": "1"})
    assert commands.returncode == 0
    assert set(commands.stdout.split()) == {"push", "pull"}
    options = omsign(env={"_OMSIGN_COMPLETE": "complete_bash", "COMP_WORDS": "omsign pull --ver", "COMP_CWORD": "2"})
    assert "--verify" in options.stdout.split()


def test_completion_script_for_bash_can_be_printed() -> None:
    """What ``omsign --install-completion`` installs (``--show-completion`` prints it)."""
    proc = omsign(env={"_OMSIGN_COMPLETE": "source_bash"})
    assert proc.returncode == 0
    assert "_OMSIGN_COMPLETE=complete_bash" in proc.stdout
    assert "complete " in proc.stdout and " omsign" in proc.stdout


def test_every_option_and_argument_has_help_text() -> None:
    import typer.main

    from oci_model_sign.cli import app

    group = typer.main.get_command(app)
    missing = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"{name} {param.name}")
    assert missing == []


@pytest.mark.parametrize(
    ("command", "panels"),
    [
        ("push", ["Registry", "Signing", "Output", "Packing"]),
        ("pull", ["Registry", "Policy", "Output"]),
        ("sign", ["Registry", "Signing", "Output"]),
        ("verify", ["Registry", "Policy", "Output"]),
        ("inspect", ["Registry", "Output"]),
        ("verify-local", ["Policy", "Output"]),
    ],
)
def test_command_help_has_an_example_and_option_panels(command: str, panels: list[str]) -> None:
    proc = omsign(command, "--help")
    assert_exit(proc, 0)
    assert "Examples" in proc.stdout
    assert f"omsign {command} " in proc.stdout.split("Examples", 1)[1]
    for panel in panels:
        assert re.search(rf"─ {panel} ─", proc.stdout), f"no {panel} panel in {command} --help"


def test_option_groups_are_defined_once() -> None:
    """``--plain-http`` (say) is declared in one place, whichever commands accept it."""
    package = ROOT / "oci_model_sign"
    modules = [p for p in sorted(package.glob("cli*.py")) if p.name != "cli_options.py"]
    assert len(modules) >= 5, "the command modules were not found: the check would pass vacuously"
    for path in modules:
        source = path.read_text(encoding="utf-8")
        for flag in ("--plain-http", "--insecure", "--username", "--json", "--certificate-identity", "--concurrency"):
            declared = re.search(r'typer\.Option\(\s*(?:[^()]*,\s*)?"' + re.escape(flag) + r'[/"]', source)
            assert declared is None, f"{flag} is declared in {path.name}, not in its option group"
    groups = (package / "cli_options.py").read_text(encoding="utf-8")
    assert '"--plain-http/--no-plain-http"' in groups and '"--json"' in groups


def test_inspect_on_a_pipe_prints_plain_uncut_text(tmp_path: Path) -> None:
    long_name = "a-rather-long-folder-name-for-the-weights/" + "shard-" + "x" * 60 + ".safetensors"
    model = make_model(tmp_path / "model", {long_name: 1000, "config.json": b"{}\n"})
    ref = f"oci:{tmp_path / 'store'}:v1"
    assert_exit(omsign("pack", model, ref), 0)
    proc = omsign("inspect", ref, env={"COLUMNS": "60"})
    assert_exit(proc, 0)
    assert long_name in proc.stdout
    assert re.search(r"sha256:[0-9a-f]{64}", proc.stdout), "digests are shown in full on a pipe"
    assert not re.search("[\u2500-\u257f]|\x1b\\[", proc.stdout), "no box drawing or colour on a pipe"


def test_identity_token_comes_from_sigstore_id_token(tmp_path: Path) -> None:
    """``SIGSTORE_ID_TOKEN`` is read as cosign reads it: a malformed one is named as such."""
    model = make_model(tmp_path / "model")
    store = tmp_path / "store"
    without = omsign("push", "--sign", model, f"oci:{store}:v1")
    assert_exit(without, 3, "no identity token")
    with_env = omsign("push", "--sign", model, f"oci:{store}:v1", env={"SIGSTORE_ID_TOKEN": "not-a-jwt"})
    assert_exit(with_env, 3, "identity token is not usable")
    assert not store.exists(), "nothing is written before the signer is known to work"


def test_push_sign_with_a_wrong_password_fails_before_anything_is_written(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    assert_exit(omsign("generate-key-pair", "--dir", keys, env={"OMSIGN_PASSWORD": "pw"}), 0)
    model = make_model(tmp_path / "model")
    store = tmp_path / "store"
    proc = omsign("push", "--sign", "--key", keys / "cosign.key", model, f"oci:{store}:v1", env={"OMSIGN_PASSWORD": "wrong"})
    assert_exit(proc, 3)
    assert not store.exists()


@pytest.mark.registry
def test_push_sign_with_a_wrong_password_uploads_and_tags_nothing(
    registry: registry_server.RegistryServer, repo: str, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    assert_exit(omsign("generate-key-pair", "--dir", keys, env={"OMSIGN_PASSWORD": "pw"}), 0)
    model = make_model(tmp_path / "model")
    proc = omsign("push", "--sign", "--key", keys / "cosign.key", model, f"{repo}:v1", env={"OMSIGN_PASSWORD": "wrong"})
    assert_exit(proc, 3)
    raw = helpers.RawRegistry(registry.url)
    try:
        name = repo.split("/", 1)[1]
        assert raw.client.head(f"/v2/{name}/manifests/v1").status_code == 404
        weights = helpers.sha256((model / "model.safetensors").read_bytes())
        assert raw.client.head(f"/v2/{name}/blobs/{weights}").status_code == 404
    finally:
        raw.close()


def test_key_pair_hint_names_the_flag_that_exists(tmp_path: Path) -> None:
    env = {"OMSIGN_PASSWORD": "pw"}
    assert_exit(omsign("generate-key-pair", "--dir", tmp_path, env=env), 0)
    line = assert_exit(omsign("generate-key-pair", "--dir", tmp_path, env=env), 3, "already exists")
    assert "--output-key-prefix" in line


def test_verify_local_accepts_the_allow_symlinks_flag_its_hint_names() -> None:
    proc = omsign("verify-local", "--help")
    assert "--allow-symlinks" in proc.stdout


# -- --json: camelCase keys and a schemaVersion ---------------------------------------------------------
def _snake_keys(value: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if "_" in k:
                found.append(f"{path}.{k}")
            if k not in ("annotations", "manifest"):
                found += _snake_keys(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _snake_keys(v, f"{path}[{i}]")
    return found


def _doc(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    value = json.loads(proc.stdout)
    assert isinstance(value, dict)
    assert value["schemaVersion"] == 1
    assert next(iter(value)) == "schemaVersion"
    assert _snake_keys(value) == []
    return value


def test_every_json_document_is_camel_case_with_a_schema_version(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    env = {"OMSIGN_PASSWORD": "pw"}
    assert_exit(omsign("generate-key-pair", "--dir", keys, env=env), 0)
    model = make_model(tmp_path / "model")
    ref = f"oci:{tmp_path / 'store'}:v1"
    packed = omsign("pack", model, ref, "--json")
    assert_exit(packed, 0)
    assert {"reference", "digest", "layers", "uploadedBytes"} <= set(_doc(packed))
    signed = omsign("sign", "--key", keys / "cosign.key", "--no-tlog-upload", "-a", "build_id=7", ref, "--json", env=env)
    assert_exit(signed, 0)
    assert {"reference", "digest", "signatures"} <= set(_doc(signed))
    shown = omsign("inspect", ref, "--json")
    assert {"files", "referrers", "legacySignatures", "mediaType"} <= set(_doc(shown))
    policy: list[str | os.PathLike[str]] = ["--key", keys / "cosign.pub", "--insecure-ignore-tlog"]
    verified = omsign("verify", ref, *policy, "--json")
    assert_exit(verified, 0)
    report = _doc(verified)
    assert report["subjectDigest"].startswith("sha256:")
    assert report["accepted"]["predicateType"]
    assert report["accepted"]["annotations"] == {"build_id": "7"}, "annotation keys are data, kept as given"
    pulled = omsign("pull", ref, tmp_path / "out", *policy, "--json")
    assert_exit(pulled, 0)
    doc = _doc(pulled)
    assert {"destination", "downloadedBytes", "files", "verification"} <= set(doc)
    local = omsign("verify-local", tmp_path / "out", "--key", keys / "cosign.pub", "--json")
    assert_exit(local, 0)
    assert _doc(local)["ok"] is True


def test_json_keys_are_documented() -> None:
    """Every key the documents above use appears in docs/json.md."""
    text = (ROOT / "docs" / "json.md").read_text(encoding="utf-8")
    for key in (
        "schemaVersion", "reference", "digest", "size", "mediaType", "tag", "uploadedBytes", "layers",
        "uploaded", "signing", "destination", "downloadedBytes", "files", "verification", "artifactType",
        "annotations", "referrers", "legacySignatures", "manifest", "kind", "signatures", "notes",
        "format", "predicateType", "subjectDigest", "ok", "accepted", "candidates", "source", "reason", "signer",
    ):
        assert f"`{key}`" in text, f"{key} is not documented in docs/json.md"


# -- the installed console script ---------------------------------------------------------------------
def test_the_tests_above_ran_the_installed_console_script() -> None:
    """Every test here goes through ``omsign`` as pip installed it, when it is installed."""
    if SCRIPT is None:
        pytest.skip("no omsign console script installed (pip install -e .)")
    assert OMSIGN == [SCRIPT]
    version = subprocess.run([SCRIPT, "--version"], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("omsign ")
    here = subprocess.run(
        [SCRIPT, "push", "--bogus"], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60
    )
    assert here.returncode == 2 and "--bogus" in error_lines(here.stderr)[0]


# -- the Python API ----------------------------------------------------------------------------------
def _python(code: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter: what was imported before matters here."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)


def test_oms_verify_stays_callable_after_importing_the_verify_subpackage() -> None:
    proc = _python(
        "import oci_model_sign as oms\n"
        "from oci_model_sign.verify.policy import KeyPolicy\n"
        "import oci_model_sign.verify.result as r\n"
        "assert callable(oms.verify), oms.verify\n"
        "try:\n"
        "    oms.verify('oci:/nonexistent:v1', None)\n"
        "except oms.UsageError as e:\n"
        "    print('usage:', e)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: no policy")


def test_errors_are_exported_at_the_top_level() -> None:
    import oci_model_sign as oms
    from oci_model_sign import errors

    for name in ("OmsignError", "UsageError", "InputError", "RegistryError", "AuthError", "NotFoundError",
                 "IntegrityError", "VerificationError", "LimitError"):
        assert getattr(oms, name) is getattr(errors, name)
        assert name in oms.__all__


def test_importing_the_package_loads_no_engine() -> None:
    proc = _python(
        "import sys, oci_model_sign\n"
        "heavy = [m for m in ('httpx', 'sigstore', 'cryptography', 'rich', 'typer') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_api_results_have_short_reprs_without_raw_bytes(tmp_path: Path) -> None:
    import oci_model_sign as oms

    model = make_model(tmp_path / "model", {"w.bin": 300_000, "config.json": b"{}\n"})
    ref = f"oci:{tmp_path / 'store'}:v1"
    pushed = oms.push(model, ref)
    shown = oms.inspect(ref)
    for result in (pushed, shown):
        text = repr(result)
        assert len(text) < 400, text
        # a bytes literal starts a token; a hex digest ending in "b" before a quote is not one
        assert not re.search(r"(?<![0-9A-Za-z_])b['\"]", text), text
