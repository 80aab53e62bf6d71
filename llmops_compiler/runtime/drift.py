"""Drift check step: ``python -m llmops_compiler.runtime.drift``.

Reads a reference dataset and a window of production request logs (JSON Lines, optionally gzipped),
computes a drift score per feature and method, prints them, and pushes them to the Pushgateway as
``llmops_drift_score{model, feature, method}`` gauges (see :mod:`llmops_compiler.conventions`).
Optionally writes the results as JSON and logs them to MLflow.

The step never decides whether drift is "too much": it exits 0 whenever it could compute and publish
the scores, and the alert rules Prometheus evaluates do the judging.

Window: ``--window 1h`` keeps only the ``--current`` records whose ``--timestamp-field`` (default
``timestamp``; ISO 8601 or epoch seconds) falls in ``[now - window, now]`` (``--now`` for a fixed end, e.g. in
tests), and ``--sample-size N --seed S`` cuts them to a seeded uniform sample (see
:mod:`llmops_compiler.runtime._logs`, which also reads ``s3://bucket/prefix`` inputs). The reference is read
whole.

Exit codes: 0 scores computed (and pushed / logged where asked); 2 bad arguments or bad input (missing
file, malformed JSON line, missing field, too few samples, ...), reported as one ``error:`` line on
stderr without a traceback; 3 a service outside the step failed: the object store could not be read (no
connection, no credentials, a server error), or the scores were computed but pushing them or logging them
to MLflow failed (the workflow retries exit codes of 3 and above).

Features
--------
``--feature name:type[:field]`` (``field`` defaults to ``name``; a dotted field such as ``request.prompt``
walks nested objects when no key with that literal name exists):

``numeric``      the field is a number;
``length``       the field is a string, its length in characters is the feature;
``categorical``  the field is a string (numbers and booleans are taken as their text);
``embedding``    the field is a list of numbers of one fixed dimension; every vector is centred on the
                 reference mean and projected onto the reference's first principal component (from
                 ``numpy.linalg.svd``; the sign is fixed so that the component's largest-magnitude entry is
                 positive, which makes the projection deterministic). Drift orthogonal to that direction
                 is not seen: this is a cheap one-dimensional summary, not a full multivariate test.

Statistics
----------
Numeric features (``numeric``, ``length``, projected ``embedding``) are binned on cut points taken from
the **reference** only (:func:`bin_cuts`): the reference's interior quantiles (``bins - 1`` of them),
deduplicated. A value on which two or more of the quantiles ``0, 1/bins, ..., 1`` coincide (an atom: a
constant reference, a zero-inflated feature, an integer feature with few values) gets a bin of its own,
``[v, nextafter(v))``, so that mass moving onto or off it is seen. The outer bins are open-ended, so current
values outside the reference's range fall into the first or last bin.

``psi``  population stability index ``sum((c - r) * ln(c / r))`` over the bins, with ``r`` and ``c`` the
         reference and current proportions. It is symmetric in ``r`` and ``c`` and equals the symmetric
         Kullback-Leibler (Jeffreys) divergence ``KL(c || r) + KL(r || c)`` of the binned distributions, in
         nats, in ``[0, inf)``. Common reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift.
         Smoothing: an empty bin would make the index infinite, so an empty bin of a sample of ``n``
         records counts as half a record (``PSI_EMPTY_BIN_COUNT`` = 0.5) and that distribution is
         renormalised to sum to 1: the empty bin's proportion ``0.5 / (n + 0.5 k)`` (``k`` empty bins)
         stays below the smallest real proportion ``1 / n`` of that sample, so losing a bin or category
         entirely always scores more drift than keeping one record in it. This is the add-1/2 correction
         for empty cells of Haldane (1956, Ann. Hum. Genet. 20:309) and Anscombe (1956, Biometrika 43:461);
         a fixed epsilon (1e-4) does not scale with the sample and exceeds 1/n for n > 10,000. A
         distribution without empty bins is used as it is, so the index is exact whenever no bin is empty;
         a bin empty in both samples is left out.
``ks``   two-sample Kolmogorov-Smirnov statistic ``sup |F_ref - F_cur|`` of the raw (unbinned) samples, in
         ``[0, 1]``; identical to ``scipy.stats.ks_2samp(reference, current).statistic``.
``js``   Jensen-Shannon **distance** (the square root of the Jensen-Shannon divergence) in base 2 of the
         binned distributions, in ``[0, 1]``; identical to ``scipy.spatial.distance.jensenshannon(r, c,
         base=2)``. It is defined with empty bins, so it is computed without smoothing.

Categorical features use the category frequencies instead of bins (categories seen in either dataset):
``psi`` and ``js`` as above; ``ks`` is the total variation distance ``0.5 * sum |r - c|``, which is the
largest KS statistic over all orderings of the categories (so it does not depend on an arbitrary order),
in ``[0, 1]``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from llmops_compiler.conventions import (
    DRIFT_SCORE,
    LABEL_ENVIRONMENT,
    LABEL_FEATURE,
    LABEL_METHOD,
    LABEL_MODEL,
    PUSH_JOB_DRIFT,
)
from llmops_compiler.runtime._logs import (
    DEFAULT_TIMESTAMP_FIELD,
    MISSING,
    LogInputError,
    LogSourceUnavailable,
    lookup,
    parse_duration,
    parse_timestamp,
    read_window,
)

FloatArray = npt.NDArray[np.float64]

METHODS: Final = ("psi", "ks", "js")
FEATURE_TYPES: Final = ("numeric", "length", "categorical", "embedding")
DEFAULT_BINS: Final = 10
DEFAULT_MIN_SAMPLES: Final = 10
PSI_EMPTY_BIN_COUNT: Final = 0.5
"""Count given to an empty bin before the PSI is computed, then renormalised (Haldane-Anscombe add-1/2)."""

EXIT_OK: Final = 0
EXIT_BAD_INPUT: Final = 2
EXIT_UNAVAILABLE: Final = 3
EXIT_PUBLISH_FAILED: Final = EXIT_UNAVAILABLE
"""Pushing or logging the scores failed: a service outside the step, so the workflow retries (exit 3)."""

_FEATURE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class DriftInputError(Exception):
    """Bad arguments or bad input data; the message is shown to the user as one line."""


# --------------------------------------------------------------------------------------------------
# Statistics (pure functions)
# --------------------------------------------------------------------------------------------------


def _as_sample(values: npt.ArrayLike, what: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{what} sample is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} sample contains NaN or infinite values")
    return arr


def _sorted_sample(values: npt.ArrayLike, what: str) -> FloatArray:
    out: FloatArray = np.sort(_as_sample(values, what))
    return out


def _cuts_of_sorted(ref_sorted: FloatArray, bins: int) -> FloatArray:
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    quantiles = np.quantile(ref_sorted, np.linspace(0.0, 1.0, bins + 1))
    values, counts = np.unique(quantiles, return_counts=True)
    atoms = values[counts > 1]
    interior = np.unique(quantiles[1:-1])
    if atoms.size == 0:
        return interior
    return np.unique(np.concatenate([interior, atoms, np.nextafter(atoms, np.inf)]))


def _counts_of_sorted(values_sorted: FloatArray, cuts: FloatArray) -> npt.NDArray[np.int64]:
    # bin i holds cuts[i-1] <= x < cuts[i]; in a sorted sample the bins are contiguous slices.
    bounds = np.searchsorted(values_sorted, cuts, side="left")
    return np.diff(np.concatenate(([0], bounds, [values_sorted.size]))).astype(np.int64)


def bin_cuts(reference: npt.ArrayLike, bins: int = DEFAULT_BINS) -> FloatArray:
    """Cut points of the bins, from the reference's quantiles (see the module docstring).

    A value ``x`` falls into bin ``searchsorted(cuts, x, side="right")``, i.e. bin ``i`` holds
    ``cuts[i-1] <= x < cuts[i]``; there are ``len(cuts) + 1`` bins, the first and last open-ended.
    """
    return _cuts_of_sorted(_sorted_sample(reference, "reference"), bins)


def bin_counts(values: npt.ArrayLike, cuts: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Number of ``values`` in each of the ``len(cuts) + 1`` bins of :func:`bin_cuts`."""
    c = np.asarray(cuts, dtype=np.float64)
    return _counts_of_sorted(_sorted_sample(values, "values"), c)


def _binned_sorted(
    ref_sorted: FloatArray, cur_sorted: FloatArray, bins: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    cuts = _cuts_of_sorted(ref_sorted, bins)
    return _counts_of_sorted(ref_sorted, cuts), _counts_of_sorted(cur_sorted, cuts)


def binned_counts(
    reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = DEFAULT_BINS
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Reference and current record counts per bin (bins from the reference quantiles)."""
    return _binned_sorted(_sorted_sample(reference, "reference"), _sorted_sample(current, "current"), bins)


def binned_proportions(
    reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = DEFAULT_BINS
) -> tuple[FloatArray, FloatArray]:
    """Reference and current proportions per bin (bins from the reference quantiles), unsmoothed."""
    r, c = binned_counts(reference, current, bins)
    return _proportions(r), _proportions(c)


def _proportions(counts: npt.ArrayLike) -> FloatArray:
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError("a distribution must be a non-empty vector of non-negative counts")
    total = c.sum()
    if total <= 0:
        raise ValueError("distribution has no mass")
    out: FloatArray = c / total
    return out


def smooth(counts: npt.ArrayLike, empty_bin_count: float = PSI_EMPTY_BIN_COUNT) -> FloatArray:
    """Proportions of record ``counts`` per bin, an empty bin counted as ``empty_bin_count`` records, then
    renormalised (counts without empty bins give their plain proportions). See the module docstring."""
    c = np.asarray(counts, dtype=np.float64)
    _proportions(c)  # validates: non-empty, non-negative, some mass
    if np.all(c > 0):
        return _proportions(c)
    return _proportions(np.where(c > 0, c, empty_bin_count))


def psi_from_counts(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """PSI ``sum((c - r) * ln(c / r))`` of two binned samples given as record counts per bin, smoothed with
    :func:`smooth` (so they must be counts, not proportions, when a bin is empty).

    A bin empty in both samples is dropped first: it says nothing about drift, and smoothing it by each
    sample's own size would make two samples of one distribution but different sizes differ.
    Equal to the Jeffreys divergence ``KL(c || r) + KL(r || c)``; symmetric in its two arguments.
    """
    ref_counts = np.asarray(reference, dtype=np.float64)
    cur_counts = np.asarray(current, dtype=np.float64)
    if ref_counts.shape != cur_counts.shape:
        raise ValueError(f"distributions have {ref_counts.size} and {cur_counts.size} bins")
    used = (ref_counts > 0) | (cur_counts > 0)
    r = smooth(ref_counts[used] if used.any() else ref_counts)
    c = smooth(cur_counts[used] if used.any() else cur_counts)
    return max(float(np.sum((c - r) * np.log(c / r))), 0.0)


def js_from_proportions(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Jensen-Shannon distance, base 2, of two binned distributions (no smoothing), in [0, 1]."""
    p = _proportions(reference)
    q = _proportions(current)
    if p.shape != q.shape:
        raise ValueError(f"distributions have {p.size} and {q.size} bins")
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_pm = np.where(p > 0, p * np.log2(p / m), 0.0)
        kl_qm = np.where(q > 0, q * np.log2(q / m), 0.0)
    divergence = 0.5 * float(np.sum(kl_pm) + np.sum(kl_qm))
    return min(math.sqrt(max(divergence, 0.0)), 1.0)


def tv_from_proportions(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Total variation distance ``0.5 * sum |r - c|``, in [0, 1]."""
    p = _proportions(reference)
    q = _proportions(current)
    if p.shape != q.shape:
        raise ValueError(f"distributions have {p.size} and {q.size} bins")
    return min(0.5 * float(np.sum(np.abs(p - q))), 1.0)


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = DEFAULT_BINS) -> float:
    """Population stability index of a numeric feature (see the module docstring)."""
    return psi_from_counts(*binned_counts(reference, current, bins))


def js(reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = DEFAULT_BINS) -> float:
    """Jensen-Shannon distance (base 2) of a numeric feature's binned distributions."""
    return js_from_proportions(*binned_counts(reference, current, bins))


def _ks_sorted(a: FloatArray, b: FloatArray) -> float:
    # Merge the two sorted samples (a stable argsort of two sorted runs is a linear merge), walk the
    # merged order keeping n2 * n1 * (F_a - F_b) as exact integers, and read it at the last element of
    # each run of equal values, where both right-continuous ECDFs are defined.
    n1, n2 = a.size, b.size
    merged = np.concatenate((a, b))
    order = np.argsort(merged, kind="stable")
    count_a = np.cumsum(order < n1)
    diff = count_a * n2 - (np.arange(1, n1 + n2 + 1) - count_a) * n1
    values = merged[order]
    distinct = values[1:] != values[:-1]
    if not distinct.all():
        diff = diff[np.append(distinct, True)]
    return float(np.abs(diff).max()) / (n1 * n2)


def ks(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``sup |F_ref - F_cur|``.

    Equal to ``scipy.stats.ks_2samp(reference, current).statistic``; computed exactly in integers from
    one merge of the two sorted samples.
    """
    return _ks_sorted(_sorted_sample(reference, "reference"), _sorted_sample(current, "current"))


def category_counts(
    reference: Iterable[Hashable], current: Iterable[Hashable]
) -> tuple[list[Hashable], FloatArray, FloatArray]:
    """Categories seen in either sample (in a stable order) and their reference and current counts."""
    ref_counts = Counter(reference)
    cur_counts = Counter(current)
    if not ref_counts:
        raise ValueError("reference sample is empty")
    if not cur_counts:
        raise ValueError("current sample is empty")
    categories = sorted(ref_counts.keys() | cur_counts.keys(), key=lambda c: (type(c).__name__, str(c)))
    r = np.array([ref_counts.get(c, 0) for c in categories], dtype=np.float64)
    c = np.array([cur_counts.get(k, 0) for k in categories], dtype=np.float64)
    return categories, r, c


def category_proportions(
    reference: Iterable[Hashable], current: Iterable[Hashable]
) -> tuple[list[Hashable], FloatArray, FloatArray]:
    """Categories seen in either sample (in a stable order) and their reference and current frequencies."""
    categories, r, c = category_counts(reference, current)
    return categories, _proportions(r), _proportions(c)


def psi_categorical(reference: Iterable[Hashable], current: Iterable[Hashable]) -> float:
    """PSI over category counts (empty categories smoothed like empty bins)."""
    _, r, c = category_counts(reference, current)
    return psi_from_counts(r, c)


def js_categorical(reference: Iterable[Hashable], current: Iterable[Hashable]) -> float:
    """Jensen-Shannon distance (base 2) over category frequencies."""
    _, r, c = category_proportions(reference, current)
    return js_from_proportions(r, c)


def ks_categorical(reference: Iterable[Hashable], current: Iterable[Hashable]) -> float:
    """Total variation distance: the largest KS statistic over all orderings of the categories."""
    _, r, c = category_proportions(reference, current)
    return tv_from_proportions(r, c)


def first_principal_component(reference: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Mean and unit first principal component of a reference matrix (rows are samples), sign fixed.

    Uses the SVD of the centred matrix when it has fewer rows than columns, else the SVD of its
    ``d x d`` scatter matrix (same right singular vectors, far cheaper for many rows).
    """
    x = np.asarray(reference, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"reference embeddings must be a non-empty 2-D array, got shape {x.shape}")
    mean = x.mean(axis=0)
    centred = x - mean
    if x.shape[0] < x.shape[1]:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
    else:
        _, _, vt = np.linalg.svd(centred.T @ centred)
    direction = vt[0]
    pivot = int(np.argmax(np.abs(direction)))
    if direction[pivot] < 0:
        direction = -direction
    return mean, direction


def project_embeddings(
    reference: npt.ArrayLike, current: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Both embedding matrices projected onto the reference's first principal component."""
    mean, direction = first_principal_component(reference)
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if cur.ndim != 2 or cur.shape[1] != ref.shape[1]:
        raise ValueError(f"current embeddings have shape {cur.shape}, reference {ref.shape}")
    return (ref - mean) @ direction, (cur - mean) @ direction


def numeric_scores(
    reference: npt.ArrayLike, current: npt.ArrayLike, methods: Sequence[str], bins: int = DEFAULT_BINS
) -> dict[str, float]:
    """Scores of a numeric sample for each method, sorting each sample once for all of them."""
    ref = _sorted_sample(reference, "reference")
    cur = _sorted_sample(current, "current")
    out: dict[str, float] = {}
    if "psi" in methods or "js" in methods:
        r, c = _binned_sorted(ref, cur, bins)
        out["psi"] = psi_from_counts(r, c)
        out["js"] = js_from_proportions(r, c)
    if "ks" in methods:
        out["ks"] = _ks_sorted(ref, cur)
    return {m: out[m] for m in methods}


def categorical_scores(
    reference: Sequence[Hashable], current: Sequence[Hashable], methods: Sequence[str]
) -> dict[str, float]:
    _, r, c = category_counts(reference, current)
    table = {"psi": psi_from_counts, "js": js_from_proportions, "ks": tv_from_proportions}
    return {m: table[m](r, c) for m in methods}


# --------------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: str
    field: str

    @classmethod
    def parse(cls, spec: str) -> FeatureSpec:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise DriftInputError(f"bad --feature {spec!r}: expected name:type[:field]")
        name, kind = parts[0], parts[1]
        if not _FEATURE_NAME.match(name):
            raise DriftInputError(f"bad --feature {spec!r}: feature name {name!r} has invalid characters")
        if kind not in FEATURE_TYPES:
            raise DriftInputError(
                f"bad --feature {spec!r}: unknown type {kind!r} (expected one of {', '.join(FEATURE_TYPES)})"
            )
        return cls(name=name, type=kind, field=parts[2] if len(parts) == 3 else name)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _extract(feature: FeatureSpec, value: Any, where: str) -> Any:
    if value is MISSING or value is None:
        what = "no field" if value is MISSING else "a null field"
        raise DriftInputError(f"{where}: record has {what} {feature.field!r} (feature {feature.name!r})")
    bad = f"{where}: field {feature.field!r} (feature {feature.name!r}, type {feature.type})"
    if feature.type == "numeric":
        if not _is_number(value) or not math.isfinite(value):
            raise DriftInputError(f"{bad} must be a finite number, got {json.dumps(value)[:60]}")
        return float(value)
    if feature.type == "length":
        if not isinstance(value, str):
            raise DriftInputError(f"{bad} must be a string, got {type(value).__name__}")
        return len(value)
    if feature.type == "categorical":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        raise DriftInputError(f"{bad} must be a string, got {type(value).__name__}")
    # embedding
    if (
        not isinstance(value, list)
        or not value
        or not all(_is_number(v) and math.isfinite(v) for v in value)
    ):
        raise DriftInputError(f"{bad} must be a non-empty list of finite numbers")
    return value


def read_features(
    path: Path | str,
    features: Sequence[FeatureSpec],
    *,
    window: float | None = None,
    now: float | None = None,
    timestamp_field: str = DEFAULT_TIMESTAMP_FIELD,
    sample_size: int | None = None,
    seed: int = 0,
) -> dict[str, list[Any]]:
    """Every feature's value from every record of ``path`` (a JSONL file, folder or ``s3://`` prefix), the
    records cut to a time window and a seeded sample as :func:`llmops_compiler.runtime._logs.read_window`
    does (all records when ``window`` and ``sample_size`` are ``None``)."""
    try:
        logs = read_window(
            path, window=window, now=now, timestamp_field=timestamp_field, sample_size=sample_size, seed=seed
        )
    except LogSourceUnavailable:
        raise
    except LogInputError as exc:
        raise DriftInputError(str(exc)) from None
    values: dict[str, list[Any]] = {f.name: [] for f in features}
    dims: dict[str, int] = {}
    for item in logs.records:
        where, record = item.where, item.record
        for feature in features:
            value = _extract(feature, lookup(record, feature.field), where)
            if feature.type == "embedding":
                dim = dims.setdefault(feature.name, len(value))
                if len(value) != dim:
                    raise DriftInputError(
                        f"{where}: field {feature.field!r} (feature {feature.name!r}) has dimension "
                        f"{len(value)}, earlier records {dim}"
                    )
            values[feature.name].append(value)
    return values


# --------------------------------------------------------------------------------------------------
# Scoring, publishing
# --------------------------------------------------------------------------------------------------


@dataclass
class FeatureResult:
    feature: str
    type: str
    field: str
    n_reference: int
    n_current: int
    scores: dict[str, float] = dataclass_field(default_factory=dict)


def score_features(
    features: Sequence[FeatureSpec],
    reference: dict[str, list[Any]],
    current: dict[str, list[Any]],
    methods: Sequence[str],
    bins: int,
    min_samples: int,
) -> list[FeatureResult]:
    results: list[FeatureResult] = []
    for feature in features:
        ref_values, cur_values = reference[feature.name], current[feature.name]
        for which, vals in (("reference", ref_values), ("current", cur_values)):
            if len(vals) < min_samples:
                raise DriftInputError(
                    f"feature {feature.name!r}: {len(vals)} {which} samples, at least {min_samples} needed"
                )
        if feature.type == "categorical":
            scores = categorical_scores(ref_values, cur_values, methods)
        else:
            if feature.type == "embedding":
                ref_arr = np.asarray(ref_values, dtype=np.float64)
                cur_arr = np.asarray(cur_values, dtype=np.float64)
                if ref_arr.shape[1] != cur_arr.shape[1]:
                    raise DriftInputError(
                        f"feature {feature.name!r}: reference embeddings have dimension {ref_arr.shape[1]}, "
                        f"current {cur_arr.shape[1]}"
                    )
                ref_1d, cur_1d = project_embeddings(ref_arr, cur_arr)
            else:
                ref_1d = np.asarray(ref_values, dtype=np.float64)
                cur_1d = np.asarray(cur_values, dtype=np.float64)
            scores = numeric_scores(ref_1d, cur_1d, methods, bins)
        results.append(
            FeatureResult(feature.name, feature.type, feature.field, len(ref_values), len(cur_values), scores)
        )
    return results


def push_scores(
    url: str,
    job: str,
    model: str,
    results: Sequence[FeatureResult],
    grouping: dict[str, str],
    timeout: float = 30.0,
) -> None:
    """Replace the group ``{job, model, <grouping>}`` on the Pushgateway with these scores (HTTP PUT)."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    gauge = Gauge(
        DRIFT_SCORE,
        "Drift of a model input feature between the reference data and recent production traffic.",
        labelnames=(LABEL_MODEL, LABEL_FEATURE, LABEL_METHOD),
        registry=registry,
    )
    for result in results:
        for method, score in result.scores.items():
            gauge.labels(model, result.feature, method).set(score)
    push_to_gateway(url, job=job, registry=registry, grouping_key=grouping, timeout=timeout)


def log_to_mlflow(
    tracking_uri: str,
    experiment: str | None,
    model: str,
    args: argparse.Namespace,
    results: Sequence[FeatureResult],
    report: dict[str, Any],
) -> str:
    """Log parameters, one metric per feature and method, and the JSON report; returns the run id."""
    import mlflow

    from llmops_compiler.runtime._common import quiet_libraries

    quiet_libraries()

    mlflow.set_tracking_uri(tracking_uri)
    if experiment:
        mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"drift-{model}") as run:
        mlflow.set_tags({"llmops.step": "drift", "llmops.model": model})
        if args.environment:
            mlflow.set_tag("llmops.environment", args.environment)
        mlflow.log_params(
            {
                "model": model,
                "reference": str(args.reference),
                "current": str(args.current),
                "bins": args.bins,
                "methods": ",".join(report["methods"]),
                "features": ",".join(f"{r.feature}:{r.type}:{r.field}" for r in results),
            }
        )
        metrics = {
            re.sub(r"[^A-Za-z0-9_\-./ ]", "_", f"drift.{r.feature}.{m}"): s
            for r in results
            for m, s in r.scores.items()
        }
        mlflow.log_metrics(metrics)
        mlflow.log_dict(report, "drift.json")
        return str(run.info.run_id)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, no usage block
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m llmops_compiler.runtime.drift",
        description="Compute per-feature drift between reference data and production logs, "
        "and push it to the Prometheus Pushgateway.",
    )
    p.add_argument("--model", required=True, help="model name (label 'model')")
    p.add_argument(
        "--reference", required=True, help="reference dataset: a JSONL file (.gz ok), a folder or an s3:// prefix"
    )
    p.add_argument(
        "--current",
        required=True,
        help="production request logs: a JSONL file (.gz ok), a folder of them, or an s3://bucket/prefix",
    )
    p.add_argument(
        "--window",
        metavar="DURATION",
        help="keep only --current records of the last DURATION (e.g. 1h, 30m, 7d) before --now; default all",
    )
    p.add_argument("--now", metavar="ISO8601", help="end of the window (default: the current time)")
    p.add_argument(
        "--timestamp-field",
        default=DEFAULT_TIMESTAMP_FIELD,
        help=f"field holding each record's time, ISO 8601 or epoch seconds (default {DEFAULT_TIMESTAMP_FIELD})",
    )
    p.add_argument(
        "--sample-size", type=int, metavar="N", help="cut the --current records to a seeded sample of N"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument(
        "--feature",
        action="append",
        required=True,
        metavar="NAME:TYPE[:FIELD]",
        help=f"feature to check (repeatable); TYPE one of {', '.join(FEATURE_TYPES)}",
    )
    p.add_argument(
        "--method",
        action="append",
        metavar="METHOD",
        help=f"drift statistic (repeatable or comma-separated): {', '.join(METHODS)}; default all",
    )
    p.add_argument("--bins", type=int, default=DEFAULT_BINS, help="quantile bins for psi/js (default 10)")
    p.add_argument(
        "--min-samples",
        type=int,
        default=DEFAULT_MIN_SAMPLES,
        help="fail when a dataset has fewer records than this (default 10)",
    )
    p.add_argument("--pushgateway", help="Pushgateway URL; without it the scores are only printed")
    p.add_argument("--job", default=PUSH_JOB_DRIFT, help=f"Pushgateway job (default {PUSH_JOB_DRIFT})")
    p.add_argument("--environment", help="environment, added to the Pushgateway grouping key")
    p.add_argument(
        "--grouping-label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Pushgateway grouping label (repeatable), e.g. check=<name> when several checks "
        "of one model push separately (a push replaces the whole group)",
    )
    p.add_argument("--push-timeout", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument("--output", type=Path, help="write the results as JSON to this file")
    p.add_argument("--mlflow-tracking-uri", help="log the scores to this MLflow tracking server")
    p.add_argument("--mlflow-experiment", help="MLflow experiment name")
    return p


def _parse_methods(raw: Sequence[str] | None) -> list[str]:
    if not raw:
        return list(METHODS)
    methods: list[str] = []
    for item in raw:
        for m in item.split(","):
            m = m.strip().lower()
            if m not in METHODS:
                raise DriftInputError(f"unknown method {m!r} (expected one of {', '.join(METHODS)})")
            if m not in methods:
                methods.append(m)
    return methods


def _parse_grouping(model: str, environment: str | None, raw: Sequence[str]) -> dict[str, str]:
    grouping = {LABEL_MODEL: model}
    if environment:
        grouping[LABEL_ENVIRONMENT] = environment
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key) or not value:
            raise DriftInputError(f"bad --grouping-label {item!r}: expected KEY=VALUE")
        if key in ("job", LABEL_FEATURE, LABEL_METHOD) or key in grouping:
            raise DriftInputError(f"bad --grouping-label {item!r}: label {key!r} is already set")
        grouping[key] = value
    return grouping


def _parse_window(window: str | None, now: str | None) -> tuple[float | None, float | None]:
    """``--window`` in seconds and ``--now`` in epoch seconds (``None`` when not given)."""
    try:
        seconds = parse_duration(window) if window else None
    except ValueError as exc:
        raise DriftInputError(f"--window: {exc}") from None
    try:
        end = parse_timestamp(now) if now else None
    except ValueError as exc:
        raise DriftInputError(f"--now: {exc}") from None
    return seconds, end


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        methods = _parse_methods(args.method)
        features = [FeatureSpec.parse(s) for s in args.feature]
        names = [f.name for f in features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DriftInputError(f"feature {dupes[0]!r} given more than once")
        if args.bins < 1:
            raise DriftInputError(f"--bins must be >= 1, got {args.bins}")
        if args.min_samples < 1:
            raise DriftInputError(f"--min-samples must be >= 1, got {args.min_samples}")
        if not args.model.strip():
            raise DriftInputError("--model must not be empty")
        grouping = _parse_grouping(args.model, args.environment, args.grouping_label)
        window, now = _parse_window(args.window, args.now)
        if args.sample_size is not None and args.sample_size < 1:
            raise DriftInputError(f"--sample-size must be >= 1, got {args.sample_size}")
        reference = read_features(args.reference, features)
        current = read_features(
            args.current,
            features,
            window=window,
            now=now,
            timestamp_field=args.timestamp_field,
            sample_size=args.sample_size,
            seed=args.seed,
        )
        results = score_features(features, reference, current, methods, args.bins, args.min_samples)
    except LogSourceUnavailable as exc:
        print(f"drift: error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (DriftInputError, ValueError) as exc:
        print(f"drift: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    report: dict[str, Any] = {
        "model": args.model,
        "environment": args.environment,
        "reference": str(args.reference),
        "current": str(args.current),
        "window": args.window,
        "now": args.now,
        "sample_size": args.sample_size,
        "bins": args.bins,
        "methods": methods,
        "metric": DRIFT_SCORE,
        "features": [asdict(r) for r in results],
        "seconds": round(time.monotonic() - started, 3),
    }
    width = max(len("feature"), *(len(r.feature) for r in results))
    print(f"drift of model {args.model!r}: {args.reference} -> {args.current}")
    header = f"{'feature':<{width}}  {'type':<11}  {'n_ref':>8}  {'n_cur':>8}  "
    print(header + "  ".join(f"{m:>8}" for m in methods))
    for r in results:
        print(
            f"{r.feature:<{width}}  {r.type:<11}  {r.n_reference:>8}  {r.n_current:>8}  "
            + "  ".join(f"{r.scores[m]:>8.4f}" for m in methods)
        )

    status = EXIT_OK
    if args.output:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"drift: error: cannot write {args.output}: {exc}", file=sys.stderr)
            status = EXIT_PUBLISH_FAILED
    if args.pushgateway:
        try:
            push_scores(args.pushgateway, args.job, args.model, results, grouping, args.push_timeout)
            print(f"pushed {sum(len(r.scores) for r in results)} {DRIFT_SCORE} series to {args.pushgateway}")
        except Exception as exc:  # network, HTTP error status: report in one line
            msg = " ".join(str(exc).split())
            print(f"drift: error: push to {args.pushgateway} failed: {type(exc).__name__}: {msg}", file=sys.stderr)
            status = EXIT_PUBLISH_FAILED
    if args.mlflow_tracking_uri:
        try:
            run_id = log_to_mlflow(
                args.mlflow_tracking_uri, args.mlflow_experiment, args.model, args, results, report
            )
            print(f"logged to MLflow run {run_id}")
        except Exception as exc:
            msg = " ".join(str(exc).split())[:300]
            print(f"drift: error: MLflow logging failed: {type(exc).__name__}: {msg}", file=sys.stderr)
            status = EXIT_PUBLISH_FAILED
    return status


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
