"""ArgoCD: the AppProject that fences the environments, one Application per environment, and the bootstrap
(an admin AppProject and the root app of apps) a person applies once.

Why this shape (argo-cd's own behaviour, ``controller/appcontroller.go``):

- An Application whose ``spec.project`` names an AppProject that does not exist yet is never reconciled
  ("Application referencing project ... which does not exist"), so the root app cannot live in a project it
  creates. It lives in the admin AppProject, and both are in ``argocd/bootstrap/``, applied by hand
  (``kubectl apply -f generated/argocd/bootstrap/``); the root app syncs ``argocd/`` itself, without
  recursing into ``bootstrap/``: the environment AppProject (sync wave -1, so it exists before the
  Applications that name it) and one Application per environment.
- The admin project may create only Applications and AppProjects, only in ArgoCD's namespace; the environment
  project may create exactly the kinds the compiler generates (an absent namespaced whitelist would allow
  every kind), only in the environments' namespaces, so an environment app can never write into ArgoCD.
- A manual environment can never be removed by an automatic sync: its Application has no cascading
  finalizer and carries ``Prune=false,Delete=false`` (the root app neither prunes nor cascades it), and its
  Namespace carries the same (see :mod:`.core`). Automatic environments are pruned and deleted with their app.
"""

from __future__ import annotations

from .. import conventions
from ..resolve import ProjectGraph
from .base import Body, Resource

API_VERSION = "argoproj.io/v1alpha1"
IN_CLUSTER = "https://kubernetes.default.svc"
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
KEEP = "Prune=false,Delete=false"
RESOURCES_FINALIZER = "resources-finalizer.argocd.argoproj.io"
BOOTSTRAP_FOLDER = f"{conventions.ARGOCD_FOLDER}/bootstrap"

# API group of each kind the compiler can generate.
GROUPS: dict[str, str] = {
    "Namespace": "", "ServiceAccount": "", "ConfigMap": "", "Service": "",
    "Role": "rbac.authorization.k8s.io", "RoleBinding": "rbac.authorization.k8s.io",
    "Job": "batch", "Deployment": "apps",
    "WorkflowTemplate": "argoproj.io", "CronWorkflow": "argoproj.io", "EventSource": "argoproj.io",
    "Sensor": "argoproj.io", "EventBus": "argoproj.io",
    "PrometheusRule": "monitoring.coreos.com", "AlertmanagerConfig": "monitoring.coreos.com",
    "VirtualService": "networking.istio.io", "DestinationRule": "networking.istio.io",
}
CLUSTER_SCOPED = frozenset({"Namespace"})


def _metadata(graph: ProjectGraph, name: str, namespace: str, annotations: dict[str, str] | None = None) -> Body:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {
            conventions.LABEL_MANAGED_BY: conventions.GENERATOR,
            conventions.LABEL_PART_OF: graph.project.name,
        },
        "annotations": {conventions.ANNOTATION_SOURCE: graph.project.file, **(annotations or {})},
    }


def _path(base: str, folder: str) -> str:
    base = base.strip("/")
    return f"{base}/{folder}" if base and base != "." else folder


def app_project_name(graph: ProjectGraph) -> str:
    return graph.project.spec.argocd.project or graph.project.name


def admin_project_name(graph: ProjectGraph) -> str:
    return graph.project.spec.argocd.admin_project or f"{graph.project.name}-admin"


def _whitelist(kinds: set[str]) -> list[Body]:
    return [{"group": GROUPS[kind], "kind": kind} for kind in sorted(kinds, key=lambda kind: (GROUPS[kind], kind))]


def environment_project(graph: ProjectGraph, generated_kinds: set[str]) -> Body:
    """The AppProject of the environment Applications: the repository, the environments' namespaces, and
    exactly the kinds generated."""
    project = graph.project.spec
    return {
        "apiVersion": API_VERSION,
        "kind": "AppProject",
        "metadata": _metadata(graph, app_project_name(graph), project.argocd.namespace, {SYNC_WAVE: "-1"}),
        "spec": {
            "description": f"LLMOps project {graph.project.name}, compiled by llmops-compiler",
            "sourceRepos": [project.repo.url],
            "destinations": [{"server": environment.cluster, "namespace": environment.namespace}
                             for environment in project.environments],
            "clusterResourceWhitelist": _whitelist(generated_kinds & CLUSTER_SCOPED),
            "namespaceResourceWhitelist": _whitelist(generated_kinds - CLUSTER_SCOPED),
        },
    }


def admin_project(graph: ProjectGraph) -> Body:
    """The AppProject of the root app: Applications and AppProjects in ArgoCD's namespace, nothing else."""
    project = graph.project.spec
    return {
        "apiVersion": API_VERSION,
        "kind": "AppProject",
        "metadata": _metadata(graph, admin_project_name(graph), project.argocd.namespace),
        "spec": {
            "description": f"The app of apps of LLMOps project {graph.project.name} (applied once by hand)",
            "sourceRepos": [project.repo.url],
            "destinations": [{"server": IN_CLUSTER, "namespace": project.argocd.namespace}],
            "clusterResourceWhitelist": [],
            "namespaceResourceWhitelist": [
                {"group": "argoproj.io", "kind": "AppProject"}, {"group": "argoproj.io", "kind": "Application"}],
        },
    }


def applications(graph: ProjectGraph, environment_resources: list[Resource]) -> list[Resource]:
    project = graph.project.spec
    argocd_namespace = project.argocd.namespace
    source = graph.project.source
    kinds = {item.kind for item in environment_resources}
    resources = [Resource(f"{conventions.ARGOCD_FOLDER}/project.yaml", environment_project(graph, kinds), source)]
    for environment in project.environments:
        sync_policy: Body = {"syncOptions": ["PrunePropagationPolicy=foreground", "PruneLast=true"]}
        extra: dict[str, str] = {}
        metadata = _metadata(graph, f"{graph.project.name}-{environment.name}", argocd_namespace)
        if environment.auto_sync:
            sync_policy = {"automated": {"prune": True, "selfHeal": True}, **sync_policy}
            metadata["finalizers"] = [RESOURCES_FINALIZER]  # deleting the app deletes what it deployed
        else:
            extra = {SYNC_OPTIONS: KEEP}  # the root app neither prunes it nor cascades its deletion
        metadata["annotations"].update(extra)
        application: Body = {
            "apiVersion": API_VERSION,
            "kind": "Application",
            "metadata": metadata,
            "spec": {
                "project": app_project_name(graph),
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
            "project": admin_project_name(graph),
            "source": {
                "repoURL": project.repo.url,
                "targetRevision": project.repo.branch,
                "path": _path(project.repo.path, conventions.ARGOCD_FOLDER),
                "directory": {"recurse": False},  # not bootstrap/: the root app never manages itself
            },
            "destination": {"server": IN_CLUSTER, "namespace": argocd_namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }
    resources.append(Resource(f"{BOOTSTRAP_FOLDER}/admin-project.yaml", admin_project(graph), source))
    resources.append(Resource(f"{BOOTSTRAP_FOLDER}/root.yaml", root, source))
    return resources
