"""The steps that read production logs from object storage (drift, score, curate) tell an outage from bad input:
an object store that cannot be asked exits 3, which the generated workflows retry; a bucket that is not there
exits 2, which they do not (retrying cannot fix a wrong URI)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kb_support import S3_ENV, moto_s3

REPO = Path(__file__).resolve().parents[2]
FEATURE = ("--feature", "x:numeric")
COMMANDS = {
    "drift": lambda logs, tmp: ["--model", "m", "--reference", logs, "--current", logs, *FEATURE],
    "score": lambda logs, tmp: ["--model", "m", "--logs", logs, "--metric", "feedback", "--feedback-field", "rating"],
    "curate": lambda logs, tmp: ["--name", "d", "--output", str(tmp / "out"), "--logs", logs],
}


def run(step: str, arguments: list[str], endpoint: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **S3_ENV, "PYTHONPATH": str(REPO), "AWS_ENDPOINT_URL": endpoint, "AWS_MAX_ATTEMPTS": "1",
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", f"llmops_compiler.runtime.{step}", *arguments],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_s3() as server:
        server.client().create_bucket(Bucket="logs")
        yield server.url


@pytest.mark.parametrize("step", sorted(COMMANDS))
def test_an_unreachable_object_store_exits_3(step: str, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = run(step, COMMANDS[step]("s3://logs/requests/", tmp_path), f"http://127.0.0.1:{port}")
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"{step}: error: s3://logs/requests/: cannot list: "), line


@pytest.mark.parametrize("step", sorted(COMMANDS))
def test_a_bucket_that_is_not_there_exits_2(step: str, endpoint: str, tmp_path: Path) -> None:
    proc = run(step, COMMANDS[step]("s3://no-such-bucket/requests/", tmp_path), endpoint)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    [line] = proc.stderr.strip().splitlines()
    assert "NoSuchBucket" in line and "Traceback" not in proc.stderr, line
