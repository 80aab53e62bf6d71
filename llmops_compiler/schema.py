"""JSON Schema of every spec kind, for editors (yaml-language-server modelines) and other tools."""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import models_json_schema

from .conventions import API_VERSION
from .specs import SPEC_MODELS

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


def json_schema() -> dict[str, Any]:
    """One schema for any spec document: the envelope, and ``spec`` checked by the model of its ``kind``."""
    _, definitions = models_json_schema(
        [(model, "validation") for model in SPEC_MODELS.values()], ref_template="#/$defs/{model}"
    )
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
