"""Prompt: a versioned Jinja2 template with declared inputs and few-shot examples."""

from __future__ import annotations

from pydantic import Field

from .common import DnsLabel, Identifier, StrictModel


class PromptInput(StrictModel):
    name: Identifier
    description: str = ""
    required: bool = True


class Example(StrictModel):
    inputs: dict[str, str]
    output: str


class PromptSpec(StrictModel):
    model: DnsLabel
    version: str = Field(pattern=r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
    template: str = Field(min_length=1, max_length=64 * 1024)
    system: str | None = None
    inputs: list[PromptInput] = []
    examples: list[Example] = []
