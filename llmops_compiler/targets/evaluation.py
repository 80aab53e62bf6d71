"""Continuous evaluation per Monitor with quality checks: the ``score-<monitor>`` CronWorkflow runs ``runtime
score`` on a window of the production logs and pushes ``llmops_quality_score{model, metric}`` (and the number of
records behind each) to the Pushgateway, grouped by the monitor's owner, where the quality alerts read it.

The embedding model defaults to that of the KnowledgeBase the model's chains retrieve from, so answers and
context are compared in the space the retriever uses. A judge's token comes from a Secret; its concurrency and
the requests (and tokens) per run are bounded by the spec.
"""

from __future__ import annotations

from .. import conventions
from ..resolve import EnvironmentView, ResolvedSpec
from ..specs import MonitorSpec
from ..specs.monitor import QUALITY_METRICS
from . import argo, prometheus, workloads
from .base import Body, Resource, metadata, resource
from .cron_workflows import cron_workflow

# A run that takes longer than this is stuck (embedding a large sample on CPU, a slow judge).
SCORE_DEADLINE_SECONDS = prometheus.SCORE_DEADLINE_SECONDS
REQUESTS = {"cpu": "2", "memory": "4Gi"}
LIMITS = {"memory": "8Gi"}
JUDGE_TOKEN_ENV = "LLMOPS_JUDGE_TOKEN"


def score_arguments(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec]) -> list[str]:
    """The ``score`` command line of a Monitor's quality checks."""
    spec = monitor.spec
    evaluation = spec.evaluation
    assert evaluation is not None and spec.logs is not None  # checked: LLM269, LLM264
    fields = evaluation.fields
    args = ["--model", spec.model, "--logs", spec.logs, "--window", evaluation.window,
            "--sample-size", str(evaluation.sample_size), "--timestamp-field", fields.timestamp,
            "--request-field", fields.request, "--response-field", fields.response,
            "--context-field", fields.context, "--reference-field", fields.reference,
            *(argument for field in fields.feedback for argument in ("--feedback-field", field))]
    for check in spec.quality:
        methods = QUALITY_METRICS.get(check.metric, ("judge",))
        method = check.method or methods[0]
        args += ["--metric", f"{check.metric}={method}"]
        if method == "judge" and check.criterion:
            args += ["--judge-criterion", f"{check.metric}={check.criterion}"]
    embedding = evaluation.embedding_model or view.embedding_model_for(spec.model)
    if embedding is not None:
        args += ["--embedding-model", embedding]
    if evaluation.nli_model is not None:
        args += ["--nli-model", evaluation.nli_model]
    if evaluation.safety_classifier_url is not None:
        args += ["--safety-classifier-url", evaluation.safety_classifier_url]
    judge = evaluation.judge
    if judge is not None:
        args += ["--judge-url", judge.url, "--judge-model", judge.model,
                 "--judge-max-concurrency", str(judge.max_concurrency), "--judge-max-requests", str(judge.max_requests)]
        if judge.max_tokens is not None:
            args += ["--judge-max-tokens", str(judge.max_tokens)]
        if judge.token_secret is not None:
            args += ["--judge-token-env", JUDGE_TOKEN_ENV]
    metrics = view.project.spec.metrics
    args += ["--pushgateway", view.project.spec.prometheus.pushgateway_url, "--job", conventions.PUSH_JOB_QUALITY,
             "--environment", view.name, "--metric-name", metrics.quality_score,
             *[argument for key, value in prometheus.rule_context(view, monitor).pushed_identity().items()
               if key != conventions.LABEL_ENVIRONMENT for argument in ("--grouping-label", f"{key}={value}")],
             "--mlflow-tracking-uri", "$(MLFLOW_TRACKING_URI)", "--mlflow-experiment", f"quality-{monitor.name}"]
    return args


def score_cron_workflow(view: EnvironmentView, monitor: ResolvedSpec[MonitorSpec]) -> Body:
    evaluation = monitor.spec.evaluation
    assert evaluation is not None
    name = conventions.score_workflow_name(monitor.name)
    env = [*workloads.runtime_env(view), *workloads.object_store_env(view)]
    if evaluation.judge is not None and evaluation.judge.token_secret is not None:
        token = evaluation.judge.token_secret
        env.append({"name": JUDGE_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": token.name, "key": token.key}}})
    store = workloads.object_store_arguments(view)
    if store:  # score reads s3:// itself: boto3 takes the endpoint from the environment
        env.append({"name": "AWS_ENDPOINT_URL_S3",
                    "value": f"{'http' if '--insecure' in store else 'https'}://{store[1]}"})
    container = argo.container(view, workloads.runtime_command("score"), score_arguments(view, monitor), env,
                               REQUESTS, LIMITS)
    meta = metadata(view, name, monitor, component="evaluation")
    return cron_workflow(view, meta, evaluation.schedule, argo.workflow_spec(
        "score", [{"name": "score", "container": container}], deadline_seconds=SCORE_DEADLINE_SECONDS, view=view))


def score_cron_workflows(view: EnvironmentView) -> list[Resource]:
    """The continuous evaluation of every Monitor with quality checks."""
    return [resource(view, score_cron_workflow(view, monitor), monitor.source)
            for monitor in view.monitors() if monitor.spec.quality and monitor.spec.evaluation is not None]
