"""Monitor: SLOs, drift checks and quality minimums of one model, each with the action its alert takes."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .. import conventions
from .common import (
    Action,
    Cron,
    DnsLabel,
    Duration,
    DurationOrZero,
    Fraction,
    Identifier,
    Line,
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
    """A scheduled comparison of a feature's production distribution with a reference: a fixed dataset, a
    Dataset's evaluation split (training-serving skew), or the training data of the version the stable track
    serves (so that once a retrained model is promoted, the drift it was trained on stops firing)."""

    merge_key: ClassVar[str] = "name"

    name: DnsLabel
    """Check name (label `check`); it identifies the pushed score, so renaming a check starts a new series."""
    feature: Identifier
    """The feature compared (one of `features`)."""
    method: Literal["psi", "ks", "js"] = "psi"
    """Population stability index, Kolmogorov-Smirnov statistic, or Jensen-Shannon distance."""
    reference: Url | None = None
    """Reference data (JSONL) the production logs are compared with."""
    reference_dataset: DnsLabel | None = None
    """A Dataset whose latest evaluation split is the reference: training-serving skew."""
    follow_stable: bool = False
    """The reference is the training data of the version the Model's stable alias names (recorded by
    `register`): it follows promotions."""
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


QUALITY_METRICS = conventions.QUALITY_METHODS  # built-in metric → its methods, the default first


class QualityCheck(StrictModel):
    """A minimum for a continuously evaluated quality score (in [0, 1], higher is better)."""

    merge_key: ClassVar[str] = "metric"

    metric: Identifier
    """The score (label `metric`): `groundedness`, `relevance`, `similarity`, `safety` (no prompt injection),
    `privacy` (no PII in answers), `feedback`, or any other criterion an LLM judge grades."""
    method: Literal["embedding", "nli", "judge", "pattern", "classifier", "feedback"] | None = None
    """How it is measured (default: the metric's own; `judge` for other criteria)."""
    criterion: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    """What the judge grades, in words (for judged criteria)."""
    minimum: float = Field(gt=0, le=1)
    """The alert fires while the score is below this (scores lie in [0, 1]: 0 would never fire)."""
    for_: DurationOrZero = Field(default="30m", alias="for")
    """How long the score must stay below the minimum before the alert fires."""
    action: Action = "notify"
    """What the alert does."""
    severity: Literal["page", "ticket"] = "ticket"
    """Severity label of the alert."""


class Judge(StrictModel):
    """An OpenAI-compatible LLM that grades answers, with bounded concurrency and cost."""

    url: Url
    """API base URL, e.g. `https://judge.llm.svc/v1`."""
    model: Line
    """Model name sent to the judge."""
    token_secret: SecretKeyRef | None = None
    """Secret holding the bearer token."""
    max_concurrency: int = Field(default=4, ge=1, le=64)
    """Requests in flight."""
    max_requests: int = Field(default=1000, ge=1, le=100_000)
    """Requests per run, retries included (the cost bound)."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Tokens per run, from the replies' usage."""


class EvaluationFields(StrictModel):
    """Where a production log record keeps what the evaluation reads (dotted paths)."""

    timestamp: FieldPath = "timestamp"
    """When the request was served (ISO 8601 or epoch seconds)."""
    request: FieldPath = "prompt"
    """The user's request."""
    response: FieldPath = "response"
    """The model's answer."""
    context: FieldPath = "context"
    """The retrieved context."""
    reference: FieldPath = "reference"
    """A reference answer, when the record has one."""
    feedback: list[FieldPath] = []
    """User feedback fields (a rating, thumbs)."""


class ContinuousEvaluation(StrictModel):
    """How quality is measured in production: a CronWorkflow scores a window of the logs."""

    schedule: Cron = "*/30 * * * *"
    """When the evaluation runs (UTC)."""
    window: Duration
    """How far back each run reads the logs."""
    sample_size: int = Field(default=500, ge=1, le=100_000)
    """Records scored per run (a seeded uniform sample of the window)."""
    fields: EvaluationFields = EvaluationFields()
    """Where records keep what is scored."""
    embedding_model: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\s\x00-\x1f\x7f]+$")] | None = None
    """sentence-transformers model for embedding metrics (default: that of the KnowledgeBase the model's chains
    retrieve from)."""
    nli_model: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\s\x00-\x1f\x7f]+$")] | None = None
    """NLI model (a path in the runtime image) for `method: nli`."""
    judge: Judge | None = None
    """The LLM judge for `method: judge` and judged criteria."""
    safety_classifier_url: Url | None = None
    """Text-classification endpoint for `safety` with `method: classifier`."""


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
    """Production request logs (JSONL), e.g. `s3://bucket/prefix/`, read by drift checks and the evaluation."""
    window: Duration | None = None
    """How far back drift checks read the logs (default: everything the folder holds)."""
    features: list[Feature] = []
    """Request features drift checks compare."""
    slos: list[SLO] = []
    """Service-level objectives."""
    drift: list[DriftCheck] = []
    """Drift checks."""
    quality: list[QualityCheck] = []
    """Quality minimums."""
    evaluation: ContinuousEvaluation | None = None
    """Continuous evaluation that produces the quality scores (needed by `quality`)."""
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

