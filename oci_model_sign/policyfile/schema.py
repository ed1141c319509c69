"""The JSON Schema of policy files (``docs/policy.schema.json`` is this, written out).

The schema states the shape; the loader adds what a schema cannot say (regexps that compile
under RE2, timestamps with a zone, key and certificate files that exist and parse, a
threshold no larger than the authorities it counts, scope keys that parse).
"""

from __future__ import annotations

import json
from typing import Any

API_VERSION = "omsign/v1"

_STR: dict[str, Any] = {"type": "string", "minLength": 1}
_BOOL: dict[str, Any] = {"type": "boolean"}
_FINGERPRINT: dict[str, Any] = {
    "type": "string",
    "pattern": "^sha256:[0-9a-fA-F]{64}$",
    "description": "sha256 of the key's DER SubjectPublicKeyInfo, as `sha256:<hex>`.",
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "omsign trust policy",
    "description": "Which signers omsign trusts for which models. See docs/policy.md.",
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion"],
    "properties": {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": "TrustPolicy"},
        "description": {"type": "string"},
        "revoked": {
            "description": "Revocations applied in every scope, the default included.",
            "$ref": "#/$defs/revocations",
        },
        "default": {
            "description": "Requirements for references no scope matches. Without it they are not verified.",
            "$ref": "#/$defs/scope",
        },
        "scopes": {
            "description": "Scope pattern -> requirements. The most specific matching scope applies.",
            "type": "object",
            "propertyNames": {"minLength": 1},
            "additionalProperties": {"$ref": "#/$defs/scope"},
        },
    },
    "$defs": {
        "scope": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "description": {"type": "string"},
                "mode": {
                    "enum": ["enforce", "warn"],
                    "description": "enforce refuses a model that fails; warn reports and lets it through.",
                },
                "reject": {**_BOOL, "description": "Refuse every model in this scope, signed or not."},
                "insecureAcceptAnything": {
                    **_BOOL,
                    "description": "Accept models in this scope without verifying them.",
                },
                "threshold": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "How many distinct authorities must have signed (default 1).",
                },
                "authorities": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/authority"}},
                "attestations": {"type": "array", "items": {"$ref": "#/$defs/attestation"}},
                "annotations": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "key: value pairs the signed payload must carry (cosign -a).",
                },
                "revoked": {"$ref": "#/$defs/revocations"},
            },
        },
        "authority": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": {**_STR, "description": "Names the authority in reasons and reports."},
                "key": {"$ref": "#/$defs/keyRef"},
                "keyless": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "identity": _STR,
                        "identityRegexp": _STR,
                        "issuer": _STR,
                        "issuerRegexp": _STR,
                        "trustConfig": {**_STR, "description": "Trusted root or ClientTrustConfig JSON."},
                        "staging": _BOOL,
                        "offline": _BOOL,
                    },
                    "allOf": [
                        {"oneOf": [{"required": ["identity"]}, {"required": ["identityRegexp"]}]},
                        {"oneOf": [{"required": ["issuer"]}, {"required": ["issuerRegexp"]}]},
                    ],
                },
                "ca": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["roots"],
                    "properties": {
                        "roots": {**_STR, "description": "PEM file of root certificates."},
                        "intermediates": {**_STR, "description": "PEM file of intermediate certificates."},
                        "identity": _STR,
                        "identityRegexp": _STR,
                        "issuer": _STR,
                        "issuerRegexp": _STR,
                    },
                },
                "ignoreTlog": {**_BOOL, "description": "Accept signatures without a transparency-log entry."},
                "trustConfig": {**_STR, "description": "Trusted root JSON for the transparency log keys."},
            },
            "oneOf": [{"required": ["key"]}, {"required": ["keyless"]}, {"required": ["ca"]}],
        },
        "keyRef": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "path": {**_STR, "description": "PEM or DER public key, relative to the policy file."},
                "data": {**_STR, "description": "The PEM public key itself."},
            },
            "oneOf": [{"required": ["path"]}, {"required": ["data"]}],
        },
        "attestation": {
            "type": "object",
            "additionalProperties": False,
            "required": ["predicateType"],
            "properties": {
                "name": _STR,
                "predicateType": {**_STR, "description": "The in-toto predicateType URI required."},
                "check": {**_STR, "description": "A CEL expression over the statement that must hold."},
                "schema": {
                    "description": "A JSON Schema the predicate must satisfy: a file path or inline.",
                    "type": ["string", "object"],
                },
            },
        },
        "revocations": {"type": "array", "items": {"$ref": "#/$defs/revocation"}},
        "revocation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "fingerprint": _FINGERPRINT,
                "key": {"$ref": "#/$defs/keyRef"},
                "identity": _STR,
                "identityRegexp": _STR,
                "issuer": _STR,
                "issuerRegexp": _STR,
                "after": {
                    "type": "string",
                    "description": "RFC 3339 time: only signatures made at or after it are refused.",
                },
                "reason": {"type": "string"},
            },
            "oneOf": [
                {"required": ["fingerprint"]},
                {"required": ["key"]},
                {"required": ["identity"]},
                {"required": ["identityRegexp"]},
            ],
        },
    },
}


def schema_json() -> str:
    """The schema as ``docs/policy.schema.json`` holds it."""
    return json.dumps(SCHEMA, indent=2) + "\n"
