"""The YAML writer: whatever it writes loads back equal (with PyYAML, i.e. YAML 1.1 as Kubernetes reads it),
and it writes the readable forms reviewers expect."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops_compiler.serialize import dump_yaml

TRICKY = st.sampled_from([
    "on", "off", "yes", "no", "y", "n", "true", "False", "null", "~", "", " ", "1.0", "1e3", "0x1f", "010",
    "2026-01-01", "12:30:00", "- a", "a: b", "a #b", "#x", "*ref", "&anchor", "!tag", "|", ">", "@x", "`x",
    "%x", "=", "<<", " lead", "trail ", "a\nb\n", "a\n\nb", "\nx", "x\n\n", "  \nx", " x\ny", "\n", "\n\n",
    "a\n b", "é\n", "x\x85y", "tab\there", "cr\rhere", "\u2028", "\ufeff", "\x7f", "😀", "{a}", "[a]",
    "sum(rate(x{code=~\"5..\"}[5m]))", "{{ question }}",
])
TEXT = st.text(max_size=30) | TRICKY
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                      max_leaves=25)


@settings(max_examples=1500, deadline=None)
@given(st.dictionaries(TEXT, VALUES, min_size=1, max_size=5) | st.lists(VALUES, min_size=1, max_size=5))
def test_everything_written_loads_back_equal(value: Any) -> None:
    text = dump_yaml(value)
    assert yaml.load(text, Loader=yaml.CSafeLoader) == value, text


def test_readable_forms() -> None:
    text = dump_yaml({
        "apiVersion": "v1",
        "data": {"prompt": "line one\nline two\n", "empty": "", "flag": "on", "version": "1.0"},
        "list": [{"a": 1, "b": [1, 2]}, [3, [4]]],
        "none": None,
        "nested": {},
    })
    assert text == (
        "apiVersion: v1\n"
        "data:\n"
        "  prompt: |\n"
        "    line one\n"
        "    line two\n"
        '  empty: ""\n'
        '  flag: "on"\n'
        '  version: "1.0"\n'
        "list:\n"
        "- a: 1\n"
        "  b:\n"
        "  - 1\n"
        "  - 2\n"
        "- - 3\n"
        "  - - 4\n"
        "none: null\n"
        "nested: {}\n"
    )
