"""Hypothesis: whatever the input, the loader and the compiler end in output or in diagnostics placed at
file:line:col, never in an exception."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from llmops_compiler import api, load
from llmops_compiler.conventions import API_VERSION
from llmops_compiler.diagnostics import CompileError, Diagnostic, render_human
from llmops_compiler.specs import KINDS, SPEC_MODELS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_FILES = {
    path.relative_to(ROOT / "specs").as_posix(): path.read_text() for path in sorted((ROOT / "specs").rglob("*.yaml"))
}
PROJECT = EXAMPLE_FILES["project.yaml"]
# Findings about the specs folder as a whole ("no Project spec found") carry no line.
FOLDER_LEVEL = {"LLM302"}

# Pieces of YAML syntax, so that random text reaches the parser's corners rather than failing on line 1.
YAML_PIECES = [
    "\n",
    "  ",
    "    ",
    "- ",
    ": ",
    "key: ",
    "kind: Model\n",
    "apiVersion: llmops.dev/v1alpha1\n",
    "spec:\n",
    "metadata: {name: x}\n",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "&b [*a, *a]",
    "<<: ",
    "!!python/object ",
    "!Ref ",
    "!!str ",
    "!!binary ",
    "? ",
    "---\n",
    "...\n",
    "\t",
    "#",
    '"',
    "'",
    "|\n",
    ">-\n",
    "\\",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n",
    "~",
    "null",
    "true",
    "no",
    "2e-4",
    "0x1F",
    "1_000",
    "1:30",
    ".inf",
    "@",
    "`",
    "\x00",
    "\x1b",
    "\ufeff",
    "\u2028",
    "é",
    "{{ x }}",
    "{% if %}",
]
yaml_like_text = st.lists(st.one_of(st.sampled_from(YAML_PIECES), st.text(max_size=4)), max_size=60).map("".join)

# Values that slipped through before: names and durations ending in a newline, templates that compute huge
# numbers or nest deeply, and credentials in the formats secret scanners know.
TRICKY_VALUES = [
    "support-llm\n", "dev\n", "30m\n", "1.0.0\n", "*/30 * * * *\n", "stable\n", "0s", "latest", "v2",
    "{{ 10**4300 }}", "{{ 'x' * 1000000000 }}", "{{ " + "(" * 100 + "x" + ")" * 100 + " }}",
    "{{ '{0.__class__}'.format(x) }}", "{{ x|attr('format') }}",
    "https://user:s3cr3t-Passw0rd@mlflow.test", "https://api.test/x?token=abcdef123456",
    "ghp_4f9Kq2LmN8vR3xT7yZ1aB6cD0eF5gH2jK9mP", "AIzaSyD4f9Kq2LmN8vR3xT7yZ1aB6cD0eF5gH2j",
    "https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/aBcDeFgHiJkLmNoPqRsTuVwX",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
    st.text(max_size=12).map(lambda text: text + "\n"),
    st.sampled_from(["support-llm", "answer", "lora", "canary", "1.0.0", "30m", "2Gi", "s3://b/k", "input.question"]),
    st.sampled_from(TRICKY_VALUES),
)


def _field_names(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[str]:
    """Every YAML key the spec models accept, so that random specs hit real fields as well as unknown ones."""
    if model in seen:
        return
    seen.add(model)
    for name, info in model.model_fields.items():
        yield info.alias or name
        for inner in _nested_models(info.annotation):
            yield from _field_names(inner, seen)


def _nested_models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in getattr(annotation, "__args__", ()):
        yield from _nested_models(argument)


FIELD_NAMES = sorted({name for model in SPEC_MODELS.values() for name in _field_names(model, set())})
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8))
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=25
)
spec_documents = st.fixed_dictionaries(
    {
        "apiVersion": st.just(API_VERSION) | scalars,
        "kind": st.sampled_from(KINDS) | values,
        "metadata": st.fixed_dictionaries({"name": st.sampled_from(["support-llm", "answer", "x", "Bad_Name"])})
        | values,
        "spec": st.dictionaries(keys, values, max_size=8),
    },
    optional={"environments": st.dictionaries(st.sampled_from(["dev", "prod", "qa"]), st.dictionaries(keys, values))},
)


# --- helpers -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def specs_folder(files: dict[str, str | bytes]) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as temporary:
        specs = Path(temporary) / "specs"
        for relative, content in files.items():
            path = specs / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8", errors="surrogatepass")
        yield specs


def assert_well_placed(diagnostics: Sequence[Diagnostic], specs: Path | None = None) -> None:
    """Every diagnostic names a file, and a line and column in it unless it is about the whole folder."""
    for diagnostic in diagnostics:
        position = diagnostic.position
        assert diagnostic.code.startswith("LLM") and diagnostic.message.strip(), diagnostic
        assert diagnostic.severity in ("error", "warning")
        rendered = render_human([diagnostic]).split("\n")
        assert len(rendered) == (3 if diagnostic.hint else 2), f"not one line: {rendered}"
        if diagnostic.code in FOLDER_LEVEL:
            continue
        assert position.line >= 1 and position.column >= 1, f"no line:col: {diagnostic}"
        if specs is not None:
            path = specs.parent / position.file
            assert path.is_file(), f"{diagnostic} names a file that does not exist"
            lines = len(re.split("\r\n|[\n\r\x85\u2028\u2029]", path.read_bytes().decode("utf-8", "replace")))
            assert position.line <= lines, f"{diagnostic} is past the end of its file"


def build_or_report(files: dict[str, str | bytes]) -> None:
    """A successful build, or a CompileError whose every diagnostic is well placed; any other exception fails."""
    with specs_folder(files) as specs:
        try:
            api.build(specs)
        except CompileError as error:
            assert error.diagnostics
            assert_well_placed(error.diagnostics, specs)
            event("diagnostics")
        else:
            event("built")  # `--hypothesis-show-statistics` shows how often the targets were reached


# --- (a) arbitrary text and bytes ------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=300), yaml_like_text, st.binary(max_size=300).map(lambda raw: raw.decode("latin-1"))))
def test_parse_text_never_raises(text: str) -> None:
    documents, problems = load.parse_text(text, "specs/fuzz.yaml")
    assert_well_placed(problems)
    assert all(problem.position.file == "specs/fuzz.yaml" for problem in problems)
    for document in documents:
        assert document.file == "specs/fuzz.yaml"
        for path in document.refused:
            assert isinstance(path, tuple)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=300), yaml_like_text.map(lambda text: text.encode("utf-8", "surrogatepass"))))
def test_validate_ends_in_diagnostics_for_any_file(content: bytes) -> None:
    with specs_folder({"project.yaml": PROJECT, "fuzz.yaml": content}) as specs:
        problems = api.validate(specs)
        assert_well_placed(problems, specs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spec_documents, min_size=1, max_size=3))
def test_random_spec_documents_build_or_report(documents: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True)
    build_or_report({"project.yaml": PROJECT, "fuzz.yaml": text})


# --- (b) mutations of the example project ----------------------------------------------------------------

Mutation = Callable[[str, st.DataObject], str]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _on_documents(change: Callable[[list[Any], st.DataObject], None]) -> Mutation:
    """A mutation of the parsed documents of a file, written back as YAML (comments are lost, which is fine)."""

    def mutate(text: str, data: st.DataObject) -> str:
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            return text  # an earlier text mutation broke the file: leave it broken
        change(documents, data)
        return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True)

    mutate.__name__ = change.__name__
    return mutate


def _parent_and_key(documents: list[Any], data: st.DataObject, of: type) -> tuple[Any, Any] | None:
    candidates = [
        (index, path)
        for index, document in enumerate(documents)
        for path in _paths(document)
        if path and isinstance(_get(documents[index], path[:-1]), of)
    ]
    if not candidates:
        return None
    index, path = data.draw(st.sampled_from(candidates))
    return _get(documents[index], path[:-1]), path[-1]


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for element in path:
        value = value[element]
    return value


def _drop_key(documents: list[Any], data: st.DataObject) -> None:
    if found := _parent_and_key(documents, data, dict):
        parent, key = found
        del parent[key]


def _rename_key(documents: list[Any], data: st.DataObject) -> None:
    if found := _parent_and_key(documents, data, dict):
        parent, key = found
        new = data.draw(
            st.one_of(
                st.just(str(key)[:-1] or "x"),
                st.just(str(key).lower()),
                st.just(f"{key}s"),
                st.sampled_from(FIELD_NAMES),
                st.text(min_size=1, max_size=10),
            )
        )
        parent[new] = parent.pop(key)


def _change_value(documents: list[Any], data: st.DataObject) -> None:
    if found := _parent_and_key(documents, data, object):
        parent, key = found
        parent[key] = data.draw(values)


def _duplicate_document(documents: list[Any], data: st.DataObject) -> None:
    if documents:
        documents.append(documents[data.draw(st.integers(0, len(documents) - 1))])


def _delete_document(documents: list[Any], data: st.DataObject) -> None:
    if documents:
        del documents[data.draw(st.integers(0, len(documents) - 1))]


def _insert_text(text: str, data: st.DataObject) -> str:
    offset = data.draw(st.integers(0, len(text)))
    return text[:offset] + data.draw(yaml_like_text) + text[offset:]


def _delete_text(text: str, data: st.DataObject) -> str:
    start = data.draw(st.integers(0, len(text)))
    return text[:start] + text[start + data.draw(st.integers(1, 40)) :]


def _reindent_line(text: str, data: st.DataObject) -> str:
    lines = text.split("\n")
    index = data.draw(st.integers(0, len(lines) - 1))
    lines[index] = data.draw(st.sampled_from(["", " ", "  ", "\t", "- "])) + lines[index].lstrip(" ")
    return "\n".join(lines)


MUTATIONS: list[Mutation] = [
    _on_documents(_drop_key),
    _on_documents(_rename_key),
    _on_documents(_change_value),
    _on_documents(_duplicate_document),
    _on_documents(_delete_document),
    _insert_text,
    _delete_text,
    _reindent_line,
]


def test_the_example_project_builds() -> None:
    """The starting point of the mutations is valid, so that what they find is theirs."""
    with specs_folder(dict(EXAMPLE_FILES)) as specs:
        api.build(specs)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_example_specs_build_or_report(data: st.DataObject) -> None:
    files: dict[str, str | bytes] = dict(EXAMPLE_FILES)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        target = data.draw(st.sampled_from(sorted(EXAMPLE_FILES)), label="file")
        mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
        files[target] = mutation(str(files[target]), data)
    build_or_report(files)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda mutation: getattr(mutation, "__name__", "mutation"))
def test_every_mutation_changes_something(mutation: Mutation) -> None:
    """Guard against a mutation that silently does nothing (the property would then prove little)."""

    text = EXAMPLE_FILES["models/support-llm.yaml"]
    original = list(yaml.safe_load_all(text))
    outcomes: list[bool] = []

    @settings(max_examples=20, deadline=None, database=None)
    @given(st.data())
    def record(data: st.DataObject) -> None:
        changed = mutation(text, data)
        try:
            outcomes.append(list(yaml.safe_load_all(changed)) != original)
        except yaml.YAMLError:
            outcomes.append(True)

    record()
    assert any(outcomes)


# --- whole-value matching: a newline at the end of any one-line value is refused --------------------------

def _multi_line_field(kind: str, spec_path: tuple[Any, ...]) -> bool:
    """Whether the field at ``spec_path`` may hold several lines (prompt templates, descriptions, PromQL) or
    is free-form (a Tool's JSON Schemas)."""
    import typing

    from llmops_compiler.specs import common
    from llmops_compiler.validate import _types_at

    if kind == "Tool" and spec_path[:1] in (("parameters",), ("output",)):
        return True
    for annotation in _types_at(SPEC_MODELS[kind], spec_path):
        metadata = typing.get_args(annotation)[1:] if typing.get_origin(annotation) is typing.Annotated else ()
        if any(getattr(item, "func", None) is common._text for item in metadata):
            return True
    return False


def _string_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _string_leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_leaves(item, (*path, index))
    elif isinstance(value, str):
        yield path, value


def _newline_cases() -> list[tuple[str, int, tuple[Any, ...]]]:
    cases = []
    for relative, text in EXAMPLE_FILES.items():
        for index, document in enumerate(yaml.safe_load_all(text)):
            for path, _ in _string_leaves(document):
                spec_path = path[1:] if path[0] == "spec" else path[2:] if path[0] == "environments" else None
                if path in (("apiVersion",), ("kind",)):
                    continue
                if spec_path is not None and _multi_line_field(document["kind"], spec_path):
                    continue
                cases.append((relative, index, path))
    return cases


def test_every_one_line_value_of_the_example_refuses_a_trailing_newline() -> None:
    """Each string of the example that is not meant to span lines, with "\\n" appended, fails validation at
    that value: names, environments, namespaces, durations, versions, label values, URLs, aliases, ..."""
    cases = _newline_cases()
    assert len(cases) > 100
    for relative, index, path in cases:
        files = dict(EXAMPLE_FILES)
        documents = list(yaml.safe_load_all(files[relative]))
        parent = documents[index]
        for element in path[:-1]:
            parent = parent[element]
        parent[path[-1]] += "\n"
        files[relative] = yaml.safe_dump_all(documents, sort_keys=False)
        with specs_folder(files) as specs:
            problems = [problem for problem in api.validate(specs) if problem.severity == "error"]
        assert problems, f"{relative} document {index}: `{'.'.join(map(str, path))}` with a trailing newline passed"
