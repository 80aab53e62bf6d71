"""Tool: an entry of the tool registry the serving app offers to models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .common import Duration, HeaderName, SecretKeyRef, StrictModel, Text, Url


class ToolAuth(StrictModel):
    """How the app authenticates to a `rest` tool: a header carrying a Secret's value."""

    secret_ref: SecretKeyRef
    """Secret holding the credential (never the value itself)."""
    header: HeaderName = "Authorization"
    """Header the credential is sent in."""
    scheme: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]*$", max_length=32)] = "Bearer"
    """Prefix before the credential in the header (`Bearer`; empty for none)."""


class ToolSpec(StrictModel):
    """A tool models may call, described by JSON Schemas."""

    description: Annotated[Text, Field(min_length=1, max_length=4096)]
    """What the tool does, as the model sees it."""
    kind: Literal["function", "rest"]
    """`function` (runs in the app) or `rest` (an HTTP endpoint)."""
    endpoint: Url | None = None
    """URL of a `rest` tool."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    """HTTP method of a `rest` tool."""
    parameters: dict[str, Any]
    """JSON Schema (`type: object`) of the arguments the model passes."""
    output: dict[str, Any] | None = None
    """JSON Schema of what the tool returns."""
    auth: ToolAuth | None = None
    """How the app authenticates to a `rest` tool."""
    timeout: Duration = "30s"
    """How long the app waits for the tool."""

