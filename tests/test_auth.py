"""Credentials and authentication against a registry demanding htpasswd Basic auth.

The Basic registry here is distribution with htpasswd; the Bearer flow against a real token
service is in ``test_bearer_auth``, and the challenge parser and token cache have unit tests below.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import uuid
from pathlib import Path

import pytest

from oci_model_sign.errors import AuthError
from oci_model_sign.reference import parse_reference
from oci_model_sign.store.auth import (
    TokenCache,
    parse_challenge,
    parse_token_response,
    repository_scope,
)
from oci_model_sign.store.base import BlobSource, StoreOptions
from oci_model_sign.store.credentials import (
    Credentials,
    credentials_from_config,
    docker_config_path,
    explicit_credentials,
    normalize_server,
    remove_credentials,
    save_credentials,
)
from oci_model_sign.store.registry import RegistryStore
from tests import registry_server


def auth_store(server: registry_server.RegistryServer, **options: object) -> RegistryStore:
    ref = parse_reference(f"{server.host}/auth/{uuid.uuid4().hex[:10]}")
    return RegistryStore(ref, StoreOptions(**options))  # type: ignore[arg-type]


def write_config(content: dict[str, object]) -> Path:
    path = docker_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def push_something(store: RegistryStore) -> str:
    data = os.urandom(64)
    return store.push_blob(BlobSource(size=len(data), data=data)).digest


# -- against the registry -------------------------------------------------------------------


def test_basic_auth_with_explicit_credentials(auth_registry: registry_server.RegistryServer) -> None:
    with auth_store(auth_registry, username=auth_registry.username, password=auth_registry.password) as store:
        digest = push_something(store)
        assert store.blob_exists(digest)


def test_wrong_password_is_an_auth_error_with_a_hint(auth_registry: registry_server.RegistryServer) -> None:
    store = auth_store(auth_registry, username=auth_registry.username, password="wrong")
    with store, pytest.raises(AuthError) as info:
        store.resolve("latest")
    err = info.value
    assert "refused the credentials" in err.message
    assert "\n" not in err.one_line()
    assert err.hint is not None and f"omsign login {auth_registry.host}" in err.hint
    assert "--password-stdin" in err.hint


def test_refused_credentials_name_the_variable_they_came_from(
    auth_registry: registry_server.RegistryServer, tmp_path: Path
) -> None:
    """Credentials set through OMSIGN_USERNAME are named so, not as a --username never typed."""
    from tests.helpers import make_model, run_cli

    model = make_model(tmp_path / "m")
    env = {"OMSIGN_USERNAME": str(auth_registry.username), "OMSIGN_REGISTRY_PASSWORD": "wrong"}
    res = run_cli("push", model, f"{auth_registry.host}/auth/{uuid.uuid4().hex[:8]}:v1", env=env)
    assert res.returncode == 5, res.stderr
    assert "(from OMSIGN_USERNAME and OMSIGN_REGISTRY_PASSWORD)" in res.stderr
    assert "from --username" not in res.stderr


def test_refused_credentials_name_the_flag_they_came_from(auth_registry: registry_server.RegistryServer, tmp_path: Path) -> None:
    from tests.helpers import make_model, run_cli

    model = make_model(tmp_path / "m")
    ref = f"{auth_registry.host}/auth/{uuid.uuid4().hex[:8]}:v1"
    res = run_cli("push", model, ref, "--username", str(auth_registry.username), "--password-stdin", input="wrong\n")
    assert res.returncode == 5, res.stderr
    assert "(from --username and --password-stdin)" in res.stderr


def test_refused_login_names_the_flag_even_with_a_username_variable_set(
    auth_registry: registry_server.RegistryServer,
) -> None:
    from tests.helpers import run_cli

    env = {"OMSIGN_USERNAME": "someone-else"}
    res = run_cli("login", auth_registry.host, "--username", str(auth_registry.username), "--password-stdin",
                  input="wrong\n", env=env)
    assert res.returncode == 5, res.stderr
    assert "(from --username and --password-stdin)" in res.stderr


def test_explicit_credentials_prefer_flags_and_name_their_source() -> None:
    env = {"OMSIGN_USERNAME": "env-user", "OMSIGN_REGISTRY_PASSWORD": "env-pw"}
    assert explicit_credentials("u", "p", environ=env) == ("u", "p", "--username and --password-stdin")
    assert explicit_credentials("u", None, environ=env) == ("u", "env-pw", "--username and OMSIGN_REGISTRY_PASSWORD")
    assert explicit_credentials(None, None, environ={"OMSIGN_USERNAME": "e"}) == ("e", None, "OMSIGN_USERNAME")
    assert explicit_credentials(None, None, environ={}) == (None, None, None)


def test_api_credentials_without_a_source_are_named_options(auth_registry: registry_server.RegistryServer) -> None:
    store = auth_store(auth_registry, username=auth_registry.username, password="wrong")
    with store, pytest.raises(AuthError, match=r"\(from options\)"):
        store.resolve("latest")


def test_login_check_refuses_wrong_credentials(auth_registry: registry_server.RegistryServer) -> None:
    with auth_store(auth_registry, username=auth_registry.username, password=auth_registry.password) as good:
        good.check_auth()
    bad = auth_store(auth_registry, username=auth_registry.username, password="nope")
    with bad, pytest.raises(AuthError, match="refused"):
        bad.check_auth()


def test_no_credentials_against_auth_registry_is_an_auth_error(
    auth_registry: registry_server.RegistryServer,
) -> None:
    with auth_store(auth_registry) as store, pytest.raises(AuthError, match="no credentials were found"):
        store.blob_exists("sha256:" + "0" * 64)


def test_docker_config_auths_entry_is_used(auth_registry: registry_server.RegistryServer) -> None:
    token = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode()).decode()
    write_config({"auths": {f"http://{auth_registry.host}": {"auth": token}}})
    with auth_store(auth_registry) as store:
        assert store.blob_exists(push_something(store))


def test_explicit_docker_config_path_is_used(
    auth_registry: registry_server.RegistryServer, tmp_path: Path
) -> None:
    config = tmp_path / "elsewhere" / "config.json"
    save_credentials(auth_registry.host, auth_registry.username or "", auth_registry.password or "", config)
    with auth_store(auth_registry, docker_config=config.parent) as store:
        assert store.blob_exists(push_something(store))


def fake_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, username: str, secret: str) -> Path:
    """A ``docker-credential-test`` program on PATH that logs the server it was asked about."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "helper.log"
    script = bindir / "docker-credential-test"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "server = sys.stdin.read().strip()\n"
        f"open({str(log)!r}, 'a').write(sys.argv[1] + ' ' + server + '\\n')\n"
        f"print(json.dumps({{'ServerURL': server, 'Username': {username!r}, 'Secret': {secret!r}}}))\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_credential_helper_is_used(
    auth_registry: registry_server.RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = fake_helper(tmp_path, monkeypatch, auth_registry.username or "", auth_registry.password or "")
    write_config({"credHelpers": {auth_registry.host: "test"}})
    with auth_store(auth_registry) as store:
        assert store.blob_exists(push_something(store))
    assert log.read_text().splitlines() == [f"get {auth_registry.host}"]


def test_creds_store_is_used_when_no_entry_matches(
    auth_registry: registry_server.RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_helper(tmp_path, monkeypatch, auth_registry.username or "", auth_registry.password or "")
    write_config({"credsStore": "test"})
    with auth_store(auth_registry) as store:
        assert store.blob_exists(push_something(store))


def test_anonymous_registry_never_runs_a_helper(
    registry: registry_server.RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = fake_helper(tmp_path, monkeypatch, "u", "p")
    write_config({"credsStore": "test"})
    with RegistryStore(parse_reference(f"{registry.host}/anon/x"), StoreOptions()) as store:
        push_something(store)
    assert not log.exists()


# -- docker config --------------------------------------------------------------------------


def test_save_credentials_writes_a_private_auths_entry(tmp_path: Path) -> None:
    config = tmp_path / "d" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"credHelpers": {"gcr.io": "gcloud"}, "auths": {"other.io": {"auth": "eDp5"}}}))
    save_credentials("reg.example.com:5000", "alice", "pa:ss", config)
    content = json.loads(config.read_text())
    assert content["credHelpers"] == {"gcr.io": "gcloud"}
    assert base64.b64decode(content["auths"]["reg.example.com:5000"]["auth"]) == b"alice:pa:ss"
    assert content["auths"]["other.io"] == {"auth": "eDp5"}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert credentials_from_config("reg.example.com:5000", config) == Credentials(
        "alice", "pa:ss", source=f"docker config {config}"
    )


def test_remove_credentials_forgets_every_spelling_of_the_host(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    write = {"auths": {"https://reg.example.com/v1/": {"auth": "eDp5"}, "reg.example.com": {"auth": "eDp5"}}}
    config.write_text(json.dumps(write))
    assert remove_credentials("reg.example.com", config)
    assert json.loads(config.read_text())["auths"] == {}
    assert not remove_credentials("reg.example.com", config)


def test_docker_hub_login_uses_the_historic_key(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    save_credentials("docker.io", "bob", "pw", config)
    assert list(json.loads(config.read_text())["auths"]) == ["https://index.docker.io/v1/"]
    creds = credentials_from_config("docker.io", config)
    assert creds is not None and creds.username == "bob"


def test_identity_token_entry_is_read(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"acr.example.io": {"auth": base64.b64encode(b"00000000-0000:").decode(), "identitytoken": "refresh-me"}}}))
    creds = credentials_from_config("acr.example.io", config)
    assert creds is not None and creds.identity_token == "refresh-me"


def test_missing_config_means_no_credentials() -> None:
    assert credentials_from_config("reg.example.com") is None


def test_docker_config_env_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    assert docker_config_path() == tmp_path / "dc" / "config.json"
    assert docker_config_path(tmp_path / "x.json") == tmp_path / "x.json"


def test_server_names_normalise() -> None:
    assert normalize_server("https://Reg.Example.com:5000/v1/") == "reg.example.com:5000"
    assert normalize_server("https://index.docker.io/v1/") == "docker.io"
    assert normalize_server("registry-1.docker.io") == "docker.io"


# -- Bearer challenge and token cache (unit level: the test registry only does Basic) ----


def test_bearer_challenge_with_comma_in_scope_parses() -> None:
    header = (
        'Bearer realm="https://auth.example.io/token",service="registry.example.io",'
        'scope="repository:team/model:pull,push"'
    )
    challenge = parse_challenge(header)
    assert challenge is not None
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.example.io/token"
    assert challenge.service == "registry.example.io"
    assert challenge.scopes == ["repository:team/model:pull,push"]


def test_basic_challenge_and_escapes_parse() -> None:
    basic = parse_challenge('Basic realm="basic-realm"')
    assert basic is not None and (basic.scheme, basic.realm) == ("basic", "basic-realm")
    odd = parse_challenge('Bearer realm="a\\"b", error=insufficient_scope, scope="x y"')
    assert odd is not None
    assert odd.realm == 'a"b'
    assert odd.params["error"] == "insufficient_scope"
    assert odd.scopes == ["x", "y"]
    assert parse_challenge("") is None


def test_token_cache_is_per_scope_and_expires() -> None:
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    pull = [repository_scope("a/b")]
    push = [repository_scope("a/b", push=True)]
    cache.put("https://auth", "svc", pull, "tok-pull", 300)
    assert cache.get("https://auth", "svc", pull) == "tok-pull"
    assert cache.get("https://auth", "svc", push) is None
    assert cache.get("https://auth", "other", pull) is None
    now[0] += 295  # inside the safety margin before expiry: refetch
    assert cache.get("https://auth", "svc", pull) is None


def test_token_cache_defaults_lifetime_and_invalidates() -> None:
    now = [0.0]
    cache = TokenCache(clock=lambda: now[0])
    cache.put("r", None, ["s"], "t", None)
    now[0] += 30
    assert cache.get("r", None, ["s"]) == "t"
    cache.invalidate("r", None, ["s"])
    assert cache.get("r", None, ["s"]) is None


def test_token_response_accepts_token_or_access_token() -> None:
    assert parse_token_response(b'{"token":"a","expires_in":120}') == ("a", 120.0)
    assert parse_token_response(b'{"access_token":"b"}') == ("b", None)
    with pytest.raises(AuthError):
        parse_token_response(b'{"nothing":1}')
