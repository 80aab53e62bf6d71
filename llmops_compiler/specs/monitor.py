"""Monitor: SLOs, drift checks and quality minimums of one model, each with the action its alert takes."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .. import conventions
from .common import (
    Action,
    Cron,
    DnsLabel,
    DurationOrZero,
    Fraction,
    Identifier,
    SecretKeyRef,
    StrictModel,
    Url,
)

FIELD_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
FieldPath = Annotated[str, Field(pattern=FIELD_PATH, max_length=256)]


class Feature(StrictModel):
    """A property of requests whose distribution the drift checks compare."""

    merge_key: ClassVar[str] = "name"

    name: Identifier
    """Feature name (label `feature` of the drift score)."""
    type: Literal["numeric", "length", "categorical", "embedding"]
    """`numeric` value, `length` of a text, `categorical` text, or `embedding` vector."""
    field: FieldPath
    """Field of a log record that holds it; dots walk nested objects (`metadata.customer_tier`)."""


class SLO(StrictModel):
    """A service-level objective of the serving model, alerted on with multiwindow multi-burn-rate rules."""

    merge_key: ClassVar[str] = "name"

    name: DnsLabel
    """SLO name (label `slo`)."""
    type: Literal["errorRatio", "latency", "availability"]
    """What a bad request is: not 2xx (`errorRatio`), 5xx (`availability`), slower than `latencyThreshold`."""
    objective: Fraction
    """Share of good requests over the window, e.g. `0.999`."""
    window: Literal["28d", "30d"] = "30d"
    """SLO window the error budget is counted over."""
    latency_threshold: float | None = Field(default=None, gt=0)
    """Seconds; a request slower than this is bad. Must be a bucket bound of the Project's `latencyBuckets`."""
    page: bool = True
    """Page on fast burns (14.4× over 1h and 6× over 6h, for a 30d window)."""
    ticket: bool = True
    """Open a ticket on slow burns (3× over 1d and 1× over 3d)."""
    min_request_rate: float | None = Field(default=None, gt=0)
    """Requests per second below which the SLO does not alert (too little traffic to judge)."""
    action: Action = "notify"
    """What the alert does: `retrain`, `rollback` or `notify`."""


class DriftCheck(StrictModel):
    """A scheduled comparison of a feature's production distribution with a reference."""

    merge_key: ClassVar[str] = "name"

    name: DnsLabel
    """Check name (label `check`); it identifies the pushed score, so renaming a check starts a new series."""
    feature: Identifier
    """The feature compared (one of `features`)."""
    method: Literal["psi", "ks", "js"] = "psi"
    """Population stability index, Kolmogorov-Smirnov statistic, or Jensen-Shannon distance."""
    reference: Url
    """Reference data (JSONL) the production logs are compared with."""
    threshold: float = Field(gt=0)
    """The alert fires while the score is above this."""
    schedule: Cron = "*/30 * * * *"
    """When the check runs (UTC)."""
    for_: DurationOrZero = Field(default="15m", alias="for")
    """How long the score must stay above the threshold before the alert fires."""
    action: Action = "retrain"
    """What the alert does."""
    severity: Literal["page", "ticket"] = "ticket"
    """Severity label of the alert."""


class QualityCheck(StrictModel):
    """A minimum for a continuously evaluated quality score."""

    merge_key: ClassVar[str] = "metric"

    metric: Identifier
    """The score (label `metric`), e.g. `groundedness`, `relevance`."""
    minimum: float
    """The alert fires while the score is below this."""
    for_: DurationOrZero = Field(default="30m", alias="for")
    """How long the score must stay below the minimum before the alert fires."""
    action: Action = "notify"
    """What the alert does."""
    severity: Literal["page", "ticket"] = "ticket"
    """Severity label of the alert."""


class Notification(StrictModel):
    """The Alertmanager receiver that `notify` alerts go to (every other alert of the monitor is copied to it).

    Without ``webhookUrlSecret`` the receiver has no integration of its own: the alerts still reach the
    cluster-wide Alertmanager routes, which prometheus-operator always continues to after a namespace's route.
    """

    receiver: DnsLabel = conventions.NOTIFY_RECEIVER
    """Receiver name."""
    webhook_url_secret: SecretKeyRef | None = None
    """Secret holding the URL of a webhook (chat, paging) the receiver posts to."""


class MonitorSpec(StrictModel):
    """How one model is watched: SLOs, drift and quality, and what each alert does."""

    model: DnsLabel
    """The Model watched."""
    logs: Url | None = None
    """Production request logs (JSONL), e.g. `s3://bucket/prefix/`, read by drift checks."""
    features: list[Feature] = []
    """Request features drift checks compare."""
    slos: list[SLO] = []
    """Service-level objectives."""
    drift: list[DriftCheck] = []
    """Drift checks."""
    quality: list[QualityCheck] = []
    """Quality minimums."""
    runbook_url: Url | None = None
    """Runbook linked from every alert."""
    dashboard_url: Url | None = None
    """Dashboard linked from every alert."""
    notification: Notification = Notification()
    """Where alerts for people go."""

    def actions(self) -> set[str]:
        """Every action the monitor's alerts ask for."""
        return ({slo.action for slo in self.slos} | {check.action for check in self.drift}
                | {check.action for check in self.quality})

    def triggered_actions(self) -> list[str]:
        """The actions that start a workflow (``notify`` only notifies), in a stable order."""
        return [action for action in ("retrain", "rollback") if action in self.actions()]

