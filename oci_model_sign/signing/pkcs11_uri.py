"""``pkcs11:`` key URIs (RFC 7512) as cosign reads them: which token, which key, which PIN.

Parsing touches no token and needs no PKCS#11 library, so a bad URI is a usage error before
anything is loaded; ``pkcs11.py`` opens the token the parsed URI names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes

from ..errors import InputError, UsageError

MODULE_PATH_ENV = ("OMSIGN_PKCS11_MODULE_PATH", "COSIGN_PKCS11_MODULE_PATH")
PIN_ENV = ("OMSIGN_PKCS11_PIN", "COSIGN_PKCS11_PIN")

_PATH_ATTRS = {"token", "slot-id", "object", "id", "type", "serial", "manufacturer", "model"}
# Library and slot descriptions narrow nothing omsign could mis-pick: accepted and ignored.
_IGNORED_PATH_ATTRS = {
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-description",
    "slot-manufacturer",
}
_QUERY_ATTRS = {"module-path", "pin-value", "pin-source"}


# -- the URI ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` key URI; ``pin`` is resolved later (it may need the token)."""

    module_path: str
    token: str | None = None
    slot_id: int | None = None
    object: str | None = None
    id: bytes | None = None
    serial: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    pin_value: str | None = field(default=None, repr=False)
    pin_source: str | None = None

    @property
    def key_name(self) -> str:
        """How the key is named in messages: its label, else its id in hex."""
        if self.object is not None:
            return repr(self.object)
        assert self.id is not None
        return f"id {self.id.hex()}"

    @property
    def token_name(self) -> str:
        if self.slot_id is not None:
            return f"in slot {self.slot_id}"
        return f"{self.token!r}"

    @classmethod
    def parse(cls, uri: str, environ: Mapping[str, str] | None = None) -> Pkcs11Uri:
        """Parse and check ``uri`` the way cosign does; bad URIs are usage errors (exit 2)."""
        env = os.environ if environ is None else environ
        if not uri.lower().startswith("pkcs11:"):
            raise UsageError(f"{_redact(uri)} is not a pkcs11: URI")
        body = uri[len("pkcs11:") :]
        path_part, _, query_part = body.partition("?")
        path = _attributes(path_part, ";", _PATH_ATTRS | _IGNORED_PATH_ATTRS, "path")
        query = _attributes(query_part, "&", _QUERY_ATTRS, "query")

        def text(attrs: dict[str, bytes], name: str) -> str | None:
            raw = attrs.get(name)
            if raw is None:
                return None
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UsageError(f"pkcs11: URI attribute {name} is not UTF-8") from None

        slot_text = text(path, "slot-id")
        slot_id: int | None = None
        if slot_text is not None:
            if not slot_text.isdigit():
                raise UsageError(f"pkcs11: URI slot-id {slot_text!r} is not a number")
            slot_id = int(slot_text)
        token = text(path, "token")
        if not token and slot_id is None:
            raise UsageError(
                "pkcs11: URI names no token: one of token and slot-id must be set",
                hint="e.g. pkcs11:token=MyToken;object=my-key?module-path=/path/to/module.so",
            )
        label = text(path, "object")
        key_id = path.get("id")
        if not label and not key_id:
            raise UsageError("pkcs11: URI names no key: one of object and id must be set")
        kind = text(path, "type")
        if kind not in (None, "private", "public"):
            raise UsageError(f"pkcs11: URI type={kind} does not name a key pair (use private or public)")
        module = text(query, "module-path") or next((env[n] for n in MODULE_PATH_ENV if env.get(n)), "")
        if not module:
            raise UsageError(
                "pkcs11: URI has no module-path",
                hint=f"add ?module-path=/path/to/module.so or set {MODULE_PATH_ENV[0]}",
            )
        if not os.path.isabs(module):
            raise UsageError(f"pkcs11: module-path {module!r} is not an absolute path")
        if not os.path.isfile(module):
            raise InputError(f"PKCS#11 module {module} does not exist or is not a file")
        return cls(
            module_path=module,
            token=token or None,
            slot_id=slot_id,
            object=label or None,
            id=key_id or None,
            serial=text(path, "serial"),
            manufacturer=text(path, "manufacturer"),
            model=text(path, "model"),
            pin_value=text(query, "pin-value"),
            pin_source=text(query, "pin-source"),
        )

    def pin(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The PIN from the URI (``pin-value``, then ``pin-source``), then the environment."""
        env = os.environ if environ is None else environ
        if self.pin_value is not None:
            return self.pin_value
        if self.pin_source is not None:
            return _read_pin_source(self.pin_source)
        for name in PIN_ENV:
            if name in env:
                return env[name]
        return None


def _redact(uri: str) -> str:
    """The URI without its query (which may hold ``pin-value``), for messages."""
    return uri.partition("?")[0]


def _attributes(part: str, sep: str, known: set[str], where: str) -> dict[str, bytes]:
    attrs: dict[str, bytes] = {}
    if not part:
        return attrs
    for item in part.split(sep):
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = unquote(name).strip()
        if not eq or not name:
            raise UsageError(f"pkcs11: URI {where} attribute {item.split('=')[0]!r} has no value")
        if name not in known:
            raise UsageError(
                f"pkcs11: URI {where} attribute {name!r} is not supported",
                hint="omsign honours " + ", ".join(sorted(known - _IGNORED_PATH_ATTRS)),
            )
        if name in attrs:
            raise UsageError(f"pkcs11: URI attribute {name!r} is given twice")
        attrs[name] = unquote_to_bytes(value)  # RFC 7512: '+' is a plus sign, not a space
    for ignored in _IGNORED_PATH_ATTRS:
        attrs.pop(ignored, None)
    return attrs


def _read_pin_source(source: str) -> str:
    """``pin-source=file:/path`` (RFC 7512 suggests ``file:``) or a plain absolute path."""
    if source.startswith("|"):
        raise UsageError("pkcs11: pin-source programs (|command) are not supported", hint="use file:/path")
    path = source
    if source.startswith("file:"):
        path = source[len("file:") :]
        if path.startswith("//"):
            host, _, rest = path[2:].partition("/")
            if host not in ("", "localhost"):
                raise UsageError(f"pkcs11: pin-source {source!r} names a remote host")
            path = "/" + rest
    try:
        data = Path(path).read_bytes()[:4096]
    except OSError as exc:
        raise InputError(f"cannot read PKCS#11 pin-source {path}: {exc.strerror or exc}") from exc
    text = data.decode("utf-8", "replace")
    return text.removesuffix("\n").removesuffix("\r")
