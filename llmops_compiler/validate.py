"""Documents → typed spec objects (pydantic), with every error placed at file:line:column.

Checks the envelope (apiVersion, kind, metadata, spec, environments), validates ``spec`` and each
environment's deep-merged variant against the kind's model, refuses plaintext secrets, and runs the kind's
semantic checks (templates, JSON Schemas, cross-field rules). Cross-spec references are resolve's job.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from . import checks, credentials
from .annotations import unwrap
from .conventions import API_VERSION
from .diagnostics import Diagnostic, Position, did_you_mean
from .load import SourceDocument, YamlPath, iter_paths
from .overrides import merge_override, translate
from .specs import SPEC_MODELS
from .specs.common import LABEL_KEY, LABEL_VALUE, _dns_label

ENVELOPE_KEYS = ("apiVersion", "kind", "metadata", "spec", "environments")
METADATA_KEYS = ("name", "labels", "annotations", "description")

@dataclass(frozen=True)
class Locator:
    """Maps a path inside a (merged) spec to its position, preferring an environment override's own text."""

    document: SourceDocument
    environment: str | None = None
    items: dict[YamlPath, tuple[YamlPath | None, YamlPath | None]] = field(default_factory=dict)
    """Where each merged list item came from (see :mod:`.overrides`)."""

    def written(self, spec_path: YamlPath) -> YamlPath:
        """The document path that wrote ``spec_path``: in the override when it writes it, else in the spec."""
        base, override = translate(spec_path, self.items)
        if self.environment is not None and override is not None and spec_path:
            in_override = ("environments", self.environment, *override)
            if in_override in self.document.values or in_override in self.document.keys:
                return in_override
        return ("spec", *(base if base is not None else spec_path))

    def at(self, spec_path: YamlPath, at_key: bool = False, text_line: int = 0) -> Position:
        """Where ``spec_path`` is written; with ``text_line``, that line of the (multi-line) string there."""
        path = self.written(spec_path)
        if path[0] == "spec" and self.environment is not None:
            # A path the override does not write itself, inside an item the override added: its nearest
            # written ancestor is in the override.
            base, override = translate(spec_path, self.items)
            if base is None and override is not None:
                path = ("environments", self.environment, *override)
        if text_line:
            return self.document.position_in_text(path, text_line)
        return self.document.position(path, at_key)

    def overrides(self, spec_path: YamlPath) -> bool:
        """Whether this environment's override writes ``spec_path`` itself."""
        return self.environment is not None and bool(spec_path) and self.written(spec_path)[0] == "environments"

    def refused(self, spec_path: YamlPath) -> bool:
        """Whether ``spec_path`` lies in a value the loader refused (and reported): nothing to add there."""
        written = [("spec", *spec_path)]
        if self.environment is not None:
            written.append(("environments", self.environment, *spec_path))
        return any(path[:len(refused)] == refused for refused in self.document.refused for path in written)


@dataclass
class SpecObject:
    """One validated spec: its base ``spec`` and, per environment that overrides it, the merged variant."""

    kind: str
    name: str
    document: SourceDocument
    labels: dict[str, str]
    annotations: dict[str, str]
    spec: BaseModel
    raw_spec: dict[str, Any]
    variants: dict[str, BaseModel] = field(default_factory=dict)
    raw_variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    merged_items: dict[str, dict[YamlPath, tuple[YamlPath | None, YamlPath | None]]] = field(default_factory=dict)

    @property
    def file(self) -> str:
        return self.document.file

    def for_environment(self, environment: str) -> BaseModel:
        return self.variants.get(environment, self.spec)

    def raw_for_environment(self, environment: str) -> dict[str, Any]:
        return self.raw_variants.get(environment, self.raw_spec)

    def locator(self, environment: str | None = None) -> Locator:
        if environment not in self.variants:
            return Locator(self.document)
        return Locator(self.document, environment, self.merged_items.get(environment, {}))

    def name_position(self) -> Position:
        return self.document.position(("metadata", "name"))


@dataclass(frozen=True)
class InvalidSpec:
    """A document whose kind and name are readable but whose content has errors (already reported)."""

    kind: str
    name: str
    document: SourceDocument

    def name_position(self) -> Position:
        return self.document.position(("metadata", "name"))


# --- pydantic errors → diagnostics -----------------------------------------------------------------

def _types_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[Any]:
    """The annotations a model accepts at ``loc`` (several for unions)."""
    candidates: list[Any] = [model]
    for element in loc:
        following: list[Any] = []
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                for name, info in candidate.model_fields.items():
                    if element in (info.alias, name):  # pydantic keeps a field's validators apart from its type
                        following.append(typing.Annotated[(info.annotation, *info.metadata)]
                                         if info.metadata else info.annotation)
            elif typing.get_origin(candidate) is list and isinstance(element, int):
                following.append(typing.get_args(candidate)[0])
            elif typing.get_origin(candidate) is dict and isinstance(element, str):
                following.append(typing.get_args(candidate)[1])
        candidates = [inner for candidate in following for inner in __unwrap_keeping_constraints(candidate)]
        if not candidates:
            return []
    return candidates


def __unwrap_keeping_constraints(annotation: Any) -> list[Any]:
    """The members of a union (each kept with its validators), or the annotation itself."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner = typing.get_args(annotation)[0]
        if typing.get_origin(inner) in (typing.Union, types.UnionType):
            return __unwrap_keeping_constraints(inner)
        if typing.get_origin(inner) in (list, dict) or (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return [inner]
        return [annotation]
    if origin in (typing.Union, types.UnionType):
        return [inner for arg in typing.get_args(annotation) for inner in __unwrap_keeping_constraints(arg)]
    return [annotation]


def _accepted(annotations: list[Any], value: Any) -> bool:
    """Whether one of ``annotations`` accepts ``value`` (used to check a hint's fix before suggesting it)."""
    from pydantic import TypeAdapter

    for annotation in annotations:
        try:
            TypeAdapter(annotation).validate_python(value, strict=True)
            return True
        except (ValidationError, TypeError, ValueError):
            continue
        except Exception:  # a type the adapter cannot build: make no claim
            continue
    return False


def _nested_home(model: type[BaseModel], loc: tuple[Any, ...], name: str) -> str | None:
    """Where a misplaced field belongs, when it is a field of a block nested below ``loc`` (a dedented key):
    the dotted path of that block relative to ``loc``, or None."""
    queue: list[tuple[Any, tuple[str, ...]]] = [(candidate, ()) for candidate in _types_at(model, loc)]
    seen: set[Any] = set()
    while queue:
        candidate, path = queue.pop(0)
        for inner in unwrap(candidate):
            if typing.get_origin(inner) is list:
                inner = unwrap(typing.get_args(inner)[0])[0]
            if not (isinstance(inner, type) and issubclass(inner, BaseModel)) or len(path) > 3:
                continue
            if path and any(name == (info.alias or field) for field, info in inner.model_fields.items()):
                return ".".join(path)
            if inner in seen:
                continue
            seen.add(inner)
            for field_name, info in inner.model_fields.items():
                queue.append((info.annotation, (*path, info.alias or field_name)))
    return None


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The YAML field names a model accepts at ``loc`` (for "did you mean" on unknown keys)."""
    names: list[str] = []
    for candidate in _types_at(model, loc):
        for inner in unwrap(candidate):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                names.extend(info.alias or name for name, info in inner.model_fields.items())
    return names


def _data_path(data: Any, loc: tuple[Any, ...]) -> YamlPath:
    """Drop the elements pydantic adds to ``loc`` (union members, validator names) that are not in the data."""
    path: list[str | int] = []
    current = data
    for element in loc:
        if isinstance(current, dict) and isinstance(element, str) and element in current:  # noqa: SIM114
            current = current[element]
            path.append(element)
        elif isinstance(current, list) and isinstance(element, int) and 0 <= element < len(current):
            current = current[element]
            path.append(element)
        elif isinstance(current, dict | list):
            path.append(element)
            current = None
    return tuple(path)


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "`true` or `false`",
    "dict_type": "a mapping",
    "list_type": "a list",
    "model_type": "a mapping",
    "int_from_float": "an integer",
}


_BOUND_WORDS = {
    "greater_than": "greater than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}
_YAML11_BOOLEANS = {"yes": "true", "y": "true", "on": "true", "no": "false", "n": "false", "off": "false"}
_NUMERIC_TEXT = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def _shown(value: Any, limit: int = 60) -> str:
    """A scalar as YAML writes it, shortened for a one-line message."""
    if isinstance(value, bool) or value is None:
        text = {True: "true", False: "false", None: "null"}[value]
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(value), type(value).__name__)
    return f"{kind} `{_shown(value)}`"


def _type_hint(error_type: str, value: Any, annotations: list[Any]) -> str:
    """What to write instead, for the type mistakes YAML makes easy: quotes missing or quotes too many, a
    number where a duration with a unit is wanted. A fix is suggested only if the field would accept it."""
    if error_type == "string_type" and isinstance(value, bool | int | float):
        quoted = str(value).lower() if isinstance(value, bool) else str(value)
        if not annotations or _accepted(annotations, quoted):
            return "put the value in quotes: without them YAML reads it as a " + (
                "boolean" if isinstance(value, bool) else "number")
        if isinstance(value, int) and not isinstance(value, bool):
            for unit in ("s", "m"):
                if _accepted(annotations, f"{value}{unit}"):
                    return f"write a duration with its unit, such as `{value}{unit}`"
        return ""
    if error_type in ("int_type", "float_type") and isinstance(value, str) and _NUMERIC_TEXT.match(value):
        return "remove the quotes: quoted, YAML reads the value as text"
    if error_type == "bool_type" and isinstance(value, str) and value.lower() in _YAML11_BOOLEANS:
        return f"write `{_YAML11_BOOLEANS[value.lower()]}`: specs are YAML 1.2, where `{value}` is text"
    return ""


def _constraint_message(field_name: str, item: Any) -> tuple[str, str]:
    """Message and hint for a value of the right type that breaks a bound, a length or a pattern."""
    error_type, context, value = item["type"], item.get("ctx", {}), item["input"]
    if error_type in _BOUND_WORDS:
        bound = next(iter(context.values()))
        hint = ""
        if error_type == "less_than" and bound == 1 and isinstance(value, int | float) and 1 < value <= 100:
            hint = f"write it as a fraction: `{value / 100:g}` means {value:g}%"
        return f"`{field_name}` must be {_BOUND_WORDS[error_type]} {bound}, got {_shown(value)}", hint
    if error_type in ("too_short", "too_long", "string_too_short", "string_too_long"):
        limit = context.get("min_length", context.get("max_length"))
        unit = "character" if error_type.startswith("string") else "item"
        if error_type.endswith("too_short"):
            if limit == 1:
                return f"`{field_name}` must not be empty", f"add at least one {unit}"
            return f"`{field_name}` must have at least {limit} {unit}s", ""
        return f"`{field_name}` must have at most {limit} {unit}s", ""
    if error_type == "string_pattern_mismatch":
        return f"`{field_name}` is `{_shown(value)}`, which does not have the expected form", (
            f"it must match the pattern `{context.get('pattern', '')}`")
    message = f"`{field_name}`: {item['msg'][0].lower()}{item['msg'][1:]}"
    return message, f"got {_describe(value)}"


def pydantic_diagnostics(
    error: ValidationError, model: type[BaseModel], data: dict[str, Any], locator: Locator, kind: str
) -> Iterator[Diagnostic]:
    errors = [(item, _data_path(data, tuple(item["loc"]))) for item in error.errors(include_url=False)]
    # A misspelt key is one mistake: "unknown `baseModle`, did you mean `baseModel`?" without also
    # "missing `baseModel`".
    renamed: set[YamlPath] = set()
    for item, path in errors:
        if item["type"] == "extra_forbidden" and path:
            close = difflib.get_close_matches(str(path[-1]), _fields_at(model, path[:-1]), n=1, cutoff=0.6)
            renamed.update((*path[:-1], name) for name in close)
    for item, path in errors:
        if locator.refused(path):
            continue
        error_type = item["type"]
        field_name = str(path[-1]) if path else "spec"
        if error_type == "extra_forbidden":
            allowed = _fields_at(model, tuple(path[:-1]))
            home = _nested_home(model, tuple(path[:-1]), field_name)
            hint = did_you_mean(field_name, allowed) or (
                f"`{field_name}` is a field of `{home}`: indent it under `{home.rsplit('.', 1)[-1]}:`" if home
                else "remove it")
            where = f"`{'.'.join(map(str, path[:-1]))}`" if len(path) > 1 else f"{kind} spec"
            yield Diagnostic(locator.at(path, at_key=True), "LLM101", f"unknown field `{field_name}` in {where}", hint)
        elif error_type == "missing":
            if path in renamed:
                continue
            if locator.overrides(path):
                message = (f"missing required field `{field_name}`: "
                           f"the `{locator.environment}` override removes it with `null`")
                yield Diagnostic(locator.at(path, at_key=True), "LLM102", message,
                                 "give it a value, or delete this line")
                continue
            parent = ".".join(map(str, path[:-1])) or "spec"
            hint = f"add `{field_name}:` under `{parent}`"
            yield Diagnostic(locator.at(path[:-1]), "LLM102", f"missing required field `{field_name}`", hint)
        elif error_type in _TYPE_WORDS:
            message = f"`{field_name}` must be {_TYPE_WORDS[error_type]}, got {_describe(item['input'])}"
            hint = _type_hint(error_type, item["input"], _types_at(model, tuple(path)))
            yield Diagnostic(locator.at(path), "LLM103", message, hint)
        elif error_type == "literal_error":
            expected = re.findall(r"'([^']*)'", str(item.get("ctx", {}).get("expected", "")))
            message = f"`{field_name}` is `{_shown(item['input'])}`, which is not allowed"
            hint = did_you_mean(str(item["input"]), expected) or "expected one of: " + ", ".join(expected)
            yield Diagnostic(locator.at(path), "LLM104", message, hint)
        elif error_type == "value_error":
            message = str(item["msg"]).removeprefix("Value error, ")
            yield Diagnostic(locator.at(path), "LLM105", f"`{field_name}`: {message}")
        else:
            message, hint = _constraint_message(field_name, item)
            yield Diagnostic(locator.at(path), "LLM106", message, hint)


# --- envelope and secrets --------------------------------------------------------------------------

def _envelope_diagnostics(document: SourceDocument) -> list[Diagnostic]:
    data = document.data
    problems: list[Diagnostic] = []

    def report(path: YamlPath, code: str, message: str, hint: str = "", at_key: bool = False) -> None:
        problems.append(Diagnostic(document.position(path, at_key), code, message, hint))

    if not isinstance(data, dict):
        report((), "LLM110", f"a spec document must be a mapping, got {_describe(data)}",
               "start with `apiVersion:`, `kind:`, `metadata:` and `spec:`")
        return problems
    for key in data:
        if key not in ENVELOPE_KEYS:
            report((key,), "LLM101", f"unknown top-level field `{key}`", did_you_mean(key, ENVELOPE_KEYS), True)
    if "apiVersion" not in data:
        report((), "LLM102", "missing `apiVersion`", f"add `apiVersion: {API_VERSION}` at the top")
    elif data["apiVersion"] != API_VERSION:
        got = data["apiVersion"]
        report(("apiVersion",), "LLM111", f"apiVersion must be `{API_VERSION}`, got {_describe(got)}",
               f"write `apiVersion: {API_VERSION}`")
    kind = data.get("kind")
    if "kind" not in data:
        report((), "LLM102", "missing `kind`", "add `kind:` with one of: " + ", ".join(SPEC_MODELS))
    elif not isinstance(kind, str) or kind not in SPEC_MODELS:  # `kind: []` is unhashable
        known = "expected one of: " + ", ".join(SPEC_MODELS)
        if isinstance(kind, str):
            hint = did_you_mean(kind, SPEC_MODELS) or known
            report(("kind",), "LLM112", f"unknown kind `{_shown(kind)}`", hint)
        else:
            report(("kind",), "LLM112", f"`kind` must be a string, got {_describe(kind)}", known)
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        report(("metadata",), "LLM102", "missing `metadata` mapping with a `name`", "add `metadata: {name: ...}`")
    else:
        for key in metadata:
            if key not in METADATA_KEYS:
                report(("metadata", key), "LLM101", f"unknown field `{key}` in metadata",
                       did_you_mean(key, METADATA_KEYS), True)
        name = metadata.get("name")
        if "name" not in metadata:
            report(("metadata",), "LLM102", "missing `metadata.name`", "add `name: my-spec` under metadata")
        elif not isinstance(name, str):
            report(("metadata", "name"), "LLM103", f"`metadata.name` must be a string, got {_describe(name)}",
                   "use a DNS-1123 label such as `support-llm`")
        else:
            try:
                _dns_label(name)
            except ValueError as error:
                report(("metadata", "name"), "LLM113", str(error))
        for mapping_key, what in (("labels", "label"), ("annotations", "annotation")):
            mapping = metadata.get(mapping_key, {})
            if not isinstance(mapping, dict):
                report(("metadata", mapping_key), "LLM103", f"`{mapping_key}` must be a mapping")
                continue
            for key, value in mapping.items():
                if not LABEL_KEY.fullmatch(key):
                    report(("metadata", mapping_key, key), "LLM113", f"`{key}` is not a valid {what} key", at_key=True)
                if not isinstance(value, str):
                    report(("metadata", mapping_key, key), "LLM113", f"{what} `{key}` must be a string",
                           'quote it, e.g. `"true"`')
                elif mapping_key == "labels" and not LABEL_VALUE.fullmatch(value):
                    report(("metadata", mapping_key, key), "LLM113",
                           f"`{value}` is not a valid label value (at most 63 of [A-Za-z0-9-_.])")
    if "spec" not in data or data["spec"] is None:
        report(("spec",), "LLM102", "missing `spec` mapping", "add `spec:` with the kind's fields")
    elif not isinstance(data["spec"], dict):
        report(("spec",), "LLM103", f"`spec` must be a mapping, got {_describe(data['spec'])}",
               "write the kind's fields as `key: value` lines under `spec:`")
    environments = data.get("environments", {})
    if not isinstance(environments, dict):
        report(("environments",), "LLM103", "`environments` must map environment names to spec overrides",
               "e.g. `environments: {prod: {tuning: {epochs: 3}}}`")
        return problems
    for environment, override in environments.items():
        if not isinstance(override, dict):
            message = f"the `{environment}` override must be a mapping of spec fields, got {_describe(override)}"
            report(("environments", environment), "LLM103", message,
                   "e.g. `prod: {tuning: {epochs: 3}}`; delete the entry if it overrides nothing", at_key=True)
    return problems


def _secret_fields(model: type[Any]) -> list[tuple[tuple[str, ...], bool]]:
    """Every field of a spec model (and the models inside it) that refers to a Kubernetes Secret: its path of
    YAML keys, and whether it is a :class:`.specs.common.SecretKeyRef` (else a field naming a Secret)."""
    import typing

    from pydantic import BaseModel

    from .annotations import unwrap
    from .specs.common import SecretKeyRef

    found: list[tuple[tuple[str, ...], bool]] = []
    pending: list[tuple[tuple[str, ...], type[BaseModel]]] = [((), model)]
    seen: set[type[BaseModel]] = set()
    while pending:
        prefix, current = pending.pop(0)
        if current in seen:
            continue
        seen.add(current)
        for name, info in current.model_fields.items():
            alias = info.alias or name
            stack = unwrap(info.annotation)
            if SecretKeyRef in stack:
                found.append(((*prefix, alias), True))
                continue
            if alias.endswith("Secret"):
                found.append(((*prefix, alias), False))
            while stack:
                candidate = stack.pop()
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    pending.append(((*prefix, alias), candidate))
                else:
                    stack.extend(inner for argument in typing.get_args(candidate) for inner in unwrap(argument))
    return found


def secret_reference_hint(kind: object, path: tuple[object, ...]) -> str | None:
    """Where a credential found at ``path`` of a ``kind`` document belongs, as a hint: the spec's field that
    refers to a Kubernetes Secret sharing the longest part of ``path`` (the shallowest on a tie); None when
    the kind has no such field, when ``path`` is not under ``spec`` (metadata cannot refer to a Secret), and
    when it lies inside an object no such field shares (the Project's `repo.url` is no place for its
    `alerting.webhookToken`)."""
    from .specs import SPEC_MODELS

    model = SPEC_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None or path[:1] != ("spec",):
        return None
    keys = tuple(str(element) for element in path[1:] if not isinstance(element, int)) if path[:1] == ("spec",) \
        else ()

    def shared(field_path: tuple[str, ...]) -> int:  # how many leading keys ``field_path`` and ``keys`` share
        pairs = zip(field_path, keys, strict=False)
        return next((index for index, (mine, theirs) in enumerate(pairs) if mine != theirs),
                    min(len(field_path), len(keys)))

    fields = _secret_fields(model)
    if not fields:
        return None
    field_path, is_key_ref = min(fields, key=lambda item: (-shared(item[0]), len(item[0]), item[0]))
    if shared(field_path) == 0 and len(keys) > 1:
        return None
    where = ".".join(field_path)
    reference = (f"`{where}: {{name: my-secret, key: ...}}` (a key of a Kubernetes Secret)" if is_key_ref
                 else f"`{where}: my-secret` (the name of a Kubernetes Secret)")
    return f"move it into a Kubernetes Secret and reference it with {reference}"


def _credential_position(document: SourceDocument, path: YamlPath, value: str) -> Position:
    """Where a credential in ``value`` is written: in multi-line text, the first line that holds one."""
    if "\n" in value:
        for number, line in enumerate(value.split("\n"), start=1):
            if credentials.credential_types(line):
                return document.position_in_text(path, number)
    return document.position(path)


def secret_diagnostics(document: SourceDocument) -> Iterator[Diagnostic]:
    """Plaintext secrets: a secret-named key with a string value, a value in a credential format, a URL with a
    password or a secret query parameter, a Tool schema that asks the model for a credential."""
    data = document.data
    for path, value in iter_paths(data):
        if not path:
            continue
        key = path[-1]
        if isinstance(key, str) and credentials.credential_types(key):  # a credential written as a mapping key
            what = " and ".join(credentials.credential_types(key))
            yield Diagnostic(document.position(path, at_key=True), "LLM402",
                             f"this key holds a credential ({what}, found by detect-secrets)",
                             "never put secrets in specs, not even as names: reference a Kubernetes Secret instead")
        if isinstance(value, str) and isinstance(key, str) and value and credentials.is_secret_name(key):
            yield Diagnostic(
                document.position(path), "LLM401", f"`{key}` holds a plaintext secret",
                secret_reference_hint(data.get("kind") if isinstance(data, dict) else None, path)
                or "never put secrets in specs: reference a Kubernetes Secret instead",
            )
            continue
        if not isinstance(value, str):
            continue
        found = credentials.credential_types(value)
        if found:
            what = " and ".join(found)
            reference = secret_reference_hint(data.get("kind") if isinstance(data, dict) else None, path)
            hint = ("remove the credentials from the URL" + (f"; {reference}" if reference else "")
                    if found == ["Basic Auth Credentials"] else
                    reference or "never put secrets in specs: reference a Kubernetes Secret instead")
            yield Diagnostic(_credential_position(document, path, value), "LLM402",
                             f"this value holds a credential ({what}, found by detect-secrets)", hint)
            continue
        parameters = credentials.secret_query_parameters(value)
        if parameters:
            names = ", ".join(f"`{name}`" for name in parameters)
            yield Diagnostic(document.position(path), "LLM402",
                             f"this URL passes a secret in its query string ({names})",
                             "drop the parameter and give the credential as a Secret reference")
    if isinstance(data, dict) and data.get("kind") == "Tool" and isinstance(data.get("spec"), dict):
        for field_name in ("parameters", "output"):
            for schema_path, name in credentials.schema_secret_properties(data["spec"].get(field_name)):
                yield Diagnostic(
                    document.position(("spec", field_name, *schema_path), at_key=True), "LLM403",
                    f"tool {'parameter' if field_name == 'parameters' else 'output'} `{name}` carries a credential "
                    "through the model", "let the app authenticate to the tool with `auth.secretRef` instead",
                )


# --- documents → spec objects ----------------------------------------------------------------------

def _validate_spec(
    kind: str, data: dict[str, Any], locator: Locator
) -> tuple[BaseModel | None, list[Diagnostic]]:
    model = SPEC_MODELS[kind]
    try:
        spec = model.model_validate(data)
    except ValidationError as error:
        return None, list(pydantic_diagnostics(error, model, data, locator, kind))
    if locator.document.refused:  # incomplete data: semantic checks would only echo the loader's findings
        return spec, []
    return spec, [
        Diagnostic(locator.at(finding.path, finding.at_key, finding.text_line), finding.code, finding.message,
                   finding.hint)
        for finding in checks.check_spec(kind, spec, data)
    ]


def _invalid(document: SourceDocument) -> InvalidSpec | None:
    """The kind and name of a document that failed validation, where both can be read."""
    data = document.data
    metadata = data.get("metadata") if isinstance(data, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    kind = data.get("kind") if isinstance(data, dict) else None
    if not isinstance(kind, str) or kind not in SPEC_MODELS or not isinstance(name, str):
        return None
    try:
        _dns_label(name)
    except ValueError:
        return None
    return InvalidSpec(kind, name, document)


def validate_document(document: SourceDocument) -> tuple[SpecObject | InvalidSpec | None, list[Diagnostic]]:
    """The spec object of a valid document; for an invalid one its problems and, where readable, its name."""
    problems = _envelope_diagnostics(document)
    problems.extend(secret_diagnostics(document))
    if problems:
        return _invalid(document), problems
    data = document.data
    kind, metadata, raw_spec = data["kind"], data["metadata"], data["spec"]
    spec, spec_problems = _validate_spec(kind, raw_spec, Locator(document))
    problems.extend(spec_problems)
    variants: dict[str, BaseModel] = {}
    raw_variants: dict[str, dict[str, Any]] = {}
    merged_items: dict[str, dict[YamlPath, tuple[YamlPath | None, YamlPath | None]]] = {}
    for environment, override in sorted(data.get("environments", {}).items()):
        merged = merge_override(raw_spec, override, SPEC_MODELS[kind])
        for path, message, hint in merged.problems:
            problems.append(Diagnostic(document.position(("environments", environment, *path), at_key=True),
                                       "LLM120", message, hint))
        locator = Locator(document, environment, merged.items)
        variant, variant_problems = _validate_spec(kind, merged.data, locator)
        override_start = document.position(("environments", environment), at_key=True)
        for problem in variant_problems:
            # Found in this environment only, but shown where the base spec writes it: say which environment.
            if problem not in spec_problems and (problem.position.file, problem.position.line) < (
                    override_start.file, override_start.line):
                problem = dataclasses.replace(problem, message=f"{problem.message} (in environment `{environment}`, "
                                                               "after its override)")
            problems.append(problem)
        if variant is not None:
            variants[environment] = variant
            raw_variants[environment] = merged.data
            merged_items[environment] = merged.items
    if spec is None or problems or document.refused:
        return _invalid(document), problems
    spec_object = SpecObject(
        kind=kind,
        name=metadata["name"],
        document=document,
        labels=dict(metadata.get("labels", {})),
        annotations=dict(metadata.get("annotations", {})),
        spec=spec,
        raw_spec=raw_spec,
        variants=variants,
        raw_variants=raw_variants,
        merged_items=merged_items,
    )
    return spec_object, []


def validate_documents(
    documents: Iterable[SourceDocument],
) -> tuple[list[SpecObject | InvalidSpec], list[Diagnostic]]:
    """Every document as a spec object, or as the name of an invalid one (so that resolve does not report a
    spec that is there but broken as missing), plus every problem found."""
    objects: list[SpecObject | InvalidSpec] = []
    problems: list[Diagnostic] = []
    for document in documents:
        spec_object, document_problems = validate_document(document)
        problems.extend(document_problems)
        if spec_object is not None:
            objects.append(spec_object)
    return objects, problems
