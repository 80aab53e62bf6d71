"""JSON Schema of every spec kind, for editors (yaml-language-server modelines) and other tools."""

from __future__ import annotations

import json
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .conventions import API_VERSION
from .overrides import merge_key
from .specs import SPEC_MODELS
from .specs.docs import field_description

METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Identity of the spec.",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63,
                 "description": "Name, unique per kind; a DNS label, since it becomes resource and file names."},
        "labels": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "Kubernetes labels, for people and selectors."},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "Free-form notes."},
        "description": {"type": "string", "description": "What the spec is for."},
    },
}
ENVIRONMENTS_DESCRIPTION = (
    "Per-environment overrides merged onto spec: mappings merge key by key (null removes a key); lists of named "
    "items (SLOs, drift checks, features, steps, inputs, environments, node pools, analysis metrics by `name`; "
    "quality checks and gates by `metric`) merge item by item, and an item `{name: x, $patch: delete}` removes "
    "one; any other list replaces the base list."
)


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every pydantic model reachable from ``root``'s fields, by class name (the schema's ``$defs`` keys)."""
    found: dict[str, type[BaseModel]] = {}
    pending = [root]
    while pending:
        model = pending.pop()
        if model.__name__ in found:
            continue
        found[model.__name__] = model
        for info in model.model_fields.values():
            stack = [info.annotation]
            while stack:
                annotation = stack.pop()
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    pending.append(annotation)
                stack.extend(typing.get_args(annotation))
    return found


def _describe_fields(definitions: dict[str, Any]) -> None:
    """Give every field its description (:func:`.specs.docs.field_description`) and say on every list field
    what an environment override does to it (see :mod:`.overrides`)."""
    models: dict[str, type[BaseModel]] = {}
    for root in SPEC_MODELS.values():
        models.update(_models(root))
    for name, definition in definitions.items():
        model = models.get(name)
        if model is None:
            continue
        for field_name, info in model.model_fields.items():
            prop = definition.get("properties", {}).get(info.alias or field_name)
            if prop is None:
                continue
            description = field_description(model, field_name, info)
            if description:
                prop["description"] = description
            key, item = merge_key(info.annotation)
            if item is None:
                continue
            rule = (f"An environment override merges items by `{key}`; `$patch: delete` removes one." if key
                    else "An environment override replaces the whole list.")
            prop["description"] = f"{prop.get('description', '').rstrip()} {rule}".strip()


def json_schema() -> dict[str, Any]:
    """One schema for any spec document: the envelope, and ``spec`` checked by the model of its ``kind``."""
    _, definitions = models_json_schema(
        [(model, "validation") for model in SPEC_MODELS.values()], ref_template="#/$defs/{model}"
    )
    _describe_fields(definitions.get("$defs", {}))
    by_kind = []
    for kind, model in SPEC_MODELS.items():
        by_kind.append({
            "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
            "then": {
                "properties": {
                    "spec": {"$ref": f"#/$defs/{model.__name__}"},
                    "environments": {
                        "type": "object",
                        "description": ENVIRONMENTS_DESCRIPTION,
                        "additionalProperties": {"type": "object"},
                    },
                }
            },
        })
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://llmops.dev/schemas/v1alpha1/llmops.schema.json",
        "title": "llmops-compiler spec",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": API_VERSION, "description": "Version of the spec language."},
            "kind": {"enum": list(SPEC_MODELS), "description": "What the document describes."},
            "metadata": METADATA_SCHEMA,
            "spec": {"type": "object", "description": "The kind's fields (`llmops explain KIND`)."},
            "environments": {"type": "object", "description": ENVIRONMENTS_DESCRIPTION},
        },
        "allOf": by_kind,
        "$defs": definitions.get("$defs", {}),
    }


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
