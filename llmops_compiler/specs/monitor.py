"""Monitor: SLOs, drift checks and quality minimums of one model, each with the action its alert takes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Action, Cron, DnsLabel, Duration, Fraction, Identifier, StrictModel, Url


class Feature(StrictModel):
    name: Identifier
    type: Literal["numeric", "length", "categorical", "embedding"]
    field: str = Field(min_length=1)


class SLO(StrictModel):
    name: DnsLabel
    type: Literal["errorRatio", "latency", "availability"]
    objective: Fraction
    window: Literal["28d", "30d"] = "30d"
    latency_threshold: float | None = Field(default=None, gt=0)
    page: bool = True
    ticket: bool = True
    min_request_rate: float | None = Field(default=None, gt=0)
    action: Action = "notify"


class DriftCheck(StrictModel):
    name: DnsLabel
    feature: Identifier
    method: Literal["psi", "ks", "js"] = "psi"
    reference: Url
    threshold: float = Field(gt=0)
    schedule: Cron = "*/30 * * * *"
    for_: Duration = Field(default="15m", alias="for")
    action: Action = "retrain"


class QualityCheck(StrictModel):
    metric: Identifier
    minimum: float
    for_: Duration = Field(default="30m", alias="for")
    action: Action = "notify"


class MonitorSpec(StrictModel):
    model: DnsLabel
    logs: Url | None = None
    features: list[Feature] = []
    slos: list[SLO] = []
    drift: list[DriftCheck] = []
    quality: list[QualityCheck] = []
    runbook_url: Url | None = None
    dashboard_url: Url | None = None
