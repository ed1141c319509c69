"""Write constraints.txt: the exact versions of omsign's dependencies the tests ran with.

The project's own requirements are read from ``pyproject.toml`` (runtime and the ``test``,
``bench`` and ``ml`` extras) rather than from the installed package's metadata, which an
editable install only refreshes on reinstall; what they pull in is taken from the environment
this runs in. Tools that happen to be installed beside them are left out. ``make test``
installs with ``-c constraints.txt``; ``make constraints`` regenerates it after an upgrade has
passed ``make test-latest``.

A requirement that is missing from the environment, or installed at a version its range does
not allow, stops the script: pinning it would freeze a set the suite never ran with.
Local version labels (``torch 2.13.0+cpu``) are dropped: ``==2.13.0`` admits the local build
and the public one alike (PEP 440).
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the dev environment is 3.11; tomli is tomllib's backport
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("test", "bench", "ml")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _applies(req: Requirement, extras: tuple[str, ...]) -> bool:
    return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras))


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    raw = list(project.get("dependencies", []))
    for extra in EXTRAS:
        raw += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(r) for r in raw]


def closure(direct: list[Requirement]) -> tuple[dict[str, str], list[str]]:
    """(installed name -> version for everything ``direct`` reaches, problems with ``direct``)."""
    seen: dict[str, str] = {}
    visited: set[tuple[str, frozenset[str]]] = set()  # with extras: moto and moto[server] differ
    problems: list[str] = []
    todo: list[tuple[Requirement, bool]] = [(r, True) for r in direct if _applies(r, ())]
    while todo:
        req, is_direct = todo.pop()
        key = _norm(req.name)
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            if is_direct:
                problems.append(f"{req} is not installed")
            continue  # a transitive requirement for another platform or an unused extra
        if is_direct and not req.specifier.contains(Version(version), prereleases=True):
            problems.append(f"{req.name} {version} is installed, outside {req}")
        seen[key] = version
        if (key, frozenset(req.extras)) in visited:
            continue
        visited.add((key, frozenset(req.extras)))
        for raw in metadata.distribution(req.name).requires or []:
            sub = Requirement(raw)
            if _applies(sub, tuple(req.extras)):
                todo.append((sub, False))
    return seen, problems


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "constraints.txt"
    pins, problems = closure(project_requirements())
    if problems:
        sys.exit("freeze_constraints: the environment does not match pyproject.toml:\n  " + "\n  ".join(problems))
    lines = [
        "# Versions the test suite passed with (scripts/freeze_constraints.py; `make constraints`).",
        f"# Python {sys.version_info.major}.{sys.version_info.minor}; extras: {', '.join(EXTRAS)}.",
        *(f"{name}=={Version(version).public}" for name, version in sorted(pins.items())),
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(lines) - 2} packages)")


if __name__ == "__main__":
    main()
