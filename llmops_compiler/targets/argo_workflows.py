"""Argo Workflows: per Model with ``tuning``, the WorkflowTemplate ``tune-<model>`` whose DAG tunes, evaluates
(quality gates), optionally quantizes, and registers the result in MLflow under the ``candidate`` alias.

Each step is ``python -m llmops_compiler.runtime.<step>`` in the Project's runtime image, with every setting
spelled out as an argument. Models and datasets come in as input artifacts fetched from their URIs; the tuned
model, metrics and MLflow run id travel between steps as artifacts. hera's models are imported inside the
target, so compiling a project without tuned models never pays for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import conventions
from ..resolve import EnvironmentView, ResolvedSpec
from ..specs import ModelSpec
from ..specs.common import Resources, SecretKeyRef, duration_seconds
from ..specs.project import ObjectStore
from . import workloads
from .base import Resource, metadata, resource

if TYPE_CHECKING:
    from hera.workflows import models as m

API_VERSION = "argoproj.io/v1alpha1"
ENTRYPOINT = "main"


# Where a step finds its inputs and leaves its outputs inside the container; OUTPUT_DIR is an emptyDir because
# the root filesystem is read-only.
INPUT_DIR = "/work/in"
OUTPUT_DIR = "/work/out"
OUTPUT_VOLUME = "outputs"

# Artifacts read straight from `s3://bucket/key` URIs name their endpoint (the Project's object store): Argo
# fills a partial S3 location from the artifact repository *including its bucket*, so an input from another
# bucket must be complete.
_BUCKET_URI = re.compile(r"^(?P<scheme>s3|gs)://(?P<bucket>[^/]+)/(?P<key>.+)$")

# Exit codes of the runtime steps: 1 a quality gate failed, 2 bad input; both fail the same way on every try.
# Retry what may pass next time: Argo errors (pod deleted or evicted, node lost, artifact transfer failed) and
# exit codes >= 3 (MLflow or another service unreachable, OOM kill 137). `OnTransientError` alone would
# miss OOM kills and MLflow outages; `Always` alone would rerun a rejected model for hours of GPU time.
RETRY_EXPRESSION = 'lastRetry.status == "Error" || asInt(lastRetry.exitCode) >= 3'
RETRY_BACKOFF = "1m"
RETRY_BACKOFF_FACTOR = 2

# Successful pods go at once; failed ones stay for `kubectl logs` until the workflow's TTL removes it.
SUCCEEDED_WORKFLOW_TTL = 24 * 3600
FAILED_WORKFLOW_TTL = 7 * 24 * 3600

# The steps that only move files and talk to MLflow get a small fixed share.
SMALL_REQUESTS = {"cpu": "250m", "memory": "512Mi"}
SMALL_LIMITS = {"memory": "2Gi"}

# Environment variables that carry why a run was started into every step (logs, pod spec).
TRIGGER_ENV = {
    "LLMOPS_TRIGGER_REASON": conventions.TUNE_PARAM_REASON,
    "LLMOPS_TRIGGER_ALERT": conventions.TUNE_PARAM_ALERT,
    "LLMOPS_TRIGGER_FEATURE": conventions.TUNE_PARAM_FEATURE,
}


def tune_workflow_templates(view: EnvironmentView) -> list[Resource]:
    """One ``tune-<model>`` WorkflowTemplate per Model with ``tuning`` (checks require ``evaluation`` too)."""
    return [
        resource(view, tune_workflow_template(view, model), model.source)
        for model in view.models()
        if model.spec.tuning is not None and model.spec.evaluation is not None
    ]


# --- inputs from URIs ------------------------------------------------------------------------------

def _parameter_expression(parameter: str, pattern: str, replacement: str) -> str:
    """An Argo expression rewriting an input parameter with a regular expression (sprig's regexReplaceAll)."""
    return f"{{{{=sprig.regexReplaceAll('{pattern}', inputs.parameters['{parameter}'], '{replacement}')}}}}"


def fetched_artifact(
    store: ObjectStore, name: str, path: str, uri: str, parameter: str | None = None
) -> m.Artifact | None:
    """An input artifact that downloads ``uri`` to ``path``; None for a scheme Argo cannot fetch.

    With ``parameter``, the location is read from that input parameter at run time (a trigger may point the
    workflow at another dataset of the same scheme); ``uri`` then only decides the kind of location.
    """
    from hera.workflows import models as m

    found = _BUCKET_URI.match(uri)
    if found is not None:
        scheme = found["scheme"]
        if parameter is None:
            bucket, key = found["bucket"], found["key"]
        else:
            bucket = _parameter_expression(parameter, f"^{scheme}://([^/]+)/.*$", "${1}")
            key = _parameter_expression(parameter, f"^{scheme}://[^/]+/", "")
        if scheme == "s3":
            return m.Artifact(name=name, path=path, s3=_s3_location(store, bucket, key))
        return m.Artifact(name=name, path=path, gcs=m.GCSArtifact(bucket=bucket, key=key))
    if uri.startswith(("https://", "http://")):
        url = uri if parameter is None else f"{{{{inputs.parameters.{parameter}}}}}"
        return m.Artifact(name=name, path=path, http=m.HTTPArtifact(url=url))
    return None


def _s3_location(store: ObjectStore, bucket: str, key: str) -> m.S3Artifact:
    from hera.workflows import models as m

    def secret(reference: SecretKeyRef) -> m.SecretKeySelector:
        return m.SecretKeySelector(name=reference.name, key=reference.key)

    keys: dict[str, Any] = {"use_sdk_creds": True}
    if store.access_key is not None and store.secret_key is not None:
        keys = {"access_key_secret": secret(store.access_key), "secret_key_secret": secret(store.secret_key)}
    extra: dict[str, Any] = {"insecure": True} if store.insecure else {}
    if store.region is not None:
        extra["region"] = store.region
    return m.S3Artifact(endpoint=store.endpoint, bucket=bucket, key=key, **keys, **extra)


# --- steps -----------------------------------------------------------------------------------------

@dataclass
class Step:
    """One DAG task and the container template it runs."""

    name: str
    args: list[str]
    dependencies: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)  # workflow parameters the step reads
    fetched: list[Any] = field(default_factory=list)  # hera input artifacts from object storage
    passed: list[tuple[str, str, str]] = field(default_factory=list)  # (input, path, "<task>.<output>")
    outputs: list[tuple[str, str, bool]] = field(default_factory=list)  # (artifact, path, is a directory)
    output_parameters: list[tuple[str, str]] = field(default_factory=list)  # (parameter, path of its file)
    profile: str = "small"  # "accelerated": the tuning resources and nodes; "memory": its cpu and memory


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def _input(name: str) -> str:
    return f"{INPUT_DIR}/{name}"


def _output(name: str) -> str:
    return f"{OUTPUT_DIR}/{name}"


def _parameter(name: str) -> str:
    return f"{{{{inputs.parameters.{name}}}}}"


MLFLOW_ARGUMENT = "$(MLFLOW_TRACKING_URI)"  # expanded by Kubernetes from the container's environment


def lifecycle_steps(view: EnvironmentView, model: ResolvedSpec[ModelSpec]) -> list[Step]:
    """tune → evaluate → [quantize →] register, with the arguments each runtime step takes."""
    spec = model.spec
    tuning, evaluation = spec.tuning, spec.evaluation
    assert tuning is not None and evaluation is not None
    experiment = spec.registered_model
    tuned = "model" if tuning.method == "full" else "adapter"

    store = view.project.spec.runtime.object_store
    base_model = fetched_artifact(store, "base-model", _input("base-model"), spec.base_model)
    base_model_argument = _input("base-model") if base_model is not None else spec.base_model
    base_inputs = [base_model] if base_model is not None else []
    train = fetched_artifact(store, "dataset", _input("train.jsonl"), tuning.dataset, conventions.TUNE_PARAM_DATASET)
    evaluation_set = fetched_artifact(store, "eval-dataset", _input("eval.jsonl"), evaluation.dataset)

    tune_args = ["--base-model", base_model_argument,
                 "--dataset", _input("train.jsonl") if train else _parameter(conventions.TUNE_PARAM_DATASET),
                 "--method", tuning.method]
    if tuning.method != "full" and tuning.lora is not None:
        tune_args += ["--r", str(tuning.lora.r), "--alpha", str(tuning.lora.alpha),
                      "--dropout", _number(tuning.lora.dropout)]
        if tuning.lora.target_modules:
            tune_args += ["--target-modules", ",".join(tuning.lora.target_modules)]
    tune_args += [
        "--epochs", str(tuning.epochs), "--learning-rate", _number(tuning.learning_rate),
        "--max-steps", str(tuning.max_steps), "--batch-size", str(tuning.batch_size),
        "--seed", str(tuning.seed),
        "--output", _output(tuned), "--metrics-out", _output("tune-metrics.json"),
        "--mlflow-tracking-uri", MLFLOW_ARGUMENT, "--mlflow-experiment", experiment,
        "--run-id-out", _output("run-id"),
    ]
    tune = Step(
        "tune", tune_args, parameters=[conventions.TUNE_PARAM_DATASET],
        fetched=[*base_inputs, *([train] if train else [])],
        outputs=[(tuned, _output(tuned), True), ("tune-metrics", _output("tune-metrics.json"), False),
                 ("run-id", _output("run-id"), False)],
        profile="accelerated",
    )

    # A full fine-tune is a whole model; an adapter is loaded on top of the base model.
    if tuned == "adapter":
        model_args = ["--base-model", base_model_argument, "--adapter", _input("adapter")]
        model_inputs = base_inputs
    else:
        model_args, model_inputs = ["--model", _input("model")], []
    evaluate_args = [*model_args,
                     "--dataset", _input("eval.jsonl") if evaluation_set else evaluation.dataset,
                     "--metrics", ",".join(evaluation.metrics),
                     "--max-new-tokens", str(evaluation.max_new_tokens)]
    if evaluation.judge_url is not None:
        evaluate_args += ["--judge-url", evaluation.judge_url]
    for gate in evaluation.gates:
        if gate.min is not None:
            evaluate_args += ["--gate", f"{gate.metric}>={_number(gate.min)}"]
        if gate.max is not None:
            evaluate_args += ["--gate", f"{gate.metric}<={_number(gate.max)}"]
        if gate.max_regression is not None:
            evaluate_args += ["--max-regression", f"{gate.metric}={_number(gate.max_regression)}"]
    if any(gate.max_regression is not None for gate in evaluation.gates):
        evaluate_args += ["--registered-model", spec.registered_model]  # its stable version is the baseline
        if spec.serving is not None:
            evaluate_args += ["--stable-alias", spec.serving.stable_alias]
    evaluate_args += ["--mlflow-tracking-uri", MLFLOW_ARGUMENT, "--mlflow-experiment", experiment,
                      "--run-id-file", _input("run-id"), "--metrics-out", _output("metrics.json"),
                      "--predictions-out", _output("predictions.jsonl")]
    evaluate = Step(
        "evaluate", evaluate_args, dependencies=["tune"],
        fetched=[*model_inputs, *([evaluation_set] if evaluation_set else [])],
        passed=[(tuned, _input(tuned), f"tune.{tuned}"), ("run-id", _input("run-id"), "tune.run-id")],
        outputs=[("metrics", _output("metrics.json"), False),
                 ("predictions", _output("predictions.jsonl"), False)],
        profile="accelerated",  # it loads the model and generates: the same hardware as training
    )
    steps = [tune, evaluate]

    registered_from = f"tune.{tuned}"
    if spec.quantization is not None:
        quantize_model = ["--model-dir", base_model_argument, "--adapter", _input("adapter")] \
            if tuned == "adapter" else ["--model-dir", _input("model")]
        steps.append(Step(
            "quantize", [*quantize_model, "--output", _output("quantized"), "--dtype", "int8"],
            dependencies=["evaluate"], fetched=model_inputs,
            passed=[(tuned, _input(tuned), f"tune.{tuned}")],
            outputs=[("quantized", _output("quantized"), True)],
            profile="memory",  # dynamic int8 quantization runs on CPU but holds the whole model
        ))
        registered_from = "quantize.quantized"

    candidate_alias = spec.serving.candidate_alias if spec.serving is not None else "candidate"
    steps.append(Step(
        "register",
        ["--model-dir", _input("model"), "--registered-model", spec.registered_model,
         "--metrics", _input("metrics.json"), "--spec-hash", model.spec_hash,
         "--git-commit", _parameter(conventions.TUNE_PARAM_GIT_COMMIT),
         "--dataset-uri", _parameter(conventions.TUNE_PARAM_DATASET), "--alias", candidate_alias,
         "--mlflow-tracking-uri", MLFLOW_ARGUMENT, "--mlflow-experiment", experiment,
         "--run-id-file", _input("run-id"), "--version-out", _output("version")],
        dependencies=[steps[-1].name],
        parameters=[conventions.TUNE_PARAM_GIT_COMMIT, conventions.TUNE_PARAM_DATASET],
        passed=[("model", _input("model"), registered_from),
                ("metrics", _input("metrics.json"), "evaluate.metrics"),
                ("run-id", _input("run-id"), "tune.run-id")],
        output_parameters=[("version", _output("version"))],
    ))
    return steps


# --- hera objects ----------------------------------------------------------------------------------

def _quantities(values: dict[str, str]) -> dict[str, m.Quantity] | None:
    from hera.workflows import models as m

    return {name: m.Quantity(amount) for name, amount in sorted(values.items())} or None


def _resources(profile: str, tuning: Resources) -> m.ResourceRequirements:
    from hera.workflows import models as m

    if profile == "accelerated":
        requests, limits = tuning.requests, tuning.limits
    elif profile == "memory":  # the tuning cpu and memory, without GPUs or other extended resources
        requests = {name: amount for name, amount in tuning.requests.items() if "/" not in name}
        limits = {name: amount for name, amount in tuning.limits.items() if "/" not in name}
    else:
        requests, limits = SMALL_REQUESTS, SMALL_LIMITS
    return m.ResourceRequirements(requests=_quantities(requests), limits=_quantities(limits))


def _output_artifact(name: str, path: str, directory: bool, key_prefix: str | None) -> m.Artifact:
    """An output kept in the artifact repository: files as they are, directories as .tgz (Argo's default).

    With a key prefix, a key-only S3 location: Argo takes bucket and credentials from the configured
    repository and files the artifact under ``<prefix>/{{workflow.name}}/``.
    """
    from hera.workflows import models as m

    archive = None if directory else m.ArchiveStrategy(none=m.NoneStrategy())
    s3 = None
    if key_prefix is not None:
        file_name = f"{name}.tgz" if directory else path.rsplit("/", 1)[-1]
        s3 = m.S3Artifact(key=f"{key_prefix}/{{{{workflow.name}}}}/{file_name}")
    return m.Artifact(name=name, path=path, archive=archive, s3=s3)


def _artifact_key_prefix(view: EnvironmentView, model: ResolvedSpec[ModelSpec]) -> str | None:
    repository = view.project.spec.runtime.artifact_repository
    if not repository:
        return None
    found = _BUCKET_URI.match(repository.rstrip("/") + "/")
    prefix = found["key"].strip("/") if found is not None else repository.strip("/")
    return "/".join(part for part in (prefix, model.name) if part)


def _container(view: EnvironmentView, step: Step, tuning: Resources) -> m.Container:
    from hera.workflows import models as m

    env = [m.EnvVar.model_validate(variable) for variable in workloads.runtime_env(view)]
    env += [m.EnvVar(name=variable, value=f"{{{{workflow.parameters.{parameter}}}}}")
            for variable, parameter in TRIGGER_ENV.items()]
    mounts = [m.VolumeMount.model_validate(mount) for mount in workloads.scratch_mounts()]
    mounts.append(m.VolumeMount(name=OUTPUT_VOLUME, mount_path=OUTPUT_DIR))
    return m.Container(
        name="main",
        image=view.project.spec.runtime.image,
        command=workloads.runtime_command(step.name),
        args=step.args,
        env=env,
        resources=_resources(step.profile, tuning),
        security_context=m.SecurityContext.model_validate(workloads.container_security_context()),
        volume_mounts=mounts,
    )


def _template(view: EnvironmentView, model: ResolvedSpec[ModelSpec], step: Step) -> m.Template:
    from hera.workflows import models as m

    tuning = model.spec.tuning
    assert tuning is not None
    key_prefix = _artifact_key_prefix(view, model)
    passed = [m.Artifact(name=name, path=path) for name, path, _ in step.passed]
    inputs = m.Inputs(
        parameters=[m.Parameter(name=name) for name in step.parameters] or None,
        artifacts=[*step.fetched, *passed] or None,
    )
    outputs = m.Outputs(
        artifacts=[_output_artifact(*output, key_prefix) for output in step.outputs] or None,
        parameters=[m.Parameter(name=name, value_from=m.ValueFrom(path=path))
                    for name, path in step.output_parameters] or None,
    )
    retry = None
    if tuning.retries:
        retry = m.RetryStrategy(
            limit=m.IntOrString(tuning.retries),
            retry_policy="Always",
            expression=RETRY_EXPRESSION,
            backoff=m.Backoff(duration=RETRY_BACKOFF, factor=m.IntOrString(RETRY_BACKOFF_FACTOR),
                              max_duration=f"{int(duration_seconds(tuning.timeout))}s"),
        )
    accelerated = step.profile == "accelerated"  # only these steps go to the tuning nodes
    tolerations = [m.Toleration.model_validate(toleration.model_dump(by_alias=True, exclude_none=True))
                   for toleration in tuning.tolerations] if accelerated else []
    node_selector = dict(sorted(tuning.node_selector.items())) if accelerated else {}
    return m.Template(
        name=step.name,
        inputs=inputs if inputs.parameters or inputs.artifacts else None,
        outputs=outputs if outputs.artifacts or outputs.parameters else None,
        container=_container(view, step, tuning.resources),
        retry_strategy=retry,
        node_selector=node_selector or None,
        tolerations=tolerations or None,
    )


def _dag(steps: list[Step]) -> m.Template:
    from hera.workflows import models as m

    tasks = []
    for step in steps:
        parameters = [m.Parameter(name=name, value=f"{{{{workflow.parameters.{name}}}}}")
                      for name in step.parameters]
        artifacts = [m.Artifact(name=name, from_=f"{{{{tasks.{task}.outputs.artifacts.{output}}}}}")
                     for name, _, source in step.passed for task, output in [source.split(".", 1)]]
        arguments = m.Arguments(parameters=parameters or None, artifacts=artifacts or None)
        tasks.append(m.DAGTask(
            name=step.name,
            template=step.name,
            dependencies=step.dependencies or None,
            arguments=arguments if parameters or artifacts else None,
        ))
    return m.Template(name=ENTRYPOINT, dag=m.DAGTemplate(tasks=tasks))


def workflow_parameters(model: ResolvedSpec[ModelSpec]) -> list[m.Parameter]:
    """What a trigger (alert Sensor, CI, a person with `argo submit -p`) may set, with the defaults."""
    from hera.workflows import models as m

    tuning = model.spec.tuning
    assert tuning is not None
    return [
        m.Parameter(name=conventions.TUNE_PARAM_DATASET, value=tuning.dataset,
                    description="Training data (same URI scheme as the spec's dataset)"),
        m.Parameter(name=conventions.TUNE_PARAM_REASON, value="manual",
                    description="Why this run started: manual, or the summary of the alert that started it"),
        m.Parameter(name=conventions.TUNE_PARAM_ALERT, value="",
                    description="Alert that triggered the run"),
        m.Parameter(name=conventions.TUNE_PARAM_FEATURE, value="",
                    description="Drifted feature, for drift alerts"),
        m.Parameter(name=conventions.TUNE_PARAM_GIT_COMMIT, value=conventions.UNKNOWN_COMMIT,
                    description="Commit of the specs; set by the Sensor or CI that submits the workflow"),
    ]


def tune_workflow_template(view: EnvironmentView, model: ResolvedSpec[ModelSpec]) -> dict[str, Any]:
    """The ``tune-<model>`` WorkflowTemplate of one environment, as a plain dict."""
    from hera.workflows import models as m

    tuning = model.spec.tuning
    assert tuning is not None
    name = conventions.tune_workflow_name(model.name)
    meta = metadata(view, name, model, component="tuning")
    steps = lifecycle_steps(view, model)
    volumes = [m.Volume.model_validate(volume) for volume in workloads.scratch_volumes()]
    volumes.append(m.Volume(name=OUTPUT_VOLUME, empty_dir=m.EmptyDirVolumeSource()))
    workflow_labels = {key: value for key, value in meta["labels"].items()
                       if key in (conventions.LABEL_PART_OF, conventions.LABEL_ENV,
                                  conventions.LABEL_SPEC_KIND, conventions.LABEL_SPEC_NAME)}
    template = m.WorkflowTemplate(
        api_version=API_VERSION,
        kind="WorkflowTemplate",
        metadata=m.ObjectMeta.model_validate(meta),
        spec=m.WorkflowSpec(
            entrypoint=ENTRYPOINT,
            arguments=m.Arguments(parameters=workflow_parameters(model)),
            service_account_name=conventions.WORKFLOW_SERVICE_ACCOUNT,
            security_context=m.PodSecurityContext.model_validate(workloads.pod_security_context()),
            # tuning.timeout bounds the whole run, retries included: what a retrain may cost is in the spec.
            active_deadline_seconds=int(duration_seconds(tuning.timeout)),
            # Two retrains of one model never overlap (a burst of alerts queues behind the running one).
            synchronization=m.Synchronization(mutexes=[m.Mutex(name=conventions.tune_workflow_name(model.name))]),
            pod_gc=m.PodGC(strategy="OnPodSuccess"),
            ttl_strategy=m.TTLStrategy(seconds_after_success=SUCCEEDED_WORKFLOW_TTL,
                                       seconds_after_failure=FAILED_WORKFLOW_TTL),
            workflow_metadata=m.WorkflowMetadata(labels=workflow_labels),
            volumes=volumes,
            templates=[_dag(steps), *(_template(view, model, step) for step in steps)],
        ),
    )
    body: dict[str, Any] = template.model_dump(by_alias=True, exclude_none=True, mode="json")
    return body
