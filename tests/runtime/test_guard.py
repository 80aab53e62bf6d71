"""The retrain guard: a retrain is skipped while a candidate is in flight or within the cooldown, against a
real sqlite MLflow store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from llmops_compiler.runtime import guard


def register_versions(uri: str, name: str, aliases: dict[str, int]) -> None:
    """A registered model with as many versions as the highest alias needs, and those aliases set."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(name)
    for version in range(1, max(aliases.values()) + 1):
        client.create_model_version(name, f"file:///tmp/{name}/{version}")
    for alias, version in aliases.items():
        client.set_registered_model_alias(name, alias, str(version))


def test_retrain_proceeds_once_then_waits_for_the_cooldown(mlflow_uri: str) -> None:
    first = guard.decide(mlflow_uri, "guarded-a", "guarded-a", 3600, "stable", "candidate", now=1_000_000)
    assert first.proceed and first.reason == "proceeding"
    # A flapping alert 7.5 minutes later: skipped, with the reason of the first start in the log.
    again = guard.decide(mlflow_uri, "guarded-a", "guarded-a", 3600, "stable", "candidate", reason="flap",
                         now=1_000_000 + 450)
    assert not again.proceed
    assert "started 450s ago" in again.reason and "within the 3600s cooldown" in again.reason
    # After the cooldown, the next one runs; `force` runs whatever the cooldown says.
    assert guard.decide(mlflow_uri, "guarded-a", "guarded-a", 3600, "stable", "candidate", now=1_003_601).proceed
    assert guard.decide(mlflow_uri, "guarded-a", "guarded-a", 3600, "stable", "candidate", force=True,
                        now=1_003_602).proceed


def test_retrain_waits_while_a_candidate_is_rolled_out(mlflow_uri: str) -> None:
    compiled = guard.decide(mlflow_uri, "guarded-b", "guarded-b", 60, "stable", "candidate", in_flight_candidate="8")
    assert not compiled.proceed and "candidate v8 of guarded-b is being rolled out" in compiled.reason
    register_versions(mlflow_uri, "guarded-b", {"stable": 1, "candidate": 2})
    registry = guard.decide(mlflow_uri, "guarded-b", "guarded-b", 60, "stable", "candidate")
    assert not registry.proceed and "candidate v2 of guarded-b is in flight" in registry.reason
    # Promoted: the candidate alias names the stable version, nothing is in flight.
    register_versions(mlflow_uri, "guarded-c", {"stable": 2, "candidate": 2})
    assert guard.decide(mlflow_uri, "guarded-c", "guarded-c", 60, "stable", "candidate").proceed


def test_step_writes_proceed_and_fails_clearly_without_mlflow(
    python: str, subprocess_env: dict[str, str], tmp_path: Path, mlflow_uri: str
) -> None:
    out = tmp_path / "proceed"
    args = ["--registered-model", "guarded-d", "--experiment", "guarded-d", "--cooldown-seconds", "60",
            "--proceed-out", str(out)]
    ok = subprocess.run([python, "-m", "llmops_compiler.runtime.guard", *args, "--mlflow-tracking-uri", mlflow_uri],
                        env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert out.read_text() == "true" and "guard: proceeding" in ok.stdout
    # With the steps' own bound on MLflow's HTTP retries (about 7 s; MLflow alone retries for about 4 minutes).
    quiet = {key: value for key, value in subprocess_env.items() if not key.startswith("MLFLOW_HTTP_REQUEST_")}
    down = subprocess.run([python, "-m", "llmops_compiler.runtime.guard", *args, "--mlflow-tracking-uri",
                           "http://127.0.0.1:9"], env=quiet, capture_output=True, text=True, timeout=60)
    assert down.returncode == 3, down.stderr
    assert down.stderr.startswith("guard: error: MLflow at http://127.0.0.1:9 cannot be reached")
    assert "Traceback" not in down.stderr


@pytest.mark.parametrize("bad", [["--cooldown-seconds", "-1"], ["--force", "maybe"]])
def test_bad_arguments_exit_2(python: str, subprocess_env: dict[str, str], tmp_path: Path, bad: list[str]) -> None:
    args = ["--registered-model", "m", "--experiment", "m", "--cooldown-seconds", "60", "--mlflow-tracking-uri",
            "sqlite:///x.db", "--proceed-out", str(tmp_path / "p"), *bad]
    result = subprocess.run([python, "-m", "llmops_compiler.runtime.guard", *args], env=subprocess_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("guard: error:")
