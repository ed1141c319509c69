"""The in-process CLI runner shows what a child process shows, and leaves nothing behind.

Most CLI tests run ``omsign`` in the test process (``tests.helpers.run_cli``); they are only
as good as that runner is faithful. Each case here runs the same command both ways and wants
the same exit code, stdout and stderr, byte for byte: help and usage texts (program name,
rich's width and colour on a pipe), one-line errors, JSON and tables.
"""

from __future__ import annotations

import os
import signal
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tests import cli_inprocess
from tests.conftest import TESTDATA
from tests.helpers import assert_ok, run_cli, run_cli_subprocess


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A packed tiny-model, read by both runners."""
    lay = tmp_path_factory.mktemp("harness") / "lay"
    assert_ok(run_cli("pack", TESTDATA / "tiny-model", f"oci:{lay}:v1"))
    return lay


CASES: dict[str, list[str]] = {
    "help": ["--help"],
    "command-help": ["pull", "--help"],
    "no-arguments": [],
    "unknown-option": ["--bogus"],
    "missing-argument": ["push"],
    "usage-error": ["pull", "--verify", "oci:/nonexistent/x:v1", "/nonexistent/dest"],
    "input-error": ["push", "/nonexistent/model", "oci:/nonexistent/x:v1"],
    "bad-reference": ["inspect", "127.0.0.1:5000/Upper/Case:v1"],
    "no-key-password": ["generate-key-pair", "--dir", "/nonexistent"],
    "inspect-table": ["inspect", "oci:{layout}:v1"],
    "inspect-json": ["inspect", "--json", "oci:{layout}:v1"],
}


@pytest.mark.subprocess
@pytest.mark.parametrize("case", sorted(CASES))
def test_in_process_run_matches_a_child_process(case: str, layout: Path) -> None:
    args = [a.format(layout=layout) for a in CASES[case]]
    child = run_cli_subprocess(*args, input="")
    here = run_cli(*args, input="")
    assert (here.returncode, here.stdout, here.stderr) == (child.returncode, child.stdout, child.stderr)


@pytest.mark.subprocess
@pytest.mark.parametrize("args", [["--help"], ["inspect", "oci:{layout}:v1"]], ids=["help", "inspect-table"])
def test_terminal_width_from_the_environment_matches_a_child_process(args: list[str], layout: Path) -> None:
    """``COLUMNS`` given for one call is what rich sees in that call."""
    argv = [a.format(layout=layout) for a in args]
    child = run_cli_subprocess(*argv, env={"COLUMNS": "60"})
    here = run_cli(*argv, env={"COLUMNS": "60"})
    assert (here.returncode, here.stdout, here.stderr) == (child.returncode, child.stdout, child.stderr)
    assert here.stdout


@pytest.mark.subprocess
def test_pack_json_matches_a_child_process(tmp_path: Path) -> None:
    """The same model packed twice: identical output but for the layout path."""
    child = run_cli_subprocess("pack", "--json", TESTDATA / "tiny-model", f"oci:{tmp_path / 'a'}:v1")
    here = run_cli("pack", "--json", TESTDATA / "tiny-model", f"oci:{tmp_path / 'b'}:v1")
    assert_ok(child)
    assert here.returncode == 0
    assert here.stdout.replace(str(tmp_path / "b"), "LAYOUT") == child.stdout.replace(str(tmp_path / "a"), "LAYOUT")
    assert here.stderr == child.stderr


def test_stdin_is_fed_and_is_not_a_terminal(tmp_path: Path) -> None:
    """``--password-stdin`` reads the given input; without input there is no terminal to ask."""
    res = run_cli("login", "127.0.0.1:1", "--username", "u", "--password-stdin", input="secret\n",
                  env={"OMSIGN_RETRIES": "1"})
    assert res.returncode == 4, res.stderr  # the password was read: the registry is what failed
    res = run_cli("login", "127.0.0.1:1", "--username", "u")
    assert res.returncode == 2 and "no password" in res.stderr


def test_environment_cwd_and_streams_are_restored(tmp_path: Path) -> None:
    before = (dict(os.environ), os.getcwd(), sys.stdin, sys.stdout, sys.stderr, list(sys.argv), sys.excepthook)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    res = run_cli("logout", "example.invalid", env={"OMSIGN_PROBE": "1", "HOME": str(tmp_path)})
    assert_ok(res)
    assert "OMSIGN_PROBE" not in os.environ
    assert (dict(os.environ), os.getcwd(), sys.stdin, sys.stdout, sys.stderr, list(sys.argv), sys.excepthook) == before
    assert {s: signal.getsignal(s) for s in handlers} == handlers


class _Probe(types.ModuleType):
    TABLE: dict[str, int]
    ITEMS: list[int]
    VALUE: str
    ADDED: bool
    cached: Any


def test_module_state_left_by_a_call_is_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebound and added globals, container contents and lru caches of the package's modules."""
    import functools

    probe = _Probe("oci_model_sign._harness_probe")
    probe.TABLE, probe.ITEMS, probe.VALUE = {"a": 1}, [1], "fresh"
    probe.cached = functools.lru_cache(maxsize=None)(lambda x: x)
    monkeypatch.setitem(sys.modules, probe.__name__, probe)
    table, items = probe.TABLE, probe.ITEMS
    state = cli_inprocess._ModuleState()
    table["b"] = 2
    items.append(2)
    probe.VALUE = "changed"
    probe.ADDED = True
    probe.cached(1)
    state.restore()
    assert probe.TABLE is table and table == {"a": 1}
    assert probe.ITEMS is items and items == [1]
    assert probe.VALUE == "fresh"
    assert not hasattr(probe, "ADDED")
    assert probe.cached.cache_info().currsize == 0


@pytest.mark.subprocess
def test_an_exit_code_from_a_real_process_matches(tmp_path: Path) -> None:
    """The documented exit code arrives through a real process exit, not only in-process."""
    child = run_cli_subprocess("push", tmp_path / "nope", f"oci:{tmp_path / 'lay'}:v1")
    assert child.returncode == 3 and child.error_line.startswith("omsign: error:")


def test_a_timeout_interrupts_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like ``subprocess.run(timeout=)``: a call running too long raises TimeoutExpired."""
    import subprocess
    import time

    from oci_model_sign import cli

    def slow(argv: list[str] | None = None) -> None:
        time.sleep(30)

    monkeypatch.setattr(cli, "main", slow)
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_cli("--help", timeout=0.5)
    assert time.monotonic() - start < 10
