"""Argo Events per Monitor and environment: the webhook EventSource Alertmanager notifies, and the Sensor that
turns a firing ``retrain`` or ``rollback`` alert into a Workflow; plus the ``rollback-<model>`` template.

The Sensor selects with data filters (Argo Events evaluates them on the event's ``data``, which for a
webhook is ``{"header": ..., "body": <Alertmanager's payload>}``; a ``string`` filter is a Go regular
expression matched anywhere, hence the anchors): ``body.status`` is ``firing`` and ``body.commonLabels``'s
``model``, ``environment`` and ``llmops_action`` are this monitor's. The Alertmanager route groups by
those labels (``conventions.ALERT_GROUP_BY``), so they are common to every alert of a notification. Trigger
parameters copy ``body.commonLabels.alertname`` / ``.feature`` and ``body.commonAnnotations.summary`` (GJSON
paths, with defaults for alerts that lack them) into the submitted Workflow.

The triggers create the Workflow (``workflowTemplateRef``) with the standard Kubernetes trigger, one API call
that the Sensor's service account may make (``create workflows``, nothing else); the ``argoWorkflow``
trigger would run ``argo submit`` and list workflows afterwards, which needs more rights.

No retrain storm: only firing alerts of exactly this monitor pass; Alertmanager repeats a retrain alert no
sooner than the tuning timeout; ``tune-<model>`` holds a per-model mutex and its first step (the guard) skips a
retrain within the tuning timeout of the last one or while a candidate is rolled out. Each trigger also has a
rate limit, which *delays* triggers over the limit (Argo Events' limiter blocks, ``pkg/sensors/listener.go``),
never drops them: it spaces workflows out, the guard decides whether they retrain.

Nothing is lost: events travel on a JetStream EventBus (generated per environment, :func:`event_bus`), and
each trigger is ``atLeastOnce`` (the event is acknowledged only after the trigger ran, so a Sensor that dies
mid-trigger gets it again) with a retry strategy (from Argo Events 1.9, retries need ``atLeastOnce``).

The pods Argo Events runs for them are admissible under the restricted Pod Security Standard: the
argo-events image has no ``USER`` (it runs as root), so ``runAsNonRoot`` needs the explicit user 9731 that
upstream's own install gives the controller.

EventSource and Sensor are plain dicts: hera's events models nest the webhook's inline fields under
``webhookContext`` and drop an inline trigger ``resource``, so they cannot describe these objects.
"""

from __future__ import annotations

from typing import Any

from .. import conventions
from ..resolve import EnvironmentView, ResolvedSpec
from ..specs import MonitorSpec
from . import argo, rollout_steps
from .base import Body, Resource, metadata, resource

API_VERSION = "argoproj.io/v1alpha1"
# At most this many workflows per action and monitor (Argo Events `rateLimit` on the trigger).
TRIGGER_RATE_LIMIT: dict[str, Body] = {
    "retrain": {"unit": "Hour", "requestsPerUnit": 1},
    "rollback": {"unit": "Hour", "requestsPerUnit": 1},
}
ROLLBACK_PARAM_REASON = conventions.TUNE_PARAM_REASON
ROLLBACK_PARAM_ALERT = conventions.TUNE_PARAM_ALERT
DEFAULT_REASON = "alert"


# The user upstream's install runs the argo-events controller as (manifests/install.yaml); the image itself
# declares none, so without it `runAsNonRoot` makes the kubelet refuse the pod.
ARGO_EVENTS_USER = 9731
# Retries of a trigger whose API call failed (Argo Events retryStrategy: steps, duration, factor, jitter).
TRIGGER_RETRY: Body = {"steps": 5, "duration": "10s", "factor": 2, "jitter": 0.1}


def pod_template(service_account: str | None = None) -> Body:
    """``spec.template`` of an EventSource or Sensor: a fixed non-root user, no privilege, read-only root."""
    template: Body = {}
    if service_account:
        template["serviceAccountName"] = service_account
    template["securityContext"] = {
        "runAsNonRoot": True, "runAsUser": ARGO_EVENTS_USER, "runAsGroup": ARGO_EVENTS_USER,
        "fsGroup": ARGO_EVENTS_USER, "seccompProfile": {"type": "RuntimeDefault"},
    }
    template["container"] = {"securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }}
    return template


def event_bus(view: EnvironmentView) -> list[Resource]:
    """The JetStream EventBus named ``default`` (the one EventSources and Sensors use when they name none), in
    every environment that has EventSources or Sensors. NATS Streaming would refuse a Sensor with two
    dependencies on one event, which the alert Sensors have."""
    if not any(monitor.spec.triggered_actions() for monitor in view.monitors()) and not view.knowledge_bases():
        return []
    settings = view.project.spec.event_bus
    jetstream: Body = {"version": settings.jetstream_version, "replicas": settings.replicas}
    if settings.replicas == 1:  # the stream's own replicas default to 3 and are not reduced to the servers'
        jetstream["streamConfig"] = "replicas: 1\n"
    body: Body = {
        "apiVersion": API_VERSION,
        "kind": "EventBus",
        "metadata": metadata(view, conventions.EVENT_BUS_NAME, component="events"),
        "spec": {"jetstream": jetstream},
    }
    return [resource(view, body, view.project.source)]


def alert_event_source(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec]) -> Body:
    port = conventions.ALERT_WEBHOOK_PORT
    token = view.project.spec.alerting.webhook_token
    return {
        "apiVersion": API_VERSION,
        "kind": "EventSource",
        "metadata": metadata(view, conventions.monitor_resource_name(monitor.name), monitor, component="alerts"),
        "spec": {
            "template": pod_template(),
            "service": {"ports": [{"port": port, "targetPort": port}]},
            "webhook": {
                conventions.ALERT_WEBHOOK_EVENT: {
                    "endpoint": conventions.ALERT_WEBHOOK_ENDPOINT,
                    "method": "POST",
                    "port": str(port),
                    # Requests without the bearer token Alertmanager sends are refused.
                    "authSecret": {"name": token.name, "key": token.key},
                },
            },
        },
    }


def exactly(value: str) -> str:
    """An anchored Go regular expression matching ``value`` only (names are DNS labels: no metacharacters
    but ``.``, which is escaped)."""
    return "^" + value.replace(".", "\\.") + "$"


def dependency_filters(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec], action: str) -> list[Body]:
    """Only firing alerts of exactly this owner (project, monitor), model, environment and action pass."""
    labels = "body.commonLabels."
    wanted = [
        ("body.status", "firing"),
        (labels + conventions.LABEL_PROJECT, view.project.name),
        (labels + conventions.LABEL_MONITOR, monitor.name),
        (labels + conventions.LABEL_MODEL, monitor.spec.model),
        (labels + conventions.LABEL_ENVIRONMENT, view.name),
        (labels + conventions.LABEL_ACTION, action),
    ]
    return [{"path": path, "type": "string", "value": [exactly(value)]} for path, value in wanted]


def _parameters(action: str) -> list[tuple[str, str, str]]:
    """(workflow parameter, GJSON path in the event data, default when the path is missing)."""
    parameters = [
        (conventions.TUNE_PARAM_REASON, f"body.commonAnnotations.{conventions.ALERT_ANNOTATION_SUMMARY}",
         DEFAULT_REASON),
        (conventions.TUNE_PARAM_ALERT, f"body.commonLabels.{conventions.LABEL_ALERTNAME}", ""),
    ]
    if action == "retrain":
        parameters.append((conventions.TUNE_PARAM_FEATURE, f"body.commonLabels.{conventions.LABEL_FEATURE}", ""))
    return parameters


def trigger_labels(view: EnvironmentView, spec: ResolvedSpec[Any]) -> dict[str, str]:
    """Labels of a Workflow a Sensor creates: the project, environment and spec that started it."""
    return {
        conventions.LABEL_PART_OF: view.project.name,
        conventions.LABEL_ENV: view.name,
        conventions.LABEL_SPEC_KIND: spec.kind.lower(),
        conventions.LABEL_SPEC_NAME: spec.name,
    }


def workflow_template_name(model: str, action: str) -> str:
    return conventions.tune_workflow_name(model) if action == "retrain" else conventions.rollback_workflow_name(model)


def _trigger(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec], action: str) -> Body:
    template = workflow_template_name(monitor.spec.model, action)
    parameters = _parameters(action)
    workflow: Body = {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"generateName": f"{template}-", "labels": trigger_labels(view, monitor)},
        "spec": {
            "workflowTemplateRef": {"name": template},
            "arguments": {"parameters": [{"name": name, "value": default} for name, _, default in parameters]},
        },
    }
    return {
        "template": {
            "name": f"{action}-{monitor.spec.model}",
            "conditions": action,
            "k8s": {
                "operation": "create",
                "source": {"resource": workflow},
                "parameters": [
                    {
                        "src": {"dependencyName": action, "dataKey": path, "value": default},
                        "dest": f"spec.arguments.parameters.{index}.value",
                    }
                    for index, (_, path, default) in enumerate(parameters)
                ],
            },
        },
        "atLeastOnce": True,
        "retryStrategy": dict(TRIGGER_RETRY),
        "rateLimit": dict(TRIGGER_RATE_LIMIT[action]),
    }


def alert_sensor(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec]) -> Body:
    name = conventions.monitor_resource_name(monitor.name)
    actions = monitor.spec.triggered_actions()
    return {
        "apiVersion": API_VERSION,
        "kind": "Sensor",
        "metadata": metadata(view, name, monitor, component="alerts"),
        "spec": {
            "template": pod_template(conventions.SENSOR_SERVICE_ACCOUNT),
            "dependencies": [
                {
                    "name": action,
                    "eventSourceName": name,
                    "eventName": conventions.ALERT_WEBHOOK_EVENT,
                    "filters": {"data": dependency_filters(view, monitor, action)},
                }
                for action in actions
            ],
            "triggers": [_trigger(view, monitor, action) for action in actions],
        },
    }


def alert_triggers(view: EnvironmentView) -> list[Resource]:
    """EventSource and Sensor of every Monitor whose alerts start workflows."""
    resources = []
    for monitor in view.monitors():
        if monitor.spec.triggered_actions():
            resources.append(resource(view, alert_event_source(view, monitor), monitor.source))
            resources.append(resource(view, alert_sensor(view, monitor), monitor.source))
    return resources


# --- rollback-<model> ---------------------------------------------------------------------------------

def rollback_workflow_template(view: EnvironmentView, model: str, sources: list[ResolvedSpec[MonitorSpec]]) -> Body:
    """Rolls the model's candidate back the GitOps way: ``promote --rollback`` commits the RolloutState back to
    stable only (with the alert as the reason) and the regenerated traffic; ArgoCD carries it out."""
    from .serving import policy_of

    name = conventions.rollback_workflow_name(model)
    meta = metadata(view, name, sources[0], component="rollback")
    policy = policy_of(view, model)
    assert policy is not None  # checked: LLM313
    reason = (f"{{{{workflow.parameters.{ROLLBACK_PARAM_REASON}}}}} "
              f"(alert {{{{workflow.parameters.{ROLLBACK_PARAM_ALERT}}}}})")
    template = rollout_steps.promote_template(
        view, "rollback", rollout_steps.promote_arguments(view, policy.name, "--rollback", "--reason", reason))
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowTemplate",
        "metadata": meta,
        "spec": argo.workflow_spec(
            "rollback", [template],
            deadline_seconds=rollout_steps.DEADLINE_SECONDS,
            parameters=[
                argo.parameter(ROLLBACK_PARAM_REASON, "manual",
                               "Why the rollback was requested: manual, or the alert's summary"),
                argo.parameter(ROLLBACK_PARAM_ALERT, "", "Alert that requested it"),
            ],
            mutex=rollout_steps.rollout_mutex(policy.name), ttl=False, view=view,
            service_account=conventions.ROLLOUT_SERVICE_ACCOUNT,
        ),
    }


def rollback_workflow_templates(view: EnvironmentView) -> list[Resource]:
    """One ``rollback-<model>`` per model that a Monitor may roll back in this environment."""
    by_model: dict[str, list[ResolvedSpec[MonitorSpec]]] = {}
    for monitor in view.monitors():
        if "rollback" in monitor.spec.triggered_actions():
            by_model.setdefault(monitor.spec.model, []).append(monitor)
    return [
        resource(view, rollback_workflow_template(view, model, monitors),
                 ", ".join(monitor.source for monitor in monitors))
        for model, monitors in sorted(by_model.items())
    ]
