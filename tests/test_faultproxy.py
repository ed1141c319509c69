"""The fault proxy itself, checked with plain httpx against the real registry.

Fault tests are only as good as their faults: each test here shows one fault does what it
says (and only to the requests its rule picks), so a passing omsign test means omsign coped,
not that the fault never happened.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests import registry_server
from tests.faultproxy import Fault, FaultProxy, Rule

BLOB = os.urandom(300_000)
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


def _with_digest(location: str) -> str:
    """Keep distribution's ``_state`` query: httpx ``params=`` would replace it."""
    return f"{location}{'&' if '?' in location else '?'}digest={DIGEST}"


@pytest.fixture
def proxy(registry: registry_server.RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(registry.url) as p:
        yield p


@pytest.fixture
def blob_url(registry: registry_server.RegistryServer, proxy: FaultProxy) -> str:
    """A repository holding BLOB; returns its blob URL through the proxy."""
    repo = f"test/{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=registry.url) as c:
        r = c.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202
        r = c.put(_with_digest(r.headers["location"]), content=BLOB)
        assert r.status_code == 201
    return f"{proxy.url}/v2/{repo}/blobs/{DIGEST}"


def test_passes_requests_through_unchanged(blob_url: str) -> None:
    r = httpx.get(blob_url)
    assert r.status_code == 200
    assert r.content == BLOB


def test_records_method_path_headers_and_status(proxy: FaultProxy, blob_url: str) -> None:
    httpx.get(blob_url, headers={"X-Probe": "1"})
    httpx.head(blob_url)
    [get] = proxy.log("GET", "/blobs/")
    [head] = proxy.log("HEAD", "/blobs/")
    assert get.headers["x-probe"] == "1"
    assert get.status == 200 and head.status == 200
    assert get.path.endswith(DIGEST)


def test_reset_response_cuts_the_body_after_n_bytes(proxy: FaultProxy, blob_url: str) -> None:
    rule = proxy.add(Rule("GET", "/blobs/", Fault.RESET_RESPONSE, after=100_000))
    received = bytearray()
    with pytest.raises(httpx.TransportError), httpx.stream("GET", blob_url) as r:
        for piece in r.iter_bytes():
            received += piece
    assert 0 < len(received) <= 100_000
    assert bytes(received) == BLOB[: len(received)]
    assert rule.fired == 1
    assert httpx.get(blob_url).content == BLOB  # the rule fired its one time


def test_status_rule_answers_429_with_retry_after(proxy: FaultProxy, blob_url: str) -> None:
    proxy.add(Rule("GET", "/blobs/", Fault.STATUS, status=429, retry_after="1", times=2))
    codes = [httpx.get(blob_url) for _ in range(3)]
    assert [r.status_code for r in codes] == [429, 429, 200]
    assert codes[0].headers["retry-after"] == "1"


def test_status_burst_of_502_then_503(proxy: FaultProxy, blob_url: str) -> None:
    proxy.add(Rule("GET", "/blobs/", Fault.STATUS, status=502, times=2))
    proxy.add(Rule("GET", "/blobs/", Fault.STATUS, status=503, times=1))
    assert [httpx.get(blob_url).status_code for _ in range(4)] == [502, 502, 503, 200]


def test_corrupt_keeps_length_and_changes_bytes(proxy: FaultProxy, blob_url: str) -> None:
    proxy.add(Rule("GET", "/blobs/", Fault.CORRUPT, after=1000))
    r = httpx.get(blob_url)
    assert len(r.content) == len(BLOB)
    assert r.content[:1000] == BLOB[:1000]
    assert r.content[1000:] != BLOB[1000:]


def test_truncate_sends_fewer_bytes_than_announced(proxy: FaultProxy, blob_url: str) -> None:
    proxy.add(Rule("GET", "/blobs/", Fault.TRUNCATE, after=5000))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(blob_url)


def test_content_length_lie_shorter_gives_a_short_body(proxy: FaultProxy, blob_url: str) -> None:
    proxy.add(Rule("GET", "/blobs/", Fault.CONTENT_LENGTH, delta=-10))
    r = httpx.get(blob_url)
    assert r.headers["content-length"] == str(len(BLOB) - 10)
    assert r.content == BLOB[:-10]


def test_content_length_lie_longer_ends_early(proxy: FaultProxy, blob_url: str) -> None:
    proxy.add(Rule("GET", "/blobs/", Fault.CONTENT_LENGTH, delta=+10))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(blob_url)


def test_delay_drips_the_body_but_delivers_it(proxy: FaultProxy, blob_url: str) -> None:
    proxy.add(Rule("GET", "/blobs/", Fault.DELAY, drip_bytes=64 * 1024, drip_interval=0.01))
    pieces = 0
    data = bytearray()
    with httpx.stream("GET", blob_url) as r:
        for piece in r.iter_raw():
            pieces += 1
            data += piece
    assert bytes(data) == BLOB
    assert pieces >= 2


def test_reset_request_cuts_an_upload_and_location_points_at_the_proxy(
    proxy: FaultProxy, registry: registry_server.RegistryServer
) -> None:
    repo = f"test/{uuid.uuid4().hex[:12]}"
    proxy.add(Rule("PUT", "/blobs/uploads/", Fault.RESET_REQUEST, after=50_000))
    with httpx.Client(base_url=proxy.url) as c:
        r = c.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202
        location = r.headers["location"]
        assert location.startswith(proxy.url) or location.startswith("/")
        with pytest.raises(httpx.TransportError):
            c.put(_with_digest(location), content=BLOB)
        r = c.post(f"/v2/{repo}/blobs/uploads/")
        r = c.put(_with_digest(r.headers["location"]), content=BLOB)
        assert r.status_code == 201
    assert httpx.get(f"{registry.url}/v2/{repo}/blobs/{DIGEST}").content == BLOB


def test_chunked_request_bodies_are_forwarded(proxy: FaultProxy) -> None:
    repo = f"test/{uuid.uuid4().hex[:12]}"

    def gen() -> Iterator[bytes]:
        for i in range(0, len(BLOB), 70_000):
            yield BLOB[i : i + 70_000]

    with httpx.Client(base_url=proxy.url) as c:
        r = c.post(f"/v2/{repo}/blobs/uploads/")
        r = c.patch(r.headers["location"], content=gen())
        assert r.status_code == 202
        r = c.put(_with_digest(r.headers["location"]))
        assert r.status_code == 201
        assert c.get(f"/v2/{repo}/blobs/{DIGEST}").content == BLOB


def test_hook_runs_before_the_request_is_forwarded(proxy: FaultProxy, blob_url: str) -> None:
    seen: list[str] = []
    proxy.add(Rule("HEAD", "/blobs/", Fault.HOOK, hook=lambda req: seen.append(req.path)))
    assert httpx.head(blob_url).status_code == 200
    assert seen and seen[0].endswith(DIGEST)


def test_unreachable_upstream_answers_502() -> None:
    with FaultProxy(f"http://127.0.0.1:{registry_server.free_port()}") as p:
        assert httpx.get(f"{p.url}/v2/").status_code == 502


def test_serve_answers_with_a_generated_body(proxy: FaultProxy, blob_url: str) -> None:
    proxy.add(Rule("GET", "/blobs/", Fault.SERVE, status=200, headers={"Content-Type": "application/x-test"},
                   body=lambda: (b"ab" for _ in range(1000))))
    r = httpx.get(blob_url)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-test"
    assert r.content == b"ab" * 1000
    assert httpx.get(blob_url).content == BLOB  # once only


def test_skip_lets_the_first_matches_through(proxy: FaultProxy, blob_url: str) -> None:
    proxy.add(Rule("GET", "/blobs/", Fault.STATUS, status=503, skip=2, times=1))
    assert [httpx.get(blob_url).status_code for _ in range(4)] == [200, 200, 503, 200]
