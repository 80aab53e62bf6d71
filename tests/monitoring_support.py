"""Helpers for the monitoring-loop tests: a small project written into a temp folder, strict validation of
Argo Events objects, the tools (promtool, amtool), and an evaluator of the Sensor's filters and trigger
parameters that follows Argo Events' semantics for what the compiler emits."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from llmops_compiler import api
from llmops_compiler.targets.base import Resource

IMAGE = "registry.test/llmops-runtime@sha256:" + "0123456789abcdef" * 4


def project_yaml(environments: Iterable[tuple[str, str]] = (("dev", "llm-dev"),),
                 runbook_base: str | None = "https://runbooks.test/llmops") -> str:
    envs = "".join(f"    - name: {name}\n      namespace: {namespace}\n" for name, namespace in environments)
    defaults = f"  defaults:\n    runbookBaseUrl: {runbook_base}\n" if runbook_base else ""
    return f"""\
apiVersion: llmops.dev/v1alpha1
kind: Project
metadata:
  name: shop
spec:
  repo:
    url: https://git.test/shop-gitops.git
  environments:
{envs}  mlflow:
    trackingUri: http://mlflow.test:5000
  runtime:
    image: {IMAGE}
  prometheus:
    url: http://prometheus.test:9090
    pushgatewayUrl: http://pushgateway.test:9091
{defaults}"""


def model_yaml(name: str, tuned: bool = False, timeout: str = "2h") -> str:
    text = f"""\
apiVersion: llmops.dev/v1alpha1
kind: Model
metadata:
  name: {name}
spec:
  baseModel: s3://models/base/{name}
  registeredModel: {name}
  serving:
    service:
      name: {name}
      port: 8080
"""
    if tuned:
        text += f"""\
  tuning:
    method: lora
    lora: {{r: 8, alpha: 16}}
    dataset: s3://data/{name}/train.jsonl
    timeout: {timeout}
  evaluation:
    dataset: s3://data/{name}/eval.jsonl
    metrics: [token_f1]
    gates:
      - metric: token_f1
        min: 0.1
"""
    return text


def rollout_yaml(model: str) -> str:
    return f"""\
apiVersion: llmops.dev/v1alpha1
kind: RolloutPolicy
metadata:
  name: {model}
spec:
  model: {model}
  strategy: canary
  steps: [{{weight: 10}}, {{weight: 100}}]
"""


def write_specs(root: Path, documents: dict[str, str]) -> Path:
    """``documents`` maps a path under specs/ to its text; returns the specs folder."""
    specs = root / "specs"
    for relative, text in documents.items():
        path = specs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return specs


def build(specs: Path) -> list[Resource]:
    return api.build(specs).resources


def find(resources: list[Resource], kind: str, environment: str | None = None,
         name: str | None = None) -> list[Resource]:
    return [item for item in resources if item.kind == kind
            and (environment is None or item.environment == environment) and (name is None or item.name == name)]


def one(resources: list[Resource], kind: str, environment: str | None = None, name: str | None = None) -> Resource:
    found = find(resources, kind, environment, name)
    assert len(found) == 1, f"expected one {kind} {name or ''} in {environment or 'any environment'}, got {found}"
    return found[0]


def rules_file(body: dict[str, Any], path: Path, strip_annotations: bool = False) -> Path:
    """A PrometheusRule's ``spec.groups`` as a Prometheus rules file."""
    groups = json.loads(json.dumps(body["spec"]["groups"]))
    if strip_annotations:
        for group in groups:
            for rule in group["rules"]:
                rule.pop("annotations", None)
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


# --- tools ------------------------------------------------------------------------------------------

INSTALL_HINTS = {
    "promtool": "apt-get install prometheus",
    "amtool": "apt-get install prometheus-alertmanager",
    "prometheus": "apt-get install prometheus",
    "prometheus-pushgateway": "apt-get install prometheus-pushgateway",
    "prometheus-alertmanager": "apt-get install prometheus-alertmanager",
    "kubectl": "apt-get install kubernetes-client (Debian), or install kubectl from https://kubernetes.io/docs/tasks/tools/",
    "git": "apt-get install git",
}


def tool(name: str) -> str:
    """The path of a command-line tool; a missing tool fails the test with the command that installs it (never a
    skip, never a bare FileNotFoundError)."""
    path = shutil.which(name)
    assert path is not None, f"`{name}` is not installed: {INSTALL_HINTS.get(name, 'install it')} (see README)"
    return path


def run_tool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool(args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=300,
                          check=False)


def promtool_test(rules: Path, tests: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run ``promtool test rules`` on a test document (next to ``rules``)."""
    path = rules.parent / f"{rules.stem}.test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1m", **tests},
                                   sort_keys=False))
    return run_tool("promtool", "test", "rules", path.name, cwd=rules.parent)


# --- strict validation of Argo Events objects ----------------------------------------------------------

# --- Argo Events semantics (the subset the compiler emits) ---------------------------------------------

_MISSING = object()


def gjson_get(data: Any, path: str) -> Any:
    """GJSON for plain dotted paths (``body.commonLabels.model``, ``body.alerts.0.status``)."""
    current = data
    for key in path.split("."):
        if isinstance(current, dict) and key in current:
            current = current[key]
        elif isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            return _MISSING
    return current


def gjson_string(value: Any) -> str:
    """GJSON's ``Result.String()``: strings as they are, other values as their JSON text."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def data_filters_pass(filters: list[dict[str, Any]], event_data: dict[str, Any]) -> bool:
    """Argo Events' ``filterData`` with the default (``and``) operator, for ``string`` filters: every path must
    exist (a missing one is an error, so the event is dropped) and match one of the values, each a Go regular
    expression searched anywhere in the string (``regexp.Match``); comparator ``=`` (or unset) or ``!=``."""
    for item in filters:
        assert item["type"] == "string", f"the evaluator only knows string filters, got {item}"
        value = gjson_get(event_data, item["path"])
        if value is _MISSING or not item.get("value"):
            return False
        text = gjson_string(value)
        matches = [re.search(pattern, text) is not None for pattern in item["value"]]
        if item.get("comparator", "=") == "!=":
            if not any(not match for match in matches):
                return False
        elif not any(matches):
            return False
    return True


def sjson_set(document: Any, path: str, value: Any) -> None:
    """sjson's ``Set`` for dotted paths through existing objects and list indexes."""
    *parents, last = path.split(".")
    current = document
    for key in parents:
        current = current[int(key)] if isinstance(current, list) else current[key]
    if isinstance(current, list):
        current[int(last)] = value
    else:
        current[last] = value


def fire_sensor(sensor: dict[str, Any], event_source: str, event_name: str, webhook_body: Any = None,
                event_data: Any = None) -> list[dict[str, Any]]:
    """The Workflows the Sensor creates for one event: dependencies whose filters pass, triggers whose
    ``conditions`` name a passing dependency, parameters resolved by ``dataKey`` (default ``value`` when the key
    is missing) and written at ``dest`` (sjson) into the trigger's resource. ``webhook_body`` is wrapped as a
    webhook event's data; ``event_data`` is another source's data as it is."""
    if event_data is None:
        event_data = {"header": {"Content-Type": ["application/json"]}, "body": webhook_body}
    passed = {
        dependency["name"] for dependency in sensor["spec"]["dependencies"]
        if dependency["eventSourceName"] == event_source and dependency["eventName"] == event_name
        and data_filters_pass(dependency.get("filters", {}).get("data", []), event_data)
    }
    submitted = []
    for trigger in sensor["spec"]["triggers"]:
        template = trigger["template"]
        if template["conditions"] not in passed:
            continue
        k8s = template["k8s"]
        assert k8s["operation"] == "create" and k8s["source"]["resource"]["kind"] == "Workflow"
        workflow = json.loads(json.dumps(k8s["source"]["resource"]))
        for parameter in k8s.get("parameters", []):
            source = parameter["src"]
            assert source["dependencyName"] in passed
            value = gjson_get(event_data, source["dataKey"])
            sjson_set(workflow, parameter["dest"], source["value"] if value is _MISSING else gjson_string(value))
        submitted.append(workflow)
    return submitted


def workflow_parameters(workflow: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in workflow["spec"]["arguments"]["parameters"]}


# --- a webhook receiver on loopback (what Alertmanager delivers to) ------------------------------------


class WebhookReceiver:
    """Records every POST: path, ``Authorization`` header and JSON body, in arrival order (thread-safe)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str | None, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.received.append((self.path, self.headers.get("Authorization"), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def at(self, path: str) -> list[Any]:
        """The bodies POSTed to ``path``, oldest first."""
        with self.lock:
            return [body for where, _, body in self.received if where == path]

    def authorizations(self, path: str) -> set[str | None]:
        """The ``Authorization`` headers POSTs to ``path`` carried."""
        with self.lock:
            return {header for where, header, _ in self.received if where == path}


@contextlib.contextmanager
def webhook_receiver(lifetime: float = 300.0) -> Iterator[WebhookReceiver]:
    """A :class:`WebhookReceiver` serving in a thread until the block ends or ``lifetime`` seconds pass."""
    receiver = WebhookReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    stopper = threading.Timer(lifetime, receiver.server.shutdown)  # hard lifetime, whatever the caller does
    stopper.daemon = True
    stopper.start()
    try:
        yield receiver
    finally:
        stopper.cancel()
        receiver.server.shutdown()
        receiver.server.server_close()
