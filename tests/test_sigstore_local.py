"""The offline keyless Sigstore used by omsign's tests works, and sigstore-js interoperates.

These tests use sigstore-python and the sigstore-js CLI directly (no omsign code): they pin
down that the local Fulcio/Rekor/TSA produce bundles that both independent implementations
accept for the signer's identity only, and that sigstore-js attaches bundles to an image the
way the referrers fallback (`sha256-<hex>` tag) on distribution 2.8 expects.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path

import httpx
import pytest
from sigstore.dsse import Statement, StatementBuilder, Subject
from sigstore.errors import VerificationError
from sigstore.models import Bundle, ClientTrustConfig
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import Verifier, policy

from tests.registry_server import RegistryServer
from tests.sigstore_local import fixture as sl
from tests.sigstore_local.fixture import (
    SigstoreLocal,
    SigstoreLocalError,
    sigstore_js_attach,
    sigstore_js_verify,
)

ALICE = "alice@example.com"
BOB = "bob@example.com"
ISSUER = "https://issuer.example.com"
OTHER_ISSUER = "https://other-issuer.example.com"
ARTIFACT = b"model weights, pretend\n"

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_BLOB).hexdigest()


def _trust(services: SigstoreLocal) -> ClientTrustConfig:
    return ClientTrustConfig.from_json(services.trust_config.read_text())


def _statement() -> Statement:
    return (
        StatementBuilder()
        .subjects(
            [
                Subject.model_validate(
                    {"name": "model", "digest": {"sha256": hashlib.sha256(ARTIFACT).hexdigest()}}
                )
            ]
        )
        .predicate_type("https://example.com/omsign-test/v1")
        .predicate({"purpose": "sigstore_local round trip"})
        .build()
    )


# NB: keep the Signer's default cache=True. In sigstore-python 4.5.1, cache=False makes every
# `_private_key` access generate a fresh key, so the certified key is not the signing key.
def _sign_dsse(services: SigstoreLocal, identity: str = ALICE, issuer: str = ISSUER) -> Bundle:
    ctx = SigningContext.from_trust_config(_trust(services))
    with ctx.signer(IdentityToken(services.token(identity, issuer))) as signer:
        return signer.sign_dsse(_statement())


def _sign_artifact(services: SigstoreLocal, identity: str = ALICE, issuer: str = ISSUER) -> Bundle:
    ctx = SigningContext.from_trust_config(_trust(services))
    with ctx.signer(IdentityToken(services.token(identity, issuer))) as signer:
        return signer.sign_artifact(ARTIFACT)


@pytest.fixture(scope="module")
def dsse_bundle(sigstore_local: SigstoreLocal) -> Bundle:
    return _sign_dsse(sigstore_local)


@pytest.fixture(scope="module")
def artifact_bundle(sigstore_local: SigstoreLocal) -> Bundle:
    return _sign_artifact(sigstore_local)


# ----------------------------------------------------------------- the fixture's own contract


def test_token_is_accepted_by_sigstore_python_with_its_identity_and_issuer(
    sigstore_local: SigstoreLocal,
) -> None:
    token = IdentityToken(sigstore_local.token(BOB, OTHER_ISSUER))
    assert token.identity == BOB
    assert token.issuer == OTHER_ISSUER
    assert token.in_validity_period()


def test_trust_config_points_every_service_at_the_local_server(
    sigstore_local: SigstoreLocal,
) -> None:
    raw = json.loads(sigstore_local.trust_config.read_text())
    signing = raw["signingConfig"]
    urls = [s["url"] for key in ("caUrls", "rekorTlogUrls", "tsaUrls") for s in signing[key]]
    assert urls and all(u.startswith(f"http://127.0.0.1:{sigstore_local.port}") for u in urls)
    assert signing["oidcUrls"] == []
    assert [s["majorApiVersion"] for s in signing["rekorTlogUrls"]] == [1]
    tlog = raw["trustedRoot"]["tlogs"][0]
    expected_id = base64.b64encode(
        hashlib.sha256(base64.b64decode(tlog["publicKey"]["rawBytes"])).digest()
    ).decode()
    assert tlog["logId"]["keyId"] == expected_id


def test_missing_node_modules_skips_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sl, "NODE_MODULES", tmp_path / "node_modules")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="make node-deps"):
        sl.require_node()


def test_missing_node_modules_fails_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sl, "NODE_MODULES", tmp_path / "node_modules")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make node-deps"):
        sl.require_node()


def test_server_exits_when_its_stdin_closes(sigstore_local: SigstoreLocal) -> None:
    services = sl.start()
    try:
        assert services.process.stdin is not None
        services.process.stdin.close()
        assert services.process.wait(timeout=60) == 0
    finally:
        services.stop()


def test_server_exits_on_sigterm(sigstore_local: SigstoreLocal) -> None:
    services = sl.start()
    try:
        services.process.terminate()
        assert services.process.wait(timeout=60) == 0
    finally:
        services.stop()


# ----------------------------------------------------------------- sigstore-python round trip


def test_dsse_bundle_verifies_for_the_signing_identity(
    sigstore_local: SigstoreLocal, dsse_bundle: Bundle
) -> None:
    verifier = Verifier(trusted_root=_trust(sigstore_local).trusted_root)
    payload_type, payload = verifier.verify_dsse(
        dsse_bundle, policy.Identity(identity=ALICE, issuer=ISSUER)
    )
    assert payload_type == "application/vnd.in-toto+json"
    assert json.loads(payload)["predicateType"] == "https://example.com/omsign-test/v1"


def test_artifact_bundle_verifies_for_the_signing_identity(
    sigstore_local: SigstoreLocal, artifact_bundle: Bundle
) -> None:
    verifier = Verifier(trusted_root=_trust(sigstore_local).trusted_root)
    verifier.verify_artifact(
        ARTIFACT, artifact_bundle, policy.Identity(identity=ALICE, issuer=ISSUER)
    )


def test_bundle_carries_certificate_tlog_entry_and_timestamp(artifact_bundle: Bundle) -> None:
    raw = json.loads(artifact_bundle.to_json())
    assert raw["mediaType"] == BUNDLE_MEDIA_TYPE
    material = raw["verificationMaterial"]
    assert "rawBytes" in material["certificate"]
    [entry] = material["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    assert entry["inclusionProof"]["checkpoint"]["envelope"]
    assert material["timestampVerificationData"]["rfc3161Timestamps"]


def test_other_identity_is_rejected(sigstore_local: SigstoreLocal, dsse_bundle: Bundle) -> None:
    verifier = Verifier(trusted_root=_trust(sigstore_local).trusted_root)
    with pytest.raises(VerificationError):
        verifier.verify_dsse(dsse_bundle, policy.Identity(identity=BOB, issuer=ISSUER))


def test_other_issuer_is_rejected(sigstore_local: SigstoreLocal, dsse_bundle: Bundle) -> None:
    verifier = Verifier(trusted_root=_trust(sigstore_local).trusted_root)
    with pytest.raises(VerificationError):
        verifier.verify_dsse(dsse_bundle, policy.Identity(identity=ALICE, issuer=OTHER_ISSUER))


def test_modified_artifact_is_rejected(
    sigstore_local: SigstoreLocal, artifact_bundle: Bundle
) -> None:
    verifier = Verifier(trusted_root=_trust(sigstore_local).trusted_root)
    with pytest.raises(VerificationError):
        verifier.verify_artifact(
            ARTIFACT + b"!", artifact_bundle, policy.Identity(identity=ALICE, issuer=ISSUER)
        )


def test_bundle_from_another_sigstore_instance_is_rejected(
    sigstore_local: SigstoreLocal, dsse_bundle: Bundle
) -> None:
    other = sl.start()
    try:
        verifier = Verifier(trusted_root=_trust(other).trusted_root)
        with pytest.raises(VerificationError):
            verifier.verify_dsse(dsse_bundle, policy.Identity(identity=ALICE, issuer=ISSUER))
    finally:
        other.stop()


# ----------------------------------------------------------------- sigstore-js verify (peer)


def test_sigstore_js_verifies_a_sigstore_python_dsse_bundle(
    sigstore_local: SigstoreLocal, dsse_bundle: Bundle, tmp_path: Path
) -> None:
    path = tmp_path / "dsse.sigstore.json"
    path.write_text(dsse_bundle.to_json())
    result = sigstore_js_verify(path, sigstore_local, identity=ALICE, issuer=ISSUER)
    assert result == {"verified": True}


def test_sigstore_js_verifies_a_sigstore_python_artifact_bundle(
    sigstore_local: SigstoreLocal, artifact_bundle: Bundle, tmp_path: Path
) -> None:
    path = tmp_path / "artifact.sigstore.json"
    path.write_text(artifact_bundle.to_json())
    blob = tmp_path / "artifact.bin"
    blob.write_bytes(ARTIFACT)
    result = sigstore_js_verify(path, sigstore_local, artifact=blob, identity=ALICE, issuer=ISSUER)
    assert result == {"verified": True}


def test_sigstore_js_rejects_another_identity(
    sigstore_local: SigstoreLocal, dsse_bundle: Bundle, tmp_path: Path
) -> None:
    path = tmp_path / "dsse.sigstore.json"
    path.write_text(dsse_bundle.to_json())
    with pytest.raises(SigstoreLocalError, match="verify failed"):
        sigstore_js_verify(path, sigstore_local, identity=BOB, issuer=ISSUER)


def test_sigstore_js_rejects_another_issuer(
    sigstore_local: SigstoreLocal, dsse_bundle: Bundle, tmp_path: Path
) -> None:
    path = tmp_path / "dsse.sigstore.json"
    path.write_text(dsse_bundle.to_json())
    with pytest.raises(SigstoreLocalError, match="verify failed"):
        sigstore_js_verify(path, sigstore_local, identity=ALICE, issuer=OTHER_ISSUER)


def test_sigstore_js_rejects_a_modified_artifact(
    sigstore_local: SigstoreLocal, artifact_bundle: Bundle, tmp_path: Path
) -> None:
    path = tmp_path / "artifact.sigstore.json"
    path.write_text(artifact_bundle.to_json())
    blob = tmp_path / "artifact.bin"
    blob.write_bytes(ARTIFACT + b"!")
    with pytest.raises(SigstoreLocalError, match="verify failed"):
        sigstore_js_verify(path, sigstore_local, artifact=blob, identity=ALICE, issuer=ISSUER)


# ----------------------------------------------------------------- sigstore-js attach (peer)


def _push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = client.post(f"/v2/{name}/blobs/uploads/")
    assert start.status_code == 202, start.text
    location = httpx.URL(start.headers["Location"])
    # keep the registry's _state query and add the digest to it
    done = client.put(
        location.copy_merge_params({"digest": digest}),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    return digest


def _push_subject(registry: RegistryServer, name: str) -> str:
    """A tiny OCI artifact to attach to: empty config, one empty layer."""
    assert registry.username is not None and registry.password is not None
    with httpx.Client(
        base_url=registry.url, auth=(registry.username, registry.password), timeout=30
    ) as client:
        _push_blob(client, name, EMPTY_BLOB)
        empty = {"mediaType": EMPTY_MEDIA_TYPE, "size": 2, "digest": EMPTY_DIGEST}
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.example.omsign-test",
                "config": empty,
                "layers": [empty],
            },
            separators=(",", ":"),
        ).encode()
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        put = client.put(
            f"/v2/{name}/manifests/{digest}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert put.status_code == 201, put.text
        return digest


def test_sigstore_js_attach_writes_a_fallback_referrer_holding_the_bundle(
    sigstore_local: SigstoreLocal,
    dsse_bundle: Bundle,
    auth_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    assert auth_registry.username is not None and auth_registry.password is not None
    name = f"test/js-attach-{uuid.uuid4().hex[:8]}"
    subject = _push_subject(auth_registry, name)
    bundle_path = tmp_path / "bundle.sigstore.json"
    bundle_bytes = dsse_bundle.to_json().encode()
    bundle_path.write_bytes(bundle_bytes)

    sigstore_js_attach(
        bundle_path,
        f"{auth_registry.host}/{name}@{subject}",
        auth_registry.username,
        auth_registry.password,
    )

    with httpx.Client(
        base_url=auth_registry.url,
        auth=(auth_registry.username, auth_registry.password),
        timeout=30,
    ) as client:
        index_resp = client.get(
            f"/v2/{name}/manifests/{subject.replace(':', '-')}", headers={"Accept": OCI_INDEX}
        )
        assert index_resp.status_code == 200, index_resp.text
        index = index_resp.json()
        assert index["mediaType"] == OCI_INDEX
        [referrer] = index["manifests"]
        assert referrer["artifactType"] == BUNDLE_MEDIA_TYPE

        manifest_resp = client.get(
            f"/v2/{name}/manifests/{referrer['digest']}", headers={"Accept": OCI_MANIFEST}
        )
        assert manifest_resp.status_code == 200, manifest_resp.text
        assert "sha256:" + hashlib.sha256(manifest_resp.content).hexdigest() == referrer["digest"]
        manifest = manifest_resp.json()
        assert manifest["subject"]["digest"] == subject
        assert manifest["config"]["digest"] == EMPTY_DIGEST
        [layer] = manifest["layers"]
        assert layer["mediaType"] == BUNDLE_MEDIA_TYPE
        assert layer["digest"] == "sha256:" + hashlib.sha256(bundle_bytes).hexdigest()

        blob = client.get(f"/v2/{name}/blobs/{layer['digest']}", follow_redirects=True)
        assert blob.status_code == 200
        assert blob.content == bundle_bytes


def test_sigstore_js_attach_failure_is_reported_with_the_cli_output(
    sigstore_local: SigstoreLocal,
    dsse_bundle: Bundle,
    auth_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    assert auth_registry.username is not None
    bundle_path = tmp_path / "bundle.sigstore.json"
    bundle_path.write_text(dsse_bundle.to_json())
    missing = "sha256:" + "0" * 64
    with pytest.raises(SigstoreLocalError, match="attach failed") as excinfo:
        sigstore_js_attach(
            bundle_path,
            f"{auth_registry.host}/test/absent@{missing}",
            auth_registry.username,
            "wrong-password",
        )
    assert "wrong-password" not in str(excinfo.value)


def test_timestamp_authority_echoes_the_exact_64_bit_nonce(sigstore_local: SigstoreLocal) -> None:
    from rfc3161_client import TimestampRequestBuilder, decode_timestamp_response

    request = TimestampRequestBuilder().data(b"signature bytes").nonce(nonce=True).build()
    response = httpx.post(
        sigstore_local.material["tsa"]["url"],
        content=request.as_bytes(),
        headers={"Content-Type": "application/timestamp-query"},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text
    tst_info = decode_timestamp_response(response.content).tst_info
    assert tst_info.nonce == request.nonce
    assert tst_info.message_imprint.message == request.message_imprint.message
