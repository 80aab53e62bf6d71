"""Promtool rule tests compiled from a Monitor: synthetic series proving that every alert of its
PrometheusRule fires on a burn and stays silent on healthy traffic; ``llmops test-rules`` runs them.

Cases, each on series that start at zero and grow at a constant rate (so every window sees the same ratio):
per SLO, a burn at 20× the budget (at most 100%) and one at 2×, burns 10% above and below the lowest factor
of each tier it keeps (where constant traffic starts to fire it), and, with ``minRequestRate``, total failure
on half that rate; per drift check a score at twice the threshold, per quality score one under the minimum,
checked just before and when their ``for`` has passed; and healthy traffic (half the smallest budget, drift
at half the threshold, quality above the minimum), which fires nothing. The expected alerts of a case are
computed from the spec by the same tier table the rules come from, for every alert the series touch.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from . import conventions
from .burn_rates import TIERS, burn_factor, error_budget, exact, lowest_factor
from .resolve import EnvironmentView, ProjectGraph, ResolvedSpec
from .serialize import dump_yaml
from .specs import MonitorSpec
from .specs.common import duration_seconds
from .specs.monitor import SLO
from .targets import prometheus
from .targets.base import Body

INTERVAL_MINUTES = 1
SLO_EVAL_MINUTES = 10
REQUESTS_PER_MINUTE = 6000
PAGE_BURN = 20
TICKET_BURN = 2
RULES_FILE = "rules.yaml"
TESTS_FILE = "tests.yaml"


@dataclass(frozen=True)
class Traffic:
    """Requests per minute, and the shares answered 5xx (``failed``), 429 (``rejected``) or slower than every
    latency bound (``slow``)."""

    per_minute: Fraction
    failed: Fraction = Fraction(0)
    rejected: Fraction = Fraction(0)
    slow: Fraction = Fraction(0)


def bad_share(slo: SLO, traffic: Traffic) -> Fraction:
    """The SLO's error ratio under ``traffic`` (what its recording rules compute)."""
    if slo.type == "availability":
        return traffic.failed
    if slo.type == "errorRatio":
        return traffic.failed + traffic.rejected
    return traffic.slow


def firing_tiers(slo: SLO, traffic: Traffic) -> list[str]:
    """The tiers whose alert fires when every window sees ``traffic``."""
    share = bad_share(slo, traffic)
    if slo.min_request_rate is not None and traffic.per_minute / 60 <= exact(slo.min_request_rate):
        return []
    budget = error_budget(slo.objective)
    return [
        tier for tier, windows in TIERS.items()
        if getattr(slo, tier) and any(share > burn_factor(slo.window, window) * budget for window in windows)
    ]


def humanize_percentage(value: Fraction) -> str:
    """What Prometheus' ``humanizePercentage`` prints (Go's ``%.4g`` of the value times 100)."""
    return f"{float(value) * 100:.4g}%"


def score_text(value: Fraction) -> str:
    return f"{float(value):.3f}"


def _increment(value: Fraction) -> str:
    return prometheus.number(value) if value == Fraction(str(float(value))) else repr(float(value))


def _series(metric: str, labels: dict[str, str], per_step: Fraction, steps: int) -> Body:
    return {"series": prometheus.selector(metric, labels), "values": f"0+{_increment(per_step)}x{steps}"}


def _gauge(metric: str, labels: dict[str, str], value: Fraction, steps: int) -> Body:
    return {"series": prometheus.selector(metric, labels), "values": f"{_increment(value)}x{steps}"}


def _push_times(labels: dict[str, str], steps: int) -> Body:
    """``push_time_seconds`` of a group pushed at every step: always fresh, so no staleness alert fires."""
    return {"series": prometheus.selector(conventions.PUSH_TIME_METRIC, labels),
            "values": f"0+{INTERVAL_MINUTES * 60}x{steps}"}


# --- input series ---------------------------------------------------------------------------------------

def traffic_series(monitor: MonitorSpec, ctx: prometheus.RuleContext, traffic: Traffic, steps: int) -> list[Body]:
    """Counters of the request metric by code, and the duration histogram at every latency bound."""
    labels = {conventions.LABEL_MODEL: ctx.model, conventions.LABEL_NAMESPACE: ctx.serving_namespace,
              conventions.LABEL_VERSION: "stable"}
    total = traffic.per_minute * INTERVAL_MINUTES
    series = []
    shares = {"200": 1 - traffic.failed - traffic.rejected, "500": traffic.failed, "429": traffic.rejected}
    for code, share in shares.items():
        if share:
            series.append(_series(ctx.metrics.requests_total, {**labels, conventions.LABEL_CODE: code},
                                  total * share, steps))
    bounds = sorted({slo.latency_threshold for slo in monitor.slos if slo.latency_threshold is not None})
    for bound in bounds:
        series.append(_series(ctx.metrics.request_duration_bucket, {**labels, "le": prometheus.number(bound)},
                              total * (1 - traffic.slow), steps))
    if bounds:
        series.append(_series(ctx.metrics.request_duration_bucket, {**labels, "le": "+Inf"}, total, steps))
    return series


def score_series(monitor: MonitorSpec, ctx: prometheus.RuleContext, steps: int,
                 drifted: str | None = None, degraded: str | None = None) -> list[Body]:
    """Drift and quality gauges: healthy, except the drift check ``drifted`` and the quality metric
    ``degraded``."""
    series = []
    for check in monitor.drift:
        labels = {**prometheus.drift_series_labels(check, ctx), "job": conventions.PUSH_JOB_DRIFT}
        series.append(_gauge(ctx.metrics.drift_score, labels, drift_score(check.threshold, check.name == drifted),
                             steps))
        push_time = {**ctx.pushed_identity(check.name), "job": conventions.PUSH_JOB_DRIFT}
        series.append(_push_times(push_time, steps))
    for quality in monitor.quality:
        labels = {**prometheus.quality_series_labels(quality, ctx), "job": conventions.PUSH_JOB_QUALITY}
        series.append(_gauge(ctx.metrics.quality_score, labels,
                             quality_score(quality.minimum, quality.metric == degraded), steps))
    return series


def drift_score(threshold: float, drifted: bool) -> Fraction:
    return exact(threshold) * (2 if drifted else Fraction(1, 2))


def quality_score(minimum: float, degraded: bool) -> Fraction:
    return exact(minimum) + (Fraction(-1, 10) if degraded else Fraction(1, 10))


# --- expected alerts ------------------------------------------------------------------------------------

def _expected(labels: dict[str, str], annotations: dict[str, str]) -> Body:
    return {"exp_labels": dict(sorted(labels.items())), "exp_annotations": annotations}


def expected_burn_alerts(monitor: MonitorSpec, ctx: prometheus.RuleContext, traffic: Traffic) -> list[Body]:
    return [
        _expected(prometheus.burn_rate_labels(slo, tier, ctx),
                  prometheus.burn_rate_annotations(slo, tier, ctx, humanize_percentage(bad_share(slo, traffic))))
        for slo in monitor.slos
        for tier in firing_tiers(slo, traffic)
    ]


def _alert_tests(alerts: dict[str, list[Body]], names: list[str], minute: int) -> list[Body]:
    return [{"eval_time": f"{minute}m", "alertname": name, "exp_alerts": alerts.get(name, [])} for name in names]


def _case(name: str, series: list[Body], checks: list[Body]) -> Body:
    return {"name": name, "interval": f"{INTERVAL_MINUTES}m", "input_series": series, "alert_rule_test": checks}


def _fire_minute(for_: str) -> int:
    """The first evaluation (minutes after the series start) at which an alert with this ``for`` fires."""
    return max(INTERVAL_MINUTES, math.ceil(duration_seconds(for_) / 60 / INTERVAL_MINUTES) * INTERVAL_MINUTES)


def slo_traffic_cases(monitor: MonitorSpec) -> Iterator[tuple[str, Traffic]]:
    """(case name, traffic): per SLO, burns at 20× and 2× its budget, and total failure on too few requests."""
    fastest = max((exact(slo.min_request_rate) for slo in monitor.slos if slo.min_request_rate), default=Fraction(0))
    per_minute = max(Fraction(REQUESTS_PER_MINUTE), fastest * 60 * 10)
    for slo in monitor.slos:
        budget = error_budget(slo.objective)
        for label, burn in (("20x", min(Fraction(1), PAGE_BURN * budget)), ("2x", TICKET_BURN * budget)):
            yield f"SLO {slo.name}: error budget burn at {label}", _traffic_for(slo, per_minute, burn)
        for tier in TIERS:
            if getattr(slo, tier):
                # Just above and just below the lowest factor of the tier: where constant traffic starts firing.
                lowest = lowest_factor(slo.window, tier)
                for side, margin in (("above", Fraction(11, 10)), ("below", Fraction(9, 10))):
                    share = min(Fraction(1), lowest * margin * budget)
                    yield (f"SLO {slo.name}: 10% {side} the {tier} threshold ({float(lowest):.3g}x the budget)",
                           _traffic_for(slo, per_minute, share))
        if slo.min_request_rate is not None:
            yield (f"SLO {slo.name}: every request fails, below minRequestRate",
                   _traffic_for(slo, exact(slo.min_request_rate) * 30, Fraction(1)))


def _traffic_for(slo: SLO, per_minute: Fraction, share: Fraction) -> Traffic:
    if slo.type == "availability":
        return Traffic(per_minute, failed=share)
    if slo.type == "errorRatio":
        return Traffic(per_minute, rejected=share)
    return Traffic(per_minute, slow=share)


def healthy_traffic(monitor: MonitorSpec) -> Traffic:
    """Half the smallest budget of each kind of SLO: below every burn threshold."""
    def half_budget(types: tuple[str, ...]) -> Fraction:
        budgets = [error_budget(slo.objective) for slo in monitor.slos if slo.type in types]
        return min(budgets) / 2 if budgets else Fraction(0)

    fastest = max((exact(slo.min_request_rate) for slo in monitor.slos if slo.min_request_rate), default=Fraction(0))
    return Traffic(max(Fraction(REQUESTS_PER_MINUTE), fastest * 60 * 10),
                   failed=half_budget(("availability", "errorRatio")), slow=half_budget(("latency",)))


def test_cases(monitor: MonitorSpec, ctx: prometheus.RuleContext, alert_names: list[str]) -> list[Body]:
    cases = []
    steps = SLO_EVAL_MINUTES // INTERVAL_MINUTES
    if monitor.slos:
        for name, traffic in slo_traffic_cases(monitor):
            alerts = {conventions.ALERT_SLO_BURN: expected_burn_alerts(monitor, ctx, traffic)}
            cases.append(_case(name, traffic_series(monitor, ctx, traffic, steps),
                               _alert_tests(alerts, alert_names, SLO_EVAL_MINUTES)))
    for check in monitor.drift:
        fire = _fire_minute(check.for_)
        labels = {**prometheus.drift_labels(check, ctx), conventions.LABEL_FEATURE: check.feature,
                  conventions.LABEL_METHOD: check.method}
        value = score_text(drift_score(check.threshold, True))
        alert = _expected(labels, prometheus.drift_annotations(check, ctx, value))
        checks = _alert_tests({conventions.ALERT_DRIFT: [alert]}, alert_names, fire)
        if duration_seconds(check.for_) > 0:
            checks = _alert_tests({}, alert_names, fire - INTERVAL_MINUTES) + checks
        steps = fire // INTERVAL_MINUTES
        cases.append(_case(f"drift check {check.name}: score at twice the threshold",
                           score_series(monitor, ctx, steps, drifted=check.name), checks))
    for quality in monitor.quality:
        fire = _fire_minute(quality.for_)
        value = score_text(quality_score(quality.minimum, True))
        alert = _expected(prometheus.quality_labels(quality, ctx),
                          prometheus.quality_annotations(quality, ctx, value))
        checks = _alert_tests({conventions.ALERT_QUALITY: [alert]}, alert_names, fire)
        if duration_seconds(quality.for_) > 0:
            checks = _alert_tests({}, alert_names, fire - INTERVAL_MINUTES) + checks
        cases.append(_case(f"quality {quality.metric}: score under the minimum",
                           score_series(monitor, ctx, fire // INTERVAL_MINUTES, degraded=quality.metric), checks))
    durations = [check.for_ for check in monitor.drift] + [check.for_ for check in monitor.quality]
    last = max([SLO_EVAL_MINUTES, *(_fire_minute(duration) for duration in durations)])
    healthy = healthy_traffic(monitor) if monitor.slos else None
    series = traffic_series(monitor, ctx, healthy, last) if healthy else []
    series += score_series(monitor, ctx, last)
    if series:
        checks = [test for minute in sorted({SLO_EVAL_MINUTES, last}) for test in _alert_tests({}, alert_names, minute)]
        cases.append(_case("healthy traffic, no drift, good quality: nothing fires", series, checks))
    return cases


def rule_test_files(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec]) -> dict[str, str] | None:
    """``rules.yaml`` (the groups of the Monitor's PrometheusRule) and ``tests.yaml`` for promtool; None
    when the Monitor has no rules."""
    ctx = prometheus.rule_context(view, monitor)
    groups = prometheus.rule_groups(monitor.spec, ctx)
    if not groups:
        return None
    alert_names = sorted({rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule})
    tests = {
        "rule_files": [RULES_FILE],
        "evaluation_interval": f"{INTERVAL_MINUTES}m",
        "tests": test_cases(monitor.spec, ctx, alert_names),
    }
    return {RULES_FILE: dump_yaml({"groups": groups}), TESTS_FILE: dump_yaml(tests)}


# --- running promtool -----------------------------------------------------------------------------------

class PromtoolMissing(RuntimeError):
    """``promtool`` (Debian/Ubuntu package ``prometheus``) is not on PATH, or it did not work: it ran past
    ``PROMTOOL_SECONDS``, or ended other than with 0 (the tests passed) or 1 (some failed), say by a crash."""


PROMTOOL_SECONDS = 600


@dataclass(frozen=True)
class RuleTestResult:
    environment: str
    monitor: str
    cases: int
    ok: bool
    output: str


def run_promtool(files: dict[str, str], folder: Path) -> tuple[bool, str]:
    """Write ``files`` into ``folder`` and run ``promtool test rules`` on the tests file there."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise PromtoolMissing("promtool not found on PATH (Debian/Ubuntu: apt-get install prometheus)")
    for name, text in files.items():
        (folder / name).write_text(text)
    try:
        completed = subprocess.run([promtool, "test", "rules", TESTS_FILE], cwd=folder, capture_output=True,
                                   text=True, timeout=PROMTOOL_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise PromtoolMissing(f"`{promtool} test rules` did not finish in {PROMTOOL_SECONDS} s") from None
    output = (completed.stdout + completed.stderr).strip()
    if completed.returncode not in (0, 1):  # promtool's own codes: 0 passed, 1 failed; anything else is the tool
        last = output.splitlines()[-1] if output else "no output"
        raise PromtoolMissing(f"`{promtool} test rules` did not work (exit {completed.returncode}): {last}")
    return completed.returncode == 0, output


def run_rule_tests(graph: ProjectGraph, environment: str | None = None) -> list[RuleTestResult]:
    """Generate and run the rule tests of every Monitor (in one environment, or in all)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="llmops-rule-tests-") as temporary:
        for view in graph.environments:
            if environment is not None and view.name != environment:
                continue
            for monitor in view.monitors():
                files = rule_test_files(view, monitor)
                if files is None:
                    continue
                folder = Path(temporary, view.name, monitor.name)
                folder.mkdir(parents=True)
                ok, output = run_promtool(files, folder)
                cases = len(_load_tests(files[TESTS_FILE]))
                results.append(RuleTestResult(view.name, monitor.name, cases, ok, output))
    return results


def _load_tests(text: str) -> list[Any]:
    import yaml

    tests: list[Any] = yaml.safe_load(text)["tests"]
    return tests
