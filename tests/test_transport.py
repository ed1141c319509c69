"""The HTTP layer: fast failure where nobody listens, TLS trust, typed errors, shared sessions."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from oci_model_sign import api
from oci_model_sign.errors import InputError, NotFoundError, RegistryError
from oci_model_sign.reference import parse_reference
from oci_model_sign.store.base import BlobSource, StoreOptions
from oci_model_sign.store.registry import RegistryStore
from oci_model_sign.store.session import RegistrySession
from oci_model_sign.store.transport import (
    READ_SIZE,
    LargeReadBackend,
    RegistryHTTPError,
    build_client,
    parse_error_body,
)
from tests import registry_server
from tests.helpers import assert_cli_error, assert_ok, make_model, run_cli, snapshot
from tests.tls_certs import ServerCertificate, make_server_certificate

# -- a refused connection ---------------------------------------------------------------------------


def test_refused_connection_fails_at_once_with_one_line(tmp_path: Path) -> None:
    """Nothing listens on the port: exit 4 within 2 s (startup included), saying so, no retries."""
    port = registry_server.free_port()
    out = tmp_path / "dest"
    started = time.monotonic()
    res = run_cli("pull", f"127.0.0.1:{port}/nothing/here:v1", out, env={"OMSIGN_RETRIES": "5"})
    elapsed = time.monotonic() - started
    assert_cli_error(res, 4, f"cannot reach 127.0.0.1:{port}", "connection refused", "registry is running")
    assert elapsed < 2.0, f"took {elapsed:.2f} s"
    assert not out.exists()


def test_a_registry_that_answered_once_is_retried_when_it_refuses(
    private_registry: registry_server.RegistryServer,
) -> None:
    """A restart (refused for a moment) after the registry has answered is waited out."""
    options = StoreOptions(retries=8, backoff_base=0.1, max_retry_time=30)
    with RegistryStore(parse_reference(f"{private_registry.host}/t/{uuid.uuid4().hex[:8]}"), options) as store:
        data = b"survives a restart"
        digest = store.push_blob(BlobSource(size=len(data), data=data)).digest
        private_registry.process.kill()
        private_registry.process.wait()
        restarter = threading.Timer(0.5, private_registry.restart)
        restarter.start()
        try:
            assert store.blob_exists(digest)
        finally:
            restarter.join()


# -- typed registry errors ----------------------------------------------------------------------------


def test_unknown_manifest_is_a_typed_not_found_with_the_registry_code(repo: str) -> None:
    with RegistryStore(parse_reference(repo), StoreOptions()) as store, pytest.raises(NotFoundError) as info:
        store.get_manifest("no-such-tag")
    err = info.value
    assert isinstance(err, RegistryHTTPError)
    assert (err.status, err.codes) == (404, ("MANIFEST_UNKNOWN",))
    assert err.exit_code == 6


def test_refused_manifest_carries_status_and_every_code(repo: str) -> None:
    with RegistryStore(parse_reference(repo), StoreOptions()) as store, pytest.raises(RegistryHTTPError) as info:
        store.put_manifest(b'{"schemaVersion": 2, "mediaType": "nonsense"', "application/vnd.oci.image.manifest.v1+json")
    assert info.value.status == 400
    assert info.value.codes and all(code.isupper() for code in info.value.codes)
    assert info.value.exit_code == 4


def test_error_body_codes_are_parsed_in_order_and_junk_has_none() -> None:
    body = b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"},{"code":"DIGEST_INVALID"}]}'
    assert parse_error_body(body) == (("BLOB_UNKNOWN", "DIGEST_INVALID"), "BLOB_UNKNOWN: blob unknown")
    assert parse_error_body(b"<html>502</html>") == ((), "")
    assert parse_error_body(b'{"errors": "no"}') == ((), "")


# -- one session per host ------------------------------------------------------------------------------


def test_repositories_on_one_host_share_the_client_and_what_auth_learnt(
    auth_registry: registry_server.RegistryServer,
) -> None:
    """After one repository met the Basic challenge, another on the same host sends credentials
    on its first request: no second 401."""
    options = StoreOptions(username=auth_registry.username, password=auth_registry.password)
    first_ref = parse_reference(f"{auth_registry.host}/shared/a")
    statuses: list[int] = []
    with RegistrySession.for_reference(first_ref, options) as session:
        session.client.event_hooks["response"].append(lambda r: statuses.append(r.status_code))
        a = session.repository(first_ref)
        b = session.repository(parse_reference(f"{auth_registry.host}/shared/b"))
        assert a.session is b.session
        data = b"shared session"
        a.push_blob(BlobSource(size=len(data), data=data))
        assert statuses.count(401) == 1
        before = len(statuses)
        assert not b.blob_exists("sha256:" + "0" * 64)
        assert 401 not in statuses[before:]
        b.close()  # a view never closes the session it was given
        assert a.blob_exists(a.push_blob(BlobSource(size=len(data), data=data)).digest)


def test_a_session_refuses_a_repository_on_another_host(registry: registry_server.RegistryServer) -> None:
    ref = parse_reference(f"{registry.host}/x/y")
    with RegistrySession.for_reference(ref, StoreOptions()) as session, pytest.raises(ValueError):
        session.repository(parse_reference("other.example.com/x/y"))


def test_large_socket_reads_are_a_setting_of_the_client_not_a_global_patch() -> None:
    from httpcore._sync.http11 import HTTP11Connection

    with build_client(timeout=5, pool_size=4, read_size=2 * READ_SIZE) as client:
        backend = client._transport._pool._network_backend  # type: ignore[attr-defined]
        assert isinstance(backend, LargeReadBackend)
        assert backend.read_size == 2 * READ_SIZE
    assert HTTP11Connection.READ_NUM_BYTES == 64 * 1024


# -- TLS ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return make_server_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_registry(tls_certificate: ServerCertificate) -> Iterator[registry_server.RegistryServer]:
    """A registry speaking only HTTPS, with a certificate from a CA nobody trusts by default."""
    if not registry_server.available():
        pytest.skip("docker-registry not installed")
    c = tls_certificate
    server = registry_server.start(tls=(c.ca_path, c.cert_path, c.key_path))
    yield server
    server.stop()


def _tls_ref(server: registry_server.RegistryServer) -> str:
    return f"{server.host}/tls/{uuid.uuid4().hex[:10]}:v1"


def test_untrusted_registry_certificate_says_to_use_ca_file_or_insecure(
    tls_registry: registry_server.RegistryServer, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model", {"w.bin": 1000})
    started = time.monotonic()
    res = run_cli("push", "--no-plain-http", model, _tls_ref(tls_registry))
    assert_cli_error(res, 4, "TLS certificate", tls_registry.host, "--ca-file FILE", "--insecure")
    assert time.monotonic() - started < 10  # verification failures are not retried


def test_ssl_cert_file_is_trusted_for_push_and_pull(
    tls_registry: registry_server.RegistryServer, tls_certificate: ServerCertificate, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model", {"w.bin": 200_000, "config.json": b"{}"})
    ref = _tls_ref(tls_registry)
    env = {"SSL_CERT_FILE": str(tls_certificate.ca_path)}
    assert_ok(run_cli("push", "--no-plain-http", model, ref, env=env))
    out = tmp_path / "out"
    assert_ok(run_cli("pull", "--no-plain-http", ref, out, env=env))
    assert snapshot(out) == snapshot(model)


def test_ca_file_option_is_trusted(
    tls_registry: registry_server.RegistryServer, tls_certificate: ServerCertificate, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model", {"w.bin": 5000})
    ref = _tls_ref(tls_registry)
    options = StoreOptions(plain_http=False, ca_file=str(tls_certificate.ca_path))
    api.push(model, ref, options=options, use_cache=False)
    out = tmp_path / "out"
    api.pull(ref, out, options=options)
    assert snapshot(out) == snapshot(model)


def test_ca_file_wins_over_ssl_cert_file(
    tls_registry: registry_server.RegistryServer,
    tls_certificate: ServerCertificate,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = make_server_certificate(tmp_path / "other")
    monkeypatch.setenv("SSL_CERT_FILE", str(other.ca_path))
    ref = parse_reference(_tls_ref(tls_registry))
    with RegistryStore(ref, StoreOptions(plain_http=False)) as store, pytest.raises(RegistryError, match="TLS certificate"):
        store.check_auth()
    with RegistryStore(ref, StoreOptions(plain_http=False, ca_file=str(tls_certificate.ca_path))) as store:
        store.check_auth()


def test_insecure_skips_verification(tls_registry: registry_server.RegistryServer) -> None:
    with RegistryStore(parse_reference(_tls_ref(tls_registry)), StoreOptions(plain_http=False, insecure=True)) as s:
        s.check_auth()


def test_https_to_a_plain_http_registry_says_to_pass_plain_http(repo: str) -> None:
    store = RegistryStore(parse_reference(repo), StoreOptions(plain_http=False))
    with store, pytest.raises(RegistryError, match="TLS handshake") as info:
        store.check_auth()
    assert info.value.hint is not None and "--plain-http" in info.value.hint


def test_unreadable_ca_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--ca-file"):
        RegistryStore(parse_reference("registry.example.com/a/b"), StoreOptions(ca_file=str(tmp_path / "none.pem")))


def test_plain_http_to_an_https_registry_says_to_pass_no_plain_http(
    tls_registry: registry_server.RegistryServer, tmp_path: Path
) -> None:
    res = run_cli("pull", f"{tls_registry.host}/tls/absent:v1", tmp_path / "out")
    assert_cli_error(res, 4, "speaks HTTPS", "--no-plain-http")
