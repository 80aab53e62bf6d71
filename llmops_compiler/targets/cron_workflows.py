"""Drift checks: one CronWorkflow per drift check of a Monitor, running the ``drift`` runtime step.

The step reads the check's reference dataset and the monitor's request logs (input artifacts fetched from
their URIs), computes the score of one feature with the check's method and pushes it to the Pushgateway as
``llmops_drift_score{model,feature,method}``, grouped by environment and check; the PrometheusRule judges
it against the threshold. A run never overlaps the previous one (``concurrencyPolicy: Forbid``).
"""

from __future__ import annotations

from typing import cast

from .. import conventions
from ..resolve import EnvironmentView, ResolvedSpec
from ..specs import ModelSpec, MonitorSpec, RolloutPolicySpec
from ..specs.model import is_dataset_name
from ..specs.monitor import DriftCheck
from . import argo, argo_workflows, prometheus, rollout_steps, workloads
from .base import Body, Resource, metadata, resource

# Cron schedules are read in UTC, whatever the controller's time zone.
TIMEZONE = "UTC"
# A drift run that takes longer than this is stuck: fail it so the next schedule can run.
DRIFT_DEADLINE_SECONDS = prometheus.DRIFT_DEADLINE_SECONDS
REQUESTS = {"cpu": "500m", "memory": "1Gi"}
LIMITS = {"memory": "4Gi"}
HISTORY_LIMIT = 3


def _input_path(name: str, uri: str) -> str:
    """Where an input lands: a prefix (``.../``) becomes a folder, a file keeps its name (``.gz`` matters)."""
    if uri.endswith("/"):
        return f"{argo_workflows.INPUT_DIR}/{name}"
    return f"{argo_workflows.INPUT_DIR}/{name}/{uri.rsplit('/', 1)[-1]}"


REFERENCE_PARAM = "reference-uri"


def drift_arguments(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec], check: DriftCheck,
                    reference: str, current: str) -> list[str]:
    """The ``drift`` step's command line for one check."""
    feature = next(item for item in monitor.spec.features if item.name == check.feature)
    window: list[str] = []
    if monitor.spec.window is not None:  # only the recent logs, by the timestamp the evaluation reads too
        timestamp = monitor.spec.evaluation.fields.timestamp if monitor.spec.evaluation else "timestamp"
        window = ["--window", monitor.spec.window, "--timestamp-field", timestamp]
    return [
        "--model", monitor.spec.model,
        "--reference", reference,
        "--current", current,
        *window,
        "--feature", f"{feature.name}:{feature.type}:{feature.field}",
        "--method", check.method,
        "--pushgateway", view.project.spec.prometheus.pushgateway_url,
        "--job", conventions.PUSH_JOB_DRIFT,
        "--environment", view.name,
        # Each check pushes its own group, identified by its owner, so one check's push never replaces another's
        # scores and the rules select exactly this check.
        *[argument for key, value in prometheus.rule_context(view, monitor).pushed_identity(check.name).items()
          if key != conventions.LABEL_ENVIRONMENT for argument in ("--grouping-label", f"{key}={value}")],
    ]


def drift_reference(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec], check: DriftCheck) -> str:
    """The URI of a check's reference (for a followed stable version, any URI of the training data's scheme)."""
    if check.reference is not None:
        return check.reference
    if check.reference_dataset is not None:  # training-serving skew: the Dataset's latest evaluation split
        skew = view.get("Dataset", check.reference_dataset)
        assert skew is not None
        return f"{str(skew.spec.output).rstrip('/')}/latest/eval.jsonl"
    model = cast(ResolvedSpec[ModelSpec], view.get("Model", monitor.spec.model))
    assert model.spec.tuning is not None  # checked: LLM283
    training = model.spec.tuning.dataset
    return _dataset_output_uri(view, training) if is_dataset_name(training) else training


def _dataset_output_uri(view: EnvironmentView, name: str) -> str:
    dataset = view.get("Dataset", name)
    assert dataset is not None
    return f"{str(dataset.spec.output).rstrip('/')}/latest/train.jsonl"


def drift_cron_workflow(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec], check: DriftCheck) -> Body:
    """The check's CronWorkflow: one task, or, when the reference follows the stable version, a first task that
    asks MLflow which data that version was trained on (``runtime dataset_version --from-model``)."""
    assert monitor.spec.logs is not None  # checked: LLM264
    name = conventions.drift_workflow_name(monitor.name, check.name)
    reference_uri = drift_reference(view, monitor, check)
    reference_path = f"{argo_workflows.INPUT_DIR}/reference/reference.jsonl" if check.follow_stable \
        else _input_path("reference", reference_uri)
    current_path = _input_path("current", monitor.spec.logs)
    store = view.project.spec.runtime.object_store
    artifacts = [
        argo_workflows.fetched_artifact(store, "reference", reference_path, reference_uri,
                                        REFERENCE_PARAM if check.follow_stable else None),
        argo_workflows.fetched_artifact(store, "current", current_path, monitor.spec.logs),
    ]
    meta = metadata(view, name, monitor, component="drift")
    container = argo.container(
        view, workloads.runtime_command("drift"), drift_arguments(view, monitor, check, reference_path, current_path),
        # No MLflow settings: the step only reads its inputs and pushes to the Pushgateway.
        env=[{"name": "HOME", "value": workloads.TMP_DIR}, {"name": "PYTHONUNBUFFERED", "value": "1"}],
        requests=REQUESTS, limits=LIMITS,
    )
    template: Body = {"name": "drift", "inputs": argo.compact(
        artifacts=[item for item in artifacts if item is not None],
        parameters=[{"name": REFERENCE_PARAM}] if check.follow_stable else [])}
    template["container"] = container
    templates: list[Body] = [template]
    entrypoint = "drift"
    if check.follow_stable:
        model = cast(ResolvedSpec[ModelSpec], view.get("Model", monitor.spec.model))
        assert model.spec.serving is not None  # checked: LLM283
        resolve = {"name": "reference", "outputs": {"parameters": [
            {"name": "uri", "valueFrom": {"path": f"{argo_workflows.OUTPUT_DIR}/reference-uri"}}]},
            "container": argo.container(
                view, workloads.runtime_command("dataset_version"),
                ["--from-model", model.spec.registered_model,
                 "--alias", conventions.environment_alias(model.spec.serving.stable_alias, view.name),
                 "--mlflow-tracking-uri", argo_workflows.MLFLOW_ARGUMENT,
                 "--train-uri-out", f"{argo_workflows.OUTPUT_DIR}/reference-uri"],
                workloads.runtime_env(view), argo_workflows.SMALL_REQUESTS, argo_workflows.SMALL_LIMITS,
                mounts=[{"name": argo_workflows.OUTPUT_VOLUME, "mountPath": argo_workflows.OUTPUT_DIR}])}
        dag = {"name": "main", "dag": {"tasks": [
            {"name": "reference", "template": "reference"},
            {"name": "drift", "template": "drift", "dependencies": ["reference"], "arguments": {"parameters": [
                {"name": REFERENCE_PARAM, "value": "{{tasks.reference.outputs.parameters.uri}}"}]}},
        ]}}
        templates = [dag, resolve, template]
        entrypoint = "main"
    volumes = [{"name": argo_workflows.OUTPUT_VOLUME, "emptyDir": {}}] if check.follow_stable else []
    return cron_workflow(view, meta, check.schedule, argo.workflow_spec(
        entrypoint, templates, deadline_seconds=DRIFT_DEADLINE_SECONDS, volumes=volumes, view=view))


def cron_workflow(view: EnvironmentView, meta: Body, schedule: str, spec: Body) -> Body:
    """A CronWorkflow in UTC that never overlaps its previous run and keeps a short history."""
    return {
        "apiVersion": argo.API_VERSION,
        "kind": "CronWorkflow",
        "metadata": meta,
        "spec": argo.alphabetical({
            **argo.schedules(view, schedule),
            "timezone": TIMEZONE,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": HISTORY_LIMIT,
            "failedJobsHistoryLimit": HISTORY_LIMIT,
            "workflowMetadata": {"labels": argo.workflow_labels(meta)},
            "workflowSpec": spec,
        }),
    }


def drift_cron_workflows(view: EnvironmentView) -> list[Resource]:
    """One CronWorkflow per drift check of every Monitor in this environment."""
    return [
        resource(view, drift_cron_workflow(view, monitor, check), monitor.source)
        for monitor in view.monitors()
        for check in monitor.spec.drift
    ]


def analysis_cron_workflow(view: EnvironmentView, policy: ResolvedSpec[RolloutPolicySpec]) -> Body:
    """Every ``analysis.interval``, ``promote`` judges the candidate on live metrics and commits the next step,
    the promotion or the rollback (it does nothing while no candidate is in flight)."""
    from ..checks import analysis_schedule

    schedule = analysis_schedule(policy.spec.analysis.interval)
    assert schedule is not None  # checked: LLM274
    name = conventions.analysis_workflow_name(policy.name)
    meta = metadata(view, name, policy, component="rollout")
    template = rollout_steps.promote_template(view, "promote", rollout_steps.promote_arguments(view, policy.name))
    return cron_workflow(view, meta, schedule, argo.workflow_spec(
        "promote", [template], deadline_seconds=rollout_steps.DEADLINE_SECONDS,
        mutex=rollout_steps.rollout_mutex(policy.name), view=view,
        service_account=conventions.ROLLOUT_SERVICE_ACCOUNT))


def analysis_cron_workflows(view: EnvironmentView) -> list[Resource]:
    """One analysis CronWorkflow per RolloutPolicy whose model is served."""
    return [
        resource(view, analysis_cron_workflow(view, policy), policy.source)
        for policy in view.rollout_policies()
        if (model := view.get("Model", policy.spec.model)) is not None and model.spec.serving is not None
    ]
