"""fetch_model: a registered version downloaded from a sqlite MLflow, its digest checked, references refused."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from llmops_compiler.runtime import fetch_model as fm
from llmops_compiler.runtime import register as reg


def _model_dir(root: Path) -> Path:
    d = root / "model"
    (d / "nested").mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (d / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    (d / "nested" / "tokenizer.json").write_text("{}")
    return d


def _register(model_dir: Path, uri: str, tmp_path: Path) -> str:
    """Register ``model_dir`` with the real register step; returns the registered model's name."""
    name = f"fetch-{uuid.uuid4().hex[:8]}"
    (tmp_path / "metrics.json").write_text(json.dumps({"exact_match": 1.0}))
    argv = [
        "--model-dir", str(model_dir), "--registered-model", name, "--metrics", str(tmp_path / "metrics.json"),
        "--spec-hash", "s1", "--git-commit", "c1", "--dataset-uri", "s3://d/train.jsonl",
        "--mlflow-tracking-uri", uri, "--mlflow-experiment", "test-fetch",
    ]  # fmt: skip
    assert reg.main(argv) == 0
    return name


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_fetch_verifies_digest_and_writes_metadata(
    mlflow_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    model = _model_dir(tmp_path)
    name = _register(model, mlflow_uri, tmp_path)
    capsys.readouterr()
    out = tmp_path / "out"
    argv = ["--model-uri", f"models:/{name}/1", "--output", str(out), "--mlflow-tracking-uri", mlflow_uri]
    assert fm.main(argv) == 0

    fetched = _files(out)
    metadata = json.loads(fetched.pop(fm.METADATA_FILE))
    assert fetched == _files(model)  # exactly the registered files, nothing else (no staging folder left)
    mv = MlflowClient(mlflow_uri).get_model_version(name, "1")
    assert metadata == {
        "name": name,
        "version": "1",
        "digest": reg.dir_digest(model),
        "digest_verified": True,
        "source": mv.source,
        "source_run": mv.run_id,
    }
    err = capsys.readouterr().err
    assert err.strip() == f"fetch_model: models:/{name}/1 -> {out} (sha256 {reg.dir_digest(model)}, verified)"

    # Run again (an init container restarting): the earlier fetch is replaced, not mixed with the new one.
    (out / "stale.bin").write_bytes(b"old")
    assert fm.main(argv) == 0
    again = _files(out)
    again.pop(fm.METADATA_FILE)
    assert again == _files(model)


def test_digest_mismatch_is_refused_and_nothing_is_left(
    mlflow_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    model = _model_dir(tmp_path)
    name = _register(model, mlflow_uri, tmp_path)
    # Corrupt the stored copy in the artifact store (a local folder for the sqlite store).
    source = Path(MlflowClient(mlflow_uri).get_model_version(name, "1").source)
    (source / "model.safetensors").write_bytes(b"tampered")
    capsys.readouterr()
    out = tmp_path / "out"
    rc = fm.main(["--model-uri", f"models:/{name}/1", "--output", str(out), "--mlflow-tracking-uri", mlflow_uri])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith(f"fetch_model: error: models:/{name}/1: downloaded files have digest ")
    assert err.strip().endswith(f"the registry records {reg.dir_digest(model)}; refusing to serve them")
    assert list(out.iterdir()) == []


def test_version_without_digest_tag(mlflow_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    model = _model_dir(tmp_path)
    name = _register(model, mlflow_uri, tmp_path)
    MlflowClient(mlflow_uri).delete_model_version_tag(name, "1", reg.TAG_MODEL_DIGEST)
    base = ["--model-uri", f"models:/{name}/1", "--mlflow-tracking-uri", mlflow_uri]

    assert fm.main([*base, "--output", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / fm.METADATA_FILE).read_text())["digest_verified"] is False
    capsys.readouterr()
    assert fm.main([*base, "--output", str(tmp_path / "b"), "--require-digest"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"fetch_model: error: models:/{name}/1 has no llmops.model_digest tag and --require-digest is set"
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "models:/support-llm@candidate",
            "fetch_model: error: --model-uri 'models:/support-llm@candidate' names alias 'candidate'; "
            "aliases move, so pin the version: models:/support-llm/<version>",
        ),
        (
            "models:/support-llm/latest",
            "fetch_model: error: --model-uri 'models:/support-llm/latest': 'latest' is not a version number; "
            "stages and 'latest' move, so pin the version",
        ),
        (
            "models:/support-llm/Production",
            "fetch_model: error: --model-uri 'models:/support-llm/Production': 'Production' is not a version "
            "number; stages and 'latest' move, so pin the version",
        ),
        (
            "runs:/0123/model",
            "fetch_model: error: --model-uri 'runs:/0123/model' is not models:/<registered-model>/<version>",
        ),
        (
            "models:/fetch-never-registered/3",
            "fetch_model: error: registered model 'fetch-never-registered' has no version 3",
        ),
    ],
)
def test_bad_reference_exits_2(
    uri: str, expected: str, mlflow_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = fm.main(["--model-uri", uri, "--output", str(tmp_path / "out"), "--mlflow-tracking-uri", mlflow_uri])
    assert rc == 2
    assert capsys.readouterr().err.strip() == expected


def test_a_fetch_killed_partway_is_cleared_and_a_good_fetch_survives_a_bad_reference(
    mlflow_uri: str, tmp_path: Path
) -> None:
    model = _model_dir(tmp_path)
    name = _register(model, mlflow_uri, tmp_path)
    out = tmp_path / "out"
    argv = ["--model-uri", f"models:/{name}/1", "--output", str(out), "--mlflow-tracking-uri", mlflow_uri]
    # What a SIGKILL leaves: a staging folder, or some files moved in before llmops-model.json was written.
    (out / ".fetch-abc123").mkdir(parents=True)
    (out / ".fetch-abc123" / "part.bin").write_bytes(b"half")
    (out / fm.IN_PROGRESS_FILE).write_text(f"models:/{name}/1\n")
    (out / "config.json").write_text("{}")
    assert fm.main(argv) == 0
    fetched = _files(out)
    fetched.pop(fm.METADATA_FILE)
    assert fetched == _files(model)  # no staging folder, no marker, nothing of the killed run
    before = _files(out)
    missing = ["--model-uri", f"models:/{name}/99", "--output", str(out), "--mlflow-tracking-uri", mlflow_uri]
    assert fm.main(missing) == 2
    assert _files(out) == before  # the pod's earlier model is kept when the new version does not exist


def test_foreign_output_folder_is_refused(mlflow_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    rc = fm.main(["--model-uri", "models:/m/1", "--output", str(out), "--mlflow-tracking-uri", mlflow_uri])
    assert rc == 2
    assert capsys.readouterr().err.strip() == (
        f"fetch_model: error: --output {out} is not empty and holds no earlier fetch (llmops-model.json); refusing"
    )
    assert (out / "notes.txt").read_text() == "mine"


def test_unreachable_mlflow_exits_3(tmp_path: Path, subprocess_env: dict[str, str], python: str) -> None:
    import subprocess

    from servers import free_port

    # A process of its own: MLflow keeps the tracking URI a step sets in process-wide state.
    env = {**subprocess_env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}  # fail at once instead of backing off
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cmd = [python, "-m", "llmops_compiler.runtime.fetch_model", "--model-uri", "models:/m/1"]
    cmd += ["--output", str(tmp_path / "out"), "--mlflow-tracking-uri", uri]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 3
    assert done.stderr.startswith("fetch_model: error: MLflow failed: API request to ")
    assert "Connection refused" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
