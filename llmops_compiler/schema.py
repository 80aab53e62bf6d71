"""JSON Schema of every spec kind, for editors (yaml-language-server modelines) and other tools."""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import models_json_schema

from .conventions import API_VERSION
from .specs import SPEC_MODELS

METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "description": {"type": "string"},
    },
}


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
                        "description": "Per-environment overrides, deep-merged onto spec.",
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
            "apiVersion": {"const": API_VERSION},
            "kind": {"enum": list(SPEC_MODELS)},
            "metadata": METADATA_SCHEMA,
            "spec": {"type": "object"},
            "environments": {"type": "object"},
        },
        "allOf": by_kind,
        "$defs": definitions.get("$defs", {}),
    }


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
