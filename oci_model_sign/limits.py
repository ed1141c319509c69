"""Bounds on what omsign accepts from a registry or a file.

A registry, a layout or a signature file may be hostile. Every size or count that omsign
reads from one is bounded here, so a 100 MB manifest or ten thousand referrers give a clear
``LimitError`` instead of an exhausted machine. Each bound can be raised with an environment
variable ``OMSIGN_MAX_<NAME>`` (documented in the README).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from .errors import UsageError


@dataclass(frozen=True)
class Limits:
    manifest_bytes: int = 4 * 1024 * 1024  # distribution-spec: registries SHOULD accept 4 MiB
    index_bytes: int = 4 * 1024 * 1024
    config_bytes: int = 16 * 1024 * 1024
    bundle_bytes: int = 16 * 1024 * 1024  # a Sigstore bundle is a few KB
    layers: int = 5000
    referrers: int = 1000
    json_depth: int = 64
    signature_payload_bytes: int = 128 * 1024 * 1024  # cosign's COSIGN_MAX_ATTACHMENT_SIZE
    decompressed_ratio: int = 1000  # zstd layers: uncompressed must be recorded and bounded

    @classmethod
    def from_env(cls) -> Limits:
        """Defaults, raised or lowered by ``OMSIGN_MAX_<FIELD>`` variables."""
        values: dict[str, int] = {}
        for f in fields(cls):
            raw = os.environ.get(f"OMSIGN_MAX_{f.name.upper()}")
            if raw is None:
                continue
            try:
                values[f.name] = int(raw)
            except ValueError as exc:
                raise UsageError(f"OMSIGN_MAX_{f.name.upper()} must be an integer, not {raw!r}") from exc
        return cls(**values)


def default_limits() -> Limits:
    return Limits.from_env()


def check_json_depth(value: object, limit: int, what: str) -> None:
    """Refuse deeply nested JSON before anything walks it recursively."""
    from .errors import LimitError

    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise LimitError(f"{what} is nested deeper than {limit} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def load_json(data: bytes, *, max_bytes: int, depth: int, what: str) -> object:
    """Parse JSON from an untrusted source within size and depth bounds.

    Size is checked before parsing; depth after (the stdlib parser is iterative enough to
    return, or raises RecursionError, which is mapped to the same clear error).
    """
    import json

    from .errors import IntegrityError, LimitError

    if len(data) > max_bytes:
        raise LimitError(f"{what} is {len(data)} bytes, over the limit of {max_bytes}")
    try:
        value = json.loads(data)
    except RecursionError as exc:
        raise LimitError(f"{what} is nested deeper than {depth} levels") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{what} is not valid JSON: {exc}") from exc
    check_json_depth(value, depth, what)
    return value
