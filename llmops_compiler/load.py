"""YAML → documents that remember the file, line and column of every key and value.

libyaml's composer builds the node tree (fast, with marks); we construct plain values from it ourselves so
that unsafe YAML never expands: aliases, merge keys and tags are refused, duplicate keys are reported, and
file size, node count and depth are bounded. Scalars follow YAML 1.2: only ``true``/``false`` are booleans
(``yes``, ``no``, ``on``, ``off`` stay strings), timestamps stay strings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .diagnostics import Diagnostic, Position

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES_PER_FILE = 200_000
MAX_DEPTH = 64
MAX_DOCUMENTS_PER_FILE = 1000
SPEC_SUFFIXES = (".yaml", ".yml")

YamlPath = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INT_CONSTRUCTOR = yaml.constructor.SafeConstructor()


@dataclass
class SourceDocument:
    """One YAML document of a spec file, as plain values plus the position of every path in it."""

    file: str
    index: int
    data: Any
    start: Position
    values: dict[YamlPath, Position] = field(default_factory=dict)
    keys: dict[YamlPath, Position] = field(default_factory=dict)

    def position(self, path: YamlPath, at_key: bool = False) -> Position:
        """The closest known position of ``path``: the key itself if asked and known, else the value,
        else the nearest ancestor."""
        probe = tuple(path)
        if at_key and probe in self.keys:
            return self.keys[probe]
        while probe:
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), self.start)


class _Builder:
    """Turns one composed node tree into plain values, recording positions and unsafe constructs."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Diagnostic] = []
        self.values: dict[YamlPath, Position] = {}
        self.keys: dict[YamlPath, Position] = {}
        self.seen: set[int] = set()
        self.count = 0

    def position(self, node: yaml.Node) -> Position:
        return Position(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def problem(self, node: yaml.Node, code: str, message: str, hint: str = "") -> None:
        self.problems.append(Diagnostic(self.position(node), code, message, hint))

    def build(self, node: yaml.Node, path: YamlPath, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES_PER_FILE:
            raise _TooLarge(self.position(node), f"more than {MAX_NODES_PER_FILE} YAML nodes")
        if depth > MAX_DEPTH:
            raise _TooLarge(self.position(node), f"nesting deeper than {MAX_DEPTH} levels")
        if id(node) in self.seen:
            self.problem(
                node,
                "LLM002",
                "YAML anchors and aliases are not allowed (this value is an alias of the anchor here)",
                "write the value out in full; aliases can expand into huge documents",
            )
            return None
        self.seen.add(id(node))
        self.values[path] = self.position(node)
        if isinstance(node, yaml.MappingNode):
            return self.build_mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _TAG + "seq":
                self.problem(node, "LLM003", f"YAML tag `{node.tag}` is not allowed", "remove the tag")
            return [self.build(item, (*path, index), depth + 1) for index, item in enumerate(node.value)]
        return self.build_scalar(node)

    def build_mapping(self, node: yaml.MappingNode, path: YamlPath, depth: int) -> dict[str, Any]:
        if node.tag != _TAG + "map":
            self.problem(node, "LLM003", f"YAML tag `{node.tag}` is not allowed", "remove the tag")
        result: dict[str, Any] = {}
        first_seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self.problem(
                    key_node,
                    "LLM004",
                    "YAML merge keys (`<<`) are not allowed",
                    "write the keys out, or use the spec's `environments` overrides",
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, "LLM005", "mapping keys must be plain strings")
                continue
            key = str(key_node.value)
            if key in first_seen:
                first = first_seen[key].start_mark.line + 1
                self.problem(
                    key_node,
                    "LLM006",
                    f"duplicate key `{key}` (first defined on line {first})",
                    "remove one of them; YAML parsers silently keep only the last",
                )
                continue
            first_seen[key] = key_node
            self.keys[(*path, key)] = self.position(key_node)
            result[key] = self.build(value_node, (*path, key), depth + 1)
        return result

    def build_scalar(self, node: yaml.ScalarNode) -> Any:
        tag = node.tag
        value = node.value
        if tag == _TAG + "str" or tag == _TAG + "timestamp":
            return value
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            lowered = value.lower()
            return lowered == "true" if lowered in ("true", "false") else value
        if tag == _TAG + "int":
            return _INT_CONSTRUCTOR.construct_yaml_int(node)
        if tag == _TAG + "float":
            return _INT_CONSTRUCTOR.construct_yaml_float(node)
        self.problem(node, "LLM003", f"YAML tag `{tag}` is not allowed", "remove the tag; specs are plain data")
        return None


class _TooLarge(Exception):
    def __init__(self, position: Position, what: str) -> None:
        self.position = position
        self.what = what


def parse_text(text: str, file: str) -> tuple[list[SourceDocument], list[Diagnostic]]:
    """Parse every document of one file. Never raises on bad input: problems come back as diagnostics."""
    documents: list[SourceDocument] = []
    problems: list[Diagnostic] = []
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        position = Position(file, mark.line + 1, mark.column + 1) if mark else Position(file)
        problem = error.problem or str(error)
        context = f" ({error.context})" if error.context else ""
        return [], [Diagnostic(position, "LLM001", f"invalid YAML: {problem}{context}", "fix the YAML syntax")]
    except (yaml.YAMLError, RecursionError, ValueError) as error:
        return [], [Diagnostic(Position(file), "LLM001", f"invalid YAML: {error}", "fix the YAML syntax")]
    if len(nodes) > MAX_DOCUMENTS_PER_FILE:
        message = f"more than {MAX_DOCUMENTS_PER_FILE} documents in one file"
        return [], [Diagnostic(Position(file), "LLM007", message, "split the file")]
    builder = _Builder(file)
    for index, node in enumerate(nodes):
        if node is None:
            continue
        builder.values, builder.keys = {}, {}
        try:
            data = builder.build(node, ())
        except _TooLarge as error:
            message = f"document is too large: {error.what}"
            return [], [Diagnostic(error.position, "LLM007", message, "split or simplify the spec")]
        documents.append(SourceDocument(file, index, data, builder.position(node), builder.values, builder.keys))
    problems.extend(builder.problems)
    return documents, problems


def spec_files(specs_dir: Path) -> list[Path]:
    """Every YAML file under ``specs_dir``, in a stable order that does not depend on the file system."""
    found: list[Path] = []
    for root, dirs, files in os.walk(specs_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root, name) for name in files if name.endswith(SPEC_SUFFIXES))
    return sorted(found, key=lambda path: path.relative_to(specs_dir).as_posix())


def read_spec_file(path: Path, display: str) -> tuple[list[SourceDocument], list[Diagnostic]]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            message = f"file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit for a spec file"
            return [], [Diagnostic(Position(display), "LLM007", message, "split it into smaller files")]
        raw = path.read_bytes()
    except OSError as error:
        return [], [Diagnostic(Position(display), "LLM008", f"cannot read file: {error.strerror}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        message = f"file is not UTF-8 (bad byte at offset {error.start})"
        return [], [Diagnostic(Position(display), "LLM008", message, "save it as UTF-8")]
    return parse_text(text, display)


def load_specs(specs_dir: Path) -> tuple[list[SourceDocument], list[Diagnostic]]:
    """Load every spec document under ``specs_dir``; file names are shown relative to its parent."""
    documents: list[SourceDocument] = []
    problems: list[Diagnostic] = []
    if not specs_dir.is_dir():
        message = f"specs folder `{specs_dir}` does not exist"
        return [], [Diagnostic(Position(str(specs_dir)), "LLM009", message, "pass the folder that holds your specs")]
    base = specs_dir.resolve().parent
    for path in spec_files(specs_dir):
        display = path.resolve().relative_to(base).as_posix()
        file_documents, file_problems = read_spec_file(path, display)
        documents.extend(file_documents)
        problems.extend(file_problems)
    return documents, problems


def iter_paths(value: Any, path: YamlPath = ()) -> Iterator[tuple[YamlPath, Any]]:
    """Every (path, value) pair below ``value``, parents first."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from iter_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_paths(item, (*path, index))
