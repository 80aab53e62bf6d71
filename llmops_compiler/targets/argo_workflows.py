"""Argo Workflows: per Model with ``tuning``, the WorkflowTemplate ``tune-<model>`` whose DAG tunes, evaluates
(quality gates), optionally quantizes, and registers the result in MLflow under the ``candidate`` alias.

Each step is ``python -m llmops_compiler.runtime.<step>`` in the Project's runtime image, with every setting
spelled out as an argument. Models and datasets come in as input artifacts fetched from their URIs; the tuned
model, metrics and MLflow run id travel between steps as artifacts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import conventions
from ..resolve import EnvironmentView, ResolvedSpec
from ..specs import ModelSpec
from ..specs.common import Resources, SecretKeyRef, duration_seconds
from ..specs.model import is_dataset_name
from ..specs.project import ObjectStore
from . import argo, rollout_steps, workloads
from .base import Body, Resource, metadata, resource

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
RETRY_EXPRESSION = argo.RETRY_EXPRESSION
RETRY_BACKOFF = "1m"
RETRY_BACKOFF_FACTOR = 2

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


def fetched_artifact(store: ObjectStore, name: str, path: str, uri: str, parameter: str | None = None) -> Body | None:
    """An input artifact that downloads ``uri`` to ``path``; None for a scheme Argo cannot fetch.

    With ``parameter``, the location is read from that input parameter at run time (a trigger may point the
    workflow at another dataset of the same scheme); ``uri`` then only decides the kind of location.
    """
    found = _BUCKET_URI.match(uri)
    if found is not None:
        scheme = found["scheme"]
        if parameter is None:
            bucket, key = found["bucket"], found["key"]
        else:
            bucket = _parameter_expression(parameter, f"^{scheme}://([^/]+)/.*$", "${1}")
            key = _parameter_expression(parameter, f"^{scheme}://[^/]+/", "")
        if scheme == "s3":
            return {"name": name, "path": path, "s3": s3_location(store, bucket, key)}
        return {"gcs": {"bucket": bucket, "key": key}, "name": name, "path": path}
    if uri.startswith(("https://", "http://")):
        url = uri if parameter is None else f"{{{{inputs.parameters.{parameter}}}}}"
        return {"http": {"url": url}, "name": name, "path": path}
    return None


def s3_location(store: ObjectStore, bucket: str, key: str) -> Body:
    """A complete S3 location on the Project's object store, with its credentials (Secret references, or the
    pod's identity)."""
    def secret(reference: SecretKeyRef) -> Body:
        return {"key": reference.key, "name": reference.name}

    location: Body = {"bucket": bucket, "endpoint": store.endpoint, "key": key}
    if store.access_key is not None and store.secret_key is not None:
        location["accessKeySecret"] = secret(store.access_key)
        location["secretKeySecret"] = secret(store.secret_key)
    else:
        location["useSDKCreds"] = True
    if store.insecure:
        location["insecure"] = True
    if store.region is not None:
        location["region"] = store.region
    return dict(sorted(location.items()))


# --- steps -----------------------------------------------------------------------------------------

@dataclass
class Step:
    """One DAG task and the container template it runs."""

    name: str
    args: list[str]
    dependencies: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)  # workflow parameters the step reads
    fetched: list[Body] = field(default_factory=list)  # input artifacts from object storage
    passed: list[tuple[str, str, str]] = field(default_factory=list)  # (input, path, "<task>.<output>")
    outputs: list[tuple[str, str, bool]] = field(default_factory=list)  # (artifact, path, is a directory)
    output_parameters: list[tuple[str, str]] = field(default_factory=list)  # (parameter, path of its file)
    profile: str = "small"  # "accelerated": the tuning resources and nodes; "memory": its cpu and memory
    when: str | None = None  # an Argo `when` expression: the task runs only if it holds
    task_parameters: list[tuple[str, str]] = field(default_factory=list)  # (input, value from an earlier task)
    template: Body | None = None  # a template of its own making (promote), instead of the step's container
    command_step: str | None = None  # the runtime step it runs, when not named like the task


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def _input(name: str) -> str:
    return f"{INPUT_DIR}/{name}"


def _output(name: str) -> str:
    return f"{OUTPUT_DIR}/{name}"


def _parameter(name: str) -> str:
    return f"{{{{inputs.parameters.{name}}}}}"


MLFLOW_ARGUMENT = "$(MLFLOW_TRACKING_URI)"  # expanded by Kubernetes from the container's environment


GUARD_PROCEEDS = "{{tasks.guard.outputs.parameters.proceed}} == true"
EVAL_PARAM = "eval-dataset-uri"
DATASET_SCHEME = "dataset://"


def _dataset_output(view: EnvironmentView, reference: str) -> str | None:
    """The output prefix of the Dataset a reference names, or None for a URI."""
    if not is_dataset_name(reference):
        return None
    dataset = view.get("Dataset", reference)
    assert dataset is not None  # resolved: LLM310
    return str(dataset.spec.output)


def _resolved(reference: str, output: str) -> str:
    """The task parameter that carries a Dataset's resolved split, or "" for a URI."""
    return f"{{{{tasks.dataset-{reference}.outputs.parameters.{output}}}}}" if is_dataset_name(reference) else ""


def dataset_resolvers(view: EnvironmentView, model: ResolvedSpec[ModelSpec]) -> list[Step]:
    """One ``dataset_version`` step per Dataset the Model trains or evaluates on: its latest version's
    content-addressed train and eval URIs (a trigger's explicit ``dataset-uri`` passes through)."""
    tuning, evaluation = model.spec.tuning, model.spec.evaluation
    assert tuning is not None and evaluation is not None
    names = sorted({reference for reference in (tuning.dataset, evaluation.dataset) if is_dataset_name(reference)})
    steps = []
    for name in names:
        output = _dataset_output(view, name)
        value = _workflow_parameter(conventions.TUNE_PARAM_DATASET) if name == tuning.dataset \
            else f"{DATASET_SCHEME}{name}"
        args = ["--dataset-uri", value, "--output", str(output),
                "--train-uri-out", _output("train-uri"), "--eval-uri-out", _output("eval-uri"),
                *workloads.object_store_arguments(view)]
        steps.append(Step(f"dataset-{name}", args, dependencies=["guard"],
                          output_parameters=[("train-uri", _output("train-uri")), ("eval-uri", _output("eval-uri"))],
                          command_step="dataset_version"))
    return steps


def in_flight_candidate(view: EnvironmentView, model: str) -> str:
    """The candidate version the environment's RolloutState has in flight for ``model``, or ""."""
    for policy in view.rollout_policies():
        if policy.spec.model == model:
            state = view.rollout_state(policy.name)
            if state.status in ("progressing", "paused") and state.candidate is not None:
                return str(state.candidate)
    return ""


def guard_step(view: EnvironmentView, model: ResolvedSpec[ModelSpec]) -> Step:
    """The first task: skip the retrain while a candidate is in flight or within the cooldown
    (:mod:`llmops_compiler.runtime.guard`)."""
    spec = model.spec
    assert spec.tuning is not None
    stable, candidate = aliases(view, spec)
    return Step(
        "guard",
        ["--registered-model", spec.registered_model, "--experiment", spec.registered_model,
         "--cooldown-seconds", str(int(duration_seconds(spec.tuning.timeout))),
         "--stable-alias", stable, "--candidate-alias", candidate,
         "--in-flight-candidate", in_flight_candidate(view, model.name),
         "--reason", _workflow_parameter(conventions.TUNE_PARAM_REASON),
         "--alert", _workflow_parameter(conventions.TUNE_PARAM_ALERT),
         "--force", _workflow_parameter(conventions.TUNE_PARAM_FORCE),
         "--mlflow-tracking-uri", MLFLOW_ARGUMENT, "--proceed-out", _output("proceed")],
        output_parameters=[("proceed", _output("proceed"))],
    )


def aliases(view: EnvironmentView, spec: ModelSpec) -> tuple[str, str]:
    """(stable, candidate) MLflow aliases of this environment (``stable-prod``, ``candidate-prod``)."""
    stable, candidate = (spec.serving.stable_alias, spec.serving.candidate_alias) if spec.serving \
        else ("stable", "candidate")
    return conventions.environment_alias(stable, view.name), conventions.environment_alias(candidate, view.name)


def _workflow_parameter(name: str) -> str:
    return f"{{{{workflow.parameters.{name}}}}}"


def lifecycle_steps(view: EnvironmentView, model: ResolvedSpec[ModelSpec]) -> list[Step]:
    """guard → tune → evaluate → [quantize →] register, with the arguments each runtime step takes."""
    spec = model.spec
    tuning, evaluation = spec.tuning, spec.evaluation
    assert tuning is not None and evaluation is not None
    experiment = spec.registered_model
    tuned = "model" if tuning.method == "full" else "adapter"

    store = view.project.spec.runtime.object_store
    base_model = fetched_artifact(store, "base-model", _input("base-model"), spec.base_model)
    base_model_argument = _input("base-model") if base_model is not None else spec.base_model
    base_inputs = [base_model] if base_model is not None else []
    # A Dataset named by the spec is read at its latest version, resolved by a step of its own.
    resolvers = dataset_resolvers(view, model)
    train_uri = _dataset_output(view, tuning.dataset) or tuning.dataset
    train = fetched_artifact(store, "dataset", _input("train.jsonl"), train_uri, conventions.TUNE_PARAM_DATASET)
    eval_uri = _dataset_output(view, evaluation.dataset) or evaluation.dataset
    evaluation_set = fetched_artifact(store, "eval-dataset", _input("eval.jsonl"), eval_uri,
                                      EVAL_PARAM if is_dataset_name(evaluation.dataset) else None)
    after_guard = [step.name for step in resolvers] or ["guard"]

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
        "--output", _output(tuned),
    ]
    # The servers the compiler runs load one model directory (`{{modelDir}}`, fetched from the registry): an
    # adapter alone cannot be served there, so a LoRA run also merges it into the base and registers that.
    merged = tuned == "adapter" and spec.serving is not None and spec.serving.deployment is not None
    if merged:
        tune_args += ["--merged-output", _output("model")]
    tune_args += [
        "--metrics-out", _output("tune-metrics.json"),
        "--mlflow-tracking-uri", MLFLOW_ARGUMENT, "--mlflow-experiment", experiment,
        "--run-id-out", _output("run-id"),
    ]
    dataset_input = _resolved(tuning.dataset, "train-uri")
    tune = Step(
        "tune", tune_args, dependencies=after_guard,
        parameters=[] if dataset_input else [conventions.TUNE_PARAM_DATASET],
        task_parameters=[(conventions.TUNE_PARAM_DATASET, dataset_input)] if dataset_input else [],
        fetched=[*base_inputs, *([train] if train else [])],
        outputs=[(tuned, _output(tuned), True), *([("model", _output("model"), True)] if merged else []),
                 ("tune-metrics", _output("tune-metrics.json"), False), ("run-id", _output("run-id"), False)],
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
        evaluate_args += ["--stable-alias", aliases(view, spec)[0]]
    evaluate_args += ["--mlflow-tracking-uri", MLFLOW_ARGUMENT, "--mlflow-experiment", experiment,
                      "--run-id-file", _input("run-id"), "--metrics-out", _output("metrics.json"),
                      "--predictions-out", _output("predictions.jsonl")]
    eval_input = _resolved(evaluation.dataset, "eval-uri")
    evaluate = Step(
        "evaluate", evaluate_args, dependencies=["tune"],
        task_parameters=[(EVAL_PARAM, eval_input)] if eval_input else [],
        fetched=[*model_inputs, *([evaluation_set] if evaluation_set else [])],
        passed=[(tuned, _input(tuned), f"tune.{tuned}"), ("run-id", _input("run-id"), "tune.run-id")],
        outputs=[("metrics", _output("metrics.json"), False),
                 ("predictions", _output("predictions.jsonl"), False)],
        profile="accelerated",  # it loads the model and generates: the same hardware as training
    )
    steps = [guard_step(view, model), *resolvers, tune, evaluate]

    registered_from = "tune.model" if merged else f"tune.{tuned}"
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

    stable_alias, candidate_alias = aliases(view, spec)
    steps.append(Step(
        "register",
        ["--model-dir", _input("model"), "--registered-model", spec.registered_model,
         "--metrics", _input("metrics.json"), "--spec-hash", model.spec_hash,
         "--git-commit", _parameter(conventions.TUNE_PARAM_GIT_COMMIT),
         "--dataset-uri", _parameter(conventions.TUNE_PARAM_DATASET), "--alias", candidate_alias,
         "--stable-alias", stable_alias,
         "--mlflow-tracking-uri", MLFLOW_ARGUMENT, "--mlflow-experiment", experiment,
         "--run-id-file", _input("run-id"), "--version-out", _output("version")],
        dependencies=[steps[-1].name],
        parameters=[conventions.TUNE_PARAM_GIT_COMMIT] + ([] if dataset_input else [conventions.TUNE_PARAM_DATASET]),
        task_parameters=[(conventions.TUNE_PARAM_DATASET, dataset_input)] if dataset_input else [],
        passed=[("model", _input("model"), registered_from),
                ("metrics", _input("metrics.json"), "evaluate.metrics"),
                ("run-id", _input("run-id"), "tune.run-id")],
        output_parameters=[("version", _output("version"))],
    ))
    from .serving import policy_of

    policy = policy_of(view, model.name)
    if policy is not None:  # a registered candidate starts its rollout: a commit of the RolloutState
        version = "{{inputs.parameters.version}}"
        reason = f"registered v{version} (retrain: {_workflow_parameter(conventions.TUNE_PARAM_REASON)})"
        steps.append(Step(
            "propose", [], dependencies=["register"],
            task_parameters=[("version", "{{tasks.register.outputs.parameters.version}}")],
            template=rollout_steps.promote_template(
                view, "propose", rollout_steps.promote_arguments(
                    view, policy.name, "--propose-version", version, "--reason", reason), inputs=("version",)),
        ))
    for step in steps[1:]:  # everything after the guard runs only if it lets the retrain proceed
        step.when = GUARD_PROCEEDS
    return steps


# --- Argo objects ----------------------------------------------------------------------------------

def _resources(profile: str, tuning: Resources) -> tuple[dict[str, str], dict[str, str]]:
    if profile == "accelerated":
        return dict(tuning.requests), dict(tuning.limits)
    if profile == "memory":  # the tuning cpu and memory, without GPUs or other extended resources
        return ({name: amount for name, amount in tuning.requests.items() if "/" not in name},
                {name: amount for name, amount in tuning.limits.items() if "/" not in name})
    return SMALL_REQUESTS, SMALL_LIMITS


def _output_artifact(name: str, path: str, directory: bool, key_prefix: str | None) -> Body:
    """An output kept in the artifact repository: files as they are, directories as .tgz (Argo's default).

    With a key prefix, a key-only S3 location: Argo takes bucket and credentials from the configured
    repository and files the artifact under ``<prefix>/{{workflow.name}}/``.
    """
    artifact: Body = {"name": name, "path": path}
    if not directory:
        artifact["archive"] = {"none": {}}
    if key_prefix is not None:
        file_name = f"{name}.tgz" if directory else path.rsplit("/", 1)[-1]
        artifact["s3"] = {"key": f"{key_prefix}/{{{{workflow.name}}}}/{file_name}"}
    return artifact


def _artifact_key_prefix(view: EnvironmentView, model: ResolvedSpec[ModelSpec]) -> str | None:
    repository = view.project.spec.runtime.artifact_repository
    if not repository:
        return None
    found = _BUCKET_URI.match(repository.rstrip("/") + "/")
    prefix = found["key"].strip("/") if found is not None else repository.strip("/")
    return "/".join(part for part in (prefix, model.name) if part)


def _container(view: EnvironmentView, step: Step, tuning: Resources) -> Body:
    env = [*workloads.runtime_env(view),
           *({"name": variable, "value": f"{{{{workflow.parameters.{parameter}}}}}"}
             for variable, parameter in TRIGGER_ENV.items())]
    if step.command_step == "dataset_version":
        env += workloads.object_store_env(view)
    requests, limits = _resources(step.profile, tuning)
    return argo.container(view, workloads.runtime_command(step.command_step or step.name), step.args, env, requests,
                          limits,
                          mounts=[{"name": OUTPUT_VOLUME, "mountPath": OUTPUT_DIR}])


def _template(view: EnvironmentView, model: ResolvedSpec[ModelSpec], step: Step) -> Body:
    if step.template is not None:
        return step.template
    tuning = model.spec.tuning
    assert tuning is not None
    key_prefix = _artifact_key_prefix(view, model)
    passed = [{"name": name, "path": path} for name, path, _ in step.passed]
    inputs = argo.compact(parameters=[{"name": name} for name in [*step.parameters,
                                                                   *(item for item, _ in step.task_parameters)]],
                          artifacts=[*step.fetched, *passed])
    outputs = argo.compact(
        artifacts=[_output_artifact(*output, key_prefix) for output in step.outputs],
        parameters=[{"name": name, "valueFrom": {"path": path}} for name, path in step.output_parameters],
    )
    retry = None
    if tuning.retries:
        retry = {
            "limit": tuning.retries,
            "retryPolicy": "Always",
            "expression": RETRY_EXPRESSION,
            "backoff": {"duration": RETRY_BACKOFF, "factor": RETRY_BACKOFF_FACTOR,
                        "maxDuration": f"{int(duration_seconds(tuning.timeout))}s"},
        }
    accelerated = step.profile == "accelerated"  # only these steps go to the tuning nodes
    tolerations = [toleration.model_dump(by_alias=True, exclude_none=True)
                   for toleration in tuning.tolerations] if accelerated else []
    node_selector = dict(sorted(tuning.node_selector.items())) if accelerated else {}
    return argo.compact(
        name=step.name,
        inputs=inputs,
        outputs=outputs,
        container=_container(view, step, tuning.resources),
        retryStrategy=retry,
        nodeSelector=node_selector,
        tolerations=tolerations,
    )


def _dag(steps: list[Step]) -> Body:
    tasks = []
    for step in steps:
        parameters = [{"name": name, "value": f"{{{{workflow.parameters.{name}}}}}"} for name in step.parameters]
        parameters += [{"name": name, "value": value} for name, value in step.task_parameters]
        artifacts = [{"name": name, "from": f"{{{{tasks.{task}.outputs.artifacts.{output}}}}}"}
                     for name, _, source in step.passed for task, output in [source.split(".", 1)]]
        tasks.append(argo.compact(
            name=step.name,
            template=step.name,
            dependencies=step.dependencies,
            when=step.when,
            arguments=argo.compact(parameters=parameters, artifacts=artifacts),
        ))
    return {"name": ENTRYPOINT, "dag": {"tasks": tasks}}


def workflow_parameters(model: ResolvedSpec[ModelSpec]) -> list[Body]:
    """What a trigger (alert Sensor, CI, a person with `argo submit -p`) may set, with the defaults."""
    tuning = model.spec.tuning
    assert tuning is not None
    return [
        argo.parameter(conventions.TUNE_PARAM_DATASET,
                       f"{DATASET_SCHEME}{tuning.dataset}" if is_dataset_name(tuning.dataset) else tuning.dataset,
                       "Training data: dataset://<Dataset> (its latest version) or a URI of the spec's scheme"),
        argo.parameter(conventions.TUNE_PARAM_REASON, "manual",
                       "Why this run started: manual, or the summary of the alert that started it"),
        argo.parameter(conventions.TUNE_PARAM_ALERT, "", "Alert that triggered the run"),
        argo.parameter(conventions.TUNE_PARAM_FEATURE, "", "Drifted feature, for drift alerts"),
        argo.parameter(conventions.TUNE_PARAM_GIT_COMMIT, conventions.UNKNOWN_COMMIT,
                       "Commit of the specs; set by the Sensor or CI that submits the workflow"),
        argo.parameter(conventions.TUNE_PARAM_FORCE, "false",
                       "true: retrain even within the cooldown or while a candidate is rolled out"),
    ]


def tune_workflow_template(view: EnvironmentView, model: ResolvedSpec[ModelSpec]) -> Body:
    """The ``tune-<model>`` WorkflowTemplate of one environment, as a plain dict."""
    tuning = model.spec.tuning
    assert tuning is not None
    name = conventions.tune_workflow_name(model.name)
    meta = metadata(view, name, model, component="tuning")
    steps = lifecycle_steps(view, model)
    return {
        "apiVersion": argo.API_VERSION,
        "kind": "WorkflowTemplate",
        "metadata": meta,
        "spec": argo.workflow_spec(
            ENTRYPOINT,
            [_dag(steps), *(_template(view, model, step) for step in steps)],
            # tuning.timeout bounds the whole run, retries included: what a retrain may cost is in the spec.
            deadline_seconds=int(duration_seconds(tuning.timeout)),
            parameters=workflow_parameters(model),
            volumes=[{"name": OUTPUT_VOLUME, "emptyDir": {}}],
            # Two retrains of one model never overlap (a burst of alerts queues behind the running one).
            mutex=name,
            labels=argo.workflow_labels(meta),
            view=view,
        ),
    }
