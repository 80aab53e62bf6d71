"""RolloutPolicy: how a candidate version takes traffic from the stable one, and where it stands now."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import DnsLabel, Duration, StrictModel


class RolloutStep(StrictModel):
    weight: int = Field(ge=0, le=100)
    pause: Duration | None = None


class HeaderMatch(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9-]+$")
    value: str


class AnalysisMetric(StrictModel):
    name: DnsLabel
    query: str = Field(min_length=1)
    max: float | None = None
    min: float | None = None


class Analysis(StrictModel):
    interval: Duration = "5m"
    failure_limit: int = Field(ge=0, default=1)
    metrics: list[AnalysisMetric] = Field(min_length=1)


class RolloutState(StrictModel):
    step: int = Field(ge=0, default=0)
    status: Literal["progressing", "paused", "promoted", "rolledBack"] = "progressing"


class RolloutPolicySpec(StrictModel):
    model: DnsLabel
    strategy: Literal["canary", "abTest", "shadow", "blueGreen"]
    steps: list[RolloutStep] = []
    header_match: HeaderMatch | None = None
    mirror_percent: int | None = Field(default=None, ge=0, le=100)
    analysis: Analysis | None = None
    state: RolloutState = RolloutState()
