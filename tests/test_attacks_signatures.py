"""Attacks on signatures: real signatures in the wrong place, wrong signatures in the right place.

The attacker here controls the registry (can write any manifest, blob, tag or referrers
index) but not the signer's private key. Each test makes a signature that must not admit the
model and runs ``omsign pull --key`` (or ``verify``) as a user would: exit 8
(VerificationError), one error line, DEST untouched. The last tests show the other half of
the contract: a tag resolved and verified once is the digest that gets pulled, however the
tag moves afterwards.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from oci_model_sign import api
from oci_model_sign.oci.descriptor import Descriptor
from oci_model_sign.oci.mediatypes import COSIGN_SIGN_PREDICATE
from oci_model_sign.signing.attach import attach_bundle
from oci_model_sign.signing.keys import load_private_key, sign_bytes
from oci_model_sign.store import open_store
from oci_model_sign.store.base import StoreOptions
from tests import helpers, registry_server
from tests.faultproxy import Fault, FaultProxy, Rule
from tests.helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    RawRegistry,
    assert_cli_error,
    assert_ok,
    assert_untouched,
    make_model,
    prefilled_dest,
    run_cli,
    sign,
    snapshot,
    verify_args,
)

proxy = helpers.proxy
raw = helpers.raw
keypair = helpers.keypair
other_keypair = helpers.other_keypair


def _push(tmp_path: Path, ref: str, name: str) -> api.PushResult:
    return api.push(make_model(tmp_path / name), ref)


def _repo_path(ref: str) -> str:
    """``127.0.0.1:PORT/test/x:tag`` -> ``test/x``."""
    return ref.split("/", 1)[1].split("@")[0].rsplit(":", 1)[0]


def _subject(result: api.PushResult) -> Descriptor:
    return Descriptor(OCI_MANIFEST, result.digest, result.size)


def _attach(ref: str, subject: Descriptor, bundle: bytes, predicate: str = COSIGN_SIGN_PREDICATE) -> str:
    """The attacker attaches any bytes as a 'signature' (omsign's attach code is just JSON plumbing)."""
    store = open_store(ref, StoreOptions())
    try:
        return attach_bundle(store, subject, bundle, predicate)
    finally:
        store.close()  # type: ignore[attr-defined]


def _resign(bundle: bytes, key: Path, payload: bytes, payload_type: str) -> bytes:
    """A bundle whose DSSE envelope carries ``payload``, validly signed with ``key``."""
    value = json.loads(bundle)
    private = load_private_key(key, b"pw")
    t = payload_type.encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)
    value["dsseEnvelope"] = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": [{"sig": base64.b64encode(sign_bytes(private, pae)).decode()}],
    }
    return json.dumps(value).encode()


def _pull_refused(ref: str, pub: Path, tmp_path: Path, *needles: str) -> None:
    out, before = prefilled_dest(tmp_path)
    assert_cli_error(run_cli("pull", "--force", *verify_args(pub), ref, out), 8, *needles)
    assert_untouched(out, before)


def _fallback_index(raw_: RawRegistry, repo: str, digest: str) -> dict[str, Any]:
    tag = digest.replace(":", "-")
    return json.loads(raw_.get_manifest(repo, tag))  # type: ignore[no-any-return]


# -- wrong signatures -------------------------------------------------------------------------------
def test_unsigned_model_is_refused(repo: str, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    """No signature at all: pull --key fails before any layer is fetched."""
    _push(tmp_path, f"{repo}:v1", "a")
    _pull_refused(f"{repo}:v1", keypair[1], tmp_path, "no signature")


def test_signature_by_another_key_is_refused(
    repo: str, tmp_path: Path, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    """Signed, but by a key the user did not name."""
    _push(tmp_path, f"{repo}:v1", "a")
    sign(f"{repo}:v1", other_keypair[0])
    _pull_refused(f"{repo}:v1", keypair[1], tmp_path)
    assert_cli_error(run_cli("verify", *verify_args(keypair[1]), f"{repo}:v1"), 8)


def test_signature_over_another_digest_is_refused(
    repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """A genuine signature of model B attached as a referrer of model A (same repository)."""
    a = _push(tmp_path, f"{repo}:a", "a")
    _push(tmp_path, f"{repo}:b", "b")
    bundle_b = tmp_path / "b.bundle"
    sign(f"{repo}:b", keypair[0], "--output-bundle", str(bundle_b))
    _attach(f"{repo}:a", _subject(a), bundle_b.read_bytes())
    _pull_refused(f"{repo}:a", keypair[1], tmp_path)


def test_signature_copied_from_another_repository_is_refused(
    registry: registry_server.RegistryServer, raw: RawRegistry, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """Repository X's signed referrer (subject X's model) listed in repository Y's referrers."""
    x, y = f"{registry.host}/test/x-{tmp_path.name[-8:]}", f"{registry.host}/test/y-{tmp_path.name[-8:]}"
    a = _push(tmp_path, f"{x}:v1", "a")
    b = _push(tmp_path, f"{y}:v1", "b")
    sign(f"{x}:v1", keypair[0])
    index = _fallback_index(raw, _repo_path(x), a.digest)
    for entry in index["manifests"]:
        manifest = raw.get_manifest(_repo_path(x), entry["digest"])
        value = json.loads(manifest)
        for blob in [value["config"], *value["layers"]]:
            raw.put_blob(_repo_path(y), raw.get_blob(_repo_path(x), blob["digest"]))
        raw.put_manifest(_repo_path(y), entry["digest"], manifest)
    raw.put_manifest(_repo_path(y), b.digest.replace(":", "-"), json.dumps(index).encode(), OCI_INDEX)
    _pull_refused(f"{y}:v1", keypair[1], tmp_path)


def test_referrers_index_copied_to_another_digest_is_refused(
    raw: RawRegistry, repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """A's whole referrers index re-tagged as B's (signature 're-attached' under B's tag)."""
    a = _push(tmp_path, f"{repo}:v1", "a")
    b = _push(tmp_path, f"{repo}:v2", "b")
    sign(f"{repo}:v1", keypair[0])
    index = raw.get_manifest(_repo_path(repo), a.digest.replace(":", "-"))
    raw.put_manifest(_repo_path(repo), b.digest.replace(":", "-"), index, OCI_INDEX)
    _pull_refused(f"{repo}:v2", keypair[1], tmp_path)


def test_legacy_signature_retagged_for_another_digest_is_refused(
    raw: RawRegistry, repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """cosign's ``sha256-A.sig`` manifest copied to ``sha256-B.sig``: its payload names A."""
    a = _push(tmp_path, f"{repo}:v1", "a")
    b = _push(tmp_path, f"{repo}:v2", "b")
    sign(f"{repo}:v1", keypair[0], "--format", "legacy", "--no-model-signing-bundle")
    sig = raw.get_manifest(_repo_path(repo), a.digest.replace(":", "-") + ".sig")
    raw.put_manifest(_repo_path(repo), b.digest.replace(":", "-") + ".sig", sig)
    _pull_refused(f"{repo}:v2", keypair[1], tmp_path)


def test_payload_type_changed_after_signing_is_refused(
    repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """The DSSE payloadType is covered by the signature (PAE): changing it breaks the signature."""
    a = _push(tmp_path, f"{repo}:v1", "a")
    good = tmp_path / "good.bundle"
    sign(f"{repo}:v1", keypair[0], "--output-bundle", str(good), "--no-model-signing-bundle")
    value = json.loads(good.read_bytes())
    value["dsseEnvelope"]["payloadType"] = "application/vnd.in-toto+json; evil"
    # Make the tampered bundle the only one: a fresh repository with the same model bytes.
    b_repo = repo + "-tampered"
    api.push(tmp_path / "a", f"{b_repo}:v1")
    _attach(f"{b_repo}:v1", _subject(a), json.dumps(value).encode())
    _pull_refused(f"{b_repo}:v1", keypair[1], tmp_path)


STATEMENTS: dict[str, tuple[bytes | None, str]] = {
    "payload-not-json": (b"this is not json", "application/vnd.in-toto+json"),
    "statement-is-a-list": (b"[]", "application/vnd.in-toto+json"),
    "subject-not-a-list": (b'{"_type":"https://in-toto.io/Statement/v1","subject":"x",'
                           b'"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}',
                           "application/vnd.in-toto+json"),
    "empty-subject": (b'{"_type":"https://in-toto.io/Statement/v1","subject":[],'
                      b'"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}',
                      "application/vnd.in-toto+json"),
    "wrong-statement-type": (None, "application/vnd.in-toto+json"),
    "wrong-payload-type": (None, "text/plain"),
    "subject-another-digest": (None, "application/vnd.in-toto+json"),
}


@pytest.mark.parametrize("case", sorted(STATEMENTS))
def test_validly_signed_malformed_statement_is_refused(
    case: str, repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """Signed with the right key, but the signed statement is malformed or names something else."""
    a = _push(tmp_path, f"{repo}:v1", "a")
    payload, payload_type = STATEMENTS[case]
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": a.digest.split(":")[1]}, "annotations": {}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    if case == "wrong-statement-type":
        statement["_type"] = "https://example.com/NotAStatement/v1"
    if case == "subject-another-digest":
        statement["subject"] = [{"digest": {"sha256": "0" * 64}, "annotations": {}}]
    if payload is None:
        payload = json.dumps(statement, separators=(",", ":")).encode()
    template = tmp_path / "t.bundle"
    other = f"{repo}-template:v1"
    api.push(make_model(tmp_path / "t"), other)
    sign(other, keypair[0], "--output-bundle", str(template), "--no-model-signing-bundle")
    _attach(f"{repo}:v1", _subject(a), _resign(template.read_bytes(), keypair[0], payload, payload_type))
    _pull_refused(f"{repo}:v1", keypair[1], tmp_path)


def test_model_signing_bundle_alone_does_not_admit_the_model(
    raw: RawRegistry, repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """Only the model-signing (files) bundle left in the index: it vouches for files, not for
    this manifest, so it does not admit the model by itself."""
    a = _push(tmp_path, f"{repo}:v1", "a")
    sign(f"{repo}:v1", keypair[0])
    tag = a.digest.replace(":", "-")
    index = _fallback_index(raw, _repo_path(repo), a.digest)
    index["manifests"] = [
        m for m in index["manifests"]
        if (m.get("annotations") or {}).get("dev.sigstore.bundle.predicateType") != COSIGN_SIGN_PREDICATE
    ]
    assert len(index["manifests"]) == 1
    raw.put_manifest(_repo_path(repo), tag, json.dumps(index).encode(), OCI_INDEX)
    _pull_refused(f"{repo}:v1", keypair[1], tmp_path, "manifest")


def test_garbage_referrer_does_not_hide_a_good_signature(
    repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """An attacker adds junk 'signatures' next to a real one: the real one still admits the model."""
    a = _push(tmp_path, f"{repo}:v1", "a")
    sign(f"{repo}:v1", keypair[0])
    for junk in (b"", b"{}", b"\x00" * 100, b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}'):
        _attach(f"{repo}:v1", _subject(a), junk)
    out = tmp_path / "dest"
    assert_ok(run_cli("pull", *verify_args(keypair[1]), f"{repo}:v1", out))
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "a" / "model.safetensors").read_bytes()


# -- the tag is resolved once --------------------------------------------------------------------
def test_pull_by_tag_resolves_the_tag_exactly_once(
    registry: registry_server.RegistryServer, proxy: FaultProxy, repo: str, tmp_path: Path,
    keypair: tuple[Path, Path],
) -> None:
    """Through a recording proxy: one manifest request names the tag; every later request names
    the digest (or a tag derived from it: the referrers fallback and the legacy .sig tag)."""
    a = _push(tmp_path, f"{repo}:v1", "a")
    sign(f"{repo}:v1", keypair[0])
    proxy.clear()
    out = tmp_path / "dest"
    via = repo.replace(registry.host, proxy.host)
    assert_ok(run_cli("pull", *verify_args(keypair[1]), f"{via}:v1", out))
    manifest_requests = proxy.log(path=r"/manifests/")
    by_tag = [r for r in manifest_requests if r.path.endswith("/manifests/v1")]
    assert len(by_tag) == 1, [r.path for r in manifest_requests]
    hexpart = a.digest.split(":")[1]
    others = [r for r in manifest_requests if r is not by_tag[0]]
    assert others
    for r in others:
        assert "/manifests/sha256:" in r.path or f"/manifests/sha256-{hexpart}" in r.path, r.path


def test_tag_moved_after_verification_does_not_change_what_is_pulled(
    registry: registry_server.RegistryServer, proxy: FaultProxy, raw: RawRegistry, repo: str, tmp_path: Path,
    keypair: tuple[Path, Path],
) -> None:
    """The tag is moved to an unsigned model while the first layer downloads: the pull still
    writes exactly the verified model (the digest it resolved and verified)."""
    from oci_model_sign.verify.policy import KeyPolicy

    a = _push(tmp_path, f"{repo}:v1", "a")
    b = _push(tmp_path, f"{repo}:evil", "b")
    sign(f"{repo}:v1", keypair[0])
    path = _repo_path(repo)
    moved: list[str] = []

    def move_tag(_req: object) -> None:
        if not moved:
            raw.put_manifest(path, "v1", raw.get_manifest(path, b.digest))
            moved.append(b.digest)

    proxy.add(Rule("GET", r"/blobs/sha256:", Fault.HOOK, hook=move_tag, times=1))
    via = repo.replace(registry.host, proxy.host)
    out = tmp_path / "dest"
    result = api.pull(f"{via}:v1", out, policy=KeyPolicy(keypair[1], ignore_tlog=True))
    assert moved == [b.digest]
    assert raw.get_manifest(path, "v1") == raw.get_manifest(path, b.digest)  # the tag did move
    assert result.digest == a.digest
    model_a = snapshot(tmp_path / "a")
    pulled = snapshot(out)
    assert pulled is not None and model_a is not None
    pulled.pop("model.sig", None)
    assert pulled == model_a
    # and the moved tag, now pointing at an unsigned model, is refused on the next pull
    _pull_refused(f"{repo}:v1", keypair[1], tmp_path / "again")
