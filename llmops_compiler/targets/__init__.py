"""Targets: one module per output kind, each a pure function from the resolved graph to resources.

A later capability adds its target by appending to ``ENVIRONMENT_TARGETS`` or ``PROJECT_TARGETS``.
"""

from __future__ import annotations

from . import (
    alertmanager,
    argo_events,
    argo_workflows,
    argocd,
    configmaps,
    core,
    cron_workflows,
    datasets,
    evaluation,
    istio,
    jobs,
    knowledge_bases,
    prometheus,
    serving,
)
from .base import EnvironmentTarget, ProjectTarget, Resource

ENVIRONMENT_TARGETS: list[EnvironmentTarget] = [
    core.namespace,
    core.service_accounts,
    core.artifact_repositories,
    configmaps.prompt_configmaps,
    configmaps.chain_configmaps,
    configmaps.tool_registry,
    argo_workflows.tune_workflow_templates,
    jobs.prompt_registration_job,
    prometheus.prometheus_rules,
    alertmanager.alertmanager_configs,
    argo_events.event_bus,
    argo_events.alert_triggers,
    argo_events.rollback_workflow_templates,
    cron_workflows.drift_cron_workflows,
    cron_workflows.analysis_cron_workflows,
    evaluation.score_cron_workflows,
    datasets.curation_workflows,
    knowledge_bases.knowledge_base_targets,
    serving.serving_workloads,
    istio.traffic,
]
PROJECT_TARGETS: list[ProjectTarget] = [argocd.applications]

__all__ = ["ENVIRONMENT_TARGETS", "PROJECT_TARGETS", "Resource"]
