"""``omsign audit``: a registry walked for who signed which model, when, and the policy verdict.

Against the real docker-registry (and the local Sigstore services for keyless signers): models
are pushed by hand through the distribution API, signed with the real ``omsign sign``, and the
audit is read the way a user reads it (exit code, ``--json``, the HTML file).
"""

from __future__ import annotations

import json
import secrets
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    OCI_MANIFEST,
    SIGN_ENV,
    RawRegistry,
    assert_cli_error,
    assert_ok,
    keypair,
    layer,
    other_keypair,
    push_model_manifest,
    raw,
    run_cli,
    sha256,
    sign,
)
from tests.registry_server import RegistryServer
from tests.sigstore_local.fixture import SigstoreLocal
from tests.token_server import TokenServer

__all__ = ["keypair", "other_keypair", "raw"]  # fixtures used by name

ALICE = "alice@example.com"
BOB = "bob@example.com"
ISSUER = "https://issuer.example.com"


def fingerprint(pub: Path) -> str:
    from oci_model_sign.verify.policy import key_fingerprint, load_public_key

    return key_fingerprint(load_public_key(pub))


def push_tiny(raw: RawRegistry, repo: str, tag: str = "v1") -> str:
    """A one-file ModelPack model with unique bytes; returns its manifest digest."""
    return push_model_manifest(raw, repo, [layer("weights.bin", secrets.token_bytes(64))], tag=tag)


def audit_json(*args: str | Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli("audit", *args, "--json", env=env)
    assert_ok(result)
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def by_tag(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {tag: m for m in report["models"] for tag in m["tags"]}


@pytest.fixture
def key_signed_repo(registry: RegistryServer, raw: RawRegistry, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]) -> str:
    """A repository with a model signed by ``keypair``, one unsigned, one signed by another key."""
    repo = f"test/{uuid.uuid4().hex[:12]}"
    for tag in ("signed", "unsigned", "other"):
        push_tiny(raw, repo, tag)
    sign(f"{registry.host}/{repo}:signed", keypair[0])
    sign(f"{registry.host}/{repo}:other", other_keypair[0])
    return f"{registry.host}/{repo}"


def test_audit_reports_signed_unsigned_and_other_key_models(key_signed_repo: str, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]) -> None:
    report = audit_json(key_signed_repo, "--key", keypair[1], "--insecure-ignore-tlog")
    assert report["schemaVersion"] == 1
    models = by_tag(report)
    assert set(models) == {"signed", "unsigned", "other"}

    signed = models["signed"]
    assert signed["policy"]["verdict"] == "allow" and signed["policy"]["passes"] is True
    bundles = [s for s in signed["signatures"] if s["predicateType"] == "https://sigstore.dev/cosign/sign/v1"]
    assert len(bundles) == 1
    assert bundles[0]["verified"] is True and bundles[0]["verifiedBy"] == ["--key"]
    assert bundles[0]["kind"] == "key" and bundles[0]["fingerprint"] == fingerprint(keypair[1])
    assert "https://sigstore.dev/cosign/sign/v1" in {a["predicateType"] for a in signed["attestations"]}

    unsigned = models["unsigned"]
    assert unsigned["signatures"] == [] and unsigned["attestations"] == []
    assert unsigned["policy"]["verdict"] == "deny"
    assert "no verified signature" in unsigned["policy"]["reason"]

    other = models["other"]
    assert other["policy"]["verdict"] == "deny"
    assert other["signatures"] and not any(s["verified"] for s in other["signatures"])
    claimed = {s["fingerprint"] for s in other["signatures"] if s["predicateType"] == "https://sigstore.dev/cosign/sign/v1"}
    assert claimed == {fingerprint(other_keypair[1])}  # who claims to have signed, though unverified
    assert report["summary"]["passing"] == 1 and report["summary"]["failing"] == 2


def test_audit_signed_by_a_key_file_selects_only_that_keys_models(key_signed_repo: str, other_keypair: tuple[Path, Path]) -> None:
    report = audit_json(key_signed_repo, "--signed-by", other_keypair[1], "--policy", "none")
    assert list(by_tag(report)) == ["other"]
    model = report["models"][0]
    assert model["policy"] is None  # no policy: signers reported, no verdict
    assert any(s["verified"] and s["verifiedBy"] == ["--signed-by"] for s in model["signatures"])
    assert report["summary"]["modelsExamined"] == 3 and report["summary"]["modelsReported"] == 1


def test_audit_prints_a_table_by_default(key_signed_repo: str, keypair: tuple[Path, Path]) -> None:
    result = run_cli("audit", key_signed_repo, "--key", keypair[1], "--insecure-ignore-tlog")
    assert_ok(result)
    assert key_signed_repo.rsplit("/", 1)[1] in result.stdout
    assert "unsigned" in result.stdout and "allow" in result.stdout and "deny" in result.stdout
    assert "1 pass, 2 fail" in result.stdout


def test_audit_counts_distinct_signers_towards_a_threshold(
    registry: RegistryServer, raw: RawRegistry, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    repo = f"test/{uuid.uuid4().hex[:12]}"
    for tag in ("both", "one"):
        push_tiny(raw, repo, tag)
    sign(f"{registry.host}/{repo}:both", keypair[0], "--no-model-signing-bundle")
    sign(f"{registry.host}/{repo}:both", other_keypair[0], "--no-model-signing-bundle")
    sign(f"{registry.host}/{repo}:one", keypair[0], "--no-model-signing-bundle")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: omsign/v1\n"
        "default:\n"
        "  threshold: 2\n"
        "  authorities:\n"
        f"    - {{name: release, key: {{path: {keypair[1]}}}, ignoreTlog: true}}\n"
        f"    - {{name: review, key: {{path: {other_keypair[1]}}}, ignoreTlog: true}}\n"
    )
    models = by_tag(audit_json(f"{registry.host}/{repo}", "--policy", policy))
    assert models["both"]["policy"]["verdict"] == "allow"
    assert models["both"]["policy"]["satisfied"] == ["release", "review"]
    assert models["one"]["policy"]["verdict"] == "deny"
    assert "2 distinct authorities, 1 satisfied" in models["one"]["policy"]["reason"]


def test_audit_reports_legacy_signatures_with_the_verifying_key(registry: RegistryServer, raw: RawRegistry, keypair: tuple[Path, Path]) -> None:
    repo = f"test/{uuid.uuid4().hex[:12]}"
    push_tiny(raw, repo, "v1")
    sign(f"{registry.host}/{repo}:v1", keypair[0], "--format", "legacy", "--no-model-signing-bundle")
    report = audit_json(f"{registry.host}/{repo}", "--key", keypair[1], "--insecure-ignore-tlog")
    (model,) = report["models"]
    assert model["tags"] == ["v1"]  # the .sig tag is a signature, not a model
    (sig,) = model["signatures"]
    assert sig["format"] == "legacy" and sig["verified"] is True
    assert sig["fingerprint"] == fingerprint(keypair[1])
    assert model["policy"]["verdict"] == "allow"


def test_audit_leaves_container_images_out(registry: RegistryServer, raw: RawRegistry) -> None:
    repo = f"test/{uuid.uuid4().hex[:12]}"
    push_tiny(raw, repo, "model")
    config, rootfs = raw.put_blob(repo, b'{"os":"linux"}'), raw.put_blob(repo, secrets.token_bytes(32))
    image = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 14},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": rootfs, "size": 32}],
    }).encode()
    raw.put_manifest(repo, "image", image)
    report = audit_json(f"{registry.host}/{repo}", "--policy", "none")
    assert list(by_tag(report)) == ["model"]
    assert report["summary"]["notModels"] == 1 and report["summary"]["tags"] == 2


def test_audit_refuses_a_tag_or_digest_as_target(registry: RegistryServer) -> None:
    result = run_cli("audit", f"{registry.host}/some/repo:v1", "--policy", "none")
    assert_cli_error(result, 2, "audit takes repositories")


# -- keyless: identities, times, revocation ---------------------------------------------------
@pytest.fixture
def keyless_repo(registry: RegistryServer, raw: RawRegistry, sigstore_local: SigstoreLocal) -> str:
    """``alice`` signed tag ``a``, ``bob`` signed tag ``b`` (Fulcio certificates, Rekor, TSA)."""
    repo = f"test/{uuid.uuid4().hex[:12]}"
    for tag, who in (("a", ALICE), ("b", BOB)):
        push_tiny(raw, repo, tag)
        result = run_cli(
            "sign", f"{registry.host}/{repo}:{tag}", "--trust-config", sigstore_local.trust_config,
            "--identity-token", sigstore_local.token(who, ISSUER), "--no-model-signing-bundle",
        )
        assert_ok(result)
    return f"{registry.host}/{repo}"


def test_audit_signed_by_identity_reports_who_and_when(keyless_repo: str) -> None:
    report = audit_json(keyless_repo, "--signed-by", ALICE, "--policy", "none")
    assert list(by_tag(report)) == ["a"]
    (sig,) = report["models"][0]["signatures"]
    assert sig["kind"] == "keyless" and sig["identity"] == ALICE and sig["issuer"] == ISSUER
    assert sig["timeSource"] in ("tlog", "tsa")
    when = datetime.fromisoformat(sig["signedAt"].replace("Z", "+00:00"))
    assert abs(datetime.now(timezone.utc) - when) < timedelta(minutes=10)


def test_audit_between_selects_signatures_made_in_the_window(keyless_repo: str) -> None:
    now = datetime.now(timezone.utc)
    window = ((now - timedelta(hours=1)).isoformat(), (now + timedelta(hours=1)).isoformat())
    inside = audit_json(keyless_repo, "--between", *window, "--policy", "none")
    assert set(by_tag(inside)) == {"a", "b"}
    past = audit_json(keyless_repo, "--between", "2020-01-01T00:00:00Z", "2020-12-31T00:00:00Z", "--policy", "none")
    assert past["models"] == [] and past["summary"]["modelsExamined"] == 2


def test_audit_between_refuses_times_without_a_zone(keyless_repo: str) -> None:
    result = run_cli("audit", keyless_repo, "--between", "2020-01-01T00:00:00", "2021-01-01T00:00:00Z")
    assert_cli_error(result, 2, "time zone")


def test_audit_shows_a_revoked_identity_as_failing(keyless_repo: str, sigstore_local: SigstoreLocal, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: omsign/v1\n"
        "revoked:\n"
        f"  - identity: {ALICE}\n"
        f"    issuer: {ISSUER}\n"
        "    reason: laptop stolen\n"
        "default:\n"
        "  authorities:\n"
        "    - name: team\n"
        "      keyless:\n"
        "        identityRegexp: ^(alice|bob)@example\\.com$\n"
        f"        issuer: {ISSUER}\n"
        f"        trustConfig: {sigstore_local.trust_config}\n"
    )
    report = audit_json(keyless_repo, "--policy", policy)
    models = by_tag(report)
    assert models["b"]["policy"]["verdict"] == "allow"
    assert models["a"]["policy"]["verdict"] == "deny"
    assert "revoked" in models["a"]["policy"]["reason"] and "laptop stolen" in models["a"]["policy"]["reason"]
    assert models["a"]["signatures"][0]["verified"] is True  # the signature is genuine; its signer is not trusted


# -- bounds -------------------------------------------------------------------------------------
def test_audit_walks_a_catalog_of_hundreds_of_repositories_with_pagination(private_registry: RegistryServer) -> None:
    raw = RawRegistry(private_registry.url)
    try:
        config = b"{}"
        for i in range(300):
            repo = f"many/r{i:03d}"
            raw.put_blob(repo, config)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.cncf.model.manifest.v1+json",
                "config": {"mediaType": "application/vnd.cncf.model.config.v1+json", "digest": sha256(config), "size": 2},
                "layers": [],
            }).encode()
            raw.put_manifest(repo, "v1", manifest)
    finally:
        raw.close()
    report = audit_json(private_registry.host, "-j", "4", "--policy", "none")
    summary = report["summary"]
    assert summary["repositories"] == 300  # three catalog pages of 100
    assert summary["tags"] == 300
    assert summary["modelsExamined"] == 300 and summary["notModels"] == 0
    assert summary["errors"] == 0
    too_many = run_cli("audit", private_registry.host, "--max-repositories", "250", "--policy", "none")
    assert_cli_error(too_many, 9, "more than 250 repositories")


def test_audit_walks_the_catalog_of_a_registry_that_wants_bearer_tokens(token_registry: RegistryServer, model: Path) -> None:
    creds = ("--username", str(token_registry.username), "--password-stdin")
    stdin = f"{token_registry.password}\n"
    ref = f"{token_registry.host}/audit/{uuid.uuid4().hex[:8]}:v1"
    assert_ok(run_cli("push", model, ref, *creds, input=stdin))
    result = run_cli("audit", token_registry.host, *creds, "--policy", "none", "--json", input=stdin)
    assert_ok(result)
    report = json.loads(result.stdout)
    assert ref.rsplit(":", 1)[0] in {m["repository"] for m in report["models"]}
    tokens = token_registry.token_server
    assert isinstance(tokens, TokenServer)
    assert any("registry:catalog:*" in scopes for scopes, _ in tokens.requests)


def test_audit_refuses_a_repository_with_more_tags_than_allowed(registry: RegistryServer, raw: RawRegistry) -> None:
    repo = f"test/{uuid.uuid4().hex[:12]}"
    for tag in ("t1", "t2", "t3"):
        push_tiny(raw, repo, tag)
    result = run_cli("audit", f"{registry.host}/{repo}", "--max-tags", "2", "--policy", "none")
    assert_cli_error(result, 9, "more than 2 tags")


def test_audit_of_an_unreachable_registry_is_exit_4_in_one_line() -> None:
    result = run_cli("audit", "127.0.0.1:9", "--policy", "none")
    assert_cli_error(result, 4, "127.0.0.1:9")


# -- HTML ---------------------------------------------------------------------------------------
HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'


def test_audit_html_report_is_well_formed_and_escapes_registry_text(
    registry: RegistryServer, raw: RawRegistry, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    repo = f"test/{uuid.uuid4().hex[:12]}"
    digest = push_tiny(raw, repo, "v1")
    # An attacker-controlled referrer whose artifactType and predicate annotation are markup.
    empty = raw.put_blob(repo, b"{}")
    blob = raw.put_blob(repo, b"not a bundle")
    referrer = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": HOSTILE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "text/plain", "digest": blob, "size": 12}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw.get_manifest(repo, digest))},
        "annotations": {"dev.sigstore.bundle.predicateType": HOSTILE},
    }).encode()
    ref_digest = raw.put_manifest(repo, sha256(referrer), referrer)
    index = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": ref_digest, "size": len(referrer), "artifactType": HOSTILE,
                       "annotations": {"dev.sigstore.bundle.predicateType": HOSTILE}}],
    }).encode()
    if not raw.referrers(repo, digest):  # no referrers API: the fallback tag, as distribution 2.x needs
        raw.put_manifest(repo, digest.replace(":", "-"), index, "application/vnd.oci.image.index.v1+json")
    sign(f"{registry.host}/{repo}:v1", keypair[0])
    out = tmp_path / "report.html"
    result = run_cli("audit", f"{registry.host}/{repo}", "--html", out, "--key", keypair[1], "--insecure-ignore-tlog", env=SIGN_ENV)
    assert_ok(result)
    text = out.read_text(encoding="utf-8")
    assert "<script" not in text and "<img" not in text and "http://" not in text.replace("http://www.w3.org", "")
    assert "&lt;script&gt;" in text
    root = ET.fromstring(text.split("\n", 1)[1])  # well-formed: every element closed, entities valid
    cells = [("".join(td.itertext())) for td in root.iter("td")]
    assert any(HOSTILE in c for c in cells)  # shown as text, exactly as the registry holds it
    assert any(f"{registry.host}/{repo}" == c for c in cells)


def test_html_report_escapes_hostile_repository_and_tag_names() -> None:
    from oci_model_sign.audit import AuditOptions, AuditReport, ModelAudit
    from oci_model_sign.audit.report import render_html

    report = AuditReport(targets=[HOSTILE], policy_source=None, options=AuditOptions())
    report.models.append(ModelAudit(repository=f"reg/{HOSTILE}", digest="sha256:" + "0" * 64, tags=[HOSTILE, "v1"]))
    report.examined = 1
    text = render_html(report)
    assert "<script" not in text and "<img" not in text
    root = ET.fromstring(text.split("\n", 1)[1])
    assert any(f"reg/{HOSTILE}" == "".join(td.itertext()) for td in root.iter("td"))
