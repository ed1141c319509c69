"""Bad input from the user's side: references, folders, files and keys that cannot be used.

Each case must end in one ``omsign: error:`` line with the documented exit code (2 for
usage, 3 for unusable input) and must not publish anything: a push that fails because the
model changed under it leaves no tag behind.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import httpx
import pytest

from oci_model_sign import api
from oci_model_sign.errors import InputError
from oci_model_sign.store.base import StoreOptions
from tests import helpers, registry_server
from tests.faultproxy import Fault, FaultProxy, Rule
from tests.helpers import (
    SIGN_ENV,
    assert_cli_error,
    assert_ok,
    assert_untouched,
    make_model,
    run_cli,
    run_cli_subprocess,
    verify_args,
)

keypair = helpers.keypair
proxy = helpers.proxy

BAD_REFERENCES = {
    "empty": "",
    "uppercase-repo": "127.0.0.1:5000/Upper/Case:v1",
    "bad-tag": "127.0.0.1:5000/repo:bad tag!",
    "short-digest": "127.0.0.1:5000/repo@sha256:abc",
    "scheme": "http://127.0.0.1:5000/repo:v1",
    "bad-port": "127.0.0.1:99999999/repo:v1",
    "double-slash": "127.0.0.1:5000//repo:v1",
    "blank": "   ",
}


def _tag_exists(registry: registry_server.RegistryServer, repo: str, tag: str) -> bool:
    path = repo.split("/", 1)[1]
    r = httpx.head(f"{registry.url}/v2/{path}/manifests/{tag}",
                   headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    return r.status_code == 200


@pytest.mark.parametrize("case", sorted(BAD_REFERENCES))
@pytest.mark.parametrize("command", ["push", "pull", "verify", "inspect"])
def test_bad_reference_is_a_usage_error(
    case: str, command: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """Malformed references: exit 2 before any network traffic."""
    ref = BAD_REFERENCES[case]
    args: list[str | Path]
    if command == "push":
        args = ["push", make_model(tmp_path / "m"), ref]
    elif command == "pull":
        args = ["pull", ref, tmp_path / "dest"]
    elif command == "verify":
        args = ["verify", "--key", keypair[1], ref]
    else:
        args = ["inspect", ref]
    res = run_cli(*args)
    assert_cli_error(res, 2)
    assert not (tmp_path / "dest").exists()


def test_missing_model_folder_is_an_input_error(repo: str, tmp_path: Path) -> None:
    """``omsign push`` of a folder that does not exist."""
    assert_cli_error(run_cli("push", tmp_path / "nope", f"{repo}:v1"), 3)


@pytest.mark.subprocess
def test_fifo_in_the_model_folder_is_refused_without_blocking(
    registry: registry_server.RegistryServer, repo: str, tmp_path: Path
) -> None:
    """A named pipe would block a naive reader forever: refused (exit 3), nothing tagged.
    In a child process, so that a reader stuck on the pipe is killed by the timeout."""
    model = make_model(tmp_path / "m")
    os.mkfifo(model / "pipe")
    assert_cli_error(run_cli_subprocess("push", model, f"{repo}:v1", timeout=60), 3)
    assert not _tag_exists(registry, repo, "v1")


def test_dangling_symlink_in_the_model_folder_is_refused(
    registry: registry_server.RegistryServer, repo: str, tmp_path: Path
) -> None:
    """A symlink to nowhere (and symlinks in general, without --allow-symlinks)."""
    model = make_model(tmp_path / "m")
    (model / "link.bin").symlink_to(tmp_path / "missing")
    assert_cli_error(run_cli("push", model, f"{repo}:v1"), 3)
    assert not _tag_exists(registry, repo, "v1")


def test_symlink_pointing_outside_the_folder_is_refused_even_when_allowed(
    registry: registry_server.RegistryServer, repo: str, tmp_path: Path
) -> None:
    """--allow-symlinks follows links that stay inside; one to /etc/hostname is refused."""
    model = make_model(tmp_path / "m")
    (model / "host").symlink_to("/etc/hostname")
    assert_cli_error(run_cli("push", "--allow-symlinks", model, f"{repo}:v1"), 3)
    assert not _tag_exists(registry, repo, "v1")


@pytest.mark.subprocess
def test_unreadable_file_is_an_input_error(
    registry: registry_server.RegistryServer, repo: str, tmp_path: Path
) -> None:
    """A file the user may not read (run as an unprivileged user: root reads everything)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    model = make_model(tmp_path / "m")
    (model / "secret.bin").write_bytes(b"x" * 100)
    os.chmod(model / "secret.bin", 0)
    for p in [tmp_path, *tmp_path.parents]:
        os.chmod(p, os.stat(p).st_mode | 0o005) if p != Path("/") else None
    os.chmod(model, 0o755)
    for f in model.iterdir():
        if f.name != "secret.bin":
            os.chmod(f, 0o644)
    home = tmp_path / "nobody-home"
    home.mkdir()
    os.chmod(home, 0o777)
    import subprocess
    import sys

    try:
        proc = subprocess.run(
            [sys.executable, "-m", "oci_model_sign.cli", "push", str(model), f"{repo}:v1"],
            capture_output=True, text=True, timeout=120, cwd="/",
            env={**helpers.cli_env(), "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")},
            user=65534, group=65534,
        )
    except PermissionError as exc:
        pytest.skip(f"the venv is not usable by an unprivileged user here: {exc}")
    if proc.returncode != 3 and "Permission denied" in proc.stderr and "secret.bin" not in proc.stderr:
        pytest.skip(f"the venv is not readable by an unprivileged user here: {proc.stderr.strip()[:200]}")
    assert_cli_error(helpers.CliResult(proc.returncode, proc.stdout, proc.stderr), 3, "secret.bin")
    assert not _tag_exists(registry, repo, "v1")


def test_unreadable_file_is_an_input_error_in_process(
    registry: registry_server.RegistryServer, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, simulated in-process (opening the file raises EACCES): InputError naming it."""
    import builtins
    import errno

    model = make_model(tmp_path / "m")
    secret = model / "secret.bin"
    secret.write_bytes(b"x" * 100)
    real_open, real_os_open = builtins.open, os.open

    def deny(path: object) -> None:
        if str(path) == str(secret):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

    def fake_open(file: object, *args: object, **kwargs: object) -> object:
        deny(file)
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    def fake_os_open(path: object, *args: object, **kwargs: object) -> int:
        deny(path)
        return real_os_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    with pytest.raises(InputError, match=r"secret\.bin"):
        api.push(model, f"{repo}:v1", use_cache=False)
    monkeypatch.undo()
    assert not _tag_exists(registry, repo, "v1")


def test_dest_that_is_a_file_is_an_input_error(repo: str, tmp_path: Path) -> None:
    """``omsign pull REF FILE``: refused, the file is untouched."""
    api.push(make_model(tmp_path / "m"), f"{repo}:v1")
    dest = tmp_path / "dest"
    dest.write_bytes(b"not a folder")
    assert_cli_error(run_cli("pull", f"{repo}:v1", dest), 3)
    assert dest.read_bytes() == b"not a folder"


def test_symlink_planted_in_dest_is_not_written_through(repo: str, tmp_path: Path) -> None:
    """DEST already holds ``model.safetensors`` as a symlink to a file outside: the pull
    refuses (exit 3, DEST is not empty); with --force the old tree, link included, is swapped
    away and the verified file takes its place. The outside file is never written."""
    model = make_model(tmp_path / "m")
    api.push(model, f"{repo}:v1")
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"precious")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "model.safetensors").symlink_to(outside)
    before = helpers.snapshot(dest)
    assert_cli_error(run_cli("pull", f"{repo}:v1", dest), 3, "not empty", "--force")
    assert_untouched(dest, before)
    assert outside.read_bytes() == b"precious"
    assert_ok(run_cli("pull", "--force", f"{repo}:v1", dest))
    assert outside.read_bytes() == b"precious"
    assert not (dest / "model.safetensors").is_symlink()
    assert helpers.snapshot(dest) == helpers.snapshot(model)


def test_verify_without_a_policy_is_a_usage_error(repo: str, tmp_path: Path) -> None:
    """``pull --verify`` with no key or identity: exit 2, nothing downloaded."""
    api.push(make_model(tmp_path / "m"), f"{repo}:v1")
    dest = tmp_path / "dest"
    assert_cli_error(run_cli("pull", "--verify", f"{repo}:v1", dest), 2)
    assert_untouched(dest, None)


# -- a model that changes while it is pushed ----------------------------------------------------
def test_file_growing_during_a_chunked_push_is_refused(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """A 3 MB weight file grows while its chunks are uploaded (appended to from another thread
    when the second chunk goes out): InputError, and no manifest or tag is published."""
    model = make_model(tmp_path / "m", {"model.safetensors": 3_000_000, "config.json": b"{}"})
    grown = threading.Event()

    def grow(_req: object) -> None:
        def append() -> None:
            with open(model / "model.safetensors", "ab") as f:
                f.write(b"\0" * 1000)
            grown.set()

        t = threading.Thread(target=append)
        t.start()
        t.join()

    proxy.add(Rule("PATCH", r"/blobs/uploads/", Fault.HOOK, hook=grow, times=1))
    via = repo.replace(registry.host, proxy.host)
    options = StoreOptions(chunk_size=1_000_000, monolithic_max=500_000)
    with pytest.raises(InputError, match="changed"):
        api.push(model, f"{via}:v1", options=options, use_cache=False)
    assert grown.is_set()
    assert not _tag_exists(registry, repo, "v1")


def test_file_shrinking_during_a_chunked_push_is_refused(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """The same file truncated to half while it is uploaded: InputError, no tag."""
    model = make_model(tmp_path / "m", {"model.safetensors": 3_000_000, "config.json": b"{}"})

    def shrink(_req: object) -> None:
        os.truncate(model / "model.safetensors", 1_500_000)

    proxy.add(Rule("PATCH", r"/blobs/uploads/", Fault.HOOK, hook=shrink, times=1))
    via = repo.replace(registry.host, proxy.host)
    options = StoreOptions(chunk_size=1_000_000, monolithic_max=500_000)
    with pytest.raises(InputError):
        api.push(model, f"{via}:v1", options=options, use_cache=False)
    assert not _tag_exists(registry, repo, "v1")


def test_small_file_rewritten_during_push_is_refused(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path
) -> None:
    """A small file (sent in one PUT) is rewritten after it was read: the push notices the
    change (size/mtime) and publishes nothing, through the CLI: exit 3."""
    model = make_model(tmp_path / "m", {"config.json": b'{"a": 1}', "weights.bin": 50_000})

    def rewrite(_req: object) -> None:
        (model / "weights.bin").write_bytes(os.urandom(60_000))

    proxy.add(Rule("PUT", r"/blobs/uploads/", Fault.HOOK, hook=rewrite, times=1))
    via = repo.replace(registry.host, proxy.host)
    res = run_cli("push", "--no-cache", "-j", "1", model, f"{via}:v1")
    assert_cli_error(res, 3, "changed")
    assert not _tag_exists(registry, repo, "v1")


# -- keys ---------------------------------------------------------------------------------------
def _signable(repo: str, tmp_path: Path) -> str:
    api.push(make_model(tmp_path / "m"), f"{repo}:v1")
    return f"{repo}:v1"


def test_wrong_key_password_is_an_input_error(repo: str, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    """cosign.key with the wrong password: one line, nothing attached."""
    ref = _signable(repo, tmp_path)
    res = run_cli("sign", "--key", keypair[0], ref, env={"OMSIGN_PASSWORD": "wrong"})
    assert_cli_error(res, 3, "password")
    dest = tmp_path / "dest"
    assert_cli_error(run_cli("pull", *verify_args(keypair[1]), ref, dest), 8)


CORRUPT_KEYS = {
    "empty": b"",
    "garbage": os.urandom(300),
    "truncated-pem": b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nZXhhbXBsZQ==\n",
    "not-json-inside": b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nbm90IGpzb24=\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
    "huge": b"A" * (20 * 1024 * 1024),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_KEYS))
def test_corrupt_private_key_is_an_input_error(case: str, repo: str, tmp_path: Path) -> None:
    """Private key files that are empty, random, cut short, malformed or enormous."""
    ref = _signable(repo, tmp_path)
    key = tmp_path / "bad.key"
    key.write_bytes(CORRUPT_KEYS[case])
    assert_cli_error(run_cli("sign", "--key", key, ref, env=SIGN_ENV), 3)


def test_public_key_given_as_private_key_is_an_input_error(
    repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """cosign.pub passed to ``sign --key``: exit 3, nothing attached."""
    ref = _signable(repo, tmp_path)
    assert_cli_error(run_cli("sign", "--key", keypair[1], ref, env=SIGN_ENV), 3)


@pytest.mark.parametrize("case", ["empty", "garbage", "truncated-pem"])
def test_corrupt_public_key_is_an_input_error(case: str, repo: str, tmp_path: Path) -> None:
    """verify/pull with a public key file that is not a key: exit 3, nothing pulled."""
    ref = _signable(repo, tmp_path)
    pub = tmp_path / "bad.pub"
    pub.write_bytes(CORRUPT_KEYS[case].replace(b"ENCRYPTED SIGSTORE PRIVATE", b"PUBLIC"))
    assert_cli_error(run_cli("verify", "--key", pub, ref), 3)
    dest = tmp_path / "dest"
    assert_cli_error(run_cli("pull", "--key", pub, ref, dest), 3)
    assert_untouched(dest, None)


def test_key_path_that_is_a_folder_is_an_input_error(repo: str, tmp_path: Path) -> None:
    """``sign --key`` given a folder: exit 3."""
    ref = _signable(repo, tmp_path)
    assert_cli_error(run_cli("sign", "--key", tmp_path, ref, env=SIGN_ENV), 3)


def test_signing_with_a_good_key_after_all_that_works(
    repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """Control: the same model signs and verifies with the right key and password."""
    ref = _signable(repo, tmp_path)
    assert_ok(run_cli("sign", "--key", keypair[0], ref, "--no-tlog-upload", env=SIGN_ENV))
    assert_ok(run_cli("verify", *verify_args(keypair[1]), ref))
