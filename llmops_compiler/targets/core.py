"""Core objects per environment: the Namespace and least-privilege ServiceAccounts, Roles and RoleBindings."""

from __future__ import annotations

from .. import conventions
from ..resolve import EnvironmentView
from .base import Body, Resource, metadata, resource

# What each generated identity may do, and nothing more.
ROLE_RULES: dict[str, list[Body]] = {
    # Argo's executor in each workflow pod reports step results through WorkflowTaskResults.
    conventions.WORKFLOW_SERVICE_ACCOUNT: [
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
    ],
    # Sensors start workflows from alerts and uploads; they may create workflows in their namespace only.
    conventions.SENSOR_SERVICE_ACCOUNT: [
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create"]},
    ],
}


def namespace(view: EnvironmentView) -> list[Resource]:
    body: Body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata(view, view.namespace, component="namespace", namespaced=False),
    }
    return [resource(view, body, view.project.source)]


def service_accounts(view: EnvironmentView) -> list[Resource]:
    resources: list[Resource] = []
    for account, rules in ROLE_RULES.items():
        meta = metadata(view, account, component="rbac")
        objects: list[Body] = [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": True},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": view.namespace}],
            },
        ]
        resources.extend(resource(view, body, view.project.source) for body in objects)
    return resources
