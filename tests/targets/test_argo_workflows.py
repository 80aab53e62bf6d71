"""The tune-<model> WorkflowTemplate and the prompt-registration Job: strict schemas, what they say, and a run
of the compiled DAG with the real runtime steps, which proves the template and the runtime agree."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from schemas import validate_strict

from llmops_compiler import api, conventions
from llmops_compiler.cli import main
from llmops_compiler.diagnostics import CompileError
from llmops_compiler.specs.common import duration_seconds
from llmops_compiler.targets import argo_workflows

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.test/llmops-runtime@sha256:" + "0123456789abcdef" * 4
SECRET_WORDS = re.compile(r"TOKEN|PASSWORD|SECRET|API_?KEY|CREDENTIAL", re.IGNORECASE)

PROJECT = f"""\
apiVersion: llmops.dev/v1alpha1
kind: Project
metadata:
  name: tiny
spec:
  repo:
    url: https://git.test/tiny-gitops.git
  environments:
    - name: dev
      namespace: tiny-dev
  mlflow:
    trackingUri: http://mlflow.test:5000
  runtime:
    image: {IMAGE}
  prometheus:
    url: http://prometheus.test:9090
    pushgatewayUrl: http://pushgateway.test:9091
"""

# Small enough that the chain test trains, evaluates and registers in seconds on a CPU; gates that hold.
TINY_MODEL = """\
apiVersion: llmops.dev/v1alpha1
kind: Model
metadata:
  name: tiny
spec:
  baseModel: s3://llmops-models/tiny
  registeredModel: tiny
  tuning:
    method: lora
    lora:
      r: 4
      alpha: 8
      dropout: 0.0
      targetModules: [q_proj, v_proj]
    dataset: s3://llmops-data/support/train.jsonl
    epochs: 1
    maxSteps: 3
    learningRate: 0.01
    batchSize: 6
    seed: 7
    timeout: 30m
    retries: 1
  evaluation:
    dataset: s3://llmops-data/support/eval.jsonl
    metrics: [token_f1, rouge_l, perplexity]
    maxNewTokens: 4
    gates:
      - metric: token_f1
        min: 0.0
      - metric: perplexity
        max: 1000000000.0
      - metric: rouge_l
        maxRegression: 0.5
"""

PROMPT = """\
apiVersion: llmops.dev/v1alpha1
kind: Prompt
metadata:
  name: {name}
spec:
  model: tiny
  version: 1.0.0
  template: "Answer {{{{ question }}}} {suffix}"
  inputs:
    - name: question
"""


def write_project(root: Path, model: str = TINY_MODEL, prompts: dict[str, str] | None = None) -> Path:
    """A spec folder with the Project, one Model and the given prompts (name → template suffix)."""
    specs = root / "specs"
    if specs.exists():
        shutil.rmtree(specs)
    (specs / "prompts").mkdir(parents=True)
    (specs / "project.yaml").write_text(PROJECT)
    (specs / "model.yaml").write_text(model)
    for name, suffix in (prompts or {}).items():
        (specs / "prompts" / f"{name}.yaml").write_text(PROMPT.format(name=name, suffix=suffix))
    return specs


def bodies(build: api.Build, kind: str, environment: str | None = None, prefix: str = "") -> list[dict[str, Any]]:
    return [resource.body for resource in build.resources
            if resource.kind == kind and environment in (None, resource.environment)
            and resource.name.startswith(prefix)]


def tune_templates(build: api.Build, environment: str | None = None) -> list[dict[str, Any]]:
    return bodies(build, "WorkflowTemplate", environment, prefix="tune-")


def prompt_jobs(build: api.Build, environment: str | None = None) -> list[dict[str, Any]]:
    return bodies(build, "Job", environment, prefix="register-prompts-")


def template_named(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(template for template in body["spec"]["templates"] if template["name"] == name)


def dag_order(body: dict[str, Any]) -> list[str]:
    """Task names in an order that respects their dependencies (ties in spec order)."""
    tasks = template_named(body, body["spec"]["entrypoint"])["dag"]["tasks"]
    order: list[str] = []
    while len(order) < len(tasks):
        ready = [task for task in tasks if task["name"] not in order
                 and all(dependency in order for dependency in task.get("dependencies", []))]
        assert ready, f"the DAG has a cycle or a dangling dependency: {tasks}"
        order.append(ready[0]["name"])
    return order


def argument(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, f"{flag} in {args}"
    return args[args.index(flag) + 1]


def containers(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if body["kind"] == "WorkflowTemplate":
        yield from (template["container"] for template in body["spec"]["templates"] if "container" in template)
    else:
        yield from body["spec"]["template"]["spec"]["containers"]


# --- the example project ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def example() -> api.Build:
    return api.build(ROOT / "specs")


def test_example_workflow_templates_and_jobs_are_strictly_valid(example: api.Build) -> None:
    templates, jobs = tune_templates(example), prompt_jobs(example)
    assert sorted((body["metadata"]["namespace"], body["metadata"]["name"]) for body in templates) == [
        ("support-dev", "tune-support-llm"), ("support-prod", "tune-support-llm"),
        ("support-staging", "tune-support-llm"),
    ]
    assert len(jobs) == 3 and all(job["metadata"]["name"].startswith("register-prompts-") for job in jobs)
    for body in templates + jobs:
        validate_strict(body)


def test_example_tune_template_carries_the_spec(example: api.Build) -> None:
    prod = tune_templates(example, "prod")[0]
    spec = prod["spec"]
    assert dag_order(prod) == ["guard", "dataset-support-feedback", "tune", "evaluate", "register", "propose"]
    assert spec["serviceAccountName"] == conventions.WORKFLOW_SERVICE_ACCOUNT
    assert spec["synchronization"] == {"mutexes": [{"name": "tune-support-llm"}]}
    assert spec["activeDeadlineSeconds"] == duration_seconds("4h") == 14400
    assert spec["podGC"] == {"strategy": "OnPodSuccess"}
    assert set(spec["ttlStrategy"]) == {"secondsAfterSuccess", "secondsAfterFailure"}
    assert spec["securityContext"] == {"fsGroup": 1000, "runAsGroup": 1000, "runAsNonRoot": True,
                                       "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
    assert {parameter["name"]: parameter["value"] for parameter in spec["arguments"]["parameters"]} == {
        conventions.TUNE_PARAM_DATASET: "dataset://support-feedback",  # the Dataset's latest version
        conventions.TUNE_PARAM_REASON: "manual",
        conventions.TUNE_PARAM_ALERT: "",
        conventions.TUNE_PARAM_FEATURE: "",
        "git-commit": "unknown",
        conventions.TUNE_PARAM_FORCE: "false",
    }
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    tasks = {task["name"]: task for task in template_named(prod, "main")["dag"]["tasks"]}
    proceeds = "{{tasks.guard.outputs.parameters.proceed}} == true"
    assert "when" not in tasks["guard"] and all(tasks[name]["when"] == proceeds for name in tasks if name != "guard")
    guard_args = template_named(prod, "guard")["container"]["args"]
    assert argument(guard_args, "--cooldown-seconds") == "14400"  # the tuning timeout
    assert argument(guard_args, "--in-flight-candidate") == ""  # prod is idle in the RolloutState
    dev_guard = template_named(tune_templates(example, "dev")[0], "guard")["container"]["args"]
    assert argument(dev_guard, "--in-flight-candidate") == "8"  # dev is rolling out v8
    for template in spec["templates"]:
        if "container" not in template:
            continue
        container = template["container"]
        assert container["image"].startswith("ghcr.io/acme/llmops-runtime@sha256:")
        step = {"propose": "promote",  # a rollout transition
                "dataset-support-feedback": "dataset_version"}.get(template["name"], template["name"])
        assert container["command"] == ["python", "-m", f"llmops_compiler.runtime.{step}"]
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                                "readOnlyRootFilesystem": True, "runAsNonRoot": True}
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert {"/tmp", "/cache/huggingface"} <= set(mounts)
        assert all("emptyDir" in volumes[name] for name in mounts.values())
        if template["name"] in ("guard", "dataset-support-feedback"):
            continue
        if template["name"] == "propose":
            assert template["retryStrategy"]["expression"] == argo_workflows.RETRY_EXPRESSION
            continue
        assert template["retryStrategy"]["limit"] == 2
        assert template["retryStrategy"]["retryPolicy"] == "Always"
        assert template["retryStrategy"]["expression"] == argo_workflows.RETRY_EXPRESSION

    tune = template_named(prod, "tune")
    args = tune["container"]["args"]
    assert [argument(args, flag) for flag in ("--method", "--r", "--alpha", "--dropout", "--target-modules")] == [
        "lora", "16", "32", "0.05", "q_proj,k_proj,v_proj,o_proj"]
    assert [argument(args, flag) for flag in ("--epochs", "--learning-rate", "--batch-size", "--seed")] == [
        "3", "0.0002", "8", "42"]  # prod overrides epochs
    assert tune["container"]["resources"] == {
        "requests": {"cpu": "8", "memory": "48Gi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "64Gi", "nvidia.com/gpu": "1"},
    }
    assert tune["nodeSelector"] == {"node.kubernetes.io/instance-type": "g5.4xlarge"}
    assert tune["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    base_model = next(item for item in tune["inputs"]["artifacts"] if item["name"] == "base-model")
    assert base_model["s3"] == {"bucket": "acme-models", "key": "base/llama-3.1-8b-instruct",
                                "endpoint": "s3.amazonaws.com", "useSDKCreds": True}

    evaluate_args = template_named(prod, "evaluate")["container"]["args"]
    gates = [evaluate_args[index + 1] for index, flag in enumerate(evaluate_args) if flag == "--gate"]
    assert gates == ["token_f1>=0.55", "perplexity<=12.0"]
    assert argument(evaluate_args, "--max-regression") == "rouge_l=0.02"
    assert argument(evaluate_args, "--registered-model") == "support-llm"
    assert argument(evaluate_args, "--stable-alias") == "stable-prod"  # serving.stableAlias, of this environment
    assert argument(evaluate_args, "--metrics") == "exact_match,token_f1,rouge_l,perplexity"

    register = template_named(prod, "register")
    register_args = register["container"]["args"]
    model = next(view for view in example.graph.environments if view.name == "prod").get("Model", "support-llm")
    assert model is not None
    assert argument(register_args, "--spec-hash") == model.spec_hash
    assert argument(register_args, "--alias") == "candidate-prod"
    assert argument(register_args, "--stable-alias") == "stable-prod"
    assert argument(register_args, "--git-commit") == "{{inputs.parameters.git-commit}}"
    assert "nvidia.com/gpu" not in json.dumps(register["container"]["resources"])  # small, fixed
    assert "nodeSelector" not in register and "tolerations" not in register

    dev = tune_templates(example, "dev")[0]
    assert argument(template_named(dev, "tune")["container"]["args"], "--max-steps") == "200"


def test_no_secret_value_in_any_generated_workload(example: api.Build) -> None:
    for body in tune_templates(example) + prompt_jobs(example):
        for container in containers(body):
            env = {variable["name"]: variable for variable in container["env"]}
            assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.mlops.svc:5000"
            assert env["MLFLOW_TRACKING_TOKEN"] == {"name": "MLFLOW_TRACKING_TOKEN", "valueFrom": {
                "secretKeyRef": {"name": "mlflow-credentials", "key": "token"}}}
            for name, variable in env.items():
                if SECRET_WORDS.search(name):
                    assert "value" not in variable, name
            if container["command"][-1] not in ("llmops_compiler.runtime.promote",  # reads the variable itself
                                                "llmops_compiler.runtime.dataset_version"):  # needs no MLflow
                assert "$(MLFLOW_TRACKING_URI)" in container["args"]


def test_prompt_registration_job(example: api.Build) -> None:
    for view in example.graph.environments:
        job = prompt_jobs(example, view.name)[0]
        pod = job["spec"]["template"]["spec"]
        configmaps = sorted(body["metadata"]["name"] for body in bodies(example, "ConfigMap", view.name)
                            if body["metadata"]["name"].startswith("prompt-"))
        sources = pod["volumes"][0]["projected"]["sources"]
        assert sorted(source["configMap"]["name"] for source in sources) == configmaps and len(configmaps) == 3
        container = pod["containers"][0]
        assert container["command"] == ["python", "-m", "llmops_compiler.runtime.register_prompt"]
        assert argument(container["args"], "--prompts-dir") == "/prompts"
        assert argument(container["args"], "--alias") == view.name
        assert {"name": "prompts", "mountPath": "/prompts", "readOnly": True} in container["volumeMounts"]
        assert pod["serviceAccountName"] == conventions.WORKFLOW_SERVICE_ACCOUNT
        assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert job["spec"]["backoffLimit"] == 3
        assert "ttlSecondsAfterFinished" not in job["spec"]  # ArgoCD would re-create and re-run it


def test_job_name_changes_exactly_when_a_prompt_changes(tmp_path: Path) -> None:
    def job_name(model: str = TINY_MODEL, **prompts: str) -> str:
        build = api.build(write_project(tmp_path, model, prompts))
        jobs = prompt_jobs(build)
        for job in jobs:
            validate_strict(job)
        return str(jobs[0]["metadata"]["name"]) if jobs else ""

    first = job_name(greet="v1", summarize="v1")
    assert re.fullmatch(r"register-prompts-[0-9a-f]{10}", first)
    assert job_name(greet="v1", summarize="v1") == first
    assert job_name(TINY_MODEL.replace("epochs: 1", "epochs: 2"), greet="v1", summarize="v1") == first
    changed = job_name(greet="v1", summarize="v2")
    assert changed != first and changed != job_name(greet="v2", summarize="v1")
    assert job_name() == ""  # no prompts, no Job


# --- model variants --------------------------------------------------------------------------------

FULL = TINY_MODEL.replace("method: lora", "method: full").replace(
    "    lora:\n      r: 4\n      alpha: 8\n      dropout: 0.0\n      targetModules: [q_proj, v_proj]\n", "")
QUANTIZED = TINY_MODEL + "  quantization:\n    method: int8-dynamic\n"
GPU = TINY_MODEL.replace("    retries: 1\n", textwrap.indent(textwrap.dedent("""\
    retries: 3
    resources:
      requests: {cpu: "4", memory: 16Gi, nvidia.com/gpu: 2}
      limits: {memory: 24Gi, nvidia.com/gpu: 2}
    nodeSelector: {accelerator: a100}
    tolerations:
      - {key: gpu, operator: Equal, value: "true", effect: NoSchedule}
"""), "    "))
# A base model from a hub id and an HTTPS dataset: no S3; zero retries; a day's budget.
ELSEWHERE = (TINY_MODEL.replace("s3://llmops-models/tiny", "acme/tiny-base")
             .replace("s3://llmops-data/support/train.jsonl", "https://data.test/train.jsonl")
             .replace("retries: 1", "retries: 0").replace("timeout: 30m", "timeout: 1d"))


def compiled(tmp_path: Path, model: str) -> dict[str, Any]:
    body = tune_templates(api.build(write_project(tmp_path, model)))[0]
    validate_strict(body)
    return body


def test_lora_variant_without_gpu(tmp_path: Path) -> None:
    body = compiled(tmp_path, TINY_MODEL)
    assert dag_order(body) == ["guard", "tune", "evaluate", "register"]
    tune = template_named(body, "tune")
    assert "nvidia.com/gpu" not in json.dumps(tune["container"].get("resources", {}))
    assert "nodeSelector" not in tune and "tolerations" not in tune
    assert tune["retryStrategy"]["limit"] == 1
    assert tune["retryStrategy"]["backoff"]["maxDuration"] == "1800s"
    assert body["spec"]["activeDeadlineSeconds"] == 1800
    assert "--target-modules" in tune["container"]["args"]
    assert [item["name"] for item in tune["outputs"]["artifacts"]] == ["adapter", "tune-metrics", "run-id"]
    evaluate_args = template_named(body, "evaluate")["container"]["args"]
    assert argument(evaluate_args, "--adapter") == "/work/in/adapter"
    assert "MLFLOW_TRACKING_TOKEN" not in json.dumps(body)  # the Project has no credentials


def test_full_fine_tune_passes_a_whole_model(tmp_path: Path) -> None:
    body = compiled(tmp_path, FULL)
    tune_args = template_named(body, "tune")["container"]["args"]
    assert argument(tune_args, "--method") == "full"
    assert not {"--r", "--alpha", "--dropout", "--target-modules"} & set(tune_args)
    evaluate = template_named(body, "evaluate")
    assert argument(evaluate["container"]["args"], "--model") == "/work/in/model"
    assert "--base-model" not in evaluate["container"]["args"]
    assert "base-model" not in [item["name"] for item in evaluate["inputs"]["artifacts"]]
    tasks = {task["name"]: task for task in template_named(body, "main")["dag"]["tasks"]}
    assert {"name": "model", "from": "{{tasks.tune.outputs.artifacts.model}}"} in \
        tasks["register"]["arguments"]["artifacts"]


def test_a_served_lora_model_registers_the_merged_model(tmp_path: Path) -> None:
    """The compiler's serving pods load one directory (`serve --model-dir`, vLLM `--model`): with a
    `serving.deployment`, a LoRA run registers the base with the adapter merged, never the adapter alone."""
    served = TINY_MODEL.replace("  registeredModel: tiny\n", "  registeredModel: tiny\n  serving:\n"
                                "    service: {name: tiny, port: 8080}\n    deployment: {}\n")
    body = compiled(tmp_path, served)
    tune = template_named(body, "tune")
    assert argument(tune["container"]["args"], "--merged-output") == "/work/out/model"
    assert [item["name"] for item in tune["outputs"]["artifacts"]] == ["adapter", "model", "tune-metrics", "run-id"]
    tasks = {task["name"]: task for task in template_named(body, "main")["dag"]["tasks"]}
    assert {"name": "model", "from": "{{tasks.tune.outputs.artifacts.model}}"} in \
        tasks["register"]["arguments"]["artifacts"]
    assert {"name": "adapter", "from": "{{tasks.tune.outputs.artifacts.adapter}}"} in \
        tasks["evaluate"]["arguments"]["artifacts"]
    # Without serving pods of the compiler's, the adapter is what is registered (the app's servers load it).
    unserved = template_named(compiled(tmp_path, TINY_MODEL), "tune")
    assert "--merged-output" not in unserved["container"]["args"]


def test_quantization_runs_between_evaluate_and_register(tmp_path: Path) -> None:
    body = compiled(tmp_path, QUANTIZED)
    assert dag_order(body) == ["guard", "tune", "evaluate", "quantize", "register"]
    tasks = {task["name"]: task for task in template_named(body, "main")["dag"]["tasks"]}
    assert tasks["quantize"]["dependencies"] == ["evaluate"]
    assert tasks["register"]["dependencies"] == ["quantize"]
    assert {"name": "model", "from": "{{tasks.quantize.outputs.artifacts.quantized}}"} in \
        tasks["register"]["arguments"]["artifacts"]
    args = template_named(body, "quantize")["container"]["args"]
    assert [argument(args, flag) for flag in ("--model-dir", "--adapter", "--dtype")] == [
        "/work/in/base-model", "/work/in/adapter", "int8"]


def test_gpu_resources_node_selector_and_tolerations_go_to_the_model_steps(tmp_path: Path) -> None:
    body = compiled(tmp_path, GPU + "  quantization: {}\n")
    for name in ("tune", "evaluate"):
        template = template_named(body, name)
        assert template["container"]["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert template["container"]["resources"]["requests"]["nvidia.com/gpu"] == "2"
        assert template["nodeSelector"] == {"accelerator": "a100"}
        assert template["tolerations"] == [{"effect": "NoSchedule", "key": "gpu", "operator": "Equal",
                                            "value": "true"}]
        assert template["retryStrategy"]["limit"] == 3
    quantize = template_named(body, "quantize")  # CPU quantization: the memory, not the GPUs
    assert quantize["container"]["resources"] == {"requests": {"cpu": "4", "memory": "16Gi"},
                                                  "limits": {"memory": "24Gi"}}
    assert "nodeSelector" not in quantize and "tolerations" not in quantize


def test_inputs_without_an_s3_uri(tmp_path: Path) -> None:
    body = compiled(tmp_path, ELSEWHERE)
    tune = template_named(body, "tune")
    assert argument(tune["container"]["args"], "--base-model") == "acme/tiny-base"
    assert argument(tune["container"]["args"], "--dataset") == "/work/in/train.jsonl"
    assert tune["inputs"]["artifacts"] == [{"name": "dataset", "path": "/work/in/train.jsonl",
                                            "http": {"url": "{{inputs.parameters.dataset-uri}}"}}]
    assert "retryStrategy" not in tune
    assert body["spec"]["activeDeadlineSeconds"] == 86400


def test_compiling_without_tuned_models_never_imports_hera(tmp_path: Path) -> None:
    specs = write_project(tmp_path)
    (specs / "model.yaml").unlink()
    probe = ("import sys; from pathlib import Path; from llmops_compiler import api; "
             f"build = api.build(Path({str(specs)!r})); print(len(build.resources), 'hera' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    count, imported = result.stdout.split()
    assert int(count) > 0 and imported == "False"


def test_llmops_compile_writes_workflows_and_jobs(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["compile", str(ROOT / "specs"), "-o", str(tmp_path / "out")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    workflow = tmp_path / "out/prod/workflows/tune-support-llm.workflowtemplate.yaml"
    loaded = yaml.safe_load(workflow.read_text())
    validate_strict(loaded)
    assert workflow.read_text().startswith("# Generated by llmops-compiler from specs/models/support-llm.yaml")
    kustomization = yaml.safe_load((tmp_path / "out/prod/kustomization.yaml").read_text())
    jobs = [path for path in kustomization["resources"] if path.startswith("jobs/register-prompts-")]
    assert "workflows/tune-support-llm.workflowtemplate.yaml" in kustomization["resources"] and len(jobs) == 1


# --- diagnostics for bad Model specs ---------------------------------------------------------------

@pytest.mark.parametrize(("old", "new", "expected"), [
    ("method: lora", "method: adapterx",
     "specs/model.yaml:9:13: error[LLM104]: `method` is `adapterx`, which is not allowed"),
    ("r: 4", "r: 0", "specs/model.yaml:11:10: error[LLM106]: `r` must be greater than 0, got 0"),
    ("      - metric: token_f1\n        min", "      - metric: exact_match\n        min",
     "specs/model.yaml:28:17: error[LLM215]: gate on metric `exact_match`, which evaluation.metrics does not "
     "declare"),
    ("    retries: 1\n", "    retries: 1\n    resources:\n      requests: {cpu: '2', nvidia.com/gpu: 1}\n",
     "specs/model.yaml:24:28: error[LLM211]: `nvidia.com/gpu` is requested without a limit"),
], ids=["unknown-method", "zero-rank", "gate-on-undeclared-metric", "gpu-without-limit"])
def test_bad_model_specs_give_exact_diagnostics(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in TINY_MODEL
    write_project(tmp_path, TINY_MODEL.replace(old, new, 1))
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(main, ["validate", "specs"])
    finally:
        os.chdir(previous)
    assert result.exit_code == 1
    assert expected in result.stderr.splitlines()
    assert "1 error(s)" in result.stderr
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


# --- the chain: the compiled DAG run with the real runtime steps ------------------------------------

_TAG = re.compile(r"\{\{(=?)\s*(.*?)\s*\}\}")
_REGEX_REPLACE = re.compile(r"^sprig\.regexReplaceAll\('([^']*)', inputs\.parameters\['([^']+)'\], '([^']*)'\)$")


def substitute(text: str, inputs: dict[str, str], workflow: dict[str, str]) -> str:
    """Argo's template tags, as far as the tune template uses them; anything else fails the test."""
    def replace(match: re.Match[str]) -> str:
        expression, body = match.group(1), match.group(2)
        if expression:
            call = _REGEX_REPLACE.match(body)
            assert call is not None, f"unsupported expression {body}"
            pattern, parameter, replacement = call.groups()
            return re.sub(pattern, re.sub(r"\$\{(\d+)\}", r"\\g<\1>", replacement), inputs[parameter])
        scope, _, name = body.rpartition(".")
        if scope == "inputs.parameters":
            return inputs[name]
        if scope == "workflow.parameters":
            return workflow[name]
        assert body == "workflow.name", f"unsupported tag {body}"
        return "tune-tiny-test"
    return _TAG.sub(replace, text)


def expand_variables(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in a container's args, from the container's environment."""
    return re.sub(r"\$\((\w+)\)", lambda found: env[found[1]], text)


def run_dag(body: dict[str, Any], workflow: dict[str, str], buckets: Path, work: Path,
            environment: dict[str, str]) -> dict[str, str]:
    """Run each DAG task's container as a local process, in dependency order, the way Argo would: input
    artifacts copied from ``buckets/<bucket>/<key>`` (the object store) or from an earlier task's output,
    container paths mapped under ``work/<task>/``, ``$(VAR)`` expanded from the container's env. Returns
    every output: ``<task>.<artifact>`` → local path, and ``<task>.parameters.<name>`` → value."""
    templates = {template["name"]: template for template in body["spec"]["templates"]}
    tasks = {task["name"]: task for task in templates[body["spec"]["entrypoint"]]["dag"]["tasks"]}
    produced: dict[str, str] = {}
    for task_name in dag_order(body):
        task, template = tasks[task_name], templates[tasks[task_name]["template"]]
        container, pod = template["container"], work / task_name
        if "when" in task:  # Argo's `when`: `{{tasks.<t>.outputs.parameters.<p>}} == <value>`
            condition = re.sub(r"\{\{tasks\.([\w-]+)\.outputs\.parameters\.([\w-]+)\}\}",
                               lambda found: produced[f"{found[1]}.parameters.{found[2]}"], task["when"])
            left, right = (side.strip() for side in condition.split("=="))
            if left != right:
                produced[f"{task_name}.skipped"] = "true"
                continue

        def local(path: str, pod: Path = pod) -> Path:
            return pod / path.lstrip("/")

        arguments = task.get("arguments", {})
        inputs = {item["name"]: substitute(item["value"], {}, workflow) for item in arguments.get("parameters", [])}
        assert set(inputs) == {item["name"] for item in template.get("inputs", {}).get("parameters", [])}
        passed = {item["name"]: item["from"] for item in arguments.get("artifacts", [])}
        for artifact in template.get("inputs", {}).get("artifacts", []):
            if "s3" in artifact:
                s3 = artifact["s3"]
                source = buckets / substitute(s3["bucket"], inputs, workflow) / substitute(s3["key"], inputs, workflow)
            else:
                reference = re.fullmatch(r"\{\{tasks\.([\w-]+)\.outputs\.artifacts\.([\w-]+)\}\}",
                                         passed[artifact["name"]])
                assert reference is not None
                source = Path(produced[f"{reference[1]}.{reference[2]}"])
            target = local(artifact["path"])
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        for mount in container["volumeMounts"]:
            local(mount["mountPath"]).mkdir(parents=True, exist_ok=True)

        env = {item["name"]: substitute(item["value"], inputs, workflow) for item in container["env"]}
        env = {name: str(local(value)) if value.startswith("/") else value for name, value in env.items()}
        env.update(environment)
        args = [substitute(arg, inputs, workflow) for arg in container["args"]]
        args = [expand_variables(arg, env) for arg in args]
        args = [str(local(arg)) if arg.startswith("/work/") else arg for arg in args]
        assert container["command"][0] == "python"
        command = [sys.executable, *container["command"][1:], *args]
        result = subprocess.run(command, env={**os.environ, **env}, cwd=work, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, f"{task_name} failed ({result.returncode}):\n{result.stderr[-3000:]}"

        for artifact in template.get("outputs", {}).get("artifacts", []):
            path = local(artifact["path"])
            assert path.exists(), f"{task_name} did not write its output `{artifact['name']}`"
            produced[f"{task_name}.{artifact['name']}"] = str(path)
        for parameter in template.get("outputs", {}).get("parameters", []):
            produced[f"{task_name}.parameters.{parameter['name']}"] = \
                local(parameter["valueFrom"]["path"]).read_text().strip()
    return produced


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from llmops_compiler.runtime._tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sqlite MLflow database with its schema created once (each test runs on a copy)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = tmp_path_factory.mktemp("mlflow-schema")
    SqlAlchemyStore(f"sqlite:///{folder / 'mlflow.db'}", str(folder / "artifacts"))
    return folder / "mlflow.db"


@pytest.mark.slow
@pytest.mark.parametrize("model", [TINY_MODEL, QUANTIZED], ids=["lora", "lora-quantized"])
def test_compiled_template_runs_with_the_runtime_steps(
    tmp_path: Path, model: str, tiny_model: Path, empty_mlflow_db: Path
) -> None:
    from mlflow import MlflowClient

    from llmops_compiler.runtime._common import ARTIFACT_ROOT_ENV
    from llmops_compiler.runtime._tiny import dataset_records, write_dataset

    # The object store: s3://<bucket>/<key> is buckets/<bucket>/<key>. A retrain alert points the run at
    # new data, so the trigger's dataset-uri (not the spec's default) must reach the tune step.
    buckets = tmp_path / "buckets"
    shutil.copytree(tiny_model, buckets / "llmops-models/tiny")
    write_dataset(buckets / "llmops-data/retrain/train-2.jsonl")
    write_dataset(buckets / "llmops-data/support/eval.jsonl", dataset_records()[:3])
    specs = write_project(tmp_path / "project", model)
    build = api.build(specs)
    body = tune_templates(build)[0]
    resolved = build.graph.environments[0].get("Model", "tiny")
    assert resolved is not None

    store = tmp_path / "mlflow"
    (store / "artifacts").mkdir(parents=True)
    shutil.copy2(empty_mlflow_db, store / "mlflow.db")
    tracking_uri = f"sqlite:///{store / 'mlflow.db'}"
    workflow = {parameter["name"]: parameter["value"] for parameter in body["spec"]["arguments"]["parameters"]}
    workflow.update({conventions.TUNE_PARAM_DATASET: "s3://llmops-data/retrain/train-2.jsonl",
                     conventions.TUNE_PARAM_REASON: "retrain", "git-commit": "0123abc"})
    environment = {  # what the cluster provides: MLflow (here a sqlite store) and an importable runtime
        "MLFLOW_TRACKING_URI": tracking_uri, ARTIFACT_ROOT_ENV: str(store / "artifacts"),
        "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    }
    work = tmp_path / "pods"
    outputs = run_dag(body, workflow, buckets, work, environment)
    assert outputs["guard.parameters.proceed"] == "true"

    adapter = json.loads((Path(outputs["tune.adapter"]) / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], sorted(adapter["target_modules"])) == (4, 8, ["q_proj", "v_proj"])
    tuned = json.loads(Path(outputs["tune.tune-metrics"]).read_text())
    assert tuned["steps"] == 3 and tuned["examples"] == len(dataset_records())
    evaluated = json.loads(Path(outputs["evaluate.metrics"]).read_text())
    assert evaluated["passed"] is True
    assert set(evaluated["metrics"]) >= {"token_f1", "rouge_l", "perplexity"}
    run_id = Path(outputs["tune.run-id"]).read_text().strip()
    assert run_id

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = client.get_model_version_by_alias("tiny", "candidate-dev")  # the environment's own alias
    assert str(version.version) == outputs["register.parameters.version"] == "1"
    assert version.run_id == run_id
    assert version.tags["llmops.spec_hash"] == resolved.spec_hash
    assert version.tags["llmops.git_commit"] == "0123abc"
    assert version.tags["llmops.dataset_uri"] == "s3://llmops-data/retrain/train-2.jsonl"
    assert float(version.tags["metric.token_f1"]) == pytest.approx(evaluated["metrics"]["token_f1"])
    run = client.get_run(run_id)
    assert run.data.params["r"] == "4" and run.data.params["learning_rate"] == "0.01"
    if "quantize" in dag_order(body):
        report = json.loads((Path(outputs["quantize.quantized"]) / "quantization_report.json").read_text())
        assert report["dtype"] == "int8" and report["size_after_bytes"] < report["size_before_bytes"]
        from llmops_compiler.runtime.register import dir_digest

        assert version.tags["llmops.model_digest"] == dir_digest(outputs["quantize.quantized"])
        # The registered version is the quantized model, not the adapter tune logged.
        registered = {Path(f.path).name for f in client.list_artifacts(run_id, version.source.split("/artifacts/")[-1])}
        assert "quantized_state_dict.pt" in registered and "adapter_config.json" not in registered

    # The alert flaps and fires again: the same template runs again within the tuning timeout, and its guard
    # skips the retrain (everything after it is skipped; no second version appears).
    again = run_dag(body, {**workflow, conventions.TUNE_PARAM_REASON: "flapped"}, buckets, tmp_path / "again",
                    environment)
    assert again["guard.parameters.proceed"] == "false"
    assert all(again.get(f"{name}.skipped") == "true" for name in dag_order(body) if name != "guard")
    assert len(client.search_model_versions("name = 'tiny'")) == 1


MINIO = """\
    objectStore:
      endpoint: minio.storage.svc:9000
      insecure: true
      accessKey: {name: minio-llmops, key: accesskey}
      secretKey: {name: minio-llmops, key: secretkey}
"""


def test_s3_inputs_use_the_projects_object_store(tmp_path: Path) -> None:
    specs = write_project(tmp_path)
    project = specs / "project.yaml"
    project.write_text(project.read_text().replace(f"    image: {IMAGE}\n", f"    image: {IMAGE}\n{MINIO}"))
    body = tune_templates(api.build(specs))[0]
    validate_strict(body)
    inputs = [item for template in body["spec"]["templates"] for item in template.get("inputs", {}).get("artifacts", [])
              if "s3" in item]
    assert inputs, "the tiny model reads its datasets from s3://"
    for item in inputs:
        assert item["s3"]["endpoint"] == "minio.storage.svc:9000" and item["s3"]["insecure"] is True
        assert item["s3"]["accessKeySecret"] == {"name": "minio-llmops", "key": "accesskey"}
        assert item["s3"]["secretKeySecret"] == {"name": "minio-llmops", "key": "secretkey"}
        assert "useSDKCreds" not in item["s3"]


def test_an_object_store_with_one_key_is_an_error(tmp_path: Path) -> None:
    specs = write_project(tmp_path)
    project = specs / "project.yaml"
    one_key = MINIO.replace("      secretKey: {name: minio-llmops, key: secretkey}\n", "")
    project.write_text(project.read_text().replace(f"    image: {IMAGE}\n", f"    image: {IMAGE}\n{one_key}"))
    with pytest.raises(CompileError) as error:
        api.build(specs)
    [problem] = error.value.diagnostics
    assert (str(problem.position), problem.code) == ("specs/project.yaml:18:7", "LLM202")
    assert "both `accessKey` and `secretKey`" in problem.message
