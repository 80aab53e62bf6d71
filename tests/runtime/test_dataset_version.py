"""A Model that trains from a Dataset trains from its latest version: the compiled curation writes a
content-addressed version to object storage (moto's S3 server on loopback), and the compiled tune workflow's
``dataset-<name>`` step, run with its compiled arguments, resolves the train and eval URIs of that version;
the tune and register steps take them from that step's outputs, so the registered version records them.

Substituted, as Argo would do it: ``{{workflow.parameters.*}}`` by the workflow's defaults, ``$(VAR)`` by the
container's environment (here the sqlite MLflow store) and the step's output files (``/work/out/...``) by
paths in a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kb_support import S3Server, moto_s3
from monitoring_support import build, one, project_yaml, write_specs

REPO = Path(__file__).resolve().parents[2]
ENV = "dev"

DATASET = """\
apiVersion: llmops.dev/v1alpha1
kind: Dataset
metadata:
  name: feedback
spec:
  sources:
    - {name: production, logs: "s3://logs/chat/", window: 1d}
  fields: {prompt: prompt, response: response, rating: feedback.rating}
  curation:
    keep: {minRating: 4}
    evalFraction: 0.25
    seed: 3
  output: s3://datasets/feedback/
"""

MODEL = """\
apiVersion: llmops.dev/v1alpha1
kind: Model
metadata:
  name: chat
spec:
  baseModel: s3://models/base/chat
  registeredModel: chat
  tuning:
    method: lora
    lora: {r: 8, alpha: 16}
    dataset: feedback
    timeout: 2h
  evaluation:
    dataset: feedback
    metrics: [token_f1]
    gates:
      - {metric: token_f1, min: 0.1}
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_s3(lifetime=300) as server:
        client = server.client()
        for bucket in ("logs", "datasets"):
            client.create_bucket(Bucket=bucket)
        yield server


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("dataset-project")
    specs = write_specs(root, {"project.yaml": project_yaml([(ENV, "llm-dev")]), "models/chat.yaml": MODEL,
                               "datasets/feedback.yaml": DATASET})  # fmt: skip
    resources = build(specs)
    curate = one(resources, "WorkflowTemplate", ENV, "curate-feedback").body["spec"]["templates"]
    tune = one(resources, "WorkflowTemplate", ENV, "tune-chat").body["spec"]
    return {"curate": next(t["container"] for t in curate if "container" in t), "tune": tune}


def records(now: datetime, count: int, tag: str) -> str:
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return "".join(json.dumps({"timestamp": stamp, "prompt": f"{tag} question {i} about plan {i * 7}?",
                               "response": f"{tag} answer {i}: plan {i * 7} costs {i} euros.",
                               "feedback": {"rating": 5 if i % 3 else 2}}) + "\n"
                   for i in range(count))  # fmt: skip


def run(container: dict[str, Any], args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    proc = subprocess.run([sys.executable, *container["command"][1:], *args], capture_output=True, text=True,
                          timeout=180, env=full, cwd=REPO)  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def substitute(args: list[str], values: dict[str, str]) -> list[str]:
    out = []
    for arg in args:
        for key, value in values.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


def test_tune_trains_from_the_latest_curated_version(
    compiled: dict[str, Any], s3: S3Server, mlflow_uri: str, tmp_path: Path
) -> None:
    env = {"AWS_ENDPOINT_URL": s3.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_TRACKING_URI": mlflow_uri}  # fmt: skip
    client = s3.client()
    now = datetime.now(UTC)
    curate_args = substitute([str(a) for a in compiled["curate"]["args"]], {"$(MLFLOW_TRACKING_URI)": mlflow_uri})

    dag = next(t for t in compiled["tune"]["templates"] if "dag" in t)["dag"]["tasks"]
    resolver = next(t for t in compiled["tune"]["templates"] if t["name"] == "dataset-feedback")
    defaults = {f"{{{{workflow.parameters.{p['name']}}}}}": str(p.get("value", ""))
                for p in compiled["tune"]["arguments"]["parameters"]}  # fmt: skip
    outputs = {p["name"]: p["valueFrom"]["path"] for p in resolver["outputs"]["parameters"]}
    local = {path: str(tmp_path / Path(path).name) for path in outputs.values()}
    resolver_args = substitute([str(a) for a in resolver["container"]["args"]], {**defaults, **local})

    def resolve() -> dict[str, str]:
        proc = run(resolver["container"], resolver_args, env)
        assert proc.returncode == 0, proc.stderr
        return {name: Path(local[path]).read_text() for name, path in outputs.items()}

    # before any curation the step says what is missing, and fails as bad input (exit 2)
    proc = run(resolver["container"], resolver_args, env)
    assert proc.returncode == 2 and "has the Dataset been curated yet?" in proc.stderr, proc.stderr

    client.put_object(Bucket="logs", Key="chat/part-1.jsonl", Body=records(now, 12, "first").encode())
    first = run(compiled["curate"], curate_args, env)
    assert first.returncode == 0, first.stderr
    first_uri = first.stdout.strip().splitlines()[-1]
    resolved = resolve()
    assert resolved["train-uri"] == first_uri + "train.jsonl" and resolved["eval-uri"] == first_uri + "eval.jsonl"
    train = client.get_object(Bucket="datasets", Key=resolved["train-uri"].removeprefix("s3://datasets/"))
    kept = train["Body"].read().decode().splitlines()
    assert kept and all("first" in line for line in kept)

    # new feedback arrives: the next curation is a new content address, and tune follows it
    client.put_object(Bucket="logs", Key="chat/part-2.jsonl", Body=records(now, 6, "second").encode())
    second = run(compiled["curate"], curate_args, env)
    assert second.returncode == 0, second.stderr
    second_uri = second.stdout.strip().splitlines()[-1]
    assert second_uri != first_uri and second_uri.startswith("s3://datasets/feedback/")
    assert resolve()["train-uri"] == second_uri + "train.jsonl"

    # the DAG feeds the resolved URIs to tune, evaluate and register (which records it on the model version)
    def argument(task: str, name: str) -> str:
        [value] = [p["value"] for t in dag if t["name"] == task for p in t["arguments"]["parameters"]
                   if p["name"] == name]  # fmt: skip
        return str(value)

    assert argument("tune", "dataset-uri") == "{{tasks.dataset-feedback.outputs.parameters.train-uri}}"
    assert argument("register", "dataset-uri") == "{{tasks.dataset-feedback.outputs.parameters.train-uri}}"
    assert "{{tasks.dataset-feedback.outputs.parameters.eval-uri}}" in json.dumps(
        [t for t in dag if t["name"] == "evaluate"])


@pytest.mark.parametrize(("manifest", "message"), [
    ("[1, 2]", "is not a JSON object"),
    ('{"uri": "", "hash": 5}', "`hash` is not `sha256:` and 64 hex digits"),
    ('{"uri": "s3://elsewhere/evil/", "hash": "sha256:' + "a" * 64 + '"}', "not the version folder"),
    ('{"uri": "OUT/' + "b" * 64 + '/", "hash": "sha256:' + "a" * 64 + '"}', "not the version folder"),
    ('{"name": "other", "uri": "OUT/' + "a" * 64 + '/", "hash": "sha256:' + "a" * 64 + '"}',
     'belongs to Dataset "other"'),
])
def test_a_manifest_is_checked_before_a_run_trusts_it(manifest: str, message: str, tmp_path: Path) -> None:
    """A manifest a person or a hostile writer edited cannot send a retrain to other data."""
    output = tmp_path / "feedback"
    (output / "latest").mkdir(parents=True)
    (output / "latest/manifest.json").write_text(manifest.replace("OUT", str(output)))
    args = ["--dataset-uri", "dataset://feedback", "--output", str(output), "--train-uri-out", str(tmp_path / "t")]
    proc = run({"command": ["python", "-m", "llmops_compiler.runtime.dataset_version"]}, args, {})
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and not (tmp_path / "t").exists()


def test_a_good_manifest_and_bad_references(tmp_path: Path) -> None:
    output = tmp_path / "feedback"
    (output / "latest").mkdir(parents=True)
    digest = "c" * 64
    (output / "latest/manifest.json").write_text(json.dumps(
        {"name": "feedback", "uri": f"{output}/{digest}/", "hash": f"sha256:{digest}"}))
    step = {"command": ["python", "-m", "llmops_compiler.runtime.dataset_version"]}
    out = ["--output", str(output), "--train-uri-out", str(tmp_path / "t"), "--hash-out", str(tmp_path / "h")]
    assert run(step, ["--dataset-uri", "dataset://feedback", *out], {}).returncode == 0
    assert (tmp_path / "t").read_text().strip() == f"{output}/{digest}/train.jsonl"
    assert (tmp_path / "h").read_text().strip() == f"sha256:{digest}"
    for reference, message in (("", "--dataset-uri is empty"), ("dataset://Feed_back", "is a DNS label")):
        proc = run(step, ["--dataset-uri", reference, *out], {})
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
