"""Trust policy files: format, scope matching, decisions, discovery and the `policy` commands."""

from __future__ import annotations

import contextlib
import json
import re
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from oci_model_sign.cli_policy import policy_app
from oci_model_sign.errors import UsageError
from oci_model_sign.policyfile import (
    SCHEMA,
    ScopePolicy,
    SignerInfo,
    TrustPolicy,
    check,
    decide,
    explain,
    find_policy,
    load_policy,
)
from oci_model_sign.policyfile.schema import schema_json

ROOT = Path(__file__).resolve().parent.parent
GH_ISSUER = "https://token.actions.githubusercontent.com"
GH_WORKFLOW = "https://github.com/acme/models/.github/workflows/release.yml@refs/tags/v1.0"
CUTOFF = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _key(path: Path) -> str:
    """Write a fresh P-256 public key to ``path``; return its sha256 SPKI fingerprint."""
    import hashlib

    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    path.write_bytes(public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    return {name: _key(tmp_path / f"{name}.pub") for name in ("release", "backup", "leaked")}


def write(tmp_path: Path, body: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def policy(tmp_path: Path, body: str) -> TrustPolicy:
    return load_policy(write(tmp_path, body))


def scope_name(p: TrustPolicy, ref: str) -> str | None:
    found = p.scope_for(ref)
    return None if found is None else found[0]


def scope_of(p: TrustPolicy, ref: str) -> ScopePolicy:
    found = p.scope_for(ref)
    assert found is not None, ref
    return found[1]


def key_signer(fp: str, signed_at: datetime | None = None) -> SignerInfo:
    return SignerInfo(kind="key", fingerprint=fp, signed_at=signed_at)


def gh_signer(identity: str = GH_WORKFLOW, signed_at: datetime | None = None) -> SignerInfo:
    return SignerInfo(kind="keyless", identity=identity, issuer=GH_ISSUER, signed_at=signed_at)


MATCHING = """
    apiVersion: omsign/v1
    default:
      reject: true
    scopes:
      registry.example.com:
        authorities: [{key: {path: release.pub}}]
      registry.example.com/models:
        authorities: [{key: {path: release.pub}}]
      registry.example.com/models/llama:
        authorities: [{key: {path: release.pub}}]
      registry.example.com/models/llama:v2:
        authorities: [{key: {path: release.pub}}]
      registry.example.com:5000:
        authorities: [{key: {path: release.pub}}]
      "*.example.com":
        authorities: [{key: {path: release.pub}}]
      "registry.example.com/models/*-exp":
        authorities: [{key: {path: release.pub}}]
      "registry.example.com/**/draft":
        authorities: [{key: {path: release.pub}}]
      ubuntu:
        authorities: [{key: {path: release.pub}}]
      acme/tools:
        authorities: [{key: {path: release.pub}}]
"""


# -- scope matching ------------------------------------------------------------------------


def test_the_longest_matching_scope_wins(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(tmp_path, MATCHING)
    assert scope_name(p, "registry.example.com/models/llama:v1") == "registry.example.com/models/llama"
    assert scope_name(p, "registry.example.com/models/mistral") == "registry.example.com/models"
    assert scope_name(p, "registry.example.com/datasets/x") == "registry.example.com"


def test_an_exact_tag_scope_beats_its_repository(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(tmp_path, MATCHING)
    assert scope_name(p, "registry.example.com/models/llama:v2") == "registry.example.com/models/llama:v2"


def test_a_namespace_covers_only_whole_path_components(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(tmp_path, MATCHING)
    assert scope_name(p, "registry.example.com/models2/x") == "registry.example.com"


def test_a_registry_scope_with_a_port_is_another_registry(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(tmp_path, MATCHING)
    assert scope_name(p, "registry.example.com:5000/models/llama") == "registry.example.com:5000"


def test_a_subdomain_wildcard_matches_subdomains_only(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(tmp_path, MATCHING)
    assert scope_name(p, "eu.mirror.example.com/m") == "*.example.com"
    assert scope_name(p, "example.com/m") == "default"


def test_a_glob_star_stays_within_one_path_component(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(tmp_path, MATCHING)
    assert scope_name(p, "registry.example.com/models/llama-exp:v1") == "registry.example.com/models/*-exp"
    assert scope_name(p, "registry.example.com/models/team/llama-exp") == "registry.example.com/models"


def test_a_double_star_glob_crosses_path_components(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(tmp_path, MATCHING)
    assert scope_name(p, "registry.example.com/a/b/c/draft:v1") == "registry.example.com/**/draft"


def test_docker_hub_short_names_are_normalised(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(tmp_path, MATCHING)
    for ref in ("ubuntu", "ubuntu:22.04", "docker.io/library/ubuntu", "index.docker.io/library/ubuntu:24.04"):
        assert scope_name(p, ref) == "ubuntu", ref
    assert scope_name(p, "docker.io/acme/tools:1") == "acme/tools"
    assert scope_name(p, "debian") == "default"


def test_a_glob_without_a_host_is_a_docker_hub_glob(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(
        tmp_path,
        """
        apiVersion: omsign/v1
        scopes:
          "acme/*": {authorities: [{key: {path: release.pub}}]}
          "python*": {authorities: [{key: {path: release.pub}}]}
        """,
    )
    assert scope_name(p, "acme/llama:v1") == "acme/*"
    assert scope_name(p, "index.docker.io/acme/llama") == "acme/*"
    assert scope_name(p, "python:3.12") == "python*"
    assert scope_name(p, "quay.io/acme/llama") is None


def test_registry_hosts_match_case_insensitively(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(tmp_path, MATCHING)
    assert scope_name(p, "Registry.Example.COM/models/llama") == "registry.example.com/models/llama"


def test_a_host_only_glob_is_refused(tmp_path: Path, keys: dict[str, str]) -> None:
    body = "apiVersion: omsign/v1\nscopes:\n  reg*.example.com:\n    authorities: [{key: {path: release.pub}}]\n"
    with pytest.raises(UsageError, match=r"policy\.yaml:3: .*names no repository"):
        load_policy(write(tmp_path, body))


def test_an_unmatched_reference_gets_the_default_or_nothing(tmp_path: Path, keys: dict[str, str]) -> None:
    with_default = policy(tmp_path, MATCHING)
    assert scope_name(with_default, "quay.io/other/model") == "default"
    without = policy(
        tmp_path,
        """
        apiVersion: omsign/v1
        scopes:
          quay.io: {authorities: [{key: {path: release.pub}}]}
        """,
    )
    assert without.scope_for("ghcr.io/x/y") is None


def test_a_literal_scope_beats_an_equally_long_glob(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(
        tmp_path,
        """
        apiVersion: omsign/v1
        scopes:
          "reg.io/m*": {authorities: [{key: {path: release.pub}}]}
          "reg.io/m": {authorities: [{key: {path: backup.pub}}]}
        """,
    )
    assert scope_name(p, "reg.io/m") == "reg.io/m"


def test_a_layout_scope_covers_layouts_below_its_folder(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(
        tmp_path,
        f"""
        apiVersion: omsign/v1
        scopes:
          "oci:{tmp_path}/layouts": {{authorities: [{{key: {{path: release.pub}}}}]}}
        """,
    )
    assert scope_name(p, f"oci:{tmp_path}/layouts/m1:v1") == f"oci:{tmp_path}/layouts"
    assert scope_name(p, f"oci:{tmp_path}/elsewhere") is None
    assert scope_name(p, "localhost:5000/layouts") is None


def test_two_spellings_of_one_scope_are_refused(tmp_path: Path, keys: dict[str, str]) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: omsign/v1
        scopes:
          ubuntu: {authorities: [{key: {path: release.pub}}]}
          docker.io/library/ubuntu: {authorities: [{key: {path: backup.pub}}]}
        """,
    )
    with pytest.raises(UsageError, match=r"policy\.yaml:4: .*same scope as 'ubuntu'"):
        load_policy(path)


# -- authorities and thresholds ------------------------------------------------------------

TWO_AUTHORITIES = f"""
    apiVersion: omsign/v1
    scopes:
      reg.io/models:
        threshold: THRESHOLD
        annotations: {{team: ml}}
        authorities:
          - name: release
            key: {{path: release.pub}}
          - name: ci
            keyless:
              identityRegexp: ^https://github\\.com/acme/models/\\.github/workflows/release\\.yml@refs/tags/v
              issuer: {GH_ISSUER}
"""


def test_any_one_authority_suffices_without_a_threshold(tmp_path: Path, keys: dict[str, str]) -> None:
    scope = scope_of(policy(tmp_path, TWO_AUTHORITIES.replace("THRESHOLD", "1")), "reg.io/models/m")
    assert decide(scope, [gh_signer()]).verdict == "allow"
    assert decide(scope, [key_signer(keys["release"])]).verdict == "allow"


def test_a_signer_that_is_no_authority_is_refused(tmp_path: Path, keys: dict[str, str]) -> None:
    scope = scope_of(policy(tmp_path, TWO_AUTHORITIES.replace("THRESHOLD", "1")), "reg.io/models/m")
    other = gh_signer("https://github.com/evil/models/.github/workflows/release.yml@refs/tags/v1")
    decision = decide(scope, [other, key_signer(keys["backup"])])
    assert decision.verdict == "deny"
    assert "no verified signer is a trusted authority" in decision.reason


def test_threshold_two_needs_two_distinct_authorities(tmp_path: Path, keys: dict[str, str]) -> None:
    scope = scope_of(policy(tmp_path, TWO_AUTHORITIES.replace("THRESHOLD", "2")), "reg.io/models/m")
    both = decide(scope, [key_signer(keys["release"]), gh_signer()])
    assert both.verdict == "allow" and both.satisfied == ("release", "ci")
    one = decide(scope, [key_signer(keys["release"]), key_signer(keys["release"])])
    assert one.verdict == "deny"
    assert "requires 2 distinct authorities, 1 satisfied (release)" in one.reason


def test_one_signature_never_counts_for_two_authorities(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(
        tmp_path,
        f"""
        apiVersion: omsign/v1
        scopes:
          reg.io:
            threshold: 2
            authorities:
              - keyless: {{identityRegexp: ^https://github\\.com/acme/, issuer: {GH_ISSUER}}}
              - keyless: {{identityRegexp: release\\.yml, issuer: {GH_ISSUER}}}
        """,
    )
    scope = scope_of(p, "reg.io/m")
    assert decide(scope, [gh_signer()]).verdict == "deny"
    second = gh_signer("https://github.com/acme/other/.github/workflows/build.yml@refs/heads/main")
    assert decide(scope, [gh_signer(), second]).verdict == "allow"


def test_a_threshold_above_the_authorities_is_refused(tmp_path: Path, keys: dict[str, str]) -> None:
    path = write(tmp_path, TWO_AUTHORITIES.replace("THRESHOLD", "3"))
    with pytest.raises(UsageError, match=r"policy\.yaml:4: .*threshold: threshold 3 is more than the 2 authorities"):
        load_policy(path)


def test_the_same_key_listed_twice_is_refused(tmp_path: Path, keys: dict[str, str]) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: omsign/v1
        scopes:
          reg.io:
            threshold: 2
            authorities:
              - key: {path: release.pub}
              - name: again
                key: {path: release.pub}
        """,
    )
    with pytest.raises(UsageError, match=r"policy\.yaml:7: .*authorities\[1\]: the same authority is listed twice"):
        load_policy(path)


def test_authority_options_are_policy_from_options_kwargs(tmp_path: Path, keys: dict[str, str]) -> None:
    scope = scope_of(policy(tmp_path, TWO_AUTHORITIES.replace("THRESHOLD", "1")), "reg.io/models/m")
    key_opts, keyless_opts = scope.authority_options()
    assert key_opts == {"key": str(tmp_path / "release.pub"), "annotations": {"team": "ml"}}
    assert keyless_opts == {
        "certificate_identity_regexp": r"^https://github\.com/acme/models/\.github/workflows/release\.yml@refs/tags/v",
        "certificate_oidc_issuer": GH_ISSUER,
        "annotations": {"team": "ml"},
    }


def test_an_inline_pem_key_is_an_authority(tmp_path: Path, keys: dict[str, str]) -> None:
    pem = (tmp_path / "release.pub").read_text()
    body = "apiVersion: omsign/v1\nscopes:\n  reg.io:\n    authorities:\n      - key:\n          data: |\n"
    body += "".join(f"            {line}\n" for line in pem.splitlines())
    p = load_policy(write(tmp_path, body))
    scope = scope_of(p, "reg.io/m")
    assert scope.authorities[0].fingerprint == keys["release"]
    assert scope.authority_options()[0] == {"key": pem.encode()}
    assert decide(scope, [key_signer(keys["release"])]).allowed


def test_a_ca_authority_counts_only_when_the_verifier_names_it(tmp_path: Path, keys: dict[str, str]) -> None:
    from tests.pki import make_test_ca

    pki = make_test_ca(tmp_path / "pki")
    roots = pki.root_path
    p = policy(
        tmp_path,
        """
        apiVersion: omsign/v1
        scopes:
          reg.io:
            authorities:
              - name: corp
                ca: {roots: pki/root.pem, intermediates: pki/intermediate.pem, identity: builder@corp.example}
        """,
    )
    scope = scope_of(p, "reg.io/m")
    assert scope.authority_options() == [
        {
            "ca_roots": str(roots),
            "certificate_chain": str(pki.intermediate_path),
            "certificate_identity": "builder@corp.example",
        }
    ]
    anonymous = SignerInfo(kind="x509", identity="builder@corp.example")
    assert decide(scope, [anonymous]).verdict == "deny"
    named = SignerInfo(kind="x509", identity="builder@corp.example", authority="corp")
    assert decide(scope, [named]).verdict == "allow"


# -- revocation ----------------------------------------------------------------------------

REVOKING = f"""
    apiVersion: omsign/v1
    revoked:
      - key: {{path: leaked.pub}}
        after: 2026-03-01T00:00:00Z
        reason: key found in a public repository
    scopes:
      reg.io:
        authorities:
          - key: {{path: leaked.pub}}
          - key: {{path: release.pub}}
          - keyless: {{identityRegexp: ^https://github\\.com/acme/, issuer: {GH_ISSUER}}}
        revoked:
          - fingerprint: RELEASE
          - identity: {GH_WORKFLOW}
            issuer: {GH_ISSUER}
            after: "2026-02-01T12:00:00+01:00"
"""


def test_a_key_revoked_after_a_time_keeps_older_signatures(tmp_path: Path, keys: dict[str, str]) -> None:
    scope = scope_of(policy(tmp_path, REVOKING.replace("RELEASE", keys["release"])), "reg.io/m")
    leaked = key_signer(keys["leaked"])
    assert scope.is_revoked(leaked, CUTOFF - timedelta(seconds=1)) is None
    assert scope.is_revoked(leaked, CUTOFF) is not None
    assert scope.is_revoked(leaked, CUTOFF + timedelta(days=30)) is not None
    assert decide(scope, [key_signer(keys["leaked"], CUTOFF - timedelta(days=1))]).verdict == "allow"


def test_a_signature_without_a_trusted_time_is_refused_by_a_timed_revocation(
    tmp_path: Path, keys: dict[str, str]
) -> None:
    scope = scope_of(policy(tmp_path, REVOKING.replace("RELEASE", keys["release"])), "reg.io/m")
    assert scope.is_revoked(key_signer(keys["leaked"]), None) is not None


def test_a_revocation_without_after_refuses_every_signature(tmp_path: Path, keys: dict[str, str]) -> None:
    scope = scope_of(policy(tmp_path, REVOKING.replace("RELEASE", keys["release"])), "reg.io/m")
    old = key_signer(keys["release"], datetime(2020, 1, 1, tzinfo=timezone.utc))
    decision = decide(scope, [old])
    assert decision.verdict == "deny"
    assert f"key {keys['release']} revoked" in decision.reason


def test_a_revoked_identity_is_judged_by_its_issuer_and_time(tmp_path: Path, keys: dict[str, str]) -> None:
    scope = scope_of(policy(tmp_path, REVOKING.replace("RELEASE", keys["release"])), "reg.io/m")
    cutoff = datetime(2026, 2, 1, 11, 0, tzinfo=timezone.utc)  # 12:00+01:00
    assert decide(scope, [gh_signer(signed_at=cutoff - timedelta(minutes=1))]).verdict == "allow"
    late = decide(scope, [gh_signer(signed_at=cutoff + timedelta(minutes=1))])
    assert late.verdict == "deny" and "every signature is revoked" in late.reason
    other_issuer = SignerInfo(kind="keyless", identity=GH_WORKFLOW, issuer="https://evil.example", signed_at=cutoff)
    assert scope.is_revoked(other_issuer) is None


def test_top_level_revocations_apply_in_every_scope(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(
        tmp_path,
        """
        apiVersion: omsign/v1
        revoked: [{key: {path: leaked.pub}}]
        default: {authorities: [{key: {path: leaked.pub}}]}
        scopes:
          reg.io: {authorities: [{key: {path: leaked.pub}}]}
        """,
    )
    for ref in ("reg.io/m", "other.io/m"):
        scope = scope_of(p, ref)
        assert decide(scope, [key_signer(keys["leaked"], CUTOFF)]).verdict == "deny", ref


# -- modes ---------------------------------------------------------------------------------

MODES = """
    apiVersion: omsign/v1
    default:
      reject: true
    scopes:
      prod.io: {authorities: [{key: {path: release.pub}}]}
      staging.io:
        mode: warn
        authorities: [{key: {path: release.pub}}]
      scratch.io: {insecureAcceptAnything: true}
"""


def test_enforce_mode_refuses_an_unsigned_model(tmp_path: Path, keys: dict[str, str]) -> None:
    scope = scope_of(policy(tmp_path, MODES), "prod.io/m")
    decision = decide(scope, [])
    assert decision.verdict == "deny" and not decision.allowed
    assert decision.reason == "scope prod.io requires a signature from key release.pub; the model has no verified signature"


def test_warn_mode_lets_a_failing_model_through_with_the_reason(tmp_path: Path, keys: dict[str, str]) -> None:
    scope = scope_of(policy(tmp_path, MODES), "staging.io/m")
    decision = decide(scope, [])
    assert decision.verdict == "warn" and decision.allowed
    assert decision.reason.startswith("warn mode, would refuse: scope staging.io requires")


def test_reject_and_accept_anything_scopes(tmp_path: Path, keys: dict[str, str]) -> None:
    p = policy(tmp_path, MODES)
    default, scratch = scope_of(p, "elsewhere.io/m"), scope_of(p, "scratch.io/m")
    assert decide(default, [key_signer(keys["release"])]).verdict == "deny"
    assert decide(scratch, []).verdict == "allow" and not scratch.verifies


def test_a_required_attestation_must_be_present_when_judged(tmp_path: Path, keys: dict[str, str]) -> None:
    (tmp_path / "prov.schema.json").write_text(json.dumps({"type": "object", "required": ["buildDefinition"]}))
    p = policy(
        tmp_path,
        """
        apiVersion: omsign/v1
        scopes:
          reg.io:
            authorities: [{key: {path: release.pub}}]
            attestations:
              - predicateType: https://slsa.dev/provenance/v1
                check: predicate.runDetails.builder.id.startsWith("https://github.com/")
                schema: prov.schema.json
        """,
    )
    scope = scope_of(p, "reg.io/m")
    req = scope.attestations[0]
    assert req.schema == {"type": "object", "required": ["buildDefinition"]}
    assert req.check == 'predicate.runDetails.builder.id.startsWith("https://github.com/")'
    signer = [key_signer(keys["release"])]
    assert decide(scope, signer, attestations=[]).verdict == "deny"
    assert decide(scope, signer, attestations=["https://slsa.dev/provenance/v1"]).verdict == "allow"


# -- malformed policies --------------------------------------------------------------------


def test_invalid_yaml_is_a_usage_error_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "apiVersion: omsign/v1\nscopes:\n  reg.io:\n    mode: warn\n   authorities: []\n")
    with pytest.raises(UsageError, match=r"policy\.yaml:5: not valid YAML or JSON"):
        load_policy(path)
    unclosed = write(tmp_path, "apiVersion: omsign/v1\nscopes:\n  reg.io:\n    authorities: [a,\n    mode: warn\n")
    with pytest.raises(UsageError, match=r"policy\.yaml:6: not valid YAML or JSON: .*\(while parsing a flow sequence on line 4\)"):
        load_policy(unclosed)


def test_an_unknown_field_is_named_with_its_line(tmp_path: Path, keys: dict[str, str]) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: omsign/v1
        scopes:
          reg.io:
            authorities:
              - key: {path: release.pub}
                thresold: 2
        """,
    )
    with pytest.raises(UsageError) as info:
        load_policy(path)
    assert re.match(r".*policy\.yaml:6: scopes\[\"reg\.io\"\]\.authorities\[0\]: unknown field 'thresold'", info.value.message)
    assert "name, key, keyless, ca" in (info.value.hint or "")


def test_a_bad_regexp_is_named_with_its_line(tmp_path: Path, keys: dict[str, str]) -> None:
    path = write(
        tmp_path,
        f"""
        apiVersion: omsign/v1
        scopes:
          reg.io:
            authorities:
              - keyless:
                  identityRegexp: ^https://github\\.com/(acme
                  issuer: {GH_ISSUER}
        """,
    )
    with pytest.raises(UsageError, match=r"policy\.yaml:6: .*keyless\.identityRegexp: not a valid RE2 regular expression: missing \)"):
        load_policy(path)


def test_a_perl_only_regexp_is_refused_as_not_re2(tmp_path: Path, keys: dict[str, str]) -> None:
    path = write(
        tmp_path,
        f"""
        apiVersion: omsign/v1
        scopes:
          reg.io:
            authorities:
              - keyless: {{identityRegexp: '^(a)\\1$', issuer: {GH_ISSUER}}}
        """,
    )
    with pytest.raises(UsageError, match=r"policy\.yaml:5: .*not a valid RE2 regular expression"):
        load_policy(path)


def test_a_bad_timestamp_is_named_with_its_line(tmp_path: Path, keys: dict[str, str]) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: omsign/v1
        revoked:
          - key: {path: leaked.pub}
            after: 2026-03-01
        """,
    )
    with pytest.raises(UsageError, match=r"policy\.yaml:4: revoked\[0\]\.after: '2026-03-01' is not an RFC 3339 time with a zone"):
        load_policy(path)


def test_an_unknown_key_file_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: omsign/v1
        scopes:
          reg.io:
            authorities:
              - key: {path: keys/missing.pub}
        """,
    )
    with pytest.raises(UsageError, match=r"policy\.yaml:5: .*key\.path: key file 'keys/missing.pub' does not exist"):
        load_policy(path)


def test_a_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notakey.pub").write_text("hello\n")
    path = write(tmp_path, "apiVersion: omsign/v1\nscopes:\n  reg.io:\n    authorities: [{key: {path: notakey.pub}}]\n")
    with pytest.raises(UsageError, match=r"policy\.yaml:4: .*is not a PEM or DER public key"):
        load_policy(path)


def test_a_missing_or_unknown_api_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"policy\.yaml:1: missing required field 'apiVersion'"):
        load_policy(write(tmp_path, "scopes: {}\n"))
    with pytest.raises(UsageError, match=r"policy\.yaml:1: apiVersion: unsupported version 'omsign/v9'") as info:
        load_policy(write(tmp_path, "apiVersion: omsign/v9\n"))
    assert info.value.hint == "this omsign reads apiVersion: omsign/v1"


def test_a_duplicate_key_is_refused_not_overwritten(tmp_path: Path, keys: dict[str, str]) -> None:
    path = write(
        tmp_path,
        """
        apiVersion: omsign/v1
        scopes:
          reg.io: {authorities: [{key: {path: release.pub}}]}
          reg.io: {insecureAcceptAnything: true}
        """,
    )
    with pytest.raises(UsageError, match=r"policy\.yaml:4: scopes\[\"reg\.io\"\]: duplicate key \(first given on line 3\)"):
        load_policy(path)


def test_wrong_types_and_missing_choices_are_explained(tmp_path: Path, keys: dict[str, str]) -> None:
    cases = {
        "threshold: two": r":4: .*threshold: must be an integer, not a string",
        "mode: audit": r":4: .*mode: must be one of enforce, warn, not 'audit'",
    }
    for line, message in cases.items():
        body = f"apiVersion: omsign/v1\nscopes:\n  reg.io:\n    {line}\n    authorities: [{{key: {{path: release.pub}}}}]\n"
        with pytest.raises(UsageError, match=message):
            load_policy(write(tmp_path, body))
    body = "apiVersion: omsign/v1\nscopes:\n  reg.io:\n    authorities:\n      - name: nothing\n"
    with pytest.raises(UsageError, match=r":5: .*authorities\[0\]: needs one of: key, keyless, ca"):
        load_policy(write(tmp_path, body))
    body = "apiVersion: omsign/v1\nscopes:\n  reg.io: {}\n"
    with pytest.raises(UsageError, match=r":3: .*missing required field 'authorities'"):
        load_policy(write(tmp_path, body))


def test_a_bad_scope_key_is_named(tmp_path: Path, keys: dict[str, str]) -> None:
    body = "apiVersion: omsign/v1\nscopes:\n  https://reg.io/m:\n    authorities: [{key: {path: release.pub}}]\n"
    with pytest.raises(UsageError, match=r"policy\.yaml:3: .*has a scheme"):
        load_policy(write(tmp_path, body))


def test_a_json_policy_is_read_with_line_numbers(tmp_path: Path, keys: dict[str, str]) -> None:
    doc = {"apiVersion": "omsign/v1", "scopes": {"reg.io": {"authorities": [{"key": {"path": "release.pub"}}]}}}
    good = write(tmp_path, json.dumps(doc, indent=2), "policy.json")
    assert scope_name(load_policy(good), "reg.io/m") == "reg.io"
    doc["scopes"]["reg.io"]["mode"] = "never"  # type: ignore[index]
    bad = write(tmp_path, json.dumps(doc, indent=2), "policy.json")
    with pytest.raises(UsageError, match=r"policy\.json:\d+: scopes\[\"reg\.io\"\]\.mode: must be one of"):
        load_policy(bad)


def test_an_empty_or_missing_policy_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="the policy file is empty"):
        load_policy(write(tmp_path, "\n# nothing\n"))
    with pytest.raises(UsageError, match="does not exist"):
        load_policy(tmp_path / "absent.yaml")


def test_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["apiVersion: omsign/v1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    with pytest.raises(UsageError, match="expands to more than"):
        load_policy(write(tmp_path, "\n".join(lines) + "\n"))


# -- discovery -----------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("OMSIGN_POLICY", raising=False)
    return home


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("apiVersion: omsign/v1\n")
    return path


def test_discovery_order_flag_env_user_system(clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = _touch(tmp_path / "etc" / "omsign" / "policy.yaml")
    assert find_policy(None, system_path=tmp_path / "nowhere.yaml") is None
    assert find_policy(None, system_path=system) == system
    user = _touch(clean_env / ".config" / "omsign" / "policy.yaml")
    assert find_policy(None, system_path=system) == user
    env = _touch(tmp_path / "env.yaml")
    monkeypatch.setenv("OMSIGN_POLICY", str(env))
    assert find_policy(None, system_path=system) == env
    flag = _touch(tmp_path / "flag.yaml")
    assert find_policy(str(flag), system_path=system) == flag


def test_discovery_honours_xdg_config_home(clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(clean_env / ".config" / "omsign" / "policy.yaml")
    xdg = _touch(tmp_path / "xdg" / "omsign" / "policy.yaml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert find_policy(None, system_path=tmp_path / "none.yaml") == xdg
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    assert find_policy(None, system_path=tmp_path / "none.yaml") == clean_env / ".config" / "omsign" / "policy.yaml"


def test_none_opts_out_by_flag_or_env(clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(clean_env / ".config" / "omsign" / "policy.yaml")
    assert find_policy("none") == "none"
    monkeypatch.setenv("OMSIGN_POLICY", "none")
    assert find_policy(None) == "none"


def test_a_named_policy_that_does_not_exist_is_an_error(clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(clean_env / ".config" / "omsign" / "policy.yaml")
    with pytest.raises(UsageError, match="does not exist"):
        find_policy(str(tmp_path / "typo.yaml"))
    monkeypatch.setenv("OMSIGN_POLICY", str(tmp_path / "typo.yaml"))
    with pytest.raises(UsageError, match=r"\(OMSIGN_POLICY\) does not exist"):
        find_policy(None)


def test_applicable_scope_combines_discovery_loading_and_matching(
    clean_env: Path, tmp_path: Path, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from oci_model_sign.policyfile import applicable_scope

    nowhere = tmp_path / "no-system-policy.yaml"
    assert applicable_scope("prod.io/m", system_path=nowhere) is None
    monkeypatch.setenv("OMSIGN_POLICY", str(write(tmp_path, MODES)))
    applied = applicable_scope("prod.io/m", system_path=nowhere)
    assert applied is not None and applied.name == "prod.io" and applied.source == tmp_path / "policy.yaml"
    assert applicable_scope("prod.io/m", "none", system_path=nowhere) is None


def test_a_denied_decision_raises_a_verification_error(tmp_path: Path, keys: dict[str, str]) -> None:
    from oci_model_sign.errors import VerificationError

    scope = scope_of(policy(tmp_path, MODES), "prod.io/m")
    with pytest.raises(VerificationError, match="the model has no verified signature") as info:
        decide(scope, []).raise_if_denied()
    assert info.value.exit_code == 8
    decide(scope_of(policy(tmp_path, MODES), "staging.io/m"), []).raise_if_denied()  # warn: no raise


# -- explain, check and the CLI ------------------------------------------------------------


def test_explain_lists_the_candidates_and_the_winner(tmp_path: Path, keys: dict[str, str]) -> None:
    text = explain(policy(tmp_path, MATCHING), "registry.example.com/models/llama:v1")
    assert "reference registry.example.com/models/llama:v1 -> registry.example.com/models/llama:v1" in text
    assert re.search(r"match 'registry.example.com/models/llama' \[repository or namespace prefix\] \(line 9\)", text)
    assert re.search(r"no    'ubuntu' = docker.io/library/ubuntu", text)
    assert "applies: 'registry.example.com/models/llama', the most specific matching scope (33 literal characters against 27)" in text


def test_explain_says_when_the_default_applies(tmp_path: Path, keys: dict[str, str]) -> None:
    text = explain(policy(tmp_path, MATCHING), "quay.io/x")
    assert "applies: default (no scope matches)" in text
    assert "refuses every model" in text


def test_check_summarises_and_warns(tmp_path: Path, keys: dict[str, str]) -> None:
    lines = check(write(tmp_path, MODES))
    assert lines[0].endswith("valid (omsign/v1, 3 scopes, a default)")
    assert "warning: scope 'staging.io' is in warn mode: failures are reported, not refused" in lines
    assert "warning: scope 'scratch.io' accepts models without verification" in lines


def test_cli_policy_check_valid_and_invalid(tmp_path: Path, keys: dict[str, str]) -> None:
    runner = CliRunner()
    good = runner.invoke(policy_app, ["check", str(write(tmp_path, MODES))])
    assert good.exit_code == 0, good.output
    assert "valid (omsign/v1, 3 scopes, a default)" in good.output
    bad = write(tmp_path, "apiVersion: omsign/v1\nscopes:\n  reg.io:\n    mode: audit\n", "bad.yaml")
    result = runner.invoke(policy_app, ["check", str(bad)])
    assert result.exit_code == 2
    assert "omsign: error: " in result.output and "bad.yaml:4: " in result.output


def test_cli_policy_explain_uses_discovery(clean_env: Path, tmp_path: Path, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    nothing = runner.invoke(policy_app, ["explain", "reg.io/m"])
    assert nothing.exit_code == 2 and "no policy file found" in nothing.output
    monkeypatch.setenv("OMSIGN_POLICY", str(write(tmp_path, MODES)))
    found = runner.invoke(policy_app, ["explain", "staging.io/team/m:v1"])
    assert found.exit_code == 0, found.output
    assert "applies: 'staging.io', the only matching scope" in found.output
    opted_out = runner.invoke(policy_app, ["explain", "staging.io/m", "--policy", "none"])
    assert opted_out.exit_code == 0 and "not verified by policy" in opted_out.output
    bad_ref = runner.invoke(policy_app, ["explain", "https://x/y"])
    assert bad_ref.exit_code == 2 and "a scheme is not part of a reference" in bad_ref.output


# -- the documented format -----------------------------------------------------------------


def test_the_published_schema_is_the_one_the_loader_uses() -> None:
    assert (ROOT / "docs" / "policy.schema.json").read_text() == schema_json()
    assert SCHEMA["properties"]["apiVersion"] == {"const": "omsign/v1"}


def test_every_policy_example_in_the_docs_fits_the_schema() -> None:
    from jsonschema import Draft202012Validator

    from oci_model_sign.policyfile.marked import load_marked

    text = (ROOT / "docs" / "policy.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    examples = [b for b in blocks if b.startswith("apiVersion:")]
    assert len(examples) >= 5
    validator = Draft202012Validator(SCHEMA)
    for block in examples:
        data = load_marked(block, "docs/policy.md").data
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == [], block


# -- hostile input -------------------------------------------------------------------------

_yamlish = st.text(alphabet=st.sampled_from(list("apiVersion: omsign/v1\n scopes-[]{}&*!|>?#'\",.@:0123456789")), max_size=200)
_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_yamlish)
def test_any_text_is_a_policy_or_a_usage_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text("apiVersion: omsign/v1\n" + text)
    with contextlib.suppress(UsageError):
        load_policy(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scopes=_values, revoked=_values, default=_values)
def test_any_structure_is_a_policy_or_a_usage_error(tmp_path: Path, scopes: object, revoked: object, default: object) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps({"apiVersion": "omsign/v1", "scopes": scopes, "revoked": revoked, "default": default}))
    with contextlib.suppress(UsageError):
        load_policy(path)


@settings(max_examples=300, deadline=None)
@given(pattern=st.text(alphabet=st.sampled_from(list("ab.:/*@-_5Ao")), min_size=1, max_size=30))
def test_any_scope_key_parses_or_says_why(pattern: str) -> None:
    from oci_model_sign.policyfile.scopes import parse_scope, target_for

    try:
        scope = parse_scope(pattern)
    except ValueError:
        return
    with contextlib.suppress(UsageError):
        scope.matches(target_for("reg.io/a/b:v1"))
