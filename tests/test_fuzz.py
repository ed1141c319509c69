"""Property tests for every parser that reads untrusted input.

The promise under test: whatever bytes a registry, a layout or a user hands omsign, the parser
either returns a value that satisfies its contract or raises one of omsign's own errors (which
the CLI turns into one line and a documented exit code). A ``KeyError`` or ``RecursionError``
escaping from here would be a traceback for the user and, worse, a parser whose behaviour on
hostile input nobody has thought about.

``make test`` runs few examples (profile ``default``); ``make fuzz`` runs many (``fuzz``).
"""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import PurePosixPath
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from oci_model_sign.errors import IntegrityError, LimitError, OmsignError, UsageError
from oci_model_sign.limits import Limits, load_json
from oci_model_sign.model.unpack import parse_model_manifest, safe_relpath
from oci_model_sign.oci.descriptor import Descriptor
from oci_model_sign.reference import Reference, parse_reference

LIMITS = Limits()
SMALL_LIMITS = Limits(manifest_bytes=64 * 1024, layers=50, json_depth=16)

# -- strategies ---------------------------------------------------------------------------------
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False), st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
hexdigest = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
digests = hexdigest.map(lambda h: f"sha256:{h}")
components = st.from_regex(r"\A[a-z0-9]+(?:[._-][a-z0-9]+){0,2}\Z")
tags = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
hosts = st.one_of(
    st.just("localhost:5000"),
    st.integers(min_value=1, max_value=65535).map(lambda p: f"127.0.0.1:{p}"),
    st.from_regex(r"\A[a-z](?:[a-z0-9-]{0,6}[a-z0-9])?\.(io|com|dev)\Z"),
)
media_types = st.sampled_from([
    "application/vnd.cncf.model.weight.v1.raw",
    "application/vnd.cncf.model.weight.v1.tar",
    "application/vnd.cncf.model.weight.v1.tar+zstd",
    "application/vnd.cncf.model.doc.v1.raw",
    "application/vnd.cncf.model.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/octet-stream",
    "application/vnd.kitops.modelkit.model.v1.tar+gzip",
    "",
])
hostile_paths = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(["a", "..", ".", "", "/", "\\", "C:", "\x00", "b\u0301", "\uff0e\uff0e", "ｃ"]),
             max_size=6).map("/".join),
    st.lists(st.sampled_from(["a", "..", ".", "", "C:", "x\x00y", "\\"]), max_size=6).map("\\".join),
)


def descriptor_like(draw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "mediaType": draw(media_types),
        "digest": draw(st.one_of(digests, st.text(max_size=10))),
        "size": draw(st.one_of(st.integers(min_value=-5, max_value=2**40), st.booleans(), st.text(max_size=3))),
    }
    if draw(st.booleans()):
        d["annotations"] = draw(st.one_of(
            st.dictionaries(st.sampled_from([
                "org.opencontainers.image.title", "org.cncf.model.filepath",
                "org.cncf.model.file.metadata+json", "org.cncf.model.file.mediatype.untested",
                "other",
            ]), st.one_of(hostile_paths, json_values), max_size=3),
            json_values,
        ))
    if draw(st.booleans()):
        d[draw(st.sampled_from(["artifactType", "urls", "platform"]))] = draw(json_values)
    return d


@st.composite
def manifests(draw: Any) -> Any:
    """Manifest-shaped JSON: mostly right, with hostile paths, types and sizes mixed in."""
    value: dict[str, Any] = {
        "schemaVersion": draw(st.sampled_from([2, 1, "2"])),
        "mediaType": draw(st.sampled_from([
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.index.v1+json",
        ])),
        "config": descriptor_like(draw),
        "layers": [descriptor_like(draw) for _ in range(draw(st.integers(min_value=0, max_value=6)))],
    }
    if draw(st.booleans()):
        value["artifactType"] = draw(st.one_of(
            st.sampled_from(["application/vnd.cncf.model.manifest.v1+json", "application/vnd.cnai.model.manifest.v1+json"]),
            json_values,
        ))
    if draw(st.booleans()):
        value["annotations"] = draw(json_values)
    for key in draw(st.lists(st.sampled_from(["config", "layers", "mediaType"]), max_size=1)):
        value[key] = draw(json_values)  # one field replaced by garbage
    return value


# -- references ---------------------------------------------------------------------------------
@given(st.text(max_size=120))
@example("oci:")
@example("oci:a:b:c@sha256:" + "0" * 64)
@example("Registry.IO/UPPER/case")
@example("host:99999999/x")
@example("a" * 300)
def test_parse_reference_raises_only_usage_error(text: str) -> None:
    """Any text as a reference: parsed, or UsageError (exit 2); nothing else escapes."""
    try:
        ref = parse_reference(text)
    except UsageError:
        return
    assert isinstance(ref, Reference)
    assert (ref.registry is None) != (ref.layout is None)


@given(st.text(max_size=120))
def test_parsed_reference_round_trips_through_str(text: str) -> None:
    """Every accepted reference prints back to text that parses to the same reference."""
    try:
        ref = parse_reference(text)
    except UsageError:
        return
    assert parse_reference(str(ref)) == ref


@given(hosts, st.lists(components, min_size=1, max_size=3), st.one_of(st.none(), tags),
       st.one_of(st.none(), digests))
def test_well_formed_remote_references_parse_to_their_parts(
    host: str, path: list[str], tag: str | None, digest: str | None
) -> None:
    """Well-formed host/repo:tag@digest references parse to exactly their parts."""
    text = f"{host}/{'/'.join(path)}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    ref = parse_reference(text)
    assert ref.registry == host
    assert ref.repository == "/".join(path)
    assert ref.digest == digest
    assert ref.tag == (tag if tag or digest else "latest")
    assert parse_reference(str(ref)) == ref


# -- JSON, descriptors, manifests ---------------------------------------------------------------
@given(st.binary(max_size=300))
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'{"a":' * 70 + b"1" + b"}" * 70)
@example(b"\xff\xfe{}")
@example(b'"\\ud800"')
def test_load_json_raises_only_omsign_errors(data: bytes) -> None:
    """Arbitrary bytes (incl. 100,000-deep nesting, bad UTF-8, lone surrogates) as JSON: value, IntegrityError or LimitError."""
    with contextlib.suppress(IntegrityError, LimitError):
        load_json(data, max_bytes=1 << 20, depth=64, what="fuzz")


@given(json_values)
def test_load_json_accepts_what_json_dumps_within_bounds(value: Any) -> None:
    """Any JSON value within the bounds is read back unchanged."""
    data = json.dumps(value).encode()
    assert load_json(data, max_bytes=1 << 20, depth=64, what="fuzz") == value


@given(st.one_of(json_values, st.dictionaries(st.sampled_from(["mediaType", "digest", "size", "annotations", "artifactType"]), json_values)))
def test_descriptor_from_json_raises_only_integrity_error(value: Any) -> None:
    """Arbitrary JSON as a descriptor: a valid descriptor or IntegrityError."""
    try:
        desc = Descriptor.from_json(value)
    except IntegrityError:
        return
    assert desc.size >= 0 and desc.media_type


@given(st.data())
def test_descriptor_from_json_on_descriptor_shapes(data: st.DataObject) -> None:
    """Descriptor-shaped JSON with hostile fields: accepted descriptors re-serialise stably."""
    raw = descriptor_like(data.draw)
    try:
        desc = Descriptor.from_json(raw)
    except IntegrityError:
        return
    again = Descriptor.from_json(desc.to_json())
    # Equality up to empty optional fields: to_json drops an empty artifactType/annotations.
    assert again.to_json() == desc.to_json()
    assert (again.media_type, again.digest, again.size) == (desc.media_type, desc.digest, desc.size)


@given(st.binary(max_size=400))
def test_parse_model_manifest_on_bytes_raises_only_omsign_errors(data: bytes) -> None:
    """Arbitrary bytes as a model manifest: only omsign errors."""
    with contextlib.suppress(OmsignError):
        parse_model_manifest(data, SMALL_LIMITS)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(manifests(), st.one_of(st.none(), st.binary(max_size=50), json_values.map(lambda v: json.dumps(v).encode())))
def test_parse_model_manifest_raises_only_omsign_errors_and_yields_safe_paths(value: Any, config: bytes | None) -> None:
    """Manifest-shaped JSON with hostile paths, types and sizes: only omsign errors, and every accepted path is safe and unique."""
    data = json.dumps(value).encode()
    try:
        model = parse_model_manifest(data, SMALL_LIMITS, config=config)
    except OmsignError:
        return
    seen: set[str] = set()
    for entry in model.files:
        path = str(entry.path)
        _assert_safe(path)
        if not entry.is_tar:
            assert path not in seen
            seen.add(path)


# -- paths --------------------------------------------------------------------------------------
def _assert_safe(path: str) -> None:
    p = PurePosixPath(path)
    assert not p.is_absolute()
    assert ".." not in p.parts
    assert "\x00" not in path
    assert "\\" not in path
    assert not (len(path) >= 2 and path[1] == ":" and path[0].isalpha())
    assert path and path == str(p)


@given(hostile_paths)
@example("../etc/passwd")
@example("/etc/passwd")
@example("C:/Windows")
@example("c:evil")
@example("a/../../b")
@example("a\\..\\b")
@example("a\x00b")
@example("./a")
@example("a//b")
@example("a/")
def test_safe_relpath_accepts_only_clean_relative_paths(path: str) -> None:
    """Hostile paths: any accepted path is relative, canonical, without '..', NUL, backslash or drive letter."""
    try:
        out = safe_relpath(path)
    except IntegrityError:
        return
    _assert_safe(str(out))
    assert str(out) == path  # accepted paths are already canonical: nothing was rewritten


@given(json_values)
def test_safe_relpath_refuses_non_strings_with_integrity_error(value: Any) -> None:
    """Non-string path values are IntegrityError."""
    assume(not isinstance(value, str))
    with pytest.raises(IntegrityError):
        safe_relpath(value)


# -- bundles ------------------------------------------------------------------------------------
def _policy() -> Any:
    from oci_model_sign.verify.policy import KeyPolicy

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return KeyPolicy(key, ignore_tlog=True)


POLICY: Any = None
SUBJECT = "sha256:" + "ab" * 32


def _verify(data: bytes) -> Any:
    global POLICY
    bundle = pytest.importorskip("oci_model_sign.verify.bundle")
    if POLICY is None:
        POLICY = _policy()
    return bundle.verify_bundle(data, SUBJECT, POLICY, source="fuzz")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@st.composite
def bundle_like(draw: Any) -> bytes:
    """Bundle-shaped JSON with a DSSE envelope whose parts are plausible or hostile."""
    statement = {
        "_type": draw(st.sampled_from(["https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1", "x"])),
        "subject": draw(st.one_of(
            st.just([{"name": "m", "digest": {"sha256": SUBJECT.split(":")[1]}}]),
            json_values,
        )),
        "predicateType": draw(st.sampled_from([
            "https://sigstore.dev/cosign/sign/v1", "https://model_signing/signature/v1.0", "x",
        ])),
        "predicate": draw(json_values),
    }
    payload = draw(st.one_of(st.just(json.dumps(statement).encode()), st.binary(max_size=40)))
    envelope = {
        "payload": draw(st.one_of(st.just(_b64(payload)), st.text(max_size=20))),
        "payloadType": draw(st.sampled_from(["application/vnd.in-toto+json", "text/plain", ""])),
        "signatures": draw(st.one_of(
            st.lists(st.fixed_dictionaries({"sig": st.binary(max_size=72).map(_b64), "keyid": st.text(max_size=5)}),
                     max_size=2),
            json_values,
        )),
    }
    value: dict[str, Any] = {
        "mediaType": draw(st.sampled_from([
            "application/vnd.dev.sigstore.bundle.v0.3+json",
            "application/vnd.dev.sigstore.bundle+json;version=0.3",
            "application/vnd.dev.sigstore.bundle+json;version=0.1",
            "",
        ])),
        "verificationMaterial": draw(st.one_of(
            st.just({"publicKey": {"hint": "x"}, "tlogEntries": []}),
            json_values,
        )),
        "dsseEnvelope": draw(st.one_of(st.just(envelope), json_values)),
    }
    if draw(st.booleans()):
        value["messageSignature"] = draw(json_values)
    return json.dumps(value).encode()


@given(st.binary(max_size=400))
@example(b"")
@example(b"[" * 50_000)
def test_verify_bundle_on_arbitrary_bytes_fails_cleanly(data: bytes) -> None:
    """Arbitrary bytes as a Sigstore bundle: a failed candidate with a reason, never an exception."""
    result = _verify(data)
    assert result.ok is False and result.reason


@given(json_values)
def test_verify_bundle_on_arbitrary_json_fails_cleanly(value: Any) -> None:
    """Arbitrary JSON as a Sigstore bundle: a failed candidate with a reason."""
    result = _verify(json.dumps(value).encode())
    assert result.ok is False and result.reason


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(bundle_like())
def test_verify_bundle_on_bundle_shaped_json_fails_cleanly(data: bytes) -> None:
    """Bundle-shaped JSON with forged DSSE envelopes, payload types and statements: a failed candidate."""
    result = _verify(data)
    assert result.ok is False and result.reason
