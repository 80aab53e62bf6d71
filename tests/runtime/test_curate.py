"""The curation step on small real inputs: feedback rules, PII scrubbed by presidio, exact and near duplicates
removed (datasketch), a seeded split by record hash, the same inputs in any file order giving the same hash
and bytes, local and S3 output (moto's server on 127.0.0.1) with source versions, and MLflow datasets."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import free_port

from llmops_compiler.runtime import curate
from llmops_compiler.runtime._common import read_jsonl

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-02T12:00:00Z"
LONG = ("To reset the router to factory settings press and hold the small reset button on the back of the device "
        "for ten full seconds until all of the front lights blink twice and then wait two minutes while it restarts "
        "with the default network name and the password printed on the label underneath the router")  # fmt: skip


def log(i: int, prompt: str, response: str, **extra: Any) -> dict[str, Any]:
    return {"timestamp": f"2026-11-02T11:{i:02d}:00Z", "request": {"prompt": prompt},
            "response": {"text": response}, "feedback": extra}  # fmt: skip


LOGS = [
    log(1, "How do I reset the router?", LONG, thumbs="up"),
    # near duplicate of the first: one word changed in a 60-word answer
    log(2, "How do I reset the router?", LONG.replace("two minutes", "three minutes"), thumbs="up"),
    # exact duplicate up to case and spaces
    log(3, "how do I  reset the ROUTER?", LONG.upper().replace(" ", "  ").lower(), thumbs="up"),
    log(4, "Is WPA3 supported?", "Yes, on firmware 2.1 and later.", thumbs="up"),
    log(5, "Is WPA3 supported?", "No idea, sorry.", thumbs="down"),
    log(6, "Who owns order 5521?", "Jane Miller, jane.miller@example.com, card 4111 1111 1111 1111.", rating=5),
    log(7, "What is the warranty?", "Ten years for everything.", thumbs="down",
        corrected="Two years, limited to manufacturing defects."),
    log(8, "Can I use fibre?", "Yes, through the blue WAN port.", rating=4),
    log(9, "Can I mount it on a wall?", "Probably.", rating=2),
    {**log(0, "Old question from last week?", "Old answer that is out of the window.", thumbs="up"),
     "timestamp": "2026-10-20T10:00:00Z"},
] + [log(10 + i, f"What does status light number {i} mean?", f"Light {i} shows the state of port {i}.", thumbs="up")
     for i in range(40)]  # fmt: skip
LABELLED = [
    {"prompt": "Is WPA3 supported?", "completion": "Yes, on firmware 2.1 and later."},  # the same as log 4
    {"prompt": "How do I update the firmware?", "completion": "Open the admin page and choose Firmware > Update."},
]
KEEP = ["--prompt-field", "request.prompt", "--response-field", "response.text",
        "--thumbs-field", "feedback.thumbs", "--rating-field", "feedback.rating",
        "--corrected-field", "feedback.corrected",
        "--keep-thumbs-up", "--min-rating", "4", "--keep-corrected", "--window", "1h", "--now", NOW]  # fmt: skip


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def run_curate(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    return subprocess.run([sys.executable, "-m", "llmops_compiler.runtime.curate", *map(str, args)],
                          capture_output=True, text=True, timeout=180, env=full_env, cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("curate-in")
    return {"logs": write_jsonl(root / "logs" / "part-1.jsonl", LOGS),
            "labelled": write_jsonl(root / "labelled.jsonl", LABELLED)}  # fmt: skip


@pytest.fixture(scope="module")
def local_run(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("curate-out")
    proc = run_curate("--name", "support", "--output", out, "--logs", inputs["logs"].parent,
                      "--labelled", inputs["labelled"], *KEEP, "--uri-out", out / "uri.txt")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    uri = proc.stdout.strip().splitlines()[-1]
    folder = Path(uri)
    return {"proc": proc, "uri": uri, "folder": folder, "out": out,
            "manifest": json.loads((folder / "manifest.json").read_text()),
            "records": [json.loads(line) for name in ("train.jsonl", "eval.jsonl")
                        for line in (folder / name).read_text().splitlines()]}  # fmt: skip


def test_prints_the_content_addressed_uri_and_writes_latest(local_run: dict[str, Any]) -> None:
    folder, manifest = local_run["folder"], local_run["manifest"]
    digest = folder.name
    assert manifest["hash"] == f"sha256:{digest}" and manifest["uri"] == local_run["uri"] == f"{folder}/"
    assert (local_run["out"] / "uri.txt").read_text().strip() == local_run["uri"]
    data = {name: (folder / name).read_bytes() for name in ("train.jsonl", "eval.jsonl")}
    assert curate.content_hash(data) == digest
    for name in curate.FILES:
        assert (local_run["out"] / "latest" / name).read_bytes() == (folder / name).read_bytes()
    # the output is what tune and evaluate read
    records = read_jsonl(folder / "train.jsonl", required=("prompt", "completion"), optional=("context",))
    assert len(records) == manifest["files"]["train.jsonl"]["records"] == manifest["counts"]["train"]


def test_feedback_rules_and_corrected_answers(local_run: dict[str, Any]) -> None:
    by_prompt: dict[str, list[str]] = {}
    for r in local_run["records"]:
        by_prompt.setdefault(r["prompt"], []).append(r["completion"])
    assert by_prompt["What is the warranty?"] == ["Two years, limited to manufacturing defects."]  # the correction
    assert by_prompt["Is WPA3 supported?"] == ["Yes, on firmware 2.1 and later."]  # thumbs down dropped, dup once
    assert "Can I use fibre?" in by_prompt and "Can I mount it on a wall?" not in by_prompt  # rating 4 kept, 2 not
    assert "Old question from last week?" not in by_prompt  # outside the window
    counts = local_run["manifest"]["counts"]
    assert counts["logs_read"] == len(LOGS) and counts["logs_in_window"] == len(LOGS) - 1
    assert counts["dropped_by_feedback"] == 2 and counts["corrected"] == 1 and counts["labelled_read"] == 2


def test_pii_is_scrubbed(local_run: dict[str, Any]) -> None:
    text = json.dumps(local_run["records"])
    assert "jane.miller@example.com" not in text and "4111" not in text
    [scrubbed] = [r for r in local_run["records"] if r["prompt"] == "Who owns order 5521?"]
    assert scrubbed["completion"] == "Jane Miller, <EMAIL_ADDRESS>, card <CREDIT_CARD>."
    assert local_run["manifest"]["counts"]["pii_scrubbed"] == 1


def test_exact_and_near_duplicates_are_removed(local_run: dict[str, Any]) -> None:
    resets = [r for r in local_run["records"] if "reset the router" in r["prompt"].lower()]
    assert len(resets) == 1
    counts = local_run["manifest"]["counts"]
    # exact: log 3 (case and spaces) and log 4 (the labelled WPA3 record); near: log 2 (one word changed)
    assert counts["exact_duplicates"] == 2 and counts["near_duplicates"] == 1
    kept = len(LABELLED) + len(LOGS) - 1 - 2 - 2 - 1  # window, feedback, exact, near
    assert counts["train"] + counts["eval"] == kept == len(local_run["records"])


def test_near_duplicate_threshold_is_jaccard_of_word_trigrams() -> None:
    base = {"prompt": "q", "completion": LONG}
    one_word = {"prompt": "q", "completion": LONG.replace("two minutes", "three minutes")}
    short = {"prompt": "q", "completion": "press the reset button for ten seconds then wait"}
    short_changed = {"prompt": "q", "completion": "press the reset button for five seconds then wait"}
    kept, dropped = curate.drop_near_duplicates([base, one_word, short, short_changed])
    assert kept == [base, short, short_changed] and dropped == 1  # 11-word texts share only 6 of 12 trigrams
    exact_a = curate.shingles(curate.record_text(base))
    exact_b = curate.shingles(curate.record_text(one_word))
    assert len(exact_a & exact_b) / len(exact_a | exact_b) > curate.DEFAULT_NEAR_DUPLICATE_THRESHOLD


def test_same_inputs_in_any_file_order_give_the_same_hash_and_bytes(
    inputs: dict[str, Path], local_run: dict[str, Any], tmp_path: Path
) -> None:
    shuffled = list(LOGS)
    random.Random(7).shuffle(shuffled)
    logs = tmp_path / "logs"
    write_jsonl(logs / "b" / "z.jsonl", shuffled[:17])
    write_jsonl(logs / "notes.txt", [])  # not a .jsonl file: ignored
    (logs / "a").mkdir()
    with gzip.open(logs / "a" / "part.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in shuffled[17:]))
    labelled = write_jsonl(tmp_path / "l2.jsonl", LABELLED[::-1])
    out = tmp_path / "out"
    proc = run_curate("--name", "support", "--output", out, "--labelled", labelled, "--logs", logs, *KEEP)
    assert proc.returncode == 0, proc.stderr
    uri = proc.stdout.strip().splitlines()[-1]
    assert Path(uri).name == local_run["folder"].name
    for name in ("train.jsonl", "eval.jsonl"):
        assert (Path(uri) / name).read_bytes() == (local_run["folder"] / name).read_bytes()
    manifest = json.loads((Path(uri) / "manifest.json").read_text())
    assert manifest["counts"] == local_run["manifest"]["counts"]
    # the sources differ (other files), and say so with their own digests
    assert manifest["sources"] != local_run["manifest"]["sources"]
    assert all(len(f["sha256"]) == 64 for s in manifest["sources"] for f in s["files"])


def test_split_is_by_seeded_record_hash(local_run: dict[str, Any]) -> None:
    records = local_run["records"]
    assert 1 <= local_run["manifest"]["counts"]["eval"] <= len(records) // 2
    for r in records:
        assert curate.in_eval(r, 0, 0.1) == (r in json.loads("[" + ",".join(
            (local_run["folder"] / "eval.jsonl").read_text().splitlines()) + "]"))  # fmt: skip
    other_seed = [curate.in_eval(r, 1, 0.1) for r in records]
    assert other_seed != [curate.in_eval(r, 0, 0.1) for r in records]
    assert sum(curate.in_eval({"prompt": str(i), "completion": "x"}, 0, 0.25) for i in range(4000)) == pytest.approx(
        1000, abs=100)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# S3 (moto's server on loopback) and MLflow
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    try:
        yield env
    finally:
        server.stop()


def test_s3_sources_and_output(s3: dict[str, str], local_run: dict[str, Any]) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"], aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")  # fmt: skip
    client.create_bucket(Bucket="logs")
    client.put_bucket_versioning(Bucket="logs", VersioningConfiguration={"Status": "Enabled"})
    client.create_bucket(Bucket="datasets")
    client.put_object(Bucket="logs", Key="chat/2026/11/02/part-1.jsonl",
                      Body="".join(json.dumps(r) + "\n" for r in LOGS).encode())  # fmt: skip
    client.put_object(Bucket="logs", Key="labelled/seed.jsonl",
                      Body="".join(json.dumps(r) + "\n" for r in LABELLED).encode())  # fmt: skip
    proc = run_curate("--name", "support", "--output", "s3://datasets/support", "--logs", "s3://logs/chat/",
                      "--labelled", "s3://logs/labelled/", *KEEP, env=s3)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    uri = proc.stdout.strip().splitlines()[-1]
    assert uri == f"s3://datasets/support/{local_run['folder'].name}/"  # same content, same address
    for folder in (local_run["folder"].name, "latest"):
        for name in ("train.jsonl", "eval.jsonl"):
            body = client.get_object(Bucket="datasets", Key=f"support/{folder}/{name}")["Body"].read()
            assert body == (local_run["folder"] / name).read_bytes()
    manifest = json.loads(client.get_object(Bucket="datasets", Key="support/latest/manifest.json")["Body"].read())
    [logs_source] = [s for s in manifest["sources"] if s["kind"] == "logs"]
    [file] = logs_source["files"]
    head = client.head_object(Bucket="logs", Key="chat/2026/11/02/part-1.jsonl")
    assert file == {"uri": "s3://logs/chat/2026/11/02/part-1.jsonl", "etag": head["ETag"].strip('"'),
                    "version_id": head["VersionId"]}  # fmt: skip


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mlflow_logs_both_splits_as_datasets(inputs: dict[str, Path], tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_curate("--name", "support", "--output", tmp_path / "out", "--labelled", inputs["labelled"],
                      "--logs", inputs["logs"], *KEEP, "--mlflow-tracking-uri", uri,
                      "--mlflow-experiment", "datasets", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.split("logged to MLflow run")[1].split()[0]
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    inputs_logged = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs_logged) == {"support-train", "support-eval"}
    contexts = {name: {t.key: t.value for t in d.tags}["mlflow.data.context"] for name, d in inputs_logged.items()}
    assert contexts == {"support-train": "training", "support-eval": "evaluation"}
    dataset_uri = proc.stdout.strip().splitlines()[-1]
    assert json.loads(inputs_logged["support-train"].dataset.source)["uri"] == f"{dataset_uri}train.jsonl"
    assert run.data.tags["llmops.dataset.hash"] == f"sha256:{Path(dataset_uri).name}"
    assert run.data.metrics["records.near_duplicates"] == 1


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("curate: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_bad_input(tmp_path: Path, inputs: dict[str, Path]) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "x", "completion": "y"}, {"prompt": "only"}])
    _one_line_error(run_curate("--name", "d", "--output", tmp_path / "o", "--labelled", bad),
                    f"{bad}:2:", "needs string 'prompt' and 'completion'")  # fmt: skip
    _one_line_error(run_curate("--name", "d", "--output", tmp_path / "o", "--logs", inputs["logs"], *KEEP[:-4],
                               "--window", "1h", "--now", "2030-01-01T00:00:00Z"), "no training records left")
    _one_line_error(run_curate("--name", "D_x", "--output", tmp_path / "o", "--labelled", bad), "DNS label")
    _one_line_error(run_curate("--name", "d", "--output", tmp_path / "o", "--logs", inputs["logs"],
                               "--keep-thumbs-up"), "needs --thumbs-field")  # fmt: skip
    _one_line_error(run_curate("--name", "d", "--output", tmp_path / "o"), "--logs or --labelled")
    for score in ("5", "nan", "-0.1"):  # above 1 presidio would flag nothing: PII would ship unscrubbed
        _one_line_error(run_curate("--name", "d", "--output", tmp_path / "o", "--labelled", bad,
                                   "--pii-min-score", score), "--pii-min-score must be in [0, 1]")  # fmt: skip
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_a_rating_that_is_not_finite_is_no_rating(tmp_path: Path) -> None:
    """Python's JSON parser reads `Infinity` and `NaN`: neither may pass a minimum rating."""
    logs = tmp_path / "logs.jsonl"
    logs.write_text("".join(f'{{"prompt": "q{i}", "response": "answer number {i}", "rating": {rating}}}\n'
                            for i, rating in enumerate(["Infinity", "NaN", "-Infinity", "5", "2"])))
    proc = run_curate("--name", "d", "--output", tmp_path / "o", "--logs", logs, "--rating-field", "rating",
                      "--min-rating", "4", "--eval-fraction", "0", "--no-scrub-pii")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    kept = [json.loads(line) for line in (tmp_path / "o/latest/train.jsonl").read_text().splitlines()]
    assert [record["prompt"] for record in kept] == ["q3"]
