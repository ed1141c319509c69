"""References parse into values; bad ones are refused with a clear message."""

from __future__ import annotations

import pytest

from oci_model_sign.errors import UsageError
from oci_model_sign.reference import fallback_tag, legacy_signature_tag, parse_reference

D = "sha256:" + "ab" * 32


def test_single_name_normalises_to_docker_hub_library() -> None:
    ref = parse_reference("ubuntu")
    assert (ref.registry, ref.repository, ref.tag) == ("docker.io", "library/ubuntu", "latest")


def test_docker_hub_api_host_differs_from_reference_host() -> None:
    assert parse_reference("user/model").api_host == "registry-1.docker.io"


def test_localhost_port_is_a_registry_and_loopback() -> None:
    ref = parse_reference("localhost:5000/models/llama:v1")
    assert (ref.registry, ref.repository, ref.tag) == ("localhost:5000", "models/llama", "v1")
    assert ref.is_loopback


def test_tag_and_digest_together() -> None:
    ref = parse_reference(f"127.0.0.1:5000/m:v1@{D}")
    assert (ref.tag, ref.digest, ref.identifier) == ("v1", D, D)


def test_digest_only_has_no_default_tag() -> None:
    ref = parse_reference(f"ghcr.io/org/m@{D}")
    assert ref.tag is None and ref.digest == D and not ref.is_loopback


def test_layout_reference_with_tag() -> None:
    ref = parse_reference("oci:/tmp/models/store:v2")
    assert ref.is_layout and ref.layout == "/tmp/models/store" and ref.tag == "v2"


def test_layout_reference_scheme_form_and_digest() -> None:
    ref = parse_reference(f"oci-layout://./store@{D}")
    assert ref.layout == "./store" and ref.digest == D and ref.tag is None


@pytest.mark.parametrize(
    "bad",
    ["", "UPPER/case", "host/repo:bad tag", "host/repo@sha256:123", "https://host/repo", "repo//x", "oci:"],
)
def test_bad_references_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_reference(bad)


def test_fallback_and_legacy_tags_follow_the_specs() -> None:
    assert fallback_tag(D) == "sha256-" + "ab" * 32
    assert legacy_signature_tag(D) == "sha256-" + "ab" * 32 + ".sig"


def test_str_round_trips() -> None:
    text = f"127.0.0.1:5000/a/b:v1@{D}"
    assert str(parse_reference(text)) == text
