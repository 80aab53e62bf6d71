"""YAML → documents that remember the file, line and column of every key and value.

libyaml's composer builds the node tree (fast, with marks); we construct plain values from it ourselves so
that unsafe YAML never expands: aliases, merge keys and tags are refused, duplicate keys are reported, and
file size, node count and depth are bounded. Scalars follow the YAML 1.2 core schema: only
``true``/``false`` are booleans (``yes``, ``no``, ``on``, ``off`` stay strings), ``2e-4`` is a number while
``1_000`` and ``1:30`` are not, timestamps stay strings.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from .diagnostics import Diagnostic, Position

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES_PER_FILE = 200_000
MAX_DEPTH = 64
MAX_DOCUMENTS_PER_FILE = 1000
MAX_REPORTED_ALIASES = 20
SPEC_SUFFIXES = (".yaml", ".yml")

YamlPath = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
_YAML12_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_YAML12_FLOAT = re.compile(
    r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)


def _yaml12_number(text: str) -> int | float | None:
    """The number a plain scalar denotes under the YAML 1.2 core schema (``2e-4`` is a float there, while
    libyaml's YAML 1.1 rules read it as a string and ``1_000`` or ``1:30`` as integers), or None."""
    if _YAML12_INT.fullmatch(text):
        try:
            if text.startswith(("0o", "0x")):
                return int(text[2:], 8 if text[1] == "o" else 16)
            return int(text)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            return None
    if _YAML12_FLOAT.fullmatch(text):
        lowered = text.lower()
        if lowered.endswith("inf"):
            return float("-inf") if text.startswith("-") else float("inf")
        return float("nan") if lowered == ".nan" else float(text)
    return None


def _written_tag(tag: str) -> str:
    """A tag as people write it: ``!!python/object`` rather than ``tag:yaml.org,2002:python/object``."""
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


@dataclass
class SourceDocument:
    """One YAML document of a spec file, as plain values plus the position of every path in it."""

    file: str
    index: int
    data: Any
    start: Position
    values: dict[YamlPath, Position] = field(default_factory=dict)
    keys: dict[YamlPath, Position] = field(default_factory=dict)
    refused: set[YamlPath] = field(default_factory=set)
    """Paths whose value the loader refused (alias, tag, merge key, non-string key) and already reported:
    their content is missing or partial, so validation stays quiet about them."""
    blocks: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)
    """Literal block scalars (``|``): the file line and column where their first line of text is, so that a
    problem on line N of a prompt template points at its own line in the file."""

    def __getstate__(self) -> dict[str, Any]:
        """Positions in this file as (line, column) pairs when pickled (the compile cache): a document with its
        positions then loads several times faster than with one pickled object per position."""
        state = dict(self.__dict__)
        for name in ("values", "keys"):
            mapping: dict[YamlPath, Position] = state[name]
            if all(position.file == self.file for position in mapping.values()):
                state[name] = (tuple(mapping), tuple((item.line, item.column) for item in mapping.values()))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in ("values", "keys"):
            if isinstance(state[name], tuple):
                paths, places = state[name]
                state[name] = {path: Position(state["file"], line, column)
                               for path, (line, column) in zip(paths, places, strict=True)}
        self.__dict__.update(state)

    def position_in_text(self, path: YamlPath, text_line: int) -> Position:
        """The position of line ``text_line`` (1-based) of the string at ``path``."""
        if path in self.blocks:
            line, column = self.blocks[path]
            return Position(self.file, line + text_line - 1, column)
        return self.position(path)

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


_YAML12_BOOLEANS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
# The tags libyaml resolves plain YAML to; anything else was written by hand (`!!python/object`, `!Ref`).
# A plain `<<` or `=` value resolves to the YAML 1.1 `merge` and `value` tags; outside a key they are text.
_PLAIN_TAGS: dict[type[yaml.Node], frozenset[str]] = {
    yaml.MappingNode: frozenset({_TAG + "map"}),
    yaml.SequenceNode: frozenset({_TAG + "seq"}),
    yaml.ScalarNode: frozenset(
        _TAG + name for name in ("str", "null", "bool", "int", "float", "timestamp", "merge", "value")
    ),
}


class _Builder:
    """Turns one composed node tree into plain values, recording positions and unsafe constructs."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Diagnostic] = []
        self.values: dict[YamlPath, Position] = {}
        self.keys: dict[YamlPath, Position] = {}
        self.refused: set[YamlPath] = set()
        self.blocks: dict[YamlPath, tuple[int, int]] = {}
        self.lines: list[str] = []
        self.seen: set[int] = set()
        self.aliases = 0
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
            # The composer hands back the anchored node itself, so the alias's own position is taken from the
            # event stream afterwards (see _alias_problems).
            self.aliases += 1
            self.refused.add(path)
            return None
        self.seen.add(id(node))
        self.values[path] = self.position(node)
        if node.tag not in _PLAIN_TAGS[type(node)]:
            self.problem(node, "LLM003", f"YAML tag `{_written_tag(node.tag)}` is not allowed",
                         "remove the tag; specs are plain data")
            self.refused.add(path)
            return None
        if isinstance(node, yaml.MappingNode):
            return self.build_mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index), depth + 1) for index, item in enumerate(node.value)]
        scalar = cast(yaml.ScalarNode, node)
        if scalar.style == "|" and scalar.value:
            self.record_block(scalar, path)
        return self.build_scalar(scalar)

    def record_block(self, node: yaml.ScalarNode, path: YamlPath) -> None:
        """Where a literal block's text starts: the first non-blank line after its indicator, at its indent."""
        for index in range(node.start_mark.line + 1, min(node.end_mark.line + 1, len(self.lines))):
            text = self.lines[index]
            if text.strip():
                leading_blank_lines = len(node.value) - len(node.value.lstrip("\n"))
                self.blocks[path] = (index + 1 - leading_blank_lines, len(text) - len(text.lstrip(" ")) + 1)
                return

    def build_mapping(self, node: yaml.MappingNode, path: YamlPath, depth: int) -> dict[str, Any]:
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
                self.refused.add(path)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, "LLM005", "mapping keys must be plain strings",
                             "a value starting with `{` or `[` is a YAML mapping or list: "
                             "quote it if it is text such as a template (`\"{{ ... }}\"`)")
                self.refused.add(path)
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
        """YAML 1.2 core schema: `true`/`false` are booleans, numbers as YAML 1.2 writes them, else text."""
        tag = node.tag
        value: str = node.value
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            return _YAML12_BOOLEANS.get(value, value)
        if not node.style or tag in (_TAG + "int", _TAG + "float"):  # plain: None (Python) or "" (libyaml)
            number = _yaml12_number(value)
            if number is not None:
                return number
        return value


def _alias_problems(text: str, file: str) -> list[Diagnostic]:
    """One diagnostic per anchor, at its first alias (``*name``), with the count of its uses; the value of a
    merge key is left out (reported at the ``<<``)."""
    uses: dict[str, tuple[Position, int]] = {}
    previous: yaml.Event | None = None
    for event in yaml.parse(text, Loader=_Loader):
        merged = isinstance(previous, yaml.ScalarEvent) and previous.value == "<<" and previous.implicit[0]
        if isinstance(event, yaml.AliasEvent) and event.start_mark is not None and not merged:
            first = Position(file, event.start_mark.line + 1, event.start_mark.column + 1)
            anchor = str(event.anchor)
            position, count = uses.get(anchor, (first, 0))
            uses[anchor] = (position, count + 1)
        previous = event
    problems = []
    for anchor, (position, count) in list(uses.items())[:MAX_REPORTED_ALIASES]:
        times = f" (used {count} times)" if count > 1 else ""
        problems.append(Diagnostic(
            position, "LLM002", f"YAML alias `*{anchor}` is not allowed{times}",
            "write the value out in full: aliases can expand into huge documents (\"billion laughs\")",
        ))
    if len(uses) > MAX_REPORTED_ALIASES:
        position = list(uses.values())[MAX_REPORTED_ALIASES][0]
        problems.append(Diagnostic(position, "LLM002", f"aliases of {len(uses) - MAX_REPORTED_ALIASES} more "
                                   "anchors follow", "remove every anchor (`&name`) and alias (`*name`)"))
    return problems


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
        mark, opened = error.problem_mark or error.context_mark, error.context_mark
        position = _end_clamped(text, file, mark.line, mark.column) if mark else Position(file, 1, 1)
        if mark and _line(text, mark.line)[mark.column:].startswith("\t"):
            return [], [Diagnostic(position, "LLM001", "invalid YAML: a tab character where YAML expects spaces",
                                   "indent with spaces only; YAML does not allow tabs for indentation")]
        explained = _explain_syntax_error(text, file, error) if mark else None
        if explained is not None:
            return [], [explained]
        problem = error.problem or str(error)
        context = f" ({error.context})" if error.context else ""
        if error.context and mark and opened and opened.line != mark.line:  # say where the open construct began
            context = f" ({error.context} that starts on line {opened.line + 1})"
        return [], [Diagnostic(position, "LLM001", f"invalid YAML: {problem}{context}", "fix the YAML syntax")]
    except yaml.reader.ReaderError as error:
        offset = error.position  # libyaml counts bytes of the UTF-8 text, PyYAML characters
        if _Loader is not yaml.SafeLoader:
            offset = len(text.encode("utf-8", "surrogatepass")[:offset].decode("utf-8", "ignore"))
        breaks = list(_LINE_BREAK.finditer(text, 0, offset))
        line, column = len(breaks) + 1, offset - (breaks[-1].end() if breaks else 0) + 1
        character = error.character  # a code point from libyaml, a one-character string from PyYAML
        code = ord(character) if isinstance(character, str) and len(character) == 1 else character
        message = f"invalid YAML: character U+{code:04X} is not allowed" if isinstance(code, int) else (
            f"invalid YAML: {error.reason}")
        return [], [Diagnostic(Position(file, line, column), "LLM001", message,
                               "remove the control character; only printable text can appear in YAML")]
    except (yaml.YAMLError, RecursionError, ValueError) as error:
        return [], [Diagnostic(Position(file, 1, 1), "LLM001", f"invalid YAML: {error}", "fix the YAML syntax")]
    if len(nodes) > MAX_DOCUMENTS_PER_FILE:
        message = f"more than {MAX_DOCUMENTS_PER_FILE} documents in one file"
        return [], [Diagnostic(Position(file, 1, 1), "LLM007", message, "split the file")]
    builder = _Builder(file)
    builder.lines = _LINE_BREAK.split(text)
    for index, node in enumerate(nodes):
        if node is None or _is_empty(node):
            continue
        builder.values, builder.keys, builder.refused, builder.blocks = {}, {}, set(), {}
        try:
            data = builder.build(node, ())
        except _TooLarge as error:
            message = f"document is too large: {error.what}"
            return [], [Diagnostic(error.position, "LLM007", message, "split or simplify the spec")]
        start = builder.position(node)
        documents.append(SourceDocument(file, index, data, start, builder.values, builder.keys, builder.refused,
                                        builder.blocks))
    problems.extend(builder.problems)
    if builder.aliases:
        problems.extend(_alias_problems(text, file))
    return documents, problems


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _previous_content_line(lines: list[str], index: int) -> int | None:
    """The 0-based index of the nearest line above ``index`` that holds more than blanks or a comment."""
    for previous in range(index - 1, -1, -1):
        stripped = lines[previous].strip()
        if stripped and not stripped.startswith("#"):
            return previous
    return None


def _explain_syntax_error(text: str, file: str, error: yaml.MarkedYAMLError) -> Diagnostic | None:
    """libyaml's most common complaints in words that say what to change, at the line that needs the change
    (libyaml often notices a mistake only on the line after it). None: keep libyaml's own words."""
    mark, opened = error.problem_mark, error.context_mark
    if mark is None:
        return None
    lines = _LINE_BREAK.split(text)
    line = lines[mark.line] if mark.line < len(lines) else ""
    problem = error.problem or ""

    def at(index: int, column: int, message: str, hint: str) -> Diagnostic:
        return Diagnostic(_end_clamped(text, file, index, column), "LLM001", f"invalid YAML: {message}", hint)

    if problem.startswith("mapping values are not allowed"):
        before = line[:mark.column]
        if ": " in before.strip() or before.strip().startswith("- "):
            return at(mark.line, mark.column, "a `: ` inside a value",
                      "quote the whole value (`key: \"text: more text\"`) if the colon belongs to the text")
        previous = _previous_content_line(lines, mark.line)
        if previous is not None and ":" not in lines[previous].split("#")[0]:
            return at(previous, _indent(lines[previous]), "this line has no `:` after its key, so YAML reads the "
                      "next line as more of its text", "write `key: value` (a colon and a space after the key)")
        if previous is not None and _indent(line) > _indent(lines[previous]):
            return at(mark.line, _indent(line),
                      f"this line is indented more than the line above it (line {previous + 1}), so YAML reads it "
                      "as part of that line's value",
                      "indent it like its sibling keys, or give the key above no value if this belongs under it")
        return None
    if problem == "could not find expected ':'" and opened is not None:
        key_line = lines[opened.line] if opened.line < len(lines) else ""
        return at(opened.line, _indent(key_line), "this line has no `:` after its key",
                  "write `key: value` (a colon and a space after the key)")
    if problem == "did not find expected key" and opened is not None:
        if line.strip().startswith("- "):
            return at(mark.line, _indent(line), "a list item (`- `) where a key was expected",
                      "indent the item under the key that holds the list, or write it as `key: value`")
        return at(mark.line, _indent(line),
                  f"this line is not aligned with the keys of the block that starts on line {opened.line + 1} "
                  f"(column {opened.column + 1})",
                  f"indent it to column {opened.column + 1} like its siblings, or further if it belongs under "
                  "the key above")
    if problem == "found character that cannot start any token" and mark.column < len(line):
        character = line[mark.column]
        return at(mark.line, mark.column, f"a plain value cannot start with {character!r}",
                  "put the value in quotes")
    if problem == "found unexpected end of stream" and opened is not None and "quoted scalar" in (error.context or ""):
        quote = lines[opened.line][opened.column] if opened.column < len(lines[opened.line]) else "\""
        return at(opened.line, opened.column, "the quoted value that starts here is never closed",
                  f"add the closing `{quote}`")
    if problem.startswith("did not find expected ',' or") and opened is not None:
        bracket = "{" if "mapping" in (error.context or "") else "["
        closing = "}" if bracket == "{" else "]"
        return at(opened.line, opened.column, f"the `{bracket}` that starts here is not closed before line "
                  f"{mark.line + 1}", f"add `{closing}` at the end of the value, or separate items with `,`")
    return None


def _end_clamped(text: str, file: str, line: int, column: int) -> Position:
    """A 0-based mark as a position; libyaml puts "unexpected end of stream" one line past a text that does not
    end in a newline, which editors cannot show, so such a mark moves to the end of the last line."""
    lines = _LINE_BREAK.split(text)
    if line >= len(lines):
        return Position(file, len(lines), len(lines[-1]) + 1)
    return Position(file, line + 1, column + 1)


def _line(text: str, index: int) -> str:
    """Line ``index`` (0-based) of ``text`` as YAML counts lines, or "" past the end."""
    lines = _LINE_BREAK.split(text)
    return lines[index] if index < len(lines) else ""


def _is_empty(node: yaml.Node) -> bool:
    """A document with nothing in it, such as a trailing `---`: skipped, as kubectl does."""
    return (isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "null"
            and node.value == "" and not node.style)


def spec_files(specs_dir: Path) -> list[Path]:
    """Every YAML file under ``specs_dir``, in a stable order that does not depend on the file system.

    Folders starting with ``.`` are skipped; symbolic links to folders are not followed (a link named like a
    spec file is listed, so that it is reported)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(specs_dir):
        linked = [name for name in dirs if name.endswith(SPEC_SUFFIXES) and os.path.islink(os.path.join(root, name))]
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root, name) for name in [*files, *linked] if name.endswith(SPEC_SUFFIXES))
    return sorted(found, key=lambda path: path.relative_to(specs_dir).as_posix())


_FILE_TYPES = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder"}


def _not_a_spec_file(path: Path, display: str, specs_root: Path) -> Diagnostic | None:
    """Why ``path`` cannot be read as a spec file (a link loop, a dangling link, a link out of the specs folder,
    not a regular file), or None. Never blocks: a FIFO is recognised by its type, not opened."""
    def problem(message: str, hint: str) -> Diagnostic:
        return Diagnostic(Position(display, 1, 1), "LLM008", message, hint)

    if path.is_symlink():
        target = os.readlink(path)
        try:
            real = Path(os.path.realpath(path, strict=True))
        except OSError as error:
            if error.errno == errno.ELOOP:
                return problem(f"this symbolic link never reaches a file: it loops (it points to `{target}`)",
                               "point it at a spec file, or remove it")
            return problem(f"this symbolic link points to `{target}`, which does not exist",
                           "restore the file it points to, or remove the link")
        if not real.is_relative_to(specs_root):
            return problem(f"this symbolic link points to `{target}`, outside the specs folder",
                           "copy the spec into the specs folder; links may not leave it")
    try:
        mode = path.stat().st_mode
    except OSError as error:
        return problem(f"cannot read file: {error.strerror}", "check that the file is readable")
    if not stat.S_ISREG(mode):
        kind = _FILE_TYPES.get(stat.S_IFMT(mode), "not a regular file")
        return problem(f"this is {kind}, not a spec file", "remove it, or rename it so it does not end in .yaml")
    return None


def read_spec_bytes(path: Path, display: str, specs_root: Path | None = None) -> bytes | Diagnostic:
    """The bytes of one spec file, or the reason it cannot be read as one (a link that leaves the specs folder,
    not a regular file, over ``MAX_FILE_BYTES``, unreadable)."""
    refused = _not_a_spec_file(path, display, specs_root or Path(os.path.realpath(path.parent)))
    if refused is not None:
        return refused
    try:
        # O_NONBLOCK: a file swapped for a FIFO after the check above cannot block the compiler.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return Diagnostic(Position(display, 1, 1), "LLM008", "this is not a regular file, not a spec file",
                                  "remove it")
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                message = f"file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit for a spec file"
                return Diagnostic(Position(display, 1, 1), "LLM007", message, "split it into smaller files")
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        return Diagnostic(Position(display, 1, 1), "LLM008", f"cannot read file: {error.strerror}",
                          "check that the file is readable")
    if len(raw) > MAX_FILE_BYTES:
        message = f"file is over the {MAX_FILE_BYTES}-byte limit for a spec file"
        return Diagnostic(Position(display, 1, 1), "LLM007", message, "split it into smaller files")
    return raw


def parse_spec_bytes(raw: bytes, display: str) -> tuple[list[SourceDocument], list[Diagnostic]]:
    """Every document of a spec file's bytes (UTF-8 YAML); a pure function of ``raw`` and ``display``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = raw.rfind(b"\n", 0, error.start) + 1
        column = len(raw[line_start:error.start].decode("utf-8", "replace")) + 1
        position = Position(display, raw.count(b"\n", 0, error.start) + 1, column)
        message = f"file is not UTF-8: byte 0x{raw[error.start]:02x} cannot be decoded"
        return [], [Diagnostic(position, "LLM008", message, "save the file as UTF-8")]
    return parse_text(text, display)


def read_spec_file(path: Path, display: str, specs_root: Path | None = None) -> tuple[list[SourceDocument],
                                                                                      list[Diagnostic]]:
    raw = read_spec_bytes(path, display, specs_root)
    if isinstance(raw, Diagnostic):
        return [], [raw]
    return parse_spec_bytes(raw, display)


@dataclass(frozen=True)
class SpecInput:
    """One spec file as the compiler reads it: its name as diagnostics show it (relative to the specs folder's
    parent) and its bytes, or the reason it cannot be read. Everything a compile produces is a function of
    the specs folder's name and these."""

    display: str
    content: bytes | Diagnostic


@dataclass(frozen=True)
class SpecInputs:
    """Every spec file under a specs folder, in load order; ``missing`` when the folder does not exist."""

    root_name: str
    files: list[SpecInput]
    missing: Diagnostic | None = None

    def content_digest(self) -> str:
        """``sha256:<hex>`` of the folder's name and every file's name and bytes (or why it is unreadable): equal
        digests compile to equal output and diagnostics with the same compiler (the compile cache's key; see
        :func:`specs_digest` for the one the output records)."""
        digest = hashlib.sha256(b"llmops-specs/1\0" + self.root_name.encode() + b"\0")
        for item in self.files:
            digest.update(item.display.encode("utf-8", "surrogateescape") + b"\0")
            if isinstance(item.content, bytes):
                digest.update(b"F" + hashlib.sha256(item.content).digest())
            else:
                digest.update(b"E" + repr(item.content).encode("utf-8", "surrogateescape") + b"\0")
        if self.missing is not None:
            digest.update(b"M" + repr(self.missing).encode("utf-8", "surrogateescape"))
        return "sha256:" + digest.hexdigest()


def file_digest(display: str, documents: list[SourceDocument], problems: list[Diagnostic]) -> bytes:
    """sha256 of what one spec file says rather than how it is written: its name, the data of its documents in
    any order, and the codes and messages of its loader findings. Comments, layout, quoting and the order of
    documents do not count, just as they do not change the output."""
    digest = hashlib.sha256(b"llmops-spec-file/1\0" + display.encode("utf-8", "surrogateescape") + b"\0")
    encoded = sorted(json.dumps(document.data, ensure_ascii=False, separators=(",", ":")).encode("utf-8",
                     "surrogateescape") for document in documents)
    found = sorted(f"{problem.code} {problem.message}".encode("utf-8", "surrogateescape") for problem in problems)
    for part in [*encoded, b"\0", *found]:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.digest()


def specs_digest(root_name: str, files: list[bytes], unreadable: list[Diagnostic]) -> str:
    """``sha256:<hex>`` of a specs folder's name and its files' :func:`file_digest` (in load order) and unreadable
    files: what the output's manifest records, so that a committed output can be matched with the specs it was
    compiled from."""
    digest = hashlib.sha256(b"llmops-specs/1\0" + root_name.encode("utf-8", "surrogateescape") + b"\0")
    for part in files:
        digest.update(part)
    for problem in unreadable:
        digest.update(repr(problem).encode("utf-8", "surrogateescape"))
    return "sha256:" + digest.hexdigest()


def semantic_digest(inputs: SpecInputs, known: Callable[[str, bytes], bytes | None] | None = None) -> str:
    """:func:`specs_digest` of spec files read but not parsed yet (validates nothing). ``known(display,
    content)`` may supply a file's :func:`file_digest` computed before (None: the file is parsed)."""
    digests: list[bytes] = []
    unreadable: list[Diagnostic] = []
    for item in inputs.files:
        if isinstance(item.content, Diagnostic):
            unreadable.append(item.content)
            continue
        digest = known(item.display, item.content) if known is not None else None
        if digest is None:
            documents, problems = parse_spec_bytes(item.content, item.display)
            digest = file_digest(item.display, documents, problems)
        digests.append(digest)
    return specs_digest(inputs.root_name, digests, unreadable)


def specs_folder_name(specs_dir: Path) -> str:
    """The specs folder's name as file names show it (``specs`` for ``.`` run inside it, a link's own name):
    the last part of its absolute path, links not resolved."""
    return Path(os.path.abspath(specs_dir)).name


def read_spec_inputs(specs_dir: Path) -> SpecInputs:
    """Read every spec file under ``specs_dir`` (see :func:`spec_files`) without parsing it."""
    if not specs_dir.is_dir():
        message = f"specs folder `{specs_dir}` does not exist"
        return SpecInputs(specs_folder_name(specs_dir), [], Diagnostic(Position(str(specs_dir)), "LLM009", message,
                                                          "pass the folder that holds your specs"))
    base = Path(os.path.abspath(specs_dir)).parent
    specs_root = Path(os.path.realpath(specs_dir))
    files = []
    for path in spec_files(specs_dir):
        display = Path(os.path.abspath(path)).relative_to(base).as_posix()
        files.append(SpecInput(display, read_spec_bytes(path, display, specs_root)))
    return SpecInputs(specs_folder_name(specs_dir), files)


def load_specs(specs_dir: Path) -> tuple[list[SourceDocument], list[Diagnostic]]:
    """Load every spec document under ``specs_dir``; file names are shown relative to its parent, as written
    (a symbolic link is named by its own path, not its target's)."""
    inputs = read_spec_inputs(specs_dir)
    if inputs.missing is not None:
        return [], [inputs.missing]
    documents: list[SourceDocument] = []
    problems: list[Diagnostic] = []
    for item in inputs.files:
        if isinstance(item.content, Diagnostic):
            problems.append(item.content)
            continue
        file_documents, file_problems = parse_spec_bytes(item.content, item.display)
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
