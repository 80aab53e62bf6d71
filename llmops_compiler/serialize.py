"""Deterministic YAML text from plain values, in block style with literal multi-line strings.

A small emitter for the shapes the targets build (mappings, lists, strings, numbers, booleans, null), about
four times faster than PyYAML's representer, which dominated compile time. A string is written plain only when
no YAML reader on the way to the cluster could take it for something else: not PyYAML's YAML 1.1 implicit
resolvers, and not go-yaml v2's ``resolve`` (sigs.k8s.io/yaml: kubectl, ArgoCD, the API server), which also
reads ``y``/``n`` as booleans, ``0o17`` and ``0x1F`` as integers, ``1_000`` as 1000, and a digit string with a
leading zero that is not octal, such as the hash ``050677189993``, as a float. go-yaml v3 (kustomize) reads a
subset of those as non-strings. A property test passes random strings and the generated files through
kubectl's own decoder and compares every value.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

from yaml.resolver import Resolver

_IMPLICIT = Resolver.yaml_implicit_resolvers
_INDICATORS = set("-?:,[]{}#&*!|>'\"%@`")
_NOT_PRINTABLE = re.compile(
    r"[^\t\n\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\x85\u2028\u2029\ufeff]"
)
_UNSAFE_INSIDE = re.compile(r"(: |:$| #|\t|[\x00-\x1f\x7f\x85\u2028\u2029\ufeff])")


# go-yaml v2 `resolve.go` (v2.4.0; sigs.k8s.io/yaml), for plain scalars: words it maps to booleans, nulls and
# special floats, and, for a scalar starting with a digit, sign or dot, what Go's ParseInt/ParseUint (base 0,
# underscores removed) or the `yamlStyleFloat` expression accept.
_GO_YAML_WORDS = frozenset((
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
    "on", "On", "ON", "off", "Off", "OFF", "~", "null", "Null", "NULL", ".nan", ".NaN", ".NAN", ".inf", ".Inf",
    ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", "<<",
))
_GO_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[0-9]+)")
_GO_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


def go_yaml_non_string(text: str) -> bool:
    """Whether go-yaml v2 (kubectl, ArgoCD) or v3 (kustomize) could read the plain scalar ``text`` as something
    other than a string. Errs on the side of quoting: every integer form is taken, whatever its range."""
    if text in _GO_YAML_WORDS:
        return True
    if not text or text[0] not in "+-.0123456789":
        return False
    plain = text.replace("_", "")
    return bool(_GO_INT.fullmatch(plain) or _GO_FLOAT.fullmatch(plain))


@lru_cache(maxsize=65536)
def _plain_is_safe(text: str) -> bool:
    """Whether ``text`` can be written unquoted and still load back as the same string, in Python and Go."""
    if not text or text != text.strip() or text[0] in _INDICATORS or text in ("~", "<<", "="):
        return False
    if _UNSAFE_INSIDE.search(text) or not text.isprintable() or go_yaml_non_string(text):
        return False
    return not any(regexp.match(text) for _, regexp in _IMPLICIT.get(text[0], []))


def _literal_block(text: str, indent: str) -> str | None:
    """A ``|`` block for multi-line text, or None when a block cannot carry it exactly."""
    lines = text.split("\n")
    content = [line for line in lines if line]
    if not content or content[0].startswith(" ") or any(not line.isprintable() for line in content):
        return None  # nothing but newlines, or an indentation the block could not show
    if any(line != line.rstrip(" ") for line in lines) or "\t" in text or "\r" in text:
        return None
    body_lines = lines[:-1] if text.endswith("\n") else lines
    trailing = len(text) - len(text.rstrip("\n"))
    chomp = "-" if trailing == 0 else ("" if trailing == 1 else "+")
    if trailing > 1:
        body_lines = text[: len(text) - trailing].split("\n") + [""] * (trailing - 1)
    body = "\n".join(f"{indent}{line}" if line else "" for line in body_lines)
    return f"|{chomp}\n{body}"


_TEXTS: dict[str, str] = {}
_TEXTS_LIMIT = 262_144  # distinct strings remembered (emptied when full: a bound on memory, never on output)


def _text(text: str) -> str:
    """A string scalar: plain when that loads back as the same string, double-quoted otherwise."""
    written = _TEXTS.get(text)
    if written is None:
        written = text if _plain_is_safe(text) else _double_quoted(text)
        if len(_TEXTS) >= _TEXTS_LIMIT:
            _TEXTS.clear()
        _TEXTS[text] = written
    return written


def _scalar(value: Any) -> str:
    if type(value) is str:
        return _text(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "." not in text and "e" in text:
            text = text.replace("e", ".0e", 1)
        return text
    return _text(str(value))


def _double_quoted(text: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's), escaping what YAML forbids raw."""
    quoted = json.dumps(text, ensure_ascii=False)
    return _NOT_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}" if ord(m.group()) < 0x10000
                              else f"\\U{ord(m.group()):08x}", quoted)


def _string_value(text: str, indent: int) -> str:
    """A string written after ``key:`` or ``-``: a literal block (its lines at column ``indent``) for multi-line
    text a block can carry, a plain or quoted scalar otherwise."""
    if "\n" in text:
        block = _literal_block(text, " " * indent)
        if block is not None:
            return block
    return _text(text)


def _emit_mapping(mapping: dict[Any, Any], indent: int, out: list[str], first: str | None = None) -> None:
    """The lines of a non-empty mapping whose keys start at column ``indent``; the first line starts with
    ``first`` instead of the indentation when given (the ``- `` of a list item that is this mapping)."""
    pad = " " * indent
    lead = pad if first is None else first
    append = out.append
    known = _TEXTS.get
    for key, item in mapping.items():
        key_text = known(key) if type(key) is str else None
        if key_text is None:
            key_text = _text(str(key))
        kind = type(item)
        if kind is str:  # the common case first: a one-line string written before
            written = known(item)
            if written is None or "\n" in item:
                written = _string_value(item, indent + 2)
            append(f"{lead}{key_text}: {written}")
        elif kind is dict or (kind is not list and isinstance(item, dict)):
            if item:
                append(f"{lead}{key_text}:")
                _emit_mapping(item, indent + 2, out)
            else:
                append(f"{lead}{key_text}: {{}}")
        elif kind is list or isinstance(item, list):
            if item:
                # A list under a key is not indented further (PyYAML's and kubectl's style).
                append(f"{lead}{key_text}:")
                _emit_sequence(item, indent, out)
            else:
                append(f"{lead}{key_text}: []")
        else:
            append(f"{lead}{key_text}: {_scalar(item)}")
        lead = pad


def _emit_sequence(sequence: list[Any], indent: int, out: list[str], first: str | None = None) -> None:
    """The lines of a non-empty list whose dashes are at column ``indent``; ``first`` as for mappings."""
    pad = " " * indent
    lead = pad if first is None else first
    append = out.append
    known = _TEXTS.get
    for item in sequence:
        kind = type(item)
        if kind is str:
            written = known(item)
            if written is None or "\n" in item:
                written = _string_value(item, indent + 2)
            append(f"{lead}- {written}")
        elif kind is dict or (kind is not list and isinstance(item, dict)):
            if item:
                _emit_mapping(item, indent + 2, out, lead + "- ")
            else:
                append(f"{lead}- {{}}")
        elif kind is list or isinstance(item, list):
            if item:
                _emit_sequence(item, indent + 2, out, lead + "- ")
            else:
                append(f"{lead}- []")
        else:
            append(f"{lead}- {_scalar(item)}")
        lead = pad


def dump_yaml(value: Any) -> str:
    """One YAML document for a mapping or list; same value, same text, on any machine."""
    if not isinstance(value, dict | list):
        return _scalar(value) + "\n"
    if not value:
        return "{}\n" if isinstance(value, dict) else "[]\n"
    out: list[str] = []
    if isinstance(value, dict):
        _emit_mapping(value, 0, out)
    else:
        _emit_sequence(value, 0, out)
    return "\n".join(out) + "\n"
