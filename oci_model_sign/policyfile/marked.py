"""YAML/JSON documents loaded with the line of every value and key.

A malformed policy must be reported as ``file:line: field: problem``. PyYAML's composer
keeps a mark on every node; walking the node tree ourselves (instead of ``safe_load``) keeps
those marks, refuses duplicate keys (which ``safe_load`` silently resolves to the last one,
so a second ``scopes:`` entry could quietly replace the first), refuses merge keys and
recursive aliases, and bounds alias expansion. JSON is read by the same code: a JSON
document is a YAML document.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import UsageError

FieldPath = tuple[str | int, ...]

MAX_NODES = 100_000  # alias expansion ("billion laughs") stops here
MAX_DEPTH = 64

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def field_name(path: FieldPath) -> str:
    """``scopes["reg/x"].authorities[0].key``: a path a reader can find in the file."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT_RE.match(part):
            out += ("." if out else "") + part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(top level)"


@dataclass
class MarkedDocument:
    """Plain data (dicts, lists, scalars) plus the 1-based line of each path."""

    source: str
    data: Any
    lines: dict[FieldPath, int] = field(default_factory=dict)
    key_lines: dict[FieldPath, int] = field(default_factory=dict)

    def line(self, path: FieldPath, *, key: bool = True) -> int:
        """The line of ``path``'s key (of its value with ``key=False``), else of its nearest parent.

        The key's line is where a reader looks for a field: a block mapping's value starts
        on the line after its key.
        """
        if key and path in self.key_lines:
            return self.key_lines[path]
        probe = path
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), 1)

    def error(
        self,
        path: FieldPath,
        message: str,
        *,
        key: bool = True,
        hint: str | None = None,
        at: FieldPath | None = None,
    ) -> UsageError:
        """``file:line: field: message``; the line is that of ``at`` when given, else of ``path``."""
        where = f"{self.source}:{self.line(path if at is None else at, key=key)}"
        if path:
            return UsageError(f"{where}: {field_name(path)}: {message}", hint=hint)
        return UsageError(f"{where}: {message}", hint=hint)


class _Converter:
    def __init__(self, doc: MarkedDocument) -> None:
        self.doc = doc
        self.count = 0
        self.active: set[int] = set()
        self.scalars = yaml.constructor.SafeConstructor()

    def fail(self, node: yaml.Node, path: FieldPath, message: str) -> UsageError:
        line = node.start_mark.line + 1
        prefix = f"{self.doc.source}:{line}: "
        return UsageError(prefix + (f"{field_name(path)}: " if path else "") + message)

    def convert(self, node: yaml.Node, path: FieldPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, path, f"the document expands to more than {MAX_NODES} values (alias bomb?)")
        if len(path) > MAX_DEPTH:
            raise self.fail(node, path, f"nested deeper than {MAX_DEPTH} levels")
        self.doc.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _TIMESTAMP_TAG:
                return node.value  # timestamps stay text: the loader parses RFC 3339 itself
            try:
                return self.scalars.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                raise self.fail(node, path, f"bad value {node.value!r}: {getattr(exc, 'problem', exc)}") from None
        if id(node) in self.active:
            raise self.fail(node, path, "a recursive alias refers to itself")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                out: dict[str, Any] = {}
                first_line: dict[str, int] = {}
                for key_node, value_node in node.value:
                    if key_node.tag == _MERGE_TAG:
                        raise self.fail(key_node, path, "YAML merge keys (<<) are not supported in a policy")
                    if not isinstance(key_node, yaml.ScalarNode):
                        raise self.fail(key_node, path, "a mapping key must be a plain string")
                    key = str(key_node.value)
                    line = key_node.start_mark.line + 1
                    if key in out:
                        raise self.fail(
                            key_node, (*path, key), f"duplicate key (first given on line {first_line[key]})"
                        )
                    first_line[key] = line
                    self.doc.key_lines[(*path, key)] = line
                    out[key] = self.convert(value_node, (*path, key))
                return out
        finally:
            self.active.discard(id(node))
        raise self.fail(node, path, f"unsupported YAML node {type(node).__name__}")  # pragma: no cover


def load_marked(text: str, source: str) -> MarkedDocument:
    """Parse one YAML (or JSON) document; a syntax error is a ``UsageError`` naming the line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "syntax error"
        ctx = exc.context_mark
        if exc.problem and exc.context and ctx is not None and ctx.line + 1 != line:
            problem += f" ({exc.context} on line {ctx.line + 1})"
        raise UsageError(f"{source}:{line}: not valid YAML or JSON: {problem}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not valid YAML or JSON: {exc}") from None
    doc = MarkedDocument(source, None)
    if node is None:
        raise UsageError(f"{source}:1: the policy file is empty")
    doc.data = _Converter(doc).convert(node, ())
    return doc
