"""The whole loop of issue 10 on one machine (``tests/loop_demo.py`` drives it; see its docstring for what is
real and what the driver plays): drift → alert → Alertmanager → Sensor → retrain DAG → proposed rollout →
canary steps judged on live metrics → promotion and a resolved drift alert; or, when the candidate answers
errors, a rollback commit that says why. Each test asserts what the loop left behind: the commits on the remote
(and that `llmops check` passes on each), the state, MLflow's aliases, and what Prometheus said."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from loop_demo import ENV, MODEL, STEPS, THRESHOLD, TRAIN_DATASET, LoopResult, run_loop
from promote_support import checkout

from llmops_compiler import conventions

ROOT = Path(__file__).resolve().parents[1]
STARTED = f"{ENV}: {MODEL} canary of v2 started at {STEPS[0]}% (stable v1)"
PASSED = re.compile(r"analysis passed at (\d+)% "
                    r"\(error ratio 0 <= 0\.05, p95 latency [\d.]+s <= 2\.5s, (\d+) requests\)")


def subjects(result: LoopResult) -> list[str]:
    """Commit subjects after the initial commit, holds left out (too little traffic in a slow minute is a hold,
    not a failure of the loop)."""
    found = [result.message(commit).splitlines()[0] for commit in result.commits()]
    return [subject for subject in found if " holds at " not in subject]


def llmops_check_every_commit(result: LoopResult, tmp_path: Path) -> None:
    """`llmops check` (the CLI, in a checkout of each pushed commit) exits 0: the promote step committed the
    state together with what it compiles to."""
    for index, commit in enumerate([result.initial, *result.commits()]):
        tree = checkout(result.remote, commit, tmp_path / f"check-{index}")
        check = subprocess.run([sys.executable, "-m", "llmops_compiler.cli", "check"], cwd=tree,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                               timeout=120)
        assert check.returncode == 0, f"{commit[:8]}: {check.stdout}{check.stderr}"


def head_objects(result: LoopResult, tmp_path: Path) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    """The environment's state and its Deployments and VirtualService at the head of the branch."""
    tree = checkout(result.remote, result.commits()[-1], tmp_path / "head")
    state = yaml.safe_load((tree / "specs/rollouts/support.state.yaml").read_text())["spec"]["environments"][ENV]
    objects = {path.name: yaml.safe_load(path.read_text()) for path in (tree / "generated" / ENV).rglob("*.yaml")}
    return state, objects


def weights(objects: dict[str, dict[str, object]]) -> list[tuple[str, int]]:
    service = objects[f"{MODEL}.virtualservice.yaml"]
    return [(route["destination"]["subset"], route["weight"]) for route in service["spec"]["http"][0]["route"]]


def aliases(result: LoopResult) -> dict[str, int]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=result.tracking_uri, registry_uri=result.tracking_uri)
    return {alias: int(version) for alias, version in client.get_registered_model(MODEL).aliases.items()}


def check_the_retrain(result: LoopResult) -> None:
    """Drift fired the alert, Alertmanager delivered it, the Sensor started tune-support with the alert's words,
    and the DAG's tasks all ran and registered v2 on the current training data."""
    from mlflow import MlflowClient

    from llmops_compiler.runtime.register import dir_digest

    assert result.drift_before > THRESHOLD
    assert result.deliveries >= 1
    assert result.sensor_workflow["spec"]["workflowTemplateRef"] == {"name": f"tune-{MODEL}"}
    parameters = {item["name"]: item["value"] for item in result.sensor_workflow["spec"]["arguments"]["parameters"]}
    assert parameters == {conventions.TUNE_PARAM_REASON: f"Input drift on feature prompt_length of model {MODEL} "
                                                         f"in {ENV}",
                          conventions.TUNE_PARAM_ALERT: conventions.ALERT_DRIFT,
                          conventions.TUNE_PARAM_FEATURE: "prompt_length"}
    runs = result.tune_runs
    assert [(name, run.returncode) for name, run in runs.items()] == [
        ("guard", 0), ("tune", 0), ("evaluate", 0), ("register", 0), ("propose", 0)]
    assert runs["register"].parameters["version"] == "2"
    client = MlflowClient(tracking_uri=result.tracking_uri, registry_uri=result.tracking_uri)
    version = client.get_model_version(MODEL, "2")
    assert version.tags["llmops.dataset_uri"] == TRAIN_DATASET
    # What the serving pods fetched and loaded is the merged model, not the adapter.
    assert version.tags["llmops.model_digest"] == dir_digest(runs["tune"].artifacts["model"])


@pytest.mark.slow
def test_drift_retrains_and_the_canary_promotes_on_live_metrics(tmp_path: Path) -> None:
    result = run_loop(tmp_path / "loop", unhappy=False)
    check_the_retrain(result)

    assert subjects(result) == [STARTED, f"{ENV}: {MODEL} canary {STEPS[0]}% → {STEPS[1]}%",
                                f"{ENV}: {MODEL} v2 promoted (was v1)"]
    commits = [commit for commit in result.commits() if " holds at " not in result.message(commit).split("\n")[0]]
    judged = [PASSED.search(result.message(commit)) for commit in commits[1:]]
    assert [int(found[1]) for found in judged if found] == list(STEPS)
    assert all(int(found[2]) >= 30 for found in judged if found)  # the policy's minimumRequests
    assert result.analysis_exit_codes and set(result.analysis_exit_codes) == {0}
    requests, errors = result.candidate_answers
    assert requests >= 60 and errors == 0

    state, objects = head_objects(result, tmp_path)
    assert state["stable"] == 2 and state["status"] == "promoted" and "candidate" not in state
    assert weights(objects) == [("stable", 100)]
    assert f"{MODEL}-candidate.deployment.yaml" not in objects
    assert objects[f"{MODEL}-stable.deployment.yaml"]["spec"]["template"]["metadata"]["labels"]["version"] == "2"
    assert aliases(result) == {f"stable-{ENV}": 2, "stable": 2}

    # The drift check's reference followed the promotion: the same traffic no longer drifts.
    assert result.drift_after < THRESHOLD and result.alert_after == "inactive"
    llmops_check_every_commit(result, tmp_path)
    assert result.wall_seconds < 420


@pytest.mark.slow
def test_a_failing_candidate_is_rolled_back_with_its_reason(tmp_path: Path) -> None:
    result = run_loop(tmp_path / "loop", unhappy=True)
    check_the_retrain(result)

    started, rolled_back = subjects(result)
    assert started == STARTED
    found = re.fullmatch(rf"{ENV}: candidate v2 rolled back: error ratio (0\.\d+) > 0\.05, p95 latency [\d.]+s "
                         rf"<= 2\.5s, (\d+) requests \(1 failed analyses in a row at {STEPS[0]}%\)", rolled_back)
    assert found is not None, rolled_back
    assert 0.3 < float(found[1]) < 0.7  # the candidate's server fails half its requests
    assert result.analysis_exit_codes[-1] == 1  # the step failed: Argo marks the analysis run failed
    requests, errors = result.candidate_answers
    assert requests >= 30 and 0.3 < errors / requests < 0.7

    state, objects = head_objects(result, tmp_path)
    assert state["stable"] == 1 and state["status"] == "rolledBack" and "candidate" not in state
    assert state["lastTransition"]["reason"] == rolled_back.removeprefix(f"{ENV}: candidate v2 rolled back: ")
    assert weights(objects) == [("stable", 100)]
    assert f"{MODEL}-candidate.deployment.yaml" not in objects
    assert aliases(result) == {f"stable-{ENV}": 1, "stable": 1}

    # Stable is still v1, trained on the old data: the drift alert keeps firing.
    assert result.drift_after > THRESHOLD and result.alert_after == "firing"
    llmops_check_every_commit(result, tmp_path)
    assert result.wall_seconds < 300
