"""constraints.txt pins every requirement pyproject.toml names, inside its range.

``make test`` installs with ``-c constraints.txt``: a requirement added to pyproject.toml but
not pinned there would float to whatever is newest, which is what the pins exist to prevent.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from scripts.freeze_constraints import EXTRAS, project_requirements

ROOT = Path(__file__).resolve().parent.parent


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_norm(name)] = Version(version)
    return pins


REQUIREMENTS = project_requirements(ROOT / "pyproject.toml")


def test_the_extras_pinned_are_the_ones_make_test_installs() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"-c constraints.txt -e '.[{','.join(EXTRAS)}]'" in makefile


@pytest.mark.parametrize("req", REQUIREMENTS, ids=str)
def test_every_requirement_is_pinned_inside_its_range(req: Requirement) -> None:
    pins = _pins()
    assert _norm(req.name) in pins, f"{req.name} is in pyproject.toml but not in constraints.txt (make constraints)"
    assert req.specifier.contains(pins[_norm(req.name)], prereleases=True), f"{req.name}=={pins[_norm(req.name)]} is outside {req}"
