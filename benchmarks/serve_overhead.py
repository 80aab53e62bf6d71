"""What the reference server adds to a completion: HTTP, JSON, admission, metrics, the thread hop.

    python benchmarks/serve_overhead.py [--requests 50] [--max-tokens 1,16]

Builds the tiny test model (``llmops_compiler.runtime._tiny``) in a temp dir, then for each ``max_tokens``:

* ``direct``: ``TransformersGenerator.complete`` called in this process (the server's own generation code,
  greedy, same prompt) on a worker thread, as the server calls it, median over ``--requests`` calls;
* ``http``: the same completion requested from ``python -m llmops_compiler.runtime.serve`` on 127.0.0.1,
  one request at a time over a fresh connection (``urllib``), median wall time per request;
* ``overhead`` = http - direct (ms) and ``ratio`` = http / direct.

The server and this process share the machine's cores but never run generation at the same time. The tiny
model makes generation cheap on purpose: the numbers isolate the fixed cost per request.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmops_compiler.runtime._tiny import build_tiny_model  # noqa: E402

PROMPT = "Q: What is the capital of France?\nA:"


def start_server(model: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    log = work / "serve.log"
    cmd = ["timeout", "600", sys.executable, "-m", "llmops_compiler.runtime.serve", "--model-dir", str(model),
           "--model-name", "tiny", "--version", "1", "--port", "0"]  # fmt: skip
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text()
        port = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
        if port and "ready" in text:
            return proc, f"http://127.0.0.1:{port[1]}"
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {text}")
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("server not ready within 120 s")


def http_completion(url: str, max_tokens: int) -> float:
    body = json.dumps({"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0}).encode()
    request = urllib.request.Request(f"{url}/v1/completions", data=body, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as resp:
        resp.read()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--max-tokens", default="1,16")
    args = parser.parse_args()
    token_counts = [int(t) for t in args.max_tokens.split(",")]

    from llmops_compiler.runtime.serve import SamplingParams, ServeConfig, load_generator

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        work = Path(tmp)
        model = build_tiny_model(work / "tiny")
        generator = load_generator(ServeConfig(model_dir=str(model), model_name="tiny", version="1"))
        proc, url = start_server(model, work)
        try:
            print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {args.requests} requests each")
            print(f"{'max_tokens':>10} {'direct ms':>10} {'http ms':>10} {'overhead ms':>12} {'ratio':>7}")
            for max_tokens in token_counts:
                ids = generator.encode(PROMPT)
                params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
                direct = []
                with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
                    for _ in range(args.requests):
                        t0 = time.perf_counter()
                        worker.submit(generator.complete, ids, params).result()
                        direct.append(time.perf_counter() - t0)
                http_completion(url, max_tokens)  # warm the server's path for this size
                http = [http_completion(url, max_tokens) for _ in range(args.requests)]
                d, h = statistics.median(direct) * 1000, statistics.median(http) * 1000
                print(f"{max_tokens:>10} {d:>10.2f} {h:>10.2f} {h - d:>12.2f} {h / d:>7.2f}")
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
