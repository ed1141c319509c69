"""Mounting instead of uploading: the blob-location cache and the target tag's manifest as hints.

Pushes go to the real registry and report ``uploadedBytes`` in ``--json``; a hint that is
wrong (a blob deleted where the cache says it is) must still give a correct push.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from oci_model_sign.digest import sha256_digest
from tests.helpers import assert_ok, make_model, run_cli
from tests.registry_server import RegistryServer
from tests.test_copy import files_of, new_repo

SHARDS = {f"shard-{i}.safetensors": 2_000_000 for i in range(3)} | {"config.json": b'{"arch":"m"}\n'}


def push(model: Path, ref: str, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli("push", model, ref, "--json", *extra, env=env)
    assert_ok(result)
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def total_size(model: Path) -> int:
    return sum(p.stat().st_size for p in model.rglob("*") if p.is_file())


def test_second_repository_push_uploads_nothing(registry: RegistryServer, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model", SHARDS)
    first = push(model, f"{new_repo(registry)}:v1")
    assert first["uploadedBytes"] == total_size(model)
    second_ref = f"{new_repo(registry)}:v1"
    second = push(model, second_ref)
    assert second["uploadedBytes"] == 0
    assert not any(layer["uploaded"] for layer in second["layers"])
    assert second["digest"] == first["digest"]
    dest = tmp_path / "out"
    assert_ok(run_cli("pull", second_ref, dest))
    assert files_of(dest) == files_of(model)


def test_fine_tune_with_one_changed_shard_uploads_only_that_shard(registry: RegistryServer, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model", SHARDS)
    push(model, f"{new_repo(registry)}:base")
    changed = model / "shard-1.safetensors"
    changed.write_bytes(b"fine-tuned" + changed.read_bytes()[10:])
    tuned_ref = f"{new_repo(registry)}:tuned"
    tuned = push(model, tuned_ref)
    assert tuned["uploadedBytes"] == changed.stat().st_size
    assert [layer["path"] for layer in tuned["layers"] if layer["uploaded"]] == ["shard-1.safetensors"]
    dest = tmp_path / "out"
    assert_ok(run_cli("pull", tuned_ref, dest))
    assert files_of(dest) == files_of(model)


def test_stale_cache_entry_still_gives_a_correct_push(registry: RegistryServer, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model", SHARDS)
    first_ref = new_repo(registry)
    push(model, f"{first_ref}:v1")
    # The blob is deleted from the repository the cache remembers.
    gone = sha256_digest((model / "shard-0.safetensors").read_bytes())
    first_repo = first_ref.split("/", 1)[1]
    deleted = httpx.delete(f"{registry.url}/v2/{first_repo}/blobs/{gone}")
    assert deleted.status_code == 202, deleted.text
    second_ref = f"{new_repo(registry)}:v1"
    second = push(model, second_ref)
    assert second["uploadedBytes"] == (model / "shard-0.safetensors").stat().st_size
    dest = tmp_path / "out"
    assert_ok(run_cli("pull", second_ref, dest))
    assert files_of(dest) == files_of(model)


def test_repush_to_the_existing_tag_without_a_digest_cache_uploads_nothing(
    registry: RegistryServer, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model", {"big.safetensors": 12_000_000, "small.json": b"{}"})
    ref = f"{new_repo(registry)}:v1"
    push(model, ref)
    fresh = {"XDG_CACHE_HOME": str(tmp_path / f"fresh-runner-{uuid.uuid4().hex[:6]}")}
    again = push(model, ref, env=fresh)
    assert again["uploadedBytes"] == 0
    # A changed file is still uploaded (and the new manifest is right).
    (model / "big.safetensors").write_bytes(b"changed" + (model / "big.safetensors").read_bytes()[7:])
    changed = push(model, ref, env={"XDG_CACHE_HOME": str(tmp_path / "another-runner")})
    assert changed["uploadedBytes"] == 12_000_000
    dest = tmp_path / "out"
    assert_ok(run_cli("pull", ref, dest))
    assert files_of(dest) == files_of(model)


def test_no_cache_push_neither_reads_nor_writes_the_location_cache(registry: RegistryServer, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model", SHARDS)
    push(model, f"{new_repo(registry)}:v1", "--no-cache")
    second = push(model, f"{new_repo(registry)}:v1", "--no-cache")
    assert second["uploadedBytes"] == total_size(model)


def test_copy_mounts_blobs_the_cache_saw_in_another_repository(registry: RegistryServer, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model", SHARDS)
    push(model, f"{new_repo(registry)}:v1")  # the registry holds the blobs in that repository
    layout = f"oci:{tmp_path / 'layout'}:v1"
    assert_ok(run_cli("push", model, layout))
    copied = run_cli("copy", layout, f"{new_repo(registry)}:v1", "--json")
    assert_ok(copied)
    report = json.loads(copied.stdout)
    assert report["mountedBlobs"] >= len(SHARDS)
    assert report["copiedBytes"] < 10_000  # only the config and manifest-sized blobs, if any


def test_mounts_work_on_a_registry_demanding_credentials(auth_registry: RegistryServer, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model", SHARDS)
    env = {"OMSIGN_USERNAME": str(auth_registry.username), "OMSIGN_REGISTRY_PASSWORD": str(auth_registry.password)}
    push(model, f"{new_repo(auth_registry)}:v1", env=env)
    second = push(model, f"{new_repo(auth_registry)}:v1", env=env)
    assert second["uploadedBytes"] == 0


def test_bearer_token_for_a_mount_names_the_source_repository(token_registry: RegistryServer, tmp_path: Path) -> None:
    from tests.token_server import TokenServer

    tokens = token_registry.token_server
    assert isinstance(tokens, TokenServer)
    model = make_model(tmp_path / "model", SHARDS)
    env = {"OMSIGN_USERNAME": str(token_registry.username), "OMSIGN_REGISTRY_PASSWORD": str(token_registry.password)}
    first = new_repo(token_registry)
    push(model, f"{first}:v1", env=env)
    before = len(tokens.requests)
    second = push(model, f"{new_repo(token_registry)}:v1", env=env)
    assert second["uploadedBytes"] == 0
    asked = [scope for scopes, _ in tokens.requests[before:] for scope in scopes]
    assert f"repository:{first.split('/', 1)[1]}:pull" in asked
