"""PrometheusRules: strictly valid, accepted by ``promtool check rules``, exact in their arithmetic, and proven
by ``promtool test rules`` on hand-written series: a 20× burn pages within the workbook's time, a 2× burn only
opens a ticket, healthy traffic fires nothing, slow requests burn the latency SLO, 28d factors are exact, a
switched-off tier emits nothing, and ``minRequestRate`` keeps a handful of requests from alerting.

The hand-written cases run on the rules without annotations (they change with the value every minute);
``llmops test-rules`` checks the rendered annotations on series whose value it knows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from monitoring_support import (
    build,
    find,
    model_yaml,
    one,
    project_yaml,
    promtool_test,
    rules_file,
    run_tool,
    write_specs,
)
from schemas import validate_strict

from llmops_compiler import conventions
from llmops_compiler.burn_rates import TIERS, burn_factor, decimal_text, error_budget
from llmops_compiler.targets.base import Resource

ROOT = Path(__file__).resolve().parents[2]
ENV = "dev"
NAMESPACE = "llm-dev"

CHAT_MONITOR = """\
apiVersion: llmops.dev/v1alpha1
kind: Monitor
metadata:
  name: chat
spec:
  model: chat
  slos:
    - name: errors
      type: availability
      objective: 0.999
    - name: errors-28d
      type: availability
      objective: 0.999
      window: 28d
      page: false
    - name: latency
      type: latency
      objective: 0.99
      latencyThreshold: 2.5
"""

TINY_MONITOR = """\
apiVersion: llmops.dev/v1alpha1
kind: Monitor
metadata:
  name: tiny
spec:
  model: tiny
  slos:
    - name: errors
      type: errorRatio
      objective: 0.99
      minRequestRate: 1
      action: notify
"""


@pytest.fixture(scope="module")
def resources(tmp_path_factory: pytest.TempPathFactory) -> list[Resource]:
    specs = write_specs(tmp_path_factory.mktemp("prometheus"), {
        "project.yaml": project_yaml([(ENV, NAMESPACE)]),
        "models/chat.yaml": model_yaml("chat"),
        "models/tiny.yaml": model_yaml("tiny"),
        "monitoring/chat.yaml": CHAT_MONITOR,
        "monitoring/tiny.yaml": TINY_MONITOR,
    })
    return build(specs)


@pytest.fixture(scope="module")
def example() -> list[Resource]:
    return build(ROOT / "specs")


def rule(body: dict[str, Any], slo: str, tier: str) -> dict[str, Any]:
    [found] = [item for group in body["spec"]["groups"] for item in group["rules"]
               if item.get("labels", {}).get("slo") == slo and item.get("labels", {}).get("tier") == tier]
    return found


def alert(slo: str, tier: str, model: str = "chat", action: str = "notify") -> dict[str, Any]:
    """An SLO burn alert as promtool reports it (labels only: the hand-written cases strip annotations)."""
    return {"exp_labels": {"environment": ENV, "llmops_action": action, "model": model, "namespace": NAMESPACE,
                           "llmops_monitor": model, "llmops_project": "shop",  # monitors are named after models
                           "severity": tier, "slo": slo, "tier": tier}}


def burn_checks(times: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"eval_time": time, "alertname": conventions.ALERT_SLO_BURN, "exp_alerts": alerts}
            for time, alerts in times.items()]


def requests(model: str, code: str, values: str) -> dict[str, str]:
    return {"series": f'llm_requests_total{{code="{code}",model="{model}",namespace="{NAMESPACE}",version="v1"}}',
            "values": values}


def durations(model: str, bound: str, values: str) -> dict[str, str]:
    return {"series": f'llm_request_duration_seconds_bucket{{le="{bound}",model="{model}",namespace="{NAMESPACE}"}}',
            "values": values}


def assert_passes(result: Any) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


# --- schema and syntax -----------------------------------------------------------------------------------

def test_every_rule_is_strictly_valid_and_passes_promtool_check(
    resources: list[Resource], example: list[Resource], tmp_path: Path
) -> None:
    rules = find(resources, "PrometheusRule") + find(example, "PrometheusRule")
    assert {item.environment for item in find(example, "PrometheusRule")} == {"dev", "staging", "prod"}
    for index, item in enumerate(rules):
        validate_strict(item.body)
        path = rules_file(item.body, tmp_path / f"rules-{index}.yaml")
        result = run_tool("promtool", "check", "rules", str(path))
        assert_passes(result)
        assert "SUCCESS" in result.stdout + result.stderr


def test_alert_labels_and_annotations_follow_the_contract(example: list[Resource]) -> None:
    body = one(example, "PrometheusRule", "prod").body
    alerts = [item for group in body["spec"]["groups"] for item in group["rules"] if "alert" in item]
    assert {item["alert"] for item in alerts} == {conventions.ALERT_SLO_BURN, conventions.ALERT_DRIFT,
                                                 conventions.ALERT_QUALITY, conventions.ALERT_SCORE_STALE,
                                                 conventions.ALERT_SCORE_MISSING}
    for item in alerts:
        labels, annotations = item["labels"], item["annotations"]
        assert labels["model"] == "support-llm" and labels["environment"] == "prod"
        assert labels["namespace"] == "support-prod"
        # The owner: a second monitor of the model, or another project sharing the servers, has its own.
        assert labels["llmops_project"] == "support-assistant" and labels["llmops_monitor"] == "support-llm"
        assert labels["severity"] in ("page", "ticket") and labels["llmops_action"] in conventions.ACTIONS
        assert annotations["runbook_url"] == "https://runbooks.acme.internal/llmops/support-llm"
        assert annotations["dashboard_url"] == "https://grafana.acme.internal/d/llm-support"
        assert annotations["summary"]
        if item["alert"] not in (conventions.ALERT_SCORE_STALE, conventions.ALERT_SCORE_MISSING):
            assert "$value" in annotations["description"]
        if item["alert"] == conventions.ALERT_DRIFT:
            # One check's series only: selected by the check and its owner, never by feature alone.
            assert labels["check"] in ("prompt-length", "customer-tier", "prompt-length-skew") and labels["feature"]
            assert f'check="{labels["check"]}"' in item["expr"] and 'llmops_monitor="support-llm"' in item["expr"]
            assert 'llmops_namespace="support-prod"' in item["expr"]
            assert item["for"] in ("30m", "15m")
        if item["alert"] == conventions.ALERT_SLO_BURN:
            assert labels["tier"] == labels["severity"]
            assert "humanizePercentage" in annotations["description"]
        if item["alert"] in (conventions.ALERT_SCORE_STALE, conventions.ALERT_SCORE_MISSING):
            assert labels["llmops_action"] == "notify" and labels["severity"] == "ticket"
            assert "$value" not in annotations["description"]
            continue
    # The availability SLO rolls back, pages and tickets; the 28d errorRatio SLO only opens tickets.
    assert rule(body, "availability", "page")["labels"]["llmops_action"] == "rollback"
    assert [item["labels"]["tier"] for item in alerts if item["labels"].get("slo") == "answers"] == ["ticket"]


def test_runbook_defaults_to_the_project_base_url(resources: list[Resource]) -> None:
    body = one(resources, "PrometheusRule", ENV, "monitor-chat").body
    assert rule(body, "errors", "page")["annotations"]["runbook_url"] == "https://runbooks.test/llmops/chat"
    assert "dashboard_url" not in rule(body, "errors", "page")["annotations"]


def test_recording_rules_cover_every_window(resources: list[Resource]) -> None:
    body = one(resources, "PrometheusRule", ENV, "monitor-chat").body
    [group] = [group for group in body["spec"]["groups"] if group["name"] == "chat-slo-errors"]
    records = [item["record"] for item in group["rules"] if "record" in item]
    assert records == [f"llmops_slo:error_ratio:rate{window}"
                       for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")]
    first = group["rules"][0]
    assert first["labels"] == {"environment": ENV, "model": "chat", "slo": "errors", "llmops_monitor": "chat",
                               "llmops_project": "shop", "namespace": NAMESPACE}
    assert 'code=~"5.."' in first["expr"] and f'namespace="{NAMESPACE}"' in first["expr"]


# --- exact arithmetic ----------------------------------------------------------------------------------

def test_28d_factors_are_exact_decimals(resources: list[Resource]) -> None:
    body = one(resources, "PrometheusRule", ENV, "monitor-chat").body
    ticket = rule(body, "errors-28d", "ticket")["expr"]
    assert "> (2.8 * 0.001)" in ticket and "> (14/15 * 0.001)" in ticket
    assert [decimal_text(burn_factor("28d", window)) for windows in TIERS.values() for window in windows] == [
        "13.44", "5.6", "2.8", "14/15"]
    page_30d = rule(body, "errors", "page")["expr"]
    assert "> (14.4 * 0.001)" in page_30d and "> (6 * 0.001)" in page_30d
    assert "> (3 * 0.001)" in rule(body, "errors", "ticket")["expr"]
    assert "> (1 * 0.001)" in rule(body, "errors", "ticket")["expr"]
    latency = rule(body, "latency", "page")["expr"]
    assert "(14.4 * 0.01)" in latency
    # No float noise anywhere: every number in every expression is short.
    for group in body["spec"]["groups"]:
        for item in group["rules"]:
            for number in re.findall(r"\d+\.\d+", item["expr"]):
                assert len(number) <= 6, (number, item["expr"])
    assert decimal_text(error_budget(0.999)) == "0.001" and decimal_text(error_budget(0.9995)) == "0.0005"


def test_28d_window_tickets_where_30d_does_not(resources: list[Resource], tmp_path: Path) -> None:
    """0.095% errors is 0.95× the budget: above 14/15 (28d, 3d&6h), below 1 (30d)."""
    path = rules_file(one(resources, "PrometheusRule", ENV, "monitor-chat").body, tmp_path / "rules.yaml",
                      strip_annotations=True)
    result = promtool_test(path, {"tests": [{
        "interval": "1m",
        "input_series": [requests("chat", "200", "0+99905x30"), requests("chat", "500", "0+95x30")],
        "alert_rule_test": burn_checks({"30m": [alert("errors-28d", "ticket")]}),
    }]})
    assert_passes(result)


# --- behaviour under promtool ----------------------------------------------------------------------------

HEALTHY_HOURS = 6  # so that the 6h window of the slower page condition holds healthy history


def test_20x_burn_pages_within_the_expected_time(resources: list[Resource], tmp_path: Path) -> None:
    """After 6h of clean traffic, 2% errors (20× the 0.1% budget): the 1h ratio crosses 14.4× after
    0.72h = 43.2 min; the 6h ratio needs 108 min for 6×. The ticket (1× over 3d and 6h) opens after ~19 min."""
    path = rules_file(one(resources, "PrometheusRule", ENV, "monitor-chat").body, tmp_path / "rules.yaml",
                      strip_annotations=True)
    healthy = HEALTHY_HOURS * 60
    burn = 50
    ok = f"0+10000x{healthy} {10000 * healthy + 9800}+9800x{burn - 1}"
    errors = f"0x{healthy} 200+200x{burn - 1}"
    start = healthy  # minutes
    result = promtool_test(path, {"tests": [{
        "interval": "1m",
        "input_series": [requests("chat", "200", ok), requests("chat", "500", errors)],
        "alert_rule_test": burn_checks({
            f"{start}m": [],
            f"{start + 15}m": [],
            f"{start + 21}m": [alert("errors", "ticket"), alert("errors-28d", "ticket")],
            f"{start + 41}m": [alert("errors", "ticket"), alert("errors-28d", "ticket")],
            f"{start + 45}m": [alert("errors", "page"), alert("errors", "ticket"), alert("errors-28d", "ticket")],
        }),
    }]})
    assert_passes(result)


def test_2x_burn_opens_only_a_ticket(resources: list[Resource], tmp_path: Path) -> None:
    path = rules_file(one(resources, "PrometheusRule", ENV, "monitor-chat").body, tmp_path / "rules.yaml",
                      strip_annotations=True)
    result = promtool_test(path, {"tests": [{
        "interval": "1m",
        "input_series": [requests("chat", "200", "0+9980x180"), requests("chat", "500", "0+20x180")],
        "alert_rule_test": burn_checks({
            "10m": [alert("errors", "ticket"), alert("errors-28d", "ticket")],
            "3h": [alert("errors", "ticket"), alert("errors-28d", "ticket")],
        }),
    }]})
    assert_passes(result)


def test_healthy_traffic_fires_nothing(resources: list[Resource], tmp_path: Path) -> None:
    """Half the error budget and half the latency budget, for 8 hours."""
    path = rules_file(one(resources, "PrometheusRule", ENV, "monitor-chat").body, tmp_path / "rules.yaml",
                      strip_annotations=True)
    minutes = 8 * 60
    result = promtool_test(path, {"tests": [{
        "interval": "1m",
        "input_series": [
            requests("chat", "200", f"0+19999x{minutes}"), requests("chat", "500", f"0+1x{minutes}"),
            requests("chat", "404", f"0+500x{minutes}"),  # a client error: not an availability problem
            durations("chat", "2.5", f"0+9950x{minutes}"), durations("chat", "+Inf", f"0+10000x{minutes}"),
        ],
        "alert_rule_test": burn_checks({"10m": [], "1h": [], "6h": [], "8h": []}),
    }]})
    assert_passes(result)


def test_slow_requests_burn_the_latency_slo(resources: list[Resource], tmp_path: Path) -> None:
    """20% of requests slower than 2.5s is 20× the 1% budget: page and ticket; nothing else burns."""
    path = rules_file(one(resources, "PrometheusRule", ENV, "monitor-chat").body, tmp_path / "rules.yaml",
                      strip_annotations=True)
    result = promtool_test(path, {"tests": [{
        "interval": "1m",
        "input_series": [
            requests("chat", "200", "0+1000x30"),
            durations("chat", "1", "0+500x30"), durations("chat", "2.5", "0+800x30"),
            durations("chat", "+Inf", "0+1000x30"),
        ],
        "alert_rule_test": burn_checks({"15m": [alert("latency", "page"), alert("latency", "ticket")]}),
    }]})
    assert_passes(result)


def test_switched_off_tier_emits_no_alert(resources: list[Resource]) -> None:
    body = one(resources, "PrometheusRule", ENV, "monitor-chat").body
    tiers = [item["labels"]["tier"] for group in body["spec"]["groups"] for item in group["rules"]
             if item.get("labels", {}).get("slo") == "errors-28d" and "alert" in item]
    assert tiers == ["ticket"]
    # ...and under a 20× burn (above) only its ticket fires; the monitor of `tiny` has both tiers.
    tiny = one(resources, "PrometheusRule", ENV, "monitor-tiny").body
    assert sorted(item["labels"]["tier"] for group in tiny["spec"]["groups"] for item in group["rules"]
                  if "alert" in item) == ["page", "ticket"]


def test_min_request_rate_suppresses_a_burn_on_tiny_traffic(resources: list[Resource], tmp_path: Path) -> None:
    """Every request fails, but at 0.5 requests/s (under `minRequestRate: 1`) nothing fires. At 10/s it pages;
    the ticket waits until its 1d window averages more than 1 request/s (86400 requests: 2.4h at 10/s), since
    the rate of a condition is the average over its long window."""
    body = one(resources, "PrometheusRule", ENV, "monitor-tiny").body
    assert "and on ()\n  sum(rate(llm_requests_total{" in rule(body, "errors", "page")["expr"]
    path = rules_file(body, tmp_path / "rules.yaml", strip_annotations=True)
    quiet = promtool_test(path, {"tests": [{
        "interval": "1m",
        "input_series": [requests("tiny", "503", "0+30x90")],
        "alert_rule_test": burn_checks({"10m": [], "90m": []}),
    }]})
    assert_passes(quiet)
    loud = promtool_test(path, {"tests": [{
        "interval": "1m",
        "input_series": [requests("tiny", "503", "0+600x180")],
        "alert_rule_test": burn_checks({
            "10m": [alert("errors", "page", "tiny")],
            "2h": [alert("errors", "page", "tiny")],
            "3h": [alert("errors", "page", "tiny"), alert("errors", "ticket", "tiny")],
        }),
    }]})
    assert_passes(loud)


def test_integral_latency_bound_matches_both_spellings(resources: list[Resource]) -> None:
    from llmops_compiler.targets.prometheus import bucket_bound_matcher

    assert bucket_bound_matcher(2.5) == 'le="2.5"'
    assert bucket_bound_matcher(1.0) == 'le=~"1|1\\\\.0"'


# --- pushed scores: identified by their check, and stale when their job dies -----------------------------

def test_a_renamed_drift_check_ignores_the_old_checks_value_and_a_dead_job_alerts(
    tmp_path: Path, example: list[Resource]
) -> None:
    """The Pushgateway keeps an old group forever: a check renamed from `prompt-size` must not fire on the
    value the old name left behind; and when the new check's job stops pushing, LLMScoreStale fires once the
    push is older than the schedule's longest gap (30m) plus the job's deadline (1h)."""
    body = one(example, "PrometheusRule", "prod").body
    path = rules_file(body, tmp_path / "rules.yaml", strip_annotations=True)
    identity = {"environment": "prod", "llmops_monitor": "support-llm", "llmops_namespace": "support-prod",
                "llmops_project": "support-assistant", "job": "llmops-drift"}
    score = {**identity, "model": "support-llm", "feature": "prompt_length", "method": "psi"}

    def series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
        return {"series": metric + "{" + ",".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}",
                "values": values}

    stale_labels = {"check": "prompt-length", "environment": "prod", "llmops_action": "notify",
                    "llmops_monitor": "support-llm", "llmops_project": "support-assistant", "model": "support-llm",
                    "namespace": "support-prod", "severity": "ticket"}
    tests = {"rule_files": [str(path)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            # The old check's group: far above the threshold, pushed long ago, never removed.
            series("llmops_drift_score", {**score, "check": "prompt-size"}, "0.9x240"),
            # The new check: healthy, pushed every minute for an hour, then its job dies.
            series("llmops_drift_score", {**score, "check": "prompt-length"}, "0.05x240"),
            series("push_time_seconds", {**identity, "check": "prompt-length"}, "0+60x60 3600x180"),
            series("push_time_seconds", {**identity, "check": "customer-tier"}, "0+60x240"),
            series("push_time_seconds", {**identity, "check": "prompt-length-skew"}, "0+60x240"),
            series("push_time_seconds", {**identity, "job": "llmops-quality"}, "0+60x240"),
        ],
        "alert_rule_test": [
            {"eval_time": "90m", "alertname": conventions.ALERT_DRIFT, "exp_alerts": []},
            {"eval_time": "150m", "alertname": conventions.ALERT_SCORE_STALE, "exp_alerts": []},
            {"eval_time": "160m", "alertname": conventions.ALERT_SCORE_STALE,
             "exp_alerts": [{"exp_labels": stale_labels}]},
            {"eval_time": "160m", "alertname": conventions.ALERT_SCORE_MISSING, "exp_alerts": []},
        ],
    }]}
    assert_passes(promtool_test(path, tests))
