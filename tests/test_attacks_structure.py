"""Attacks on structure: manifests, tar layers and referrers built to hurt the puller.

A hostile registry owner builds manifests by hand (no omsign involved) whose names escape the
destination, collide on case-insensitive filesystems, turn a file into a folder, or whose
sheer size or nesting would exhaust memory. ``omsign pull`` must stop with IntegrityError
(exit 7) for unsafe content and LimitError (exit 9) for oversized content, before writing a
byte to DEST.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from oci_model_sign import api
from oci_model_sign.oci.descriptor import Descriptor
from oci_model_sign.oci.manifest import bundle_referrer_manifest
from oci_model_sign.oci.mediatypes import BUNDLE_MEDIA_TYPE, COSIGN_SIGN_PREDICATE, EMPTY_JSON
from tests import helpers, registry_server
from tests.faultproxy import Fault, FaultProxy, Rule
from tests.helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    WEIGHT_TAR,
    RawRegistry,
    assert_cli_error,
    assert_untouched,
    layer,
    make_model,
    model_config,
    model_manifest,
    prefilled_dest,
    push_model_manifest,
    run_cli,
    sha256,
    sign,
    verify_args,
)

raw = helpers.raw
proxy = helpers.proxy
keypair = helpers.keypair


def _path(repo: str) -> str:
    return repo.split("/", 1)[1]


def _pull_fails(repo: str, tmp_path: Path, code: int, *needles: str, env: dict[str, str] | None = None,
                extra: tuple[str, ...] = ()) -> None:
    out, before = prefilled_dest(tmp_path)
    assert_cli_error(run_cli("pull", "--force", *extra, f"{repo}:v1", out, env=env), code, *needles)
    assert_untouched(out, before)
    absent = tmp_path / "fresh" / "dest"
    assert_cli_error(run_cli("pull", *extra, f"{repo}:v1", absent, env=env), code, *needles)
    assert_untouched(absent, None)


# -- names ----------------------------------------------------------------------------------------
BAD_TITLES = {
    "dotdot": "../evil.bin",
    "dotdot-inside": "weights/../../evil.bin",
    "absolute": "/tmp/omsign-evil.bin",
    "drive-letter": "C:/evil.bin",
    "drive-relative": "C:evil.bin",
    "nul": "evil\x00.bin",
    "backslash": "..\\evil.bin",
    "backslash-inside": "weights\\evil.bin",
    "control-char": "evil\n.bin",
    "dot": "./evil.bin",
    "empty": "",
}


@pytest.mark.parametrize("case", sorted(BAD_TITLES))
def test_unsafe_layer_title_is_refused(case: str, raw: RawRegistry, repo: str, tmp_path: Path) -> None:
    """Layer titles that would escape DEST or mean different things on other systems."""
    title = BAD_TITLES[case]
    push_model_manifest(raw, _path(repo), [layer("ok.bin", b"fine"), layer(title, b"evil")])
    _pull_fails(repo, tmp_path, 7)
    assert not (tmp_path / "evil.bin").exists()
    assert not Path("/tmp/omsign-evil.bin").exists()


LOOKALIKES = {
    "case": ("Model.bin", "model.bin"),
    "nfc-nfd": ("caf\u00e9.bin", "cafe\u0301.bin"),
    "nfkc-ligature": ("\ufb01le.bin", "file.bin"),
    "fullwidth": ("\uff4d.bin", "m.bin"),
    "exact-duplicate": ("same.bin", "same.bin"),
}


@pytest.mark.parametrize("case", sorted(LOOKALIKES))
def test_lookalike_duplicate_titles_are_refused(case: str, raw: RawRegistry, repo: str, tmp_path: Path) -> None:
    """Two layers that would land on one file on a case-insensitive or normalising filesystem."""
    first, second = LOOKALIKES[case]
    push_model_manifest(raw, _path(repo), [layer(first, b"verified one"), layer(second, b"the other")])
    _pull_fails(repo, tmp_path, 7)


def test_file_and_folder_of_the_same_name_are_refused(raw: RawRegistry, repo: str, tmp_path: Path) -> None:
    """``weights`` as a file and ``weights/x.bin`` under it."""
    push_model_manifest(raw, _path(repo), [layer("weights", b"file"), layer("weights/x.bin", b"nested")])
    _pull_fails(repo, tmp_path, 7)


@pytest.mark.parametrize("order", ["raw-first", "tar-first"])
@pytest.mark.parametrize("jobs", ["1", "4"])
def test_raw_layer_and_tar_member_with_the_same_path_are_refused(
    order: str, jobs: str, raw: RawRegistry, repo: str, tmp_path: Path
) -> None:
    """A raw layer ``weights/x.bin`` and a tar layer ``weights`` that also holds ``weights/x.bin``:
    refused whatever the layer order and download concurrency (the second never overwrites)."""
    tar = _tar([("weights/x.bin", b"from the tar")])
    layers = [layer("weights/x.bin", b"raw layer"), layer("weights", tar, WEIGHT_TAR)]
    if order == "tar-first":
        layers.reverse()
    push_model_manifest(raw, _path(repo), layers)
    _pull_fails(repo, tmp_path, 7, extra=("-j", jobs))


# -- tar layers -----------------------------------------------------------------------------------
def _tar(members: list[tuple[str, bytes]], specials: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in specials or []:
            tf.addfile(info)
    return buf.getvalue()


def _special(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


TAR_ATTACKS: dict[str, bytes] = {
    "member-dotdot": _tar([("../evil.bin", b"x")]),
    "member-absolute": _tar([("/tmp/omsign-evil.bin", b"x")]),
    "member-backslash": _tar([("..\\evil.bin", b"x")]),
    "symlink-out": _tar([], [_special("link", tarfile.SYMTYPE, "/etc/passwd")]),
    "symlink-then-write-through": _tar([("link/evil.bin", b"x")], []),
    "hardlink-out": _tar([], [_special("hard", tarfile.LNKTYPE, "/etc/passwd")]),
    "device": _tar([], [_special("dev", tarfile.CHRTYPE)]),
    "fifo": _tar([], [_special("fifo", tarfile.FIFOTYPE)]),
    "duplicate-member": _tar([("a.bin", b"first"), ("a.bin", b"second")]),
    "lookalike-members": _tar([("A.bin", b"first"), ("a.bin", b"second")]),
    "file-then-folder": _tar([("a", b"file"), ("a/b", b"nested")]),
}
# symlink first, then a regular file whose path goes through it
_buf = io.BytesIO()
with tarfile.open(fileobj=_buf, mode="w", format=tarfile.PAX_FORMAT) as _tf:
    _tf.addfile(_special("link", tarfile.SYMTYPE, "/tmp"))
    _info = tarfile.TarInfo("link/omsign-evil.bin")
    _info.size = 1
    _tf.addfile(_info, io.BytesIO(b"x"))
TAR_ATTACKS["symlink-then-write-through"] = _buf.getvalue()


@pytest.mark.parametrize("case", sorted(TAR_ATTACKS))
def test_unsafe_tar_layer_is_refused(case: str, raw: RawRegistry, repo: str, tmp_path: Path) -> None:
    """Tar members that escape, link out, are devices, or collide."""
    push_model_manifest(raw, _path(repo), [layer("ok.bin", b"fine"), layer("weights", TAR_ATTACKS[case], WEIGHT_TAR)])
    _pull_fails(repo, tmp_path, 7)
    assert not Path("/tmp/omsign-evil.bin").exists()


# -- sizes and counts -----------------------------------------------------------------------------
def test_ten_thousand_layers_are_refused(raw: RawRegistry, repo: str, tmp_path: Path) -> None:
    """A manifest with 10,000 layers (the limit is 5,000): LimitError before any download."""
    blob = b"tiny"
    layers = [layer(f"f{i:05d}.bin", blob) for i in range(10_000)]
    for spec in layers[1:]:
        spec["upload"] = False
    push_model_manifest(raw, _path(repo), layers)
    _pull_fails(repo, tmp_path, 9, "layers")


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_hundred_megabyte_manifest_is_refused(
    framing: str, registry: registry_server.RegistryServer, proxy: FaultProxy, raw: RawRegistry, repo: str,
    tmp_path: Path,
) -> None:
    """A registry answers the manifest GET with 100 MB (distribution itself caps manifests at
    4 MiB, so the proxy plays the registry): refused from Content-Length, or after the limit
    when the body is chunked; never read whole or parsed."""
    push_model_manifest(raw, _path(repo), [layer("a.bin", b"data")])
    size = 100 * 1024 * 1024
    headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": "sha256:" + "0" * 64}
    if framing == "content-length":
        headers["Content-Length"] = str(size)
    proxy.add(Rule("GET", r"/manifests/", Fault.SERVE, status=200, headers=headers, times=10,
                   body=lambda: (b"[" * (1024 * 1024) for _ in range(100))))
    _pull_fails(repo.replace(registry.host, proxy.host), tmp_path, 9, "limit")
    served = sum(1 for r in proxy.log("GET", r"/manifests/"))
    assert served >= 1


def test_deeply_nested_manifest_is_refused(raw: RawRegistry, repo: str, tmp_path: Path) -> None:
    """A manifest nesting 5,000 levels deep in an unknown field: LimitError, no RecursionError."""
    spec = layer("a.bin", b"data")
    raw.put_blob(_path(repo), spec["data"])
    config = model_config([spec])
    raw.put_blob(_path(repo), config)
    manifest = model_manifest([spec], config)
    nested = manifest[:-1] + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    raw.put_manifest(_path(repo), "v1", nested)
    _pull_fails(repo, tmp_path, 9, "nested")


def test_manifest_over_a_lowered_limit_is_refused(raw: RawRegistry, repo: str, tmp_path: Path) -> None:
    """The limits are configurable: OMSIGN_MAX_MANIFEST_BYTES=1000 refuses a 2 KB manifest."""
    layers = [layer(f"f{i}.bin", f"d{i}".encode()) for i in range(12)]
    push_model_manifest(raw, _path(repo), layers)
    _pull_fails(repo, tmp_path, 9, "limit", env={"OMSIGN_MAX_MANIFEST_BYTES": "1000"})


def test_declared_layer_size_larger_than_the_blob_is_refused(raw: RawRegistry, repo: str, tmp_path: Path) -> None:
    """The manifest says 1 GB, the blob is 4 bytes: IntegrityError, no 1 GB preallocation."""
    spec = layer("a.bin", b"data")
    spec["size"] = 1 << 30
    push_model_manifest(raw, _path(repo), [spec])
    _pull_fails(repo, tmp_path, 7)


# -- referrers ------------------------------------------------------------------------------------
def _signed_model(repo: str, tmp_path: Path, key: Path) -> api.PushResult:
    result = api.push(make_model(tmp_path / "model"), f"{repo}:v1")
    sign(f"{repo}:v1", key)
    return result


def test_referrers_index_with_thousands_of_entries_is_refused(
    raw: RawRegistry, repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """A fallback referrers index listing 5,000 entries (limit 1,000): LimitError."""
    result = _signed_model(repo, tmp_path, keypair[0])
    tag = result.digest.replace(":", "-")
    index = json.loads(raw.get_manifest(_path(repo), tag))
    entry = index["manifests"][0]
    index["manifests"] = [entry] * 5000
    raw.put_manifest(_path(repo), tag, json.dumps(index).encode(), OCI_INDEX)
    _pull_fails(repo, tmp_path, 9, "referrers", extra=tuple(verify_args(keypair[1])))


def test_referrers_pointing_nowhere_fail_verification_cleanly(
    raw: RawRegistry, registry: object, repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """Every referrer in the index was deleted: each candidate fails (not found), exit 8."""
    result = _signed_model(repo, tmp_path, keypair[0])
    tag = result.digest.replace(":", "-")
    index = json.loads(raw.get_manifest(_path(repo), tag))
    for entry in index["manifests"]:
        r = raw.client.delete(f"/v2/{_path(repo)}/manifests/{entry['digest']}")
        assert r.status_code == 202
    _pull_fails(repo, tmp_path, 8, extra=tuple(verify_args(keypair[1])))


def test_huge_bundle_blob_is_not_downloaded(
    raw: RawRegistry, repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """A referrer whose bundle layer is 17 MB (limit 16 MB): refused from its descriptor
    without being downloaded; as one bad candidate among signatures it fails verification
    (exit 8) with the limit as the reason."""
    result = api.push(make_model(tmp_path / "model"), f"{repo}:v1")
    huge = b'{"padding":"' + b"x" * (17 * 1024 * 1024) + b'"}'
    raw.put_blob(_path(repo), huge)
    raw.put_blob(_path(repo), EMPTY_JSON)
    subject = Descriptor(OCI_MANIFEST, result.digest, result.size)
    referrer = bundle_referrer_manifest(huge, subject, COSIGN_SIGN_PREDICATE)
    digest = raw.put_manifest(_path(repo), sha256(referrer), referrer)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "size": len(referrer), "digest": digest,
                       "artifactType": BUNDLE_MEDIA_TYPE}],
    }
    raw.put_manifest(_path(repo), result.digest.replace(":", "-"), json.dumps(index).encode(), OCI_INDEX)
    _pull_fails(repo, tmp_path, 8, "limit", extra=tuple(verify_args(keypair[1])))


# -- a registry with a referrers API (played by the proxy: distribution 2.8 has none) ----------
def _referrers_api(proxy_: FaultProxy, body: bytes, link: str | None = None) -> None:
    headers = {"Content-Type": OCI_INDEX}
    if link is not None:
        headers["Link"] = link
    proxy_.add(Rule("GET", r"/referrers/", Fault.SERVE, status=200, headers=headers, body=body, times=100_000))


def _index(entries: list[dict[str, object]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()


NOWHERE = {"mediaType": OCI_MANIFEST, "size": 100, "digest": "sha256:" + "1" * 64, "artifactType": BUNDLE_MEDIA_TYPE}


def test_referrers_api_listing_thousands_of_entries_is_refused(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """The referrers API answers 5,000 entries: LimitError (exit 9) before any is fetched."""
    api.push(make_model(tmp_path / "model"), f"{repo}:v1")
    _referrers_api(proxy, _index([NOWHERE] * 5000))
    _pull_fails(repo.replace(registry.host, proxy.host), tmp_path, 9, "referrers",
                extra=tuple(verify_args(keypair[1])))


def test_referrers_api_answering_garbage_is_refused(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """The referrers API answers an index that is not JSON: IntegrityError (exit 7)."""
    api.push(make_model(tmp_path / "model"), f"{repo}:v1")
    _referrers_api(proxy, b"{not json")
    _pull_fails(repo.replace(registry.host, proxy.host), tmp_path, 7, extra=tuple(verify_args(keypair[1])))


def test_referrers_api_entries_pointing_nowhere_fail_verification(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """The referrers API lists a signature manifest that does not exist: that candidate fails,
    verification fails (exit 8)."""
    api.push(make_model(tmp_path / "model"), f"{repo}:v1")
    _referrers_api(proxy, _index([NOWHERE]))
    _pull_fails(repo.replace(registry.host, proxy.host), tmp_path, 8, extra=tuple(verify_args(keypair[1])))


@pytest.mark.parametrize("page", ["empty", "self-loop"])
def test_referrers_api_pagination_without_progress_is_refused(
    page: str, registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path,
    keypair: tuple[Path, Path],
) -> None:
    """Pages that link on for ever (empty pages, or a page whose next link is itself): a clear
    error (exit 4) after a page or two, not ten thousand requests."""
    result = api.push(make_model(tmp_path / "model"), f"{repo}:v1")
    url = f"/v2/{_path(repo)}/referrers/{result.digest}"
    if page == "empty":
        _referrers_api(proxy, _index([]), f'<{url}?page=next>; rel="next"')
    else:
        _referrers_api(proxy, _index([NOWHERE]), f'<{url}>; rel="next"')
    _pull_fails(repo.replace(registry.host, proxy.host), tmp_path, 4, "pagina",
                extra=tuple(verify_args(keypair[1])))
    assert len(proxy.log("GET", r"/referrers/")) <= 10
