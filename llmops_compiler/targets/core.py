"""Core objects per environment: the Namespace and least-privilege ServiceAccounts, Roles and RoleBindings."""

from __future__ import annotations

from .. import conventions
from ..resolve import EnvironmentView
from .base import Body, Resource, metadata, resource

# Argo's executor in each workflow pod reports step results through WorkflowTaskResults.
EXECUTOR_RULES: list[Body] = [
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
]
# What each generated identity may do, and nothing more.
ROLE_RULES: dict[str, list[Body]] = {
    conventions.WORKFLOW_SERVICE_ACCOUNT: EXECUTOR_RULES,
    # The rollout steps change the cluster only through git: beyond the executor's report, nothing.
    conventions.ROLLOUT_SERVICE_ACCOUNT: EXECUTOR_RULES,
    # Sensors start workflows from alerts and uploads; they may create workflows in their namespace only.
    conventions.SENSOR_SERVICE_ACCOUNT: [
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create"]},
    ],
}


def namespace(view: EnvironmentView) -> list[Resource]:
    """The environment's Namespace; a manual environment's is never pruned nor deleted by ArgoCD (deleting its
    Application, or dropping it from the specs, leaves the namespace and everything in it)."""
    keep = {} if view.environment.auto_sync else {"argocd.argoproj.io/sync-options": "Prune=false,Delete=false"}
    body: Body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata(view, view.namespace, component="namespace", namespaced=False, extra_annotations=keep),
    }
    return [resource(view, body, view.project.source)]


def _needs_rollout_account(view: EnvironmentView) -> bool:
    return bool(view.rollout_policies())


def service_accounts(view: EnvironmentView) -> list[Resource]:
    resources: list[Resource] = []
    for account, rules in ROLE_RULES.items():
        if account == conventions.ROLLOUT_SERVICE_ACCOUNT and not _needs_rollout_account(view):
            continue
        meta = metadata(view, account, component="rbac")
        identity = view.project.spec.runtime.service_account_annotations \
            if account == conventions.WORKFLOW_SERVICE_ACCOUNT else {}
        account_meta = metadata(view, account, component="rbac", extra_annotations=dict(identity))
        objects: list[Body] = [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": account_meta,
             "automountServiceAccountToken": True},
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
    if any(model.spec.serving is not None and model.spec.serving.deployment is not None for model in view.models()):
        # The model servers: an identity with no rights and no API token at all.
        body = {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": metadata(view, conventions.SERVING_SERVICE_ACCOUNT, component="rbac"),
                "automountServiceAccountToken": False}
        resources.append(resource(view, body, view.project.source))
    return resources


ARTIFACT_REPOSITORIES = "artifact-repositories"  # the ConfigMap name Argo Workflows looks up by default
ARTIFACT_REPOSITORY_KEY = "llmops"
DEFAULT_REPOSITORY_ANNOTATION = "workflows.argoproj.io/default-artifact-repository"


def artifact_repository_ref(view: EnvironmentView) -> Body | None:
    """``artifactRepositoryRef`` of every generated workflow, when the Project names an artifact repository."""
    if view.project.spec.runtime.artifact_repository is None:
        return None
    return {"configMap": ARTIFACT_REPOSITORIES, "key": ARTIFACT_REPOSITORY_KEY}


def artifact_repositories(view: EnvironmentView) -> list[Resource]:
    """The ``artifact-repositories`` ConfigMap Argo Workflows reads (``workflow/artifactrepositories``): the
    Project's bucket and prefix on its object store, with its credentials (Secret references) or the pod's
    identity (``useSDKCreds``, e.g. IRSA through ``runtime.serviceAccountAnnotations``). Workflows name it in
    ``artifactRepositoryRef``; a key-only output artifact takes bucket, endpoint and credentials from it."""
    from ..serialize import dump_yaml
    from .argo_workflows import s3_location

    runtime = view.project.spec.runtime
    if runtime.artifact_repository is None:
        return []
    bucket, _, prefix = runtime.artifact_repository.removeprefix("s3://").partition("/")
    location = s3_location(runtime.object_store, bucket, "")
    del location["key"]
    key_format = "/".join(part for part in (prefix.strip("/"), "{{workflow.name}}/{{pod.name}}") if part)
    repository = {"s3": {**location, "keyFormat": key_format}}
    body: Body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(view, ARTIFACT_REPOSITORIES, component="artifacts",
                             extra_annotations={DEFAULT_REPOSITORY_ANNOTATION: ARTIFACT_REPOSITORY_KEY}),
        "data": {ARTIFACT_REPOSITORY_KEY: dump_yaml(repository)},
    }
    return [resource(view, body, view.project.source)]
