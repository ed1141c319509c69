"""Reading a policy file: YAML/JSON, then the schema, then what only code can check.

Every problem is a ``UsageError`` that names ``file:line`` and the field, so a policy that
does not say exactly what its author meant is refused before anything is trusted with it.
Paths in a policy are relative to the policy file's folder.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ..errors import UsageError
from .marked import FieldPath, MarkedDocument, load_marked
from .model import AttestationRequirement, Authority, Mode, Revocation, ScopePolicy, TrustPolicy
from .regex import compile_re2
from .schema import API_VERSION, SCHEMA
from .scopes import parse_scope

MAX_POLICY_BYTES = 1024 * 1024
_RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


def read_policy_text(path: Path) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"policy file {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"policy file {path} is a directory") from None
    except OSError as exc:
        raise UsageError(f"cannot read policy file {path}: {exc.strerror}") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise UsageError(f"policy file {path} is larger than {MAX_POLICY_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: the policy file is not UTF-8 text") from None


def load_policy(path: str | Path) -> TrustPolicy:
    """Load and fully validate a policy file; ``UsageError`` (naming the line) when it is not valid."""
    p = Path(path)
    doc = load_marked(read_policy_text(p), str(p))
    return _Builder(doc, p.resolve().parent, p).build()


# --------------------------------------------------------------------------------------------
# Schema errors, said the way a person fixing the file needs them
# --------------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_TYPE_WORDS = {"string": "a string", "object": "a mapping", "array": "a list", "boolean": "true or false",
               "integer": "an integer", "number": "a number"}


def _schema_error(doc: MarkedDocument, error: Any) -> UsageError:
    path: FieldPath = tuple(error.absolute_path)
    validator = error.validator
    instance = error.instance
    schema = error.schema
    if validator == "additionalProperties" and isinstance(instance, dict):
        allowed = list(schema.get("properties", {}))
        extra = [k for k in instance if k not in allowed]
        key = extra[0] if extra else "?"
        hint = f"allowed fields here: {', '.join(allowed)}" if allowed else None
        return doc.error(path, f"unknown field {key!r}", key=True, hint=hint, at=(*path, key))
    if validator == "required":
        missing = [k for k in error.validator_value if not (isinstance(instance, dict) and k in instance)]
        return doc.error(path, f"missing required field {missing[0]!r}" if missing else error.message)
    if validator == "oneOf" and all(set(s) == {"required"} for s in error.validator_value):
        options = [s["required"][0] for s in error.validator_value]
        present = [o for o in options if isinstance(instance, dict) and o in instance]
        if len(present) > 1:
            return doc.error(path, f"give only one of {', '.join(present)}")
        return doc.error(path, f"needs one of: {', '.join(options)}")
    if validator == "type":
        expected = error.validator_value
        words = " or ".join(str(_TYPE_WORDS.get(str(t), t)) for t in (expected if isinstance(expected, list) else [expected]))
        return doc.error(path, f"must be {words}, not {_type_name(instance)}")
    if validator == "enum":
        return doc.error(path, f"must be one of {', '.join(map(str, error.validator_value))}, not {instance!r}")
    if validator == "const":
        return doc.error(path, f"must be {error.validator_value!r}, not {instance!r}")
    if validator == "pattern" and path and path[-1] == "fingerprint":
        return doc.error(path, f"{instance!r} is not a fingerprint: write sha256:<64 hex digits>")
    if validator == "minLength":
        return doc.error(path, "must not be empty")
    if validator == "minItems":
        return doc.error(path, f"needs at least {error.validator_value} item(s)")
    if validator == "minimum":
        return doc.error(path, f"must be at least {error.validator_value}, not {instance!r}")
    return doc.error(path, error.message)


def _validate_schema(doc: MarkedDocument) -> None:
    from jsonschema import Draft202012Validator

    errors = list(Draft202012Validator(SCHEMA).iter_errors(doc.data))
    if not errors:
        return

    def order(e: Any) -> tuple[int, int]:
        path: FieldPath = tuple(e.absolute_path)
        return (doc.line(path), -len(path))

    raise _schema_error(doc, min(errors, key=order))


# --------------------------------------------------------------------------------------------
# Building the policy
# --------------------------------------------------------------------------------------------


def _fingerprint(key: Any) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _parse_public_key(data: bytes) -> Any:
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return None
    return key


class _Builder:
    def __init__(self, doc: MarkedDocument, base: Path, source: Path) -> None:
        self.doc = doc
        self.base = base
        self.source = source

    def fail(self, path: FieldPath, message: str, *, key: bool = True, hint: str | None = None) -> UsageError:
        return self.doc.error(path, message, key=key, hint=hint)

    def build(self) -> TrustPolicy:
        data = self.doc.data
        if not isinstance(data, dict):
            raise self.fail((), f"a policy is a mapping with apiVersion: {API_VERSION}, not {_type_name(data)}")
        version = data.get("apiVersion")
        if version is None:
            raise self.fail((), f"missing required field 'apiVersion' (this omsign reads apiVersion: {API_VERSION})")
        if version != API_VERSION:
            raise self.fail(
                ("apiVersion",), f"unsupported version {version!r}", hint=f"this omsign reads apiVersion: {API_VERSION}"
            )
        _validate_schema(self.doc)
        revoked = self.revocations(data.get("revoked", []), ("revoked",))
        scopes = []
        seen: dict[str, str] = {}
        for name, body in data.get("scopes", {}).items():
            path: FieldPath = ("scopes", name)
            try:
                pattern = parse_scope(name)
            except ValueError as exc:
                raise self.fail(path, str(exc), key=True) from None
            if pattern.normalised in seen:
                raise self.fail(
                    path,
                    f"scope {name!r} is the same scope as {seen[pattern.normalised]!r} ({pattern.normalised})",
                    key=True,
                )
            seen[pattern.normalised] = name
            scopes.append(self.scope(name, pattern, body, path, revoked))
        default = None
        if "default" in data:
            default = self.scope("default", None, data["default"], ("default",), revoked)
        return TrustPolicy(
            source=self.source,
            api_version=version,
            scopes=tuple(scopes),
            default=default,
            revoked=revoked,
            description=data.get("description"),
        )

    # -- scopes ----------------------------------------------------------------------------

    def scope(
        self, name: str, pattern: Any, body: dict[str, Any], path: FieldPath, revoked: tuple[Revocation, ...]
    ) -> ScopePolicy:
        reject = bool(body.get("reject", False))
        accept = bool(body.get("insecureAcceptAnything", False))
        raw_auth = body.get("authorities")
        if reject and accept:
            raise self.fail(path, "reject and insecureAcceptAnything contradict each other")
        if (reject or accept) and (raw_auth or body.get("attestations") or "threshold" in body):
            what = "reject" if reject else "insecureAcceptAnything"
            raise self.fail(path, f"{what} takes no authorities, attestations or threshold")
        if not (reject or accept) and not raw_auth:
            raise self.fail(
                path,
                "missing required field 'authorities'",
                hint="list who must have signed, or say reject: true / insecureAcceptAnything: true",
            )
        authorities = tuple(
            self.authority(a, (*path, "authorities", i), i) for i, a in enumerate(raw_auth or [])
        )
        self._check_distinct(authorities, (*path, "authorities"))
        threshold = int(body.get("threshold", 1))
        if authorities and threshold > len(authorities):
            raise self.fail(
                (*path, "threshold"),
                f"threshold {threshold} is more than the {len(authorities)} authorities listed",
            )
        attestations = tuple(
            self.attestation(a, (*path, "attestations", i)) for i, a in enumerate(body.get("attestations", []))
        )
        mode: Mode = "warn" if body.get("mode") == "warn" else "enforce"
        own = self.revocations(body.get("revoked", []), (*path, "revoked"))
        return ScopePolicy(
            name=name,
            pattern=pattern,
            mode=mode,
            authorities=authorities,
            threshold=threshold,
            attestations=attestations,
            revoked=revoked + own,
            annotations=dict(body.get("annotations", {})),
            reject=reject,
            accept_anything=accept,
            line=self.doc.line(path, key=True),
        )

    def _check_distinct(self, authorities: tuple[Authority, ...], path: FieldPath) -> None:
        names: dict[str, int] = {}
        same: dict[tuple[Any, ...], int] = {}
        for i, a in enumerate(authorities):
            if a.name in names:
                raise self.fail((*path, i), f"authority name {a.name!r} is already used by {path[-1]}[{names[a.name]}]")
            names[a.name] = i
            ident: tuple[Any, ...] = (
                (a.kind, a.fingerprint)
                if a.kind == "key"
                else (a.kind, a.identity, a.identity_regexp, a.issuer, a.issuer_regexp, a.ca_roots)
            )
            if ident in same:
                raise self.fail(
                    (*path, i),
                    f"the same authority is listed twice (as [{same[ident]}] and [{i}]): "
                    "a threshold counts distinct authorities",
                )
            same[ident] = i

    # -- authorities -----------------------------------------------------------------------

    def authority(self, body: dict[str, Any], path: FieldPath, index: int) -> Authority:
        common: dict[str, Any] = {"line": self.doc.line(path)}
        if "trustConfig" in body:
            common["trust_config"] = self.file((*path, "trustConfig"), body["trustConfig"], "trust config")
        common["ignore_tlog"] = bool(body.get("ignoreTlog", False))
        explicit = body.get("name")
        if "key" in body:
            key_path, pem, fp = self.key((*path, "key"), body["key"])
            name = explicit or (f"key {key_path.name}" if key_path is not None else f"key {fp[:19]}")
            return Authority(name, "key", key_path=key_path, key_pem=pem, fingerprint=fp, **common)
        if "keyless" in body:
            kl = body["keyless"]
            kpath = (*path, "keyless")
            self.regexps(kl, kpath)
            if "trustConfig" in kl:
                if "trust_config" in common:
                    raise self.fail((*kpath, "trustConfig"), "trustConfig is given twice (here and on the authority)")
                common["trust_config"] = self.file((*kpath, "trustConfig"), kl["trustConfig"], "trust config")
            if common["ignore_tlog"]:
                raise self.fail((*path, "ignoreTlog"), "keyless signatures always need the transparency log")
            who = kl.get("identity") or f"/{kl.get('identityRegexp')}/"
            return Authority(
                explicit or f"keyless {who}",
                "keyless",
                identity=kl.get("identity"),
                identity_regexp=kl.get("identityRegexp"),
                issuer=kl.get("issuer"),
                issuer_regexp=kl.get("issuerRegexp"),
                staging=bool(kl.get("staging", False)),
                offline=bool(kl.get("offline", False)),
                **common,
            )
        ca = body["ca"]
        cpath = (*path, "ca")
        self.regexps(ca, cpath)
        for both in (("identity", "identityRegexp"), ("issuer", "issuerRegexp")):
            if both[0] in ca and both[1] in ca:
                raise self.fail(cpath, f"give only one of {both[0]}, {both[1]}")
        roots = self.certificates((*cpath, "roots"), ca["roots"])
        inter = self.certificates((*cpath, "intermediates"), ca["intermediates"]) if "intermediates" in ca else None
        return Authority(
            explicit or f"ca {roots.name}",
            "x509",
            ca_roots=roots,
            intermediates=inter,
            identity=ca.get("identity"),
            identity_regexp=ca.get("identityRegexp"),
            issuer=ca.get("issuer"),
            issuer_regexp=ca.get("issuerRegexp"),
            **common,
        )

    def regexps(self, body: dict[str, Any], path: FieldPath) -> None:
        for field_ in ("identityRegexp", "issuerRegexp"):
            if field_ in body:
                try:
                    compile_re2(body[field_])
                except ValueError as exc:
                    raise self.fail((*path, field_), str(exc)) from None

    def file(self, path: FieldPath, value: str, what: str) -> Path:
        p = Path(value).expanduser()
        if not p.is_absolute():
            p = self.base / p
        if not p.is_file():
            raise self.fail(path, f"{what} file {value!r} does not exist ({p})")
        return p

    def key(self, path: FieldPath, ref: dict[str, Any]) -> tuple[Path | None, bytes | None, str]:
        if "path" in ref:
            file = self.file((*path, "path"), ref["path"], "key")
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise self.fail((*path, "path"), f"cannot read key file {file}: {exc.strerror}") from None
            key = _parse_public_key(data)
            if key is None:
                raise self.fail((*path, "path"), f"{file} is not a PEM or DER public key (ECDSA, RSA or Ed25519)")
            return file, None, _fingerprint(key)
        data = str(ref["data"]).encode()
        key = _parse_public_key(data)
        if key is None:
            raise self.fail((*path, "data"), "is not a PEM public key (-----BEGIN PUBLIC KEY-----)")
        return None, data, _fingerprint(key)

    def certificates(self, path: FieldPath, value: str) -> Path:
        file = self.file(path, value, "certificate")
        try:
            data = file.read_bytes()
            certs = (
                x509.load_pem_x509_certificates(data)
                if b"-----BEGIN" in data
                else [x509.load_der_x509_certificate(data)]
            )
        except (OSError, ValueError):
            certs = []
        if not certs:
            raise self.fail(path, f"{file} holds no PEM or DER certificate")
        return file

    # -- attestations ----------------------------------------------------------------------

    def attestation(self, body: dict[str, Any], path: FieldPath) -> AttestationRequirement:
        schema: dict[str, Any] | None = None
        schema_path: Path | None = None
        raw = body.get("schema")
        if isinstance(raw, str):
            schema_path = self.file((*path, "schema"), raw, "schema")
            schema = self._load_schema_file((*path, "schema"), schema_path)
        elif isinstance(raw, dict):
            schema = raw
        if schema is not None:
            from jsonschema import SchemaError, validators

            try:
                validators.validator_for(schema).check_schema(schema)
            except SchemaError as exc:
                raise self.fail((*path, "schema"), f"is not a valid JSON Schema: {exc.message}") from None
        return AttestationRequirement(
            predicate_type=body["predicateType"],
            name=body.get("name"),
            check=body.get("check"),
            schema=schema,
            schema_path=schema_path,
            line=self.doc.line(path),
        )

    def _load_schema_file(self, path: FieldPath, file: Path) -> dict[str, Any]:
        text = read_policy_text(file)
        data = load_marked(text, str(file)).data
        if not isinstance(data, dict):
            raise self.fail(path, f"{file} does not hold a JSON Schema object")
        return data

    # -- revocations -----------------------------------------------------------------------

    def revocations(self, items: list[dict[str, Any]], path: FieldPath) -> tuple[Revocation, ...]:
        return tuple(self.revocation(item, (*path, i)) for i, item in enumerate(items))

    def revocation(self, body: dict[str, Any], path: FieldPath) -> Revocation:
        self.regexps(body, path)
        by_key = "fingerprint" in body or "key" in body
        if by_key and any(k in body for k in ("issuer", "issuerRegexp")):
            raise self.fail(path, "issuer applies to revoked identities, not to keys")
        if "issuer" in body and "issuerRegexp" in body:
            raise self.fail(path, "give only one of issuer, issuerRegexp")
        after = None
        if "after" in body:
            after = self.timestamp((*path, "after"), body["after"])
        fields: dict[str, Any] = {}
        if "fingerprint" in body:
            fields["fingerprint"] = body["fingerprint"].lower()
        elif "key" in body:
            key_path, _, fp = self.key((*path, "key"), body["key"])
            fields["fingerprint"], fields["key_path"] = fp, key_path
        else:
            fields.update(
                identity=body.get("identity"),
                identity_regexp=body.get("identityRegexp"),
                issuer=body.get("issuer"),
                issuer_regexp=body.get("issuerRegexp"),
            )
        return Revocation(line=self.doc.line(path), after=after, reason=body.get("reason"), **fields)

    def timestamp(self, path: FieldPath, value: str) -> datetime:
        bad = f"{value!r} is not an RFC 3339 time with a zone (e.g. 2026-03-01T00:00:00Z)"
        if not _RFC3339_RE.match(value):
            raise self.fail(path, bad)
        try:
            return datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            raise self.fail(path, bad) from None
