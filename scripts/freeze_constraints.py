"""Write constraints.txt: the exact versions of omsign's dependencies the tests ran with.

Only the project's own requirements (runtime, ``test`` and ``bench`` extras) and what they
pull in are listed, taken from the environment this runs in; tools that happen to be installed
beside them are left out. ``make test`` installs with ``-c constraints.txt``; ``make
constraints`` regenerates it after an upgrade has passed ``make test-latest``.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

PROJECT = "oci-model-sign"
EXTRAS = ("test", "bench")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure() -> dict[str, str]:
    """Installed name -> version for everything the project's requirements reach."""
    env = {"extra": ""}
    seen: dict[str, str] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(PROJECT, EXTRAS)]
    while todo:
        name, extras = todo.pop()
        dist = metadata.distribution(name)
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not any(
                req.marker.evaluate({**env, "extra": e}) for e in ("", *extras)
            ):
                continue
            key = _norm(req.name)
            try:
                version = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                continue  # an optional requirement for another platform
            if key not in seen:
                seen[key] = version
                todo.append((req.name, tuple(req.extras)))
    seen.pop(_norm(PROJECT), None)
    return seen


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("constraints.txt")
    lines = [
        "# Versions the test suite passed with (scripts/freeze_constraints.py; `make constraints`).",
        f"# Python {sys.version_info.major}.{sys.version_info.minor}.",
        *(f"{name}=={version}" for name, version in sorted(closure().items())),
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(lines) - 2} packages)")


if __name__ == "__main__":
    main()
