"""Alert routing and the triggers behind it: AlertmanagerConfig (strict, `amtool check-config`, routes tested
with `amtool config routes test`, inhibition in a real Alertmanager), the EventSource and Sensor, the drift
CronWorkflows and the rollback template (strict and as intended), the generated promtool rule tests, and the
diagnostics of bad Monitor specs."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from monitoring_support import (
    build,
    find,
    fire_sensor,
    model_yaml,
    one,
    project_yaml,
    rollout_yaml,
    run_tool,
    workflow_parameters,
    write_specs,
)
from schemas import validate_strict
from servers import alertmanager, alertmanager_alerts, wait_for

from llmops_compiler import api, conventions, rule_tests
from llmops_compiler.cli import main
from llmops_compiler.diagnostics import CompileError, render_human
from llmops_compiler.targets import core, workloads
from llmops_compiler.targets.alertmanager import alertmanager_configuration
from llmops_compiler.targets.base import Resource

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"support-alerts-webhook": {"url": "https://hooks.test/support"},
           "llmops-alert-webhook": {"token": "t0ken-for-tests"}}


@pytest.fixture(scope="module")
def example() -> list[Resource]:
    return build(ROOT / "specs")


def write_config(body: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(alertmanager_configuration(body, SECRETS), sort_keys=False))
    return path


# --- AlertmanagerConfig -------------------------------------------------------------------------------

def test_alertmanager_configs_are_strict_and_pass_amtool(example: list[Resource], tmp_path: Path) -> None:
    from cloudcoil.models.prometheus_operator.v1alpha1 import Route

    configs = find(example, "AlertmanagerConfig")
    assert {item.environment for item in configs} == {"dev", "staging", "prod"}
    for index, item in enumerate(configs):
        validate_strict(item.body)
        # cloudcoil types child routes as `Any` (the CRD cannot nest itself): check them as routes too.
        for child in item.body["spec"]["route"]["routes"]:
            dumped = Route.model_validate(child).model_dump(by_alias=True, exclude_unset=True, mode="json")
            assert dumped == child
        result = run_tool("amtool", "check-config", str(write_config(item.body, tmp_path / f"am-{index}.yaml")))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_routes_send_actions_to_argo_events_and_everything_to_people(example: list[Resource], tmp_path: Path) -> None:
    body = one(example, "AlertmanagerConfig", "prod").body
    path = write_config(body, tmp_path / "alertmanager.yaml")
    prefix = "support-prod/monitor-support-llm/"
    events, people = prefix + conventions.EVENTS_RECEIVER, prefix + "support-oncall"
    alert = ["model=support-llm", "environment=prod", "namespace=support-prod", "llmops_project=support-assistant",
             "llmops_monitor=support-llm"]
    for labels, expected in [
        (["llmops_action=retrain"], f"{events},{people}"),
        (["llmops_action=rollback"], f"{events},{people}"),
        (["llmops_action=notify"], people),
    ]:
        result = run_tool("amtool", "config", "routes", "test", f"--config.file={path}",
                          f"--verify.receivers={expected}", *alert, *labels)
        assert result.returncode == 0, result.stdout + result.stderr
    # Another namespace, model, environment, monitor or project is not this monitor's business.
    for labels in (["namespace=support-dev"], ["model=other"], ["environment=dev"], ["llmops_monitor=other"],
                   ["llmops_project=other"]):
        merged = {item.split("=")[0]: item for item in [*alert, "llmops_action=retrain", *labels]}
        result = run_tool("amtool", "config", "routes", "test", f"--config.file={path}", "--verify.receivers=null",
                          *merged.values())
        assert result.returncode == 0, result.stdout + result.stderr


def test_retrain_repeats_no_sooner_than_the_tuning_timeout(example: list[Resource]) -> None:
    spec = one(example, "AlertmanagerConfig", "prod").body["spec"]
    by_action = {route["matchers"][0]["value"]: route for route in spec["route"]["routes"] if "matchers" in route}
    assert by_action["retrain"]["repeatInterval"] == "4h"  # the Model's tuning timeout
    assert by_action["retrain"]["continue"] is True
    assert spec["route"]["groupBy"] == list(conventions.ALERT_GROUP_BY)
    [receiver] = [item for item in spec["receivers"] if item["name"] == conventions.EVENTS_RECEIVER]
    assert receiver["webhookConfigs"] == [{
        "url": "http://monitor-support-llm-eventsource-svc.support-prod.svc:12000/alerts", "sendResolved": False,
        # Authenticated with the token the EventSource checks.
        "httpConfig": {"authorization": {"type": "Bearer",
                                         "credentials": {"name": "llmops-alert-webhook", "key": "token"}}}}]
    [people] = [item for item in spec["receivers"] if item["name"] == "support-oncall"]
    assert people["webhookConfigs"][0]["urlSecret"] == {"name": "support-alerts-webhook", "key": "url"}


def test_a_page_inhibits_the_ticket_of_the_same_slo(example: list[Resource], tmp_path: Path) -> None:
    body = one(example, "AlertmanagerConfig", "prod").body
    config = alertmanager_configuration(body, SECRETS)
    with alertmanager(yaml.safe_dump(config), lifetime=120) as server:
        labels = {"alertname": conventions.ALERT_SLO_BURN, "model": "support-llm", "environment": "prod",
                  "namespace": "support-prod", "llmops_action": "rollback", "llmops_project": "support-assistant",
                  "llmops_monitor": "support-llm"}
        alerts = [
            {"labels": {**labels, "slo": "availability", "severity": tier, "tier": tier}}
            for tier in ("page", "ticket")
        ] + [{"labels": {**labels, "slo": "answers", "severity": "ticket", "tier": "ticket"}}]
        request = urllib.request.Request(f"{server.url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

        def states() -> dict[tuple[str, str], str] | None:
            """The alerts' states once all three are processed and the inhibitor has seen the page: it learns
            of source alerts asynchronously, so a ticket can read `active` for a moment before `suppressed`."""
            found = {(item["labels"]["slo"], item["labels"]["tier"]): item["status"]["state"]
                     for item in alertmanager_alerts(server.url)}
            settled = len(found) == 3 and "unprocessed" not in found.values()
            return found if settled and found.get(("availability", "ticket")) == "suppressed" else None

        assert wait_for(states, timeout=20) == {
            ("availability", "page"): "active",
            ("availability", "ticket"): "suppressed",
            ("answers", "ticket"): "active",
        }


# --- Argo Events and workflows --------------------------------------------------------------------------

def test_events_and_workflows_are_strictly_valid(example: list[Resource]) -> None:
    kinds = ("EventSource", "Sensor", "CronWorkflow", "WorkflowTemplate", "PrometheusRule", "AlertmanagerConfig")
    checked = [item for item in example if item.kind in kinds]
    assert {item.kind for item in checked} == set(kinds)
    for item in checked:
        validate_strict(item.body)


def test_sensor_selects_firing_alerts_by_action_and_model(example: list[Resource]) -> None:
    sensor = one(example, "Sensor", "prod", "monitor-support-llm").body
    assert sensor["spec"]["template"]["serviceAccountName"] == conventions.SENSOR_SERVICE_ACCOUNT
    source = one(example, "EventSource", "prod", "monitor-support-llm").body
    assert source["spec"]["webhook"]["alertmanager"] == {
        "endpoint": "/alerts", "method": "POST", "port": "12000",
        "authSecret": {"name": "llmops-alert-webhook", "key": "token"},  # unauthenticated requests are refused
    }

    def payload(action: str, status: str = "firing", model: str = "support-llm", **labels: str) -> dict[str, Any]:
        common = {"alertname": "LLMFeatureDrift", "model": model, "environment": "prod",
                  "llmops_action": action, "llmops_project": "support-assistant", "llmops_monitor": "support-llm",
                  **labels}
        return {"version": "4", "status": status, "receiver": "x", "groupLabels": {}, "commonLabels": common,
                "commonAnnotations": {"summary": "Input drift on feature prompt_length"},
                "alerts": [{"status": status, "labels": common}]}

    [retrain] = fire_sensor(sensor, "monitor-support-llm", "alertmanager", payload("retrain", feature="prompt_length"))
    assert retrain["spec"]["workflowTemplateRef"] == {"name": "tune-support-llm"}
    assert workflow_parameters(retrain) == {"reason": "Input drift on feature prompt_length",
                                            "source-alert": "LLMFeatureDrift", "feature": "prompt_length"}
    [rollback] = fire_sensor(sensor, "monitor-support-llm", "alertmanager", payload("rollback"))
    assert rollback["spec"]["workflowTemplateRef"] == {"name": "rollback-support-llm"}
    assert workflow_parameters(rollback) == {"reason": "Input drift on feature prompt_length",
                                             "source-alert": "LLMFeatureDrift"}
    # No feature label (an SLO alert): the default.
    [slo] = fire_sensor(sensor, "monitor-support-llm", "alertmanager", payload("retrain"))
    assert workflow_parameters(slo)["feature"] == ""
    for quiet in (payload("retrain", status="resolved"), payload("notify"), payload("retrain", model="other"),
                  payload("retrain-later"), payload("not-retrain"), payload("retrain", llmops_monitor="other"),
                  payload("retrain", llmops_project="other")):
        assert fire_sensor(sensor, "monitor-support-llm", "alertmanager", quiet) == []
    for trigger in sensor["spec"]["triggers"]:
        assert trigger["rateLimit"] == {"unit": "Hour", "requestsPerUnit": 1}
        # One `create` of a Workflow in the Sensor's own namespace: all its service account may do.
        k8s = trigger["template"]["k8s"]
        assert k8s["operation"] == "create" and k8s["source"]["resource"]["kind"] == "Workflow"
        assert "namespace" not in k8s["source"]["resource"]["metadata"]
    assert core.ROLE_RULES[conventions.SENSOR_SERVICE_ACCOUNT] == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create"]}]


def test_tune_template_holds_a_per_model_mutex(example: list[Resource]) -> None:
    tune = one(example, "WorkflowTemplate", "prod", "tune-support-llm").body
    assert tune["spec"]["synchronization"] == {"mutexes": [{"name": "tune-support-llm"}]}
    parameters = {item["name"] for item in tune["spec"]["arguments"]["parameters"]}
    assert {conventions.TUNE_PARAM_REASON, conventions.TUNE_PARAM_ALERT, conventions.TUNE_PARAM_FEATURE} <= parameters


def test_rollback_template_commits_the_rollback(example: list[Resource]) -> None:
    """The rollback action acts: `promote --rollback` commits the RolloutState back to stable only, with the
    alert as the reason, under the rollout's mutex (one transition at a time), as an identity with no rights."""
    body = one(example, "WorkflowTemplate", "prod", "rollback-support-llm").body
    spec = body["spec"]
    assert spec["serviceAccountName"] == conventions.ROLLOUT_SERVICE_ACCOUNT
    assert spec["securityContext"] == workloads.pod_security_context()
    assert spec["synchronization"] == {"mutexes": [{"name": "rollout-support-llm"}]}
    [template] = spec["templates"]
    container = template["container"]
    assert container["command"] == ["python", "-m", "llmops_compiler.runtime.promote"]
    args = container["args"]
    assert args[args.index("--policy") + 1] == "support-llm" and args[args.index("--environment") + 1] == "prod"
    assert args[-3:] == ["--rollback", "--reason",
                         "{{workflow.parameters.reason}} (alert {{workflow.parameters.source-alert}})"]
    env = {item["name"]: item for item in container["env"]}
    assert env["LLMOPS_GIT_TOKEN"] == {"name": "LLMOPS_GIT_TOKEN",
                                       "valueFrom": {"secretKeyRef": {"name": "llmops-git", "key": "token"}}}
    assert template["container"]["securityContext"] == workloads.container_security_context()
    assert core.ROLE_RULES[conventions.ROLLOUT_SERVICE_ACCOUNT] == core.EXECUTOR_RULES


def test_drift_cron_workflow_runs_the_drift_step(example: list[Resource]) -> None:
    crons = [item for item in find(example, "CronWorkflow", "prod") if item.name.startswith("drift-")]
    assert sorted(item.name for item in crons) == ["drift-support-llm-customer-tier", "drift-support-llm-prompt-length",
                                                    "drift-support-llm-prompt-length-skew"]
    # Training-serving skew: one task, its reference the Dataset's latest evaluation split.
    spec = one(example, "CronWorkflow", "prod", "drift-support-llm-prompt-length-skew").body["spec"]
    assert spec["schedules"] == ["0 */6 * * *"] and spec["concurrencyPolicy"] == "Forbid"
    workflow = spec["workflowSpec"]
    assert workflow["serviceAccountName"] == conventions.WORKFLOW_SERVICE_ACCOUNT
    assert workflow["securityContext"] == workloads.pod_security_context()
    [template] = workflow["templates"]
    container = template["container"]
    assert container["image"] == ("ghcr.io/acme/llmops-runtime@sha256:"
                                  "4b3c5e8f0a9d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b")
    assert container["command"] == ["python", "-m", "llmops_compiler.runtime.drift"]
    args = container["args"]
    options = dict(zip(args[::2], args[1::2], strict=True))
    grouping = [args[index + 1] for index, flag in enumerate(args) if flag == "--grouping-label"]
    assert grouping == ["llmops_project=support-assistant", "llmops_namespace=support-prod",
                        "llmops_monitor=support-llm", "check=prompt-length-skew"]  # the check's owner and identity
    options.pop("--grouping-label")
    assert options == {
        "--model": "support-llm",
        "--reference": "/work/in/reference/eval.jsonl",
        "--current": "/work/in/current",
        "--window": "6h",  # the monitor's window of the logs, by the records' timestamp
        "--timestamp-field": "timestamp",
        "--feature": "prompt_length:length:prompt",
        "--method": "ks",
        "--pushgateway": "http://prometheus-pushgateway.monitoring.svc:9091",
        "--job": conventions.PUSH_JOB_DRIFT,
        "--environment": "prod",
    }
    assert {item["name"] for item in container["env"]} == {"HOME", "PYTHONUNBUFFERED"}  # no MLflow token
    artifacts = {item["name"]: item for item in template["inputs"]["artifacts"]}
    assert artifacts["reference"]["s3"]["bucket"] == "acme-llmops-data"
    assert artifacts["reference"]["s3"]["key"] == "support/datasets/support-feedback/latest/eval.jsonl"
    assert artifacts["current"]["s3"]["key"] == "support-llm/requests/"
    assert artifacts["current"]["path"] == options["--current"]
    # Following the stable version: MLflow names the training data of `stable-prod`, the drift task reads it.
    follow = one(example, "CronWorkflow", "prod", "drift-support-llm-prompt-length").body["spec"]["workflowSpec"]
    templates = {item["name"]: item for item in follow["templates"]}
    assert [task["name"] for task in templates["main"]["dag"]["tasks"]] == ["reference", "drift"]
    resolve = templates["reference"]["container"]
    assert resolve["command"][-1] == "llmops_compiler.runtime.dataset_version"
    assert resolve["args"][:4] == ["--from-model", "support-llm", "--alias", "stable-prod"]
    reference = next(item for item in templates["drift"]["inputs"]["artifacts"] if item["name"] == "reference")
    assert "inputs.parameters['reference-uri']" in reference["s3"]["key"]


def test_drift_arguments_are_what_the_drift_step_accepts(example: list[Resource]) -> None:
    from llmops_compiler.runtime.drift import build_parser

    for item in find(example, "CronWorkflow"):
        if not item.name.startswith("drift-"):
            continue
        [template] = [template for template in item.body["spec"]["workflowSpec"]["templates"]
                      if template.get("container", {}).get("command", [""])[-1] == "llmops_compiler.runtime.drift"]
        args = template["container"]["args"]
        parsed = build_parser().parse_args(args)
        assert parsed.model == "support-llm" and parsed.environment == item.environment


def test_notify_only_monitor_has_no_triggers(tmp_path: Path) -> None:
    specs = write_specs(tmp_path, {
        "project.yaml": project_yaml(),
        "models/chat.yaml": model_yaml("chat"),
        "monitoring/chat.yaml": """\
apiVersion: llmops.dev/v1alpha1
kind: Monitor
metadata:
  name: chat
spec:
  model: chat
  slos:
    - {name: errors, type: errorRatio, objective: 0.99}
""",
    })
    resources = build(specs)
    assert find(resources, "EventSource") == find(resources, "Sensor") == []
    assert find(resources, "WorkflowTemplate", name="rollback-chat") == []
    spec = one(resources, "AlertmanagerConfig").body["spec"]
    assert [item["name"] for item in spec["receivers"]] == [conventions.NOTIFY_RECEIVER]
    assert spec["route"]["routes"] == [{"receiver": conventions.NOTIFY_RECEIVER}]


# --- generated promtool rule tests ------------------------------------------------------------------------

def test_llmops_test_rules_passes_on_the_example() -> None:
    result = CliRunner().invoke(main, ["test-rules", str(ROOT / "specs"), "--env", "prod"])
    assert result.exit_code == 0, result.output
    assert "prod: Monitor support-llm: 24 rule test case(s) ok" in result.output


def test_generated_rule_tests_fail_when_an_alert_is_wrong(tmp_path: Path) -> None:
    graph = api.build(ROOT / "specs").graph
    view = graph.environments[-1]
    files = rule_tests.rule_test_files(view, view.monitors()[0])
    assert files is not None
    ok, output = rule_tests.run_promtool(files, tmp_path)
    assert ok, output
    tampered = files[rule_tests.RULES_FILE].replace("> (6 * 0.001)", "> (16 * 0.001)")
    assert tampered != files[rule_tests.RULES_FILE]
    (tmp_path / "other").mkdir()
    ok, output = rule_tests.run_promtool({**files, rule_tests.RULES_FILE: tampered}, tmp_path / "other")
    assert not ok and "FAILED" in output


# --- diagnostics of bad Monitor specs ---------------------------------------------------------------------

MONITOR = """\
apiVersion: llmops.dev/v1alpha1
kind: Monitor
metadata:
  name: chat
spec:
  model: chat
  logs: s3://logs/chat/
  features:
    - {name: prompt_length, type: length, field: prompt}
  slos:
    - name: errors
      type: errorRatio
      objective: 0.99
      window: 30d
      action: notify
  drift:
    - name: prompt
      feature: prompt_length
      reference: s3://data/chat/reference.jsonl
      threshold: 0.2
      action: notify
"""


def diagnostics(tmp_path: Path, monitor: str, rollout: bool = True) -> list[str]:
    documents = {"project.yaml": project_yaml(), "models/chat.yaml": model_yaml("chat"),
                 "monitoring/chat.yaml": monitor}
    if rollout:
        documents["rollouts/chat.yaml"] = rollout_yaml("chat")
    specs = write_specs(tmp_path, documents)
    with pytest.raises(CompileError) as raised:
        api.build(specs)
    return [line for line in render_human(raised.value.diagnostics).splitlines() if ": error[" in line]


@pytest.mark.parametrize(("change", "expected"), [
    (("objective: 0.99", "objective: 1.5"),
     "specs/monitoring/chat.yaml:13:18: error[LLM106]: `objective` must be less than 1.0, got 1.5"),
    (("objective: 0.99", "objective: 0"),
     "specs/monitoring/chat.yaml:13:18: error[LLM106]: `objective` must be greater than 0.0, got 0"),
    (("window: 30d", "window: 7d"),
     "specs/monitoring/chat.yaml:14:15: error[LLM104]: `window` is `7d`, which is not allowed"),
    (("feature: prompt_length\n", "feature: prompt_lenght\n"),
     "specs/monitoring/chat.yaml:18:16: error[LLM263]: drift check on feature `prompt_lenght`, "
     "which the monitor does not declare"),
    (("objective: 0.99", "objective: 0.8"),
     "specs/monitoring/chat.yaml:13:18: error[LLM267]: with objective 0.8, a page needs more than 120% "
     "of requests to be bad, which cannot happen"),
    (("reference: s3://data/chat/reference.jsonl", "reference: hdfs://namenode/data/reference.jsonl"),
     "specs/monitoring/chat.yaml:19:18: error[LLM265]: `hdfs://namenode/data/reference.jsonl` cannot be fetched by "
     "the drift workflow"),
])
def test_bad_monitor_specs(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    assert MONITOR.count(change[0]) == 1
    assert diagnostics(tmp_path, MONITOR.replace(*change)) == [expected]


def test_rollback_without_a_rollout_policy(tmp_path: Path) -> None:
    monitor = MONITOR.replace("      action: notify\n  drift:", "      action: rollback\n  drift:")
    assert diagnostics(tmp_path, monitor, rollout=False) == [
        "specs/monitoring/chat.yaml:15:15: error[LLM313]: action `rollback` on Model `chat`, "
        "which no RolloutPolicy rolls out"]


def test_two_checks_of_one_feature_and_method(tmp_path: Path) -> None:
    monitor = MONITOR + """\
    - name: prompt-again
      feature: prompt_length
      method: psi
      reference: s3://data/chat/other.jsonl
      threshold: 0.3
"""
    assert diagnostics(tmp_path, monitor) == [
        "specs/monitoring/chat.yaml:23:16: error[LLM266]: two drift checks score feature `prompt_length` with "
        "`psi`: their alerts would be one"]


# --- one owner per alert, route and trigger ----------------------------------------------------------------

TWO_MONITORS = {
    "answers.yaml": """\
apiVersion: llmops.dev/v1alpha1
kind: Monitor
metadata:
  name: answers
spec:
  model: chat
  slos:
    - {name: errors, type: errorRatio, objective: 0.99, action: retrain}
""",
    "latency.yaml": """\
apiVersion: llmops.dev/v1alpha1
kind: Monitor
metadata:
  name: latency
spec:
  model: chat
  slos:
    - {name: slow, type: latency, objective: 0.99, latencyThreshold: 2.5, action: retrain}
""",
}


def test_one_alert_starts_at_most_one_workflow_with_two_monitors_on_one_model(tmp_path: Path) -> None:
    """Two Monitors of one model both retrain: an alert of one is routed to its own webhook only, and only its
    own Sensor accepts it, so one alert starts one workflow."""
    specs = write_specs(tmp_path, {"project.yaml": project_yaml(), "models/chat.yaml": model_yaml("chat", tuned=True),
                                   **{f"monitoring/{name}": text for name, text in TWO_MONITORS.items()}})
    resources = build(specs)
    sensors = {item.name: item.body for item in find(resources, "Sensor")}
    assert set(sensors) == {"monitor-answers", "monitor-latency"}
    for owner in ("answers", "latency"):
        labels = {"alertname": conventions.ALERT_SLO_BURN, "model": "chat", "environment": "dev",
                  "namespace": "llm-dev", "llmops_action": "retrain", "llmops_project": "shop",
                  "llmops_monitor": owner, "slo": "errors", "severity": "page"}
        payload = {"version": "4", "status": "firing", "receiver": "x", "groupLabels": {}, "commonLabels": labels,
                   "commonAnnotations": {"summary": "burn"}, "alerts": [{"status": "firing", "labels": labels}]}
        started = {name: fire_sensor(body, name, "alertmanager", payload) for name, body in sensors.items()}
        assert {name: len(workflows) for name, workflows in started.items()} == {
            f"monitor-{name}": int(name == owner) for name in ("answers", "latency")}
        # Alertmanager: each monitor's configuration routes only its own alerts to its webhook.
        for config in find(resources, "AlertmanagerConfig"):
            path = write_config(config.body, tmp_path / f"{config.name}-{owner}.yaml")
            mine = config.name == f"monitor-{owner}"
            prefix = f"llm-dev/{config.name}/"
            both = f"{prefix}{conventions.EVENTS_RECEIVER},{prefix}{conventions.NOTIFY_RECEIVER}"
            expected = both if mine else "null"
            result = run_tool("amtool", "config", "routes", "test", f"--config.file={path}",
                              f"--verify.receivers={expected}",
                              *(f"{key}={value}" for key, value in labels.items()))
            assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", ["#!/bin/sh\necho 'panic: runtime error' >&2\nexit 3\n",
                                    "#!/bin/sh\nexec sleep 30\n"])
def test_a_promtool_that_does_not_work_is_a_tool_error_not_a_failed_test(
        script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """promtool ends with 0 (passed) or 1 (failed); a crash (another code) or a hang is the tool's problem:
    exit 2 with what it said, never "rule tests FAILED"."""
    fake = tmp_path / "bin" / "promtool"
    fake.parent.mkdir()
    fake.write_text(script)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(rule_tests, "PROMTOOL_SECONDS", 2)
    result = CliRunner().invoke(main, ["test-rules", str(ROOT / "specs"), "--env", "prod"])
    assert result.exit_code == 2, result.output
    assert "FAILED" not in result.output
    assert ("did not work (exit 3): panic: runtime error" if "exit 3" in script else "did not finish in 2 s") \
        in result.output
