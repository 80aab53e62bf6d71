"""Semantic checks of one spec beyond its shape: templates, JSON Schemas, cross-field rules.

Each check is a pure function from a validated spec to findings that carry the path of the offending value,
so the caller can place them in the file (or in the environment override that introduced them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from . import conventions
from .burn_rates import TIER_PAGE, decimal_text, error_budget, lowest_factor
from .diagnostics import did_you_mean
from .load import YamlPath
from .quantities import quantity_value
from .rollout import analysis_query_problem
from .specs import (
    ChainSpec,
    DatasetSpec,
    KnowledgeBaseSpec,
    ModelSpec,
    MonitorSpec,
    ProjectSpec,
    PromptSpec,
    RolloutPolicySpec,
    RolloutStateSpec,
    ToolSpec,
)
from .specs.common import duration_seconds
from .specs.model import EVALUATION_METRICS


@dataclass(frozen=True)
class Finding:
    path: YamlPath
    code: str
    message: str
    hint: str = ""
    at_key: bool = False
    text_line: int = 0  # for a problem inside a multi-line string: its line there (1-based)


Check = Callable[[Any, dict[str, Any]], Iterator[Finding]]


def _duplicates(names: list[str]) -> Iterator[tuple[int, str]]:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            yield index, name
        seen.add(name)


# --- Project ---------------------------------------------------------------------------------------

def check_project(spec: ProjectSpec, raw: dict[str, Any]) -> Iterator[Finding]:
    from .platform import too_old

    for field_name, declared, why in too_old(spec.platform):
        yield Finding(("platform", field_name), "LLM203", f"`{field_name}` {declared} is too old: {why}",
                      "upgrade the controller, or stay on an older llmops-compiler")
    if spec.event_bus.replicas == 2:
        yield Finding(("eventBus", "replicas"), "LLM203", "an EventBus of 2 JetStream servers is refused by Argo "
                      "Events (2 cannot outvote a failure)", "use 1, or 3 and more")
    store = spec.runtime.object_store
    if (store.access_key is None) != (store.secret_key is None):
        given = "accessKey" if store.access_key is not None else "secretKey"
        yield Finding(("runtime", "objectStore", given), "LLM202",
                      "an object store needs both `accessKey` and `secretKey`, or neither (the pod's identity)",
                      "add the other Secret reference, or remove this one", at_key=True)
    for index, name in _duplicates([environment.name for environment in spec.environments]):
        yield Finding(("environments", index, "name"), "LLM201", f"environment `{name}` is defined twice")
    targets = [f"{environment.cluster} {environment.namespace}" for environment in spec.environments]
    for index, _ in _duplicates(targets):
        environment = spec.environments[index]
        yield Finding(("environments", index, "namespace"), "LLM201",
                      f"namespace `{environment.namespace}` on `{environment.cluster}` is used by two environments",
                      "give each environment its own namespace")


# --- Model -----------------------------------------------------------------------------------------

NATIVE_RESOURCES = ("cpu", "memory", "ephemeral-storage")
"""Resources Kubernetes lets a container overcommit (a request below its limit); with ``hugepages-*``, the
rest are extended resources (``nvidia.com/gpu``)."""


def _extended(resource: str) -> bool:
    return resource not in NATIVE_RESOURCES and not resource.startswith("hugepages-")


def resource_requirement_findings(resources: Any, path: YamlPath) -> Iterator[Finding]:
    """What the Kubernetes API refuses in a container's ``resources`` (``ValidateResourceRequirements`` in
    kubernetes/pkg/apis/core/validation): a request above its limit (LLM211); for extended resources such as
    ``nvidia.com/gpu``, a request without a limit or a limit that differs from it (LLM211), and a fraction
    (LLM218: they are counted in whole units)."""
    requests, limits = resources.requests, resources.limits
    for section in ("requests", "limits"):
        for resource, amount in getattr(resources, section).items():
            if _extended(resource) and quantity_value(amount).denominator != 1:
                yield Finding((*path, section, resource), "LLM218",
                              f"`{resource}: {amount}` is not a whole number: extended resources such as GPUs "
                              "cannot be shared in fractions", "request whole units, e.g. `1`")
    for resource, amount in requests.items():
        limit = limits.get(resource)
        if _extended(resource) and limit is None:
            yield Finding((*path, "requests", resource), "LLM211", f"`{resource}` is requested without a limit",
                          f"extended resources need equal requests and limits: add `{resource}: {amount}` "
                          "under resources.limits", at_key=True)
        elif _extended(resource) and limit is not None and quantity_value(limit) != quantity_value(amount):
            yield Finding((*path, "limits", resource), "LLM211",
                          f"`{resource}` limit ({limit}) differs from its request ({amount})",
                          "extended resources such as GPUs must have equal requests and limits")
        elif limit is not None and quantity_value(amount) > quantity_value(limit):
            yield Finding((*path, "requests", resource), "LLM211",
                          f"the `{resource}` request ({amount}) is above its limit ({limit}): Kubernetes refuses "
                          "the pod", f"raise the limit to at least {amount}, or lower the request")


MIN_TUNING_TIMEOUT_SECONDS = 60


def check_model(spec: ModelSpec, raw: dict[str, Any]) -> Iterator[Finding]:
    serving = spec.serving
    if serving is not None and serving.candidate_alias == serving.stable_alias:
        yield Finding(("serving", "candidateAlias"), "LLM219",
                      f"the candidate alias is the stable alias `{serving.stable_alias}`: registering a new version "
                      "would move the serving alias", "give the candidate its own alias, e.g. `candidate`")
    if serving is not None and serving.deployment is not None:
        yield from resource_requirement_findings(serving.deployment.resources, ("serving", "deployment", "resources"))
        for field in ("command", "args"):
            for index, value in enumerate(getattr(serving.deployment, field)):
                for name in sorted(set(re.findall(r"\{\{(.*?)\}\}", value)) - set(conventions.SERVING_PLACEHOLDERS)):
                    yield Finding(("serving", "deployment", field, index), "LLM228",
                                  f"unknown placeholder `{{{{{name}}}}}`: it would reach the server as written",
                                  (f"write it without spaces: `{{{{{name.strip()}}}}}`"
                                   if name.strip() in conventions.SERVING_PLACEHOLDERS else None)
                                  or did_you_mean(name, conventions.SERVING_PLACEHOLDERS) or "use one of "
                                  + ", ".join(f"`{{{{{known}}}}}`" for known in conventions.SERVING_PLACEHOLDERS))
        if spec.quantization is not None:  # `quantize` writes a torch state dict: no server loads one
            yield Finding(("quantization",), "LLM227",
                          "`quantization` writes int8 weights that neither the reference server nor vLLM can load, "
                          "and the compiler serves this model (`serving.deployment`)",
                          "remove `quantization`, or quantize in the server (e.g. vLLM's `--quantization`)",
                          at_key=True)
    tuning = spec.tuning
    if tuning is not None:
        yield from resource_requirement_findings(tuning.resources, ("tuning", "resources"))
        if duration_seconds(tuning.timeout) < MIN_TUNING_TIMEOUT_SECONDS:
            yield Finding(("tuning", "timeout"), "LLM105",
                          f"`timeout`: {tuning.timeout} is too short for a retrain (at least 1m)")
        for index, name in _duplicates(tuning.lora.target_modules if tuning.lora else []):
            yield Finding(("tuning", "lora", "targetModules", index), "LLM210",
                          f"target module `{name}` is listed twice")
        if tuning.method in ("lora", "qlora") and tuning.lora is None:
            yield Finding(("tuning", "method"), "LLM210", f"tuning method `{tuning.method}` needs a `lora:` block",
                          "add `lora: {r: 16, alpha: 32}` under tuning")
        if tuning.method == "full" and tuning.lora is not None:
            yield Finding(("tuning", "lora"), "LLM210", "`lora` settings have no effect with method `full`",
                          "remove the `lora:` block or use method `lora`", at_key=True)
        if tuning.method == "qlora" and "nvidia.com/gpu" not in tuning.resources.limits:
            yield Finding(("tuning", "method"), "LLM212", "`qlora` needs a GPU (bitsandbytes 4-bit kernels)",
                          "add `nvidia.com/gpu: 1` to tuning.resources requests and limits, or use `lora`")
        for index, toleration in enumerate(tuning.tolerations):
            if toleration.operator == "Exists" and toleration.value is not None:
                yield Finding(("tuning", "tolerations", index, "value"), "LLM213",
                              "a toleration with operator `Exists` must not have a value", "remove `value`")
    evaluation = spec.evaluation
    if evaluation is not None:
        for index, metric in enumerate(evaluation.metrics):
            if metric not in EVALUATION_METRICS:
                yield Finding(("evaluation", "metrics", index), "LLM214", f"unknown evaluation metric `{metric}`",
                              did_you_mean(metric, EVALUATION_METRICS))
        for index, name in _duplicates(evaluation.metrics):
            yield Finding(("evaluation", "metrics", index), "LLM214", f"metric `{name}` is listed twice")
        if "judge" in evaluation.metrics and evaluation.judge_url is None:
            yield Finding(("evaluation", "metrics"), "LLM214", "metric `judge` needs `judgeUrl`",
                          "add `judgeUrl:` with the LLM-as-judge endpoint")
        for index, gate in enumerate(evaluation.gates):
            if gate.metric not in evaluation.metrics:
                yield Finding(("evaluation", "gates", index, "metric"), "LLM215",
                              f"gate on metric `{gate.metric}`, which evaluation.metrics does not declare",
                              did_you_mean(gate.metric, evaluation.metrics) or "add it to evaluation.metrics")
            bounds = [bound for bound in (gate.min, gate.max, gate.max_regression) if bound is not None]
            if len(bounds) != 1:
                yield Finding(("evaluation", "gates", index), "LLM216",
                              "a gate needs exactly one of `min`, `max` or `maxRegression`")
    if tuning is not None and evaluation is None:
        yield Finding(("tuning",), "LLM217", "a tuned model needs an `evaluation` block with gates",
                      "add `evaluation:` so that no untested model is registered", at_key=True)


# --- Prompt ----------------------------------------------------------------------------------------

def check_prompt(spec: PromptSpec, raw: dict[str, Any]) -> Iterator[Finding]:
    from .templates import TemplateProblem, template_variables

    declared = [prompt_input.name for prompt_input in spec.inputs]
    for index, name in _duplicates(declared):
        yield Finding(("inputs", index, "name"), "LLM220", f"input `{name}` is declared twice")
    used: dict[str, tuple[str, int]] = {}  # variable → (field, line) where it is first read
    for field_name, text in (("template", spec.template), ("system", spec.system)):
        if text is None:
            continue
        try:
            for name, line in template_variables(text).items():
                used.setdefault(name, (field_name, line))
        except TemplateProblem as problem:
            yield Finding((field_name,), problem.code, problem.message, problem.hint, text_line=problem.line)
            return
    for name in sorted(set(used) - set(declared)):
        field_name, line = used[name]
        yield Finding((field_name,), "LLM221", f"{field_name} uses variable `{name}`, which is not a declared input",
                      did_you_mean(name, declared) or f"declare it: add `- name: {name}` under inputs",
                      text_line=line)
    for index, name in enumerate(declared):
        if name not in used:
            yield Finding(("inputs", index, "name"), "LLM222", f"declared input `{name}` is not used by the template",
                          "use it in the template or remove it")
    for index, example in enumerate(spec.examples):
        for key in example.inputs:
            if key not in declared:
                yield Finding(("examples", index, "inputs", key), "LLM223",
                              f"example sets `{key}`, which is not a declared input",
                              did_you_mean(key, declared), at_key=True)


# --- Chain -----------------------------------------------------------------------------------------

def chain_dependencies(spec: ChainSpec) -> dict[str, list[str]]:
    """Step name → names of the steps whose outputs it reads."""
    return {
        step.name: sorted({ref.split(".")[1] for ref in step.inputs.values() if ref.startswith("steps.")})
        for step in spec.steps
    }


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in a dependency graph as a list of nodes (first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in edges.get(node, []):
            if state.get(target) == 1:
                return [*stack[stack.index(target):], target]
            if target in edges and state.get(target) is None and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if state.get(node) is None and (cycle := visit(node)):
            return cycle
    return None


def _check_reference(reference: str, inputs: list[str], steps: list[str]) -> str | None:
    parts = reference.split(".")
    if len(parts) == 2 and parts[0] == "input":
        return None if parts[1] in inputs else (
            f"`{reference}` reads chain input `{parts[1]}`, which the chain does not declare"
        )
    if len(parts) == 3 and parts[0] == "steps" and parts[2] == "output":
        if parts[1] in steps:
            return None
        return f"`{reference}` reads the output of step `{parts[1]}`, which does not exist"
    return f"`{reference}` is not a reference: write `input.<name>` or `steps.<step>.output`"


def check_chain(spec: ChainSpec, raw: dict[str, Any]) -> Iterator[Finding]:
    names = [step.name for step in spec.steps]
    for index, name in _duplicates(names):
        yield Finding(("steps", index, "name"), "LLM230", f"step `{name}` is defined twice")
    for index, step in enumerate(spec.steps):
        chosen = [kind for kind in ("prompt", "retrieve", "tool") if getattr(step, kind) is not None]
        if len(chosen) != 1:
            yield Finding(("steps", index), "LLM231", f"step `{step.name}` needs exactly one of `prompt`, "
                          f"`retrieve` or `tool` (has {', '.join(chosen) or 'none'})")
        if step.top_k is not None and step.retrieve is None:
            yield Finding(("steps", index, "topK"), "LLM231", "`topK` applies only to `retrieve` steps",
                          "remove it", at_key=True)
        for variable, reference in step.inputs.items():
            problem = _check_reference(reference, spec.inputs, names)
            if problem:
                choices = [f"input.{name}" for name in spec.inputs] + [f"steps.{name}.output" for name in names]
                yield Finding(("steps", index, "inputs", variable), "LLM232", problem,
                              did_you_mean(reference, choices))
    cycle = find_cycle(chain_dependencies(spec))
    if cycle:
        index = names.index(cycle[0])
        yield Finding(("steps", index, "inputs"), "LLM233", "steps form a cycle: " + " → ".join(cycle),
                      "a chain is a DAG: each step may read only outputs of steps that do not read it")
    problem = _check_reference(spec.output, spec.inputs, names)
    if problem or not spec.output.startswith("steps."):
        yield Finding(("output",), "LLM232", problem or "the chain output must be a step output",
                      did_you_mean(spec.output, [f"steps.{name}.output" for name in names]))


# --- Tool ------------------------------------------------------------------------------------------

JSON_SCHEMA_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


def check_tool(spec: ToolSpec, raw: dict[str, Any]) -> Iterator[Finding]:
    import jsonschema

    if spec.kind == "rest" and spec.endpoint is None:
        yield Finding(("kind",), "LLM240", "a `rest` tool needs an `endpoint`", "add `endpoint: https://...`")
    if spec.kind == "function" and spec.auth is not None:
        yield Finding(("auth",), "LLM240", "a `function` tool runs in the app and takes no `auth`", at_key=True)
    for field_name, schema in (("parameters", spec.parameters), ("output", spec.output)):
        if schema is None:
            continue
        validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            validator.check_schema(schema)
        except jsonschema.SchemaError as error:
            path = (field_name, *error.path)
            # `type: str` or `type: [string, nul]`: name the word that is wrong
            words = error.instance if isinstance(error.instance, list) else [error.instance]
            wrong = next((str(word) for word in words if word not in JSON_SCHEMA_TYPES), None)
            if path[-1] == "type" and wrong is not None:
                yield Finding(path, "LLM241", f"`{wrong}` is not a JSON Schema type",
                              did_you_mean(wrong, JSON_SCHEMA_TYPES))
            else:
                yield Finding(path, "LLM241", f"`{field_name}` is not a valid JSON Schema: {error.message}",
                              "see https://json-schema.org/understanding-json-schema/")
            continue
        if field_name == "parameters" and schema.get("type") != "object":
            yield Finding((field_name,), "LLM242", "tool parameters must be a JSON Schema of `type: object`",
                          "models call tools with named arguments")


# --- KnowledgeBase ---------------------------------------------------------------------------------

# Embedding dimensions of well-known sentence-transformers models (their model cards), to catch a dimension
# that does not match before anything is ingested; other models are checked by the ingest step at run time.
EMBEDDING_DIMENSIONS = {
    "sentence-transformers/all-MiniLM-L6-v2": 384, "sentence-transformers/all-MiniLM-L12-v2": 384,
    "sentence-transformers/all-mpnet-base-v2": 768, "sentence-transformers/multi-qa-MiniLM-L6-cos-v1": 384,
    "sentence-transformers/multi-qa-mpnet-base-dot-v1": 768,
    "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2": 384,
    "BAAI/bge-small-en-v1.5": 384, "BAAI/bge-base-en-v1.5": 768, "BAAI/bge-large-en-v1.5": 1024,
    "intfloat/e5-small-v2": 384, "intfloat/e5-base-v2": 768, "intfloat/e5-large-v2": 1024,
    "thenlper/gte-small": 384, "thenlper/gte-base": 768, "thenlper/gte-large": 1024,
    "nomic-ai/nomic-embed-text-v1.5": 768,
}


def check_knowledge_base(spec: KnowledgeBaseSpec, raw: dict[str, Any]) -> Iterator[Finding]:
    if spec.chunking.overlap >= spec.chunking.size:
        yield Finding(("chunking", "overlap"), "LLM250",
                      f"chunk overlap ({spec.chunking.overlap}) must be smaller than the chunk size "
                      f"({spec.chunking.size})")
    known = EMBEDDING_DIMENSIONS.get(spec.embedding.model)
    if known is not None and known != spec.embedding.dimension:
        yield Finding(("embedding", "dimension"), "LLM251",
                      f"`{spec.embedding.model}` embeds into {known} dimensions, not {spec.embedding.dimension}",
                      f"write `dimension: {known}`")
    source = spec.source
    notifications = source.notifications or ("minio" if source.endpoint else "sqs")
    if notifications == "sqs" and source.queue is None:
        yield Finding(("source",), "LLM252", "uploads to AWS S3 are noticed through an SQS queue: `queue` is missing",
                      "add `queue:` (the queue the bucket notifies), or `endpoint:` and `notifications: minio` "
                      "for MinIO", at_key=True)
    if notifications == "sqs" and source.region is None:
        yield Finding(("source",), "LLM252", "an SQS queue needs its AWS `region`", "add `region: eu-west-1`",
                      at_key=True)
    if notifications == "minio" and source.endpoint is None:
        yield Finding(("source", "notifications"), "LLM252", "MinIO notifications need the MinIO `endpoint`",
                      "add `endpoint: minio.storage.svc:9000`")


# --- Monitor ---------------------------------------------------------------------------------------

def check_monitor(spec: MonitorSpec, raw: dict[str, Any]) -> Iterator[Finding]:
    features = [feature.name for feature in spec.features]
    for index, name in _duplicates(features):
        yield Finding(("features", index, "name"), "LLM260", f"feature `{name}` is declared twice")
    for index, name in _duplicates([slo.name for slo in spec.slos]):
        yield Finding(("slos", index, "name"), "LLM260", f"SLO `{name}` is defined twice")
    for index, name in _duplicates([check.name for check in spec.drift]):
        yield Finding(("drift", index, "name"), "LLM260", f"drift check `{name}` is defined twice")
    for index, slo in enumerate(spec.slos):
        if slo.type == "latency" and slo.latency_threshold is None:
            yield Finding(("slos", index, "type"), "LLM261", "a latency SLO needs `latencyThreshold` (seconds)",
                          "add e.g. `latencyThreshold: 2.5`; it must be a bucket bound of the duration histogram")
        if slo.type != "latency" and slo.latency_threshold is not None:
            yield Finding(("slos", index, "latencyThreshold"), "LLM261",
                          f"`latencyThreshold` applies only to latency SLOs, not `{slo.type}`", at_key=True)
        if not slo.page and not slo.ticket:
            yield Finding(("slos", index), "LLM262", f"SLO `{slo.name}` switches off both `page` and `ticket`",
                          "keep at least one tier, or remove the SLO")
    for index, check in enumerate(spec.drift):
        if check.method in ("ks", "js") and check.threshold >= 1:
            yield Finding(("drift", index, "threshold"), "LLM263",
                          f"the {check.method.upper()} statistic lies in [0, 1], so a threshold of {check.threshold:g} "
                          "never fires", "use a threshold below 1, e.g. 0.2")
        if check.feature not in features:
            yield Finding(("drift", index, "feature"), "LLM263",
                          f"drift check on feature `{check.feature}`, which the monitor does not declare",
                          did_you_mean(check.feature, features) or "declare it under `features`")
    if spec.drift and spec.logs is None:
        yield Finding(("drift",), "LLM264", "drift checks need `logs`: where the production request logs are",
                      "add `logs: s3://bucket/prefix/`", at_key=True)
    for index, check in enumerate(spec.drift):
        given = [name for name, value in (("reference", check.reference), ("referenceDataset", check.reference_dataset),
                                          ("followStable", check.follow_stable or None)) if value is not None]
        if len(given) != 1:
            yield Finding(("drift", index), "LLM259",
                          f"drift check `{check.name}` needs exactly one of `reference`, `referenceDataset` or "
                          f"`followStable` (has {', '.join(given) or 'none'})",
                          "e.g. `reference: s3://bucket/reference.jsonl`")
    yield from _check_quality(spec)
    for index, metric in _duplicates([quality.metric for quality in spec.quality]):
        yield Finding(("quality", index, "metric"), "LLM260", f"quality metric `{metric}` is listed twice")
    yield from _check_monitor_alerting(spec)


def _check_quality(spec: MonitorSpec) -> Iterator[Finding]:
    """Quality checks need a continuous evaluation that can measure them."""
    from .specs.monitor import QUALITY_METRICS

    evaluation = spec.evaluation
    if spec.quality and evaluation is None:
        yield Finding(("quality",), "LLM269", "quality checks need `evaluation`: the schedule and window of the "
                      "continuous evaluation that produces their scores",
                      "add `evaluation: {schedule: \"*/30 * * * *\", window: 1h}`", at_key=True)
        return
    if spec.quality and spec.logs is None:
        yield Finding(("quality",), "LLM264", "quality checks need `logs`: where the production request logs are",
                      "add `logs: s3://bucket/prefix/`", at_key=True)
    judge = evaluation.judge if evaluation is not None else None
    for index, check in enumerate(spec.quality):
        methods = QUALITY_METRICS.get(check.metric)
        if methods is None and judge is None:
            yield Finding(("quality", index, "metric"), "LLM269",
                          f"`{check.metric}` is not a built-in quality metric, and there is no `evaluation.judge` to "
                          "grade it", did_you_mean(check.metric, QUALITY_METRICS) or
                          "use one of: " + ", ".join(QUALITY_METRICS) + "; or configure a judge")
            continue
        method = check.method or (methods[0] if methods else "judge")
        if check.method is not None and check.method not in (methods or ("judge",)):
            yield Finding(("quality", index, "method"), "LLM269",
                          f"`{check.metric}` cannot be measured with `{check.method}`",
                          "expected one of: " + ", ".join(f"`{item}`" for item in (methods or ("judge",))))
        elif method == "judge" and judge is None:
            yield Finding(("quality", index, "method") if check.method else ("quality", index, "metric"), "LLM269",
                          f"`{check.metric}` is graded by an LLM judge, but `evaluation.judge` is not configured",
                          "add `judge: {url: https://..., model: ...}` under evaluation")
        elif method == "nli" and (evaluation is None or evaluation.nli_model is None):
            yield Finding(("quality", index, "method"), "LLM269", "`method: nli` needs `evaluation.nliModel`")
        elif method == "classifier" and (evaluation is None or evaluation.safety_classifier_url is None):
            yield Finding(("quality", index, "method"), "LLM269",
                          "`method: classifier` needs `evaluation.safetyClassifierUrl`")


FETCHABLE_SCHEMES = ("s3://", "gs://", "https://", "http://")


def _check_monitor_alerting(spec: MonitorSpec) -> Iterator[Finding]:
    """What the monitoring loop needs beyond the shape: inputs a workflow can fetch, alerts that can fire."""
    inputs: list[tuple[YamlPath, str]] = [(("logs",), spec.logs)] if spec.logs and spec.drift else []
    inputs += [(("drift", index, "reference"), check.reference) for index, check in enumerate(spec.drift)
               if check.reference is not None]
    for path, uri in inputs:
        if not uri.startswith(FETCHABLE_SCHEMES):
            yield Finding(path, "LLM265", f"`{uri}` cannot be fetched by the drift workflow",
                          "use an `s3://`, `gs://` or `https://` URI")
    for index, pair in _duplicates([f"{check.feature}/{check.method}" for check in spec.drift]):
        feature, method = pair.split("/")
        yield Finding(("drift", index, "feature"), "LLM266",
                      f"two drift checks score feature `{feature}` with `{method}`: their alerts would be one",
                      "keep one check per feature and method")
    for index, slo in enumerate(spec.slos):
        needed = lowest_factor(slo.window, TIER_PAGE) * error_budget(slo.objective)
        if slo.page and needed >= 1:
            yield Finding(("slos", index, "objective"), "LLM267",
                          f"with objective {slo.objective}, a page needs more than {decimal_text(needed * 100)}% "
                          "of requests to be bad, which cannot happen",
                          "raise the objective, or set `page: false`")
    if spec.notification.receiver == conventions.EVENTS_RECEIVER:
        yield Finding(("notification", "receiver"), "LLM268",
                      f"receiver name `{conventions.EVENTS_RECEIVER}` is taken by the Argo Events webhook",
                      "choose another name")


# --- RolloutPolicy and RolloutState ---------------------------------------------------------------

def analysis_schedule(interval: str) -> str | None:
    """The cron schedule that runs an analysis every ``interval``, or None when no schedule can: whole minutes
    dividing an hour (``*/5 * * * *``) or whole hours dividing a day (``0 */2 * * *``)."""
    seconds = duration_seconds(interval)
    if seconds % 60:
        return None
    minutes = int(seconds // 60)
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes % 60 == 0 and 24 % (minutes // 60) == 0:
        hours = minutes // 60
        return "0 * * * *" if hours == 1 else ("0 0 * * *" if hours == 24 else f"0 */{hours} * * *")
    return None


# What Istio's validating webhook accepts in `retries.retryOn` (istio/pkg/config/validation, validateHTTPRetry):
# each comma-separated item (no spaces) is one of Envoy's retry policies below or an HTTP status code Go's
# `http.StatusText` knows.
ISTIO_RETRY_ON = frozenset({
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx", "refused-stream",
    "retriable-status-codes", "retriable-headers", "envoy-ratelimited", "http3-post-connect-failure",
    "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
})
HTTP_STATUS_CODES = frozenset({
    100, 101, 102, 103, *range(200, 209), 226, *range(300, 306), 307, 308, *range(400, 419), *range(421, 427),
    428, 429, 431, 451, *range(500, 509), 510, 511,
})


def check_rollout(spec: RolloutPolicySpec, raw: dict[str, Any]) -> Iterator[Finding]:
    strategy = spec.strategy
    if spec.retries is not None:
        for condition in spec.retries.retry_on.split(","):
            if condition not in ISTIO_RETRY_ON and not (condition.isdigit() and int(condition) in HTTP_STATUS_CODES):
                yield Finding(("retries", "retryOn"), "LLM272",
                              f"`{condition}` is not a retry condition Istio accepts",
                              did_you_mean(condition, sorted(ISTIO_RETRY_ON)) or
                              "use Envoy's conditions (5xx, gateway-error, reset, connect-failure, retriable-4xx, "
                              "...) or HTTP status codes, comma-separated")
        retries = raw.get("retries")
        written: dict[str, Any] = retries if isinstance(retries, dict) else {}
        if spec.retries.attempts == 0 and ("retryOn" in written or spec.retries.per_try_timeout is not None):
            yield Finding(("retries", "attempts"), "LLM272",
                          "`attempts: 0` turns retries off, and Istio refuses `retryOn` or `perTryTimeout` with it",
                          "remove them, or allow at least one attempt")
    if strategy in ("canary", "blueGreen") and not spec.steps:
        yield Finding(("strategy",), "LLM270", f"strategy `{strategy}` needs `steps`",
                      "add e.g. `steps: [{weight: 10, pause: 30m}, {weight: 50, pause: 1h}, {weight: 100}]`")
    if strategy == "abTest":
        chosen = [name for name in ("header", "cookie") if spec.match and getattr(spec.match, name) is not None]
        if len(chosen) != 1:
            yield Finding(("match",) if spec.match else ("strategy",), "LLM270",
                          "strategy `abTest` needs a `match` with exactly one of `header` or `cookie`",
                          "add `match: {header: {name: x-variant, value: b}}`")
    elif spec.match is not None:
        yield Finding(("match",), "LLM270", f"`match` applies only to strategy `abTest`, not `{strategy}`",
                      "remove it", at_key=True)
    if strategy == "shadow" and spec.mirror_percent is None:
        yield Finding(("strategy",), "LLM270", "strategy `shadow` needs `mirrorPercent`", "add `mirrorPercent: 10`")
    elif strategy != "shadow" and spec.mirror_percent is not None:
        yield Finding(("mirrorPercent",), "LLM270",
                      f"`mirrorPercent` applies only to strategy `shadow`, not `{strategy}`", "remove it", at_key=True)
    for index, step in enumerate(spec.steps):
        if strategy == "blueGreen" and step.weight not in (0, 100):
            yield Finding(("steps", index, "weight"), "LLM271", "blue-green steps switch all traffic: 0 or 100")
        raw_steps = raw.get("steps") or []
        written = raw_steps[index] if index < len(raw_steps) and isinstance(raw_steps[index], dict) else {}
        if strategy in ("abTest", "shadow") and "weight" in written:
            yield Finding(("steps", index, "weight"), "LLM271",
                          f"`{strategy}` steps route by match or mirror, not by weight", "remove `weight`",
                          at_key=True)
    for index in range(1, len(spec.steps) if strategy in ("canary", "blueGreen") else 0):
        if spec.steps[index].weight <= spec.steps[index - 1].weight:
            yield Finding(("steps", index, "weight"), "LLM271",
                          f"step weights must increase ({spec.steps[index - 1].weight} → "
                          f"{spec.steps[index].weight}): each step gives the candidate more traffic",
                          "remove the step or raise its weight")
    for index, metric in enumerate(spec.analysis.metrics):
        if (metric.max is None) == (metric.min is None):
            yield Finding(("analysis", "metrics", index), "LLM273",
                          f"analysis metric `{metric.name}` needs exactly one of `max` or `min`")
    for index, metric in enumerate(spec.analysis.metrics):
        problem = analysis_query_problem(metric.query, spec.analysis.interval)
        if problem:
            yield Finding(("analysis", "metrics", index, "query"), "LLM273",
                          f"analysis metric `{metric.name}`: {problem}",
                          "check the query against Prometheus (`promtool query instant`), with the placeholders "
                          "filled in")
    for index, name in _duplicates([metric.name for metric in spec.analysis.metrics]):
        yield Finding(("analysis", "metrics", index, "name"), "LLM273", f"analysis metric `{name}` is defined twice")
    if analysis_schedule(spec.analysis.interval) is None:
        yield Finding(("analysis", "interval"), "LLM274",
                      f"an analysis every {spec.analysis.interval} cannot be scheduled",
                      "use whole minutes that divide an hour (1m, 5m, 10m, 30m) or whole hours that divide a day")


def check_rollout_state(spec: RolloutStateSpec, raw: dict[str, Any]) -> Iterator[Finding]:
    for environment, state in spec.environments.items():
        path: YamlPath = ("environments", environment)
        in_flight = state.status in ("progressing", "paused")
        if in_flight and state.candidate is None:
            yield Finding((*path, "status"), "LLM275", f"status `{state.status}` needs a `candidate` version",
                          "set `candidate:` or the status `idle`")
        if not in_flight and state.candidate is not None:
            yield Finding((*path, "candidate"), "LLM275",
                          f"status `{state.status}` has no candidate in flight, but `candidate` is {state.candidate}",
                          "remove `candidate`, or set the status `progressing`", at_key=True)
        if state.candidate is not None and state.candidate == state.stable:
            yield Finding((*path, "candidate"), "LLM275",
                          f"the candidate is the stable version ({state.stable})", "a candidate is a new version")


# --- Dataset ---------------------------------------------------------------------------------------

def check_dataset(spec: DatasetSpec, raw: dict[str, Any]) -> Iterator[Finding]:
    for index, name in _duplicates([source.name for source in spec.sources]):
        yield Finding(("sources", index, "name"), "LLM280", f"source `{name}` is defined twice")
    for index, source in enumerate(spec.sources):
        given = [key for key in ("logs", "labelled", "dataset") if getattr(source, key) is not None]
        if len(given) != 1:
            yield Finding(("sources", index), "LLM280",
                          f"source `{source.name}` needs exactly one of `logs`, `labelled` or `dataset` "
                          f"(has {', '.join(given) or 'none'})")
        if source.window is not None and source.logs is None:
            yield Finding(("sources", index, "window"), "LLM280", "`window` applies only to `logs` sources",
                          "remove it", at_key=True)
        for key in ("logs", "labelled"):
            uri = getattr(source, key)
            if uri is not None and not uri.startswith("s3://"):
                yield Finding(("sources", index, key), "LLM281", f"`{uri}` is not an `s3://` location",
                              "curation reads sources from the object store")
    if not spec.output.startswith("s3://"):
        yield Finding(("output",), "LLM281", f"`{spec.output}` is not an `s3://` location",
                      "write e.g. `output: s3://bucket/datasets/<name>/`")

    def folder(uri: str) -> str:
        return uri if uri.endswith("/") else uri + "/"

    for source in spec.sources:
        for key in ("logs", "labelled"):
            uri = getattr(source, key)
            if uri is not None and (folder(spec.output).startswith(folder(uri))
                                    or folder(uri).startswith(folder(spec.output))):
                yield Finding(("output",), "LLM281",
                              f"the output `{spec.output}` overlaps source `{source.name}` (`{uri}`): each "
                              "curation would read the versions it wrote before",
                              "write the versions under a prefix of their own")
    keep = spec.curation.keep
    for rule, needed, value in (("minRating", "rating", keep.min_rating is not None),
                                ("thumbsUp", "thumbs", keep.thumbs_up)):
        if value and getattr(spec.fields, needed) is None:
            yield Finding(("curation", "keep", rule), "LLM280", f"`{rule}` needs `fields.{needed}`",
                          f"add `{needed}:` under fields (where the log records keep it)", at_key=True)


CHECKS: dict[str, Check] = {
    "Project": check_project,
    "Model": check_model,
    "Prompt": check_prompt,
    "Chain": check_chain,
    "Tool": check_tool,
    "KnowledgeBase": check_knowledge_base,
    "Monitor": check_monitor,
    "RolloutPolicy": check_rollout,
    "RolloutState": check_rollout_state,
    "Dataset": check_dataset,
}


def check_spec(kind: str, spec: BaseModel, raw: dict[str, Any]) -> Iterator[Finding]:
    return CHECKS[kind](spec, raw)
