"""Start-up overhead of the tune step: how much of a short run is imports and model loading, not training.

    python benchmarks/tune_overhead.py [--steps 1] [--repeat 3] [--method lora|full]

Builds the tiny test model (``llmops_compiler.runtime._tiny``: 2-layer Llama, hidden 64, byte-level BPE,
vocab 400) and its 18-example dataset in a temp dir, then runs the step exactly as a workflow pod does,
``python -m llmops_compiler.runtime.tune ... --max-steps N`` in a fresh process, ``--repeat`` times. The step
writes its own phase timings to ``--metrics-out``; the benchmark measures the process wall time around it:

* ``interp``: wall time not covered by the step's phases (interpreter start, ``import``
  of the step module, reading the dataset, interpreter shutdown);
* ``imports``: ``import torch, transformers[, peft]`` inside the step;
* ``load``: tokenizer + model load, tokenization, optional LoRA wrapping, move to device;
* ``train``: the ``N`` optimizer steps;
* ``save``: writing the adapter / model and tokenizer;
* start-up share = ``(interp + imports + load) / wall``.

The medians over the repeats (of each phase, and of the per-run shares) are reported. The tiny model
makes ``load`` and ``train`` small on purpose: the numbers isolate the fixed cost every tune pod pays
before its first step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmops_compiler.runtime._tiny import build_tiny_model, write_dataset  # noqa: E402

PHASES = ("interp", "imports", "load", "train", "save")


def run_once(model: Path, data: Path, work: Path, steps: int, method: str, env: dict[str, str]) -> dict[str, float]:
    metrics = work / "metrics.json"
    cmd = [
        sys.executable, "-m", "llmops_compiler.runtime.tune",
        "--base-model", str(model),
        "--dataset", str(data),
        "--method", method,
        "--epochs", "1000",
        "--max-steps", str(steps),
        "--batch-size", "6",
        "--learning-rate", "0.01" if method == "lora" else "0.003",
        "--output", str(work / "out"),
        "--metrics-out", str(metrics),
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"tune failed ({proc.returncode}): {proc.stderr.strip()}")
    m = json.loads(metrics.read_text())
    phases = {
        "imports": m["import_seconds"],
        "load": m["load_seconds"],
        "train": m["train_seconds"],
        "save": m["save_seconds"],
    }
    return {"wall": wall, "interp": wall - sum(phases.values()), **phases, "steps": m["steps"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1, help="optimizer steps per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--method", choices=("lora", "full"), default="lora")
    args = ap.parse_args()

    import torch
    import transformers

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, {os.cpu_count()} CPUs, "
        f"{'CUDA' if torch.cuda.is_available() else 'CPU only'}"
    )
    with tempfile.TemporaryDirectory(prefix="tune-overhead-") as tmp:
        root = Path(tmp)
        model = build_tiny_model(root / "model")
        data = write_dataset(root / "train.jsonl")
        n_params = sum(p.numel() for p in transformers.AutoModelForCausalLM.from_pretrained(str(model)).parameters())
        print(f"tiny model: {n_params} parameters; method {args.method}; {args.steps} step(s) per run")
        runs = []
        for i in range(args.repeat):
            work = root / f"run{i}"
            work.mkdir()
            r = run_once(model, data, work, args.steps, args.method, env)
            runs.append(r)
            share = (r["interp"] + r["imports"] + r["load"]) / r["wall"]
            cells = "  ".join(f"{k} {r[k]:6.3f}s" for k in PHASES)
            print(f"run {i + 1}: wall {r['wall']:6.3f}s  {cells}  start-up share {share:6.1%}")

    med = {k: statistics.median(r[k] for r in runs) for k in ("wall", *PHASES)}
    shares = [(r["interp"] + r["imports"] + r["load"]) / r["wall"] for r in runs]
    train_shares = [r["train"] / r["wall"] for r in runs]
    print(
        f"median: wall {med['wall']:.3f}s; interp {med['interp']:.3f}s, imports {med['imports']:.3f}s, "
        f"load {med['load']:.3f}s, train {med['train']:.3f}s, save {med['save']:.3f}s"
    )
    print(
        f"start-up (interp + imports + load) share of the run: median {statistics.median(shares):.1%}; "
        f"training share: median {statistics.median(train_shares):.1%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
