"""``oci-archive:FILE.tar[:TAG]``: air-gapped transfer in skopeo's format, read as untrusted input."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from oci_model_sign.digest import sha256_digest
from oci_model_sign.store.base import StoreOptions
from tests.faultproxy import Fault, FaultProxy, Rule
from tests.helpers import assert_cli_error, assert_ok, make_model, run_cli, start_cli
from tests.registry_server import RegistryServer
from tests.test_copy import (
    attach_attestations,
    creds,
    files_of,
    keys,  # noqa: F401 - fixture
    new_repo,
    policy,
    push_and_sign,
    referrer_digests,
)

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")


def test_air_gap_registry_to_archive_to_another_registry_then_verify(
    registry: RegistryServer, auth_registry: RegistryServer, keys: Path, tmp_path: Path  # noqa: F811
) -> None:
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    digest = push_and_sign(model, src, keys)
    sbom, review = attach_attestations(src, digest)
    archive = tmp_path / "transfer" / "model.tar"

    assert_ok(run_cli("copy", "--verify", *policy(keys), src, f"oci-archive:{archive}:v1"))
    assert archive.is_file()
    assert not [p.name for p in archive.parent.iterdir() if p.name != "model.tar"]  # no staging debris
    assert_ok(run_cli("verify", f"oci-archive:{archive}:v1", *policy(keys)))

    dst = f"{new_repo(auth_registry)}:v1"
    copied = run_cli("copy", f"oci-archive:{archive}:v1", dst, "--dest-creds", creds(auth_registry), "--json")
    assert_ok(copied)
    assert json.loads(copied.stdout)["digest"] == digest
    env = {"OMSIGN_USERNAME": str(auth_registry.username), "OMSIGN_REGISTRY_PASSWORD": str(auth_registry.password)}
    assert_ok(run_cli("verify", dst, *policy(keys), env=env))
    dest = tmp_path / "pulled"
    assert_ok(run_cli("pull", "--verify", *policy(keys), dst, dest, env=env))
    got = files_of(dest)
    del got["model.sig"]
    assert got == files_of(model)
    opts = StoreOptions(username=auth_registry.username, password=auth_registry.password)
    assert referrer_digests(dst, digest, opts) == referrer_digests(src, digest)
    assert sbom in referrer_digests(dst, digest, opts)
    assert referrer_digests(dst, sbom, opts) == [review]


def test_an_archive_gains_tags_without_losing_earlier_ones(registry: RegistryServer, tmp_path: Path) -> None:
    archive = tmp_path / "models.tar"
    for tag in ("v1", "v2"):
        model = make_model(tmp_path / f"model-{tag}")
        src = f"{new_repo(registry)}:{tag}"
        assert_ok(run_cli("push", model, src))
        assert_ok(run_cli("copy", src, f"oci-archive:{archive}"))
    listed = run_cli("ls", f"oci-archive:{archive}", "--json")
    assert_ok(listed)
    assert json.loads(listed.stdout)["tags"] == ["v1", "v2"]
    dest = tmp_path / "out"
    assert_ok(run_cli("pull", f"oci-archive:{archive}:v1", dest))
    assert files_of(dest) == files_of(tmp_path / "model-v1")


def test_push_straight_into_an_archive_then_pull_from_it(tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    archive = tmp_path / "m.tar"
    assert_ok(run_cli("push", model, f"oci-archive:{archive}:v1"))
    dest = tmp_path / "out"
    assert_ok(run_cli("pull", f"oci-archive:{archive}:v1", dest))
    assert files_of(dest) == files_of(model)


def test_a_failed_copy_into_a_new_archive_leaves_no_file(registry: RegistryServer, keys: Path, tmp_path: Path) -> None:  # noqa: F811
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    assert_ok(run_cli("push", model, src))  # unsigned
    out = tmp_path / "out"
    out.mkdir()
    assert_cli_error(run_cli("copy", "--verify", *policy(keys), src, f"oci-archive:{out / 'm.tar'}:v1"), 8)
    assert list(out.iterdir()) == []


# -- skopeo, both ways -----------------------------------------------------------------------------
@needs_skopeo
def test_skopeo_reads_an_archive_omsign_wrote(registry: RegistryServer, keys: Path, tmp_path: Path) -> None:  # noqa: F811
    model = make_model(tmp_path / "model")
    src = f"{new_repo(registry)}:v1"
    digest = push_and_sign(model, src, keys)
    archive = tmp_path / "model.tar"
    assert_ok(run_cli("copy", src, f"oci-archive:{archive}:v1"))
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{archive}:v1"], capture_output=True, timeout=60)
    assert raw.returncode == 0, raw.stderr
    assert "sha256:" + hashlib.sha256(raw.stdout).hexdigest() == digest
    out = tmp_path / "skopeo-layout"
    copied = subprocess.run(
        ["skopeo", "copy", f"oci-archive:{archive}:v1", f"oci:{out}:v1"], capture_output=True, text=True, timeout=120
    )
    assert copied.returncode == 0, copied.stderr
    dest = tmp_path / "pulled"
    assert_ok(run_cli("pull", f"oci:{out}:v1", dest))
    assert files_of(dest) == files_of(model)


@needs_skopeo
def test_omsign_reads_an_archive_skopeo_wrote(registry: RegistryServer, keys: Path, tmp_path: Path) -> None:  # noqa: F811
    model = make_model(tmp_path / "model")
    repo = new_repo(registry)
    digest = push_and_sign(model, f"{repo}:v1", keys)
    archive = tmp_path / "skopeo.tar"
    made = subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", f"docker://{repo}:v1", f"oci-archive:{archive}:v1"],
        capture_output=True, text=True, timeout=120,
    )
    assert made.returncode == 0, made.stderr
    inspected = run_cli("inspect", f"oci-archive:{archive}:v1", "--json")
    assert_ok(inspected)
    assert json.loads(inspected.stdout)["digest"] == digest  # skopeo kept the manifest bytes
    dest = tmp_path / "pulled"
    assert_ok(run_cli("pull", f"oci-archive:{archive}:v1", dest))
    assert files_of(dest) == files_of(model)
    # skopeo drops the signatures; omsign adds them back from the source without re-uploading.
    assert_ok(run_cli("copy", f"{repo}:v1", f"oci-archive:{archive}:v1"))
    assert referrer_digests(f"oci-archive:{archive}:v1", digest) == referrer_digests(f"{repo}:v1", digest)
    assert_ok(run_cli("verify", f"oci-archive:{archive}:v1", *policy(keys)))


# -- the tar is untrusted ---------------------------------------------------------------------------
def good_archive(tmp_path: Path) -> Path:
    model = make_model(tmp_path / f"model-{uuid.uuid4().hex[:6]}")
    archive = tmp_path / f"{uuid.uuid4().hex[:6]}.tar"
    assert_ok(run_cli("push", model, f"oci-archive:{archive}:v1"))
    return archive


def rewrite(archive: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]], drop: str | None = None) -> Path:
    """A copy of ``archive`` with members appended (or one dropped), written with tarfile."""
    out = archive.with_name(f"hostile-{uuid.uuid4().hex[:6]}.tar")
    with tarfile.open(archive) as src, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as dst:
        for member in src.getmembers():
            if member.name == drop:
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for info, data in extra:
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("symlink", "symbolic link"),
        ("hardlink", "hard link"),
        ("dotdot", "unsafe path"),
        ("absolute", "unsafe path"),
        ("duplicate", "twice"),
    ],
)
def test_hostile_archive_members_are_refused(case: str, needle: str, tmp_path: Path) -> None:
    archive = good_archive(tmp_path)
    extra = {
        "symlink": [link("blobs/sha256/evil", "/etc/passwd")],
        "hardlink": [link("blobs/sha256/evil", "/etc/passwd", tarfile.LNKTYPE)],
        "dotdot": [file_member("../outside", b"x")],
        "absolute": [file_member("/tmp/outside", b"x")],
        "duplicate": [file_member("index.json", b'{"schemaVersion":2,"manifests":[]}')],
    }[case]
    hostile = rewrite(archive, extra)  # type: ignore[arg-type]
    dest = tmp_path / "out"
    assert_cli_error(run_cli("pull", f"oci-archive:{hostile}:v1", dest), 7, needle)
    assert not dest.exists()


def test_truncated_archive_is_refused(tmp_path: Path) -> None:
    archive = good_archive(tmp_path)
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2 + 7])
    assert_cli_error(run_cli("pull", f"oci-archive:{cut}:v1", tmp_path / "out"), 7)


def test_a_file_that_is_not_a_tar_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"PK\x03\x04" + bytes(2000))
    assert_cli_error(run_cli("pull", f"oci-archive:{junk}:v1", tmp_path / "out"), 7, "checksum")


def test_an_archive_without_an_oci_layout_file_is_refused(tmp_path: Path) -> None:
    hostile = rewrite(good_archive(tmp_path), [], drop="oci-layout")
    assert_cli_error(run_cli("pull", f"oci-archive:{hostile}:v1", tmp_path / "out"), 7, "oci-layout")


def test_a_blob_edited_inside_the_archive_fails_its_digest(tmp_path: Path) -> None:
    archive = good_archive(tmp_path)
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        biggest = max((m for m in tar.getmembers() if m.name.startswith("blobs/")), key=lambda m: m.size)
    data[biggest.offset_data + 10] ^= 0xFF
    archive.write_bytes(bytes(data))
    dest = tmp_path / "out"
    assert_cli_error(run_cli("pull", f"oci-archive:{archive}:v1", dest), 7)
    assert not dest.exists()


def test_missing_archive_is_not_found(tmp_path: Path) -> None:
    assert_cli_error(run_cli("pull", f"oci-archive:{tmp_path / 'none.tar'}:v1", tmp_path / "out"), 6)


def test_a_killed_copy_into_an_archive_leaves_it_unchanged_and_a_rerun_cleans_up(
    registry: RegistryServer, keys: Path, tmp_path: Path  # noqa: F811
) -> None:
    model = make_model(tmp_path / "model", {f"shard-{i}.bin": 4_000_000 for i in range(3)})
    last = sha256_digest((model / "shard-2.bin").read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    archive = out / "m.tar"
    with FaultProxy(registry.url) as proxy:
        src = f"{proxy.host}/copy/{uuid.uuid4().hex[:12]}:v1"
        digest = push_and_sign(model, src, keys)
        proxy.add(Rule("GET", f"/blobs/{last}", Fault.DELAY, drip_bytes=64 * 1024, drip_interval=0.05))
        proc = start_cli("copy", src, f"oci-archive:{archive}:v1", "-j", "1")
        deadline = time.monotonic() + 60
        while not list(out.glob(".m.tar.omsign-*/layout/blobs/sha256/*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the copy finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert not archive.exists()  # never a half-written archive

        assert_ok(run_cli("copy", src, f"oci-archive:{archive}:v1"))
    assert [p.name for p in out.iterdir()] == ["m.tar"]  # the killed run's staging folder is gone
    checked = run_cli("verify", f"oci-archive:{archive}:v1", *policy(keys))
    assert_ok(checked)
    assert checked.stdout.strip() == digest
