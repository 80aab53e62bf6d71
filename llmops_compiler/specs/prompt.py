"""Prompt: a versioned Jinja2 template with declared inputs and few-shot examples."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field, WithJsonSchema

from .common import DnsLabel, Identifier, Line, StrictModel, Text

SEMANTIC_VERSION = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


def _semantic_version(value: str) -> str:
    if not SEMANTIC_VERSION.fullmatch(value):
        raise ValueError(f"`{value}` is not a semantic version such as `1.4.0` (major.minor.patch)")
    return value


SemanticVersion = Annotated[
    str, AfterValidator(_semantic_version), WithJsonSchema({"type": "string", "pattern": SEMANTIC_VERSION.pattern})
]


class PromptInput(StrictModel):
    """A variable the template reads."""

    merge_key: ClassVar[str] = "name"

    name: Identifier
    """Variable name as the template writes it (`{{ question }}`)."""
    description: Line = ""
    """What the caller passes, for people and tool schemas."""
    required: bool = True
    """Whether every chain step that renders the prompt must set it."""


class Example(StrictModel):
    """A few-shot example: inputs and the output the model should give."""

    inputs: dict[Identifier, Text]
    """Values of declared inputs."""
    output: Text
    """The expected answer."""


class PromptSpec(StrictModel):
    """A prompt template, rendered in Jinja2's immutable sandbox."""

    model: DnsLabel
    """The Model this prompt is written for."""
    version: SemanticVersion
    """Semantic version of the prompt (`major.minor.patch`), registered in MLflow's prompt registry."""
    template: Annotated[Text, Field(min_length=1, max_length=64 * 1024)]
    """Jinja2 template of the user message; every variable it reads is a declared input."""
    system: Annotated[Text, Field(max_length=64 * 1024)] | None = None
    """Optional system message (a Jinja2 template too)."""
    inputs: list[PromptInput] = []
    """Declared inputs; each must be used by the template."""
    examples: list[Example] = []
    """Few-shot examples shipped with the prompt."""
