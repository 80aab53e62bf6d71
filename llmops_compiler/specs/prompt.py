"""Prompt: a versioned Jinja2 template with declared inputs and few-shot examples."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

from .common import DnsLabel, Identifier, StrictModel

SEMANTIC_VERSION = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


def _semantic_version(value: str) -> str:
    if not SEMANTIC_VERSION.match(value):
        raise ValueError(f"`{value}` is not a semantic version such as `1.4.0` (major.minor.patch)")
    return value


SemanticVersion = Annotated[
    str, AfterValidator(_semantic_version), WithJsonSchema({"type": "string", "pattern": SEMANTIC_VERSION.pattern})
]


class PromptInput(StrictModel):
    name: Identifier
    description: str = ""
    required: bool = True


class Example(StrictModel):
    inputs: dict[str, str]
    output: str


class PromptSpec(StrictModel):
    model: DnsLabel
    version: SemanticVersion
    template: str = Field(min_length=1, max_length=64 * 1024)
    system: str | None = None
    inputs: list[PromptInput] = []
    examples: list[Example] = []
