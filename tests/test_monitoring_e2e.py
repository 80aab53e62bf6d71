"""The monitoring loop end to end, with real servers on loopback: the drift step (run with the arguments of
the compiled CronWorkflow) pushes scores to a Pushgateway; Prometheus, evaluating the compiled rules, fires
the drift alert; Alertmanager, configured from the compiled AlertmanagerConfig, delivers it to webhooks this
test serves; the compiled Sensor's filters and parameters, applied to the delivered payload, start exactly
``tune-<model>`` with the alert's name and feature. Unshifted data fires nothing."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from monitoring_support import (
    build,
    fire_sensor,
    model_yaml,
    one,
    project_yaml,
    rules_file,
    webhook_receiver,
    workflow_parameters,
    write_specs,
)
from servers import alertmanager, prometheus, prometheus_alerts, pushgateway, query, wait_for

from llmops_compiler import conventions
from llmops_compiler.targets.alertmanager import alertmanager_configuration

ENV, NAMESPACE, MODEL = "e2e", "llm-e2e", "chat"
LIFETIME = 120.0

MONITOR = f"""\
apiVersion: llmops.dev/v1alpha1
kind: Monitor
metadata:
  name: {MODEL}
spec:
  model: {MODEL}
  logs: s3://logs/{MODEL}/requests/
  features:
    - {{name: prompt_length, type: length, field: prompt}}
    - {{name: tier, type: categorical, field: meta.tier}}
  drift:
    - name: prompt
      feature: prompt_length
      method: psi
      reference: s3://data/{MODEL}/reference.jsonl
      threshold: 0.2
      for: 1s
      action: retrain
    - name: tier
      feature: tier
      method: js
      reference: s3://data/{MODEL}/reference.jsonl
      threshold: 0.1
      for: 1s
      action: notify
"""


WEBHOOK_TOKEN = "e2e-token"
SECRETS = {"llmops-alert-webhook": {"token": WEBHOOK_TOKEN}}


def dataset(path: Path, shifted: bool, seed: int) -> Path:
    rng = random.Random(seed)
    lines = []
    for _ in range(400):
        length = max(1, int(rng.gauss(220 if shifted else 80, 25)))
        tiers = ["enterprise"] * 6 + ["free"] * 1 if shifted else ["free"] * 6 + ["enterprise"] * 1
        lines.append(json.dumps({"prompt": "x" * length, "meta": {"tier": rng.choice(tiers)}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def drift_commands(resources: list[Any], reference: Path, current: Path, pushgateway_url: str) -> list[list[str]]:
    """The drift step as each compiled CronWorkflow runs it, with local files and the test's Pushgateway."""
    commands = []
    for cron in (item for item in resources if item.kind == "CronWorkflow"):
        container = cron.body["spec"]["workflowSpec"]["templates"][0]["container"]
        args = list(container["args"])
        for option, value in (("--reference", reference), ("--current", current), ("--pushgateway", pushgateway_url)):
            args[args.index(option) + 1] = str(value)
        assert container["command"][:2] == ["python", "-m"]
        commands.append([sys.executable, *container["command"][1:], *args])
    return commands


def run_drift(commands: list[list[str]]) -> None:
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_configuration_override_keeps_the_compiled_routes(tmp_path: Path) -> None:
    """What the end-to-end test changes in the compiled Alertmanager configuration: only URLs and timings."""
    specs = write_specs(tmp_path, {"project.yaml": project_yaml([(ENV, NAMESPACE)]),
                                   "models/chat.yaml": model_yaml(MODEL, tuned=True), "monitoring/chat.yaml": MONITOR})
    original = alertmanager_configuration(one(build(specs), "AlertmanagerConfig", ENV).body, SECRETS)
    changed = local_configuration(original, "http://127.0.0.1:1")
    for configuration in (original, changed):
        for route in configuration["route"]["routes"]:
            for key in ("group_wait", "group_interval", "repeat_interval"):
                route.pop(key, None)
        for receiver in configuration["receivers"]:
            receiver.pop("webhook_configs", None)
    assert changed == original


def local_configuration(configuration: dict[str, Any], hooks_url: str) -> dict[str, Any]:
    """Webhooks pointed at this test's server, and notifications after a second instead of half a minute."""
    changed = json.loads(json.dumps(configuration))
    first = changed["route"]["routes"][0]
    first.update({"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"})
    for receiver in changed["receivers"]:
        if receiver["name"].endswith("/" + conventions.EVENTS_RECEIVER):
            receiver["webhook_configs"][0]["url"] = f"{hooks_url}/events"
        elif receiver["name"].endswith("/" + conventions.NOTIFY_RECEIVER):
            receiver["webhook_configs"] = [{"url": f"{hooks_url}/notify", "send_resolved": False}]
    return changed


@pytest.mark.slow
def test_drift_alert_starts_the_tune_workflow(tmp_path: Path) -> None:
    started = time.monotonic()
    specs = write_specs(tmp_path, {
        "project.yaml": project_yaml([(ENV, NAMESPACE)]),
        "models/chat.yaml": model_yaml(MODEL, tuned=True),
        "monitoring/chat.yaml": MONITOR,
    })
    resources = build(specs)
    rules = rules_file(one(resources, "PrometheusRule", ENV).body, tmp_path / "rules.yaml")
    sensor = one(resources, "Sensor", ENV).body
    event_source = one(resources, "EventSource", ENV)
    [event_name] = event_source.body["spec"]["webhook"]
    reference = dataset(tmp_path / "reference.jsonl", shifted=False, seed=1)
    steady = dataset(tmp_path / "steady.jsonl", shifted=False, seed=2)
    shifted = dataset(tmp_path / "shifted.jsonl", shifted=True, seed=3)

    with webhook_receiver(lifetime=LIFETIME) as received, pushgateway(lifetime=LIFETIME) as gateway:
        configuration = local_configuration(
            alertmanager_configuration(one(resources, "AlertmanagerConfig", ENV).body, SECRETS), received.url)
        with alertmanager(yaml.safe_dump(configuration), lifetime=LIFETIME) as manager, \
                prometheus([rules], [gateway.url], manager.url, lifetime=LIFETIME) as server:
            # Unshifted logs: the scores arrive, stay under the thresholds, and nothing fires.
            run_drift(drift_commands(resources, reference, steady, gateway.url))
            scores = wait_for(lambda: len(query(server.url, f'llmops_drift_score{{environment="{ENV}"}}')) == 2
                              and query(server.url, f'llmops_drift_score{{environment="{ENV}"}}'), timeout=20)
            assert all(float(item["value"][1]) < 0.1 for item in scores), scores
            time.sleep(4)  # `for: 1s` at a 1s evaluation: an alert would be firing and delivered by now
            assert prometheus_alerts(server.url) == [] and received.received == []

            # Shifted logs: both checks fire; only the retrain alert goes to Argo Events.
            run_drift(drift_commands(resources, reference, shifted, gateway.url))
            wait_for(lambda: received.at("/events"), timeout=30, message="a notification to the Argo Events webhook")
            wait_for(lambda: len({alert["labels"]["feature"] for body in received.at("/notify")
                                  for alert in body["alerts"]}) == 2, timeout=30,
                     message="both drift alerts at the notification receiver")
            time.sleep(2)  # anything else that would arrive
            firing = {alert["labels"]["feature"] for alert in prometheus_alerts(server.url)
                      if alert["state"] == "firing"}
            assert firing == {"prompt_length", "tier"}

    deliveries = received.at("/events")
    assert all(body["commonLabels"]["llmops_action"] == "retrain" for body in deliveries)
    # Alertmanager authenticates with the token of the Secret the EventSource checks (`authSecret`).
    [hook] = event_source.body["spec"]["webhook"].values()
    assert SECRETS[hook["authSecret"]["name"]][hook["authSecret"]["key"]] == WEBHOOK_TOKEN
    assert received.authorizations("/events") == {f"Bearer {WEBHOOK_TOKEN}"}
    workflows = [workflow for body in deliveries
                 for workflow in fire_sensor(sensor, event_source.name, event_name, body)]
    assert len(workflows) == 1, deliveries
    [workflow] = workflows
    assert workflow["kind"] == "Workflow"
    assert workflow["spec"]["workflowTemplateRef"] == {"name": f"tune-{MODEL}"}
    assert workflow_parameters(workflow) == {
        conventions.TUNE_PARAM_REASON: f"Input drift on feature prompt_length of model {MODEL} in {ENV}",
        conventions.TUNE_PARAM_ALERT: conventions.ALERT_DRIFT,
        conventions.TUNE_PARAM_FEATURE: "prompt_length",
    }
    # The notify alert reached people, and the Sensor ignores it.
    notified = [body for body in received.at("/notify") if body["commonLabels"]["feature"] == "tier"]
    assert notified and all(fire_sensor(sensor, event_source.name, event_name, body) == [] for body in notified)
    # The tune template the Sensor submits to exists and queues concurrent runs behind a per-model mutex.
    tune = one(resources, "WorkflowTemplate", ENV, f"tune-{MODEL}").body
    assert tune["spec"]["synchronization"] == {"mutexes": [{"name": f"tune-{MODEL}"}]}
    assert time.monotonic() - started < 90
