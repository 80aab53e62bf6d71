"""register: model versions in a sqlite MLflow registry, tags, alias, idempotency, refusal of 'stable'."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from llmops_compiler.runtime import register as reg
from llmops_compiler.runtime.register import RegisterConfig, register


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 8}))
    (d / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    return d


@pytest.fixture
def metrics_file(tmp_path: Path) -> Path:
    p = tmp_path / "eval.json"
    p.write_text(json.dumps({"metrics": {"exact_match": 0.5, "perplexity": 12.25}, "gates": [], "passed": True}))
    return p


def _argv(name: str, model_dir: Path, metrics: Path, uri: str, *extra: str) -> list[str]:
    return [
        "--model-dir", str(model_dir),
        "--registered-model", name,
        "--metrics", str(metrics),
        "--spec-hash", "spec123",
        "--git-commit", "0123abcd",
        "--dataset-uri", "s3://data/train.jsonl",
        "--mlflow-tracking-uri", uri,
        "--mlflow-experiment", "test-register",
        *extra,
    ]  # fmt: skip


def test_register_twice_creates_one_version(
    model_dir: Path, metrics_file: Path, mlflow_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.create_experiment(f"reg-{uuid.uuid4().hex[:8]}", artifact_location=str(tmp_path / "art"))
    run_id = client.create_run(exp).info.run_id
    (tmp_path / "run_id").write_text(run_id)
    name = f"model-{uuid.uuid4().hex[:8]}"
    argv = _argv(name, model_dir, metrics_file, mlflow_uri, "--run-id-file", str(tmp_path / "run_id"))

    assert reg.main([*argv, "--version-out", str(tmp_path / "v1")]) == 0
    assert capsys.readouterr().out.strip() == "1"
    assert reg.main([*argv, "--version-out", str(tmp_path / "v2")]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "1"
    assert "reused existing" in captured.err
    assert (tmp_path / "v1").read_text() == (tmp_path / "v2").read_text() == "1"

    versions = client.search_model_versions(f"name = '{name}'")
    assert len(versions) == 1
    mv = client.get_model_version(name, "1")
    assert mv.run_id == run_id
    assert mv.tags["llmops.spec_hash"] == "spec123"
    assert mv.tags["llmops.git_commit"] == "0123abcd"
    assert mv.tags["llmops.dataset_uri"] == "s3://data/train.jsonl"
    assert float(mv.tags["metric.exact_match"]) == 0.5
    assert float(mv.tags["metric.perplexity"]) == 12.25
    assert len(mv.tags["llmops.model_digest"]) == 64
    assert str(client.get_model_version_by_alias(name, "candidate").version) == "1"
    artifact_path = "registered/" + mv.tags["llmops.model_digest"][:16]
    assert mv.source.endswith("/" + artifact_path)
    logged = sorted(Path(f.path).name for f in client.list_artifacts(run_id, artifact_path))
    assert logged == ["adapter_config.json", "adapter_model.safetensors"]


def test_other_files_from_the_same_run_are_a_new_version(
    model_dir: Path, metrics_file: Path, mlflow_uri: str, tmp_path: Path
) -> None:
    """A retried step (same run, same files) reuses its version; other files are registered, never dropped."""
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.create_experiment(f"reg-{uuid.uuid4().hex[:8]}", artifact_location=str(tmp_path / "art"))
    (tmp_path / "run_id").write_text(client.create_run(exp).info.run_id)
    name = f"model-{uuid.uuid4().hex[:8]}"
    argv = _argv(name, model_dir, metrics_file, mlflow_uri, "--run-id-file", str(tmp_path / "run_id"))
    assert reg.main(argv) == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16}))
    assert reg.main([*argv[:1], str(other), *argv[2:]]) == 0
    versions = client.search_model_versions(f"name = '{name}'")
    digests = {str(mv.version): mv.tags["llmops.model_digest"] for mv in versions}
    assert digests == {"1": reg.dir_digest(model_dir), "2": reg.dir_digest(other)}
    assert str(client.get_model_version_by_alias(name, "candidate").version) == "2"


def test_register_without_run_is_idempotent_and_new_spec_moves_alias(
    model_dir: Path, metrics_file: Path, mlflow_uri: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    name = f"model-{uuid.uuid4().hex[:8]}"
    cfg = RegisterConfig(
        model_dir=str(model_dir),
        registered_model=name,
        metrics=str(metrics_file),
        spec_hash="specA",
        git_commit="c1",
        dataset_uri="file:///data.jsonl",
        mlflow_tracking_uri=mlflow_uri,
        run_id_file=str(tmp_path / "absent-run-id"),
        mlflow_experiment="test-register",
    )
    first = register(cfg)
    again = register(cfg)
    assert (first.version, first.created) == ("1", True)
    assert (again.version, again.created) == ("1", False)
    run = client.get_run(first.run_id)
    assert run.data.tags["llmops.step"] == "register"
    assert run.info.status == "FINISHED"

    cfg.spec_hash = "specB"
    second = register(cfg)
    assert (second.version, second.created) == ("2", True)
    assert len(client.search_model_versions(f"name = '{name}'")) == 2
    assert str(client.get_model_version_by_alias(name, "candidate").version) == "2"


def test_flat_metrics_file_and_ignored_non_numbers(model_dir: Path, mlflow_uri: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    metrics = tmp_path / "tune.json"
    metrics.write_text(json.dumps({"last_loss": 1.5, "losses": [3.0, 1.5], "method": "lora", "steps": 2}))
    name = f"model-{uuid.uuid4().hex[:8]}"
    assert reg.main(_argv(name, model_dir, metrics, mlflow_uri)) == 0
    tags = MlflowClient(mlflow_uri).get_model_version(name, "1").tags
    assert {k for k in tags if k.startswith("metric.")} == {"metric.last_loss", "metric.steps"}


@pytest.mark.parametrize("alias", ["stable", "Stable"])
def test_alias_stable_is_refused(
    alias: str,
    model_dir: Path,
    metrics_file: Path,
    mlflow_uri: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlflow import MlflowClient

    name = f"model-{uuid.uuid4().hex[:8]}"
    rc = reg.main(_argv(name, model_dir, metrics_file, mlflow_uri, "--alias", alias))
    err = capsys.readouterr().err
    assert rc == 2
    assert "rollout" in err and "Traceback" not in err
    assert MlflowClient(mlflow_uri).search_model_versions(f"name = '{name}'") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("missing-model", "--model-dir is not a directory"),
        ("bad-metrics", "is not valid JSON"),
        ("missing-metrics", "--metrics file not found"),
        ("unknown-run", "does not exist in the tracking store"),
        ("alias-latest", "invalid alias 'latest'"),
        ("not-a-model", "holds no model: neither config.json nor adapter_config.json"),
        ("nan-metric", "metric 'exact_match' is nan, not a finite number"),
        ("bad-name", "--registered-model \"o'brien\": use letters, digits"),
        ("version-out-dir", "is a directory"),
    ],
)
def test_bad_input_exits_2(
    change: str,
    expected: str,
    model_dir: Path,
    metrics_file: Path,
    mlflow_uri: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    extra: list[str] = []
    name = f"model-{uuid.uuid4().hex[:8]}"
    if change == "missing-model":
        model_dir = tmp_path / "nope"
    elif change == "bad-metrics":
        metrics_file.write_text("{not json")
    elif change == "missing-metrics":
        metrics_file = tmp_path / "nope.json"
    elif change == "alias-latest":
        extra = ["--alias", "latest"]
    elif change == "not-a-model":
        (model_dir / "adapter_config.json").unlink()
    elif change == "nan-metric":
        metrics_file.write_text('{"metrics": {"exact_match": NaN}}')
    elif change == "version-out-dir":
        extra = ["--version-out", str(tmp_path)]
    elif change == "bad-name":
        name = "o'brien"
    else:
        (tmp_path / "rid").write_text("0" * 32)
        extra = ["--run-id-file", str(tmp_path / "rid")]
    rc = reg.main(_argv(name, model_dir, metrics_file, mlflow_uri, *extra))
    err = capsys.readouterr().err
    assert rc == 2
    assert expected in err and err.startswith("register: error:")
    if change != "bad-name":  # nothing reaches the registry
        from mlflow import MlflowClient

        assert MlflowClient(mlflow_uri).search_model_versions(f"name = '{name}'") == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        # The Model's own stable alias is guarded, whatever it is called (and in any case) ...
        (
            ["--stable-alias", "production", "--alias", "Production"],
            "register: error: refusing to set alias 'Production': it is the stable alias "
            "(--stable-alias 'production'), and promotion to stable is the rollout's job; "
            "register sets the candidate alias",
        ),
        (
            ["--alias", "stable"],
            "register: error: refusing to set alias 'stable': it is the stable alias (--stable-alias 'stable'), "
            "and promotion to stable is the rollout's job; register sets the candidate alias",
        ),
        # ... and MLflow's reserved aliases (mlflow/utils/validation.py) are refused before any upload.
        (
            ["--alias", "LATEST"],
            "register: error: invalid alias 'LATEST': MLflow reserves 'latest' (in any case) for the newest version",
        ),
        (
            ["--alias", "V12"],
            "register: error: invalid alias 'V12': MLflow reserves v<number> aliases, which name a version",
        ),
        (
            ["--alias", "canary 1"],
            "register: error: invalid alias 'canary 1': MLflow aliases may only contain alphanumerics, "
            "underscores (_) and dashes (-)",
        ),
        (
            ["--alias", "c" * 256],
            f"register: error: invalid alias '{'c' * 256}': MLflow aliases are at most 255 characters long",
        ),
        (
            ["--stable-alias", "v1"],
            "register: error: invalid stable alias 'v1': MLflow reserves v<number> aliases, which name a version",
        ),
    ],
)
def test_stable_and_reserved_aliases_are_refused(
    extra: list[str],
    expected: str,
    model_dir: Path,
    metrics_file: Path,
    mlflow_uri: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlflow import MlflowClient

    name = f"model-{uuid.uuid4().hex[:8]}"
    rc = reg.main(_argv(name, model_dir, metrics_file, mlflow_uri, *extra))
    assert rc == 2
    assert capsys.readouterr().err.strip() == expected
    assert MlflowClient(mlflow_uri).search_model_versions(f"name = '{name}'") == []


def test_stable_alias_may_be_the_word_stable_for_another_model(
    model_dir: Path, metrics_file: Path, mlflow_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A Model whose stable alias is `production` may use `stable` as its candidate alias, and names that
    # merely start like reserved ones (`v1-rc`, `latest-rc`) are ordinary aliases for MLflow.
    from mlflow import MlflowClient

    name = f"model-{uuid.uuid4().hex[:8]}"
    for alias in ("stable", "v1-rc", "latest-rc"):
        argv = _argv(name, model_dir, metrics_file, mlflow_uri, "--stable-alias", "production", "--alias", alias)
        assert reg.main(argv) == 0, capsys.readouterr().err
        assert str(MlflowClient(mlflow_uri).get_model_version_by_alias(name, alias).version) == "1"
