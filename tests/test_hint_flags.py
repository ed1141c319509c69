"""Every ``--flag`` an error message or hint names is an option some ``omsign`` command has.

A hint that names a flag which does not exist sends the user to ``--help`` and back with
nothing; the messages are read from the package's source (every ``hint=`` and the message of
every exception raised), the options from the command tree the CLI really builds.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main

from oci_model_sign.cli import app

PACKAGE = Path(__file__).resolve().parent.parent / "oci_model_sign"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")

# Flags of other tools, named together with the tool in the same message.
FOREIGN = {"--login": "pkcs11-tool", "--allow_symlinks": "model_signing"}



def _strings(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.JoinedStr):
        yield "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}" for v in node.values)
    elif isinstance(node, ast.BinOp):
        yield from _strings(node.left)
        yield from _strings(node.right)
    elif isinstance(node, ast.IfExp):
        yield from _strings(node.body)
        yield from _strings(node.orelse)


def _messages() -> Iterator[tuple[str, str]]:
    """(``file:line``, text) of every hint and exception message in the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and "HINT" in t.id for t in node.targets
            ):  # hint templates such as LOGIN_HINT
                for text in _strings(node.value):
                    yield f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", text
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            texts = [t for kw in node.keywords if kw.arg == "hint" for t in _strings(kw.value)]
            if name.endswith(("Error", "Rejected", "Exception", "Lost")) and node.args:
                texts.extend(_strings(node.args[0]))
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            for text in texts:
                yield where, text


def _named_flags() -> dict[str, list[tuple[str, str]]]:
    named: dict[str, list[tuple[str, str]]] = {}
    for where, text in _messages():
        for flag in FLAG.findall(text):
            if FOREIGN.get(flag, "\0") in text:
                continue
            named.setdefault(flag, []).append((where, text))
    return named


def _cli_options() -> set[str]:
    found: set[str] = set()

    def walk(command: object) -> None:
        for param in getattr(command, "params", []):
            found.update(o for o in [*param.opts, *param.secondary_opts] if o.startswith("--"))
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    found.add("--help")
    return found


NAMED = _named_flags()


def test_the_scan_finds_the_messages_it_checks() -> None:
    """The extractor sees real hints (a scan that finds nothing would pass vacuously)."""
    assert {"--key", "--password-stdin", "--trust-config", "--force"} <= set(NAMED)


@pytest.mark.parametrize("flag", sorted(NAMED))
def test_every_flag_named_in_a_message_exists(flag: str) -> None:
    options = _cli_options()
    assert flag in options, f"{flag} is named at {NAMED[flag]} but no omsign command has it"
