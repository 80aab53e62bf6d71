"""Throughput of the drift statistics (llmops_compiler.runtime.drift) against plain scipy baselines.

    python benchmarks/drift_throughput.py [--sizes 100000 1000000] [--repeat 5] [--bins 10]

For each sample size ``n`` the reference is ``normal(0, 1)`` and the current window ``normal(0.2, 1.1)``,
both of ``n`` samples; throughput is ``2n`` samples over the best of ``--repeat`` timed runs (after one
warm-up). Baselines, measured in the same run on the same arrays and with the same binning:

psi   ``np.quantile`` edges (outer edges opened), ``np.histogram`` of both samples, empty bins smoothed
      the same way, ``scipy.stats.entropy(p, q) + entropy(q, p)`` (the Jeffreys divergence);
ks    ``scipy.stats.ks_2samp(reference, current).statistic`` (it also computes a p-value);
js    the same histograms, ``scipy.spatial.distance.jensenshannon(p, q, base=2)``;
all   the three baselines one after the other, against ``drift.numeric_scores`` (which sorts each sample
      once and shares the binning between psi and js), which is what the step runs per feature.

``|diff|`` is the absolute difference between our score and the baseline's.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, ks_2samp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmops_compiler.runtime import drift

FloatArray = np.ndarray
Stat = Callable[[FloatArray, FloatArray, int], float]


def _histograms(ref: FloatArray, cur: FloatArray, bins: int) -> tuple[FloatArray, FloatArray]:
    edges = np.quantile(ref, np.linspace(0.0, 1.0, bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    h_ref, _ = np.histogram(ref, edges)
    h_cur, _ = np.histogram(cur, edges)
    return h_ref.astype(np.float64), h_cur.astype(np.float64)


def _smooth(counts: FloatArray) -> FloatArray:
    """The step's rule, written plainly: an empty bin counts as half a record, then normalise."""
    c = np.where(counts > 0, counts, drift.PSI_EMPTY_BIN_COUNT).astype(np.float64)
    out: FloatArray = c / c.sum()
    return out


def baseline_psi(ref: FloatArray, cur: FloatArray, bins: int) -> float:
    p, q = _histograms(ref, cur, bins)
    used = (p > 0) | (q > 0)  # a bin empty in both samples says nothing
    p, q = _smooth(p[used]), _smooth(q[used])
    return float(entropy(p, q) + entropy(q, p))


def baseline_ks(ref: FloatArray, cur: FloatArray, bins: int) -> float:
    return float(ks_2samp(ref, cur).statistic)


def baseline_js(ref: FloatArray, cur: FloatArray, bins: int) -> float:
    p, q = _histograms(ref, cur, bins)
    return float(jensenshannon(p, q, base=2))


def baseline_all(ref: FloatArray, cur: FloatArray, bins: int) -> float:
    return baseline_psi(ref, cur, bins) + baseline_ks(ref, cur, bins) + baseline_js(ref, cur, bins)


def ours_all(ref: FloatArray, cur: FloatArray, bins: int) -> float:
    return sum(drift.numeric_scores(ref, cur, ["psi", "ks", "js"], bins).values())


CASES: list[tuple[str, Stat, Stat]] = [
    ("psi", lambda r, c, b: drift.psi(r, c, b), baseline_psi),
    ("ks", lambda r, c, b: drift.ks(r, c), baseline_ks),
    ("js", lambda r, c, b: drift.js(r, c, b), baseline_js),
    ("all", ours_all, baseline_all),
]


def best_time(fn: Stat, ref: FloatArray, cur: FloatArray, bins: int, repeat: int) -> tuple[float, float]:
    value = fn(ref, cur, bins)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(ref, cur, bins)
        best = min(best, time.perf_counter() - start)
    return best, value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"{platform.machine()}, bins={args.bins}, best of {args.repeat}"
    )
    header = (
        f"{'method':<6} {'n':>9} {'ours s':>9} {'ours samples/s':>15} {'scipy s':>9} "
        f"{'scipy samples/s':>16} {'speed-up':>9} {'|diff|':>9}"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        rng = np.random.default_rng(args.seed)
        ref = rng.normal(0.0, 1.0, n)
        cur = rng.normal(0.2, 1.1, n)
        for name, ours, baseline in CASES:
            t_ours, v_ours = best_time(ours, ref, cur, args.bins, args.repeat)
            t_base, v_base = best_time(baseline, ref, cur, args.bins, args.repeat)
            print(
                f"{name:<6} {n:>9} {t_ours:>9.4f} {2 * n / t_ours:>15,.0f} {t_base:>9.4f} "
                f"{2 * n / t_base:>16,.0f} {t_base / t_ours:>8.2f}x {abs(v_ours - v_base):>9.1e}"
            )


if __name__ == "__main__":
    main()
