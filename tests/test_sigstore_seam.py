"""The sigstore-python internals omsign relies on are all behind ``sigstore_seam`` and still
where that module expects them; a sigstore release outside the checked range fails here, loudly,
before any verification quietly changes meaning."""

from __future__ import annotations

import ast
from pathlib import Path

from oci_model_sign import sigstore_seam
from oci_model_sign.verify.trust import load_trusted_root

PACKAGE = Path(sigstore_seam.__file__).resolve().parent


def test_installed_sigstore_is_in_the_range_the_seam_was_checked_against() -> None:
    low, high = sigstore_seam.CHECKED_RANGE
    version = sigstore_seam.sigstore_version()
    assert low <= version < high, (
        f"sigstore {'.'.join(map(str, version))} is outside the range {low}..{high} that "
        f"oci_model_sign/sigstore_seam.py was checked against (last: {sigstore_seam.CHECKED_WITH}): "
        "re-read every function there against the new release, then widen CHECKED_RANGE "
        "and the bound in pyproject.toml"
    )


def test_every_internal_the_seam_uses_is_present() -> None:
    problems = sigstore_seam.check_seam()
    assert not problems, "sigstore moved internals omsign uses: " + "; ".join(problems)


def test_embedded_trust_files_are_where_the_seam_reads_them() -> None:
    for name in ("trusted_root.json", "signing_config.v0.2.json"):
        assert sigstore_seam.embedded_trust_file(name).is_file()
        assert sigstore_seam.embedded_trust_file(name, staging=True).is_file()


def test_trusted_root_logs_are_readable_through_the_seam() -> None:
    logs = sigstore_seam.trusted_root_tlogs(load_trusted_root())
    assert any(log.base_url == "https://rekor.sigstore.dev" for log in logs)
    assert all(len(log.log_id_hex) == 64 and log.public_key_der for log in logs)


def test_raw_statement_keeps_the_exact_bytes() -> None:
    data = b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"00"}}]}'
    assert sigstore_seam.raw_statement(data)._contents == data


def _private_uses(path: Path) -> list[str]:
    """``sigstore._internal`` imports and uses of the private attributes the seam reaches
    (``_inner``, ``_contents``, ``_from_v1_response``, ``_tlogs``) in one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sigstore._"):
            found.append(f"import {node.module}")
        if isinstance(node, ast.Attribute) and node.attr in ("_inner", "_contents", "_from_v1_response", "_store", "_tlogs"):
            found.append(f".{node.attr}")
    return found


def test_no_module_but_the_seam_touches_sigstore_internals() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): uses
        for path in PACKAGE.rglob("*.py")
        if path.name != "sigstore_seam.py" and (uses := _private_uses(path))
    }
    assert offenders == {}
