"""The CLI's building blocks: option groups expanded into flags, and the ``--json`` key style."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from oci_model_sign.cli_options import OptionGroup, RegistryArgs, grouped
from oci_model_sign.cli_output import camel, camel_keys, document


@dataclasses.dataclass
class _Colour(OptionGroup):
    colour: Annotated[str, typer.Option("--colour", help="A colour.", rich_help_panel="Output")] = "red"
    loud: Annotated[bool, typer.Option("--loud", help="Shout.", rich_help_panel="Output")] = False


def test_a_group_parameter_becomes_its_options_and_comes_back_as_one_object() -> None:
    seen: list[_Colour] = []

    def paint(name: Annotated[str, typer.Argument(help="Who.")], *, look: _Colour) -> None:
        seen.append(look)

    command = grouped(paint)
    assert list(inspect.signature(command).parameters) == ["name", "colour", "loud"]
    app = typer.Typer()
    app.command()(command)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["paint", "bob", "--colour", "blue", "--loud"])
    assert result.exit_code == 0, result.output
    assert seen == [_Colour(colour="blue", loud=True)]


def test_two_groups_defining_the_same_option_are_refused_when_the_command_is_built() -> None:
    def clash(*, a: RegistryArgs, b: RegistryArgs) -> None:
        return None

    with pytest.raises(TypeError, match="used twice"):
        grouped(clash)


def test_json_keys_become_camel_case_but_annotation_keys_stay_as_written() -> None:
    value = {
        "subject_digest": "sha256:x",
        "accepted": {"predicate_type": "p", "annotations": {"build_id": "7"}},
        "candidates": [{"predicate_type": "q"}],
        "manifest": {"schema_version": 2},
    }
    assert camel_keys(value) == {
        "subjectDigest": "sha256:x",
        "accepted": {"predicateType": "p", "annotations": {"build_id": "7"}},
        "candidates": [{"predicateType": "q"}],
        "manifest": {"schema_version": 2},
    }
    assert camel("uploadedBytes") == "uploadedBytes"


def test_a_json_document_starts_with_its_schema_version() -> None:
    assert list(document({"digest": "d"})) == ["schemaVersion", "digest"]
