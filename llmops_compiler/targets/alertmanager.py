"""AlertmanagerConfig per Monitor and environment: route the monitor's alerts by ``llmops_action``.

``retrain`` and ``rollback`` alerts go to the Argo Events webhook of the monitor (whose Sensor starts the
workflow), then, like every alert of the monitor, on to the notification receiver, so people see what the
automation does. A retrain alert repeats no sooner than the Model's tuning timeout (a still-firing alert
must not start a second retrain while the first may be running); a page of an SLO inhibits its ticket.

prometheus-operator adds a ``namespace`` matcher to the first-level route and inhibit rules and forces
``continue: true`` on it; :func:`alertmanager_configuration` does the same to give a plain Alertmanager (or
``amtool check-config``) the configuration the operator would render.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from .. import conventions
from ..resolve import EnvironmentView, ResolvedSpec
from ..specs import ModelSpec, MonitorSpec
from .base import Body, Resource, metadata, resource

API_VERSION = "monitoring.coreos.com/v1alpha1"
GROUP_WAIT = "30s"
GROUP_INTERVAL = "5m"
REPEAT_INTERVAL = "4h"
# A rollback is idempotent and quick; repeat it hourly while the alert still fires.
ROLLBACK_REPEAT_INTERVAL = "1h"


def matcher(name: str, value: str, match_type: str = "=") -> Body:
    return {"name": name, "value": value, "matchType": match_type}


def repeat_interval(view: EnvironmentView, monitor: MonitorSpec, action: str) -> str:
    """How long a still-firing alert waits before it triggers ``action`` again."""
    if action == "retrain":
        model = cast(ResolvedSpec[ModelSpec] | None, view.get("Model", monitor.model))
        if model is not None and model.spec.tuning is not None:
            return model.spec.tuning.timeout
        return REPEAT_INTERVAL
    return ROLLBACK_REPEAT_INTERVAL


def receivers(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec]) -> list[Body]:
    spec = monitor.spec
    found: list[Body] = []
    if spec.triggered_actions():
        url = conventions.eventsource_service_url(
            conventions.monitor_resource_name(monitor.name), view.namespace,
            conventions.ALERT_WEBHOOK_PORT, conventions.ALERT_WEBHOOK_ENDPOINT,
        )
        token = view.project.spec.alerting.webhook_token
        # Resolved notifications would only be filtered out by the Sensor.
        found.append({"name": conventions.EVENTS_RECEIVER, "webhookConfigs": [{
            "url": url,
            "sendResolved": False,
            "httpConfig": {
                "authorization": {"type": "Bearer", "credentials": {"name": token.name, "key": token.key}},
            },
        }]})
    notify: Body = {"name": spec.notification.receiver}
    secret = spec.notification.webhook_url_secret
    if secret is not None:
        notify["webhookConfigs"] = [{"urlSecret": {"name": secret.name, "key": secret.key}, "sendResolved": True}]
    found.append(notify)
    return found


def route(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec]) -> Body:
    """The monitor's alerts (its model in this environment): triggers first, then everything to people."""
    spec = monitor.spec
    children: list[Body] = [
        {
            "receiver": conventions.EVENTS_RECEIVER,
            "matchers": [matcher(conventions.LABEL_ACTION, action)],
            "repeatInterval": repeat_interval(view, spec, action),
            "continue": True,
        }
        for action in spec.triggered_actions()
    ]
    children.append({"receiver": spec.notification.receiver})
    return {
        "receiver": spec.notification.receiver,
        "groupBy": list(conventions.ALERT_GROUP_BY),
        "groupWait": GROUP_WAIT,
        "groupInterval": GROUP_INTERVAL,
        "repeatInterval": REPEAT_INTERVAL,
        # This monitor's alerts only: a second monitor of the same model has its own route and webhook.
        "matchers": [
            matcher(conventions.LABEL_PROJECT, view.project.name),
            matcher(conventions.LABEL_MONITOR, monitor.name),
            matcher(conventions.LABEL_MODEL, spec.model),
            matcher(conventions.LABEL_ENVIRONMENT, view.name),
        ],
        "routes": children,
    }


def inhibit_rules(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec]) -> list[Body]:
    """While an SLO pages, its ticket (same model, environment and SLO) stays quiet."""
    if not any(slo.page and slo.ticket for slo in monitor.spec.slos):
        return []
    return [{
        "sourceMatch": [matcher(conventions.LABEL_TIER, conventions.SEVERITY_PAGE)],
        "targetMatch": [matcher(conventions.LABEL_TIER, conventions.SEVERITY_TICKET)],
        "equal": [conventions.LABEL_PROJECT, conventions.LABEL_MONITOR, conventions.LABEL_MODEL,
                  conventions.LABEL_ENVIRONMENT, conventions.LABEL_SLO],
    }]


def alertmanager_config(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec]) -> Body:
    spec: Body = {"route": route(view, monitor), "receivers": receivers(view, monitor)}
    inhibit = inhibit_rules(view, monitor)
    if inhibit:
        spec["inhibitRules"] = inhibit
    return {
        "apiVersion": API_VERSION,
        "kind": "AlertmanagerConfig",
        "metadata": metadata(view, conventions.monitor_resource_name(monitor.name), monitor, component="monitoring",
                             extra_labels=view.project.spec.prometheus.alertmanager_config_labels),
        "spec": spec,
    }


def alertmanager_configs(view: EnvironmentView) -> list[Resource]:
    """The AlertmanagerConfig of every Monitor with alerts in this environment."""
    return [
        resource(view, alertmanager_config(view, monitor), monitor.source)
        for monitor in view.monitors()
        if monitor.spec.actions()
    ]


# --- the configuration prometheus-operator renders, for a plain Alertmanager ------------------------

_ROUTE_KEYS = {
    "receiver": "receiver",
    "groupBy": "group_by",
    "groupWait": "group_wait",
    "groupInterval": "group_interval",
    "repeatInterval": "repeat_interval",
    "continue": "continue",
}
_WEBHOOK_KEYS = {"url": "url", "sendResolved": "send_resolved", "maxAlerts": "max_alerts"}
NULL_RECEIVER = "null"


def _matcher_text(item: Mapping[str, Any]) -> str:
    return f"{item['name']}{item.get('matchType', '=')}{json.dumps(item.get('value', ''))}"


def _receiver_name(prefix: str, name: str) -> str:
    return f"{prefix}/{name}"


def _route(route_body: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    for key, value in route_body.items():
        if key == "receiver":
            converted["receiver"] = _receiver_name(prefix, value)
        elif key == "matchers":
            converted["matchers"] = [_matcher_text(item) for item in value]
        elif key == "routes":
            converted["routes"] = [_route(child, prefix) for child in value]
        else:
            converted[_ROUTE_KEYS[key]] = value
    return converted


def _secret_value(secrets: Mapping[str, Mapping[str, str]], reference: Mapping[str, str], what: str) -> str:
    try:
        return secrets[reference["name"]][reference["key"]]
    except KeyError:
        raise KeyError(f"secret {reference['name']}/{reference['key']} ({what}) not given") from None


def _receiver(receiver: Mapping[str, Any], prefix: str, secrets: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    converted: dict[str, Any] = {"name": _receiver_name(prefix, receiver["name"])}
    webhooks = []
    for webhook in receiver.get("webhookConfigs", []):
        item = {_WEBHOOK_KEYS[key]: value for key, value in webhook.items() if key in _WEBHOOK_KEYS}
        if "urlSecret" in webhook:
            item["url"] = _secret_value(secrets, webhook["urlSecret"], f"webhook URL of receiver {receiver['name']}")
        authorization = webhook.get("httpConfig", {}).get("authorization")
        if authorization is not None:
            credentials = _secret_value(secrets, authorization["credentials"],
                                        f"authorization of receiver {receiver['name']}")
            item["http_config"] = {"authorization": {"type": authorization["type"], "credentials": credentials}}
        webhooks.append(dict(sorted(item.items())))
    if webhooks:
        converted["webhook_configs"] = webhooks
    return converted


def alertmanager_configuration(
    body: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, Any]:
    """An AlertmanagerConfig as the alertmanager.yml prometheus-operator renders from it.

    Receivers are renamed ``<namespace>/<name>/<receiver>``; the route becomes a first-level route with a
    ``namespace`` matcher and ``continue: true`` under a root route to a receiver that drops everything else;
    inhibit rules only act within the namespace. ``secrets`` maps Secret name → key → value for ``urlSecret``.
    """
    namespace = body["metadata"]["namespace"]
    prefix = f"{namespace}/{body['metadata']['name']}"
    spec = body["spec"]
    namespace_matcher = _matcher_text(matcher(conventions.LABEL_NAMESPACE, namespace))
    first = _route(spec["route"], prefix)
    first["matchers"] = [namespace_matcher, *first.get("matchers", [])]
    first["continue"] = True
    inhibit = []
    for rule in spec.get("inhibitRules", []):
        inhibit.append({
            "source_matchers": [namespace_matcher, *(_matcher_text(item) for item in rule.get("sourceMatch", []))],
            "target_matchers": [namespace_matcher, *(_matcher_text(item) for item in rule.get("targetMatch", []))],
            "equal": list(rule.get("equal", [])),
        })
    configuration: dict[str, Any] = {
        "route": {"receiver": NULL_RECEIVER, "routes": [first]},
        "receivers": [{"name": NULL_RECEIVER},
                      *(_receiver(item, prefix, secrets or {}) for item in spec.get("receivers", []))],
    }
    if inhibit:
        configuration["inhibit_rules"] = inhibit
    return configuration
