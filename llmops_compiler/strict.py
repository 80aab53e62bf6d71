"""Strict validation of generated objects against the real schema of their kind (``llmops compile --strict``
and the tests).

The compile path builds plain dicts; this module checks them against the real models: hera's Argo Workflows
and Argo Events models, cloudcoil's prometheus-operator and Istio models (pydantic models generated from the
upstream CRDs), ``kubernetes-validate`` (strict) for core objects, and a model of the ArgoCD CRD fields we
emit. Those models silently drop unknown keys, so a check is strict only if the validated model, dumped back
by alias without unset fields, equals the object we emitted. The models are heavy (seconds to import) and
live in the ``strict`` extra: ``pip install 'llmops-compiler[strict]'``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from .diagnostics import Diagnostic, Position

if TYPE_CHECKING:
    from .targets.base import Resource

KUBERNETES_VERSION = "1.30.0"


def _round_trip(model: type[Any], body: dict[str, Any]) -> None:
    instance = model.model_validate(body)
    dumped = instance.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert dumped == body, _first_difference(body, dumped, model.__name__)


def _first_difference(emitted: Any, dumped: Any, model: str, path: str = "") -> str:
    if isinstance(emitted, dict) and isinstance(dumped, dict):
        for key in sorted(set(emitted) | set(dumped)):
            if key not in dumped:
                return f"{model} does not know `{path}{key}` (dropped on validation)"
            if key not in emitted:
                return f"{model} added `{path}{key}`"
            if emitted[key] != dumped[key]:
                return _first_difference(emitted[key], dumped[key], model, f"{path}{key}.")
    if isinstance(emitted, list) and isinstance(dumped, list) and len(emitted) == len(dumped):
        for index, (left, right) in enumerate(zip(emitted, dumped, strict=True)):
            if left != right:
                return _first_difference(left, right, model, f"{path}[{index}].")
    return f"{model} changed `{path.rstrip('.')}`: {emitted!r} → {dumped!r}"


# --- ArgoCD: a model of the CRD fields we emit, unknown keys refused ---------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _ObjectMeta(_Strict):
    name: str
    namespace: str
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    finalizers: list[str] = []


class _Source(_Strict):
    repo_url: str = Field(alias="repoURL")
    target_revision: str = Field(alias="targetRevision")
    path: str
    directory: dict[str, Any] | None = None


class _Destination(_Strict):
    server: str
    namespace: str


class _Automated(_Strict):
    prune: bool
    self_heal: bool = Field(alias="selfHeal")


class _SyncPolicy(_Strict):
    automated: _Automated | None = None
    sync_options: list[str] = Field(default=[], alias="syncOptions")


class _ApplicationSpec(_Strict):
    project: str
    source: _Source
    destination: _Destination
    sync_policy: _SyncPolicy | None = Field(default=None, alias="syncPolicy")


class _Application(_Strict):
    api_version: str = Field(alias="apiVersion", pattern="^argoproj.io/v1alpha1$")
    kind: str = Field(pattern="^Application$")
    metadata: _ObjectMeta
    spec: _ApplicationSpec


class _GroupKind(_Strict):
    group: str
    kind: str


class _AppProjectSpec(_Strict):
    description: str = ""
    source_repos: list[str] = Field(alias="sourceRepos", min_length=1)
    destinations: list[_Destination] = Field(min_length=1)
    cluster_resource_whitelist: list[_GroupKind] = Field(default=[], alias="clusterResourceWhitelist")
    namespace_resource_whitelist: list[_GroupKind] = Field(default=[], alias="namespaceResourceWhitelist")


class _AppProject(_Strict):
    api_version: str = Field(alias="apiVersion", pattern="^argoproj.io/v1alpha1$")
    kind: str = Field(pattern="^AppProject$")
    metadata: _ObjectMeta
    spec: _AppProjectSpec


# --- Argo Events objects hera has no model for, or models in their Go shape rather than their JSON one ------

class _Backoff(_Strict):
    """A trigger's ``retryStrategy`` as Argo Events reads its JSON (``pkg/apis/events/v1alpha1``, type
    ``Backoff``): ``duration`` is ``Int64OrString`` (nanoseconds or a Go duration) and ``factor``/``jitter``
    are ``Amount`` (a JSON number); hera's models describe the Go structs behind them instead."""

    steps: int = Field(ge=1)
    duration: int | str | None = Field(default=None, pattern=r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$")
    factor: float | None = Field(default=None, gt=0)
    jitter: float | None = Field(default=None, ge=0)


class _JetStreamBus(_Strict):
    """``spec.jetstream`` (argo-events v1.9 ``pkg/apis/events/v1alpha1/jetstream_eventbus.go``, ``JetStreamBus``),
    the fields the compiler writes; replicas 1 or at least 3 (``pkg/reconciler/eventbus/validate.go``)."""

    version: str = Field(min_length=1)
    replicas: int | None = None
    stream_config: str | None = Field(default=None, alias="streamConfig")

    def model_post_init(self, context: Any) -> None:
        if self.replicas is not None and not (self.replicas == 1 or self.replicas >= 3):
            raise ValueError(f"JetStream replicas must be 1 or at least 3, got {self.replicas}")


class _EventBusSpec(_Strict):
    jetstream: _JetStreamBus


class _EventBus(_Strict):
    api_version: str = Field(alias="apiVersion", pattern="^argoproj.io/v1alpha1$")
    kind: str = Field(pattern="^EventBus$")
    metadata: _ObjectMeta
    spec: _EventBusSpec


@cache
def _model_for(api_version: str, kind: str) -> type[Any] | None:
    group = api_version.split("/")[0] if "/" in api_version else ""
    if group == "argoproj.io":
        if kind in ("WorkflowTemplate", "CronWorkflow", "Workflow", "ClusterWorkflowTemplate"):
            import hera.workflows.models as workflows

            return getattr(workflows, kind)  # type: ignore[no-any-return]
        if kind in ("EventSource", "Sensor"):
            import hera.events.models as events

            return getattr(events, kind)  # type: ignore[no-any-return]
        return {"Application": _Application, "AppProject": _AppProject, "EventBus": _EventBus}[kind]
    if group == "monitoring.coreos.com":
        version = api_version.split("/")[1]
        module = __import__(f"cloudcoil.models.prometheus_operator.{version}", fromlist=[kind])
        return getattr(module, kind)  # type: ignore[no-any-return]
    if group == "networking.istio.io":
        version = api_version.split("/")[1]
        module = __import__(f"cloudcoil.models.istio.networking.{version}", fromlist=[kind])
        return getattr(module, kind)  # type: ignore[no-any-return]
    return None


def _validate_argo_events(body: dict[str, Any]) -> None:
    """hera's events models differ from Argo Events' JSON in four places: they have no apiVersion/kind, they
    nest a webhook's (inline) fields under ``webhookContext``, they keep nothing of a trigger's ``resource``
    (validated here as the object it is), and they describe a trigger's ``retryStrategy`` by its Go struct
    (validated with :class:`_Backoff`)."""
    import hera.events.models as events

    assert body["apiVersion"] == "argoproj.io/v1alpha1", body["apiVersion"]
    rest = json.loads(json.dumps({key: value for key, value in body.items() if key not in ("apiVersion", "kind")}))
    model: Any
    if body["kind"] == "EventSource":
        for name, context in rest["spec"].get("webhook", {}).items():
            rest["spec"]["webhook"][name] = {"webhookContext": context}
        model = events.EventSource
    else:
        for trigger in rest["spec"]["triggers"]:
            source = trigger["template"].get("k8s", {}).get("source", {})
            if "resource" in source:
                validate_strict(source.pop("resource"))
            if "retryStrategy" in trigger:
                _round_trip(_Backoff, trigger.pop("retryStrategy"))
        model = events.Sensor
    _round_trip(model, rest)


def _as_argo_workflows_4(body: dict[str, Any]) -> dict[str, Any]:
    """An Argo Workflows object written for 3.5 (``schedule``, ``synchronization.mutex``) in the shape of 3.6+
    (the lists), which is all hera's models (generated from Argo Workflows 4.0, where the singular fields are gone)
    know. Raises AssertionError when a singular field is not what 3.5 takes."""
    converted: dict[str, Any] = json.loads(json.dumps(body))
    spec = converted.get("spec", {})
    if "schedule" in spec:
        assert isinstance(spec["schedule"], str) and "schedules" not in spec, "schedule must be one string"
        spec["schedules"] = [spec.pop("schedule")]
    for holder in (spec, spec.get("workflowSpec", {})):
        synchronization = holder.get("synchronization", {})
        if "mutex" in synchronization:
            assert set(synchronization["mutex"]) == {"name"} and "mutexes" not in synchronization, \
                "synchronization.mutex must be {name: ...}"
            synchronization["mutexes"] = [synchronization.pop("mutex")]
    return converted


def validate_strict(body: dict[str, Any]) -> None:
    """Raise AssertionError (or the schema library's error) unless ``body`` is valid for its kind."""
    api_version, kind = body["apiVersion"], body["kind"]
    if kind == "Kustomization":
        return  # checked by `kubectl kustomize`
    if api_version.startswith("argoproj.io/") and kind in ("EventSource", "Sensor"):
        _validate_argo_events(body)
        return
    model = _model_for(api_version, kind)
    if api_version.startswith("argoproj.io/") and kind in ("WorkflowTemplate", "CronWorkflow", "Workflow"):
        body = _as_argo_workflows_4(body)
    if model is None:
        import kubernetes_validate

        kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
        return
    _round_trip(model, body)


STRICT_PACKAGES = ("hera", "cloudcoil.models.istio", "cloudcoil.models.prometheus_operator", "kubernetes_validate")
INSTALL_HINT = "pip install 'llmops-compiler[strict]'"


class StrictUnavailable(Exception):
    """The schema packages the strict check needs are not installed."""


def require_models() -> None:
    """Raise :class:`StrictUnavailable` naming the missing packages and the install command."""
    import importlib.util

    missing = []
    for name in STRICT_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise StrictUnavailable(f"the strict check needs {', '.join(missing)}: {INSTALL_HINT}")


def strict_diagnostics(resources: Iterable[Resource], positions: dict[str, Position]) -> list[Diagnostic]:
    """One LLM510 diagnostic per generated object that its real schema would reject or change, placed at the
    spec it comes from. Raises :class:`StrictUnavailable` when the schema packages are missing."""
    require_models()
    problems = []
    for item in resources:
        try:
            validate_strict(item.body)
        except Exception as error:  # any schema library's error is a finding about this object
            reason = " ".join(str(error).split())[:400]
            problems.append(Diagnostic(
                positions.get(item.source) or Position(item.source.split(" ")[0]), "LLM510",
                f"generated {item.kind} `{item.name}` ({item.path}) does not conform to its schema: {reason}",
                "this is a compiler bug: please report it with the spec that produced it",
            ))
    return problems
