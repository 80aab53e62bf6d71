"""Tests of the drift step: statistics against scipy and hand computations, property tests, and the CLI
end to end against a real Pushgateway and Prometheus (tests/servers.py)."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, ks_2samp

# The repository root (for llmops_compiler when it is not installed) and tests/ (for servers.py).
sys.path.insert(0, str(Path(__file__).parents[2]))
sys.path.insert(0, str(Path(__file__).parents[1]))
from monitoring_support import tool
from servers import (
    Server,
    alertmanager,
    alertmanager_alerts,
    free_port,
    http_get,
    prometheus,
    pushgateway,
    query,
    wait_for,
)

from llmops_compiler.conventions import (
    DRIFT_SCORE,
    LABEL_ENVIRONMENT,
    LABEL_FEATURE,
    LABEL_METHOD,
    LABEL_MODEL,
    PUSH_JOB_DRIFT,
)
from llmops_compiler.runtime import drift

REPO = Path(__file__).parents[2]
FEATURES = [
    "x:numeric",
    "prompt_length:length:prompt",
    "lang:categorical",
    "emb:embedding:embedding",
    "temperature:numeric:meta.temperature",
]
SHIFTED = {"x", "prompt_length", "lang", "emb"}
UNSHIFTED = {"temperature"}


# --------------------------------------------------------------------------------------------------
# Statistics: hand computations and scipy
# --------------------------------------------------------------------------------------------------


def test_psi_three_bins_by_hand() -> None:
    reference = [1, 2, 3, 4, 5, 6]
    # Quantiles 0, 1/3, 2/3, 1 of the reference (linear interpolation at positions 0, 5/3, 10/3, 5):
    # 1, 8/3, 13/3, 6 -> interior cut points 8/3 and 13/3 -> bins {1, 2} {3, 4} {5, 6}.
    np.testing.assert_allclose(drift.bin_cuts(reference, 3), [8 / 3, 13 / 3])
    # 0 is below the reference range and 10 above it: they go to the outer bins.
    current = [0, 1, 2, 2.5, 3, 10]
    r, c = drift.binned_proportions(reference, current, 3)
    np.testing.assert_allclose(r, [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(c, [4 / 6, 1 / 6, 1 / 6])
    # PSI = (2/3 - 1/3) ln 2 + 2 * (1/6 - 1/3) ln(1/2) = (1/3 + 1/6 + 1/6) ln 2 = (2/3) ln 2
    expected = (2 / 3 - 1 / 3) * math.log(2) + 2 * (1 / 6 - 1 / 3) * math.log(0.5)
    assert expected == pytest.approx(2 / 3 * math.log(2))
    assert drift.psi(reference, current, 3) == pytest.approx(expected, rel=1e-12)
    assert drift.psi(reference, reference, 3) == 0.0


def test_psi_empty_bins_count_as_half_a_record() -> None:
    reference = [1, 2, 3, 4, 5, 6]
    current = [1, 1, 2, 2, 2, 1]  # all six records in the first bin
    assert drift.PSI_EMPTY_BIN_COUNT == 0.5
    r = np.array([1 / 3, 1 / 3, 1 / 3])
    c = np.array([6, 0.5, 0.5]) / 7  # two empty bins of half a record each, renormalised
    expected = float(np.sum((c - r) * np.log(c / r)))
    assert drift.psi(reference, current, 3) == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(expected)


def test_losing_a_category_scores_more_drift_than_keeping_one_record_in_100000() -> None:
    """The issue's case: with a fixed epsilon of 1e-4 an empty category counted as 10 records in 100,000."""
    reference = ["en"] * 50_000 + ["de"] * 50_000
    kept_one = ["en"] * 99_999 + ["de"]
    lost = ["en"] * 100_000
    psi_kept = drift.psi_categorical(reference, kept_one)
    psi_lost = drift.psi_categorical(reference, lost)
    assert psi_lost > psi_kept
    # by hand: "de" lost counts as half a record out of 100,000.5
    r = np.array([0.5, 0.5])
    c = np.array([0.5, 100_000]) / 100_000.5
    assert psi_lost == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=1e-12)
    # the same for a numeric bin: everything moved out of the top bin vs one record left in it
    ref_numeric = np.repeat(np.arange(10.0), 10_000)
    cur_kept = np.r_[np.repeat(np.arange(9.0), 11_111), [9.0]]
    cur_lost = np.repeat(np.arange(9.0), 11_111)
    assert drift.psi(ref_numeric, cur_lost) > drift.psi(ref_numeric, cur_kept)


def test_smoothed_empty_bin_stays_below_the_smallest_real_proportion() -> None:
    for n in (1, 7, 10_000, 1_000_000):
        counts = np.array([n - 1, 1, 0, 0]) if n > 1 else np.array([1, 0, 0, 0])
        p = drift.smooth(counts)
        assert p.sum() == pytest.approx(1.0)
        assert p[counts == 0].max() < p[counts > 0].min()
    np.testing.assert_array_equal(drift.smooth([3, 1]), [0.75, 0.25])  # nothing to smooth


def test_psi_is_jeffreys_divergence() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        p = rng.dirichlet(np.ones(8))
        q = rng.dirichlet(np.ones(8))
        jeffreys = entropy(p, q) + entropy(q, p)
        assert drift.psi_from_counts(p, q) == pytest.approx(jeffreys, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_ks_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 3000)), int(rng.integers(1, 3000))
    a = rng.normal(0, 1, n)
    b = rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), m)
    assert drift.ks(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    # heavy ties, within and across the samples
    ai = rng.integers(0, 6, n)
    bi = rng.integers(0, 8, m)
    assert drift.ks(ai, bi) == pytest.approx(ks_2samp(ai, bi).statistic, abs=1e-12)


@pytest.mark.parametrize("bins", [2, 5, 10, 20])
def test_js_matches_scipy_on_reference_quantile_histograms(bins: int) -> None:
    rng = np.random.default_rng(bins)
    ref = rng.normal(0, 1, 5000)
    cur = rng.normal(0.4, 1.3, 3000)
    # Independent binning: np.histogram on the reference quantiles, outer edges opened to +-inf.
    edges = np.quantile(ref, np.linspace(0, 1, bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    h_ref, _ = np.histogram(ref, edges)
    h_cur, _ = np.histogram(cur, edges)
    assert drift.js(ref, cur, bins) == pytest.approx(jensenshannon(h_ref, h_cur, base=2), abs=1e-12)
    p, q = h_ref / h_ref.sum(), h_cur / h_cur.sum()
    assert drift.psi(ref, cur, bins) == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)


def test_js_with_empty_bins_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = rng.integers(0, 4, 6).astype(float)
        q = rng.integers(0, 4, 6).astype(float)
        if p.sum() == 0 or q.sum() == 0:
            continue
        assert drift.js_from_proportions(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


def test_categorical_statistics() -> None:
    ref = ["en"] * 6 + ["de"] * 3 + ["fr"] * 1
    cur = ["en"] * 2 + ["de"] * 3 + ["fr"] * 4 + ["es"] * 1
    cats, r, c = drift.category_proportions(ref, cur)
    assert cats == ["de", "en", "es", "fr"]
    np.testing.assert_allclose(r, [0.3, 0.6, 0.0, 0.1])
    np.testing.assert_allclose(c, [0.3, 0.2, 0.1, 0.4])
    # "es" is new: half a record of the reference's 10
    rs = np.array([3, 6, 0.5, 1]) / 10.5
    assert drift.psi_categorical(ref, cur) == pytest.approx(float(np.sum((c - rs) * np.log(c / rs))))
    assert drift.js_categorical(ref, cur) == pytest.approx(jensenshannon(r, c, base=2), abs=1e-12)
    assert drift.ks_categorical(ref, cur) == pytest.approx(0.5 * (0 + 0.4 + 0.1 + 0.3))
    # the total variation distance is the largest KS statistic over all orderings of the categories
    best = 0.0
    for order in itertools.permutations(range(4)):
        codes = {cats[k]: rank for rank, k in enumerate(order)}
        best = max(best, ks_2samp([codes[v] for v in ref], [codes[v] for v in cur]).statistic)
    assert drift.ks_categorical(ref, cur) == pytest.approx(best)


def test_constant_and_zero_inflated_references_still_see_shifts() -> None:
    const = np.full(500, 3.0)
    assert drift.psi(const, const) == 0.0
    assert drift.js(const, const) == 0.0
    assert drift.psi(const, np.full(500, 4.0)) > 1.0
    assert drift.psi(const, np.full(500, 2.0)) > 1.0
    assert drift.js(const, np.full(500, 4.0)) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    zero_inflated = np.r_[np.zeros(900), rng.uniform(0, 1, 100)]
    fewer_zeros = np.r_[np.zeros(500), rng.uniform(0, 1, 500)]
    assert drift.psi(zero_inflated, fewer_zeros) > 0.25
    assert drift.js(zero_inflated, fewer_zeros) > 0.2


def test_embedding_projection_is_deterministic_first_component() -> None:
    rng = np.random.default_rng(1)
    axis = np.array([0.0, 3.0, 4.0, 0.0]) / 5.0
    ref = rng.normal(0, 0.1, (2000, 4)) + np.outer(rng.normal(0, 2, 2000), axis)
    mean, direction = drift.first_principal_component(ref)
    assert abs(float(direction @ axis)) == pytest.approx(1.0, abs=1e-3)
    assert direction[np.argmax(np.abs(direction))] > 0
    np.testing.assert_allclose(mean, ref.mean(axis=0))
    # the same direction whichever SVD route (rows < columns uses the SVD of the data itself)
    _, direction_small = drift.first_principal_component(ref[:3])
    assert direction_small[np.argmax(np.abs(direction_small))] > 0
    # a shift along the axis shows, one across it does not (documented limitation)
    along = ref + 2 * axis
    across = ref + 2 * np.array([1.0, 0.0, 0.0, 0.0])
    r1, c1 = drift.project_embeddings(ref, along)
    r2, c2 = drift.project_embeddings(ref, across)
    assert drift.ks(r1, c1) > 0.3
    assert drift.ks(r2, c2) < 0.05


def test_statistics_reject_bad_samples() -> None:
    with pytest.raises(ValueError, match="empty"):
        drift.psi([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        drift.ks([1.0, float("nan")], [1.0])
    with pytest.raises(ValueError, match="bins"):
        drift.js([1.0, 2.0], [1.0], bins=0)


# --------------------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=200)
count_vectors = st.integers(min_value=1, max_value=12).flatmap(
    lambda k: st.tuples(
        st.lists(st.integers(0, 1000), min_size=k, max_size=k).filter(lambda v: sum(v) > 0),
        st.lists(st.integers(0, 1000), min_size=k, max_size=k).filter(lambda v: sum(v) > 0),
    )
)


@settings(max_examples=150, deadline=None)
@given(samples, st.integers(min_value=1, max_value=20))
def test_identical_distributions_score_zero(sample: list[float], bins: int) -> None:
    assert drift.psi(sample, sample, bins) == pytest.approx(0.0, abs=1e-12)
    assert drift.js(sample, sample, bins) == pytest.approx(0.0, abs=1e-7)
    assert drift.ks(sample, sample) == 0.0
    # the same distribution in another order and repeated
    doubled = sample[::-1] + sample
    assert drift.psi(sample, doubled, bins) == pytest.approx(0.0, abs=1e-12)
    assert drift.ks(sample, doubled) == 0.0


@settings(max_examples=150, deadline=None)
@given(count_vectors)
def test_psi_symmetric_in_binned_distributions(pair: tuple[list[int], list[int]]) -> None:
    p, q = pair
    assert drift.psi_from_counts(p, q) == pytest.approx(drift.psi_from_counts(q, p), rel=1e-9)
    assert drift.psi_from_counts(p, q) >= 0.0
    j = drift.js_from_proportions(p, q)
    assert 0.0 <= j <= 1.0
    assert j == pytest.approx(drift.js_from_proportions(q, p), abs=1e-12)
    assert 0.0 <= drift.tv_from_proportions(p, q) <= 1.0


@settings(max_examples=150, deadline=None)
@given(samples, samples, st.integers(min_value=1, max_value=20))
def test_scores_non_negative_and_bounded(a: list[float], b: list[float], bins: int) -> None:
    scores = drift.numeric_scores(a, b, ["psi", "ks", "js"], bins)
    assert scores["psi"] >= 0.0
    assert 0.0 <= scores["ks"] <= 1.0
    assert 0.0 <= scores["js"] <= 1.0
    with warnings.catch_warnings():  # scipy's p-value warns on tiny samples; the statistic is what we compare
        warnings.simplefilter("ignore", RuntimeWarning)
        expected_ks = ks_2samp(a, b).statistic
    assert scores["ks"] == pytest.approx(expected_ks, abs=1e-12)
    assert scores["psi"] == drift.psi(a, b, bins)
    assert scores["js"] == drift.js(a, b, bins)


# --------------------------------------------------------------------------------------------------
# End to end: the CLI, a real Pushgateway, a real Prometheus and Alertmanager
# --------------------------------------------------------------------------------------------------


def _records(rng: np.random.Generator, n: int, shifted: bool) -> Iterator[dict[str, Any]]:
    x = rng.normal(1.5 if shifted else 0.0, 1.0, n)
    lengths = rng.poisson(90 if shifted else 40, n) + 1
    langs = rng.choice(["en", "de", "fr"], n, p=[0.2, 0.3, 0.5] if shifted else [0.6, 0.3, 0.1])
    axis = np.array([1.0, 2.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.5])
    axis /= np.linalg.norm(axis)
    emb = rng.normal(0, 0.3, (n, 8)) + np.outer(rng.normal(2.0 if shifted else 0.0, 1.5, n), axis)
    temperature = rng.uniform(0.0, 1.0, n)
    for i in range(n):
        yield {
            "request_id": f"r{i}",
            "x": float(x[i]),
            "prompt": "w" * int(lengths[i]),
            "lang": str(langs[i]),
            "embedding": [round(float(v), 5) for v in emb[i]],
            "meta": {"temperature": float(temperature[i])},
        }


def _write_jsonl(path: Path, records: Iterator[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("drift-data")
    return {
        "reference": _write_jsonl(d / "reference.jsonl", _records(np.random.default_rng(1), 4000, False)),
        "shifted": _write_jsonl(d / "shifted.jsonl", _records(np.random.default_rng(2), 3000, True)),
        "stable": _write_jsonl(d / "stable.jsonl", _records(np.random.default_rng(3), 3000, False)),
    }


def run_drift(
    *args: str | Path, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "llmops_compiler.runtime.drift", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
        env=env,
    )


def _feature_args() -> list[str]:
    return [arg for spec in FEATURES for arg in ("--feature", spec)]


def pushed_scores(pushgateway_url: str) -> dict[tuple[str, str, str], tuple[float, dict[str, str]]]:
    status, body = http_get(f"{pushgateway_url}/metrics")
    assert status == 200
    out: dict[tuple[str, str, str], tuple[float, dict[str, str]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == DRIFT_SCORE:
                labels = sample.labels
                key = (labels[LABEL_MODEL], labels[LABEL_FEATURE], labels[LABEL_METHOD])
                out[key] = (sample.value, labels)
    return out


@pytest.fixture(scope="module")
def pushgw() -> Iterator[Server]:
    with pushgateway() as server:
        yield server


@pytest.fixture(scope="module")
def pushed(
    pushgw: Server, datasets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Run the step on the shifted and on the unshifted window, pushing to the Pushgateway."""
    out = tmp_path_factory.mktemp("drift-out")
    runs: dict[str, Any] = {}
    for model, window in (("chat-shifted", "shifted"), ("chat-stable", "stable")):
        output = out / f"{model}.json"
        proc = run_drift(
            "--model", model,
            "--reference", datasets["reference"],
            "--current", datasets[window],
            *_feature_args(),
            "--pushgateway", pushgw.url,
            "--environment", "test",
            "--output", output,
        )  # fmt: skip
        runs[model] = {"proc": proc, "report": json.loads(output.read_text()) if output.exists() else None}
    runs["scores"] = pushed_scores(pushgw.url)
    return runs


def test_cli_exits_zero_with_and_without_drift(pushed: dict[str, Any]) -> None:
    for model in ("chat-shifted", "chat-stable"):
        proc = pushed[model]["proc"]
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        assert f"pushed {len(FEATURES) * 3} {DRIFT_SCORE} series" in proc.stdout


def test_pushgateway_holds_scores_large_for_shifted_small_for_unshifted(pushed: dict[str, Any]) -> None:
    scores = pushed["scores"]
    assert len(scores) == 2 * len(FEATURES) * 3
    thresholds_high = {"psi": 0.25, "ks": 0.2, "js": 0.2}
    thresholds_low = {"psi": 0.03, "ks": 0.05, "js": 0.06}
    for (model, feature, method), (value, labels) in scores.items():
        assert labels["job"] == PUSH_JOB_DRIFT
        assert labels[LABEL_ENVIRONMENT] == "test"
        if model == "chat-shifted" and feature in SHIFTED:
            assert value > thresholds_high[method], (model, feature, method, value)
        else:
            assert value < thresholds_low[method], (model, feature, method, value)
    # x moved by 1.5 standard deviations: KS near 2*Phi(0.75)-1 = 0.547
    assert scores[("chat-shifted", "x", "ks")][0] == pytest.approx(0.547, abs=0.05)


def test_output_report_matches_pushed_values(pushed: dict[str, Any]) -> None:
    report = pushed["chat-shifted"]["report"]
    assert report["model"] == "chat-shifted"
    assert report["methods"] == ["psi", "ks", "js"]
    assert [f["feature"] for f in report["features"]] == [s.split(":")[0] for s in FEATURES]
    for feature in report["features"]:
        assert feature["n_reference"] == 4000
        assert feature["n_current"] == 3000
        for method, value in feature["scores"].items():
            pushed_value = pushed["scores"][("chat-shifted", feature["feature"], method)][0]
            assert pushed_value == pytest.approx(value, rel=1e-12)


def test_grouping_labels_keep_separate_checks(pushgw: Server, datasets: dict[str, Path]) -> None:
    # A push replaces its whole group; two checks of one model stay apart with a grouping label each.
    for check, feature in (("inputs", "x:numeric"), ("language", "lang:categorical")):
        proc = run_drift(
            "--model", "grouped", "--reference", datasets["reference"], "--current", datasets["stable"],
            "--feature", feature, "--method", "psi", "--pushgateway", pushgw.url,
            "--grouping-label", f"check={check}",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    scores = pushed_scores(pushgw.url)
    assert scores[("grouped", "x", "psi")][1]["check"] == "inputs"
    assert scores[("grouped", "lang", "psi")][1]["check"] == "language"
    assert LABEL_ENVIRONMENT not in scores[("grouped", "x", "psi")][1]


def test_cli_without_pushgateway_prints_only(datasets: dict[str, Path]) -> None:
    proc = run_drift(
        "--model", "m", "--reference", datasets["reference"], "--current", datasets["shifted"],
        "--feature", "x:numeric", "--method", "ks,psi", "--bins", "5",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("feature"))
    assert header.split()[-2:] == ["ks", "psi"]
    row = next(line for line in lines if line.startswith("x "))
    assert float(row.split()[-2]) > 0.4
    assert "pushed" not in proc.stdout


def test_current_logs_may_be_a_folder_of_jsonl_files(datasets: dict[str, Path], tmp_path: Path) -> None:
    """The CronWorkflow downloads a log prefix into a folder: every .jsonl[.gz] below it is read."""
    import gzip

    lines = datasets["shifted"].read_text().splitlines(keepends=True)
    folder = tmp_path / "logs" / "2026" / "11"
    folder.mkdir(parents=True)
    half = len(lines) // 2
    (folder / "part-0001.jsonl").write_text("".join(lines[:half]))
    with gzip.open(folder / "part-0002.jsonl.gz", "wt") as handle:
        handle.write("".join(lines[half:]))
    (folder / "_SUCCESS").write_text("")
    args = ["--model", "m", "--reference", datasets["reference"], "--feature", "x:numeric", "--method", "ks"]
    from_folder = run_drift(*args, "--current", tmp_path / "logs", "--output", tmp_path / "folder.json")
    from_file = run_drift(*args, "--current", datasets["shifted"], "--output", tmp_path / "file.json")
    assert from_folder.returncode == 0 and from_file.returncode == 0, from_folder.stderr
    folder_report = json.loads((tmp_path / "folder.json").read_text())
    file_report = json.loads((tmp_path / "file.json").read_text())
    assert folder_report["features"] == file_report["features"]
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_one_line_error(run_drift(*args, "--current", empty), "folder holds no .jsonl or .jsonl.gz files")


def _timestamped(records: list[dict[str, Any]], start: float, step: float, iso: bool) -> list[dict[str, Any]]:
    from datetime import UTC, datetime

    out = []
    for i, record in enumerate(records):
        t = start + i * step
        stamp: Any = datetime.fromtimestamp(t, UTC).isoformat() if iso else t
        out.append({**record, "ts": stamp})
    return out


def test_window_keeps_only_records_of_the_last_hour(datasets: dict[str, Path], tmp_path: Path) -> None:
    """--window/--now keep [now - 1h, now]: a log of old stable traffic and recent shifted traffic scores the
    same as the recent part alone; ISO 8601 and epoch-second timestamps read alike."""
    from datetime import UTC, datetime

    now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC).timestamp()
    old = [json.loads(line) for line in datasets["stable"].read_text().splitlines()[:1000]]
    recent = [json.loads(line) for line in datasets["shifted"].read_text().splitlines()[:1000]]
    # old: 3h to 2h before now (epoch seconds); recent: within the last hour (ISO 8601 with offset)
    log = _timestamped(old, now - 3 * 3600, 3.6, iso=False) + _timestamped(recent, now - 3599, 3.599, iso=True)
    mixed = _write_jsonl(tmp_path / "mixed.jsonl", iter(log))
    only_recent = _write_jsonl(tmp_path / "recent.jsonl", iter(recent))
    base = ["--model", "m", "--reference", datasets["reference"], "--feature", "x:numeric", "--method", "ks"]
    windowed = run_drift(*base, "--current", mixed, "--window", "1h", "--now", "2026-11-02T12:00:00Z",
                         "--timestamp-field", "ts", "--output", tmp_path / "w.json")  # fmt: skip
    plain = run_drift(*base, "--current", only_recent, "--output", tmp_path / "p.json")
    whole = run_drift(*base, "--current", mixed, "--output", tmp_path / "all.json")
    assert windowed.returncode == plain.returncode == whole.returncode == 0, windowed.stderr
    w = json.loads((tmp_path / "w.json").read_text())["features"][0]
    p = json.loads((tmp_path / "p.json").read_text())["features"][0]
    a = json.loads((tmp_path / "all.json").read_text())["features"][0]
    assert w["n_current"] == 1000
    assert w["scores"] == p["scores"]
    assert a["n_current"] == 2000 and a["scores"]["ks"] < w["scores"]["ks"]


def test_window_sample_is_seeded_and_independent_of_file_order(datasets: dict[str, Path], tmp_path: Path) -> None:
    from llmops_compiler.runtime._logs import read_window

    lines = datasets["shifted"].read_text().splitlines(keepends=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "1.jsonl").write_text("".join(lines[:1500]))
    (tmp_path / "a" / "2.jsonl").write_text("".join(lines[1500:]))
    shuffled = list(lines)
    np.random.default_rng(0).shuffle(shuffled)
    (tmp_path / "b" / "only.jsonl").write_text("".join(shuffled))

    def ids(folder: Path, seed: int) -> list[str]:
        return [r.record["request_id"] for r in read_window(folder, sample_size=200, seed=seed).records]

    first = ids(tmp_path / "a", 1)
    assert len(first) == len(set(first)) == 200
    assert first == ids(tmp_path / "b", 1)  # same lines, other files and order: same sample, same order
    assert set(first) != set(ids(tmp_path / "a", 2))
    # a uniform sample: its mean of x is close to the whole window's (3000 records, sd 1: se of 200 ~ 0.07)
    by_id = {json.loads(line)["request_id"]: json.loads(line)["x"] for line in lines}
    assert np.mean([by_id[i] for i in first]) == pytest.approx(np.mean(list(by_id.values())), abs=0.25)
    # the CLI: --sample-size cuts --current only
    proc = run_drift("--model", "m", "--reference", datasets["reference"], "--current", tmp_path / "a",
                     "--feature", "x:numeric", "--sample-size", "200", "--seed", "1",
                     "--output", tmp_path / "s.json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    feature = json.loads((tmp_path / "s.json").read_text())["features"][0]
    assert (feature["n_reference"], feature["n_current"]) == (4000, 200)


def test_window_needs_readable_timestamps(datasets: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"x": 1.0, "ts": "2026-11-02T11:00:00Z"}\n{"x": 2.0, "ts": "yesterday"}\n')
    base = ["--model", "m", "--reference", datasets["reference"], "--feature", "x:numeric", "--current", log]
    proc = run_drift(*base, "--window", "1h", "--now", "2026-11-02T12:00:00Z", "--timestamp-field", "ts")
    _assert_one_line_error(proc, f"{log}:2:", "'ts'", "not an ISO 8601 timestamp")
    proc = run_drift(*base, "--window", "1h", "--now", "2026-11-02T12:00:00Z")
    _assert_one_line_error(proc, f"{log}:1:", "no timestamp field 'timestamp'")
    _assert_one_line_error(run_drift(*base, "--window", "an hour"), "--window: bad duration 'an hour'")
    _assert_one_line_error(run_drift(*base, "--window", "1h", "--now", "noon"), "--now: not an ISO 8601")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # from MLflow's SQLAlchemy store
def test_mlflow_logging(datasets: dict[str, Path], tmp_path: Path) -> None:
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_drift(
        "--model", "chat", "--reference", datasets["reference"], "--current", datasets["shifted"],
        "--feature", "x:numeric", "--feature", "lang:categorical", "--environment", "staging",
        "--mlflow-tracking-uri", tracking_uri, "--mlflow-experiment", "drift-chat",
        cwd=tmp_path,  # MLflow's default artifact root (./mlruns) lands here, not in the repository
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "logged to MLflow run" in proc.stdout
    run_id = proc.stdout.split("logged to MLflow run")[1].split()[0]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "drift-chat"
    assert set(run.data.metrics) == {f"drift.{f}.{m}" for f in ("x", "lang") for m in drift.METHODS}
    assert run.data.metrics["drift.x.ks"] > 0.4
    assert run.data.params["bins"] == "10"
    assert run.data.tags["llmops.model"] == "chat"
    assert run.data.tags["llmops.environment"] == "staging"
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert artifacts.is_relative_to(tmp_path)
    assert json.loads((artifacts / "drift.json").read_text())["model"] == "chat"


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == drift.EXIT_BAD_INPUT, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_malformed_jsonl_line_reports_file_and_line(datasets: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    good = datasets["stable"].read_text().splitlines()
    bad.write_text("\n".join([*good[:41], '{"x": 1.0, "prompt": "hi"', *good[41:60]]) + "\n")
    proc = run_drift("--model", "m", "--reference", datasets["reference"], "--current", bad,
                     "--feature", "x:numeric")  # fmt: skip
    _assert_one_line_error(proc, f"{bad}:42:", "malformed JSON")


def test_missing_field_is_named(datasets: dict[str, Path]) -> None:
    proc = run_drift("--model", "m", "--reference", datasets["reference"], "--current", datasets["stable"],
                     "--feature", "tokens:numeric:usage.total_tokens")  # fmt: skip
    _assert_one_line_error(proc, f"{datasets['reference']}:1:", "'usage.total_tokens'", "'tokens'")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--method", "wasserstein"], ["unknown method 'wasserstein'"]),
        (["--feature", "y:ordinal"], ["unknown type 'ordinal'"]),
        (["--feature", "y"], ["expected name:type[:field]"]),
        (["--feature", "prompt_length:numeric:prompt"], ["must be a finite number", ":1:"]),
        (["--min-samples", "100000"], ["at least 100000 needed"]),
        (["--bins", "0"], ["--bins must be >= 1"]),
    ],
)
def test_bad_arguments(datasets: dict[str, Path], args: list[str], needles: list[str]) -> None:
    base: list[str | Path] = ["--model", "m", "--reference", datasets["reference"]]
    base += ["--current", datasets["stable"]]
    feature: list[str] = [] if "--feature" in args else ["--feature", "x:numeric"]
    proc = run_drift(*base, *feature, *args)
    _assert_one_line_error(proc, *needles)


def test_missing_file_and_missing_argument(datasets: dict[str, Path], tmp_path: Path) -> None:
    proc = run_drift("--model", "m", "--reference", tmp_path / "nope.jsonl", "--current", datasets["stable"],
                     "--feature", "x:numeric")  # fmt: skip
    _assert_one_line_error(proc, "nope.jsonl: no such file")
    proc = run_drift("--model", "m", "--current", datasets["stable"], "--feature", "x:numeric")
    _assert_one_line_error(proc, "--reference")


def test_unreachable_pushgateway_fails_after_printing(datasets: dict[str, Path]) -> None:
    proc = run_drift("--model", "m", "--reference", datasets["reference"], "--current", datasets["stable"],
                     "--feature", "x:numeric", "--pushgateway", f"http://127.0.0.1:{free_port()}",
                     "--push-timeout", "5")  # fmt: skip
    assert proc.returncode == drift.EXIT_PUBLISH_FAILED == 3  # outside the step: the workflow retries
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("drift: error: push to")
    assert "x " in proc.stdout


DRIFT_RULES = {
    "groups": [
        {
            "name": "drift-test",
            "rules": [
                {"record": "llmops:drift_score:max", "expr": f"max by (model) ({DRIFT_SCORE})"},
                {
                    "alert": "FeatureDrift",
                    "expr": f'{DRIFT_SCORE}{{method="psi"}} > 0.25',
                    "labels": {"severity": "ticket"},
                    "annotations": {"summary": "drift of {{ $labels.feature }} on {{ $labels.model }}"},
                },
            ],
        }
    ]
}

ALERTMANAGER_CONFIG = """
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: blackhole
"""


def test_prometheus_scrapes_pushgateway_and_alerts(
    pushgw: Server, pushed: dict[str, Any], tmp_path: Path
) -> None:
    rules = tmp_path / "drift-rules.yaml"
    rules.write_text(yaml.safe_dump(DRIFT_RULES), encoding="utf-8")
    check = subprocess.run([tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with alertmanager(ALERTMANAGER_CONFIG) as am, prometheus([rules], [pushgw.url], am.url) as prom:
        promql = f'{DRIFT_SCORE}{{model="chat-shifted",feature="x",method="psi"}}'
        result = wait_for(lambda: query(prom.url, promql), timeout=30, message=promql)
        labels = result[0]["metric"]
        # honor_labels keeps the pushed job label instead of the scrape job's name
        assert labels["job"] == PUSH_JOB_DRIFT
        assert labels[LABEL_ENVIRONMENT] == "test"
        expected = pushed["scores"][("chat-shifted", "x", "psi")][0]
        assert float(result[0]["value"][1]) == pytest.approx(expected)
        # the recording rule ran
        recorded = wait_for(lambda: query(prom.url, 'llmops:drift_score:max{model="chat-shifted"}'), 30)
        assert float(recorded[0]["value"][1]) > 0.25

        # the alert reached Alertmanager, for the shifted features of the shifted model only
        def drift_alerts() -> set[tuple[str, str]]:
            found = {
                (a["labels"]["model"], a["labels"]["feature"])
                for a in alertmanager_alerts(am.url)
                if a["labels"]["alertname"] == "FeatureDrift" and a["labels"]["model"].startswith("chat-")
            }
            return found if len(found) == len(SHIFTED) else set()

        found = wait_for(drift_alerts, timeout=30, message="FeatureDrift alerts in Alertmanager")
        assert found == {("chat-shifted", f) for f in SHIFTED}
