"""Where the policy comes from when nobody passes one.

In order: ``--policy FILE``; ``$OMSIGN_POLICY``; ``$XDG_CONFIG_HOME/omsign/policy.yaml``
(``~/.config`` when the variable is unset or not absolute, as the XDG spec says);
``/etc/omsign/policy.yaml``. ``none`` (flag or variable) is the explicit opt-out. A policy
named explicitly (flag or variable) must exist: a typo must not silently disable checks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from ..errors import UsageError

ENV_VAR = "OMSIGN_POLICY"
SYSTEM_POLICY = Path("/etc/omsign/policy.yaml")
OPT_OUT: Literal["none"] = "none"

PolicyLocation = Path | None | Literal["none"]


def user_policy_path() -> Path:
    """``$XDG_CONFIG_HOME/omsign/policy.yaml``, else ``~/.config/omsign/policy.yaml``."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "omsign" / "policy.yaml"


def _explicit(value: str, what: str) -> Path | Literal["none"]:
    if value == OPT_OUT:
        return OPT_OUT
    path = Path(value).expanduser()
    if not path.is_file():
        raise UsageError(
            f"policy file {value!r} ({what}) does not exist",
            hint="pass an existing file, or --policy none to verify without a policy file",
        )
    return path


def find_policy(cli_value: str | None, *, system_path: Path = SYSTEM_POLICY) -> PolicyLocation:
    """The policy file to use, ``None`` when there is none, or ``"none"`` when opted out."""
    if cli_value is not None:
        if not cli_value:
            raise UsageError("--policy needs a file name (or none)")
        return _explicit(cli_value, "--policy")
    env = os.environ.get(ENV_VAR)
    if env:
        return _explicit(env, ENV_VAR)
    for candidate in (user_policy_path(), system_path):
        if candidate.is_file():
            return candidate
    return None


def searched_locations(*, system_path: Path = SYSTEM_POLICY) -> list[str]:
    """Where ``find_policy`` looks, for messages."""
    return ["--policy", f"${ENV_VAR}", str(user_policy_path()), str(system_path)]
