"""``llmops requirements``: what a cluster must already have before ArgoCD syncs the output, so that a sync never
fails on something a person could have been told (a CRD, a controller too old, a Secret or one of its keys:
prometheus-operator drops a whole AlertmanagerConfig, the retrain route with it, when one key is missing).

Secrets are found by walking the generated objects, not the specs: every ``{name, key}`` reference a
controller or a pod resolves (``secretKeyRef``, ``accessKeySecret``, ``authSecret``, ``credentials``,
``urlSecret``, ...), and the Secrets the serving app reads through the tool registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import conventions
from .api import Build
from .platform import MINIMUM

# (API group, kind) → (CRD name, controller, Project platform field)
CRDS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("argoproj.io", "WorkflowTemplate"): ("workflowtemplates.argoproj.io", "Argo Workflows", "argoWorkflows"),
    ("argoproj.io", "CronWorkflow"): ("cronworkflows.argoproj.io", "Argo Workflows", "argoWorkflows"),
    ("argoproj.io", "EventBus"): ("eventbus.argoproj.io", "Argo Events", "argoEvents"),
    ("argoproj.io", "EventSource"): ("eventsources.argoproj.io", "Argo Events", "argoEvents"),
    ("argoproj.io", "Sensor"): ("sensors.argoproj.io", "Argo Events", "argoEvents"),
    ("argoproj.io", "Application"): ("applications.argoproj.io", "ArgoCD", "argocd"),
    ("argoproj.io", "AppProject"): ("appprojects.argoproj.io", "ArgoCD", "argocd"),
    ("monitoring.coreos.com", "PrometheusRule"): ("prometheusrules.monitoring.coreos.com", "prometheus-operator",
                                                  "prometheusOperator"),
    ("monitoring.coreos.com", "AlertmanagerConfig"): ("alertmanagerconfigs.monitoring.coreos.com",
                                                      "prometheus-operator", "prometheusOperator"),
    ("networking.istio.io", "VirtualService"): ("virtualservices.networking.istio.io", "Istio", "istio"),
    ("networking.istio.io", "DestinationRule"): ("destinationrules.networking.istio.io", "Istio", "istio"),
}
# Keys under which the generated objects name a Secret as {name, key}.
SECRET_REFERENCE_KEYS = frozenset({
    "secretKeyRef", "accessKeySecret", "secretKeySecret", "authSecret", "credentials", "urlSecret", "accessKey",
    "secretKey", "sessionToken", "tokenSecret", "passwordSecret",
})


@dataclass(frozen=True)
class SecretReference:
    namespace: str
    name: str
    key: str
    used_by: tuple[str, ...]


@dataclass(frozen=True)
class Requirements:
    """What one or all environments need from their cluster."""

    controllers: list[tuple[str, str, str]]  # (controller, declared version, minimum version)
    crds: list[tuple[str, str]]  # (CRD name, controller)
    secrets: list[SecretReference]
    notes: list[str] = field(default_factory=list)


def secret_references(body: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (Secret name, key) an object references, at any depth."""
    if isinstance(body, Mapping):
        for key, value in body.items():
            if key in SECRET_REFERENCE_KEYS and isinstance(value, Mapping) and isinstance(value.get("name"), str) \
                    and isinstance(value.get("key"), str):
                yield value["name"], value["key"]
            else:
                yield from secret_references(value)
    elif isinstance(body, list):
        for item in body:
            yield from secret_references(item)


def _tool_secrets(body: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Secrets the serving app reads for the tools of the tool registry ConfigMap."""
    if body.get("kind") != "ConfigMap" or body["metadata"]["name"] != conventions.TOOL_REGISTRY_CONFIGMAP:
        return
    for text in body.get("data", {}).values():
        for tool in (yaml.safe_load(text) or {}).get("tools", []):
            auth = tool.get("auth")
            if isinstance(auth, Mapping):
                yield auth["secretName"], auth["secretKey"]


def requirements(build: Build, environment: str | None = None) -> Requirements:
    """The requirements of ``environment`` (all environments when None), from the built output."""
    project = build.graph.project.spec
    selected = [item for item in build.resources
                if environment is None or item.environment in (environment, conventions.ARGOCD_FOLDER)]
    kinds = {(str(item.body["apiVersion"]).split("/")[0] if "/" in item.body["apiVersion"] else "", item.kind)
             for item in selected}
    crds = sorted({(CRDS[key][0], CRDS[key][1]) for key in kinds if key in CRDS})
    fields = sorted({CRDS[key][2] for key in kinds if key in CRDS} | {"kubernetes"})
    platform = project.platform.model_dump(by_alias=True)
    controllers = [(next((controller for _, controller, name in CRDS.values() if name == field_name), "Kubernetes"),
                    platform[field_name], "{}.{}".format(*MINIMUM[field_name][0])) for field_name in fields]
    found: dict[tuple[str, str, str], set[str]] = {}
    for item in selected:
        namespace = item.body["metadata"].get("namespace")
        if item.environment == conventions.ARGOCD_FOLDER or not namespace:
            continue
        for name, key in [*secret_references(item.body), *_tool_secrets(item.body)]:
            found.setdefault((namespace, name, key), set()).add(item.path)
    secrets = [SecretReference(namespace, name, key, tuple(sorted(paths)))
               for (namespace, name, key), paths in sorted(found.items())]
    return Requirements(sorted(set(controllers)), crds, secrets, _notes(build, kinds))


def _notes(build: Build, kinds: set[tuple[str, str]]) -> list[str]:
    project = build.graph.project.spec
    notes = []
    if ("argoproj.io", "EventBus") in kinds:
        notes.append(f"Argo Events' controller config (`argo-events-controller-config`) lists JetStream version "
                     f"`{project.event_bus.jetstream_version}`")
    if ("monitoring.coreos.com", "PrometheusRule") in kinds:
        labels = ", ".join(f"{key}={value}" for key, value in project.prometheus.rule_labels.items()) or "none"
        notes.append(f"a Prometheus whose ruleSelector matches the rules' labels ({labels}), and that scrapes "
                     "the Pushgateway with `honor_labels: true` (ServiceMonitor `honorLabels: true`), so the "
                     "pushed `job` and owner labels the rules select on are kept")
    if ("monitoring.coreos.com", "AlertmanagerConfig") in kinds:
        labels = ", ".join(f"{key}={value}"
                           for key, value in project.prometheus.alertmanager_config_labels.items()) or "none"
        notes.append(f"an Alertmanager whose alertmanagerConfigSelector matches the configs' labels ({labels})")
    if project.runtime.artifact_repository is None and any(kind in ("WorkflowTemplate", "CronWorkflow")
                                                           for _, kind in kinds):
        notes.append("a default artifact repository in the workflow controller's config (the Project names none)")
    notes.append(f"the runtime image `{project.runtime.image}` (`llmops-compiler[runtime]`) pullable by every node")
    for pool in project.node_pools:
        labels = ", ".join(f"{key}={value}" for key, value in pool.node_selector.items())
        offers = ", ".join(f"{key} {value}" for key, value in pool.allocatable.items())
        notes.append(f"nodes of pool `{pool.name}` ({labels}) offering {offers}")
    return notes


def render_text(found: Requirements) -> str:
    lines = ["Controllers (declared in the Project's `platform`; at least the minimum):"]
    lines += [f"  {controller} {declared} (minimum {minimum})" for controller, declared, minimum in found.controllers]
    lines += ["", "CustomResourceDefinitions:"]
    lines += [f"  {name} ({controller})" for name, controller in found.crds]
    lines += ["", "Secrets (create them before the first sync; every key must exist):"]
    for reference in found.secrets:
        lines.append(f"  {reference.namespace}/{reference.name} key `{reference.key}` "
                     f"(used by {', '.join(reference.used_by)})")
    if not found.secrets:
        lines.append("  none")
    lines += ["", "Also:"] + [f"  - {note}" for note in found.notes]
    return "\n".join(lines)


def render_json(found: Requirements) -> str:
    return json.dumps({
        "controllers": [{"controller": controller, "declared": declared, "minimum": minimum}
                        for controller, declared, minimum in found.controllers],
        "crds": [{"name": name, "controller": controller} for name, controller in found.crds],
        "secrets": [{"namespace": reference.namespace, "name": reference.name, "key": reference.key,
                     "usedBy": list(reference.used_by)} for reference in found.secrets],
        "notes": found.notes,
    }, indent=2)
