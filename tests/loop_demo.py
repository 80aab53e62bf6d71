"""The whole loop on one machine, with every hop printed: ``python tests/loop_demo.py [--unhappy] [--keep DIR]``
(from the repository root, in the project's environment; a few minutes on 2 cores).

A small project (Project, Model ``support`` with a reference-server deployment and LoRA tuning of a tiny locally
built model, Monitor with a drift check whose reference follows the stable version, canary RolloutPolicy and its
RolloutState) is compiled with the real compiler into a git repository with a bare remote. Then:

1. stable v1 serves; a load generator sends long prompts split by the compiled VirtualService's weights;
2. the compiled drift CronWorkflow's commands push ``llmops_drift_score`` to a Pushgateway; Prometheus, with the
   compiled rules, fires ``LLMFeatureDrift``; Alertmanager, with the compiled routes, delivers it to the webhook;
3. the compiled Sensor's filters and parameters select ``tune-support``; its DAG tasks run with their compiled
   commands (guard → tune → evaluate → register → propose): v2 is registered and proposed in a commit;
4. the compiled analysis CronWorkflow's command (``runtime promote``) walks the canary steps on the live metrics
   of the two serving processes, committing each step, then the promotion (or, with ``--unhappy``, where the
   candidate answers errors, the rollback and its reason);
5. after a promotion the drift check runs again: its reference is now v2's training data and the alert resolves.

What is real: the compiler and every file it writes; every runtime step as a process with the arguments of the
compiled object; Prometheus, Pushgateway and Alertmanager (Debian's binaries); MLflow (sqlite); git. What this
driver plays, because Kubernetes is not here (each one a small, stated substitution):

* **Argo Workflows** (:class:`Argo`): each task's container runs as a local process, in DAG order, with Argo's
  template tags and ``when`` evaluated and Kubernetes' ``$(VAR)`` expanded from the container's env; container
  paths map into a folder per task; ``s3://bucket/key`` input artifacts are read from ``<work>/buckets/bucket/key``
  (the object store); no retries; the container env's ``MLFLOW_TRACKING_URI`` (the Project's server URL) is
  replaced by the local sqlite store. CronWorkflows run when the loop needs them, not on their schedule: the drift
  check before and after the rollout, the analysis once a step's wait (``analysis.interval``) is over.
* **Argo Events**: the Sensor's filters and trigger parameters are applied to Alertmanager's delivery by
  :func:`monitoring_support.fire_sensor`.
* **prometheus-operator**: the PrometheusRule's groups become a rules file and the AlertmanagerConfig a plain
  configuration (:func:`alertmanager_configuration`), webhook URLs pointed at this driver's receiver and the route
  timings shortened to seconds; both servers are reloaded, as the config reloader does.
* **ArgoCD, the kubelet, Kubernetes service discovery** (:class:`Cluster`): after each push the branch is checked
  out, ``llmops check`` must pass on it, and each compiled Deployment's init container (``fetch_model``) and server
  container (``serve``) run as processes (bound to 127.0.0.1, a free port, a model folder per pod); pods whose
  Deployment changed or went away are stopped after their replacement is ready. Pods are scrape targets of a
  file-based service discovery with the ``namespace`` label Kubernetes service discovery would attach.
* **Istio**: the load generator picks the pod of each request by the VirtualService's weights and the
  DestinationRule's subsets (pod labels).
* **Request logs**: the load generator writes what it sends, in chunks, under the Monitor's ``logs`` prefix.
* **The fault** (``--unhappy``): the candidate pod's server also gets ``serve``'s testing aid
  ``--inject-error-ratio``, the only change made to a compiled object.
* **v1** exists before the loop: the base model registered with the ``register`` step (its training data, the
  short prompts, recorded as its dataset), ``stable: 1`` in the initial RolloutState, and a first analysis run that
  carries the state into MLflow's aliases.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
for _folder in (REPO, TESTS / "runtime", TESTS):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import yaml  # noqa: E402
from monitoring_support import IMAGE, fire_sensor, rules_file, webhook_receiver, workflow_parameters  # noqa: E402
from promote_support import checkout, commit_message, commits_since, git, make_remote  # noqa: E402
from serve_support import ServeProcess, serve_process  # noqa: E402
from servers import (  # noqa: E402
    Server,
    alertmanager,
    prometheus,
    prometheus_alerts,
    pushgateway,
    query,
    reload,
    wait_for,
)

from llmops_compiler import api, conventions, rollout  # noqa: E402
from llmops_compiler.specs.rollout import EnvironmentState  # noqa: E402
from llmops_compiler.targets.alertmanager import alertmanager_configuration  # noqa: E402

ENV, NAMESPACE, MODEL = "dev", "llm-dev", "support"
POLICY = MODEL
STEPS = (25, 75)  # the canary's candidate weights, percent
THRESHOLD = 0.2  # the drift check's psi threshold
RATE = 8.0  # requests per second the load generator sends
FAULT_RATIO = 0.5  # --unhappy: the candidate's share of 500s
SCRAPE_SLACK_S = 3.0  # after a step's wait, let Prometheus scrape the last seconds before the analysis
MIN_ANALYSIS_GAP_S = 10.0
LIFETIME_S = 900.0  # hard lifetime of every server and pod this driver starts
WEBHOOK_TOKEN = "loop-webhook-token"
SECRETS = {"llmops-alert-webhook": {"token": WEBHOOK_TOKEN}}
V1_DATASET = "s3://data/support/train-v1.jsonl"
TRAIN_DATASET = "s3://data/support/train.jsonl"
EVAL_DATASET = "s3://data/support/eval.jsonl"
LOGS = "s3://logs/support/requests/"
BASE_MODEL = "s3://models/base/tiny"
# Words the tiny model's tokenizer knows (its corpus), so long prompts stay within its 128 positions.
FILLER_TEXT = ("The quick brown fox jumps over the lazy dog. A model is trained on data and evaluated on held out "
               "data. Prompts are templates with variables. The cat sat on the mat. Question and answer pairs teach "
               "the model to respond.")
FILLER = FILLER_TEXT.split()


class LoopError(RuntimeError):
    """A hop did not happen as it should (a step failed, something did not arrive in time)."""


# --- the specs -----------------------------------------------------------------------------------------


def project_yaml(remote: Path, prometheus_url: str, pushgateway_url: str) -> str:
    return f"""\
apiVersion: llmops.dev/v1alpha1
kind: Project
metadata:
  name: loop
spec:
  repo:
    url: file://localhost{remote}
    branch: main
  environments:
    - name: {ENV}
      namespace: {NAMESPACE}
  mlflow:
    trackingUri: http://mlflow.loop.invalid:5000
  runtime:
    image: {IMAGE}
  prometheus:
    url: {prometheus_url}
    pushgatewayUrl: {pushgateway_url}
"""


MODEL_YAML = f"""\
apiVersion: llmops.dev/v1alpha1
kind: Model
metadata:
  name: {MODEL}
spec:
  baseModel: {BASE_MODEL}
  registeredModel: {MODEL}
  serving:
    service: {{name: {MODEL}, port: 8080}}
    deployment: {{}}          # the reference server, one pod per track, pinned to the state's versions
  tuning:
    method: lora
    lora: {{r: 8, alpha: 16, dropout: 0.0, targetModules: [q_proj, v_proj]}}
    dataset: {TRAIN_DATASET}
    epochs: 100
    maxSteps: 30
    batchSize: 6
    learningRate: 0.01
    timeout: 30m
    retries: 0
  evaluation:
    dataset: {EVAL_DATASET}
    metrics: [token_f1, perplexity]
    maxNewTokens: 4
    gates:
      - {{metric: perplexity, max: 100000}}
"""

MONITOR_YAML = f"""\
apiVersion: llmops.dev/v1alpha1
kind: Monitor
metadata:
  name: {MODEL}
spec:
  model: {MODEL}
  logs: {LOGS}
  features:
    - {{name: prompt_length, type: length, field: prompt}}
  drift:
    - name: prompt-length
      feature: prompt_length
      method: psi
      followStable: true      # the reference is the training data of the stable version
      threshold: {THRESHOLD}
      for: 2s
      action: retrain
"""

POLICY_YAML = f"""\
apiVersion: llmops.dev/v1alpha1
kind: RolloutPolicy
metadata:
  name: {POLICY}
spec:
  model: {MODEL}
  strategy: canary
  steps: [{{weight: {STEPS[0]}}}, {{weight: {STEPS[1]}}}]
  analysis:
    interval: 1m
    maxErrorRatio: 0.05
    maxLatencyP95: 2.5
    minimumRequests: 30
    failureLimit: 1
"""


# --- data ----------------------------------------------------------------------------------------------


def short_prompt(rng: random.Random, record: dict[str, str]) -> str:
    """What v1 was trained on and production sent before: a question with at most three words before it."""
    return " ".join([*(rng.choice(FILLER) for _ in range(rng.randint(0, 3))), record["prompt"]])


def long_prompt(rng: random.Random, record: dict[str, str]) -> str:
    """What production sends now: the question after a long preamble (90-200 characters in all)."""
    return " ".join([*(rng.choice(FILLER) for _ in range(rng.randint(12, 26))), record["prompt"]])


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def object_path(buckets: Path, uri: str) -> Path:
    """Where ``s3://bucket/key`` lives in the local object store."""
    assert uri.startswith("s3://"), uri
    return buckets / uri.removeprefix("s3://")


def write_data(buckets: Path) -> None:
    """The object store: the base model, v1's and the current training data, the evaluation set."""
    from llmops_compiler.runtime._tiny import build_tiny_model, dataset_records

    build_tiny_model(object_path(buckets, BASE_MODEL))
    records = dataset_records()
    rng = random.Random(1)
    write_jsonl(object_path(buckets, V1_DATASET),
                [{"prompt": short_prompt(rng, record), "completion": record["completion"]}
                 for record in (rng.choice(records) for _ in range(120))])
    write_jsonl(object_path(buckets, TRAIN_DATASET),
                [{"prompt": long_prompt(rng, record), "completion": record["completion"]}
                 for record in (rng.choice(records) for _ in range(200))])
    write_jsonl(object_path(buckets, EVAL_DATASET),
                [{"prompt": long_prompt(rng, record), "completion": record["completion"]} for record in records[:6]])
    object_path(buckets, LOGS).mkdir(parents=True, exist_ok=True)


# --- printing ------------------------------------------------------------------------------------------


@dataclass
class Hops:
    """One printed line per hop, with the seconds since the loop started."""

    out: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    started: float = field(default_factory=time.monotonic)
    lines: list[str] = field(default_factory=list)

    def __call__(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f}s] {text}"
        self.lines.append(line)
        self.out(line)


def _tail(text: str, size: int = 2000) -> str:
    return text[-size:].strip()


# --- Argo Workflows, played locally ----------------------------------------------------------------------

_TAG = re.compile(r"\{\{(=?)\s*(.*?)\s*\}\}")
_REGEX_REPLACE = re.compile(r"^sprig\.regexReplaceAll\('([^']*)', inputs\.parameters\['([^']+)'\], '([^']*)'\)$")
_TASK_PARAMETER = re.compile(r"^tasks\.([\w-]+)\.outputs\.parameters\.([\w-]+)$")
_TASK_ARTIFACT = re.compile(r"^\{\{tasks\.([\w-]+)\.outputs\.artifacts\.([\w-]+)\}\}$")


@dataclass
class TaskRun:
    """One DAG task: its exit code (None: skipped by ``when``), output, outputs and how long it took."""

    name: str
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    artifacts: dict[str, Path] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass
class Argo:
    """Runs a compiled workflow spec's tasks as local processes (see the module docstring for what differs)."""

    buckets: Path
    pods: Path
    environment: dict[str, str]
    """Added to every process's environment: what the cluster and image provide (PYTHONPATH, the MLflow store)."""
    env_overrides: dict[str, str]
    """Container env values replaced (the Project's MLflow URL by the local store)."""

    def substitute(self, text: str, inputs: dict[str, str], workflow: dict[str, str],
                   runs: dict[str, TaskRun]) -> str:
        """Argo's template tags as the compiled templates use them; anything else is an error."""
        def replace(match: re.Match[str]) -> str:
            expression, body = match.group(1), match.group(2)
            if expression:
                call = _REGEX_REPLACE.match(body)
                if call is None:
                    raise LoopError(f"unsupported Argo expression {body}")
                pattern, parameter, replacement = call.groups()
                return re.sub(pattern, re.sub(r"\$\{(\d+)\}", r"\\g<\1>", replacement), inputs[parameter])
            task = _TASK_PARAMETER.match(body)
            if task is not None:
                return runs[task[1]].parameters[task[2]]
            scope, _, name = body.rpartition(".")
            if scope == "inputs.parameters":
                return inputs[name]
            if scope == "workflow.parameters":
                return workflow[name]
            if body == "workflow.name":
                return "local"
            raise LoopError(f"unsupported Argo tag {body}")
        return _TAG.sub(replace, text)

    def run(self, spec: dict[str, Any], parameters: dict[str, str], name: str,
            on_task: Callable[[TaskRun], None] = lambda run: None) -> dict[str, TaskRun]:
        """Run ``spec`` (a WorkflowTemplate's spec or a CronWorkflow's ``workflowSpec``) with ``parameters`` over
        its defaults; stops at the first task that fails, as the DAG would. Returns every task's run."""
        workflow = {item["name"]: item.get("value", "") for item in spec.get("arguments", {}).get("parameters", [])}
        unknown = set(parameters) - set(workflow)
        if unknown:
            raise LoopError(f"{name}: the workflow has no parameter(s) {sorted(unknown)}")
        workflow.update(parameters)
        templates = {template["name"]: template for template in spec["templates"]}
        entry = templates[spec["entrypoint"]]
        tasks = entry["dag"]["tasks"] if "dag" in entry else [{"name": entry["name"], "template": entry["name"]}]
        runs: dict[str, TaskRun] = {}
        for task in _dag_order(tasks):
            run = self._task(task, templates[task["template"]], workflow, runs, self.pods / name / task["name"])
            runs[task["name"]] = run
            on_task(run)
            if run.returncode not in (0, None):
                break
        return runs

    def _task(self, task: dict[str, Any], template: dict[str, Any], workflow: dict[str, str],
              runs: dict[str, TaskRun], pod: Path) -> TaskRun:
        if "when" in task:  # `{{tasks.<t>.outputs.parameters.<p>}} == <value>`
            left, right = (side.strip() for side in self.substitute(task["when"], {}, workflow, runs).split("=="))
            if left != right:
                return TaskRun(task["name"], None)

        def local(path: str) -> Path:
            return pod / path.lstrip("/")

        arguments = task.get("arguments", {})
        inputs = {item["name"]: self.substitute(item["value"], {}, workflow, runs)
                  for item in arguments.get("parameters", [])}
        declared = {item["name"] for item in template.get("inputs", {}).get("parameters", [])}
        if declared != set(inputs):
            raise LoopError(f"task {task['name']}: parameters {sorted(inputs)}, template wants {sorted(declared)}")
        passed = {item["name"]: item["from"] for item in arguments.get("artifacts", [])}
        for artifact in template.get("inputs", {}).get("artifacts", []):
            if "s3" in artifact:
                bucket = self.substitute(artifact["s3"]["bucket"], inputs, workflow, runs)
                key = self.substitute(artifact["s3"]["key"], inputs, workflow, runs)
                source = self.buckets / bucket / key
            else:
                reference = _TASK_ARTIFACT.match(passed[artifact["name"]])
                if reference is None:
                    raise LoopError(f"unsupported artifact source {passed[artifact['name']]}")
                source = runs[reference[1]].artifacts[reference[2]]
            target = local(artifact["path"])
            target.parent.mkdir(parents=True, exist_ok=True)
            if not source.exists():
                raise LoopError(f"task {task['name']}: input artifact {artifact['name']} ({source}) does not exist")
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        container = template["container"]
        for mount in container.get("volumeMounts", []):
            local(mount["mountPath"]).mkdir(parents=True, exist_ok=True)
        env: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" not in item:
                raise LoopError(f"task {task['name']}: env {item['name']} comes from {item}; nothing here provides it")
            value = self.env_overrides.get(item["name"]) or self.substitute(item["value"], inputs, workflow, runs)
            env[item["name"]] = str(local(value)) if value.startswith("/") else value
        args = [self.substitute(arg, inputs, workflow, runs) for arg in container.get("args", [])]
        args = [expand_variables(arg, env) for arg in args]
        args = [str(local(arg)) if arg.startswith("/work/") else arg for arg in args]
        if container["command"][:2] != ["python", "-m"]:
            raise LoopError(f"task {task['name']} runs {container['command']}, not a runtime step")
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", *container["command"][2:], *args],
                                env={**os.environ, **env, **self.environment}, cwd=pod, capture_output=True,
                                text=True, timeout=600, check=False)
        run = TaskRun(task["name"], result.returncode, result.stdout, result.stderr, time.monotonic() - started)
        if result.returncode == 0:
            for artifact in template.get("outputs", {}).get("artifacts", []):
                run.artifacts[artifact["name"]] = local(artifact["path"])
            for parameter in template.get("outputs", {}).get("parameters", []):
                run.parameters[parameter["name"]] = local(parameter["valueFrom"]["path"]).read_text().strip()
        return run


def expand_variables(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in a container's args, from the container's environment."""
    return re.sub(r"\$\((\w+)\)", lambda found: env[found[1]], text)


def _dag_order(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks in an order that respects ``dependencies`` (the listed order where it does not matter)."""
    done: set[str] = set()
    ordered: list[dict[str, Any]] = []
    while len(ordered) < len(tasks):
        ready = [task for task in tasks if task["name"] not in done
                 and all(dependency in done for dependency in task.get("dependencies", []))]
        if not ready:
            raise LoopError("the DAG has a cycle or a dependency on a missing task")
        ordered.append(ready[0])
        done.add(ready[0]["name"])
    return ordered


# --- the cluster: ArgoCD, the kubelet, service discovery and Istio, played locally -----------------------


def read_manifests(generated: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of the environment's folder, by (kind, name)."""
    objects = {}
    for path in sorted((generated / ENV).rglob("*.yaml")):
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(body, dict) and "kind" in body and "metadata" in body:
            objects[(body["kind"], body["metadata"]["name"])] = body
    return objects


def _template_hash(deployment: dict[str, Any]) -> str:
    """What tells a Deployment's pods apart (its pod template), like Kubernetes' pod-template-hash."""
    return hashlib.sha256(json.dumps(deployment["spec"]["template"], sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class Pod:
    """A running serving pod: the server process and what selects it."""

    name: str
    deployment: str
    template_hash: str
    labels: dict[str, str]
    server: ServeProcess
    stack: contextlib.ExitStack
    fault: bool = False

    @property
    def version(self) -> str:
        return self.labels["version"]


@dataclass
class Synced:
    """What one sync of a commit found and did."""

    commit: str
    checkout: Path
    objects: dict[tuple[str, str], dict[str, Any]]
    started: list[Pod]
    stopped: list[Pod]
    routes: list[tuple[Pod, float]]


class Cluster:
    """Applies the environment's folder of the branch's head: serving pods from the Deployments, scrape targets,
    and the traffic split of the VirtualService and DestinationRule (see the module docstring)."""

    def __init__(self, remote: Path, work: Path, argo: Argo, targets_file: Path, fault: bool) -> None:
        self.remote, self.work, self.argo, self.targets_file, self.fault = remote, work, argo, targets_file, fault
        self.pods: dict[str, Pod] = {}
        self.routes: list[tuple[Pod, float]] = []
        self.lock = threading.Lock()
        self.synced: Synced | None = None
        self._count = 0
        self._write_targets()

    def head(self) -> str:
        return git("--git-dir", str(self.remote), "rev-parse", "main").strip()

    def sync(self) -> Synced:
        """Check out the head of the branch, require ``llmops check`` to pass on it, and apply it."""
        commit = self.head()
        self._count += 1
        tree = checkout(self.remote, commit, self.work / "checkouts" / f"{self._count:02d}-{commit[:8]}")
        result = api.check(tree / "specs", tree / "generated")
        if not result.ok:
            raise LoopError(f"llmops check fails on commit {commit[:8]}:\n{result.diff[:3000]}")
        objects = read_manifests(tree / "generated")
        wanted = {name: body for (kind, name), body in objects.items() if kind == "Deployment"}
        desired = {(name, _template_hash(body)) for name, body in wanted.items()}
        running = {(pod.deployment, pod.template_hash) for pod in self.pods.values()}
        # Like a Deployment's rolling update with maxSurge 1, maxUnavailable 0: the new pod first.
        started = [self._start_pod(name, wanted[name]["spec"]["template"], template_hash)
                   for name, template_hash in sorted(desired - running)]
        for pod in started:
            self.pods[pod.name] = pod
        obsolete = [pod for pod in self.pods.values() if (pod.deployment, pod.template_hash) not in desired]
        routes = self._routes(objects, [pod for pod in self.pods.values() if pod not in obsolete])
        with self.lock:
            self.routes = routes
        for pod in obsolete:
            del self.pods[pod.name]
        self._write_targets()
        time.sleep(1.0)  # requests already sent to an obsolete pod finish (it drains on SIGTERM anyway)
        for pod in obsolete:
            pod.stack.close()
        self.synced = Synced(commit, tree, objects, started, obsolete, routes)
        return self.synced

    def _start_pod(self, deployment: str, template: dict[str, Any], template_hash: str) -> Pod:
        name = f"{deployment}-{template_hash[:5]}"
        pod_dir = self.work / "pods" / name
        spec, labels = template["spec"], dict(template["metadata"]["labels"])
        models = pod_dir / "models"

        def local(path: str) -> str:
            return str(pod_dir / path.lstrip("/")) if path.startswith("/") else path

        for init in spec.get("initContainers", []):  # fetch_model: the pinned version from the registry
            env = {item["name"]: self.argo.env_overrides.get(item["name"], item["value"]) for item in init["env"]}
            args = [local(expand_variables(arg, env)) for arg in init["args"]]
            if init["command"][:2] != ["python", "-m"]:
                raise LoopError(f"{deployment}: init container runs {init['command']}")
            result = subprocess.run([sys.executable, "-m", *init["command"][2:], *args],
                                    env={**os.environ, **{k: local(v) for k, v in env.items()},
                                         **self.argo.environment},
                                    capture_output=True, text=True, timeout=300, check=False)
            if result.returncode != 0:
                raise LoopError(f"{deployment}: init container {init['name']} failed ({result.returncode}): "
                                f"{_tail(result.stderr)}")
        [container] = spec["containers"]
        if container["command"] != ["python", "-m", "llmops_compiler.runtime.serve"]:
            raise LoopError(f"{deployment}: the server is {container['command']}, not the reference server")
        args = [local(arg) if arg.startswith("/models") else arg for arg in container["args"]]
        args[args.index("--host") + 1] = "127.0.0.1"  # a pod's 0.0.0.0 and port 8080, here loopback and a free port
        args[args.index("--port") + 1] = "0"
        fault = self.fault and labels.get(conventions.LABEL_TRACK) == conventions.TRACK_CANDIDATE
        if fault:
            args += ["--inject-error-ratio", str(FAULT_RATIO), "--seed", "7"]
        models.mkdir(parents=True, exist_ok=True)
        stack = contextlib.ExitStack()
        server = stack.enter_context(serve_process(args, pod_dir, lifetime=LIFETIME_S))
        return Pod(name, deployment, template_hash, labels, server, stack, fault)

    def _routes(self, objects: dict[tuple[str, str], dict[str, Any]], pods: list[Pod]) -> list[tuple[Pod, float]]:
        """(pod, share of requests) from the VirtualService's weights and the DestinationRule's subsets."""
        service = objects[("VirtualService", MODEL)]["spec"]["http"]
        rule = objects[("DestinationRule", MODEL)]
        subsets = {subset["name"]: subset["labels"] for subset in rule["spec"]["subsets"]}
        if len(service) != 1:
            raise LoopError("the load generator knows one weighted HTTP route (canary), got "
                            f"{len(service)} routes")
        routes: list[tuple[Pod, float]] = []
        for destination in service[0]["route"]:
            labels = subsets[destination["destination"]["subset"]]
            selected = [pod for pod in pods if all(pod.labels.get(key) == value for key, value in labels.items())]
            if destination["weight"] and not selected:
                raise LoopError(f"no pod for subset {destination['destination']['subset']} ({labels})")
            routes += [(pod, destination["weight"] / len(selected)) for pod in selected]
        return routes

    def _write_targets(self) -> None:
        """The pods as file_sd targets, each with the ``namespace`` and ``pod`` labels."""
        targets = [{"targets": [f"127.0.0.1:{pod.server.port}"], "labels": {"namespace": NAMESPACE, "pod": pod.name}}
                   for pod in self.pods.values()]
        temporary = self.targets_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(targets), encoding="utf-8")
        temporary.replace(self.targets_file)

    def pick(self, rng: random.Random) -> Pod | None:
        with self.lock:
            routes = list(self.routes)
        if not routes:
            return None
        return rng.choices([pod for pod, _ in routes], weights=[weight for _, weight in routes])[0]

    def shares(self) -> str:
        with self.lock:
            routes = list(self.routes)
        return ", ".join(f"{pod.labels[conventions.LABEL_TRACK]} v{pod.version} {weight:g}%" for pod, weight in routes)

    def stop(self) -> None:
        with self.lock:
            self.routes = []
        for pod in list(self.pods.values()):
            pod.stack.close()
        self.pods.clear()


# --- the load generator ------------------------------------------------------------------------------------


class LoadGenerator:
    """Sends ``RATE`` completions a second of long prompts to the pods the routes pick; writes every request to
    the request log (a chunk file every few seconds, written whole) and counts answers per version and status."""

    FLUSH_S = 3.0

    def __init__(self, cluster: Cluster, logs: Path, seed: int = 2) -> None:
        from llmops_compiler.runtime._tiny import dataset_records

        self.cluster, self.logs, self.rng, self.records = cluster, logs, random.Random(seed), dataset_records()
        self.counts: dict[tuple[str, str, int], int] = {}  # (track, version, status) → requests
        self.buffer: list[str] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.chunks = 0
        self.logged = 0

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._flush()

    def _loop(self) -> None:
        next_at, flush_at = time.monotonic(), time.monotonic() + self.FLUSH_S
        while not self.stopping.is_set():
            pod = self.cluster.pick(self.rng)
            if pod is not None:
                prompt = long_prompt(self.rng, self.rng.choice(self.records))
                self.pool.submit(self._send, pod, prompt)
            if time.monotonic() >= flush_at:
                self._flush()
                flush_at = time.monotonic() + self.FLUSH_S
            next_at += 1.0 / RATE
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def _send(self, pod: Pod, prompt: str) -> None:
        body = json.dumps({"model": MODEL, "prompt": prompt, "max_tokens": 4, "temperature": 0}).encode()
        request = urllib.request.Request(f"{pod.server.url}/v1/completions", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        started = time.monotonic()
        response: str | None = None
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status = int(answer.status)
                response = json.loads(answer.read())["choices"][0]["text"]
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
        except OSError:
            status = 0  # the pod went away under the request
        track = pod.labels[conventions.LABEL_TRACK]
        record = {"timestamp": datetime.now(UTC).isoformat(), "model": MODEL, "version": pod.version,
                  "track": track, "prompt": prompt, "response": response, "status": status,
                  "latency_s": round(time.monotonic() - started, 4)}
        with self.lock:
            key = (track, pod.version, status)
            self.counts[key] = self.counts.get(key, 0) + 1
            self.buffer.append(json.dumps(record))

    def _flush(self) -> None:
        with self.lock:
            lines, self.buffer = self.buffer, []
        if not lines:
            return
        self.chunks += 1
        self.logged += len(lines)
        temporary = self.logs / f".requests-{self.chunks:05d}.tmp"
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
        temporary.replace(self.logs / f"requests-{self.chunks:05d}.jsonl")

    def answered(self, track: str, version: str) -> tuple[int, int]:
        """(requests, non-2xx answers) of the pods of ``track`` serving ``version``, so far."""
        with self.lock:
            mine = {status: count for (t, v, status), count in self.counts.items() if (t, v) == (track, version)}
        return sum(mine.values()), sum(count for status, count in mine.items() if not 200 <= status < 300)


# --- the loop ----------------------------------------------------------------------------------------------


@dataclass
class LoopResult:
    """What happened, for the tests: the remote, the MLflow store, what each hop measured."""

    unhappy: bool
    remote: Path
    initial: str
    tracking_uri: str
    hops: list[str]
    wall_seconds: float
    sensor_workflow: dict[str, Any]
    tune_runs: dict[str, TaskRun]
    analysis_exit_codes: list[int]
    drift_before: float
    drift_after: float
    alert_after: str
    """The drift alert's state in Prometheus at the end (``firing``, ``pending`` or ``inactive``)."""
    candidate_answers: tuple[int, int]
    """(requests, non-2xx answers) of the candidate's pods."""
    deliveries: int
    """Alertmanager's deliveries to the Argo Events webhook."""
    final: EnvironmentState
    """The environment's rollout state at the head of the branch."""

    def commits(self) -> list[str]:
        return commits_since(self.remote, self.initial)

    def message(self, commit: str) -> str:
        return commit_message(self.remote, commit)


def _drift_alert_state(prometheus_url: str) -> str:
    states = [alert["state"] for alert in prometheus_alerts(prometheus_url)
              if alert["labels"].get("alertname") == conventions.ALERT_DRIFT]
    return states[0] if states else "inactive"


def _drift_score(prometheus_url: str) -> float | None:
    found = query(prometheus_url, f'llmops_drift_score{{environment="{ENV}",feature="prompt_length"}}')
    return float(found[0]["value"][1]) if found else None


def _local_alertmanager(configuration: dict[str, Any], hooks_url: str) -> dict[str, Any]:
    """The rendered AlertmanagerConfig with its webhooks pointed at this driver's receiver and the first route's
    timings in seconds rather than minutes (what test_monitoring_e2e.local_configuration does)."""
    changed = json.loads(json.dumps(configuration))
    changed["route"]["routes"][0].update({"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"})
    for receiver in changed["receivers"]:
        if receiver["name"].endswith("/" + conventions.EVENTS_RECEIVER):
            receiver["webhook_configs"][0]["url"] = f"{hooks_url}/events"
        elif receiver["name"].endswith("/" + conventions.NOTIFY_RECEIVER):
            receiver["webhook_configs"] = [{"url": f"{hooks_url}/notify", "send_resolved": False}]
    return changed


def run_loop(work: Path, unhappy: bool = False,
             out: Callable[[str], None] = lambda line: print(line, flush=True)) -> LoopResult:
    """Run the loop in ``work`` (an empty or missing folder; everything it writes stays there). Raises LoopError
    when a hop does not happen."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from llmops_compiler.runtime._common import ARTIFACT_ROOT_ENV, quiet_libraries

    hop = Hops(out)
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        raise LoopError(f"{work} is not empty")
    buckets, remote = work / "buckets", work / "remote.git"
    write_data(buckets)
    quiet_libraries()
    (work / "mlflow" / "artifacts").mkdir(parents=True)
    tracking_uri = f"sqlite:///{work / 'mlflow' / 'mlflow.db'}"
    SqlAlchemyStore(tracking_uri, str(work / "mlflow" / "artifacts"))
    environment = {  # what the cluster and the runtime image give every process
        "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": tracking_uri,
        ARTIFACT_ROOT_ENV: str(work / "mlflow" / "artifacts"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false", "MLFLOW_ENABLE_ASYNC_LOGGING": "false", "GIT_CONFIG_NOSYSTEM": "1",
    }
    argo = Argo(buckets, work / "workflows", environment, {"MLFLOW_TRACKING_URI": tracking_uri})
    hop(f"tiny model and data in the object store {buckets}; MLflow {tracking_uri}")

    targets = work / "pods.json"
    (work / "rules.yaml").write_text("groups: []\n", encoding="utf-8")
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(webhook_receiver(lifetime=LIFETIME_S))
        gateway = stack.enter_context(pushgateway(lifetime=LIFETIME_S))
        manager = stack.enter_context(alertmanager(
            "route: {receiver: none}\nreceivers: [{name: none}]\n", lifetime=LIFETIME_S))
        cluster_prometheus = stack.enter_context(prometheus(
            [work / "rules.yaml"], [gateway.url], manager.url, lifetime=LIFETIME_S, file_sd=[targets]))
        hop(f"prometheus {cluster_prometheus.url} (scrapes pushgateway {gateway.url} and the pods, every 1s), "
            f"alertmanager {manager.url}, webhook receiver {receiver.url}")

        # The GitOps repository: specs written by people, compiled, committed, pushed to a bare remote.
        project = work / "project"
        specs = project / "specs"
        for relative, text in {"project.yaml": project_yaml(remote, cluster_prometheus.url, gateway.url),
                               "models/support.yaml": MODEL_YAML, "monitoring/support.yaml": MONITOR_YAML,
                               "rollouts/support.yaml": POLICY_YAML}.items():
            (specs / relative).parent.mkdir(parents=True, exist_ok=True)
            (specs / relative).write_text(text, encoding="utf-8")
        rollout.write_environment_state(specs / "rollouts" / "support.state.yaml", POLICY, ENV,
                                        EnvironmentState(stable=1), header_from=specs / "rollouts" / "support.yaml")
        compiled = api.compile_project(specs, project / "generated")
        initial = make_remote(project, remote)
        hop(f"llmops compile: {len(compiled.build.resources)} resources in generated/{ENV} "
            f"→ commit {initial[:8]} 'initial' pushed to {remote}")

        # v1: registered before the loop, stable in the initial state.
        objects = read_manifests(project / "generated")
        tune_template = objects[("WorkflowTemplate", f"tune-{MODEL}")]
        register_args = next(template for template in tune_template["spec"]["templates"]
                             if template["name"] == "register")["container"]["args"]
        spec_hash = register_args[register_args.index("--spec-hash") + 1]
        metrics = work / "bootstrap" / "metrics.json"  # v1 was not evaluated by this loop: no metrics
        metrics.parent.mkdir(parents=True)
        metrics.write_text("{}\n", encoding="utf-8")
        registered = subprocess.run(
            [sys.executable, "-m", "llmops_compiler.runtime.register", "--model-dir",
             str(object_path(buckets, BASE_MODEL)), "--registered-model", MODEL, "--metrics", str(metrics),
             "--spec-hash", spec_hash, "--git-commit", initial, "--dataset-uri", V1_DATASET,
             "--alias", conventions.environment_alias("candidate", ENV),
             "--stable-alias", conventions.environment_alias("stable", ENV),
             "--mlflow-tracking-uri", tracking_uri, "--mlflow-experiment", MODEL],
            env={**os.environ, **environment}, capture_output=True, text=True, timeout=300, check=False)
        if registered.returncode != 0 or registered.stdout.strip() != "1":
            raise LoopError(f"registering v1 failed: {_tail(registered.stderr)}")
        hop(f"register (before the loop) → {MODEL} v1 = the base model, trained on {V1_DATASET}")

        cluster = Cluster(remote, work, argo, targets, unhappy)
        stack.callback(cluster.stop)
        synced = cluster.sync()
        objects = synced.objects
        hop(f"argocd sync {synced.commit[:8]}: llmops check ok; {_pods(synced)}; traffic {cluster.shares()}")
        rules_file(objects[("PrometheusRule", f"monitor-{MODEL}")], work / "rules.yaml")
        reload(cluster_prometheus)
        configuration = _local_alertmanager(alertmanager_configuration(
            objects[("AlertmanagerConfig", f"monitor-{MODEL}")], SECRETS), receiver.url)
        assert manager.config_path is not None
        manager.config_path.write_text(yaml.safe_dump(configuration), encoding="utf-8")
        reload(manager)
        loaded = wait_for(lambda: sorted({rule["name"] for group in json.loads(urllib.request.urlopen(
            f"{cluster_prometheus.url}/api/v1/rules", timeout=10).read())["data"]["groups"]
            for rule in group["rules"]}), timeout=20, message="the compiled rules loaded")
        hop(f"prometheus reloaded with the PrometheusRule ({', '.join(loaded)}); alertmanager reloaded with the "
            f"AlertmanagerConfig (llmops_action=retrain → the Argo Events webhook, with the Bearer token)")
        analyse(argo, cluster, hop)  # no candidate: no change, but MLflow's aliases follow the state

        load = LoadGenerator(cluster, object_path(buckets, LOGS))
        load.start()
        stack.callback(load.stop)
        wait_for(lambda: load.logged >= 120, timeout=120, interval=0.5, message="120 logged requests")
        hop(f"load generator: {RATE:g} requests/s of long prompts; {load.logged} requests logged under {LOGS}")

        # Drift → alert → Alertmanager → Sensor.
        drift_before = run_drift(argo, cluster, cluster_prometheus, hop)
        alert = wait_for(lambda: next((item for item in prometheus_alerts(cluster_prometheus.url)
                                       if item["labels"].get("alertname") == conventions.ALERT_DRIFT
                                       and item["state"] == "firing"), None), timeout=30,
                         message=f"{conventions.ALERT_DRIFT} firing")
        hop(f"alert {conventions.ALERT_DRIFT} firing (psi {float(alert['value']):.2f} > {THRESHOLD:g}; "
            f"llmops_action={alert['labels']['llmops_action']}, severity={alert['labels']['severity']})")
        [delivery] = wait_for(lambda: receiver.at("/events")[:1], timeout=30,
                              message="a delivery to the Argo Events webhook")
        if receiver.authorizations("/events") != {f"Bearer {WEBHOOK_TOKEN}"}:
            raise LoopError(f"Alertmanager did not send the webhook token: {receiver.authorizations('/events')}")
        hop(f"alertmanager → Argo Events webhook: {delivery['status']} "
            f"{', '.join(alert['labels']['alertname'] for alert in delivery['alerts'])} "
            f"(Authorization: Bearer token of the EventSource's authSecret)")
        event_source = objects[("EventSource", f"monitor-{MODEL}")]
        [event_name] = event_source["spec"]["webhook"]
        workflows = fire_sensor(objects[("Sensor", f"monitor-{MODEL}")], event_source["metadata"]["name"],
                                event_name, delivery)
        if len(workflows) != 1:
            raise LoopError(f"the Sensor created {len(workflows)} workflows from {delivery}")
        [workflow] = workflows
        parameters = workflow_parameters(workflow)
        template_name = workflow["spec"]["workflowTemplateRef"]["name"]
        hop(f"sensor → Workflow from {template_name} ({', '.join(f'{k}={v!r}' for k, v in parameters.items())})")

        # The retrain, as Argo would run it.
        tune_runs = argo.run(objects[("WorkflowTemplate", template_name)]["spec"], parameters, "tune",
                             lambda run: hop(_describe_task(run)))
        proposed = tune_runs.get("propose")
        if proposed is None or proposed.returncode != 0:
            failed = next((run for run in tune_runs.values() if run.returncode not in (0, None)), None)
            raise LoopError(f"the retrain did not propose a candidate: "
                            f"{failed.name + ': ' + _tail(failed.stderr) if failed else tune_runs}")
        synced = cluster.sync()
        hop(f"argocd sync {synced.commit[:8]}: llmops check ok; {_pods(synced)}; traffic {cluster.shares()}")

        # The rollout: the analysis CronWorkflow's command once each step's wait is over.
        candidate = _state(cluster).candidate
        exit_codes = walk_rollout(argo, cluster, hop)
        answers = load.answered(conventions.TRACK_CANDIDATE, str(candidate))
        hop(f"load generator: candidate v{candidate} answered {answers[0]} requests, {answers[1]} of them not 2xx")
        state = _state(cluster)
        aliases = _aliases(tracking_uri)
        hop(f"state {state.status} (stable v{state.stable}); MLflow aliases "
            f"{', '.join(f'{alias}=v{version}' for alias, version in sorted(aliases.items()))}")

        # The drift check again: its reference follows the stable version.
        drift_after = run_drift(argo, cluster, cluster_prometheus, hop)
        if state.status == "promoted":
            wait_for(lambda: _drift_alert_state(cluster_prometheus.url) == "inactive", timeout=30,
                     message=f"{conventions.ALERT_DRIFT} resolved")
            hop(f"drift alert resolved (psi {drift_after:.3f} <= {THRESHOLD:g})")
        else:
            time.sleep(3)  # two evaluations: an alert that would resolve has resolved
            hop(f"drift alert still {_drift_alert_state(cluster_prometheus.url)} "
                f"(psi {drift_after:.2f}: stable is still v{state.stable})")
        alert_after = _drift_alert_state(cluster_prometheus.url)
        load.stop()
        result = LoopResult(unhappy, remote, initial, tracking_uri, hop.lines, time.monotonic() - hop.started,
                            workflow, tune_runs, exit_codes, drift_before, drift_after, alert_after, answers,
                            len(receiver.at("/events")), state)
    hop(f"loop done in {result.wall_seconds:.0f}s; servers and pods stopped")
    result.hops = hop.lines
    return result


def _pods(synced: Synced) -> str:
    words = [f"started {pod.name} (v{pod.version}{', fault injected' if pod.fault else ''})" for pod in synced.started]
    words += [f"stopped {pod.name} (v{pod.version})" for pod in synced.stopped]
    return "; ".join(words) or "pods unchanged"


def _state(cluster: Cluster) -> EnvironmentState:
    assert cluster.synced is not None
    path = cluster.synced.checkout / "specs" / "rollouts" / "support.state.yaml"
    return rollout.read_state_file(path, POLICY).environments.get(ENV, EnvironmentState())


def _aliases(tracking_uri: str) -> dict[str, int]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return {alias: int(version) for alias, version in client.get_registered_model(MODEL).aliases.items()}


def _describe_task(run: TaskRun) -> str:
    """One line per task of the tune workflow, with what it measured or decided."""
    if run.returncode is None:
        return f"{run.name}: skipped (guard)"
    if run.returncode != 0:
        return f"{run.name}: exit {run.returncode}: {_tail(run.stderr, 400)}"
    took = f"[{run.seconds:.1f}s]"
    if run.name == "guard":
        return f"guard → proceed={run.parameters['proceed']} ({run.stdout.strip().splitlines()[-1]}) {took}"
    if run.name == "tune":
        metrics = json.loads(run.artifacts["tune-metrics"].read_text())
        merged = "model" in run.artifacts and (run.artifacts["model"] / "config.json").is_file()
        return (f"tune → {metrics['steps']} LoRA steps on {metrics['examples']} examples, loss "
                f"{metrics['first_loss']:.2f} → {metrics['last_loss']:.2f}"
                f"{'; adapter merged into the base for serving' if merged else ''} {took}")
    if run.name == "evaluate":
        evaluated = json.loads(run.artifacts["metrics"].read_text())
        values = ", ".join(f"{name} {value:.3g}" for name, value in sorted(evaluated["metrics"].items()))
        return f"evaluate → {values}; gates {'passed' if evaluated['passed'] else 'FAILED'} {took}"
    if run.name == "register":
        alias = conventions.environment_alias("candidate", ENV)
        return f"register → {MODEL} v{run.parameters['version']} under {alias} {took}"
    if run.name == "propose":
        return f"propose → {run.stdout.strip()} {took}"
    return f"{run.name} → {run.stdout.strip()[-200:]} {took}"


def run_drift(argo: Argo, cluster: Cluster, server: Server, hop: Hops) -> float:
    """The drift CronWorkflow's tasks (the reference the stable alias names, then the check); the score as
    Prometheus scraped it from the Pushgateway."""
    assert cluster.synced is not None
    cron = cluster.synced.objects[("CronWorkflow", f"drift-{MODEL}-prompt-length")]
    pushed_before = query(server.url, 'max(push_time_seconds{job="llmops-drift"})')
    since = float(pushed_before[0]["value"][1]) if pushed_before else 0.0
    runs = argo.run(cron["spec"]["workflowSpec"], {}, f"drift-{int(time.time())}")
    failed = [run for run in runs.values() if run.returncode != 0]
    if failed:
        raise LoopError(f"drift task {failed[0].name} failed: {_tail(failed[0].stderr)}")
    reference = runs["reference"].parameters["uri"]
    wait_for(lambda: float(query(server.url, 'max(push_time_seconds{job="llmops-drift"})')[0]["value"][1]) > since,
             timeout=20, message="the pushed score scraped")
    score = _drift_score(server.url)
    assert score is not None
    current = sum(1 for path in object_path(argo.buckets, LOGS).glob("*.jsonl") for _ in path.open())
    hop(f"drift → psi {score:.3f} on prompt_length: {current} logged requests against {reference} (the training "
        f"data of {conventions.environment_alias('stable', ENV)}) [{sum(run.seconds for run in runs.values()):.1f}s]")
    return score


def analyse(argo: Argo, cluster: Cluster, hop: Hops) -> TaskRun:
    """One run of the analysis CronWorkflow (``runtime promote``) as compiled in the synced commit."""
    assert cluster.synced is not None
    cron = cluster.synced.objects[("CronWorkflow", f"analyze-{POLICY}")]
    runs = argo.run(cron["spec"]["workflowSpec"], {}, f"analyze-{int(time.time())}")
    [run] = runs.values()
    if run.returncode not in (0, 1):
        raise LoopError(f"promote failed ({run.returncode}): {_tail(run.stderr)}")
    aliases = " ".join(line for line in run.stderr.splitlines() if "MLflow aliases" in line)
    hop(f"promote (analysis, exit {run.returncode}) → {run.stdout.strip()}"
        f"{'; ' + aliases.split(': ', 2)[-1] if aliases else ''} [{run.seconds:.1f}s]")
    return run


def walk_rollout(argo: Argo, cluster: Cluster, hop: Hops, deadline_s: float = 420.0) -> list[int]:
    """Run the analysis whenever the current step's wait is over, sync after every commit, until the candidate is
    promoted or rolled back; the exit codes of the runs."""
    graph, _ = api.resolve_specs(_checkout(cluster) / "specs")
    assert graph is not None
    policy = next(view for view in graph.environments if view.name == ENV).get("RolloutPolicy", POLICY)
    assert policy is not None
    codes: list[int] = []
    started, last_run = time.monotonic(), 0.0
    while (state := _state(cluster)).status in rollout.IN_FLIGHT:
        if time.monotonic() - started > deadline_s:
            raise LoopError(f"the rollout did not finish within {deadline_s:g}s: {state}")
        ready = rollout.ready_at(policy.spec, state)
        wait = 0.0 if ready is None else (ready - datetime.now(UTC)).total_seconds() + SCRAPE_SLACK_S
        wait = max(wait, MIN_ANALYSIS_GAP_S - (time.monotonic() - last_run))
        if wait > 0:
            time.sleep(wait)
        head = cluster.head()
        run = analyse(argo, cluster, hop)
        last_run = time.monotonic()
        codes.append(run.returncode or 0)
        if cluster.head() != head:
            commit = cluster.head()
            body = commit_message(cluster.remote, commit).strip().splitlines()
            reason = _state_after(cluster, commit)
            hop(f"  commit {commit[:8]} '{body[0]}'" + (f": {reason}" if reason and reason not in body[0] else ""))
            synced = cluster.sync()
            hop(f"argocd sync {synced.commit[:8]}: llmops check ok; {_pods(synced)}; traffic {cluster.shares()}")
    return codes


def _checkout(cluster: Cluster) -> Path:
    assert cluster.synced is not None
    return cluster.synced.checkout


def _state_after(cluster: Cluster, commit: str) -> str:
    text = git("--git-dir", str(cluster.remote), "show", f"{commit}:specs/rollouts/support.state.yaml")
    document = yaml.safe_load(text)
    transition = document["spec"]["environments"][ENV].get("lastTransition") or {}
    return str(transition.get("reason", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--unhappy", action="store_true", help="the candidate answers errors: expect a rollback")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it (default: a temp folder)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llmops-loop-"))) / "loop"
        try:
            result = run_loop(work, args.unhappy)
        except LoopError as exc:
            print(f"loop failed: {exc}", file=sys.stderr)
            return 1
    expected = ("rolledBack", "firing") if args.unhappy else ("promoted", "inactive")
    return 0 if (result.final.status, result.alert_after) == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
