"""Drift checks: one CronWorkflow per drift check of a Monitor, running the ``drift`` runtime step.

The step reads the check's reference dataset and the monitor's request logs (input artifacts fetched from
their URIs), computes the score of one feature with the check's method and pushes it to the Pushgateway as
``llmops_drift_score{model,feature,method}``, grouped by environment and check; the PrometheusRule judges
it against the threshold. A run never overlaps the previous one (``concurrencyPolicy: Forbid``).
"""

from __future__ import annotations

from typing import Any

from .. import conventions
from ..resolve import EnvironmentView, ResolvedSpec
from ..specs import MonitorSpec
from ..specs.monitor import DriftCheck
from . import argo_workflows, workloads
from .base import Resource, metadata, resource

API_VERSION = "argoproj.io/v1alpha1"
# Cron schedules are read in UTC, whatever the controller's time zone.
TIMEZONE = "UTC"
# A drift run that takes longer than this is stuck: fail it so the next schedule can run.
DRIFT_DEADLINE_SECONDS = 3600
REQUESTS = {"cpu": "500m", "memory": "1Gi"}
LIMITS = {"memory": "4Gi"}
HISTORY_LIMIT = 3


def _input_path(name: str, uri: str) -> str:
    """Where an input lands: a prefix (``.../``) becomes a folder, a file keeps its name (``.gz`` matters)."""
    if uri.endswith("/"):
        return f"{argo_workflows.INPUT_DIR}/{name}"
    return f"{argo_workflows.INPUT_DIR}/{name}/{uri.rsplit('/', 1)[-1]}"


def drift_arguments(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec], check: DriftCheck,
                    reference: str, current: str) -> list[str]:
    """The ``drift`` step's command line for one check."""
    feature = next(item for item in monitor.spec.features if item.name == check.feature)
    return [
        "--model", monitor.spec.model,
        "--reference", reference,
        "--current", current,
        "--feature", f"{feature.name}:{feature.type}:{feature.field}",
        "--method", check.method,
        "--pushgateway", view.project.spec.prometheus.pushgateway_url,
        "--job", conventions.PUSH_JOB_DRIFT,
        "--environment", view.name,
        # Each check pushes its own group, so one check's push never replaces another's scores.
        "--grouping-label", f"{conventions.LABEL_CHECK}={check.name}",
    ]


def drift_cron_workflow(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec], check: DriftCheck) -> dict[str, Any]:
    from hera.workflows import models as m

    assert monitor.spec.logs is not None  # checked: LLM264
    name = conventions.drift_workflow_name(monitor.name, check.name)
    reference_path = _input_path("reference", check.reference)
    current_path = _input_path("current", monitor.spec.logs)
    store = view.project.spec.runtime.object_store
    artifacts = [
        argo_workflows.fetched_artifact(store, "reference", reference_path, check.reference),
        argo_workflows.fetched_artifact(store, "current", current_path, monitor.spec.logs),
    ]
    meta = metadata(view, name, monitor, component="drift")
    workflow_labels = {key: value for key, value in meta["labels"].items()
                       if key in (conventions.LABEL_PART_OF, conventions.LABEL_ENV,
                                  conventions.LABEL_SPEC_KIND, conventions.LABEL_SPEC_NAME)}
    container = m.Container(
        name="main",
        image=view.project.spec.runtime.image,
        command=workloads.runtime_command("drift"),
        args=drift_arguments(view, monitor, check, reference_path, current_path),
        # No MLflow settings: the step only reads its inputs and pushes to the Pushgateway.
        env=[m.EnvVar(name="HOME", value=workloads.TMP_DIR), m.EnvVar(name="PYTHONUNBUFFERED", value="1")],
        resources=m.ResourceRequirements(
            requests={key: m.Quantity(value) for key, value in REQUESTS.items()},
            limits={key: m.Quantity(value) for key, value in LIMITS.items()},
        ),
        security_context=m.SecurityContext.model_validate(workloads.container_security_context()),
        volume_mounts=[m.VolumeMount.model_validate(mount) for mount in workloads.scratch_mounts()],
    )
    cron = m.CronWorkflow(
        api_version=API_VERSION,
        kind="CronWorkflow",
        metadata=m.ObjectMeta.model_validate(meta),
        spec=m.CronWorkflowSpec(
            schedules=[check.schedule],
            timezone=TIMEZONE,
            concurrency_policy="Forbid",
            successful_jobs_history_limit=HISTORY_LIMIT,
            failed_jobs_history_limit=HISTORY_LIMIT,
            workflow_metadata=m.ObjectMeta(labels=workflow_labels),
            workflow_spec=m.WorkflowSpec(
                entrypoint="drift",
                service_account_name=conventions.WORKFLOW_SERVICE_ACCOUNT,
                security_context=m.PodSecurityContext.model_validate(workloads.pod_security_context()),
                active_deadline_seconds=DRIFT_DEADLINE_SECONDS,
                pod_gc=m.PodGC(strategy="OnPodSuccess"),
                ttl_strategy=m.TTLStrategy(seconds_after_success=argo_workflows.SUCCEEDED_WORKFLOW_TTL,
                                           seconds_after_failure=argo_workflows.FAILED_WORKFLOW_TTL),
                volumes=[m.Volume.model_validate(volume) for volume in workloads.scratch_volumes()],
                templates=[m.Template(
                    name="drift",
                    inputs=m.Inputs(artifacts=[artifact for artifact in artifacts if artifact is not None]),
                    container=container,
                )],
            ),
        ),
    )
    body: dict[str, Any] = cron.model_dump(by_alias=True, exclude_none=True, mode="json")
    return body


def drift_cron_workflows(view: EnvironmentView) -> list[Resource]:
    """One CronWorkflow per drift check of every Monitor in this environment."""
    return [
        resource(view, drift_cron_workflow(view, monitor, check), monitor.source)
        for monitor in view.monitors()
        for check in monitor.spec.drift
    ]
