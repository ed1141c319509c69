"""Real cosign signatures (the interop test vectors; tests skip when absent) verified by omsign, offline.

One test per vector; every keyless and tlog check uses the public-good trusted root file in
``trust-roots/`` so nothing touches the network.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from oci_model_sign.verify.bundle import verify_bundle
from oci_model_sign.verify.legacy import verify_simple_signing
from oci_model_sign.verify.policy import CertificateChainPolicy, IdentityPolicy, KeyPolicy
from oci_model_sign.verify.result import CandidateResult, VerificationResult

KUBEWARDEN_DIGEST = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172"
KUBEWARDEN_SAN = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
TOBBY_BUNDLE_DIGEST = "sha256:d7d5640c741c60b47fa4b5530daa20a6469b55754a89dd42adbadadb59f9093c"
TOBBY_LEGACY_DIGEST = "sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268"
ATTESTATION_DIGEST = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
VALID_DIGEST = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"


def trusted_root(interop: Path) -> Path:
    return interop / "trust-roots" / "public-good.trusted_root.json"


def ci_layer(path: Path) -> tuple[bytes, dict[str, str], str]:
    """One containers/image ``signature-N`` file: (payload, annotations, layer media type)."""
    raw = path.read_bytes()
    prefix = b"\x00sigstore-json\n"
    assert raw.startswith(prefix)
    doc = json.loads(raw[len(prefix) :])
    return base64.b64decode(doc["payload"]), doc["annotations"], doc["mimeType"]


def manifest_digest(vector: Path) -> str:
    return "sha256:" + hashlib.sha256((vector / "manifest.json").read_bytes()).hexdigest()


def verify_ci_dir(vector: Path, digest: str, policy: KeyPolicy | IdentityPolicy | CertificateChainPolicy) -> VerificationResult:
    candidates: list[CandidateResult] = []
    for sig in sorted(vector.glob("signature-*")):
        payload, annotations, media_type = ci_layer(sig)
        candidates.append(
            verify_simple_signing(payload, annotations, digest, policy, source=sig.name, media_type=media_type)
        )
    return VerificationResult.from_candidates(digest, candidates)


# tobby-fetch legacy .sig ------------------------------------------------------------------


def test_tobby_legacy_sig_layer_verifies_with_key_ignoring_tlog(interop: Path) -> None:
    base = interop / "tobby-fetch" / "legacy-attached" / "captured"
    manifest = json.loads((base / "signature-manifest.json").read_bytes())
    layer = manifest["layers"][0]
    payload = (base / "payload.json").read_bytes()
    assert "sha256:" + hashlib.sha256(payload).hexdigest() == layer["digest"]
    result = verify_simple_signing(
        payload, layer["annotations"], TOBBY_LEGACY_DIGEST,
        KeyPolicy(base / "cosign.pub", ignore_tlog=True),
        source="legacy .sig layer 1", media_type=layer["mediaType"], require_type=True,
    )
    assert result.ok, result.reason
    assert result.signer == "sha256:dc2bcfdb0402cd0845f59232655c3ab2a53d55849d4665579efe45c6cc753478"


def test_tobby_legacy_sig_without_tlog_is_refused_unless_ignore_tlog(interop: Path) -> None:
    base = interop / "tobby-fetch" / "legacy-attached" / "captured"
    layer = json.loads((base / "signature-manifest.json").read_bytes())["layers"][0]
    result = verify_simple_signing(
        (base / "payload.json").read_bytes(), layer["annotations"], TOBBY_LEGACY_DIGEST,
        KeyPolicy(base / "cosign.pub", trusted_root=trusted_root(interop)), source="l",
    )
    assert not result.ok
    assert "--insecure-ignore-tlog" in result.reason


# tobby-fetch cosign v3 bundle with key + Rekor ---------------------------------------------


def test_tobby_bundle_verifies_with_key_and_rekor_set_and_inclusion_proof(interop: Path) -> None:
    base = interop / "tobby-fetch" / "bundle-format" / "captured"
    policy = KeyPolicy(base / "bundle-cosign.pub", trusted_root=trusted_root(interop))
    result = verify_bundle((base / "bundle-sigstore.json").read_bytes(), TOBBY_BUNDLE_DIGEST, policy, source="referrer")
    assert result.ok, result.reason
    assert result.predicate_type == "https://sigstore.dev/cosign/sign/v1"
    assert result.kind == "cosign-bundle"


def test_tobby_bundle_verifies_with_key_ignoring_tlog(interop: Path) -> None:
    base = interop / "tobby-fetch" / "bundle-format" / "captured"
    policy = KeyPolicy(base / "bundle-cosign.pub", ignore_tlog=True)
    result = verify_bundle((base / "bundle-sigstore.json").read_bytes(), TOBBY_BUNDLE_DIGEST, policy, source="referrer")
    assert result.ok, result.reason


def test_tobby_bundle_from_the_oci_layout_blob_matches_the_referrer_layer(interop: Path) -> None:
    layout = interop / "tobby-fetch" / "bundle-format" / "oci-layout-assembled" / "blobs" / "sha256"
    manifest = json.loads((layout / "aa34dbe1db5336a0a85e4cc7eced2f5dc91f0062322972fe29c4002372a7adff").read_bytes())
    assert manifest["subject"]["digest"] == TOBBY_BUNDLE_DIGEST
    blob = (layout / manifest["layers"][0]["digest"].split(":", 1)[1]).read_bytes()
    policy = KeyPolicy(interop / "tobby-fetch" / "bundle-format" / "captured" / "bundle-cosign.pub", trusted_root=trusted_root(interop))
    assert verify_bundle(blob, manifest["subject"]["digest"], policy, source="referrer").ok


def test_tobby_bundle_for_another_digest_is_rejected(interop: Path) -> None:
    base = interop / "tobby-fetch" / "bundle-format" / "captured"
    policy = KeyPolicy(base / "bundle-cosign.pub", ignore_tlog=True)
    result = verify_bundle((base / "bundle-sigstore.json").read_bytes(), VALID_DIGEST, policy, source="referrer")
    assert not result.ok
    assert "signed another artifact: " + TOBBY_BUNDLE_DIGEST in result.reason


def test_tobby_bundle_with_another_key_is_rejected(interop: Path) -> None:
    base = interop / "tobby-fetch" / "bundle-format" / "captured"
    policy = KeyPolicy(interop / "containers-image" / "keys" / "cosign.pub", ignore_tlog=True)
    result = verify_bundle((base / "bundle-sigstore.json").read_bytes(), TOBBY_BUNDLE_DIGEST, policy, source="referrer")
    assert not result.ok
    assert "does not verify" in result.reason


def test_tobby_bundle_rejected_when_trusted_root_lacks_its_rekor_log(interop: Path, tmp_path: Path) -> None:
    root = json.loads(trusted_root(interop).read_bytes())
    root["tlogs"] = [t for t in root["tlogs"] if "log2025" in t["baseUrl"]]
    other = tmp_path / "root.json"
    other.write_text(json.dumps(root))
    base = interop / "tobby-fetch" / "bundle-format" / "captured"
    result = verify_bundle(
        (base / "bundle-sigstore.json").read_bytes(), TOBBY_BUNDLE_DIGEST,
        KeyPolicy(base / "bundle-cosign.pub", trusted_root=other), source="referrer",
    )
    assert not result.ok
    assert "not in the trusted root" in result.reason


# kubewarden keyless bundle -----------------------------------------------------------------


def kubewarden(interop: Path) -> bytes:
    return (interop / "sigstore-rs" / "bundle-v03-kubewarden-controller" / "bundle_v03.json").read_bytes()


def test_kubewarden_keyless_bundle_verifies_offline_with_identity(interop: Path) -> None:
    policy = IdentityPolicy(identity=KUBEWARDEN_SAN, issuer=GITHUB_ISSUER, trust_config=trusted_root(interop), offline=True)
    result = verify_bundle(kubewarden(interop), KUBEWARDEN_DIGEST, policy, source="referrer")
    assert result.ok, result.reason
    assert result.signer == f"{KUBEWARDEN_SAN} ({GITHUB_ISSUER})"


def test_kubewarden_keyless_bundle_verifies_with_regexps(interop: Path) -> None:
    policy = IdentityPolicy(
        identity_regexp=r"^https://github\.com/kubewarden/", issuer_regexp=r"^https://token\.actions\.",
        trust_config=trusted_root(interop), offline=True,
    )
    assert verify_bundle(kubewarden(interop), KUBEWARDEN_DIGEST, policy, source="referrer").ok


def test_kubewarden_keyless_bundle_rejects_wrong_identity(interop: Path) -> None:
    policy = IdentityPolicy(
        identity="https://github.com/evil/evil/.github/workflows/release.yml@refs/tags/v1.34.0",
        issuer=GITHUB_ISSUER, trust_config=trusted_root(interop), offline=True,
    )
    result = verify_bundle(kubewarden(interop), KUBEWARDEN_DIGEST, policy, source="referrer")
    assert not result.ok
    assert "identity" in result.reason


def test_kubewarden_keyless_bundle_rejects_wrong_issuer(interop: Path) -> None:
    policy = IdentityPolicy(identity=KUBEWARDEN_SAN, issuer="https://accounts.google.com", trust_config=trusted_root(interop), offline=True)
    result = verify_bundle(kubewarden(interop), KUBEWARDEN_DIGEST, policy, source="referrer")
    assert not result.ok
    assert "issuer" in result.reason


def test_kubewarden_keyless_bundle_rejected_with_key_policy(interop: Path) -> None:
    policy = KeyPolicy(interop / "containers-image" / "keys" / "cosign.pub", ignore_tlog=True)
    result = verify_bundle(kubewarden(interop), KUBEWARDEN_DIGEST, policy, source="referrer")
    assert not result.ok
    assert result.reason == "expected key signature, not certificate"


# cosign keyless attestation ----------------------------------------------------------------


def test_cosign_keyless_attestation_verifies_for_its_subject_image(interop: Path) -> None:
    base = interop / "sigstore-cosign" / "oci-attestation-keyless"
    subject = "sha256:" + hashlib.sha256((base / "subject-image" / "manifest.json").read_bytes()).hexdigest()
    assert subject == ATTESTATION_DIGEST
    policy = IdentityPolicy(identity="cody@soyland.com", issuer="https://github.com/login/oauth", trust_config=trusted_root(interop), offline=True)
    bundle = (base / "oci-attestation.sigstore.json").read_bytes()
    result = verify_bundle(bundle, subject, policy, source="referrer", predicate_types=None)
    assert result.ok, result.reason
    assert result.predicate_type == "https://cosign.sigstore.dev/attestation/v1"
    # The same valid attestation does not admit the image: only sign/v1 does.
    admitted = verify_bundle(bundle, subject, policy, source="referrer")
    assert not admitted.ok
    assert "does not admit a model" in admitted.reason


def test_cosign_keyless_attestation_verifies_with_cosigns_test_root(interop: Path) -> None:
    base = interop / "sigstore-cosign" / "oci-attestation-keyless"
    policy = IdentityPolicy(identity="cody@soyland.com", issuer="https://github.com/login/oauth", trust_config=base / "trusted_root_pgi.json")
    assert verify_bundle((base / "oci-attestation.sigstore.json").read_bytes(), ATTESTATION_DIGEST, policy, source="r", predicate_types=None).ok


def test_cosign_keyless_attestation_rejects_another_email(interop: Path) -> None:
    base = interop / "sigstore-cosign" / "oci-attestation-keyless"
    policy = IdentityPolicy(identity="mallory@example.com", issuer="https://github.com/login/oauth", trust_config=trusted_root(interop), offline=True)
    result = verify_bundle((base / "oci-attestation.sigstore.json").read_bytes(), ATTESTATION_DIGEST, policy, source="r")
    assert not result.ok
    assert "identity" in result.reason


# containers/image positive vectors --------------------------------------------------------


def keys(interop: Path) -> Path:
    return interop / "containers-image" / "keys"


def test_containers_image_valid_key_signature(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-valid"
    result = verify_ci_dir(vector, manifest_digest(vector), KeyPolicy(keys(interop) / "cosign.pub", ignore_tlog=True))
    assert manifest_digest(vector) == VALID_DIGEST
    assert result.ok, result.summary()


def test_containers_image_valid_2_both_signatures_verify(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-valid-2"
    result = verify_ci_dir(vector, manifest_digest(vector), KeyPolicy(keys(interop) / "cosign.pub", ignore_tlog=True))
    assert [c.ok for c in result.candidates] == [True, True]


def test_containers_image_key_with_rekor_set(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-key-rekor-valid"
    policy = KeyPolicy(keys(interop) / "cosign2.pub", trusted_root=trusted_root(interop))
    result = verify_ci_dir(vector, manifest_digest(vector), policy)
    assert result.ok, result.summary()


def test_containers_image_key_with_rekor_set_fails_with_tampered_set(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-key-rekor-valid"
    payload, annotations, _ = ci_layer(vector / "signature-1")
    bundle = json.loads(annotations["dev.sigstore.cosign/bundle"])
    bundle["Payload"]["integratedTime"] += 1
    annotations["dev.sigstore.cosign/bundle"] = json.dumps(bundle)
    policy = KeyPolicy(keys(interop) / "cosign2.pub", trusted_root=trusted_root(interop))
    result = verify_simple_signing(payload, annotations, manifest_digest(vector), policy, source="s")
    assert not result.ok
    assert "SET" in result.reason


def test_containers_image_fulcio_rekor_keyless(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-fulcio-rekor-valid"
    policy = IdentityPolicy(identity="mitr@redhat.com", issuer="https://github.com/login/oauth", trust_config=trusted_root(interop), offline=True)
    result = verify_ci_dir(vector, manifest_digest(vector), policy)
    assert result.ok, result.summary()
    assert result.accepted is not None and result.accepted.signer == "mitr@redhat.com (https://github.com/login/oauth)"


def test_containers_image_fulcio_rekor_keyless_rejects_wrong_identity(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-fulcio-rekor-valid"
    policy = IdentityPolicy(identity="someone@redhat.com", issuer="https://github.com/login/oauth", trust_config=trusted_root(interop), offline=True)
    result = verify_ci_dir(vector, manifest_digest(vector), policy)
    assert not result.ok
    assert "identity" in result.candidates[0].reason


def test_containers_image_byo_pki_rsa_signature_with_ca_roots(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-pki-valid"
    policy = CertificateChainPolicy(
        keys(interop) / "pki_root_crts.pem", keys(interop) / "pki_intermediate_crts.pem",
        identity="qiwan@redhat.com", issuer_regexp="^$", ignore_tlog=True,
    )
    result = verify_ci_dir(vector, manifest_digest(vector), policy)
    assert result.ok, result.summary()


def test_containers_image_byo_pki_rejected_by_another_ca(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-pki-valid"
    policy = CertificateChainPolicy(keys(interop) / "fulcio_v1.crt.pem", identity_regexp=".*", issuer_regexp=".*", ignore_tlog=True)
    result = verify_ci_dir(vector, manifest_digest(vector), policy)
    assert not result.ok
    assert "does not chain" in result.candidates[0].reason


def test_containers_image_skopeo_signature_with_tag_and_optional_annotations(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-valid-with-tag"
    policy = KeyPolicy(keys(interop) / "cosign.pub", ignore_tlog=True, annotations={"creator": "containers/image 5.21.2-dev"})
    result = verify_ci_dir(vector, manifest_digest(vector), policy)
    assert result.ok, result.summary()
    assert result.candidates[0].annotations["creator"] == "containers/image 5.21.2-dev"


def test_containers_image_annotation_mismatch_is_rejected(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-valid-with-tag"
    policy = KeyPolicy(keys(interop) / "cosign.pub", ignore_tlog=True, annotations={"creator": "someone else"})
    result = verify_ci_dir(vector, manifest_digest(vector), policy)
    assert not result.ok
    assert "annotation 'creator'" in result.candidates[0].reason


def test_rekor_set_vector_keyless_signature(interop: Path) -> None:
    base = interop / "containers-image" / "rekor-set-vector"
    payload = (base / "rekor-payload").read_bytes()
    annotations = {
        "dev.cosignproject.cosign/signature": (base / "rekor-sig").read_text(),
        "dev.sigstore.cosign/certificate": (base / "rekor-cert").read_text(),
        "dev.sigstore.cosign/bundle": (base / "rekor-set").read_text(),
    }
    digest = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
    policy = IdentityPolicy(identity="mitr@redhat.com", issuer="https://github.com/login/oauth", trust_config=trusted_root(interop), offline=True)
    result = verify_simple_signing(payload, annotations, digest, policy, source="rekor-set-vector")
    assert result.ok, result.reason


# containers/image negative vectors --------------------------------------------------------


def test_containers_image_mixed_passes_on_the_valid_signature_only(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-mixed"
    result = verify_ci_dir(vector, manifest_digest(vector), KeyPolicy(keys(interop) / "cosign.pub", ignore_tlog=True))
    assert [c.ok for c in result.candidates] == [False, True]
    assert "does not verify" in result.candidates[0].reason
    assert result.ok and result.accepted is result.candidates[1]


def test_containers_image_modified_manifest_is_rejected(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-modified-manifest"
    result = verify_ci_dir(vector, manifest_digest(vector), KeyPolicy(keys(interop) / "cosign.pub", ignore_tlog=True))
    assert not result.ok
    assert "signed another artifact: " + VALID_DIGEST in result.candidates[0].reason


def test_containers_image_manifest_digest_error_is_rejected(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-manifest-digest-error"
    result = verify_ci_dir(vector, manifest_digest(vector), KeyPolicy(keys(interop) / "cosign.pub", ignore_tlog=True))
    assert not result.ok
    assert "signed another artifact" in result.candidates[0].reason


def test_containers_image_no_manifest_cannot_match_any_digest(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-no-manifest"
    assert not (vector / "manifest.json").exists()
    # Without the manifest the only digest we could check is one we invent: it must not match.
    invented = "sha256:" + hashlib.sha256(b"").hexdigest()
    result = verify_ci_dir(vector, invented, KeyPolicy(keys(interop) / "cosign.pub", ignore_tlog=True))
    assert not result.ok
    assert "signed another artifact" in result.candidates[0].reason
    with pytest.raises(Exception, match="1 candidate"):
        result.raise_if_failed()


def test_containers_image_other_attachment_is_rejected(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-other-attachment"
    result = verify_ci_dir(vector, manifest_digest(vector), KeyPolicy(keys(interop) / "cosign.pub", ignore_tlog=True))
    assert not result.ok
    assert "not a cosign simple signing payload" in result.candidates[0].reason


def test_containers_image_other_attachment_rejected_even_ignoring_media_type(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-other-attachment"
    payload, annotations, _ = ci_layer(vector / "signature-1")
    result = verify_simple_signing(payload, annotations, manifest_digest(vector), KeyPolicy(keys(interop) / "cosign.pub", ignore_tlog=True), source="s")
    assert not result.ok


def test_unknown_key_signature_is_rejected(interop: Path) -> None:
    payload, annotations, _ = ci_layer(interop / "containers-image" / "unknown-cosign-key.signature")
    result = verify_simple_signing(payload, annotations, VALID_DIGEST, KeyPolicy(keys(interop) / "cosign.pub", ignore_tlog=True), source="s")
    assert not result.ok
    assert result.reason == "signature does not verify with the given public key"


def test_valid_signature_rejected_with_the_other_cosign_key(interop: Path) -> None:
    vector = interop / "containers-image" / "dir-img-cosign-valid"
    result = verify_ci_dir(vector, manifest_digest(vector), KeyPolicy(keys(interop) / "cosign2.pub", ignore_tlog=True))
    assert not result.ok


# sigstore-rs 2021 vectors ------------------------------------------------------------------


def test_sigstore_rs_busybox_2021_key_signature(interop: Path) -> None:
    base = interop / "sigstore-rs" / "legacy-layers" / "busybox-key-2021"
    annotations = {"dev.cosignproject.cosign/signature": (base / "signature.b64").read_text()}
    result = verify_simple_signing(
        (base / "payload.json").read_bytes(), annotations,
        "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b",
        KeyPolicy(base / "cosign.pub", ignore_tlog=True), source="busybox",
    )
    assert result.ok, result.reason


def nodeport(interop: Path) -> tuple[bytes, dict[str, str], str]:
    base = interop / "sigstore-rs" / "legacy-layers" / "disallow-service-nodeport-keyless-2021"
    annotations = {
        "dev.cosignproject.cosign/signature": (base / "signature.b64").read_text(),
        "dev.sigstore.cosign/certificate": (base / "certificate.pem").read_text(),
        "dev.sigstore.cosign/bundle": (base / "rekor-bundle-annotation.json").read_text(),
    }
    return (base / "payload.json").read_bytes(), annotations, "sha256:5f481572d088dc4023afb35fced9530ced3d9b03bf7299c6f492163cb9f0452e"


def test_sigstore_rs_2021_keyless_rekord_signature_with_ignore_sct(interop: Path) -> None:
    payload, annotations, digest = nodeport(interop)
    # The 2021 certificate has no OIDC issuer extension: like cosign its issuer is "".
    policy = IdentityPolicy(identity="flavio@castelli.me", issuer_regexp="^$", trust_config=trusted_root(interop), offline=True, ignore_sct=True)
    result = verify_simple_signing(payload, annotations, digest, policy, source="nodeport")
    assert result.ok, result.reason


def test_sigstore_rs_2021_keyless_requires_ignore_sct(interop: Path) -> None:
    payload, annotations, digest = nodeport(interop)
    policy = IdentityPolicy(identity="flavio@castelli.me", issuer_regexp="^$", trust_config=trusted_root(interop), offline=True)
    result = verify_simple_signing(payload, annotations, digest, policy, source="nodeport")
    assert not result.ok
    assert "ignore_sct=True" in result.reason  # names the API setting: the CLI has no such flag


def test_sigstore_rs_2021_keyless_rejects_an_exact_issuer(interop: Path) -> None:
    payload, annotations, digest = nodeport(interop)
    policy = IdentityPolicy(identity="flavio@castelli.me", issuer="https://github.com/login/oauth", trust_config=trusted_root(interop), offline=True, ignore_sct=True)
    result = verify_simple_signing(payload, annotations, digest, policy, source="nodeport")
    assert not result.ok
    assert "no OIDC issuer" in result.reason


def test_sigstore_rs_2021_keyless_fails_outside_the_certificate_window(interop: Path) -> None:
    payload, annotations, digest = nodeport(interop)
    bundle = json.loads(annotations["dev.sigstore.cosign/bundle"])
    bundle["Payload"]["integratedTime"] += 3600  # SET no longer verifies either; time is bound to it
    annotations["dev.sigstore.cosign/bundle"] = json.dumps(bundle)
    policy = IdentityPolicy(identity="flavio@castelli.me", issuer_regexp="^$", trust_config=trusted_root(interop), offline=True, ignore_sct=True)
    assert not verify_simple_signing(payload, annotations, digest, policy, source="nodeport").ok
