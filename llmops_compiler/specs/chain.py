"""Chain: a DAG of prompt, retrieve and tool steps whose inputs are wired to earlier outputs."""

from __future__ import annotations

from pydantic import Field

from .common import DnsLabel, Identifier, StrictModel


class ChainStep(StrictModel):
    """Exactly one of ``prompt``, ``retrieve`` or ``tool``; ``inputs`` maps each variable to
    ``input.<name>`` or ``steps.<step>.output``."""

    name: Identifier
    prompt: DnsLabel | None = None
    retrieve: DnsLabel | None = None
    tool: DnsLabel | None = None
    top_k: int | None = Field(default=None, gt=0, le=1000)
    inputs: dict[str, str] = {}


class ChainSpec(StrictModel):
    inputs: list[Identifier] = Field(min_length=1)
    steps: list[ChainStep] = Field(min_length=1)
    output: str
