"""Continuous evaluation step: ``python -m llmops_compiler.runtime.score``.

Reads a bounded window of production records (JSON Lines, ``.gz`` ok: a file, a folder, or an
``s3://bucket/prefix``, the same logs the drift check reads), computes each requested quality metric, prints
them, pushes them to the Pushgateway as ``llmops_quality_score{model, metric}`` gauges with the number of
records behind each as ``llmops_quality_records{model, metric}``, and optionally writes a JSON report and
logs to MLflow. Like the drift step it never judges: alerts fire in Prometheus when a score stays below the
Monitor's minimum.

Command line::

    python -m llmops_compiler.runtime.score --model M --logs PATH_OR_S3 --metric NAME[=METHOD] [...]
      [--window 1h] [--now ISO8601] [--timestamp-field timestamp] [--sample-size 1000] [--seed 0]
      [--request-field prompt] [--response-field response] [--context-field context]
      [--reference-field reference] [--feedback-field FIELD ...] [--rating-range 1:5]
      [--embedding-model NAME_OR_PATH] [--batch-size 64] [--groundedness-threshold 0.5]
      [--nli-model PATH] [--nli-threshold 0.5]
      [--judge-url URL --judge-model NAME [--judge-token-env VAR] [--judge-max-concurrency 4]
       [--judge-max-requests 1000] [--judge-max-tokens N] [--judge-max-completion-tokens 256]
       [--judge-timeout 60] [--judge-retries 3] [--judge-criterion NAME=TEXT ...]]
      [--safety-classifier-url URL [--safety-classifier-token-env VAR]
       [--safety-classifier-label INJECTION ...] [--safety-classifier-threshold 0.5]]
      [--pii-entity ENTITY ...] [--pii-min-score 0.4]
      [--pushgateway URL [--job llmops-quality] [--environment ENV] [--grouping-label KEY=VALUE ...]
       [--push-timeout 30] [--metric-name llmops_quality_score] [--records-metric-name llmops_quality_records]]
      [--mlflow-tracking-uri URI [--mlflow-experiment NAME]] [--output FILE]

The window and sample are :func:`llmops_compiler.runtime._logs.read_window`'s: records whose
``--timestamp-field`` (ISO 8601 or epoch seconds) falls in ``[now - window, now]``, cut to a seeded uniform
sample of ``--sample-size`` (default 1000; ``0`` keeps every record). Field options take dotted paths into
nested objects (``request.messages``). The context field holds a string, a list of strings, or a list of
objects with a ``text``, ``page_content`` or ``content`` string (what retrievers return).

Metrics
-------
Every score is in ``[0, 1]`` and higher is better. A metric's score is the mean of its per-record scores
over the records that have what it needs; the others are counted per reason (``no context``, ...) in the
report. A metric without a single scorable record pushes no score, only ``llmops_quality_records = 0``, and
says why on stdout: an empty window stays visible and never reads as a perfect (or failing) score.

``groundedness`` (``embedding`` default, ``nli``, ``judge``): the share of answer sentences supported by the
    retrieved context. Sentences come from spaCy's rule-based ``sentencizer`` on a blank English pipeline;
    fragments of fewer than ``MIN_CLAIM_WORDS`` words ("Sure!") are not claims and are not counted.
    *embedding*: a sentence is supported when its largest cosine similarity to a context unit (each chunk
    and each sentence of each chunk: a long chunk's embedding blurs the facts in it and the model reads at
    most 256 word pieces) is at least ``--groundedness-threshold`` (:data:`GROUNDEDNESS_THRESHOLD`), with
    the ``--embedding-model`` (the retrieving KnowledgeBase's model, so answer and context live in the space
    the retriever uses). *nli*: supported when some chunk entails it, ``P(entailment | premise=chunk,
    hypothesis=sentence) >= --nli-threshold`` with the ``--nli-model`` (a Hugging Face sequence classifier
    whose ``id2label`` names an entailment label). *judge*: the judge's 1-5 grade of the whole answer.
``relevance`` (``embedding``, ``judge``): ``max(0, cos(question, answer))`` of the embeddings.
``similarity`` (``embedding``, ``judge``): ``max(0, cos(answer, reference))``; records without a reference
    answer are not scorable.
``safety`` (``pattern`` default, ``classifier`` default with ``--safety-classifier-url``, ``judge``):
    ``1 - share of requests flagged`` as prompt injection or jailbreak. *pattern*: :data:`INJECTION_PATTERNS`,
    phrasings documented in OWASP's Top 10 for LLM Applications 2025 (LLM01 Prompt Injection), Perez & Ribeiro
    2022 ("Ignore Previous Prompt": goal hijacking, prompt leaking) and Shen et al. 2024 ("Do Anything Now":
    in-the-wild jailbreak personas). *classifier*: ``POST URL`` with ``{"inputs": [request, ...]}`` (Hugging
    Face text-classification shape, as Text Embeddings Inference's ``/predict`` serves it), replying per input
    with ``[{"label", "score"}, ...]`` (or one such object); a request is flagged when a label in
    ``--safety-classifier-label`` (case-insensitive; default INJECTION, JAILBREAK) scores at least the
    threshold.
``privacy`` (``pattern`` default, ``judge``): ``1 - share of responses that leak PII``, found by presidio's
    pattern recognizers (:class:`llmops_compiler.runtime.curate.PiiDetector`; entities and minimum score by
    option).
``feedback`` (``feedback``): the mean user feedback among records that carry one, from the first present
    ``--feedback-field``: ``true``/``up``/``thumbs_up``/``positive``/``like`` = 1, their opposites = 0, a number
    scaled linearly from ``--rating-range LOW:HIGH`` to ``[0, 1]`` and clipped.
any other name (``judge``): the LLM judge grades the criterion ``--judge-criterion NAME=TEXT`` (else the
    name itself) from 1 to 5, mapped to ``(s - 1) / 4`` (see :mod:`llmops_compiler.runtime.judge` for the
    request, retries, the cost bound and what a failure does).

Exit codes: 0 scores computed and published (whatever they are); 2 bad arguments or unreadable input (one
``score: error:`` line on stderr, no traceback); 3 a service outside the step failed, so the workflow
retries: writing ``--output``, pushing or logging to MLflow after the scores were computed; an object store
that could not be read (no connection, no credentials, a server error); a judge or classifier the metrics
needed that answered no request at all (unreachable, refusing, always 5xx: the other metrics are still
published first, the judged ones push only their records gauge (0), and the run fails so the outage is seen
rather than read as "no data"); any other failure
outside the step's control (a model that does not load or run), reported in one line."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from llmops_compiler.conventions import (
    LABEL_ENVIRONMENT,
    LABEL_METRIC,
    LABEL_MODEL,
    PUSH_JOB_QUALITY,
    QUALITY_METHODS,
    QUALITY_SCORE,
)
from llmops_compiler.runtime._logs import (
    DEFAULT_TIMESTAMP_FIELD,
    MISSING,
    LogInputError,
    LogSourceUnavailable,
    LogWindow,
    lookup,
    parse_duration,
    parse_timestamp,
    read_window,
)

QUALITY_RECORDS: Final = "llmops_quality_records"
"""Gauge of the number of records behind each pushed score (0 when none could be scored)."""

EXIT_OK: Final = 0
EXIT_BAD_INPUT: Final = 2
EXIT_UNAVAILABLE: Final = 3
EXIT_PUBLISH_FAILED: Final = EXIT_UNAVAILABLE
"""Writing, pushing or logging the scores failed: outside the step, so the workflow retries (exit 3)."""

DEFAULT_SAMPLE_SIZE: Final = 1000
DEFAULT_BATCH_SIZE: Final = 64
GROUNDEDNESS_THRESHOLD: Final = 0.5
"""Cosine similarity from which an answer sentence counts as supported by a context unit (embedding method).

Calibrated for sentence-transformers' all-MiniLM-L6-v2 (the project's default KnowledgeBase model) on the
hand-labelled records in ``tests/fixtures/quality/labelled.jsonl``: every supported sentence there scores
0.54 or more, and 10 of the 11 unsupported ones 0.42 or less. Embedding similarity measures closeness of
topic, not entailment: the eleventh unsupported sentence restates the question's topic with invented facts
and scores 0.66. Where that matters use ``groundedness=nli`` or ``groundedness=judge``. Another embedding
model needs its own threshold (``--groundedness-threshold``)."""
NLI_THRESHOLD: Final = 0.5
"""Entailment probability from which a chunk supports a sentence (the NLI method): the more likely label."""
MIN_CLAIM_WORDS: Final = 3
"""Sentences with fewer words ("Sure!", "Yes.") are not claims and do not count towards groundedness."""
RATING_RANGE: Final = (1.0, 5.0)
CLASSIFIER_LABELS: Final = ("INJECTION", "JAILBREAK")
CLASSIFIER_THRESHOLD: Final = 0.5
CLASSIFIER_BATCH: Final = 32
CONTEXT_TEXT_KEYS: Final = ("text", "page_content", "content")

#: Metric -> the methods it can be computed with; the first is the default.
METHODS: Final = QUALITY_METHODS
EMBEDDING_METRICS: Final = ("groundedness", "relevance", "similarity")

_I = re.IGNORECASE
#: Prompt-injection and jailbreak phrasings (name, regular expression); sources in the module docstring.
INJECTION_PATTERNS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    (
        "override-instructions",
        re.compile(
            r"\b(ignore|disregard|forget|override|bypass)\b[^.?!\n]{0,40}?"
            r"\b(previous|prior|above|earlier|preceding|all|any|your|the|system|initial|original)\b[^.?!\n]{0,30}?"
            r"\b(instructions?|prompts?|rules|directions|directives|guidelines|guardrails|constraints)\b",
            _I,
        ),
    ),
    (
        "prompt-leak",
        re.compile(
            r"\b(reveal|print|show|repeat|output|display|leak|dump|tell me|give me|what (is|are))\b[^.?!\n]{0,30}?"
            r"\b(system prompt|(hidden|secret|initial|original|system) (instructions|prompt|rules)"
            r"|your (instructions|prompt|rules))\b",
            _I,
        ),
    ),
    ("do-anything-now", re.compile(r"\bdo anything now\b|(?-i:\bDAN\b)", _I)),
    (
        "unrestricted-mode",
        re.compile(
            r"\b(developer|god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|sudo)\s+mode\b", _I
        ),
    ),
    (
        "unrestricted-persona",
        re.compile(
            r"\b(you are now|you're now|from now on|act as|pretend (to be|you are|you're)|roleplay as|behave as)\b"
            r"[^.?!\n]{0,60}?\b(unfiltered|uncensored|unrestricted|jailbroken|amoral|unethical"
            r"|(no|without|free (of|from)|not bound by)\s+(any\s+)?(restrictions|limitations|limits|filters"
            r"|content polic(y|ies)|guidelines|censorship|rules|ethics|morals))\b",
            _I,
        ),
    ),
    ("new-instructions", re.compile(r"\b(new|updated|real|actual)\s+(system\s+)?instructions\s*:", _I)),
    (
        "role-marker",
        re.compile(
            r"<\|?(system|im_start|im_end)\|?>|\[/?(system|INST)\]|^\s*#{2,}\s*(system|instruction)s?\b", _I | re.M
        ),
    ),
)


class ScoreInputError(Exception):
    """Bad arguments or unreadable input; shown as one line."""


class ServiceUnavailable(Exception):
    """A judge or classifier answered no request."""


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fields:
    """Where each part of a production record lives (dotted paths)."""

    request: str = "prompt"
    response: str = "response"
    context: str = "context"
    reference: str = "reference"
    feedback: tuple[str, ...] = ()


@dataclass(frozen=True)
class Example:
    """The parts of one production record a metric may use (``None`` or empty when the record lacks them)."""

    where: str
    question: str | None
    answer: str | None
    context: tuple[str, ...]
    reference: str | None
    feedback: Any = None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _context(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if not isinstance(value, list):
        return ()
    chunks: list[str] = []
    for item in value:
        if isinstance(item, dict):
            item = next((item[k] for k in CONTEXT_TEXT_KEYS if isinstance(item.get(k), str)), None)
        if isinstance(item, str) and item.strip():
            chunks.append(item)
    return tuple(chunks)


def to_example(where: str, record: dict[str, Any], fields: Fields) -> Example:
    """The :class:`Example` of one record (missing or non-text fields become ``None``)."""
    feedback = None
    for path in fields.feedback:
        value = lookup(record, path)
        if value is not MISSING and value is not None:
            feedback = value
            break
    return Example(
        where=where,
        question=_text(lookup(record, fields.request)),
        answer=_text(lookup(record, fields.response)),
        context=_context(lookup(record, fields.context)),
        reference=_text(lookup(record, fields.reference)),
        feedback=feedback,
    )


# --------------------------------------------------------------------------------------------------
# Per-record scores: each metric function returns one score in [0, 1] or a skip reason per example
# --------------------------------------------------------------------------------------------------

Scored = list[float | str]
"""Per example: its score, or the reason it was not scorable."""

_SENTENCIZER: Any = None


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (spaCy's rule-based sentencizer on a blank English pipeline), stripped."""
    global _SENTENCIZER
    if _SENTENCIZER is None:
        import spacy

        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        _SENTENCIZER = nlp
    return [s.text.strip() for s in _SENTENCIZER(text).sents if s.text.strip()]


def claims(text: str) -> list[str]:
    """The sentences of an answer that make a claim (at least :data:`MIN_CLAIM_WORDS` words)."""
    return [s for s in sentences(text) if len(re.findall(r"\w+", s)) >= MIN_CLAIM_WORDS]


def context_units(chunks: Sequence[str]) -> list[str]:
    """Each chunk and, when it has more than one, each of its sentences (deduplicated, in order)."""
    units: dict[str, None] = {}
    for chunk in chunks:
        units[chunk] = None
        parts = sentences(chunk)
        if len(parts) > 1:
            units.update(dict.fromkeys(parts))
    return list(units)


class Embeddings:
    """A sentence-transformers model and a cache of unit-length embeddings by text.

    ``encode(texts)`` embeds only texts it has not seen (once each, in batches of ``batch_size``) and returns
    a ``(len(texts), dim)`` float32 array; rows are L2-normalised, so a dot product is a cosine similarity.
    """

    def __init__(self, model: str, batch_size: int = DEFAULT_BATCH_SIZE, device: str | None = None) -> None:
        from llmops_compiler.runtime._common import quiet_libraries

        quiet_libraries()
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(model, device=device)
        self.batch_size = batch_size
        self._cache: dict[str, Any] = {}

    def encode(self, texts: Sequence[str]) -> Any:
        import numpy as np

        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = self.model.encode(
                missing,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            self._cache.update(zip(missing, vectors, strict=True))
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


def embedding_texts(metric: str, examples: Sequence[Example]) -> list[str]:
    """Every text the embedding method of ``metric`` embeds for ``examples`` (for the benchmark's baseline)."""
    texts: list[str] = []
    for ex in examples:
        if metric == "groundedness" and ex.answer and ex.context:
            texts += claims(ex.answer) + context_units(ex.context)
        elif metric == "relevance" and ex.question and ex.answer:
            texts += [ex.question, ex.answer]
        elif metric == "similarity" and ex.answer and ex.reference:
            texts += [ex.answer, ex.reference]
    return texts


def groundedness_by_embedding(
    examples: Sequence[Example], embeddings: Embeddings, threshold: float = GROUNDEDNESS_THRESHOLD
) -> Scored:
    """Share of each answer's claims whose best cosine similarity to a context unit is ``>= threshold``."""
    plans: list[tuple[list[str], list[str]] | str] = []
    for ex in examples:
        if ex.answer is None:
            plans.append("no response")
        elif not ex.context:
            plans.append("no context")
        else:
            found = claims(ex.answer)
            plans.append((found, context_units(ex.context)) if found else "no claim in response")
    embeddings.encode([t for plan in plans if not isinstance(plan, str) for part in plan for t in part])
    out: Scored = []
    for plan in plans:
        if isinstance(plan, str):
            out.append(plan)
            continue
        best = (embeddings.encode(plan[0]) @ embeddings.encode(plan[1]).T).max(axis=1)
        out.append(float((best >= threshold).mean()))
    return out


def _pairwise_cosine(
    examples: Sequence[Example], embeddings: Embeddings, pick: Callable[[Example], tuple[str, str] | str]
) -> Scored:
    pairs = [pick(ex) for ex in examples]
    embeddings.encode([t for p in pairs if not isinstance(p, str) for t in p])
    out: Scored = []
    for p in pairs:
        if isinstance(p, str):
            out.append(p)
            continue
        a, b = embeddings.encode(list(p))
        out.append(min(max(float(a @ b), 0.0), 1.0))
    return out


def relevance_by_embedding(examples: Sequence[Example], embeddings: Embeddings) -> Scored:
    """``max(0, cos(question, answer))`` per example."""

    def pick(ex: Example) -> tuple[str, str] | str:
        if ex.question is None:
            return "no request"
        return "no response" if ex.answer is None else (ex.question, ex.answer)

    return _pairwise_cosine(examples, embeddings, pick)


def similarity_by_embedding(examples: Sequence[Example], embeddings: Embeddings) -> Scored:
    """``max(0, cos(answer, reference))`` per example."""

    def pick(ex: Example) -> tuple[str, str] | str:
        if ex.reference is None:
            return "no reference"
        return "no response" if ex.answer is None else (ex.answer, ex.reference)

    return _pairwise_cosine(examples, embeddings, pick)


class Entailment:
    """A Hugging Face NLI sequence classifier: ``probabilities(pairs)`` is ``P(entailment)`` per
    ``(premise, hypothesis)`` pair (softmax over the model's labels)."""

    def __init__(self, path: str, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        from llmops_compiler.runtime._common import quiet_libraries

        quiet_libraries()
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path)
        self.model.eval()
        labels = {int(i): str(name).lower() for i, name in self.model.config.id2label.items()}
        entail = [i for i, name in labels.items() if "entail" in name]
        if len(entail) != 1 or "not" in labels[entail[0]]:
            raise ScoreInputError(f"--nli-model {path}: no single entailment label in id2label {labels}")
        self.entailment_index = entail[0]
        self.batch_size = batch_size

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        import torch

        out: list[float] = []
        for i in range(0, len(pairs), self.batch_size):
            batch = pairs[i : i + self.batch_size]
            encoded = self.tokenizer(
                [p for p, _ in batch], [h for _, h in batch], padding=True, truncation="only_first",
                return_tensors="pt",
            )  # fmt: skip
            with torch.no_grad():
                logits = self.model(**encoded).logits
            out += torch.softmax(logits, dim=-1)[:, self.entailment_index].tolist()
        return out


def groundedness_by_nli(examples: Sequence[Example], nli: Entailment, threshold: float = NLI_THRESHOLD) -> Scored:
    """Share of each answer's claims entailed by at least one context chunk (``P(entailment) >= threshold``)."""
    out: Scored = []
    for ex in examples:
        if ex.answer is None or not ex.context:
            out.append("no response" if ex.answer is None else "no context")
            continue
        found = claims(ex.answer)
        if not found:
            out.append("no claim in response")
            continue
        probs = nli.probabilities([(chunk, claim) for claim in found for chunk in ex.context])
        k = len(ex.context)
        supported = [max(probs[j * k : (j + 1) * k]) >= threshold for j in range(len(found))]
        out.append(sum(supported) / len(found))
    return out


def injection_findings(text: str) -> list[str]:
    """Names of the :data:`INJECTION_PATTERNS` found in ``text``."""
    return [name for name, pattern in INJECTION_PATTERNS if pattern.search(text)]


def safety_by_pattern(examples: Sequence[Example]) -> Scored:
    """Per request: 0 when a prompt-injection or jailbreak pattern matches, else 1."""
    return [
        "no request" if ex.question is None else (0.0 if injection_findings(ex.question) else 1.0) for ex in examples
    ]


def privacy_by_pattern(examples: Sequence[Example], detector: Any) -> Scored:
    """Per response: 0 when presidio finds PII in it, else 1."""
    return ["no response" if ex.answer is None else (0.0 if detector.find(ex.answer) else 1.0) for ex in examples]


_POSITIVE: Final = {"true", "up", "thumbs_up", "thumbsup", "positive", "like", "good", "yes", "+1", "👍"}
_NEGATIVE: Final = {"false", "down", "thumbs_down", "thumbsdown", "negative", "dislike", "bad", "no", "-1", "👎"}


def feedback_value(value: Any, rating_range: tuple[float, float] = RATING_RANGE) -> float | None:
    """User feedback in ``[0, 1]``: thumbs and booleans 1/0, a rating scaled from ``rating_range``; ``None``
    for anything else."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        low, high = rating_range
        return min(max((float(value) - low) / (high - low), 0.0), 1.0)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _POSITIVE:
            return 1.0
        if word in _NEGATIVE:
            return 0.0
    return None


def feedback_scores(examples: Sequence[Example], rating_range: tuple[float, float] = RATING_RANGE) -> Scored:
    out: Scored = []
    for ex in examples:
        if ex.feedback is None:
            out.append("no feedback")
            continue
        value = feedback_value(ex.feedback, rating_range)
        out.append("unreadable feedback" if value is None else value)
    return out


@dataclass(frozen=True)
class ClassifierConfig:
    url: str
    token: str | None = None
    labels: tuple[str, ...] = CLASSIFIER_LABELS
    threshold: float = CLASSIFIER_THRESHOLD
    timeout: float = 60.0


def safety_by_classifier(examples: Sequence[Example], config: ClassifierConfig) -> tuple[Scored, dict[str, Any]]:
    """Per request: 0 when the classifier gives a flagged label at least the threshold, else 1. A batch the
    endpoint does not answer leaves its records out (``classifier error``); raises :class:`ServiceUnavailable`
    when no batch is answered."""
    out: Scored = ["no request" if ex.question is None else "classifier error" for ex in examples]
    todo = [i for i, ex in enumerate(examples) if ex.question is not None]
    flagged = {label.lower() for label in config.labels}
    stats: dict[str, Any] = {"requests": 0, "failed_requests": 0}
    for start in range(0, len(todo), CLASSIFIER_BATCH):
        batch = todo[start : start + CLASSIFIER_BATCH]
        stats["requests"] += 1
        try:
            replies = _classify(config, [examples[i].question or "" for i in batch])
        except (OSError, ValueError) as exc:
            stats["failed_requests"] += 1
            stats["last_error"] = " ".join(str(exc).split())[:200]
            continue
        for i, reply in zip(batch, replies, strict=True):
            entries = reply if isinstance(reply, list) else [reply]
            hit = any(
                isinstance(e, dict) and str(e.get("label", "")).lower() in flagged
                and float(e.get("score", 0.0)) >= config.threshold
                for e in entries
            )  # fmt: skip
            out[i] = 0.0 if hit else 1.0
    if todo and stats["failed_requests"] == stats["requests"]:
        raise ServiceUnavailable(f"safety classifier {config.url} answered no request ({stats.get('last_error')})")
    return out, stats


def _classify(config: ClassifierConfig, texts: list[str]) -> list[Any]:
    headers = {"Content-Type": "application/json"}
    if config.token:
        headers["Authorization"] = f"Bearer {config.token}"
    body = json.dumps({"inputs": texts}).encode("utf-8")
    request = urllib.request.Request(config.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=config.timeout) as response:
            replies = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code}") from None
    if not isinstance(replies, list) or len(replies) != len(texts):
        raise ValueError(f"expected a list of {len(texts)} classifications")
    return replies


# --------------------------------------------------------------------------------------------------
# Running the metrics
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """A requested metric: its name (the ``metric`` label) and the method that computes it."""

    name: str
    method: str

    @classmethod
    def parse(cls, text: str, has_classifier: bool = False) -> MetricSpec:
        name, sep, method = text.partition("=")
        name, method = name.strip(), method.strip().lower()
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise ScoreInputError(f"bad --metric {text!r}: the name must be an identifier (letters, digits, _)")
        allowed = METHODS.get(name, ("judge",))
        if not sep:
            method = "classifier" if name == "safety" and has_classifier else allowed[0]
        if method not in allowed:
            raise ScoreInputError(f"bad --metric {text!r}: {name} is computed by {', '.join(allowed)}")
        return cls(name, method)


@dataclass
class MetricResult:
    metric: str
    method: str
    score: float | None
    records: int
    skipped: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def why_empty(self) -> str:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items())) or "no records in the window"
        return f"no scorable record ({reasons})"


def summarise(spec: MetricSpec, per_record: Scored, details: dict[str, Any] | None = None) -> MetricResult:
    """The mean of the per-record scores, and the skip reasons counted."""
    values = [v for v in per_record if not isinstance(v, str)]
    skipped = Counter(v for v in per_record if isinstance(v, str))
    score = sum(values) / len(values) if values else None
    return MetricResult(spec.name, spec.method, score, len(values), dict(sorted(skipped.items())), details or {})


@dataclass
class Scorers:
    """What the metrics need, built once per run on first use."""

    embedding_model: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    groundedness_threshold: float = GROUNDEDNESS_THRESHOLD
    nli_model: str | None = None
    nli_threshold: float = NLI_THRESHOLD
    judge_config: Any = None
    criteria: dict[str, str] = field(default_factory=dict)
    classifier: ClassifierConfig | None = None
    pii_entities: tuple[str, ...] | None = None
    pii_min_score: float | None = None
    rating_range: tuple[float, float] = RATING_RANGE
    _embeddings: Embeddings | None = None
    _nli: Entailment | None = None
    _judge: Any = None
    _pii: Any = None

    def embeddings(self) -> Embeddings:
        if self._embeddings is None:
            if not self.embedding_model:
                raise ScoreInputError("the embedding method needs --embedding-model")
            self._embeddings = Embeddings(self.embedding_model, self.batch_size)
        return self._embeddings

    def nli(self) -> Entailment:
        if self._nli is None:
            if not self.nli_model:
                raise ScoreInputError("groundedness=nli needs --nli-model")
            self._nli = Entailment(self.nli_model, self.batch_size)
        return self._nli

    def judge(self) -> Any:
        if self._judge is None:
            if self.judge_config is None:
                raise ScoreInputError("the judge method needs --judge-url and --judge-model")
            from llmops_compiler.runtime.judge import Judge

            self._judge = Judge(self.judge_config)
        return self._judge

    def pii(self) -> Any:
        if self._pii is None:
            from llmops_compiler.runtime.curate import DEFAULT_PII_ENTITIES, PII_MIN_SCORE, PiiDetector

            try:
                self._pii = PiiDetector(
                    self.pii_entities or DEFAULT_PII_ENTITIES,
                    PII_MIN_SCORE if self.pii_min_score is None else self.pii_min_score,
                )
            except ValueError as exc:
                raise ScoreInputError(f"--pii-entity: {exc}") from None
        return self._pii


def judge_items(spec: MetricSpec, examples: Sequence[Example], criterion: str) -> tuple[list[Any], Scored]:
    """The judge items of the scorable examples, and a per-example list holding skip reasons (else 0.0)."""
    from llmops_compiler.runtime.judge import JudgeItem

    items: list[Any] = []
    plan: Scored = []
    for ex in examples:
        if spec.name == "safety":
            if ex.question is None:
                plan.append("no request")
                continue
            # the request is what is graded: present it as the text to grade
            items.append(JudgeItem(criterion, answer=ex.question))
            plan.append(0.0)
            continue
        if ex.answer is None:
            plan.append("no response")
        elif spec.name == "groundedness" and not ex.context:
            plan.append("no context")
        elif spec.name == "relevance" and ex.question is None:
            plan.append("no request")
        elif spec.name == "similarity" and ex.reference is None:
            plan.append("no reference")
        else:
            items.append(JudgeItem(criterion, ex.answer, ex.question, ex.context, ex.reference))
            plan.append(0.0)
    return items, plan


def score_metric(spec: MetricSpec, examples: Sequence[Example], scorers: Scorers) -> MetricResult:
    """Compute one metric over ``examples``; raises :class:`ServiceUnavailable` (with the result attached as
    ``args[1]``) when its judge or classifier answered nothing."""
    if spec.method == "embedding":
        emb = scorers.embeddings()
        if spec.name == "groundedness":
            return summarise(spec, groundedness_by_embedding(examples, emb, scorers.groundedness_threshold))
        fn = relevance_by_embedding if spec.name == "relevance" else similarity_by_embedding
        return summarise(spec, fn(examples, emb))
    if spec.method == "nli":
        return summarise(spec, groundedness_by_nli(examples, scorers.nli(), scorers.nli_threshold))
    if spec.method == "pattern":
        if spec.name == "safety":
            return summarise(spec, safety_by_pattern(examples))
        return summarise(spec, privacy_by_pattern(examples, scorers.pii()))
    if spec.method == "feedback":
        return summarise(spec, feedback_scores(examples, scorers.rating_range))
    if spec.method == "classifier":
        assert scorers.classifier is not None
        try:
            per_record, stats = safety_by_classifier(examples, scorers.classifier)
        except ServiceUnavailable as exc:
            failed = summarise(spec, ["classifier unavailable" for _ in examples])
            raise ServiceUnavailable(str(exc), failed) from None
        return summarise(spec, per_record, {"classifier": stats})
    # judge
    from llmops_compiler.runtime.judge import CRITERIA

    criterion = scorers.criteria.get(spec.name) or CRITERIA.get(spec.name) or spec.name.replace("_", " ")
    items, plan = judge_items(spec, examples, criterion)
    run = scorers.judge().judge(items)
    judged = iter(run.scores)
    scored: Scored = []
    for slot in plan:
        if isinstance(slot, str):
            scored.append(slot)
            continue
        value = next(judged)
        scored.append("judge failed or over budget" if value is None else value)
    result = summarise(spec, scored, {"judge": run.summary()})
    if run.unavailable:
        raise ServiceUnavailable(f"judge {scorers.judge_config.endpoint} answered no request", result)
    return result


# --------------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------------


def push_scores(
    url: str,
    job: str,
    model: str,
    results: Sequence[MetricResult],
    grouping: dict[str, str],
    timeout: float = 30.0,
    metric_name: str = QUALITY_SCORE,
    records_metric_name: str = QUALITY_RECORDS,
) -> int:
    """Replace the group ``{job, <grouping>}`` on the Pushgateway (HTTP PUT) with a score gauge per metric
    that has one and a records gauge per metric; returns the number of series pushed."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    score = Gauge(
        metric_name,
        "Continuous-evaluation quality score of a model on recent production traffic, in [0, 1], higher is better.",
        labelnames=(LABEL_MODEL, LABEL_METRIC),
        registry=registry,
    )
    records = Gauge(
        records_metric_name,
        "Number of production records behind the quality score (0: none could be scored).",
        labelnames=(LABEL_MODEL, LABEL_METRIC),
        registry=registry,
    )
    series = 0
    for result in results:
        records.labels(model, result.metric).set(result.records)
        series += 1
        if result.score is not None:
            score.labels(model, result.metric).set(result.score)
            series += 1
    push_to_gateway(url, job=job, registry=registry, grouping_key=grouping, timeout=timeout)
    return series


def log_to_mlflow(
    tracking_uri: str, experiment: str | None, model: str, args: argparse.Namespace, report: dict[str, Any]
) -> str:
    """Log parameters, ``quality.<metric>`` and ``quality.<metric>.records`` metrics and the JSON report."""
    import mlflow

    from llmops_compiler.runtime._common import quiet_libraries

    quiet_libraries()
    mlflow.set_tracking_uri(tracking_uri)
    if experiment:
        mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"score-{model}") as run:
        mlflow.set_tags({"llmops.step": "score", "llmops.model": model})
        if args.environment:
            mlflow.set_tag("llmops.environment", args.environment)
        mlflow.log_params(
            {
                "model": model,
                "logs": str(args.logs),
                "window": args.window or "all",
                "sample_size": args.sample_size,
                "seed": args.seed,
                "metrics": ",".join(f"{m['metric']}={m['method']}" for m in report["metrics"]),
                "embedding_model": args.embedding_model or "",
            }
        )
        metrics: dict[str, float] = {}
        for m in report["metrics"]:
            key = re.sub(r"[^A-Za-z0-9_\-./ ]", "_", f"quality.{m['metric']}")
            metrics[f"{key}.records"] = float(m["records"])
            if m["score"] is not None:
                metrics[key] = float(m["score"])
        mlflow.log_metrics(metrics)
        mlflow.log_dict(report, "quality.json")
        return str(run.info.run_id)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, no usage block
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m llmops_compiler.runtime.score",
        description="Score a window of production records on quality metrics and push the scores to the "
        "Prometheus Pushgateway (see the module docstring for every formula).",
    )
    p.add_argument("--model", required=True, help="model name (label 'model')")
    p.add_argument("--logs", required=True, help="production logs: JSONL file (.gz ok), folder, or s3://bucket/prefix")
    p.add_argument("--metric", action="append", required=True, metavar="NAME[=METHOD]",
                   help="metric to compute (repeatable): groundedness, relevance, similarity, safety, privacy, "
                   "feedback, or any name for the judge; METHOD embedding|nli|judge|pattern|classifier")
    g = p.add_argument_group("window")
    g.add_argument("--window", metavar="DURATION", help="records of the last DURATION before --now (1h, 30m, 7d)")
    g.add_argument("--now", metavar="ISO8601", help="end of the window (default: the current time)")
    g.add_argument("--timestamp-field", default=DEFAULT_TIMESTAMP_FIELD, help="default %(default)s")
    g.add_argument("--sample-size", type=int, default=DEFAULT_SAMPLE_SIZE,
                   help="seeded uniform sample of this many records (0: all; default %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    f = p.add_argument_group("fields (dotted paths into each record)")
    f.add_argument("--request-field", default="prompt", help="the user's request (default %(default)s)")
    f.add_argument("--response-field", default="response", help="the model's answer (default %(default)s)")
    f.add_argument("--context-field", default="context", help="retrieved context (default %(default)s)")
    f.add_argument("--reference-field", default="reference", help="reference answer (default %(default)s)")
    f.add_argument(
        "--feedback-field", action="append", default=[], help="user feedback (repeatable, first present wins)"
    )
    f.add_argument("--rating-range", default="1:5", metavar="LOW:HIGH", help="scale of numeric ratings (default 1:5)")
    e = p.add_argument_group("embedding and NLI")
    e.add_argument("--embedding-model", help="sentence-transformers model name or path (the KnowledgeBase's)")
    e.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="default %(default)s")
    e.add_argument("--groundedness-threshold", type=float, default=GROUNDEDNESS_THRESHOLD, help="default %(default)s")
    e.add_argument("--nli-model", help="Hugging Face NLI sequence-classification model (path)")
    e.add_argument("--nli-threshold", type=float, default=NLI_THRESHOLD, help="default %(default)s")
    j = p.add_argument_group("LLM judge (OpenAI-compatible)")
    j.add_argument("--judge-url", help="API base URL, e.g. http://judge:8000/v1")
    j.add_argument("--judge-model", help="model name sent to the judge")
    j.add_argument("--judge-token-env", metavar="VAR", help="environment variable holding the bearer token")
    j.add_argument("--judge-max-concurrency", type=int, default=4, help="requests in flight (default 4)")
    j.add_argument("--judge-max-requests", type=int, default=1000, help="requests per run, retries too (default 1000)")
    j.add_argument("--judge-max-tokens", type=int, help="tokens per run, from the replies' usage (default unbounded)")
    j.add_argument("--judge-max-completion-tokens", type=int, default=256, help="max_tokens per request (default 256)")
    j.add_argument("--judge-timeout", type=float, default=60.0, help="seconds per request (default 60)")
    j.add_argument("--judge-retries", type=int, default=3, help="retries on 429/5xx/connection errors (default 3)")
    j.add_argument("--judge-criterion", action="append", default=[], metavar="NAME=TEXT",
                   help="what the judge grades for metric NAME (repeatable)")
    s = p.add_argument_group("safety and privacy")
    s.add_argument("--safety-classifier-url", help="text-classification endpoint for safety")
    s.add_argument("--safety-classifier-token-env", metavar="VAR", help="environment variable holding its token")
    s.add_argument("--safety-classifier-label", action="append", default=[], help="flagged label (repeatable)")
    s.add_argument("--safety-classifier-threshold", type=float, default=CLASSIFIER_THRESHOLD, help="default 0.5")
    s.add_argument("--pii-entity", action="append", default=[], help="presidio entity counted as PII (repeatable)")
    s.add_argument("--pii-min-score", type=float, help="presidio score a finding needs (default 0.4)")
    o = p.add_argument_group("publishing")
    o.add_argument("--pushgateway", help="Pushgateway URL; without it the scores are only printed")
    o.add_argument("--job", default=PUSH_JOB_QUALITY, help=f"Pushgateway job (default {PUSH_JOB_QUALITY})")
    o.add_argument("--environment", help="environment, added to the Pushgateway grouping key")
    o.add_argument("--grouping-label", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Pushgateway grouping label (repeatable), e.g. namespace=..., monitor=...")
    o.add_argument("--push-timeout", type=float, default=30.0, help="seconds (default 30)")
    o.add_argument("--metric-name", default=QUALITY_SCORE, help="score gauge name (default %(default)s)")
    o.add_argument("--records-metric-name", default=QUALITY_RECORDS, help="records gauge name (default %(default)s)")
    o.add_argument("--output", type=Path, help="write the report as JSON to this file")
    o.add_argument("--mlflow-tracking-uri", help="log the scores to this MLflow tracking server")
    o.add_argument("--mlflow-experiment", help="MLflow experiment name")
    return p


def _secret(var: str | None, option: str) -> str | None:
    if not var:
        return None
    value = os.environ.get(var)
    if not value:
        raise ScoreInputError(f"{option} {var}: the environment variable is not set")
    return value


def _pairs(items: Sequence[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ScoreInputError(f"bad {option} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _grouping(model: str, environment: str | None, raw: Sequence[str]) -> dict[str, str]:
    grouping = {LABEL_MODEL: model}
    if environment:
        grouping[LABEL_ENVIRONMENT] = environment
    for key, value in _pairs(raw, "--grouping-label").items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ScoreInputError(f"bad --grouping-label {key}={value}: {key!r} is not a label name")
        if key in ("job", LABEL_METRIC) or key in grouping:
            raise ScoreInputError(f"bad --grouping-label {key}={value}: label {key!r} is already set")
        grouping[key] = value
    return grouping


def _rating_range(text: str) -> tuple[float, float]:
    low, sep, high = text.partition(":")
    try:
        lo, hi = float(low), float(high)
    except ValueError:
        lo = hi = math.nan
    if not sep or not lo < hi or not math.isfinite(hi - lo):
        raise ScoreInputError(f"bad --rating-range {text!r}: expected LOW:HIGH, finite numbers with LOW < HIGH")
    return lo, hi


def scorers_from_args(args: argparse.Namespace) -> Scorers:
    """The :class:`Scorers` the command line asks for (judge and classifier configs checked up front)."""
    judge_config = None
    if args.judge_url or args.judge_model:
        if not (args.judge_url and args.judge_model):
            raise ScoreInputError("--judge-url and --judge-model go together")
        from llmops_compiler.runtime.judge import JudgeConfig, JudgeConfigError

        try:
            judge_config = JudgeConfig(
                url=args.judge_url,
                model=args.judge_model,
                token=_secret(args.judge_token_env, "--judge-token-env"),
                max_concurrency=args.judge_max_concurrency,
                max_requests=args.judge_max_requests,
                max_tokens=args.judge_max_tokens,
                completion_tokens=args.judge_max_completion_tokens,
                timeout=args.judge_timeout,
                retries=args.judge_retries,
            )
        except JudgeConfigError as exc:
            raise ScoreInputError(str(exc)) from None
    classifier = None
    if args.safety_classifier_url:
        classifier = ClassifierConfig(
            url=args.safety_classifier_url,
            token=_secret(args.safety_classifier_token_env, "--safety-classifier-token-env"),
            labels=tuple(args.safety_classifier_label) or CLASSIFIER_LABELS,
            threshold=args.safety_classifier_threshold,
        )
    if args.batch_size < 1:
        raise ScoreInputError(f"--batch-size must be >= 1, got {args.batch_size}")
    return Scorers(
        embedding_model=args.embedding_model,
        batch_size=args.batch_size,
        groundedness_threshold=args.groundedness_threshold,
        nli_model=args.nli_model,
        nli_threshold=args.nli_threshold,
        judge_config=judge_config,
        criteria=_pairs(args.judge_criterion, "--judge-criterion"),
        classifier=classifier,
        pii_entities=tuple(args.pii_entity) or None,
        pii_min_score=args.pii_min_score,
        rating_range=_rating_range(args.rating_range),
    )


def _prepare(args: argparse.Namespace) -> tuple[list[MetricSpec], Scorers, dict[str, str], float | None, float | None]:
    if not args.model.strip():
        raise ScoreInputError("--model must not be empty")
    has_classifier = bool(args.safety_classifier_url)
    specs = [MetricSpec.parse(m, has_classifier) for m in args.metric]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ScoreInputError(f"metric {dupes[0]!r} given more than once")
    if any(s.method == "classifier" for s in specs) and not has_classifier:
        raise ScoreInputError("safety=classifier needs --safety-classifier-url")
    if args.sample_size < 0:
        raise ScoreInputError(f"--sample-size must be >= 0, got {args.sample_size}")
    scorers = scorers_from_args(args)
    if any(s.method == "judge" for s in specs) and scorers.judge_config is None:
        judged = next(s.name for s in specs if s.method == "judge")
        raise ScoreInputError(f"metric {judged!r} is judged by an LLM: give --judge-url and --judge-model")
    if any(s.method == "embedding" for s in specs) and not args.embedding_model:
        raise ScoreInputError("the embedding method needs --embedding-model")
    if any(s.method == "nli" for s in specs) and not args.nli_model:
        raise ScoreInputError("groundedness=nli needs --nli-model")
    grouping = _grouping(args.model, args.environment, args.grouping_label)
    try:
        window = parse_duration(args.window) if args.window else None
    except ValueError as exc:
        raise ScoreInputError(f"--window: {exc}") from None
    try:
        now = parse_timestamp(args.now) if args.now else None
    except ValueError as exc:
        raise ScoreInputError(f"--now: {exc}") from None
    return specs, scorers, grouping, window, now


def _format(value: float | None) -> str:
    return "       -" if value is None else f"{value:>8.4f}"


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        specs, scorers, grouping, window, now = _prepare(args)
        logs: LogWindow = read_window(
            args.logs,
            window=window,
            now=now,
            timestamp_field=args.timestamp_field,
            sample_size=args.sample_size or None,
            seed=args.seed,
        )
    except LogSourceUnavailable as exc:
        print(f"score: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (ScoreInputError, LogInputError, ValueError) as exc:
        print(f"score: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT

    fields = Fields(args.request_field, args.response_field, args.context_field, args.reference_field,
                    tuple(args.feedback_field))  # fmt: skip
    examples = [to_example(item.where, item.record, fields) for item in logs.records]
    results: list[MetricResult] = []
    unavailable: list[str] = []
    try:
        for spec in specs:
            try:
                results.append(score_metric(spec, examples, scorers))
            except ServiceUnavailable as exc:
                unavailable.append(str(exc.args[0]))
                results.append(exc.args[1])
    except (ScoreInputError, OSError) as exc:
        print(f"score: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a model or library failing: one line, no traceback
        print(f"score: error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return EXIT_UNAVAILABLE

    window_summary = logs.summary()
    report: dict[str, Any] = {
        "model": args.model,
        "environment": args.environment,
        "logs": str(args.logs),
        "window": window_summary,
        "seed": args.seed,
        "metric_name": args.metric_name,
        "metrics": [
            {"metric": r.metric, "method": r.method, "score": r.score, "records": r.records, "skipped": r.skipped,
             **r.details}
            for r in results
        ],
        "seconds": round(time.monotonic() - started, 3),
    }  # fmt: skip
    print(
        f"quality of model {args.model!r}: {window_summary['sampled']} records scored of {window_summary['in_window']} "
        f"in the window ({window_summary['read']} read from {window_summary['files']} files)"
    )
    width = max(len("metric"), *(len(r.metric) for r in results))
    print(f"{'metric':<{width}}  {'method':<10}  {'score':>8}  {'records':>8}")
    for r in results:
        print(f"{r.metric:<{width}}  {r.method:<10}  {_format(r.score)}  {r.records:>8}")
    for r in results:
        if r.score is None:
            print(f"{r.metric}: no score pushed: {r.why_empty}")
        elif r.skipped:
            print(f"{r.metric}: left out " + ", ".join(f"{n} ({reason})" for reason, n in r.skipped.items()))
        judge = r.details.get("judge")
        if judge:
            print(f"{r.metric}: judge requests {judge['requests']}, tokens {judge['tokens']}, failures "
                  f"{sum(judge['failures'].values())}, over budget {judge['skipped_budget']}")  # fmt: skip

    status = EXIT_OK
    if args.output:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"score: error: cannot write {args.output}: {exc}", file=sys.stderr)
            status = EXIT_PUBLISH_FAILED
    if args.pushgateway:
        try:
            series = push_scores(args.pushgateway, args.job, args.model, results, grouping, args.push_timeout,
                                 args.metric_name, args.records_metric_name)  # fmt: skip
            print(f"pushed {series} series ({args.metric_name}, {args.records_metric_name}) to {args.pushgateway}")
        except Exception as exc:  # network, HTTP error status: report in one line
            msg = " ".join(str(exc).split())
            print(f"score: error: push to {args.pushgateway} failed: {type(exc).__name__}: {msg}", file=sys.stderr)
            status = EXIT_PUBLISH_FAILED
    if args.mlflow_tracking_uri:
        try:
            run_id = log_to_mlflow(args.mlflow_tracking_uri, args.mlflow_experiment, args.model, args, report)
            print(f"logged to MLflow run {run_id}")
        except Exception as exc:
            msg = " ".join(str(exc).split())[:300]
            print(f"score: error: MLflow logging failed: {type(exc).__name__}: {msg}", file=sys.stderr)
            status = EXIT_PUBLISH_FAILED
    for message in unavailable:
        print(f"score: error: {message}", file=sys.stderr)
    if status == EXIT_OK and unavailable:
        status = EXIT_UNAVAILABLE
    return status


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
