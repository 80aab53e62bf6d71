"""Datasets: the ``curate-<dataset>`` WorkflowTemplate (on demand: ``argo submit --from
workflowtemplate/curate-<name>``) and, with a ``schedule``, a CronWorkflow of the same name, running ``runtime
curate``: production feedback and labelled files in, a content-addressed version out
(``<output>/<sha256>/`` and ``latest/``), logged to MLflow as datasets. Models that name the Dataset train from
its latest version (see :func:`.argo_workflows.dataset_resolvers`)."""

from __future__ import annotations

from .. import conventions
from ..resolve import EnvironmentView, ResolvedSpec
from ..specs import DatasetSpec
from . import argo, workloads
from .base import Body, Resource, metadata, resource
from .cron_workflows import cron_workflow

DEADLINE_SECONDS = 6 * 3600
REQUESTS = {"cpu": "1", "memory": "4Gi"}
LIMITS = {"memory": "8Gi"}


def curate_arguments(view: EnvironmentView, dataset: ResolvedSpec[DatasetSpec]) -> list[str]:
    """The ``curate`` command line of a Dataset: sources, feedback fields, curation, output."""
    spec = dataset.spec
    args = ["--name", dataset.name, "--output", spec.output]
    window = None
    for source in spec.sources:
        if source.logs is not None:
            args += ["--logs", source.logs]
            window = source.window or window
        elif source.labelled is not None:
            args += ["--labelled", source.labelled]
        elif source.dataset is not None:
            other = view.get("Dataset", source.dataset)
            assert other is not None  # resolved: LLM310
            base = str(other.spec.output).rstrip("/")
            args += ["--labelled", f"{base}/latest/train.jsonl", "--labelled", f"{base}/latest/eval.jsonl"]
    if window is not None:
        args += ["--window", window]
    fields = spec.fields
    args += ["--timestamp-field", fields.timestamp, "--prompt-field", fields.prompt,
             "--response-field", fields.response]
    for option, value in (("--context-field", fields.context), ("--rating-field", fields.rating),
                          ("--thumbs-field", fields.thumbs), ("--corrected-field", fields.correction)):
        if value is not None:
            args += [option, value]
    curation = spec.curation
    if curation.keep.min_rating is not None:
        args += ["--min-rating", f"{curation.keep.min_rating:g}"]
    if curation.keep.thumbs_up:
        args.append("--keep-thumbs-up")
    if curation.keep.corrected and fields.correction is not None:
        args.append("--keep-corrected")
    if not curation.scrub_pii:
        args.append("--no-scrub-pii")
    args += ["--near-duplicate-threshold", f"{curation.near_duplicate_threshold:g}",
             "--eval-fraction", f"{curation.eval_fraction:g}", "--seed", str(curation.seed),
             "--mlflow-tracking-uri", "$(MLFLOW_TRACKING_URI)", "--mlflow-experiment", f"dataset-{dataset.name}"]
    return args


def _spec(view: EnvironmentView, dataset: ResolvedSpec[DatasetSpec], meta: Body) -> Body:
    env = [*workloads.runtime_env(view), *workloads.object_store_env(view)]
    store = workloads.object_store_arguments(view)
    if store:  # curate reads and writes s3:// itself: boto3 takes the endpoint from the environment
        env.append({"name": "AWS_ENDPOINT_URL_S3",
                    "value": f"{'http' if '--insecure' in store else 'https'}://{store[1]}"})
    container = argo.container(view, workloads.runtime_command("curate"), curate_arguments(view, dataset), env,
                               REQUESTS, LIMITS)
    template = {"name": "curate", "container": container,
                "retryStrategy": {"limit": 2, "retryPolicy": "Always", "expression": argo.RETRY_EXPRESSION,
                                  "backoff": {"duration": "1m", "factor": 2, "maxDuration": f"{DEADLINE_SECONDS}s"}}}
    return argo.workflow_spec("curate", [template], deadline_seconds=DEADLINE_SECONDS,
                              mutex=conventions.curate_workflow_name(dataset.name), labels=argo.workflow_labels(meta),
                              view=view)


def curation_workflows(view: EnvironmentView) -> list[Resource]:
    """The curation WorkflowTemplate of every Dataset, and its CronWorkflow when it has a schedule."""
    resources = []
    for dataset in view.datasets():
        name = conventions.curate_workflow_name(dataset.name)
        meta = metadata(view, name, dataset, component="dataset")
        template: Body = {"apiVersion": argo.API_VERSION, "kind": "WorkflowTemplate", "metadata": meta,
                          "spec": _spec(view, dataset, meta)}
        resources.append(resource(view, template, dataset.source))
        if dataset.spec.schedule is not None:
            spec = _spec(view, dataset, meta)
            spec.pop("workflowMetadata", None)  # the CronWorkflow labels its workflows itself
            resources.append(resource(view, cron_workflow(view, dict(meta), dataset.spec.schedule, spec),
                                      dataset.source))
    return resources
