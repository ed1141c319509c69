"""Keys that never leave an HSM: ``--key pkcs11:…`` against a real SoftHSM2 token.

A token is initialised in a temporary directory per session (``SOFTHSM2_CONF``) and its keys
are generated on the token, so no private key ever exists as a file. Models are pushed to
the real test registry, signed through the token, and verified by the normal ``verify`` path
with the public key read back off the token.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from oci_model_sign import api
from oci_model_sign.errors import InputError, UsageError
from oci_model_sign.signing.keys import public_key_pem
from oci_model_sign.signing.keyuri import KeyKind, classify_key, private_signer, verification_key
from oci_model_sign.signing.pkcs11 import Pkcs11Signer, Pkcs11Uri, public_key_from_uri
from tests.helpers import assert_cli_error, assert_ok, make_model, run_cli

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
LABEL = "omsign-test"
PIN = "4711"
SO_PIN = "0815"
EC_KEY, EC_ID = "release-ec", b"\x01"
RSA_KEY, RSA_ID = "release-rsa", b"\x02"
CERT_KEY, CERT_ID = "card-ec", b"\x03"  # private key + certificate, no public-key object
TWIN_KEY = "twin"  # two key pairs share this label
KMS_URIS = [
    "awskms://localhost/alias/release",
    "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k",
    "azurekms://vault.vault.azure.net/release",
    "hashivault://release",
]
ANY_FILE = sys.executable  # parse() only checks that module-path is an absolute regular file


@dataclass(frozen=True)
class Token:
    module: str

    def uri(self, key: str = EC_KEY, *, pin: str | None = PIN, **query: str) -> str:
        params = {"module-path": self.module, **({"pin-value": pin} if pin is not None else {}), **query}
        return f"pkcs11:token={LABEL};object={key}?" + "&".join(f"{k}={v}" for k, v in params.items())


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} in CI: `make test` should have installed softhsm2")
    pytest.skip(why)


@pytest.fixture(scope="session")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Token]:
    """An initialised SoftHSM2 token with an EC P-256 and an RSA-2048 key pair made on it."""
    try:
        import pkcs11
        from pkcs11.util.ec import encode_named_curve_parameters
    except ImportError:
        _unavailable("python-pkcs11 is not installed")
    module = next((m for m in MODULES if os.path.isfile(m)), None)
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        _unavailable("softhsm2 is not installed")
    assert module is not None and util is not None
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # CLI subprocesses inherit it
    try:
        subprocess.run(
            [util, "--init-token", "--free", "--label", LABEL, "--pin", PIN, "--so-pin", SO_PIN],
            check=True, capture_output=True,
        )
        lib = pkcs11.lib(module)
        lib.reinitialize()  # SoftHSM2 reads SOFTHSM2_CONF in C_Initialize
        with lib.get_token(token_label=LABEL).open(rw=True, user_pin=PIN) as session:
            params = session.create_domain_parameters(
                pkcs11.KeyType.EC,
                {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                local=True,
            )
            params.generate_keypair(store=True, label=EC_KEY, id=EC_ID)
            for twin_id in (b"\x10", b"\x11"):
                params.generate_keypair(store=True, label=TWIN_KEY, id=twin_id)
            session.generate_keypair(pkcs11.KeyType.RSA, 2048, store=True, label=RSA_KEY, id=RSA_ID)
            _import_key_with_certificate_only(session)
        yield Token(module)
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


def _import_key_with_certificate_only(session: Any) -> None:
    """A key pair as smart cards often hold one: private key and certificate, no public-key object."""
    import datetime

    import pkcs11
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from pkcs11.util.ec import decode_ec_private_key
    from pkcs11.util.x509 import decode_x509_certificate

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "omsign token test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    sec1 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    common = {pkcs11.Attribute.TOKEN: True, pkcs11.Attribute.LABEL: CERT_KEY, pkcs11.Attribute.ID: CERT_ID}
    session.create_object({
        **decode_ec_private_key(sec1), **common,
        pkcs11.Attribute.SIGN: True, pkcs11.Attribute.PRIVATE: True, pkcs11.Attribute.SENSITIVE: True,
    })
    session.create_object({**decode_x509_certificate(cert.public_bytes(serialization.Encoding.DER)), **common})


@pytest.fixture(autouse=True)
def _no_pin_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMSIGN_PKCS11_PIN", "COSIGN_PKCS11_PIN", "OMSIGN_PKCS11_MODULE_PATH", "COSIGN_PKCS11_MODULE_PATH"):
        monkeypatch.delenv(name, raising=False)


def _pushed(repo: str, tmp_path: Path) -> str:
    ref = f"{repo}:v1"
    api.push(make_model(tmp_path / "model"), ref)
    return ref


def _pem(tmp_path: Path, key: Any) -> Path:
    path = tmp_path / "token.pub"
    path.write_bytes(public_key_pem(key))
    return path


# -- the URI ----------------------------------------------------------------------------------
def test_uri_yields_the_attributes_cosign_honours() -> None:
    uri = Pkcs11Uri.parse(
        f"pkcs11:token=My%20Token;slot-id=7;object=key%201;id=%01%ff?module-path={ANY_FILE}&pin-value=12%2634",
        environ={},
    )
    assert (uri.token, uri.slot_id, uri.object, uri.id) == ("My Token", 7, "key 1", b"\x01\xff")
    assert (uri.module_path, uri.pin({})) == (ANY_FILE, "12&34")


def test_module_path_falls_back_to_the_environment_omsign_name_first() -> None:
    env = {"OMSIGN_PKCS11_MODULE_PATH": ANY_FILE, "COSIGN_PKCS11_MODULE_PATH": "/nonexistent.so"}
    assert Pkcs11Uri.parse("pkcs11:token=t;object=k", environ=env).module_path == ANY_FILE
    assert Pkcs11Uri.parse("pkcs11:token=t;object=k", environ={"COSIGN_PKCS11_MODULE_PATH": ANY_FILE}).module_path == ANY_FILE


def test_pin_comes_from_pin_value_then_pin_source_then_the_environment(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("from-file\n")
    base = f"pkcs11:token=t;object=k?module-path={ANY_FILE}"
    env = {"OMSIGN_PKCS11_PIN": "omsign-env", "COSIGN_PKCS11_PIN": "cosign-env"}
    assert Pkcs11Uri.parse(base + "&pin-value=v", environ=env).pin(env) == "v"
    assert Pkcs11Uri.parse(base + f"&pin-source=file:{pin_file}", environ=env).pin(env) == "from-file"
    assert Pkcs11Uri.parse(base + f"&pin-source=file://{pin_file}", environ=env).pin(env) == "from-file"
    assert Pkcs11Uri.parse(base, environ=env).pin(env) == "omsign-env"
    assert Pkcs11Uri.parse(base, environ=env).pin({"COSIGN_PKCS11_PIN": "cosign-env"}) == "cosign-env"
    assert Pkcs11Uri.parse(base, environ={}).pin({}) is None


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        (f"pkcs11:object=k?module-path={ANY_FILE}", "one of token and slot-id"),
        (f"pkcs11:token=t?module-path={ANY_FILE}", "one of object and id"),
        ("pkcs11:token=t;object=k?module-path=lib/softhsm.so", "not an absolute path"),
        ("pkcs11:token=t;object=k", "no module-path"),
        (f"pkcs11:slot-id=first;object=k?module-path={ANY_FILE}", "not a number"),
        (f"pkcs11:token=t;object=k;colour=red?module-path={ANY_FILE}", "'colour' is not supported"),
        (f"pkcs11:token=t;object=k;object=j?module-path={ANY_FILE}", "given twice"),
        (f"pkcs11:token=t;object=k;type=cert?module-path={ANY_FILE}", "does not name a key pair"),
    ],
)
def test_malformed_uri_is_a_usage_error(uri: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        Pkcs11Uri.parse(uri, environ={})


def test_missing_module_file_is_an_input_error() -> None:
    with pytest.raises(InputError, match="does not exist"):
        Pkcs11Uri.parse("pkcs11:token=t;object=k?module-path=/nonexistent/libpkcs11.so", environ={})


def test_usage_errors_never_show_the_pin() -> None:
    with pytest.raises(UsageError) as err:
        Pkcs11Uri.parse("pkcs11:token=t;object=k?module-path=rel.so&pin-value=s3cret", environ={})
    assert "s3cret" not in err.value.one_line()


# -- what --key names -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("cosign.key", KeyKind.FILE),
        ("/keys/awskms-release.pem", KeyKind.FILE),
        ("pkcs11:token=t;object=k", KeyKind.PKCS11),
        ("PKCS11:token=t;object=k", KeyKind.PKCS11),
        *((uri, KeyKind.KMS) for uri in KMS_URIS),
        (str(Path("awskms://localhost/alias/release")), KeyKind.KMS),  # what a Path option makes of it
        ("k8s://ns/secret", KeyKind.KMS),
    ],
)
def test_key_values_are_classified_by_scheme(value: str, kind: KeyKind) -> None:
    assert classify_key(value).kind is kind


@pytest.mark.parametrize("uri", KMS_URIS)
def test_kms_keys_are_not_supported_yet_for_signing_or_verifying(uri: str) -> None:
    scheme = uri.split(":", 1)[0]
    for call in (private_signer, verification_key):
        with pytest.raises(UsageError) as err:
            call(uri)
        line = err.value.one_line()
        assert "not supported yet" in line and scheme in line and "file" not in line.split("(")[0]


# -- signing on the token ---------------------------------------------------------------------
@pytest.mark.parametrize(("key", "model_signing"), [(EC_KEY, True), (RSA_KEY, False)])
def test_model_signed_on_the_token_verifies_with_the_exported_public_key(
    token: Token, repo: str, tmp_path: Path, key: str, model_signing: bool
) -> None:
    ref = _pushed(repo, tmp_path)
    with Pkcs11Signer(token.uri(key)) as signer:
        signed = api.sign(ref, signer, model_signing_bundle=model_signing)
    pub = _pem(tmp_path, public_key_from_uri(token.uri(key, pin=None)))
    result = run_cli("verify", ref, "--key", pub, "--insecure-ignore-tlog")
    assert_ok(result)
    assert result.stdout.strip() == signed.digest


def test_public_key_export_needs_no_pin_and_matches_the_signing_key(token: Token) -> None:
    with Pkcs11Signer(token.uri()) as signer:
        signing_public = signer.key.public_key()
    exported = public_key_from_uri(token.uri(pin=None))
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert exported.public_bytes(*der) == signing_public.public_bytes(*der)


def test_public_key_comes_from_the_certificate_when_the_token_has_no_public_key_object(
    token: Token, repo: str, tmp_path: Path
) -> None:
    ref = _pushed(repo, tmp_path)
    with Pkcs11Signer(token.uri(CERT_KEY)) as signer:
        api.sign(ref, signer)
    pub = _pem(tmp_path, public_key_from_uri(token.uri(CERT_KEY, pin=None)))
    assert_ok(run_cli("verify", ref, "--key", pub, "--insecure-ignore-tlog"))


def test_key_is_found_by_id_before_label(token: Token) -> None:
    uri = f"pkcs11:token={LABEL};object=no-such-label;id=%02?module-path={token.module}&pin-value={PIN}"
    with Pkcs11Signer(uri) as signer:
        assert signer.describe().startswith("RSA-2048 PKCS#11 key")


@pytest.mark.parametrize("source", ["OMSIGN_PKCS11_PIN", "COSIGN_PKCS11_PIN", "pin-source"])
def test_pin_may_come_from_the_environment_or_a_pin_source_file(
    token: Token, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    if source == "pin-source":
        (tmp_path / "pin").write_text(PIN + "\n")
        uri = token.uri(pin=None, **{"pin-source": f"file:{tmp_path / 'pin'}"})
    else:
        monkeypatch.setenv(source, PIN)
        uri = token.uri(pin=None)
    with Pkcs11Signer(uri) as signer:
        assert b'"dsseEnvelope"' in signer.sign_dsse(b'{"_type":"https://in-toto.io/Statement/v1"}')


def test_label_shared_by_two_keys_is_refused_not_guessed(token: Token) -> None:
    with pytest.raises(InputError, match="several objects match 'twin'"):
        Pkcs11Signer(token.uri(TWIN_KEY))


def test_private_key_cannot_be_exported(token: Token) -> None:
    with Pkcs11Signer(token.uri()) as signer, pytest.raises(InputError, match="stays on the PKCS#11 token"):
        signer.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


# -- the command line -------------------------------------------------------------------------
def test_cli_signs_and_verifies_with_pkcs11_uris(token: Token, repo: str, tmp_path: Path) -> None:
    ref = _pushed(repo, tmp_path)
    signed = run_cli("sign", ref, "--key", token.uri(), "--no-tlog-upload")
    assert_ok(signed)
    checked = run_cli("verify", ref, "--key", token.uri(pin=None), "--insecure-ignore-tlog")
    assert_ok(checked)
    assert checked.stdout.strip() == signed.stdout.strip()


def test_cli_every_signature_format_made_on_the_token_verifies(token: Token, repo: str, tmp_path: Path) -> None:
    ref = _pushed(repo, tmp_path)
    assert_ok(run_cli("sign", ref, "--key", token.uri(), "--no-tlog-upload", "--format", "both"))
    checked = run_cli("verify", ref, "--key", token.uri(pin=None), "--insecure-ignore-tlog", "--json")
    assert_ok(checked)
    candidates = json.loads(checked.stdout)["candidates"]
    assert len(candidates) == 3 and all(c["ok"] for c in candidates), candidates  # bundle, model-signing, .sig


def test_cli_wrong_pin_is_a_one_line_error(token: Token, repo: str, tmp_path: Path) -> None:
    ref = _pushed(repo, tmp_path)
    assert_cli_error(run_cli("sign", ref, "--key", token.uri(pin="0000")), 3, "wrong PIN", LABEL)


def test_cli_missing_key_object_is_a_one_line_error(token: Token, repo: str, tmp_path: Path) -> None:
    ref = _pushed(repo, tmp_path)
    assert_cli_error(run_cli("sign", ref, "--key", token.uri("no-such-key")), 3, "no-such-key", LABEL)


def test_cli_missing_pin_without_a_terminal_is_a_one_line_error(token: Token, repo: str, tmp_path: Path) -> None:
    ref = _pushed(repo, tmp_path)
    assert_cli_error(run_cli("sign", ref, "--key", token.uri(pin=None), input=""), 3, "no PIN", "OMSIGN_PKCS11_PIN")


def test_cli_module_that_is_not_a_pkcs11_library_is_a_one_line_error(tmp_path: Path) -> None:
    fake = tmp_path / "libnot-pkcs11.so"
    fake.write_bytes(b"not a shared library\n")
    uri = f"pkcs11:token={LABEL};object={EC_KEY}?module-path={fake}&pin-value={PIN}"
    assert_cli_error(run_cli("sign", "127.0.0.1:9/never/contacted:v1", "--key", uri), 3, "cannot load PKCS#11 module")


@pytest.mark.parametrize("uri", KMS_URIS)
def test_cli_kms_keys_are_not_supported_yet(uri: str) -> None:
    ref = "127.0.0.1:9/never/contacted:v1"  # the key is refused before any registry is asked
    scheme = uri.split(":", 1)[0]
    for command in (["sign", ref, "--key", uri], ["verify", ref, "--key", uri, "--insecure-ignore-tlog"]):
        result = run_cli(*command)
        assert_cli_error(result, 2, "not supported yet", scheme)
        assert "no such file" not in result.stderr.lower()


def test_cli_attests_with_a_pkcs11_key_in_both_formats(token: Token, repo: str, tmp_path: Path) -> None:
    ref = _pushed(repo, tmp_path)
    evaluation = Path(__file__).resolve().parent.parent / "testdata" / "modelcards" / "eval.json"
    for fmt in ("bundle", "legacy"):
        assert_ok(run_cli("attest", ref, "--key", token.uri(), "--no-tlog-upload", "--type", "eval",
                          "--predicate", evaluation, "--format", fmt))
    checked = run_cli("verify-attestation", ref, "--type", "eval", "--key", token.uri(pin=None),
                      "--insecure-ignore-tlog", "--json")
    assert_ok(checked)
    assert [c["format"] for c in json.loads(checked.stdout)["verified"]] == ["bundle", "legacy"]
