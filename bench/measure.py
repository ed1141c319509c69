"""Run one command and measure what it cost: wall time, CPU of its whole process tree, peak RSS.

Why not ``/usr/bin/time``: it reports the largest single process, but skopeo and some Python
tools run helpers, so we sum the RSS of the whole tree (the child and every descendant) by
walking ``/proc`` every ~20 ms. CPU comes from ``os.wait4`` on the child: the kernel's rusage
of the child plus every descendant it reaped, i.e. the whole tree. The registry is a separate
process started by the harness, so its CPU and memory are never counted for any tool.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")
POLL_SECONDS = 0.02


@dataclass
class Measurement:
    """One run of one command. ``ok`` False keeps the stderr tail: failures are reported, not hidden."""

    argv: list[str]
    ok: bool
    returncode: int
    wall_s: float
    cpu_user_s: float
    cpu_sys_s: float
    peak_rss_tree_mb: float  # polled sum over the process tree
    max_rss_single_mb: float  # kernel's ru_maxrss: the largest single process of the tree
    stdout_tail: str = ""
    stderr_tail: str = ""
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["cpu_s"] = round(self.cpu_s, 4)
        return d


def _ppid_map() -> dict[int, int]:
    """pid -> parent pid for every process (this kernel has no /proc/PID/task/TID/children)."""
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: split after the last ')'
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) > 1:
            out[int(name)] = int(rest[1])
    return out


def _tree(root: int) -> list[int]:
    parents = _ppid_map()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    seen, stack = [], [root]
    while stack:
        pid = stack.pop()
        seen.append(pid)
        stack.extend(children.get(pid, []))
    return seen


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(root: int) -> int:
    """Resident memory of ``root`` and all its descendants, in bytes."""
    return sum(_rss_bytes(pid) for pid in _tree(root))


TICK = os.sysconf("SC_CLK_TCK")


def system_busy_s() -> float:
    """CPU seconds all cores spent not idle since boot (user, nice, system, irq, softirq, steal)."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def process_cpu_s(pid: int) -> float:
    """user+sys CPU seconds of one live process (the registry), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0.0
    rest = stat[stat.rfind(b")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / TICK


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


def run(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800.0,
    input_bytes: bytes | None = None,
    registry_pid: int | None = None,
) -> Measurement:
    """Run ``argv`` to completion, sampling its process tree; never raises for a failing command.

    With ``registry_pid`` the registry's CPU during the run is recorded too (for information: it
    is not the tool's), and so is the CPU everything else on the machine used meanwhile
    (``other_cpu_s``: system busy time minus tool, registry and this harness), a noise indicator.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with tempfile.TemporaryDirectory(prefix="omsign-bench-io-") as io_dir:
        out_path, err_path = Path(io_dir, "stdout"), Path(io_dir, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            busy0, self0 = system_busy_s(), sum(os.times()[:2])
            reg0 = process_cpu_s(registry_pid) if registry_pid else 0.0
            start = time.perf_counter()
            try:
                proc = subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    env=full_env,
                    stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                )
            except OSError as exc:
                return Measurement(list(argv), False, -1, 0.0, 0.0, 0.0, 0.0, 0.0, stderr_tail=str(exc))
            if input_bytes is not None and proc.stdin is not None:
                proc.stdin.write(input_bytes)
                proc.stdin.close()
            peak = 0
            timed_out = False
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    break
                peak = max(peak, tree_rss(proc.pid))
                if time.perf_counter() - start > timeout:
                    timed_out = True
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(POLL_SECONDS)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            reg_cpu = (process_cpu_s(registry_pid) - reg0) if registry_pid else 0.0
            busy = system_busy_s() - busy0
            own = sum(os.times()[:2]) - self0
            tool_cpu = usage.ru_utime + usage.ru_stime
            extra = {"system_busy_cpu_s": round(busy, 2), "harness_cpu_s": round(own, 2),
                     "other_cpu_s": round(max(0.0, busy - tool_cpu - reg_cpu - own), 2)}
            if registry_pid:
                extra["registry_cpu_s"] = round(reg_cpu, 2)
        rc = proc.returncode
        return Measurement(
            argv=list(argv),
            ok=(rc == 0 and not timed_out),
            returncode=rc,
            wall_s=round(wall, 4),
            cpu_user_s=round(usage.ru_utime, 4),
            cpu_sys_s=round(usage.ru_stime, 4),
            peak_rss_tree_mb=round(peak / 2**20, 2),
            max_rss_single_mb=round(usage.ru_maxrss / 1024, 2),
            stdout_tail=_tail(out_path),
            stderr_tail=_tail(err_path),
            timed_out=timed_out,
            extra=extra,
        )


if __name__ == "__main__":  # a quick self-check: python bench/measure.py CMD ARGS...
    import json
    import sys

    print(json.dumps(run(sys.argv[1:]).to_json(), indent=2))
