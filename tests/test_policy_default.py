"""The trust policy file used by default: ``pull``, ``verify``, ``copy --verify``, ``pull --cache``.

Against the real registry: models pushed and signed with the real ``omsign``, a policy file
written the way an operator writes one, and the commands read the way a user reads them
(exit code, the one-line error, what landed in DEST).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import assert_cli_error, assert_ok, keypair, other_keypair, run_cli, sign
from tests.registry_server import RegistryServer

__all__ = ["keypair", "other_keypair"]  # fixtures used by name


def write_policy(path: Path, text: str) -> Path:
    path.write_text("apiVersion: omsign/v1\n" + text)
    return path


def key_scope(scope: str, pub: Path, *, mode: str = "enforce") -> str:
    return (
        "scopes:\n"
        f"  {scope}:\n"
        f"    mode: {mode}\n"
        "    authorities:\n"
        f"      - {{name: release, key: {{path: {pub}}}, ignoreTlog: true}}\n"
    )


def push(model: Path, ref: str) -> str:
    result = run_cli("push", model, ref)
    assert_ok(result)
    return result.stdout.strip()


@pytest.fixture
def signed_and_unsigned(model: Path, repo: str, keypair: tuple[Path, Path]) -> tuple[str, str]:
    """``repo:signed`` signed by ``keypair`` (no tlog), ``repo:unsigned`` not signed at all."""
    push(model, f"{repo}:signed")
    sign(f"{repo}:signed", keypair[0])
    (model / "extra.txt").write_text("another model\n")
    push(model, f"{repo}:unsigned")
    return f"{repo}:signed", f"{repo}:unsigned"


def test_pull_verifies_by_the_repositorys_key_scope_without_verify(
    signed_and_unsigned: tuple[str, str], repo: str, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", key_scope(repo, keypair[1]))
    result = run_cli("pull", signed_and_unsigned[0], tmp_path / "out", env={"OMSIGN_POLICY": str(policy)})
    assert_ok(result)
    assert "verified" in result.stderr
    assert (tmp_path / "out" / "model.sig").is_file()  # the model-signing bundle verified too


def test_pull_in_enforce_mode_refuses_an_unsigned_model_and_leaves_dest_untouched(
    signed_and_unsigned: tuple[str, str], repo: str, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", key_scope(repo, keypair[1]))
    dest = tmp_path / "out"
    result = run_cli("pull", "--policy", policy, signed_and_unsigned[1], dest)
    assert_cli_error(result, 8, "refused by policy", "no verified signature")
    assert not dest.exists()


def test_pull_in_warn_mode_lets_an_unsigned_model_through_with_a_warning(
    signed_and_unsigned: tuple[str, str], repo: str, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", key_scope(repo, keypair[1], mode="warn"))
    dest = tmp_path / "out"
    result = run_cli("pull", "--policy", policy, signed_and_unsigned[1], dest)
    assert_ok(result)
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("omsign: warning:")]
    assert len(warnings) == 1 and "warn mode, would refuse" in warnings[0]
    assert (dest / "extra.txt").is_file()
    assert not (dest / "model.sig").exists()


def test_the_user_policy_file_is_found_without_any_flag(
    signed_and_unsigned: tuple[str, str], repo: str, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    config = Path.home() / ".config" / "omsign"
    config.mkdir(parents=True)
    write_policy(config / "policy.yaml", key_scope(repo, keypair[1]))
    result = run_cli("pull", signed_and_unsigned[1], tmp_path / "out")
    assert_cli_error(result, 8, "refused by policy")


def test_policy_none_opts_out_of_the_policy_file(
    signed_and_unsigned: tuple[str, str], repo: str, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", key_scope(repo, keypair[1]))
    env = {"OMSIGN_POLICY": str(policy)}
    result = run_cli("pull", "--policy", "none", signed_and_unsigned[1], tmp_path / "out", env=env)
    assert_ok(result)
    assert "verified" not in result.stderr and (tmp_path / "out" / "extra.txt").is_file()


def test_explicit_key_flags_take_precedence_over_the_policy_file(
    signed_and_unsigned: tuple[str, str], repo: str, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", key_scope(repo, other_keypair[1]))  # would refuse
    result = run_cli(
        "pull", "--policy", policy, "--key", keypair[1], "--insecure-ignore-tlog", signed_and_unsigned[0], tmp_path / "out"
    )
    assert_ok(result)
    assert "verified" in result.stderr


def test_a_reference_no_scope_matches_is_pulled_unverified_and_says_so(
    signed_and_unsigned: tuple[str, str], keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", key_scope("registry.example.com/models", keypair[1]))
    result = run_cli("pull", "--policy", policy, signed_and_unsigned[1], tmp_path / "out")
    assert_ok(result)
    assert "no scope of" in result.stderr and "not verified by policy" in result.stderr


def test_verify_with_an_unknown_scope_is_a_usage_error(
    signed_and_unsigned: tuple[str, str], keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", key_scope("registry.example.com/models", keypair[1]))
    result = run_cli("verify", "--policy", policy, signed_and_unsigned[0])
    assert_cli_error(result, 2, "no scope of", "not verified by policy")


def test_verify_uses_the_policy_file_and_reports_the_scope(
    signed_and_unsigned: tuple[str, str], repo: str, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", key_scope(repo, keypair[1]))
    ok = run_cli("verify", "--policy", policy, signed_and_unsigned[0])
    assert_ok(ok)
    assert "satisfied by release" in ok.stderr
    refused = run_cli("verify", "--policy", policy, signed_and_unsigned[1])
    assert_cli_error(refused, 8, "refused by policy")


def test_copy_verify_uses_the_policy_file_and_writes_nothing_when_refused(
    signed_and_unsigned: tuple[str, str], repo: str, registry: RegistryServer, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", key_scope(repo, keypair[1]))
    target = f"{registry.host}/promoted/{repo.rsplit('/', 1)[1]}"
    refused = run_cli("copy", "--verify", "--policy", policy, signed_and_unsigned[1], f"{target}:v1")
    assert_cli_error(refused, 8, "refused by policy")
    assert_cli_error(run_cli("ls", target), 6)
    copied = run_cli("copy", "--verify", "--policy", policy, signed_and_unsigned[0], f"{target}:v1")
    assert_ok(copied)


def test_a_malformed_policy_is_exit_2_naming_file_and_line(signed_and_unsigned: tuple[str, str], tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: omsign/v1\ndefault:\n  authorities:\n    - name: x\n      thresold: 2\n")
    dest = tmp_path / "out"
    result = run_cli("pull", "--policy", policy, signed_and_unsigned[0], dest)
    assert_cli_error(result, 2, f"{policy}:5", "thresold")
    assert not dest.exists()
    assert_cli_error(run_cli("policy", "check", policy), 2, f"{policy}:5")


def test_policy_explain_names_the_winning_scope_and_why(repo: str, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    host = repo.split("/", 1)[0]
    text = key_scope(repo, keypair[1]) + f"  {host}:\n    reject: true\n"
    policy = write_policy(tmp_path / "policy.yaml", text)
    result = run_cli("policy", "explain", "--policy", policy, f"{repo}:v1")
    assert_ok(result)
    assert f"applies: {repo!r}, the most specific matching scope" in result.stdout
    assert "authority release: key sha256:" in result.stdout
    unknown = run_cli("policy", "explain", "--policy", policy, "registry.example.com/x:v1")
    assert_ok(unknown)
    assert "applies: nothing" in unknown.stdout and "not verified by policy" in unknown.stdout


def test_policy_help_follows_the_other_commands(tmp_path: Path) -> None:
    result = run_cli("policy", "explain", "--help")
    assert_ok(result)
    assert "Examples" in result.stdout and "omsign policy explain" in result.stdout


def test_pull_cache_twice_downloads_nothing_the_second_time(
    signed_and_unsigned: tuple[str, str], repo: str, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", key_scope(repo, keypair[1]))
    env = {"OMSIGN_POLICY": str(policy)}
    first = run_cli("pull", "--cache", "--json", signed_and_unsigned[0], env=env)
    assert_ok(first)
    doc = json.loads(first.stdout)
    path = Path(doc["path"])
    assert path.is_dir() and doc["downloadedBytes"] > 0 and doc["verification"]["ok"] is True
    assert doc["policy"]["scope"] == repo and doc["policy"]["allowed"] is True
    second = run_cli("pull", "--cache", signed_and_unsigned[0], env=env)
    assert_ok(second)
    assert second.stdout.strip() == str(path)
    assert "0 files fetched" in second.stderr
    refused = run_cli("pull", "--cache", signed_and_unsigned[1], env=env)
    assert_cli_error(refused, 8, "refused by policy")


def test_pull_cache_without_any_policy_is_refused(signed_and_unsigned: tuple[str, str]) -> None:
    result = run_cli("pull", "--cache", signed_and_unsigned[0])
    assert_cli_error(result, 2, "no policy given for a verified load")


def test_pull_verify_without_flags_or_policy_file_is_a_usage_error(signed_and_unsigned: tuple[str, str], tmp_path: Path) -> None:
    result = run_cli("pull", "--verify", signed_and_unsigned[0], tmp_path / "out")
    assert_cli_error(result, 2, "no policy")

