"""Run ``omsign`` inside the test process as if it were a fresh ``python -m oci_model_sign.cli``.

A child interpreter costs about a quarter of a second of imports per call, and most CLI tests
only care about what the user sees: the exit code, stdout and stderr. This runs
``oci_model_sign.cli.main(argv)`` here instead, with everything a child would get set up
and put back afterwards:

- ``os.environ`` replaced by the child's environment, cwd changed, ``sys.argv`` and the
  program name click derives from ``__main__`` set as ``python -m`` sets them (usage texts
  name ``python -m oci_model_sign.cli``, exactly as in a child);
- stdin fed from ``input`` (never a terminal), stdout/stderr captured as text with a child's
  encoding, error handlers and newline translation (decoded as ``subprocess.run`` decodes), so rich and click see a pipe: plain, uncoloured, 80
  columns unless ``COLUMNS`` says otherwise;
- warnings filtered as a fresh interpreter filters them, and printed to the captured stderr;
- the exit code from ``SystemExit`` (or 0), an escaping exception printed as a traceback with
  exit code 1, as the interpreter would;
- afterwards: signal handlers, umask, recursion limit, exception hooks, and the module globals of
  ``oci_model_sign`` (rebound names, contents of module-level dicts/lists/sets, lru caches)
  restored, so no call sees state an earlier one left behind.

Not reproduced: threads a command leaves running are not waited for (a child waits for its
non-daemon threads and kills daemon ones at exit); output written to the file descriptors
directly, not through ``sys.stdout``/``sys.stderr``, is not captured.

What cannot be faked here stays in a real child (``tests.helpers.run_cli_subprocess`` and
``start_cli``): signals, kill -9, closed pipes, concurrent processes, another user, rlimits.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import importlib
import io
import os
import pkgutil
import signal
import sys
import threading
import traceback
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.helpers import CliResult

PACKAGE = "oci_model_sign"

# A fresh CPython's warning filters (no -W, no PYTHONWARNINGS, not a debug build).
_FRESH_FILTERS: list[tuple[str, type[Warning], str | None]] = [
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, None),
    ("ignore", PendingDeprecationWarning, None),
    ("ignore", ImportWarning, None),
    ("ignore", ResourceWarning, None),
]

_LOCK = threading.Lock()  # one in-process CLI at a time: sys.stdout and os.environ are global


class CliTimeout(BaseException):
    """The in-process CLI ran past its timeout (a BaseException: the CLI must not catch it)."""


def run_in_process(
    argv: list[str],
    *,
    env: dict[str, str],
    input: str | None = None,
    cwd: Path | str | None = None,
    timeout: float | None = None,
) -> CliResult:
    """``(returncode, stdout, stderr)`` as a ``tests.helpers.CliResult``.

    ``timeout`` raises ``subprocess.TimeoutExpired`` like ``subprocess.run`` (SIGALRM, so only
    when called from the main thread; a blocked call is interrupted, the CLI's own clean-up
    runs on the way out).
    """
    from tests.helpers import CliResult  # at run time: tests.helpers imports this module

    with _LOCK:
        code, out, err = _run_locked(argv, env, input, cwd, timeout)
    return CliResult(code, out, err)


def _run_locked(
    argv: list[str], env: dict[str, str], input: str | None, cwd: Path | str | None, timeout: float | None
) -> tuple[int, str, str]:
    cli = _cli_module()
    encoding = getattr(sys.__stdout__, "encoding", None) or "utf-8"  # a child's, from the same locale
    stdin = io.TextIOWrapper(io.BytesIO((input or "").encode(encoding)), encoding=encoding, errors=_errors(sys.__stdin__))
    out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out_bytes, encoding=encoding, errors=_errors(sys.__stdout__), write_through=True)
    stderr = io.TextIOWrapper(err_bytes, encoding=encoding, errors="backslashreplace", write_through=True)
    code = 0
    with _process_state(argv, env, cwd, cli), _std_streams(stdin, stdout, stderr), _fresh_warnings(env):
        try:
            with _alarm(timeout):
                cli.main(list(argv))
        except SystemExit as stop:
            code = _exit_code(stop, stderr)
        except CliTimeout:
            import subprocess

            raise subprocess.TimeoutExpired(["omsign", *argv], timeout or 0.0) from None
        except KeyboardInterrupt:  # Ctrl-C meant for the test run, not for this command
            raise
        except BaseException:  # what an interpreter does with an exception nobody caught
            traceback.print_exc(file=stderr)
            code = 1
        finally:
            stdout.flush()
            stderr.flush()
    return code, _text(out_bytes.getvalue()), _text(err_bytes.getvalue())


def _errors(stream: object) -> str:
    """A child's error handler for its standard streams: what this interpreter chose for its
    own from the same locale (``surrogateescape`` under C.UTF-8, ``strict`` otherwise)."""
    errors = getattr(stream, "errors", None)
    return errors if isinstance(errors, str) else "strict"


def _text(data: bytes) -> str:
    """What ``subprocess.run(text=True)`` hands back: decoded strictly, universal newlines."""
    import locale

    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


def _exit_code(stop: SystemExit, stderr: io.TextIOWrapper) -> int:
    if stop.code is None:
        return 0
    if isinstance(stop.code, int):
        return stop.code & 0xFF
    print(stop.code, file=stderr)  # sys.exit("message"): printed, exit 1
    return 1


@functools.cache
def _cli_module() -> types.ModuleType:
    """Import the CLI and every module of the package once, so that the state snapshot taken
    around each call covers modules a command imports lazily."""
    package = importlib.import_module(PACKAGE)
    for info in pkgutil.walk_packages(package.__path__, f"{PACKAGE}."):
        with contextlib.suppress(ImportError):
            importlib.import_module(info.name)
    return importlib.import_module(f"{PACKAGE}.cli")


@contextlib.contextmanager
def _std_streams(stdin: io.TextIOBase, stdout: io.TextIOBase, stderr: io.TextIOBase) -> Iterator[None]:
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


@contextlib.contextmanager
def _fresh_warnings(env: dict[str, str]) -> Iterator[None]:
    """Filters as a new interpreter sets them; shown on the (captured) stderr, not recorded."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        for action, category, module in reversed(_FRESH_FILTERS):
            warnings.filterwarnings(action, category=category, module=module or "")  # type: ignore[arg-type]
        options = [o for o in env.get("PYTHONWARNINGS", "").split(",") if o]
        process = getattr(warnings, "_processoptions", None)
        if options and callable(process):
            process(options)
        warnings.showwarning = getattr(warnings, "_showwarning_orig", warnings.showwarning)
        yield


@contextlib.contextmanager
def _process_state(
    argv: list[str], env: dict[str, str], cwd: Path | str | None, cli: types.ModuleType
) -> Iterator[None]:
    main = sys.modules["__main__"]
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_argv = sys.argv
    saved_package = main.__dict__.get("__package__", _MISSING)
    saved_signals = _signal_handlers()
    saved_umask = os.umask(0o022)
    os.umask(saved_umask)
    saved_recursion = sys.getrecursionlimit()
    saved_hooks = sys.excepthook, threading.excepthook  # typer installs its own on every call
    modules = _ModuleState()
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    sys.argv = [str(cli.__file__), *argv]
    main.__package__ = PACKAGE  # click: "python -m oci_model_sign.cli", as in a child
    try:
        yield
    finally:
        modules.restore()
        if saved_package is _MISSING:
            main.__dict__.pop("__package__", None)
        else:
            main.__package__ = saved_package
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        _restore_signals(saved_signals)
        os.umask(saved_umask)
        sys.setrecursionlimit(saved_recursion)
        sys.excepthook, threading.excepthook = saved_hooks


_MISSING = object()


def _signal_handlers() -> dict[signal.Signals, Any]:
    handlers: dict[signal.Signals, Any] = {}
    for sig in signal.valid_signals():
        with contextlib.suppress(ValueError, OSError):
            handlers[signal.Signals(sig)] = signal.getsignal(sig)
    return handlers


def _restore_signals(saved: dict[signal.Signals, Any]) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, handler in saved.items():
        if signal.getsignal(sig) is not handler and handler is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, handler)


@contextlib.contextmanager
def _alarm(timeout: float | None) -> Iterator[None]:
    if not timeout or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise CliTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _ModuleState:
    """The globals of every ``oci_model_sign`` module, to put back after a call.

    A child process starts with freshly imported modules; here the same modules serve every
    call, so whatever a command caches at module level (a session pool, a token cache, a
    lazily built table) is undone: rebound names get their old value, names added are
    removed, module-level dicts, lists and sets get their old contents, lru caches are cleared.
    """

    def __init__(self) -> None:
        self.modules = [(m, dict(vars(m))) for name, m in list(sys.modules.items()) if _ours(name, m)]
        self.containers: list[tuple[Any, Any]] = []
        for _, names in self.modules:
            for key, value in names.items():
                # ``__builtins__`` is the interpreter's own dict: clearing it, even for a moment,
                # breaks every other thread (and the test run). Dunders are import machinery.
                if key.startswith("__") or value is vars(builtins):
                    continue
                if type(value) in (dict, list, set):
                    self.containers.append((value, value.copy()))
        self._clear_caches()

    def restore(self) -> None:
        for module, names in self.modules:
            current = vars(module)
            for key in [k for k in current if k not in names]:
                if not isinstance(current[key], types.ModuleType):  # a submodule imported late stays
                    del current[key]
            for key, value in names.items():
                if current.get(key, _MISSING) is not value:
                    current[key] = value
        for container, contents in self.containers:
            try:
                unchanged = bool(container == contents)
            except Exception:  # elements that refuse comparison: put them back regardless
                unchanged = False
            if not unchanged:
                container.clear()
                if isinstance(container, dict):
                    container.update(contents)
                elif isinstance(container, list):
                    container.extend(contents)
                else:
                    container.update(contents)
        self._clear_caches()

    def _clear_caches(self) -> None:
        for _, names in self.modules:
            for value in names.values():
                clear = getattr(value, "cache_clear", None)
                if callable(clear) and hasattr(value, "cache_info"):
                    clear()


def _ours(name: str, module: object) -> bool:
    return isinstance(module, types.ModuleType) and (name == PACKAGE or name.startswith(f"{PACKAGE}."))
