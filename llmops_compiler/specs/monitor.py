"""Monitor: SLOs, drift checks and quality minimums of one model, each with the action its alert takes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .. import conventions
from .common import Action, Cron, DnsLabel, Duration, Fraction, Identifier, SecretKeyRef, StrictModel, Url


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
    severity: Literal["page", "ticket"] = "ticket"


class QualityCheck(StrictModel):
    metric: Identifier
    minimum: float
    for_: Duration = Field(default="30m", alias="for")
    action: Action = "notify"
    severity: Literal["page", "ticket"] = "ticket"


class Notification(StrictModel):
    """The Alertmanager receiver that `notify` alerts go to (every other alert of the monitor is copied to it).

    Without ``webhookUrlSecret`` the receiver has no integration of its own: the alerts still reach the
    cluster-wide Alertmanager routes, which prometheus-operator always continues to after a namespace's route.
    """

    receiver: DnsLabel = conventions.NOTIFY_RECEIVER
    webhook_url_secret: SecretKeyRef | None = None


class MonitorSpec(StrictModel):
    model: DnsLabel
    logs: Url | None = None
    features: list[Feature] = []
    slos: list[SLO] = []
    drift: list[DriftCheck] = []
    quality: list[QualityCheck] = []
    runbook_url: Url | None = None
    dashboard_url: Url | None = None
    notification: Notification = Notification()

    def actions(self) -> set[str]:
        """Every action the monitor's alerts ask for."""
        return ({slo.action for slo in self.slos} | {check.action for check in self.drift}
                | {check.action for check in self.quality})

    def triggered_actions(self) -> list[str]:
        """The actions that start a workflow (``notify`` only notifies), in a stable order."""
        return [action for action in ("retrain", "rollback") if action in self.actions()]
