"""Tool: an entry of the tool registry the serving app offers to models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .common import Duration, SecretKeyRef, StrictModel, Url


class ToolAuth(StrictModel):
    secret_ref: SecretKeyRef
    header: str = "Authorization"
    scheme: str = "Bearer"


class ToolSpec(StrictModel):
    description: str = Field(min_length=1)
    kind: Literal["function", "rest"]
    endpoint: Url | None = None
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    parameters: dict[str, Any]
    output: dict[str, Any] | None = None
    auth: ToolAuth | None = None
    timeout: Duration = "30s"
