"""``--certificate-identity-regexp`` / ``--certificate-oidc-issuer-regexp`` follow Go's RE2, as
cosign does: each test is a case where Python's ``re`` would decide differently."""

from __future__ import annotations

import datetime
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oci_model_sign.errors import UsageError
from oci_model_sign.verify.certs import IdentityMatcher
from oci_model_sign.verify.policy import IdentityPolicy
from oci_model_sign.verify.regexp import re2_search
from oci_model_sign.verify.rejection import CandidateRejected
from tests.helpers import assert_cli_error, run_cli


def _cert_for(email: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        .sign(key, hashes.SHA256())
    )


def test_dollar_does_not_match_before_a_trailing_newline() -> None:
    """Python's ``$`` matches before a final newline; RE2's (without ``(?m)``) does not."""
    pattern = r"^alice@example\.com$"
    assert re.search(pattern, "alice@example.com\n")  # what Python would admit
    assert not re2_search(pattern, "alice@example.com\n")
    assert re2_search(pattern, "alice@example.com")


def test_anchored_identity_regexp_refuses_a_san_with_a_trailing_newline() -> None:
    matcher = IdentityMatcher(identity_regexp=r"^alice@example\.com$")
    with pytest.raises(CandidateRejected, match="does not match"):
        matcher.check(_cert_for("alice@example.com\n"))
    matcher.check(_cert_for("alice@example.com"))


def test_regexps_are_searched_not_anchored_as_go_matchstring() -> None:
    assert re2_search(r"example\.com", "alice@example.com")
    assert re2_search(r"https://github\.com/", "x https://github.com/org")


def test_backslash_z_ends_the_text_in_re2_and_python_spelling_is_refused() -> None:
    assert re2_search(r"example\.com\z", "alice@example.com")
    assert not re2_search(r"example\.com\z", "alice@example.com\n")
    with pytest.raises(UsageError, match="not a valid RE2"):
        IdentityPolicy(identity_regexp=r"example\.com\Z", issuer="https://issuer.example")


@pytest.mark.parametrize(
    "pattern",
    [r"^(?=.*admin).*$", r"^(?!mallory).*$", r"(?<=@)example\.com", r"^(a)\1$"],
    ids=["lookahead", "negative-lookahead", "lookbehind", "backreference"],
)
def test_python_only_syntax_is_a_usage_error(pattern: str) -> None:
    re.compile(pattern)  # Python accepts it ...
    with pytest.raises(UsageError, match="not a valid RE2"):  # ... cosign (Go) would not
        IdentityPolicy(identity_regexp=pattern, issuer="https://issuer.example")


def test_re2_only_syntax_is_accepted() -> None:
    """Unicode classes and ``(?<name>…)`` groups are RE2 (Go), not Python 3.11 ``re``."""
    with pytest.raises(re.error):
        re.compile(r"^\pL+@example\.com$")
    assert re2_search(r"^\pL+@example\.com$", "élise@example.com")
    IdentityPolicy(identity_regexp=r"^(?P<user>\pL+)@example\.com$", issuer_regexp=r"^https://", issuer=None)


def test_issuer_regexp_uses_re2_too() -> None:
    pattern = r"^https://issuer\.example$"
    assert not re2_search(pattern, "https://issuer.example\n")
    with pytest.raises(UsageError, match="certificate-oidc-issuer-regexp"):
        IdentityPolicy(identity="a@b.c", issuer_regexp=r"(?=x)")


def test_cli_reports_an_invalid_re2_regexp_in_one_line(repo: str) -> None:
    result = run_cli(
        "verify", f"{repo}:v1", "--certificate-identity-regexp", r"^(?=x)", "--certificate-oidc-issuer", "https://i",
        "--offline",
    )
    assert_cli_error(result, 2, "RE2")
    assert "Error parsing" not in result.stderr  # RE2's own logging stays quiet
