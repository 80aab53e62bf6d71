"""PrometheusRules per Monitor and environment: SLO recording rules, multiwindow multi-burn-rate alerts,
drift alerts and quality alerts, following the metric contract (metric names from the Project).

What counts as a bad request, per SLO type (the share of bad requests is the SLO's error ratio):

``availability``  answered with a 5xx code: the service failed to serve a request it accepted.
``errorRatio``    answered with anything but 2xx: server errors, plus refusals and client errors such as 429
                  (throttled) or 400 (prompt too long), which users experience as failures too.
``latency``       slower than ``latencyThreshold``: from the duration histogram,
                  ``(bucket{le="+Inf"} - bucket{le="<bound>"}) / bucket{le="+Inf"}``.

Selectors: serving metrics are selected by ``model`` and the ``namespace`` the model's pods run in (the label
prometheus-operator puts on every scraped target), so environments sharing one Prometheus stay apart; the
drift and quality gauges come through the Pushgateway, where the steps group them by ``environment``.

Every alert carries ``model``, ``environment``, ``severity``, ``llmops_action`` and ``namespace`` (the
AlertmanagerConfig of the namespace only sees alerts with its namespace label); burn alerts add ``slo`` and
``tier``, on which Alertmanager inhibits a ticket while the page of the same SLO fires; drift alerts keep the
series' ``feature`` and ``method``. Burn factors and budgets are exact (see :mod:`..burn_rates`).
``minRequestRate`` gates each burn condition on the request rate averaged over its long window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, cast

from .. import conventions, cron
from ..burn_rates import TIERS, WINDOWS, BurnWindow, burn_factor, decimal_text, error_budget, exact, lowest_factor
from ..resolve import EnvironmentView, ResolvedSpec
from ..specs import ModelSpec, MonitorSpec
from ..specs.monitor import SLO, DriftCheck, QualityCheck
from ..specs.project import MetricNames
from .base import Body, Resource, metadata, resource

# How long a drift or evaluation run may take (its CronWorkflow's activeDeadlineSeconds): a push can come that
# much later.
DRIFT_DEADLINE_SECONDS = 3600
SCORE_DEADLINE_SECONDS = 2 * 3600

API_VERSION = "monitoring.coreos.com/v1"
PERCENT_VALUE = "{{ $value | humanizePercentage }}"
SCORE_VALUE = '{{ printf "%.3f" $value }}'
BAD_REQUESTS = {
    "availability": "share of requests answered with a 5xx code",
    "errorRatio": "share of requests not answered with a 2xx code",
    "latency": "share of requests slower than {bound}s",
}


@dataclass(frozen=True)
class RuleContext:
    """What the rules of one Monitor in one environment share: names, selectors, labels and links."""

    monitor: str
    model: str
    environment: str
    namespace: str
    serving_namespace: str
    metrics: MetricNames
    project: str = ""
    runbook_url: str | None = None
    dashboard_url: str | None = None

    @property
    def owner_labels(self) -> dict[str, str]:
        """Who a recorded series or an alert belongs to: the project, namespace and monitor."""
        return {
            conventions.LABEL_PROJECT: self.project,
            conventions.LABEL_NAMESPACE: self.namespace,
            conventions.LABEL_MONITOR: self.monitor,
        }

    @property
    def alert_labels(self) -> dict[str, str]:
        return {
            conventions.LABEL_MODEL: self.model,
            conventions.LABEL_ENVIRONMENT: self.environment,
            **self.owner_labels,
        }

    def pushed_identity(self, check: str | None = None) -> dict[str, str]:
        """The grouping key (besides ``job``) a runtime step pushes its scores with, and rules select on."""
        labels = {
            conventions.LABEL_PROJECT: self.project,
            conventions.LABEL_PUSHED_NAMESPACE: self.namespace,
            conventions.LABEL_MONITOR: self.monitor,
            conventions.LABEL_ENVIRONMENT: self.environment,
        }
        if check is not None:
            labels[conventions.LABEL_CHECK] = check
        return labels

    def links(self) -> dict[str, str]:
        links = {}
        if self.runbook_url:
            links[conventions.ALERT_ANNOTATION_RUNBOOK] = self.runbook_url
        if self.dashboard_url:
            links[conventions.ALERT_ANNOTATION_DASHBOARD] = self.dashboard_url
        return links


def rule_context(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec]) -> RuleContext:
    spec = monitor.spec
    model = cast(ResolvedSpec[ModelSpec] | None, view.get("Model", spec.model))
    serving = model.spec.serving if model is not None else None
    serving_namespace = (serving.service.namespace if serving else None) or view.namespace
    runbook = spec.runbook_url
    base = view.project.spec.defaults.runbook_base_url
    if runbook is None and base is not None:
        runbook = f"{base.rstrip('/')}/{monitor.name}"
    return RuleContext(
        monitor=monitor.name,
        model=spec.model,
        environment=view.name,
        namespace=view.namespace,
        serving_namespace=serving_namespace,
        metrics=view.project.spec.metrics,
        project=view.project.name,
        runbook_url=runbook,
        dashboard_url=spec.dashboard_url,
    )


# --- PromQL text ------------------------------------------------------------------------------------

def selector(metric: str, matchers: Mapping[str, str], extra: tuple[str, ...] = ()) -> str:
    """``metric{a="x",b="y",...}``, label values quoted as PromQL strings."""
    parts = [f"{name}={json.dumps(value)}" for name, value in sorted(matchers.items())]
    return metric + "{" + ",".join([*parts, *extra]) + "}"


def number(value: float | Fraction) -> str:
    """A spec number as the decimal the person wrote (``0.2``, never ``0.20000000000000001``)."""
    return decimal_text(value if isinstance(value, Fraction) else exact(value))


def bucket_bound_matcher(bound: float) -> str:
    """The ``le`` matcher of a histogram bound; an integral bound matches both ``1`` and ``1.0`` (clients differ)."""
    text = number(bound)
    if "." in text or "/" in text:
        return f'le="{text}"'
    return f'le=~"{text}|{text}\\\\.0"'


def _serving(ctx: RuleContext) -> dict[str, str]:
    return {conventions.LABEL_MODEL: ctx.model, conventions.LABEL_NAMESPACE: ctx.serving_namespace}


def request_rate(slo: SLO, ctx: RuleContext, window: str) -> str:
    """Requests per second the SLO counts, over ``window``."""
    if slo.type == "latency":
        series = selector(ctx.metrics.request_duration_bucket, _serving(ctx), ('le="+Inf"',))
    else:
        series = selector(ctx.metrics.requests_total, _serving(ctx))
    return f"sum(rate({series}[{window}]))"


def error_ratio(slo: SLO, ctx: RuleContext, window: str) -> str:
    """The share of bad requests over ``window`` (see the module docstring for what is bad)."""
    if slo.type == "latency":
        assert slo.latency_threshold is not None  # checked: LLM261
        fast = selector(ctx.metrics.request_duration_bucket, _serving(ctx),
                        (bucket_bound_matcher(slo.latency_threshold),))
        total = request_rate(slo, ctx, window)
        return f"(\n  {total}\n  -\n  sum(rate({fast}[{window}]))\n)\n/\n{total}"
    code = 'code=~"5.."' if slo.type == "availability" else 'code!~"2.."'
    bad = selector(ctx.metrics.requests_total, _serving(ctx), (code,))
    return f"sum(rate({bad}[{window}]))\n/\n{request_rate(slo, ctx, window)}"


def slo_labels(slo: SLO, ctx: RuleContext) -> dict[str, str]:
    """Labels of an SLO's recorded error ratios: the model, the SLO and its owner, so that two monitors of one
    model never read each other's recordings."""
    return {
        conventions.LABEL_MODEL: ctx.model,
        conventions.LABEL_SLO: slo.name,
        conventions.LABEL_ENVIRONMENT: ctx.environment,
        **ctx.owner_labels,
    }


# --- rules --------------------------------------------------------------------------------------------

def recording_rules(slo: SLO, ctx: RuleContext) -> list[Body]:
    """The SLO's error ratio over every window a burn condition reads, one series per window."""
    return [
        {
            "record": conventions.slo_error_ratio_record(window),
            "expr": error_ratio(slo, ctx, window),
            "labels": dict(sorted(slo_labels(slo, ctx).items())),
        }
        for window in WINDOWS
    ]


def burn_threshold(slo: SLO, window: BurnWindow) -> str:
    """``(factor * budget)`` with both exact: ``(14.4 * 0.001)``, ``(14/15 * 0.001)``."""
    return f"({decimal_text(burn_factor(slo.window, window))} * {decimal_text(error_budget(slo.objective))})"


def _burn_condition(slo: SLO, ctx: RuleContext, window: BurnWindow) -> str:
    threshold = burn_threshold(slo, window)
    labels = slo_labels(slo, ctx)
    lines = [
        f"{selector(conventions.slo_error_ratio_record(window.long), labels)} > {threshold}",
        "and",
        f"{selector(conventions.slo_error_ratio_record(window.short), labels)} > {threshold}",
    ]
    if slo.min_request_rate is not None:
        lines += ["and on ()", f"{request_rate(slo, ctx, window.long)} > {number(slo.min_request_rate)}"]
    return "(\n" + "\n".join(f"  {line}" for line in lines) + "\n)"


def burn_rate_annotations(slo: SLO, tier: str, ctx: RuleContext, value: str = PERCENT_VALUE) -> dict[str, str]:
    """Summary, description (with ``value``: the alert's template, or what it renders to in a rule test), links."""
    budget = error_budget(slo.objective)
    bad = BAD_REQUESTS[slo.type].format(bound=number(slo.latency_threshold or 0))
    factor = f"{float(lowest_factor(slo.window, tier)):.3g}"  # for people; the expression has it exactly
    return {
        conventions.ALERT_ANNOTATION_SUMMARY:
            f"Model {ctx.model} in {ctx.environment} burns the error budget of SLO {slo.name} too fast ({tier})",
        conventions.ALERT_ANNOTATION_DESCRIPTION: (
            f"The {bad} is {value}; SLO {slo.name} allows {decimal_text(budget * 100)}% over {slo.window} "
            f"(objective {decimal_text(exact(slo.objective) * 100)}%). At this rate the budget is spent at least "
            f"{factor}× as fast as the {slo.window} window allows. Action: {slo.action}."
        ),
        **ctx.links(),
    }


def burn_rate_labels(slo: SLO, tier: str, ctx: RuleContext) -> dict[str, str]:
    return dict(sorted({
        **ctx.alert_labels,
        conventions.LABEL_SLO: slo.name,
        conventions.LABEL_SEVERITY: tier,
        conventions.LABEL_TIER: tier,
        conventions.LABEL_ACTION: slo.action,
    }.items()))


def burn_rate_alerts(slo: SLO, ctx: RuleContext) -> list[Body]:
    """One alert per tier the SLO keeps: either of the tier's conditions fires it (long and short window)."""
    alerts = []
    for tier, windows in TIERS.items():
        if not getattr(slo, tier):
            continue
        alerts.append({
            "alert": conventions.ALERT_SLO_BURN,
            "expr": "\nor\n".join(_burn_condition(slo, ctx, window) for window in windows),
            "labels": burn_rate_labels(slo, tier, ctx),
            "annotations": burn_rate_annotations(slo, tier, ctx),
        })
    return alerts


def _score_labels(ctx: RuleContext, identity: dict[str, str], severity: str, action: str) -> dict[str, str]:
    """Labels of a drift or quality alert: the contract's, what it is about, its severity and its action."""
    return dict(sorted({
        **ctx.alert_labels,
        **identity,
        conventions.LABEL_SEVERITY: severity,
        conventions.LABEL_ACTION: action,
    }.items()))


def drift_labels(check: DriftCheck, ctx: RuleContext) -> dict[str, str]:
    return _score_labels(ctx, {conventions.LABEL_CHECK: check.name, conventions.LABEL_FEATURE: check.feature,
                               conventions.LABEL_METHOD: check.method}, check.severity, check.action)


def drift_annotations(check: DriftCheck, ctx: RuleContext, value: str = SCORE_VALUE) -> dict[str, str]:
    return {
        conventions.ALERT_ANNOTATION_SUMMARY:
            f"Input drift on feature {check.feature} of model {ctx.model} in {ctx.environment}",
        conventions.ALERT_ANNOTATION_DESCRIPTION: (
            f"The {check.method} drift score of feature {check.feature} is {value}, above {number(check.threshold)} "
            f"for {check.for_}: production requests no longer look like {check.reference}. "
            f"Action: {check.action}."
        ),
        **ctx.links(),
    }


def _score_alert(
    alert: str, metric: str, matchers: dict[str, str], comparison: str, bound: float, for_: str,
    labels: dict[str, str], annotations: dict[str, str],
) -> Body:
    """An alert on a pushed gauge (drift or quality score) beyond its bound for a while.

    It selects the series of exactly one owner and check (``matchers``), aggregates away the labels the
    compiler does not control (job, instance) and takes the worst series: max above a ceiling, min under a
    floor. The alert's own labels come from ``labels``."""
    series = selector(metric, matchers)
    keep = ", ".join(key for key in (conventions.LABEL_MODEL, conventions.LABEL_FEATURE, conventions.LABEL_METHOD,
                                     conventions.LABEL_METRIC) if key in matchers)
    worst = "max" if comparison == ">" else "min"
    return {
        "alert": alert,
        "expr": f"{worst} by ({keep}) ({series}) {comparison} {number(bound)}",
        "for": for_,
        "labels": labels,
        "annotations": annotations,
    }


def drift_series_labels(check: DriftCheck, ctx: RuleContext) -> dict[str, str]:
    """The labels of the drift score one check pushes (its grouping key, plus model, feature and method)."""
    return {conventions.LABEL_MODEL: ctx.model, conventions.LABEL_FEATURE: check.feature,
            conventions.LABEL_METHOD: check.method, **ctx.pushed_identity(check.name)}


def quality_series_labels(check: QualityCheck, ctx: RuleContext) -> dict[str, str]:
    """The labels of one quality score the evaluation pushes (its grouping key, plus model and metric)."""
    return {conventions.LABEL_MODEL: ctx.model, conventions.LABEL_METRIC: check.metric, **ctx.pushed_identity()}


def staleness_alerts(job: str, what: str, identity: dict[str, str], schedule: str, deadline_seconds: int,
                     ctx: RuleContext, extra: dict[str, str]) -> list[Body]:
    """A dead scoring job is visible, not green: ``LLMScoreStale`` when the group's last push is older than the
    longest gap of its schedule plus the job's deadline, ``LLMScoreMissing`` when it was never pushed for that
    long (after a deploy, or after someone wiped the group)."""
    limit = cron.max_interval_seconds(schedule) + deadline_seconds
    series = selector(conventions.PUSH_TIME_METRIC, {conventions.LABEL_PUSH_JOB: job, **identity})
    labels = dict(sorted({**ctx.alert_labels, **extra, conventions.LABEL_SEVERITY: conventions.SEVERITY_TICKET,
                          conventions.LABEL_ACTION: "notify"}.items()))
    summary = f"The {what} of model {ctx.model} in {ctx.environment} is not being updated"
    description = (f"The {what} was last pushed more than {_seconds_text(limit)} ago (its schedule `{schedule}` "
                   "plus the job's deadline): the job is failing or not scheduled, and its alerts cannot fire.")
    return [  # the selector names exactly one group; the alert's labels come from the rule
        {"alert": conventions.ALERT_SCORE_STALE, "expr": f"time() - max({series}) > {limit}",
         "for": "5m", "labels": labels,
         "annotations": {conventions.ALERT_ANNOTATION_SUMMARY: summary,
                         conventions.ALERT_ANNOTATION_DESCRIPTION: description, **ctx.links()}},
        {"alert": conventions.ALERT_SCORE_MISSING, "expr": f"absent({series})", "for": _seconds_text(limit),
         "labels": labels,
         "annotations": {conventions.ALERT_ANNOTATION_SUMMARY: f"The {what} of model {ctx.model} in "
                         f"{ctx.environment} has never been pushed",
                         conventions.ALERT_ANNOTATION_DESCRIPTION: f"No {what} was pushed in the last "
                         f"{_seconds_text(limit)}: the job has not run since it was deployed.", **ctx.links()}},
    ]


def _seconds_text(seconds: int) -> str:
    """A duration as Prometheus writes it: ``1h30m``, ``2d``."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def drift_alerts(monitor: MonitorSpec, ctx: RuleContext) -> list[Body]:
    """One alert per drift check: the pushed score above the threshold for the check's ``for``."""
    return [
        _score_alert(
            conventions.ALERT_DRIFT, ctx.metrics.drift_score, drift_series_labels(check, ctx),
            ">", check.threshold, check.for_, drift_labels(check, ctx), drift_annotations(check, ctx),
        )
        for check in monitor.drift
    ]


def quality_labels(check: QualityCheck, ctx: RuleContext) -> dict[str, str]:
    return _score_labels(ctx, {conventions.LABEL_METRIC: check.metric}, check.severity, check.action)


def quality_annotations(check: QualityCheck, ctx: RuleContext, value: str = SCORE_VALUE) -> dict[str, str]:
    return {
        conventions.ALERT_ANNOTATION_SUMMARY:
            f"Quality score {check.metric} of model {ctx.model} in {ctx.environment} is below its minimum",
        conventions.ALERT_ANNOTATION_DESCRIPTION: (
            f"The continuous evaluation scores {check.metric} at {value}, below {number(check.minimum)} "
            f"for {check.for_}. Action: {check.action}."
        ),
        **ctx.links(),
    }


def quality_alerts(monitor: MonitorSpec, ctx: RuleContext) -> list[Body]:
    """One alert per quality score: the pushed score under its minimum for the check's ``for``."""
    return [
        _score_alert(
            conventions.ALERT_QUALITY, ctx.metrics.quality_score, quality_series_labels(check, ctx),
            "<", check.minimum, check.for_, quality_labels(check, ctx), quality_annotations(check, ctx),
        )
        for check in monitor.quality
    ]


def rule_groups(monitor: MonitorSpec, ctx: RuleContext) -> list[Body]:
    """One group per SLO (its recordings, then its alerts, so alerts read this round's ratios), then drift
    and quality."""
    groups: list[Body] = [
        {"name": f"{ctx.monitor}-slo-{slo.name}", "rules": recording_rules(slo, ctx) + burn_rate_alerts(slo, ctx)}
        for slo in monitor.slos
    ]
    if monitor.drift:
        stale = [alert for check in monitor.drift for alert in staleness_alerts(
            conventions.PUSH_JOB_DRIFT, f"drift score of check {check.name}", ctx.pushed_identity(check.name),
            check.schedule, DRIFT_DEADLINE_SECONDS, ctx, {conventions.LABEL_CHECK: check.name})]
        groups.append({"name": f"{ctx.monitor}-drift", "rules": [*drift_alerts(monitor, ctx), *stale]})
    if monitor.quality:
        stale = staleness_alerts(conventions.PUSH_JOB_QUALITY, "quality scores", ctx.pushed_identity(),
                                 monitor.evaluation.schedule, SCORE_DEADLINE_SECONDS, ctx,
                                 {}) if monitor.evaluation is not None else []
        groups.append({"name": f"{ctx.monitor}-quality", "rules": [*quality_alerts(monitor, ctx), *stale]})
    return groups


def prometheus_rule(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec]) -> Body | None:
    groups = rule_groups(monitor.spec, rule_context(view, monitor))
    if not groups:
        return None
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": metadata(view, conventions.monitor_resource_name(monitor.name), monitor, component="monitoring",
                             extra_labels=view.project.spec.prometheus.rule_labels),
        "spec": {"groups": groups},
    }


def prometheus_rules(view: EnvironmentView) -> list[Resource]:
    """The PrometheusRule of every Monitor in this environment."""
    resources = []
    for monitor in view.monitors():
        body = prometheus_rule(view, monitor)
        if body is not None:
            resources.append(resource(view, body, monitor.source))
    return resources


def alerting_rules(body: Mapping[str, Any]) -> list[Body]:
    """Every alerting rule of a PrometheusRule body (for tests and tools that look at alerts only)."""
    return [rule for group in body["spec"]["groups"] for rule in group["rules"] if "alert" in rule]
