"""Shared fixtures: real registries (plain and htpasswd), paths to testdata and the interop test vectors."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import registry_server

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "testdata"
SHARED = ROOT.parent / "shared"
INTEROP = SHARED / "interop"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's ~/.docker or omsign caches."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("OMSIGN_PASSWORD", raising=False)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    monkeypatch.delenv("OMSIGN_POLICY", raising=False)  # no policy file unless a test writes one
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)


def _memory_tmpdir(min_free: int = 2 << 30) -> str | None:
    """/dev/shm when it is a usable tmpfs with room to spare, else None (the system default).

    A session's registry holds tens of thousands of small files (one test alone pushes ten
    thousand layers); on an overlay or network disk, deleting them at the end of the session
    takes longer than many tests do. In memory it takes well under a second.
    """
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
    except OSError:
        return None
    if not os.access(shm, os.W_OK | os.X_OK) or st.f_bavail * st.f_frsize < min_free:
        return None
    return shm


def _start(auth: bool, token: bool = False) -> registry_server.RegistryServer:
    if not registry_server.available():
        if os.environ.get("CI"):
            pytest.fail("docker-registry is missing in CI: `make test` should have installed it")
        pytest.skip("docker-registry not installed")
    registry_server.TMPDIR = _memory_tmpdir()
    return registry_server.start(auth=auth, token=token)


@pytest.fixture(scope="session")
def registry() -> Iterator[registry_server.RegistryServer]:
    """A plain-HTTP registry on 127.0.0.1 with no auth, shared by the session."""
    server = _start(auth=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[registry_server.RegistryServer]:
    """A registry demanding Basic credentials (``server.username``/``server.password``)."""
    server = _start(auth=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry() -> Iterator[registry_server.RegistryServer]:
    """A registry demanding Bearer tokens from its token service (Docker Hub's scheme)."""
    server = _start(auth=False, token=True)
    yield server
    server.stop()


@pytest.fixture
def private_registry() -> Iterator[registry_server.RegistryServer]:
    """A registry of the test's own, for tests that tamper with blob storage.

    Blobs are shared by every repository of a registry, so editing one in the session registry
    would corrupt other tests' pushes.
    """
    server = _start(auth=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def session_keypairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Two cosign key pairs (password ``pw``) made once by ``omsign generate-key-pair``.

    Backs ``tests.helpers.keypair``/``other_keypair``: defined here so that every module
    importing those fixtures shares these two pairs rather than making its own.
    """
    from tests.helpers import assert_ok, run_cli

    root = tmp_path_factory.mktemp("session-keys")
    pairs: dict[str, tuple[Path, Path]] = {}
    for name in ("keys", "other-keys"):
        keys = root / name
        keys.mkdir()
        assert_ok(run_cli("generate-key-pair", "--dir", keys, env={"OMSIGN_PASSWORD": "pw"}))
        pairs[name] = (keys / "cosign.key", keys / "cosign.pub")
    return pairs


@pytest.fixture
def repo(registry: registry_server.RegistryServer) -> str:
    """A fresh repository name on the shared registry: ``127.0.0.1:PORT/test/<uuid>``."""
    return f"{registry.host}/test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A private copy of testdata/tiny-model that a test may change."""
    dest = tmp_path / "model"
    shutil.copytree(TESTDATA / "tiny-model", dest)
    return dest


@pytest.fixture(params=["registry", "layout"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh repository on the registry, then on an on-disk layout: every command works on both."""
    if request.param == "registry":
        return str(request.getfixturevalue("repo"))
    return f"oci:{tmp_path / 'store'}"


@pytest.fixture
def interop() -> Path:
    """The interop test vectors (real cosign signatures); tests using them skip when absent."""
    if not INTEROP.is_dir():
        pytest.skip("the interop test vectors are not present")
    return INTEROP


# Offline keyless Sigstore (npm @sigstore/mock via node): the `sigstore_local` fixture.
from tests.sigstore_local.fixture import sigstore_local  # noqa: E402, F401

# -- hypothesis profiles (tests/test_fuzz.py): few examples for `make test`, many for `make fuzz` --
FUZZ_EXAMPLES = int(os.environ.get("OMSIGN_FUZZ_EXAMPLES", "5000"))

from hypothesis import HealthCheck as _HealthCheck  # noqa: E402
from hypothesis import settings as _hsettings  # noqa: E402

_hsettings.register_profile(
    "fuzz", max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[_HealthCheck.too_slow]
)
_hsettings.register_profile("default", max_examples=40, deadline=None)
