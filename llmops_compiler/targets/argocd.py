"""ArgoCD: an AppProject fencing what may be synced where, one Application per environment, a root app."""

from __future__ import annotations

from .. import conventions
from ..resolve import ProjectGraph
from .base import Body, Resource

API_VERSION = "argoproj.io/v1alpha1"

# (API group, kind) of everything the compiler emits into an environment; the AppProject allows only these.
NAMESPACED_KINDS: list[tuple[str, str]] = [
    ("", "ConfigMap"),
    ("", "ServiceAccount"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("batch", "Job"),
    ("argoproj.io", "WorkflowTemplate"),
    ("argoproj.io", "CronWorkflow"),
    ("argoproj.io", "EventSource"),
    ("argoproj.io", "Sensor"),
    ("monitoring.coreos.com", "PrometheusRule"),
    ("monitoring.coreos.com", "AlertmanagerConfig"),
    ("networking.istio.io", "VirtualService"),
    ("networking.istio.io", "DestinationRule"),
]
CLUSTER_KINDS: list[tuple[str, str]] = [("", "Namespace")]


def _metadata(graph: ProjectGraph, name: str, namespace: str) -> Body:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {
            conventions.LABEL_MANAGED_BY: conventions.GENERATOR,
            conventions.LABEL_PART_OF: graph.project.name,
        },
        "annotations": {conventions.ANNOTATION_SOURCE: graph.project.file},
    }


def _path(base: str, folder: str) -> str:
    base = base.strip("/")
    return f"{base}/{folder}" if base and base != "." else folder


def app_project_name(graph: ProjectGraph) -> str:
    return graph.project.spec.argocd.project or graph.project.name


def applications(graph: ProjectGraph) -> list[Resource]:
    project = graph.project.spec
    argocd_namespace = project.argocd.namespace
    name = app_project_name(graph)
    source = graph.project.source
    app_project: Body = {
        "apiVersion": API_VERSION,
        "kind": "AppProject",
        "metadata": _metadata(graph, name, argocd_namespace),
        "spec": {
            "description": f"LLMOps project {graph.project.name}, compiled by llmops-compiler",
            "sourceRepos": [project.repo.url],
            "destinations": [
                {"server": environment.cluster, "namespace": environment.namespace}
                for environment in project.environments
            ]
            + [{"server": "https://kubernetes.default.svc", "namespace": argocd_namespace}],
            "clusterResourceWhitelist": [{"group": group, "kind": kind} for group, kind in CLUSTER_KINDS],
            "namespaceResourceWhitelist": [{"group": group, "kind": kind} for group, kind in NAMESPACED_KINDS]
            + [{"group": "argoproj.io", "kind": "Application"}, {"group": "argoproj.io", "kind": "AppProject"}],
        },
    }
    resources = [Resource(f"{conventions.ARGOCD_FOLDER}/project.yaml", app_project, source)]
    for environment in project.environments:
        sync_policy: Body = {"syncOptions": ["PrunePropagationPolicy=foreground", "PruneLast=true"]}
        if environment.auto_sync:
            sync_policy = {"automated": {"prune": True, "selfHeal": True}, **sync_policy}
        application: Body = {
            "apiVersion": API_VERSION,
            "kind": "Application",
            "metadata": {
                **_metadata(graph, f"{graph.project.name}-{environment.name}", argocd_namespace),
                "finalizers": ["resources-finalizer.argocd.argoproj.io"],
            },
            "spec": {
                "project": name,
                "source": {
                    "repoURL": project.repo.url,
                    "targetRevision": project.repo.branch,
                    "path": _path(project.repo.path, environment.name),
                },
                "destination": {"server": environment.cluster, "namespace": environment.namespace},
                "syncPolicy": sync_policy,
            },
        }
        resources.append(Resource(f"{conventions.ARGOCD_FOLDER}/{environment.name}.yaml", application, source))
    root: Body = {
        "apiVersion": API_VERSION,
        "kind": "Application",
        "metadata": _metadata(graph, f"{graph.project.name}-root", argocd_namespace),
        "spec": {
            "project": name,
            "source": {
                "repoURL": project.repo.url,
                "targetRevision": project.repo.branch,
                "path": _path(project.repo.path, conventions.ARGOCD_FOLDER),
                "directory": {"recurse": False, "exclude": "root.yaml"},
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": argocd_namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }
    resources.append(Resource(f"{conventions.ARGOCD_FOLDER}/root.yaml", root, source))
    return resources
