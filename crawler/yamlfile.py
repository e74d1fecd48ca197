"""Read YAML keeping the line of every key and item, so errors can name ``file:line``.

Two limits keep a hostile or broken file from exhausting memory or recursion, both checked
while the file is composed (before any alias is expanded): mappings and lists nest at most
:data:`MAX_DEPTH` levels deep (aliases included), and aliases expand to at most
:data:`ALIAS_BUDGET` nodes, or :data:`ALIAS_FACTOR` times the nodes written in the file when
that is more (a "billion laughs" file is refused at once; ``<<: *defaults`` in every source of
a long file is not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_DEPTH = 100
ALIAS_BUDGET = 10_000
ALIAS_FACTOR = 10


@dataclass
class YamlProblem(Exception):
    """A problem found while reading the file itself (syntax, encoding, duplicate keys).

    ``line`` is 1-based (0: no line, e.g. the file cannot be opened); ``path`` is where in the
    data the problem is (``("sources", 0)``), ``label`` overrides the label derived from it.
    """

    line: int
    message: str
    path: Path_ = ()
    label: str | None = None


@dataclass
class YamlDocument:
    """Plain Python data plus the line where each path (``("sources", 0, "url")``) starts."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    value_lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)
    broken: set[Path_] = field(default_factory=set)  # values that could not be read
    line_count: int = 0
    comments_only: bool = False

    def line_of(self, path: Path_) -> int:
        """Line of ``path`` (its key), or of its nearest ancestor that exists in the file."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def value_line_of(self, path: Path_) -> int:
        """Line of the scalar value at ``path`` (a value may sit below its key)."""
        path = tuple(path)
        if path in self.value_lines:
            return self.value_lines[path]
        return self.line_of(path)

    def is_broken(self, path: Path_) -> bool:
        """Whether the value at ``path`` (or around it) could not be read (already reported)."""
        path = tuple(path)
        return any(path[:n] in self.broken for n in range(len(path) + 1))


def read_yaml(path: Path) -> YamlDocument:
    """Parse one YAML document; raise :class:`YamlProblem` when it cannot be read at all."""
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise YamlProblem(0, "cannot read the file: it is a directory") from None
    except OSError as exc:
        raise YamlProblem(0, f"cannot read the file: {exc.strerror or exc}") from None
    return parse_yaml(raw)


def parse_yaml(raw: bytes) -> YamlDocument:
    """Parse YAML bytes (UTF-8) into a :class:`YamlDocument`."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlProblem(
            line,
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
            + _guess_encoding(raw),
            label="file",
        ) from None
    line_count = len(text.splitlines())
    node = _compose_fast(text)
    loader = None
    try:
        if node is _SLOW:  # the file has a mistake: the pure-Python parser words it best
            loader = _BoundedLoader(text)
            node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        line, message = _syntax_problem(exc)
        line = max(1, min(line, line_count))
        raise YamlProblem(line, message, label="YAML syntax") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        raise YamlProblem(
            line, f"a control character ({char}) that YAML does not allow", label="YAML syntax"
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(1, str(exc), label="YAML syntax") from None
    finally:
        if loader is not None:
            loader.dispose()
    doc = YamlDocument(data=None, line_count=line_count)
    if node is None:
        doc.comments_only = any(line.strip() for line in text.splitlines())
        return doc
    doc.data = _Builder(doc).build(node, ())
    return doc


def _guess_encoding(raw: bytes) -> str:
    high = [b for b in raw if b >= 0x80]
    if high and sum(b >= 0xC0 for b in high) * 2 >= len(high):
        return " (it looks like Windows-1251)"
    return ""


# PyYAML's wording → what an operator can act on. (problem pattern, context pattern, message,
# whether the context mark (where the construct began) is the better line).
_SYNTAX: list[tuple[str, str, str, bool]] = [
    (r"\\t|tab", "", "a tab character: indent with spaces, never tabs", False),
    (
        r"expected <block end>",
        "",
        "bad indentation: this line does not line up with the lines above it",
        False,
    ),
    (
        r"did not find expected key",
        "",
        "bad indentation: this line does not line up with the keys above it",
        False,
    ),
    (
        r"did not find expected '-' indicator",
        "",
        "bad indentation: expected a list item ('- ...') at this level",
        False,
    ),
    (
        r"mapping values are not allowed here",
        "",
        "unexpected ':': check this line's indentation, or quote a value that contains ': '",
        False,
    ),
    (
        r"could not find expected ':'",
        "",
        "expected 'key: value' here (a missing ':', or a space missing after it)",
        True,
    ),
    (r"end of stream", "quoted scalar", "a quoted value is never closed", True),
    (r"end of stream|<stream end>", "flow", "a '[' or '{' is never closed", True),
    (r"expected ',' or '[\]}]'", "", "expected ',' or a closing bracket here", False),
    (r"found undefined alias", "", "", False),
    (
        r"expected a single document",
        "",
        "more than one YAML document (a '---' line): keep one document per file",
        False,
    ),
    (r"cannot start any token", "", "", False),
]


def _syntax_problem(exc: yaml.MarkedYAMLError) -> tuple[int, str]:
    problem, context = exc.problem or "", exc.context or ""
    mark = exc.problem_mark or exc.context_mark
    for pattern, context_pattern, message, use_context in _SYNTAX:
        if not re.search(pattern, f"{problem} {context}") or not re.search(
            context_pattern, context
        ):
            continue
        if use_context and exc.context_mark is not None:
            mark = exc.context_mark
        if not message:
            if "undefined alias" in problem:
                name = _token_at(exc.problem_mark)
                message = f"{name or 'an alias'} names an anchor that is not defined above it"
            else:
                char = re.search(r"character '(.+?)'", problem)
                what = f"'{char.group(1)}'" if char else "this character"
                message = f"a value cannot start with {what}: put the value in quotes"
        return (mark.line + 1 if mark else 1), message
    what = problem or context or "cannot parse"
    if problem and context:
        what = f"{problem} ({context})"
    return (mark.line + 1 if mark else 1), what


def _token_at(mark: Any) -> str:
    if mark is None or not getattr(mark, "buffer", None):
        return ""
    match = re.match(r"\*[^\s,\]\}]+", mark.buffer[mark.pointer :])
    return match.group(0) if match else ""


class _Bounds(yaml.composer.Composer):
    """A composer counting, as it goes, how deep collections nest and how many nodes the
    aliases stand for (what building the data would expand); raises :class:`YamlProblem`."""

    def start_counting(self) -> None:
        self.depth = 0  # collections open around the node being composed
        self.written = 0  # nodes written in the file so far
        self.expanded = 0  # nodes the aliases so far stand for
        self.shape: dict[int, tuple[int, int]] = {}  # id(node) → (nodes, levels) it holds

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            nodes, levels = self.shape.get(id(node), (1, 0))  # unknown: an alias to itself
            if self.depth + levels > MAX_DEPTH:
                raise YamlProblem(line, _too_deep(), label="YAML")
            self.expanded += nodes
            budget = max(ALIAS_BUDGET, ALIAS_FACTOR * self.written)
            if self.expanded > budget:
                raise YamlProblem(
                    line,
                    f"too many alias expansions: the aliases up to here stand for "
                    f"{self.expanded:,} nodes; at most {ALIAS_BUDGET:,} (or {ALIAS_FACTOR} "
                    "times the nodes written in the file) are allowed",
                    label="YAML",
                )
            return node
        collection = isinstance(event, yaml.CollectionStartEvent)
        if collection:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise YamlProblem(line, _too_deep(), label="YAML")
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= collection
        self.written += 1
        nodes, levels = 1, 0
        if collection:
            children = node.value
            if isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            for child in children:
                child_nodes, child_levels = self.shape.get(id(child), (1, 0))
                nodes += child_nodes
                levels = max(levels, child_levels)
            levels += 1
        self.shape[id(node)] = (nodes, levels)
        return node


_SLOW = object()


try:
    from yaml.cyaml import CParser as _CParser  # libyaml, when PyYAML was built with it
except ImportError:  # pragma: no cover - PyYAML without libyaml
    _CParser = object


class _CEvents(_Bounds, _CParser, yaml.resolver.Resolver):  # type: ignore[misc]
    """libyaml's scanner and parser (C, several times faster on a 10,000-source file) under
    the same bounded composer."""

    def __init__(self, text: str) -> None:
        _CParser.__init__(self, text)
        yaml.composer.Composer.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.start_counting()


def _compose_fast(text: str) -> Any:
    """The node tree through libyaml, or ``_SLOW`` when libyaml is missing or the file has a
    mistake (the pure-Python parser then reports it with its own words and line)."""
    if _CParser is object:
        return _SLOW
    loader = _CEvents(text)
    try:
        return loader.get_single_node()
    except (yaml.YAMLError, YamlProblem):
        return _SLOW
    finally:
        loader.dispose()


class _BoundedLoader(_Bounds, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader under the bounded composer (exact error wording)."""

    def __init__(self, text: str) -> None:
        yaml.SafeLoader.__init__(self, text)
        self.start_counting()


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels (mappings and lists inside each other)"


_BROKEN = object()


class _Builder:
    """Builds plain data from the node tree, recording lines and problems as it goes."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.loader = yaml.SafeLoader("")
        self.active: set[int] = set()  # nodes being built: an alias to one of them is a loop
        self.seen: set[tuple[int, str]] = set()

    def problem(self, line: int, message: str, path: Path_) -> None:
        if (line, message) not in self.seen:  # a merged anchor is read once per use
            self.seen.add((line, message))
            self.doc.problems.append(YamlProblem(line, message, path))

    def build(self, node: yaml.Node, path: Path_) -> Any:
        line = node.start_mark.line + 1
        self.doc.lines.setdefault(path, line)
        if id(node) in self.active:
            self.problem(line, "an alias refers to the mapping or list that contains it", path)
            self.doc.broken.add(path)
            return None
        if isinstance(node, yaml.MappingNode):
            self.active.add(id(node))
            try:
                result: dict[Any, Any] = {}
                for key, (key_node, value_node) in self.entries(node, path).items():
                    self.doc.lines[(*path, key)] = key_node.start_mark.line + 1
                    result[key] = self.build(value_node, (*path, key))
                return result
            finally:
                self.active.discard(id(node))
        if isinstance(node, yaml.SequenceNode):
            self.active.add(id(node))
            try:
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self.active.discard(id(node))
        self.doc.value_lines.setdefault(path, line)
        value = self.construct(node, path)
        return None if value is _BROKEN else value

    def construct(self, node: yaml.Node, path: Path_, *, key: bool = False) -> Any:
        """The node's value; on failure the problem is recorded and ``_BROKEN`` returned."""
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or node.start_mark
            what = exc.problem or "cannot read this value"
            if "could not determine a constructor" in what:
                what = f"unknown YAML tag {node.tag!r}: remove it or quote the value"
            self.problem(mark.line + 1, what, path)
            if not key:
                self.doc.broken.add(path)
            return _BROKEN

    def entries(self, node: yaml.MappingNode, path: Path_) -> dict[Any, tuple[Any, Any]]:
        """The mapping's keys → (key node, value node); ``<<`` merges resolved as YAML says:
        keys written in the mapping win over merged ones, earlier merged mappings win over
        later ones."""
        entries: dict[Any, tuple[Any, Any]] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merges.append(value_node)
                continue
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(line, "a key must be a plain word, not a list or a mapping", path)
                continue
            key = self.construct(key_node, path, key=True)
            if key is _BROKEN:
                continue
            if key in entries:
                first = entries[key][0].start_mark.line + 1
                self.problem(line, f"duplicate key '{key}' (first at line {first})", (*path, key))
                continue
            entries[key] = (key_node, value_node)
        for merge in merges:
            parts = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
            for part in parts:
                line = part.start_mark.line + 1
                if not isinstance(part, yaml.MappingNode):
                    self.problem(
                        line,
                        "'<<' merges a mapping: write '<<: *name' where '&name' marks a mapping",
                        path,
                    )
                    continue
                if id(part) in self.active:
                    self.problem(line, "'<<' merges the mapping that contains it", path)
                    continue
                self.active.add(id(part))
                try:
                    for key, pair in self.entries(part, path).items():
                        entries.setdefault(key, pair)
                finally:
                    self.active.discard(id(part))
        return entries
