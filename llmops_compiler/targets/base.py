"""The target interface: pure functions from the resolved graph to Kubernetes resources."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import conventions
from ..resolve import EnvironmentView, ProjectGraph, ResolvedSpec

Body = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """One Kubernetes object and the file it is written to (relative to the output folder)."""

    path: str
    body: Body
    source: str

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def environment(self) -> str:
        return self.path.split("/", 1)[0]


EnvironmentTarget = Callable[[EnvironmentView], list[Resource]]
ProjectTarget = Callable[[ProjectGraph, list[Resource]], list[Resource]]
"""Takes the graph and every environment's resources (ArgoCD whitelists exactly the kinds generated)."""


def environment_path(environment: str, kind: str, name: str) -> str:
    """``<env>/<kind-folder>/<name>.<kind>.yaml``: one resource per file, stable names."""
    return f"{environment}/{conventions.KIND_FOLDERS[kind]}/{name}.{kind.lower()}.yaml"


def metadata(
    view: EnvironmentView,
    name: str,
    spec: ResolvedSpec[Any] | None = None,
    component: str | None = None,
    extra_labels: dict[str, str] | None = None,
    extra_annotations: dict[str, str] | None = None,
    namespaced: bool = True,
) -> Body:
    """Metadata every generated object carries: who made it, from which spec, for which environment."""
    labels = {
        conventions.LABEL_MANAGED_BY: conventions.GENERATOR,
        conventions.LABEL_PART_OF: view.project.name,
        conventions.LABEL_ENV: view.name,
    }
    if component:
        labels[conventions.LABEL_COMPONENT] = component
    annotations: dict[str, str] = {}
    if spec is not None:
        labels[conventions.LABEL_SPEC_KIND] = spec.kind.lower()
        labels[conventions.LABEL_SPEC_NAME] = spec.name
        annotations[conventions.ANNOTATION_SOURCE] = spec.file
        annotations[conventions.ANNOTATION_SPEC_HASH] = spec.spec_hash
    labels.update(extra_labels or {})
    annotations.update(extra_annotations or {})
    body: Body = {"name": name}
    if namespaced:
        body["namespace"] = view.namespace
    body["labels"] = dict(sorted(labels.items()))
    if annotations:
        body["annotations"] = dict(sorted(annotations.items()))
    return body


def resource(view: EnvironmentView, body: Body, source: str) -> Resource:
    return Resource(environment_path(view.name, body["kind"], body["metadata"]["name"]), body, source)
