"""Compile time, peak memory and the ratio to `kubectl kustomize` on synthetic projects, measured in one run.

    python benchmarks/compile_scale.py [--sizes 100,1000,5000] [--repeat 3]

For each size: writes a synthetic project, times `llmops compile` end to end (a fresh process, so start-up
counts), reads its peak resident memory, then times `kubectl kustomize` over every environment folder of the
same output. Budget (issue "compiler core"): 1,000 specs in at most 2 s, at most 0.2x kustomize's time,
growing linearly.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import write_project


def _run_timed(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(after, before)


def _peak_rss(command: list[str]) -> int:
    """Peak RSS in KiB of a command, measured by a fresh wrapper process so earlier children don't mask it."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def measure(size: int, repeat: int, llmops: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        specs = write_project(root, size)
        output = root / "generated"
        compile_times = []
        for _ in range(repeat):
            shutil.rmtree(output, ignore_errors=True)
            seconds, _ = _run_timed([*llmops, "compile", str(specs), "-o", str(output)])
            compile_times.append(seconds)
        shutil.rmtree(output, ignore_errors=True)
        peak_kib = _peak_rss([*llmops, "compile", str(specs), "-o", str(output)])
        environments = sorted(p for p in output.iterdir() if (p / "kustomization.yaml").exists())
        files = sum(1 for _ in output.rglob("*.yaml"))
        kustomize_times = []
        for _ in range(repeat):
            start = time.perf_counter()
            for environment in environments:
                subprocess.run(["kubectl", "kustomize", str(environment)], check=True, stdout=subprocess.DEVNULL)
            kustomize_times.append(time.perf_counter() - start)
    compile_seconds = min(compile_times)
    kustomize_seconds = min(kustomize_times)
    return {
        "specs": size,
        "files": files,
        "compile_s": compile_seconds,
        "peak_mib": peak_kib / 1024,
        "kustomize_s": kustomize_seconds,
        "ratio": compile_seconds / kustomize_seconds,
        "us_per_spec": compile_seconds / size * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("kubectl") is None:
        print("kubectl is not installed; it is needed for the comparison", file=sys.stderr)
        return 2
    llmops = [sys.executable, "-m", "llmops_compiler.cli"]
    rows = [measure(int(size), args.repeat, llmops) for size in args.sizes.split(",")]
    print(f"{'specs':>6} {'files':>6} {'compile s':>10} {'peak MiB':>9} {'kustomize s':>12} "
          f"{'compile/kustomize':>18} {'us/spec':>8}")
    for row in rows:
        print(f"{row['specs']:>6} {row['files']:>6} {row['compile_s']:>10.3f} {row['peak_mib']:>9.1f} "
              f"{row['kustomize_s']:>12.3f} {row['ratio']:>18.3f} {row['us_per_spec']:>8.0f}")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        growth = (last["compile_s"] / first["compile_s"]) / (last["specs"] / first["specs"])
        print(f"growth: {last['specs'] // first['specs']}x specs -> "
              f"{last['compile_s'] / first['compile_s']:.1f}x time (1.0 = linear; start-up makes small sizes "
              f"look slower: {growth:.2f})")
    cpu = os.cpu_count()
    print(f"machine: {cpu} cores, python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
