"""tune -> evaluate -> register as separate processes chained through files, as the workflow runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest


def _step(python: str, step: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [python, "-m", f"llmops_compiler.runtime.{step}", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.slow
def test_tune_evaluate_register_chain(
    python: str,
    tiny_model_dir: Path,
    tiny_dataset: Path,
    mlflow_uri: str,
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    work = tmp_path / "workflow"  # each step's outputs are the next step's inputs, as Argo artifacts
    work.mkdir()
    adapter, run_id_file = work / "adapter", work / "run-id.txt"
    tune_metrics, eval_metrics, version_file = work / "tune.json", work / "eval.json", work / "version.txt"
    experiment, registered = "chain-test", "chain-model"

    tune = _step(
        python,
        "tune",
        [
            "--base-model", str(tiny_model_dir),
            "--dataset", str(tiny_dataset),
            "--method", "lora",
            "--r", "8",
            "--alpha", "16",
            "--dropout", "0.0",
            "--target-modules", "q_proj,v_proj",
            "--epochs", "100",
            "--learning-rate", "0.01",
            "--max-steps", "40",
            "--batch-size", "6",
            "--seed", "11",
            "--output", str(adapter),
            "--metrics-out", str(tune_metrics),
            "--mlflow-tracking-uri", mlflow_uri,
            "--mlflow-experiment", experiment,
            "--run-id-out", str(run_id_file),
        ],
        subprocess_env,
        work,
    )  # fmt: skip
    assert tune.returncode == 0, tune.stderr
    run_id = run_id_file.read_text().strip()
    assert len(run_id) == 32
    tm = json.loads(tune_metrics.read_text())
    assert tm["last_loss"] < tm["first_loss"]

    evaluate = _step(
        python,
        "evaluate",
        [
            "--base-model", str(tiny_model_dir),
            "--adapter", str(adapter),
            "--dataset", str(tiny_dataset),
            "--metrics", "exact_match,token_f1,rouge_l,perplexity",
            "--max-new-tokens", "4",
            "--gate", "perplexity<=1000",
            "--max-regression", "rouge_l=0.05",
            "--registered-model", registered,
            "--mlflow-tracking-uri", mlflow_uri,
            "--run-id-file", str(run_id_file),
            "--metrics-out", str(eval_metrics),
        ],
        subprocess_env,
        work,
    )  # fmt: skip
    assert evaluate.returncode == 0, evaluate.stderr
    em = json.loads(eval_metrics.read_text())
    assert em["passed"] is True
    assert set(em["metrics"]) == {"exact_match", "token_f1", "rouge_l", "perplexity"}
    assert "no stable version" in em["gates"][1]["message"]

    register_args = [
        "--model-dir", str(adapter),
        "--registered-model", registered,
        "--metrics", str(eval_metrics),
        "--spec-hash", "sha256:feedbeef",
        "--git-commit", "9f8e7d6",
        "--dataset-uri", tiny_dataset.as_uri(),
        "--alias", "candidate",
        "--mlflow-tracking-uri", mlflow_uri,
        "--run-id-file", str(run_id_file),
        "--version-out", str(version_file),
    ]  # fmt: skip
    register = _step(python, "register", register_args, subprocess_env, work)
    assert register.returncode == 0, register.stderr
    assert register.stdout.strip() == version_file.read_text() == "1"

    # Everything landed on the one tune run and the one model version.
    client = MlflowClient(mlflow_uri)
    run = client.get_run(run_id)
    assert run.data.params["r"] == "8" and run.data.params["target_modules"] == "q_proj,v_proj"
    assert len(client.get_metric_history(run_id, "loss")) == 40
    assert run.data.metrics["rouge_l"] == pytest.approx(em["metrics"]["rouge_l"])
    assert run.data.metrics["perplexity"] == pytest.approx(em["metrics"]["perplexity"])
    mv = client.get_model_version(registered, "1")
    assert mv.run_id == run_id
    assert mv.source == f"{run.info.artifact_uri}/registered/{mv.tags['llmops.model_digest'][:16]}"
    assert float(mv.tags["metric.perplexity"]) == pytest.approx(em["metrics"]["perplexity"])
    assert mv.tags["llmops.spec_hash"] == "sha256:feedbeef"
    assert str(client.get_model_version_by_alias(registered, "candidate").version) == "1"
    logged = {Path(f.path).name for f in client.list_artifacts(run_id, "model")}
    assert "adapter_config.json" in logged
    assert not (work / "mlruns").exists()  # artifacts went to the store's root, not the cwd

    # The workflow retried: the same register call reuses version 1.
    again = _step(python, "register", register_args, subprocess_env, work)
    assert again.returncode == 0 and again.stdout.strip() == "1"
    assert len(client.search_model_versions(f"name = '{registered}'")) == 1
