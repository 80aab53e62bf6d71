"""Chain: a DAG of prompt, retrieve and tool steps whose inputs are wired to earlier outputs."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from .common import DnsLabel, Identifier, Line, StrictModel


class ChainStep(StrictModel):
    """One step: exactly one of `prompt`, `retrieve` or `tool`."""

    merge_key: ClassVar[str] = "name"

    name: Identifier
    """Step name; other steps read its output as `steps.<name>.output`."""
    prompt: DnsLabel | None = None
    """Render this Prompt and call its model."""
    retrieve: DnsLabel | None = None
    """Query this KnowledgeBase's index."""
    tool: DnsLabel | None = None
    """Call this Tool."""
    top_k: int | None = Field(default=None, gt=0, le=1000)
    """How many chunks a `retrieve` step returns (default 4)."""
    inputs: dict[Identifier, Line] = {}
    """Variable → `input.<name>` (a chain input) or `steps.<step>.output`."""


class ChainSpec(StrictModel):
    """An application flow the serving app runs: prompts, retrieval and tool calls in dependency order."""

    inputs: Annotated[list[Identifier], Field(min_length=1)]
    """Names of the chain's inputs."""
    steps: Annotated[list[ChainStep], Field(min_length=1)]
    """The steps; they form a DAG through their inputs."""
    output: Line
    """The step output the chain returns: `steps.<step>.output`."""
