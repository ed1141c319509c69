"""Predicate policies: a JSON Schema and CEL expressions that an attestation's content must meet.

A verified signature proves who attested; these checks decide whether what they attested is
acceptable ("accuracy at least 0.9", "licence is apache-2.0", "built by our pipeline").
They run on a statement that has already been verified and parsed, and never on raw bytes.

Two kinds of failure are kept apart, because they need different answers: a policy that
cannot be used (unreadable schema, an expression that does not parse or names an unknown
variable) is the operator's mistake and raises at construction, before any network traffic;
an attestation that does not satisfy a usable policy yields a one-line *reason*, which the
verifier records against that candidate.

CEL variables: ``predicate``, ``subject``, ``predicateType`` and ``statement`` (the whole
statement), evaluated by the ``common-expression-language`` package (Rust's ``cel``). The
JSON Schema applies to the predicate only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, LimitError, UsageError, VerificationError

CEL_VARIABLES = ("predicate", "subject", "predicateType", "statement")
MAX_SCHEMA_BYTES = 4 * 1024 * 1024

# variables bound by CEL's comprehension macros: list.exists(m, …), map.all(k, v, …), …
_MACRO_VAR_RE = re.compile(
    r"\.\s*(?:all|exists|exists_one|existsOne|map|filter|transformList|transformMap)\s*\("
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*,(?:\s*([A-Za-z_][A-Za-z0-9_]*)\s*,)?"
)


def _cel() -> Any:
    """The ``cel`` extension module, without the package's eager import of its own CLI.

    ``common-expression-language``'s ``cel/__init__.py`` imports its interactive shell
    (prompt_toolkit, pygments), which costs about half a second per process: more than a whole
    ``verify`` is allowed to take. When ``cel`` is not imported yet, a plain package module
    stands in for it (same ``__path__``, the extension's names copied in), so ``cel.cel`` loads
    alone and a later ``import cel.cli`` or ``cel.stdlib`` still works.
    """
    import importlib
    import importlib.util
    import sys
    import types as pytypes

    loaded = sys.modules.get("cel")
    if loaded is not None and hasattr(loaded, "compile"):
        return loaded
    spec = importlib.util.find_spec("cel")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            "CEL predicate checks need the common-expression-language package",
            hint="pip install common-expression-language",
        )
    package = pytypes.ModuleType("cel")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    sys.modules["cel"] = package
    try:
        ext = importlib.import_module("cel.cel")
    except ImportError:
        del sys.modules["cel"]
        return importlib.import_module("cel")
    package.__dict__.update({k: v for k, v in vars(ext).items() if not k.startswith("__")})
    return package


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _cel_message(exc: BaseException) -> str:
    text = str(exc)
    # the library's parse errors repeat the expression and draw a caret under it: keep the
    # first line, which says where and what
    first = text.split("\n", 1)[0]
    return _one_line(first.split(": ERROR: ", 1)[-1] if ": ERROR: " in first else first)


def statement_variables(statement: Mapping[str, Any]) -> dict[str, Any]:
    """The CEL activation for a parsed statement."""
    return {
        "predicate": statement.get("predicate"),
        "subject": statement.get("subject"),
        "predicateType": statement.get("predicateType"),
        "statement": dict(statement),
    }


@dataclass(frozen=True)
class PredicateCheck:
    """One ``--predicate-check EXPR``: a compiled CEL expression that must evaluate to true."""

    expression: str
    _program: Any = field(repr=False, compare=False)

    @classmethod
    def compile(cls, expression: str, flag: str = "--predicate-check") -> PredicateCheck:
        """Compile ``expression``; ``flag`` names the option in error messages."""
        cel = _cel()
        if not expression.strip():
            raise UsageError(f"{flag} needs a CEL expression, got an empty one")
        try:
            program = cel.compile(expression)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise UsageError(
                f"{flag} {expression!r} is not a valid CEL expression: {_cel_message(exc)}"
            ) from exc
        bound = {name for pair in _MACRO_VAR_RE.findall(expression) for name in pair if name}
        try:
            used = set(program.references()["variables"])
        except (AttributeError, KeyError, TypeError):  # older bindings: skip the early check
            used = set()
        unknown = sorted(used - bound - set(CEL_VARIABLES))
        if unknown:
            raise UsageError(
                f"{flag} {expression!r} uses unknown variable {unknown[0]!r}",
                hint=f"the variables are {', '.join(CEL_VARIABLES)}",
            )
        return cls(expression, program)

    def reason(self, statement: Mapping[str, Any]) -> str | None:
        """None if the expression is true for ``statement``; else why not, on one line."""
        try:
            result = self._program.execute(statement_variables(statement))
        except KeyError as exc:
            return f"predicate check {self.expression!r} failed: no such key {_one_line(str(exc))}"
        except (RuntimeError, TypeError, ValueError, IndexError, OverflowError) as exc:
            return f"predicate check {self.expression!r} failed: {_cel_message(exc)}"
        if result is True:
            return None
        if result is False:
            return f"predicate check {self.expression!r} is false"
        return f"predicate check {self.expression!r} gave {_one_line(repr(result), 80)}, not true or false"


@dataclass(frozen=True)
class PredicateSchema:
    """One ``--predicate-schema FILE``: a JSON Schema the predicate must validate against."""

    name: str
    schema: Mapping[str, Any]
    _validator: Any = field(repr=False, compare=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PredicateSchema:
        p = Path(path)
        try:
            if not p.is_file():
                raise InputError(f"predicate schema {str(p)!r} is not a file")
            if p.stat().st_size > MAX_SCHEMA_BYTES:
                raise LimitError(f"predicate schema {p.name} is over the limit of {MAX_SCHEMA_BYTES} bytes")
            raw = p.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read predicate schema {str(p)!r}: {exc.strerror or exc}") from exc
        try:
            schema = json.loads(raw)
        except RecursionError as exc:
            raise LimitError(f"predicate schema {p.name} is nested too deeply") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"predicate schema {p.name} is not valid JSON: {exc}") from exc
        return cls.from_schema(schema, p.name)

    @classmethod
    def from_schema(cls, schema: object, name: str = "schema") -> PredicateSchema:
        from jsonschema import exceptions, validators

        if not isinstance(schema, (dict, bool)):
            raise InputError(f"predicate schema {name} must be a JSON object")
        vcls = validators.validator_for(schema)
        try:
            vcls.check_schema(schema)
        except exceptions.SchemaError as exc:
            raise InputError(f"predicate schema {name} is not a valid JSON Schema: {_one_line(exc.message)}") from exc
        validator = vcls(schema, format_checker=vcls.FORMAT_CHECKER)
        return cls(name, schema if isinstance(schema, dict) else {}, validator)

    def reason(self, statement: Mapping[str, Any]) -> str | None:
        """None if the statement's predicate validates; else the most relevant error, one line."""
        from jsonschema import exceptions

        try:
            error = exceptions.best_match(self._validator.iter_errors(statement.get("predicate")))
        except Exception as exc:  # an unresolvable $ref and the like: the schema, not the data
            return f"predicate schema {self.name} could not be applied: {_one_line(str(exc))}"
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path)
        at = f" at /{where}" if where else ""
        return f"predicate does not match schema {self.name}{at}: {_one_line(error.message)}"


@dataclass(frozen=True)
class PredicatePolicy:
    """Every schema and every check must pass (flags are repeatable and combine with AND)."""

    schemas: Sequence[PredicateSchema] = ()
    checks: Sequence[PredicateCheck] = ()

    @classmethod
    def from_flags(
        cls, schema_files: Sequence[str | os.PathLike[str]] = (), expressions: Sequence[str] = ()
    ) -> PredicatePolicy:
        """Build from ``--predicate-schema`` and ``--predicate-check`` values; fails before any I/O on the network."""
        return cls(
            schemas=tuple(PredicateSchema.load(f) for f in schema_files),
            checks=tuple(PredicateCheck.compile(e) for e in expressions),
        )

    def __bool__(self) -> bool:
        return bool(self.schemas or self.checks)

    def reason(self, statement: Mapping[str, Any]) -> str | None:
        """None if the statement passes; else the first failure's one-line reason."""
        for s in self.schemas:
            r = s.reason(statement)
            if r:
                return r
        for c in self.checks:
            r = c.reason(statement)
            if r:
                return r
        return None

    def require(self, statement: Mapping[str, Any]) -> None:
        """Raise VerificationError with the reason if the statement fails the policy."""
        r = self.reason(statement)
        if r:
            raise VerificationError(r)


_URL_HEAD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/:\s]*(?::[0-9]+)?[^:\s]*")


def parse_requirement(spec: str) -> tuple[str, PredicateCheck | None]:
    """``--require-attestation TYPE[:EXPR]`` as ``(predicate type URI, check or None)``.

    TYPE is an alias (``eval:predicate.metrics…``) or a ``scheme://`` URI, whose own colons
    (scheme, port) are not separators: the expression starts after the first colon past the
    URI's path. Any other URI (``urn:…``) cannot carry an expression this way.
    """
    from .types import ALIASES, resolve_predicate_type

    head, sep, rest = spec.partition(":")
    if head in ALIASES:
        uri = ALIASES[head]
        expr = rest if sep else None
    else:
        m = _URL_HEAD_RE.match(spec)
        if m:
            uri = resolve_predicate_type(m.group(0))
            tail = spec[m.end() :]
            if tail and not tail.startswith(":"):
                raise UsageError(f"--require-attestation {spec!r}: expected TYPE[:EXPR]")
            expr = tail[1:] if tail else None
        else:
            uri, expr = resolve_predicate_type(spec), None
    if expr is not None and not expr.strip():
        raise UsageError(f"--require-attestation {spec!r}: empty expression after ':'")
    return uri, (PredicateCheck.compile(expr, "--require-attestation") if expr is not None else None)
