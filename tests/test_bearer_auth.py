"""Bearer token auth (Docker Hub, GHCR, Quay) against a real registry and a real token service."""

from __future__ import annotations

import json
from pathlib import Path

from oci_model_sign.reference import parse_reference
from oci_model_sign.store.base import BlobSource, StoreOptions
from oci_model_sign.store.session import RegistrySession
from tests.registry_server import RegistryServer
from tests.test_e2e_push_pull import assert_one_line_error, files_of, omsign
from tests.token_server import TokenServer


def creds(server: RegistryServer) -> tuple[str, ...]:
    return ("--username", str(server.username), "--password-stdin")


def test_push_and_pull_through_bearer_tokens(token_registry: RegistryServer, model: Path, tmp_path: Path) -> None:
    ref = f"{token_registry.host}/bearer/model:v1"
    pushed = omsign("push", str(model), ref, *creds(token_registry), stdin=f"{token_registry.password}\n")
    assert pushed.returncode == 0, pushed.stderr
    dest = tmp_path / "out"
    pulled = omsign("pull", ref, str(dest), *creds(token_registry), stdin=f"{token_registry.password}\n")
    assert pulled.returncode == 0, pulled.stderr
    assert files_of(dest) == files_of(model)


def test_tokens_are_cached_per_scope_not_fetched_per_request(
    token_registry: RegistryServer, model: Path
) -> None:
    tokens = token_registry.token_server
    assert isinstance(tokens, TokenServer)
    before = len(tokens.requests)
    ref = f"{token_registry.host}/bearer/cached:v1"
    pushed = omsign("push", str(model), ref, "--json", *creds(token_registry), stdin=f"{token_registry.password}\n")
    assert pushed.returncode == 0, pushed.stderr
    layers = len(json.loads(pushed.stdout)["layers"])
    fetched = len(tokens.requests) - before
    assert 1 <= fetched <= 3 < layers  # one token for the push scope serves every blob


def test_token_scope_names_the_repository_and_push(token_registry: RegistryServer, model: Path) -> None:
    tokens = token_registry.token_server
    assert isinstance(tokens, TokenServer)
    before = len(tokens.requests)
    ref = f"{token_registry.host}/bearer/scoped:v1"
    assert omsign("push", str(model), ref, *creds(token_registry), stdin=f"{token_registry.password}\n").returncode == 0
    scopes = [s for asked, _ in tokens.requests[before:] for s in asked]
    assert any(s.startswith("repository:bearer/scoped:") and "push" in s for s in scopes), scopes


def test_wrong_password_for_the_token_service_is_an_auth_error(
    token_registry: RegistryServer, model: Path, tmp_path: Path
) -> None:
    proc = omsign(
        "push", str(model), f"{token_registry.host}/bearer/denied:v1", *creds(token_registry), stdin="wrong\n"
    )
    assert_one_line_error(proc, 5)


def test_anonymous_pull_from_a_token_registry_is_an_auth_error(
    token_registry: RegistryServer, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    assert_one_line_error(omsign("pull", f"{token_registry.host}/bearer/model:v1", str(dest)), 5)
    assert not dest.exists()


def test_views_of_one_repository_on_a_session_share_its_tokens(token_registry: RegistryServer) -> None:
    """A second store opened on the session (as copy and audit do) reuses the first one's tokens."""
    tokens = token_registry.token_server
    assert isinstance(tokens, TokenServer)
    ref = parse_reference(f"{token_registry.host}/bearer/shared-session")
    options = StoreOptions(username=token_registry.username, password=token_registry.password)
    with RegistrySession.for_reference(ref, options) as session:
        fetched = []
        for data in (b"first view", b"second view"):
            before = len(tokens.requests)
            with session.repository(ref) as store:
                store.push_blob(BlobSource(size=len(data), data=data))
            fetched.append(len(tokens.requests) - before)
        assert fetched[0] >= 1
        assert fetched[1] == 0
