"""What admits a model, what cosign can read, and ``model.sig`` after ``pull --verify``: end to
end against the real registry, as a user runs the CLI."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from oci_model_sign import api
from oci_model_sign.oci.descriptor import Descriptor
from oci_model_sign.signing.attach import attach_bundle
from oci_model_sign.signing.keys import load_private_key, sign_bytes
from oci_model_sign.signing.statements import cosign_docker_reference
from oci_model_sign.store import open_store
from oci_model_sign.store.base import StoreOptions
from oci_model_sign.verify.local import verify_local
from oci_model_sign.verify.policy import KeyPolicy
from tests import helpers
from tests.helpers import (
    OCI_MANIFEST,
    RawRegistry,
    assert_cli_error,
    assert_ok,
    assert_untouched,
    make_model,
    prefilled_dest,
    run_cli,
    sign,
    verify_args,
)

keypair = helpers.keypair
other_keypair = helpers.other_keypair
raw = helpers.raw

VULN_PREDICATE = "https://cosign.sigstore.dev/attestation/vuln/v1"


def _repo_path(ref: str) -> str:
    return ref.split("/", 1)[1].split("@")[0].rsplit(":", 1)[0]


# -- only sign/v1 admits a model ----------------------------------------------------------------
def test_validly_signed_vulnerability_report_does_not_admit_the_model(
    repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """The right key signed an in-toto statement about this manifest, but it is a report that
    says REJECT, not a signature of the model: pull --verify refuses, DEST untouched."""
    pushed = api.push(make_model(tmp_path / "a"), f"{repo}:v1")
    template = tmp_path / "t.bundle"
    api.push(make_model(tmp_path / "t"), f"{repo}-t:v1")
    sign(f"{repo}-t:v1", keypair[0], "--output-bundle", str(template), "--no-model-signing-bundle")
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": pushed.digest.split(":")[1]}, "annotations": {}}],
        "predicateType": VULN_PREDICATE,
        "predicate": {"scanner": {"result": "REJECT"}},
    }
    payload = json.dumps(statement, separators=(",", ":")).encode()
    t = b"application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)
    bundle = json.loads(template.read_bytes())
    bundle["dsseEnvelope"] = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": t.decode(),
        "signatures": [{"sig": base64.b64encode(sign_bytes(load_private_key(keypair[0], b"pw"), pae)).decode()}],
    }
    store = open_store(f"{repo}:v1", StoreOptions())
    try:
        attach_bundle(store, Descriptor(OCI_MANIFEST, pushed.digest, pushed.size), json.dumps(bundle).encode(), VULN_PREDICATE)
    finally:
        store.close()  # type: ignore[attr-defined]
    dest, before = prefilled_dest(tmp_path)
    assert_cli_error(run_cli("pull", "--force", *verify_args(keypair[1]), f"{repo}:v1", dest), 8, "does not admit a model")
    assert_untouched(dest, before)


# -- the legacy format, as cosign reads it ------------------------------------------------------
def test_legacy_format_attaches_no_bundle_referrer(repo: str, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    """cosign >= 2.6.3 stays in bundle mode if any bundle referrer exists: legacy leaves none."""
    api.push(make_model(tmp_path / "a"), f"{repo}:v1")
    result = sign(f"{repo}:v1", keypair[0], "--format", "legacy")
    assert "--format legacy attaches no bundle referrer" in result.stderr
    inspected = run_cli("inspect", f"{repo}:v1", "--json")
    assert_ok(inspected)
    info = json.loads(inspected.stdout)
    assert info["referrers"] == []
    assert info["legacySignatures"] == 1
    assert_ok(run_cli("verify", *verify_args(keypair[1]), f"{repo}:v1"))


def test_legacy_docker_reference_is_written_as_cosign_writes_it(
    raw: RawRegistry, repo: str, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    pushed = api.push(make_model(tmp_path / "a"), f"{repo}:v1")
    sign(f"{repo}:v1", keypair[0], "--format", "legacy")
    tag = pushed.digest.replace(":", "-") + ".sig"
    manifest = json.loads(raw.get_manifest(_repo_path(repo), tag))
    payload = json.loads(raw.get_blob(_repo_path(repo), manifest["layers"][0]["digest"]))
    host, name = repo.split("/", 1)
    assert payload["critical"]["identity"]["docker-reference"] == f"{host}/{name}"


def test_docker_hub_references_are_spelled_index_docker_io() -> None:
    """go-containerregistry's Repository.Name(), which cosign writes into the payload."""
    assert cosign_docker_reference("docker.io", "library/ubuntu") == "index.docker.io/library/ubuntu"
    assert cosign_docker_reference("index.docker.io", "org/model") == "index.docker.io/org/model"
    assert cosign_docker_reference("ghcr.io", "org/model") == "ghcr.io/org/model"


def test_legacy_signature_admitted_while_bundles_exist_carries_a_cosign_note(
    repo: str, tmp_path: Path, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    """cosign reads the .sig tag only when no bundle exists; omsign reads both and says so."""
    api.push(make_model(tmp_path / "a"), f"{repo}:v1")
    sign(f"{repo}:v1", keypair[0], "--format", "legacy")
    sign(f"{repo}:v1", other_keypair[0])  # a bundle by someone else
    result = run_cli("verify", *verify_args(keypair[1]), f"{repo}:v1")
    assert_ok(result)
    assert "cosign" in result.stderr and "would not accept" in result.stderr
    as_json = run_cli("verify", *verify_args(keypair[1]), f"{repo}:v1", "--json")
    assert json.loads(as_json.stdout)["notes"]
    alone = run_cli("verify", *verify_args(other_keypair[1]), f"{repo}:v1")
    assert_ok(alone)
    assert "would not accept" not in alone.stderr


# -- model.sig after pull --verify ---------------------------------------------------------------
def test_model_sig_is_written_with_an_annotation_policy(repo: str, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    """``-a`` claims belong to the cosign statement; the model-signing bundle still verifies."""
    model = make_model(tmp_path / "a")
    api.push(model, f"{repo}:v1")
    sign(f"{repo}:v1", keypair[0], "-a", "stage=prod")
    dest = tmp_path / "out"
    assert_ok(run_cli("pull", *verify_args(keypair[1]), "-a", "stage=prod", f"{repo}:v1", dest))
    assert (dest / "model.sig").is_file()
    result = verify_local(dest, policy=KeyPolicy(keypair[1], ignore_tlog=True))
    assert result.ok, result.summary()


def test_model_sig_is_written_for_a_model_with_git_files(repo: str, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    """The bundle's ignore_paths (git files, as model_signing records them) are honoured for a
    manifest that carries them (pushed with the git files kept, as ORAS or a mirror would)."""
    from oci_model_sign.model.pack import PackOptions

    model = make_model(tmp_path / "a", {"w.bin": 5000, ".gitattributes": b"*.bin filter=lfs\n", "README.md": b"# m\n"})
    api.push(model, f"{repo}:v1", pack_options=PackOptions(ignore_git=False))
    sign(f"{repo}:v1", keypair[0])
    dest = tmp_path / "out"
    assert_ok(run_cli("pull", *verify_args(keypair[1]), f"{repo}:v1", dest))
    assert (dest / ".gitattributes").is_file()
    assert (dest / "model.sig").is_file()
    assert_ok(run_cli("verify-local", dest, "--key", keypair[1]))


def test_include_subset_writes_no_model_sig_and_says_why(repo: str, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    api.push(make_model(tmp_path / "a"), f"{repo}:v1")
    sign(f"{repo}:v1", keypair[0])
    dest = tmp_path / "out"
    result = run_cli("pull", *verify_args(keypair[1]), "--include", "*.json", f"{repo}:v1", dest)
    assert_ok(result)
    assert sorted(p.name for p in dest.iterdir()) == ["config.json"]
    assert "model.sig not written: --include" in result.stderr


def test_model_file_named_model_sig_is_never_overwritten(repo: str, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    model = make_model(tmp_path / "a", {"w.bin": 5000, "model.sig": b"the model's own file\n"})
    api.push(model, f"{repo}:v1")
    sign(f"{repo}:v1", keypair[0])
    dest, before = prefilled_dest(tmp_path)
    assert_cli_error(run_cli("pull", "--force", *verify_args(keypair[1]), f"{repo}:v1", dest), 3, "model.sig")
    assert_untouched(dest, before)
    out = tmp_path / "kept"
    assert_ok(run_cli("pull", *verify_args(keypair[1]), "--no-model-signing-bundle", f"{repo}:v1", out))
    assert (out / "model.sig").read_bytes() == b"the model's own file\n"


def test_verify_local_defaults_to_the_model_sig_in_the_folder(repo: str, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    api.push(make_model(tmp_path / "a"), f"{repo}:v1")
    sign(f"{repo}:v1", keypair[0])
    dest = tmp_path / "out"
    assert_ok(run_cli("pull", *verify_args(keypair[1]), f"{repo}:v1", dest))
    # model.sig of a key signature is never logged (as model_signing): no tlog is asked of it.
    assert verify_local(dest, policy=KeyPolicy(keypair[1])).ok
