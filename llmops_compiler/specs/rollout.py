"""RolloutPolicy (human intent: how a candidate takes traffic) and RolloutState (machine-written: where each
environment stands), kept apart so that people review policies and the promote step only ever edits state."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from .common import DnsLabel, Duration, HeaderName, StrictModel, Text

ROLLOUT_STATUSES = ("idle", "progressing", "paused", "promoted", "rolledBack")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def _timestamp(value: str) -> str:
    if not TIMESTAMP.fullmatch(value):
        raise ValueError(f"`{value}` is not a UTC time such as `2026-11-29T12:00:00Z`")
    return value


Timestamp = Annotated[str, AfterValidator(_timestamp), WithJsonSchema({"type": "string", "pattern": TIMESTAMP.pattern})]


MAX_MODEL_VERSION = 2**31 - 1
"""The largest registered-model version number: MLflow keeps it in an SQL `Integer` column
(`model_versions.version`, mlflow/store/model_registry/dbmodels/models.py), 32 bits in PostgreSQL and MySQL."""

class RolloutStep(StrictModel):
    """One step of a rollout: the candidate's share of traffic and how long it holds before the next."""

    weight: int = Field(ge=0, le=100, default=0)
    """Percent of requests routed to the candidate (`canary`; `blueGreen` takes 0 or 100)."""
    pause: Duration | None = None
    """Least time at this step, since the transition into it, before it may advance."""


class HeaderMatch(StrictModel):
    """Requests carrying this header value go to the candidate (`abTest`)."""

    name: HeaderName
    """Header name, e.g. `x-variant`."""
    value: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
    """Exact header value."""


class CookieMatch(StrictModel):
    """Requests carrying this cookie value go to the candidate (`abTest`)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=128)]
    """Cookie name."""
    value: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=256)]
    """Exact cookie value."""


class Match(StrictModel):
    """Which requests an `abTest` sends to the candidate: one header or one cookie."""

    header: HeaderMatch | None = None
    """Match on a header."""
    cookie: CookieMatch | None = None
    """Match on a cookie."""


class AnalysisMetric(StrictModel):
    """A PromQL query judged on every analysis run."""

    merge_key: ClassVar[str] = "name"

    name: DnsLabel
    """Metric name, shown in commit messages and the state's reason."""
    query: Annotated[Text, Field(min_length=1, max_length=8192)]
    """PromQL returning one number; `{{model}}`, `{{version}}`, `{{track}}`, `{{namespace}}` and `{{interval}}`
    are filled in for the candidate."""
    max: float | None = None
    """The candidate fails when the value is above this."""
    min: float | None = None
    """The candidate fails when the value is below this."""


class Analysis(StrictModel):
    """How the promote step judges the candidate on live metrics."""

    interval: Duration = "5m"
    """How often the analysis runs, and the range its queries look back over; whole minutes dividing an hour,
    or whole hours dividing a day."""
    max_error_ratio: float | None = Field(default=0.01, ge=0, le=1)
    """Built-in metric: the candidate's share of server errors (5xx, from the metric contract) at most this;
    client errors (4xx) and load shed (429) say nothing about the version."""
    max_latency_p95: float | None = Field(default=None, gt=0)
    """Built-in metric: the candidate's 95th-percentile latency in seconds at most this."""
    metrics: list[AnalysisMetric] = []
    """Further metrics to judge."""
    minimum_requests: int = Field(ge=1, default=100)
    """Candidate requests in the interval below which a run is inconclusive (never a pass)."""
    failure_limit: int = Field(ge=1, default=2)
    """Consecutive failed runs that roll the candidate back."""
    inconclusive_limit: int = Field(ge=1, default=6)
    """Consecutive inconclusive runs (too little traffic, Prometheus without data) that roll back."""


class Retries(StrictModel):
    """Istio retries of a request that failed."""

    attempts: int = Field(ge=0, le=10)
    """Retries per request."""
    per_try_timeout: Duration | None = None
    """Timeout of each try."""
    retry_on: Annotated[str, Field(pattern=r"^[a-z0-9-]+(,[a-z0-9-]+)*$")] = "5xx,reset,connect-failure"
    """Envoy retry conditions."""


class RolloutPolicySpec(StrictModel):
    """How a new version of a model takes over from the stable one, step by step, judged on live metrics."""

    model: DnsLabel
    """The Model rolled out (it needs `serving`)."""
    strategy: Literal["canary", "abTest", "shadow", "blueGreen"]
    """`canary` (weights), `abTest` (matched requests), `shadow` (mirrored copies) or `blueGreen` (all at once)."""
    steps: list[RolloutStep] = []
    """Steps the candidate walks; after the last one passes, it is promoted."""
    match: Match | None = None
    """Requests an `abTest` sends to the candidate."""
    mirror_percent: float | None = Field(default=None, gt=0, le=100)
    """Percent of requests a `shadow` rollout mirrors to the candidate."""
    analysis: Analysis = Analysis()
    """How each step is judged."""
    timeout: Duration | None = None
    """Istio request timeout for the model's route."""
    retries: Retries | None = None
    """Istio retries for the model's route."""


class Transition(StrictModel):
    """The last change of an environment's rollout state."""

    reason: Annotated[Text, Field(max_length=4096)]
    """Why, with the metric values that decided it."""
    time: Timestamp
    """When, in UTC."""


class EnvironmentState(StrictModel):
    """Where one environment's rollout stands (machine-written by `promote` and `llmops rollout`)."""

    stable: int | None = Field(default=None, ge=1, le=MAX_MODEL_VERSION)
    """Registered-model version serving all traffic."""
    candidate: int | None = Field(default=None, ge=1, le=MAX_MODEL_VERSION)
    """Version being rolled out, while one is in flight."""
    step: int = Field(ge=0, default=0)
    """Index of the current step of the policy's `steps`."""
    status: Literal["idle", "progressing", "paused", "promoted", "rolledBack"] = "idle"
    """`progressing` and `paused` have a candidate; `idle`, `promoted` and `rolledBack` do not."""
    failed_analyses: int = Field(ge=0, default=0)
    """Consecutive failed analysis runs at this step."""
    inconclusive_analyses: int = Field(ge=0, default=0)
    """Consecutive inconclusive analysis runs."""
    last_transition: Transition | None = None
    """The last change and why."""


class RolloutStateSpec(StrictModel):
    """The machine-written state of the RolloutPolicy of the same name, per environment."""

    environments: dict[DnsLabel, EnvironmentState] = {}
    """Environment name → its state (an environment without an entry is idle with nothing deployed)."""


__all__ = ["ROLLOUT_STATUSES", "RolloutPolicySpec", "RolloutStateSpec"]
