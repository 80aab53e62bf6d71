"""``llmops explain KIND[.field...]``: the spec language's own documentation, from the models' docstrings
(the same text editors show on hover through ``llmops schema``), in the shape of ``kubectl explain``."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .annotations import unwrap
from .diagnostics import did_you_mean
from .specs import SPEC_MODELS
from .specs.docs import field_description

ENVELOPE = """apiVersion  llmops.dev/v1alpha1
kind        one of the kinds below
metadata    name (a DNS label, unique per kind), labels, annotations, description
spec        the kind's fields (`llmops explain KIND`)
environments
            per-environment overrides merged onto spec: mappings merge key by key (`null` removes a key);
            lists of named items (SLOs, drift checks, features, steps, inputs, environments, node pools, analysis
            metrics by `name`; quality checks and gates by `metric`) merge item by item, and an item
            `{name: x, $patch: delete}` removes one; any other list replaces the base list"""


class ExplainError(Exception):
    """An unknown kind or field; the message says which and suggests the closest."""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds directly, or as the items of a list or the values of a mapping."""
    for inner in unwrap(annotation):
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
        if typing.get_origin(inner) in (list, dict):
            found = _model_of(typing.get_args(inner)[-1])
            if found is not None:
                return found
    return None


def type_name(annotation: Any) -> str:
    """A short, human type: ``string``, ``integer``, ``[]SLO``, ``map[string]string``, ``one of a|b``."""
    names = []
    for inner in unwrap(annotation):
        origin = typing.get_origin(inner)
        if inner is type(None):
            continue
        if origin is typing.Literal:
            names.append(" | ".join(str(value) for value in typing.get_args(inner)))
        elif origin is list:
            names.append("[]" + type_name(typing.get_args(inner)[0]))
        elif origin is dict:
            key, value = typing.get_args(inner)
            names.append(f"map[{type_name(key)}]{type_name(value)}")
        elif isinstance(inner, type) and issubclass(inner, BaseModel):
            names.append(inner.__name__)
        else:
            names.append({str: "string", int: "integer", float: "number", bool: "boolean"}.get(inner, "object"))
    return " or ".join(names) or "null"


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.default
    if value is PydanticUndefined or value is None or isinstance(value, BaseModel) or value in ([], {}):
        return ""
    return f"default {value!r}" if not isinstance(value, str) else f"default `{value}`"


def _indented(text: str, width: int) -> list[str]:
    pad = " " * width
    return [pad + line.strip() if line.strip() else "" for line in text.strip().splitlines()]


def explain(target: str) -> str:
    """The documentation of a kind (``Model``) or of a field below it (``Model.tuning.lora``).

    Raises :class:`ExplainError` for an unknown kind or field."""
    if not target:
        return "SPEC DOCUMENT:\n" + ENVELOPE + "\n\nKINDS:\n" + "\n".join(
            f"  {kind:<15}{(model.__doc__ or '').strip().splitlines()[0]}" for kind, model in SPEC_MODELS.items())
    kind, *path = target.split(".")
    if kind not in SPEC_MODELS:
        raise ExplainError(f"unknown kind `{kind}`; " + (did_you_mean(kind, SPEC_MODELS) or
                                                         "expected one of: " + ", ".join(SPEC_MODELS)))
    model: type[BaseModel] = SPEC_MODELS[kind]
    field_info: FieldInfo | None = None
    description: str | None = None
    walked: list[str] = []
    for element in path:
        fields = {info.alias or name: info for name, info in model.model_fields.items()}
        names = {info.alias or name: name for name, info in model.model_fields.items()}
        if element not in fields:
            where = ".".join([kind, *walked])
            raise ExplainError(f"`{where}` has no field `{element}`; " + (
                did_you_mean(element, fields) or "its fields are: " + ", ".join(fields)))
        field_info = fields[element]
        description = field_description(model, names[element], field_info)
        walked.append(element)
        nested = _model_of(field_info.annotation)
        if nested is None and element != path[-1]:
            raise ExplainError(f"`{'.'.join([kind, *walked])}` is a {type_name(field_info.annotation)} "
                               "and has no fields")
        if nested is not None:
            model = nested
    lines = [f"KIND:     {kind}"]
    if field_info is not None:
        lines.append(f"FIELD:    {'.'.join(walked)} <{type_name(field_info.annotation)}>")
        lines += ["", "DESCRIPTION:", *_indented(description or "", 2)]
        if _model_of(field_info.annotation) is None:
            default = _default(field_info)
            if default:
                lines += ["", f"  ({default})"]
            return "\n".join(lines)
        if (model.__doc__ or "").strip() != (description or "").strip():
            lines += _indented(model.__doc__ or "", 2)
    else:
        lines += ["", "DESCRIPTION:", *_indented(model.__doc__ or "", 2)]
    lines += ["", "FIELDS:"]
    for name, info in model.model_fields.items():
        default = _default(info)
        lines.append(f"  {info.alias or name} <{type_name(info.annotation)}>" + (f" ({default})" if default else ""))
        lines += _indented(field_description(model, name, info) or "", 4)
    return "\n".join(lines)
