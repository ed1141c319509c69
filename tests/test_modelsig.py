"""model-signing statements built from file digests equal model-signing's own."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from oci_model_sign.errors import InputError
from oci_model_sign.signing import modelsig

FILES = {
    "a/b": b"nested file",
    "a-b": b"dash file",
    "a/c/d.safetensors": b"\x00" * 1000,
    "README.md": b"# card",
    "z": b"",
    ".gitattributes": b"*.bin filter=lfs",
    ".git/config": b"[core]",
    "sub/.gitignore": b"nested gitignore is not a top-level git path",
}


def _make_folder(root: Path) -> list[tuple[str, str]]:
    digests = []
    for rel, data in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digests.append((rel, "sha256:" + hashlib.sha256(data).hexdigest()))
    return digests


def _normalized(statement: bytes) -> dict[str, Any]:
    """Parsed statement with the (unordered, frozenset-backed) ignore list sorted."""
    doc: dict[str, Any] = json.loads(statement)
    ser = doc["predicate"]["serialization"]
    if "ignore_paths" in ser:
        ser["ignore_paths"] = sorted(ser["ignore_paths"])
    return doc


def test_statement_equals_model_signing_hashing_the_folder(tmp_path: Path) -> None:
    """The key compatibility property: digests from a manifest give the statement
    model_signing computes by reading the folder (CLI defaults, signature model.sig)."""
    from google.protobuf import json_format
    from model_signing import hashing
    from model_signing._signing import signing

    model = tmp_path / "my-model"
    files = _make_folder(model)
    config = hashing.Config()  # type: ignore[no-untyped-call]
    manifest = config.set_ignored_paths(paths=["model.sig"], ignore_git_paths=True).hash(model)
    reference = json_format.MessageToJson(signing.Payload(manifest).statement.pb).encode()
    ours = modelsig.model_signing_statement("my-model", files)
    assert _normalized(ours) == _normalized(reference)


def test_statement_equals_model_signing_classes(tmp_path: Path) -> None:
    files = _make_folder(tmp_path / "m")
    ours = modelsig.model_signing_statement("m", files, ["README.md"])
    theirs = modelsig.model_signing_statement_via_library("m", files, ["README.md"])
    assert _normalized(ours) == _normalized(theirs)


def test_resources_use_component_order_not_string_order() -> None:
    d = "sha256:" + "00" * 32
    names = [n for n, _ in modelsig.model_signing_resources([("a-b", d), ("a/b", d), ("a", d)])]
    assert names == ["a", "a/b", "a-b"]


def test_root_digest_is_sha256_of_concatenated_raw_digests() -> None:
    resources = [("x", "11" * 32), ("y", "22" * 32)]
    expected = hashlib.sha256(bytes.fromhex("11" * 32) + bytes.fromhex("22" * 32)).hexdigest()
    assert modelsig.root_digest(resources) == expected


def test_statement_layout() -> None:
    d1, d2 = "sha256:" + "11" * 32, "sha256:" + "22" * 32
    doc = json.loads(modelsig.model_signing_statement("name", [("w.bin", d2), ("cfg.json", d1)]))
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == "https://model_signing/signature/v1.0"
    assert doc["subject"] == [
        {
            "name": "name",
            "digest": {"sha256": modelsig.root_digest([("", "11" * 32), ("", "22" * 32)])},
        }
    ]
    assert doc["predicate"]["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore", "model.sig"],
    }
    assert doc["predicate"]["resources"] == [
        {"name": "cfg.json", "algorithm": "sha256", "digest": "11" * 32},
        {"name": "w.bin", "algorithm": "sha256", "digest": "22" * 32},
    ]


def test_ignored_files_are_left_out_of_resources() -> None:
    d = "sha256:" + "33" * 32
    files = [(".git/HEAD", d), (".gitattributes", d), ("model.sig", d), ("keep", d), ("docs/x", d)]
    doc = json.loads(modelsig.model_signing_statement("m", files, ["docs/"]))
    assert [r["name"] for r in doc["predicate"]["resources"]] == ["keep"]
    assert "docs" in doc["predicate"]["serialization"]["ignore_paths"]


def test_without_default_ignores_nothing_is_recorded_or_dropped() -> None:
    d = "sha256:" + "44" * 32
    doc = json.loads(
        modelsig.model_signing_statement(
            "m", [(".gitattributes", d)], ignore_git_paths=False, signature_name=None
        )
    )
    assert "ignore_paths" not in doc["predicate"]["serialization"]
    assert [r["name"] for r in doc["predicate"]["resources"]] == [".gitattributes"]


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "./a", "a//b", "a/", "..", "nul\x00"])
def test_malformed_paths_are_refused(bad: str) -> None:
    with pytest.raises(InputError):
        modelsig.model_signing_statement("m", [(bad, "sha256:" + "00" * 32)])


@pytest.mark.parametrize("digest", ["sha256:XYZ", "sha512:" + "0" * 128, "00" * 32])
def test_malformed_digests_are_refused(digest: str) -> None:
    with pytest.raises(InputError):
        modelsig.model_signing_statement("m", [("f", digest)])


def test_duplicates_empty_models_and_empty_names_are_refused() -> None:
    d = "sha256:" + "00" * 32
    with pytest.raises(InputError, match="twice"):
        modelsig.model_signing_statement("m", [("f", d), ("f", d)])
    with pytest.raises(InputError, match="no files"):
        modelsig.model_signing_statement("m", [("model.sig", d)])
    with pytest.raises(InputError):
        modelsig.model_signing_statement("", [("f", d)])


def test_effective_ignore_paths_are_sorted_and_normalized() -> None:
    assert modelsig.effective_ignore_paths(["b/", "a"], ignore_git_paths=False) == [
        "a",
        "b",
        "model.sig",
    ]


def test_check_relpath_and_sort_key() -> None:
    assert modelsig.check_relpath("dir/file") == "dir/file"
    assert modelsig.sort_key("a/b/c") == ("a", "b", "c")


def test_non_ascii_paths_survive(tmp_path: Path) -> None:
    d = "sha256:" + "55" * 32
    doc = json.loads(modelsig.model_signing_statement("m", [("données/é.bin", d)]))
    assert doc["predicate"]["resources"][0]["name"] == "données/é.bin"
