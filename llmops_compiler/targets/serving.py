"""Serving workloads, when a Model's ``serving.deployment`` asks for them: a Deployment per track (``stable``,
and ``candidate`` while one is rolled out), each pinned to the registered version the environment's RolloutState
names, and one Service in front of both.

Git says what runs: the version is a number in the pod template, fetched by an init container
(``runtime fetch_model``, ``models:/<registered>/<version>``), never an alias resolved when a pod starts. Pods
carry the track (``llmops.dev/track``) and the version (the Model's ``serving.versionLabel``) as labels: Istio's
subsets select on the version, and the metric contract's ``version`` label is the same number.
"""

from __future__ import annotations

from .. import conventions, platform
from ..resolve import EnvironmentView, ResolvedSpec
from ..specs import ModelSpec, RolloutPolicySpec
from ..specs.model import ServingDeployment
from . import workloads
from .base import Body, Resource, metadata, resource

MODELS_DIR = "/models"
MODEL_DIR = f"{MODELS_DIR}/current"
PROBE = {"initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6}
FETCH_REQUESTS = {"cpu": "250m", "memory": "512Mi"}
FETCH_LIMITS = {"memory": "2Gi"}
# Endpoints stop sending traffic before the server is asked to stop (the reference server drains on SIGTERM).
PRE_STOP_SECONDS = 5


def tracks(view: EnvironmentView, model: ResolvedSpec[ModelSpec]) -> dict[str, int]:
    """Track → the registered version it serves in this environment, from the RolloutState of the model's
    RolloutPolicy (a model without one, or an environment without a stable version, serves nothing yet)."""
    policy = policy_of(view, model.name)
    if policy is None:
        return {}
    state = view.rollout_state(policy.name)
    found = {}
    if state.stable is not None:
        found[conventions.TRACK_STABLE] = state.stable
    if state.candidate is not None and state.status in ("progressing", "paused"):
        found[conventions.TRACK_CANDIDATE] = state.candidate
    return found


def policy_of(view: EnvironmentView, model: str) -> ResolvedSpec[RolloutPolicySpec] | None:
    """The RolloutPolicy of ``model`` in this environment (resolve refuses two)."""
    return next((policy for policy in view.rollout_policies() if policy.spec.model == model), None)


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def server_container(view: EnvironmentView, model: ResolvedSpec[ModelSpec], deployment: ServingDeployment,
                     version: int) -> Body:
    """The serving container: the given image and arguments, or the reference server on the runtime image."""
    project = view.project.spec
    values = dict(zip(conventions.SERVING_PLACEHOLDERS, (MODEL_DIR, str(deployment.port), model.name, str(version)),
                      strict=True))
    if deployment.image is None:
        image = project.runtime.image
        command = workloads.runtime_command("serve")
        args = ["--model-dir", MODEL_DIR, "--model-name", model.name, "--version", str(version),
                "--host", "0.0.0.0", "--port", str(deployment.port),
                "--requests-metric", project.metrics.requests_total,
                "--duration-metric", project.metrics.request_duration_bucket.removesuffix("_bucket"),
                "--buckets", ",".join(f"{bound:g}" for bound in project.metrics.latency_buckets)]
    else:
        image, command, args = deployment.image, list(deployment.command), list(deployment.args)
    container: Body = {"name": "server", "image": image}
    if platform.version(project.platform.kubernetes) >= (1, 30):  # the `sleep` action is on by default from 1.30
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}}
    if command:
        container["command"] = [_fill(part, values) for part in command]
    if args:
        container["args"] = [_fill(part, values) for part in args]
    container.update({
        "ports": [{"name": "http", "containerPort": deployment.port}],
        "env": [{"name": "HOME", "value": workloads.TMP_DIR}, {"name": "HF_HUB_OFFLINE", "value": "1"}],
        "readinessProbe": {"httpGet": {"path": deployment.readiness_path, "port": "http"}, **PROBE},
        "livenessProbe": {"httpGet": {"path": deployment.liveness_path, "port": "http"}, **PROBE},
        "securityContext": workloads.container_security_context(),
        "volumeMounts": [{"name": "models", "mountPath": MODELS_DIR, "readOnly": True}, *workloads.scratch_mounts()],
    })
    resources = deployment.resources
    if resources.requests or resources.limits:
        container["resources"] = {key: dict(sorted(values.items())) for key, values in
                                  (("requests", resources.requests), ("limits", resources.limits)) if values}
    return container


def fetch_container(view: EnvironmentView, model: ResolvedSpec[ModelSpec], version: int) -> Body:
    """The init container that downloads exactly ``models:/<registered>/<version>`` and checks its digest."""
    return {
        "name": "fetch-model",
        "image": view.project.spec.runtime.image,
        "command": workloads.runtime_command("fetch_model"),
        "args": ["--model-uri", f"models:/{model.spec.registered_model}/{version}", "--output", MODEL_DIR,
                 "--mlflow-tracking-uri", "$(MLFLOW_TRACKING_URI)"],
        "env": workloads.runtime_env(view),
        "resources": {"requests": dict(FETCH_REQUESTS), "limits": dict(FETCH_LIMITS)},
        "securityContext": workloads.container_security_context(),
        "volumeMounts": [{"name": "models", "mountPath": MODELS_DIR}, *workloads.scratch_mounts()],
    }


def pod_labels(model: ResolvedSpec[ModelSpec], track: str, version: int) -> dict[str, str]:
    serving = model.spec.serving
    assert serving is not None
    return {conventions.LABEL_APP_NAME: model.name, conventions.LABEL_TRACK: track,
            serving.version_label: str(version)}


def deployment(view: EnvironmentView, model: ResolvedSpec[ModelSpec], track: str, version: int) -> Body:
    serving = model.spec.serving
    assert serving is not None and serving.deployment is not None
    spec = serving.deployment
    selector = {conventions.LABEL_APP_NAME: model.name, conventions.LABEL_TRACK: track}
    pod: Body = {
        "serviceAccountName": conventions.SERVING_SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,  # the server never talks to the Kubernetes API
        "securityContext": workloads.pod_security_context(),
        "initContainers": [fetch_container(view, model, version)],
        "containers": [server_container(view, model, spec, version)],
        "volumes": [{"name": "models", "emptyDir": {}}, *workloads.scratch_volumes()],
    }
    if spec.node_selector:
        pod["nodeSelector"] = dict(sorted(spec.node_selector.items()))
    if spec.tolerations:
        pod["tolerations"] = [item.model_dump(by_alias=True, exclude_none=True) for item in spec.tolerations]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(view, f"{model.name}-{track}", model, component="serving",
                             extra_labels=pod_labels(model, track, version)),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": dict(sorted(selector.items()))},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": dict(sorted(pod_labels(model, track, version).items()))},
                         "spec": pod},
        },
    }


def service(view: EnvironmentView, model: ResolvedSpec[ModelSpec]) -> Body:
    serving = model.spec.serving
    assert serving is not None and serving.deployment is not None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(view, serving.service.name, model, component="serving"),
        "spec": {
            "selector": {conventions.LABEL_APP_NAME: model.name},  # both tracks; Istio splits by version
            "ports": [{"name": "http", "port": serving.service.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def serving_workloads(view: EnvironmentView) -> list[Resource]:
    """Deployments and the Service of every Model whose serving asks the compiler to run it."""
    resources = []
    for model in view.models():
        serving = model.spec.serving
        if serving is None or serving.deployment is None:
            continue
        resources.append(resource(view, service(view, model), model.source))
        for track, version in tracks(view, model).items():
            resources.append(resource(view, deployment(view, model, track, version), model.source))
    return resources
