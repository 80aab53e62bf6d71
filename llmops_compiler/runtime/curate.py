"""Dataset curation step: ``python -m llmops_compiler.runtime.curate``.

Turns production logs with user feedback and hand-labelled files into a versioned training dataset:
prompt/completion JSON Lines (what ``tune`` and ``evaluate`` read) split into ``train.jsonl`` and
``eval.jsonl``, under a content-addressed URI, with a manifest, optionally logged to MLflow as a dataset.

Command line::

    python -m llmops_compiler.runtime.curate --name DATASET --output DIR_OR_S3_PREFIX
      (--logs PATH_OR_S3 ... | --labelled PATH_OR_S3 ...)
      [--window 7d] [--now ISO8601] [--timestamp-field timestamp]
      [--prompt-field prompt] [--response-field response] [--context-field FIELD]
      [--rating-field FIELD] [--thumbs-field FIELD] [--corrected-field FIELD]
      [--min-rating R] [--keep-thumbs-up] [--keep-corrected]
      [--no-scrub-pii] [--pii-entity ENTITY ...] [--pii-min-score 0.4]
      [--near-duplicate-threshold 0.8] [--num-perm 128]
      [--eval-fraction 0.1] [--seed 0]
      [--mlflow-tracking-uri URI [--mlflow-experiment NAME]] [--uri-out FILE]

Sources (each a JSONL file, ``.gz`` ok, a folder of them, or an ``s3://bucket/prefix``): ``--labelled`` files
already hold ``prompt`` and ``completion`` (and optionally ``context``) and are kept as they are;
``--logs`` are production records, read through the time window (:mod:`._logs`), whose fields are named by
the ``--*-field`` options (dotted paths into nested objects).

Stages, in order, each counted in the manifest:

1. *feedback* (logs only): a record with a corrected answer (``--corrected-field``) becomes a training
   record whose completion is the correction, and is kept when ``--keep-corrected``; any other record is
   kept when ``--keep-thumbs-up`` and its thumbs field is up, or its rating is at least ``--min-rating``.
   Without any keep rule every record with a prompt and a response is kept. Records without a prompt or a
   completion are dropped.
2. *PII scrubbing* (unless ``--no-scrub-pii``): every finding of presidio's pattern recognizers
   (:class:`PiiDetector`) in prompt, completion and context is replaced by ``<ENTITY_TYPE>``.
3. *canonical order*: labelled records first, then logs, each ordered by the SHA-256 of the record's
   canonical JSON (sorted keys, no spaces, UTF-8), so everything after this point is independent of the
   order of files and lines.
4. *exact duplicates*: records whose normalised text (Unicode NFKC, case-folded, whitespace collapsed, of
   prompt, context and completion) is equal; the first in canonical order is kept (a labelled record beats
   a logged one).
5. *near duplicates*: MinHash signatures (datasketch, ``--num-perm`` permutations, seed 1) of the set of
   word 3-grams of the normalised text (the whole text as one shingle when it has fewer than 3 words);
   datasketch's MinHash LSH proposes candidates, and a record is dropped when its estimated Jaccard
   similarity to a record already kept is at least ``--near-duplicate-threshold`` (Broder 1997, "On the
   resemblance and containment of documents").
6. *split*: a record goes to ``eval`` when ``SHA-256(seed || canonical JSON)`` read as a number in
   ``[0, 1)`` is below ``--eval-fraction``, else to ``train``: a record's side depends on it and the seed
   alone, never on its position or on the other records.

Output: ``<output>/<hash>/{train.jsonl, eval.jsonl, manifest.json}`` and the same three files under
``<output>/latest/``. Lines are ``{"completion", "context"?, "prompt"}`` with sorted keys, in canonical order.
``<hash>`` is the SHA-256 of ``train.jsonl\n<sha256 of train.jsonl>\neval.jsonl\n<sha256 of eval.jsonl>\n``,
so the URI names the content: the same records in any order of files and lines give the same hash and the
same bytes. The manifest holds the URI, the hash, each file's SHA-256 and record count, the counts per
stage, the parameters, and each source file's version (a local file's SHA-256; an S3 object's ETag and,
in a versioned bucket, its VersionId). It has no timestamps, so it is reproducible too. The step prints the
content-addressed URI as its last line (and writes it to ``--uri-out``). With a tracking URI, one MLflow run
logs both splits as datasets (``mlflow.log_input``, contexts ``training`` and ``evaluation``), the counts
as metrics and the manifest as an artifact.

Exit codes: 0 written; 2 bad arguments or input, or nothing left to train on; 3 a failure outside the step
(object storage, MLflow); one ``curate: error:`` line on stderr, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from llmops_compiler.runtime._common import (
    EXIT_OK,
    ArgParser,
    RuntimeStepError,
    UsageError,
    run_step,
)
from llmops_compiler.runtime._logs import (
    DEFAULT_TIMESTAMP_FIELD,
    MISSING,
    LogInputError,
    LogSourceUnavailable,
    is_s3,
    lookup,
    parse_duration,
    parse_timestamp,
    read_window,
    s3_client,
    split_s3_uri,
)

DEFAULT_NEAR_DUPLICATE_THRESHOLD: Final = 0.8
"""Estimated Jaccard similarity of word 3-gram sets from which two records are near duplicates. A word changed
in the middle of a text replaces 3 of its shingles: a 40-word record (38 shingles) with one word changed is a
near duplicate (35/41 = 0.85), a 20-word one is not (15/21 = 0.71); datasketch's own default is 0.9."""
DEFAULT_NUM_PERM: Final = 128
SHINGLE_WORDS: Final = 3
DEFAULT_EVAL_FRACTION: Final = 0.1
FILES: Final = ("train.jsonl", "eval.jsonl", "manifest.json")

# --------------------------------------------------------------------------------------------------
# PII (presidio, offline)
# --------------------------------------------------------------------------------------------------

#: Entities presidio's pattern recognizers find without a trained NER model. Names of people and places
#: need spaCy's NER (``en_core_web_lg``), which cannot be downloaded here: they are not detected. IP
#: addresses are left out by default: a support answer naming a router's admin address is not personal data.
DEFAULT_PII_ENTITIES: Final = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_BANK_NUMBER",
    "UK_NHS",
    "MEDICAL_LICENSE",
    "CRYPTO",
)
PII_MIN_SCORE: Final = 0.4
"""Presidio's confidence a finding needs to count: 0.4 is the base score of its phone-number recognizer, the
lowest of the recognizers whose matches are checked (Luhn, IBAN checksum, phonenumbers); weaker bare-digit
guesses (bank account, passport, licence numbers at 0.01-0.05) count only when a context word such as
"account" or "passport" next to them raises them to it."""


class PiiDetector:
    """Presidio's analyzer with its predefined pattern recognizers on a blank spaCy English pipeline (no model
    download: tokens only, each token's lower-cased text as its lemma so that presidio's context words still
    raise scores), and its anonymizer for scrubbing.

    ``find(text)`` returns presidio ``RecognizerResult`` s (``entity_type``, ``start``, ``end``, ``score``) of
    ``entities`` scoring at least ``min_score``; ``scrub(text)`` replaces each with ``<ENTITY_TYPE>``.
    """

    def __init__(self, entities: Sequence[str] = DEFAULT_PII_ENTITIES, min_score: float = PII_MIN_SCORE) -> None:
        _offline_tldextract()
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import SlimSpacyNlpEngine
        from presidio_anonymizer import AnonymizerEngine
        from spacy.language import Language

        if not Language.has_factory("llmops_lowercase_lemma"):

            @Language.component("llmops_lowercase_lemma")
            def _lowercase_lemma(doc: Any) -> Any:
                for token in doc:
                    token.lemma_ = token.lower_
                return doc

        nlp = spacy.blank("en")
        nlp.add_pipe("llmops_lowercase_lemma")
        engine = SlimSpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}], auto_download=False)
        engine.nlp = {"en": nlp}  # type: ignore[assignment]  # loaded: presidio never calls load() (which would download a model)
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(nlp_engine=engine, languages=["en"])
        if any(getattr(recognizer, "name", None) == "SpacyRecognizer" for recognizer in registry.recognizers):
            registry.remove_recognizer("SpacyRecognizer")  # NER from the NLP engine: none on a blank pipeline
        known = {entity for recognizer in registry.recognizers for entity in recognizer.supported_entities}
        unknown = sorted(set(entities) - known)
        if unknown:
            raise ValueError(f"unknown PII entities {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        self.entities = list(entities)
        self.min_score = min_score
        self.analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])
        self.anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]

    def find(self, text: str) -> list[Any]:
        if not text.strip():
            return []
        results = self.analyzer.analyze(text, language="en", entities=self.entities)
        return [r for r in results if r.score >= self.min_score]

    def scrub(self, text: str) -> tuple[str, list[Any]]:
        """``text`` with every finding replaced by ``<ENTITY_TYPE>``, and the findings."""
        findings = self.find(text)
        if not findings:
            return text, []
        return self.anonymizer.anonymize(text=text, analyzer_results=findings).text, findings


def _offline_tldextract() -> None:
    """Presidio's e-mail recognizer asks tldextract for the public suffix list, which downloads it on first use
    (and logs a traceback when it cannot): use the snapshot tldextract ships, never the network."""
    os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    import tldextract
    import tldextract.tldextract as module

    if getattr(module.TLD_EXTRACTOR, "suffix_list_urls", ()):
        module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFields:
    """Where the parts of a production record live (dotted paths; ``None``: not used)."""

    prompt: str = "prompt"
    response: str = "response"
    context: str | None = None
    rating: str | None = None
    thumbs: str | None = None
    corrected: str | None = None


@dataclass(frozen=True)
class KeepRules:
    min_rating: float | None = None
    thumbs_up: bool = False
    corrected: bool = False

    @property
    def any(self) -> bool:
        return self.min_rating is not None or self.thumbs_up or self.corrected


@dataclass
class Counts:
    """How many records each stage saw and dropped (the manifest's ``counts``)."""

    labelled_read: int = 0
    logs_read: int = 0
    logs_in_window: int = 0
    missing_fields: int = 0
    dropped_by_feedback: int = 0
    corrected: int = 0
    pii_scrubbed: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    train: int = 0
    eval: int = 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _context_text(value: Any) -> str | None:
    if isinstance(value, list):
        from llmops_compiler.runtime.score import CONTEXT_TEXT_KEYS

        chunks = []
        for item in value:
            if isinstance(item, dict):
                item = next((item[k] for k in CONTEXT_TEXT_KEYS if isinstance(item.get(k), str)), None)
            if isinstance(item, str) and item.strip():
                chunks.append(item)
        return "\n\n".join(chunks) or None
    return _text(value)


def training_record(prompt: str, completion: str, context: str | None) -> dict[str, str]:
    record = {"prompt": prompt, "completion": completion}
    if context:
        record["context"] = context
    return record


def from_log(
    record: dict[str, Any], fields: LogFields, rules: KeepRules, counts: Counts
) -> dict[str, str] | None:
    """The training record of a production record under the keep rules, or ``None`` (counted)."""
    from llmops_compiler.runtime.score import feedback_value

    def get(path: str | None) -> Any:
        return None if path is None else lookup(record, path)

    prompt = _text(get(fields.prompt))
    corrected = _text(get(fields.corrected))
    completion = corrected or _text(get(fields.response))
    if prompt is None or completion is None:
        counts.missing_fields += 1
        return None
    context = _context_text(get(fields.context)) if fields.context else None
    if corrected is not None and rules.corrected:
        counts.corrected += 1
        return training_record(prompt, completion, context)
    if rules.any:
        thumbs = get(fields.thumbs)
        rating = get(fields.rating)
        up = rules.thumbs_up and thumbs is not MISSING and feedback_value(thumbs) == 1.0
        rated = (
            rules.min_rating is not None
            and isinstance(rating, int | float)
            and not isinstance(rating, bool)
            and math.isfinite(rating)  # JSON parsers accept Infinity and NaN: neither is a rating
            and rating >= rules.min_rating
        )
        if not (up or rated):
            counts.dropped_by_feedback += 1
            return None
    if corrected is not None:
        counts.corrected += 1
    return training_record(prompt, completion, context)


def from_labelled(record: dict[str, Any], where: str) -> dict[str, str]:
    """A labelled record as it is; raises :class:`UsageError` without a string prompt and completion."""
    prompt, completion = _text(record.get("prompt")), _text(record.get("completion"))
    if prompt is None or completion is None:
        raise UsageError(f"{where}: a labelled record needs string 'prompt' and 'completion'")
    context = record.get("context")
    if context is not None and not isinstance(context, str):
        raise UsageError(f"{where}: 'context' must be a string")
    return training_record(prompt, completion, context)


# --------------------------------------------------------------------------------------------------
# Curation (pure functions on records)
# --------------------------------------------------------------------------------------------------


def canonical_json(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def record_digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()


def normalise(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the text duplicates are compared on."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def record_text(record: dict[str, str]) -> str:
    return normalise("\n".join(record.get(k, "") for k in ("prompt", "context", "completion")))


def shingles(text: str, n: int = SHINGLE_WORDS) -> set[str]:
    """Word ``n``-grams of a normalised text (the whole text as one shingle when it is shorter)."""
    words = re.findall(r"\w+", text)
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def canonical_order(labelled: list[dict[str, str]], logged: list[dict[str, str]]) -> list[dict[str, str]]:
    """Labelled records, then logged ones, each sorted by the SHA-256 of their canonical JSON."""
    return sorted(labelled, key=record_digest) + sorted(logged, key=record_digest)


def drop_exact_duplicates(records: list[dict[str, str]]) -> tuple[list[dict[str, str]], int]:
    seen: set[str] = set()
    kept = []
    for record in records:
        key = hashlib.sha256(record_text(record).encode("utf-8")).hexdigest()
        if key not in seen:
            seen.add(key)
            kept.append(record)
    return kept, len(records) - len(kept)


def drop_near_duplicates(
    records: list[dict[str, str]],
    threshold: float = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
    num_perm: int = DEFAULT_NUM_PERM,
) -> tuple[list[dict[str, str]], int]:
    """Keep a record unless its MinHash-estimated Jaccard similarity to one kept before is ``>= threshold``."""
    from datasketch import MinHash, MinHashLSH  # type: ignore[import-untyped]

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    signatures: dict[str, Any] = {}
    kept = []
    for index, record in enumerate(records):
        signature = MinHash(num_perm=num_perm, seed=1)
        signature.update_batch([s.encode("utf-8") for s in sorted(shingles(record_text(record)))])
        if any(signature.jaccard(signatures[key]) >= threshold for key in lsh.query(signature)):
            continue
        key = str(index)
        lsh.insert(key, signature)
        signatures[key] = signature
        kept.append(record)
    return kept, len(records) - len(kept)


def in_eval(record: dict[str, str], seed: int, fraction: float) -> bool:
    """Whether the seeded hash of the record puts it in the eval split."""
    digest = hashlib.sha256(f"{seed}\n{canonical_json(record)}".encode()).digest()
    return int.from_bytes(digest, "big") / 2**256 < fraction


def jsonl_bytes(records: Sequence[dict[str, str]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def content_hash(files: dict[str, bytes]) -> str:
    """SHA-256 over ``name\\n<sha256>\\n`` of each data file, in name order (see the module docstring)."""
    listing = "".join(f"{name}\n{hashlib.sha256(data).hexdigest()}\n" for name, data in sorted(files.items()))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------------
# Sources, output
# --------------------------------------------------------------------------------------------------


@dataclass
class Source:
    kind: str  # "labelled" | "logs"
    uri: str
    files: list[dict[str, str]] = field(default_factory=list)


def file_version(uri: str, path: Path | None, etag: str | None, client: Any) -> dict[str, str]:
    """A source file's version: SHA-256 of a local file; ETag (and VersionId when versioned) of an object."""
    if path is not None:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return {"uri": uri, "sha256": digest.hexdigest()}
    version = {"uri": uri, "etag": etag or ""}
    bucket, key = split_s3_uri(uri)
    head = client.head_object(Bucket=bucket, Key=key)
    if head.get("VersionId") and head["VersionId"] != "null":
        version["version_id"] = head["VersionId"]
    return version


def write_output(output: str, digest: str, files: dict[str, bytes], client: Any = None) -> str:
    """Write ``files`` under ``<output>/<digest>/`` and ``<output>/latest/``; returns the content URI."""
    base = output.rstrip("/")
    if is_s3(output):
        bucket, prefix = split_s3_uri(base)
        for folder in (digest, "latest"):
            for name, data in files.items():
                key = f"{prefix}/{folder}/{name}" if prefix else f"{folder}/{name}"
                client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=_content_type(name))
        return f"{base}/{digest}/"
    root = Path(base)
    root.mkdir(parents=True, exist_ok=True)
    for folder in (digest, "latest"):
        staging = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=root))
        for name, data in files.items():
            (staging / name).write_bytes(data)
        target = root / folder
        if target.exists():
            for name in files:
                os.replace(staging / name, target / name)
            staging.rmdir()
        else:
            os.replace(staging, target)
    return f"{root.resolve()}/{digest}/"


def _content_type(name: str) -> str:
    return "application/json" if name.endswith(".json") else "application/x-ndjson"


def log_to_mlflow(
    tracking_uri: str, experiment: str | None, name: str, uri: str, splits: dict[str, list[dict[str, str]]],
    manifest: dict[str, Any],
) -> str:
    """One run: each split logged as an MLflow dataset (``log_input``), the counts, the manifest."""
    import mlflow
    import pandas as pd  # type: ignore[import-untyped]

    from llmops_compiler.runtime._common import quiet_libraries

    quiet_libraries()
    mlflow.set_tracking_uri(tracking_uri)
    if experiment:
        mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"curate-{name}") as run:
        mlflow.set_tags({"llmops.step": "curate", "llmops.dataset": name, "llmops.dataset.hash": manifest["hash"]})
        mlflow.log_params({k: str(v) for k, v in manifest["parameters"].items()} | {"uri": uri})
        mlflow.log_metrics({f"records.{k}": float(v) for k, v in manifest["counts"].items()})
        for split, context in (("train", "training"), ("eval", "evaluation")):
            frame = pd.DataFrame(splits[split], columns=["prompt", "context", "completion"])
            dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
                frame, source=f"{uri}{split}.jsonl", name=f"{name}-{split}", targets="completion",
                digest=manifest["hash"].removeprefix("sha256:")[:8],
            )
            mlflow.log_input(dataset, context=context)
        mlflow.log_dict(manifest, "manifest.json")
        return str(run.info.run_id)


# --------------------------------------------------------------------------------------------------
# The step
# --------------------------------------------------------------------------------------------------


@dataclass
class CurateConfig:
    name: str
    output: str
    labelled: list[str]
    logs: list[str]
    fields: LogFields = field(default_factory=LogFields)
    rules: KeepRules = field(default_factory=KeepRules)
    window: str | None = None
    now: str | None = None
    timestamp_field: str = DEFAULT_TIMESTAMP_FIELD
    scrub_pii: bool = True
    pii_entities: tuple[str, ...] | None = None
    pii_min_score: float = PII_MIN_SCORE
    near_duplicate_threshold: float = DEFAULT_NEAR_DUPLICATE_THRESHOLD
    num_perm: int = DEFAULT_NUM_PERM
    eval_fraction: float = DEFAULT_EVAL_FRACTION
    seed: int = 0

    def parameters(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "window": self.window,
            "now": self.now,
            "keep_min_rating": self.rules.min_rating,
            "keep_thumbs_up": self.rules.thumbs_up,
            "keep_corrected": self.rules.corrected,
            "scrub_pii": self.scrub_pii,
            "pii_entities": list(self.pii_entities or DEFAULT_PII_ENTITIES) if self.scrub_pii else [],
            "near_duplicate_threshold": self.near_duplicate_threshold,
            "num_perm": self.num_perm,
            "eval_fraction": self.eval_fraction,
            "seed": self.seed,
        }


@dataclass
class CurateResult:
    uri: str
    manifest: dict[str, Any]
    splits: dict[str, list[dict[str, str]]]


def _validate(cfg: CurateConfig) -> tuple[float | None, float | None]:
    if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", cfg.name):
        raise UsageError(f"--name {cfg.name!r} must be a DNS label (lower-case letters, digits, -)")
    if not cfg.labelled and not cfg.logs:
        raise UsageError("give at least one source: --logs or --labelled")
    if not 0.0 <= cfg.eval_fraction < 1.0:
        raise UsageError(f"--eval-fraction must be in [0, 1), got {cfg.eval_fraction}")
    if not 0.0 < cfg.near_duplicate_threshold <= 1.0:
        raise UsageError(f"--near-duplicate-threshold must be in (0, 1], got {cfg.near_duplicate_threshold}")
    if cfg.num_perm < 16:
        raise UsageError(f"--num-perm must be >= 16, got {cfg.num_perm}")
    if not 0.0 <= cfg.pii_min_score <= 1.0:  # presidio's scores lie in [0, 1]: above 1 nothing would be scrubbed
        raise UsageError(f"--pii-min-score must be in [0, 1], got {cfg.pii_min_score}")
    if cfg.rules.min_rating is not None and not math.isfinite(cfg.rules.min_rating):
        raise UsageError(f"--min-rating must be a finite number, got {cfg.rules.min_rating}")
    feedback_fields = {"--thumbs-field": (cfg.rules.thumbs_up, cfg.fields.thumbs),
                       "--rating-field": (cfg.rules.min_rating is not None, cfg.fields.rating),
                       "--corrected-field": (cfg.rules.corrected, cfg.fields.corrected)}  # fmt: skip
    for option, (used, path) in feedback_fields.items():
        if used and not path:
            raise UsageError(f"the keep rule needs {option}")
    try:
        window = parse_duration(cfg.window) if cfg.window else None
        now = parse_timestamp(cfg.now) if cfg.now else None
    except ValueError as exc:
        raise UsageError(f"--window/--now: {exc}") from None
    return window, now


def curate(cfg: CurateConfig) -> CurateResult:
    """Run the stages of the module docstring and write the output; see there for every rule."""
    window, now = _validate(cfg)
    client = s3_client() if any(is_s3(u) for u in (*cfg.labelled, *cfg.logs, cfg.output)) else None
    counts = Counts()
    sources: list[Source] = []
    labelled: list[dict[str, str]] = []
    logged: list[dict[str, str]] = []
    try:
        for uri in cfg.labelled:
            read = read_window(uri, client=client)
            counts.labelled_read += read.read
            labelled += [from_labelled(item.record, item.where) for item in read.records]
            versions = [file_version(f.uri, f.path, f.version, client) for f in read.sources]
            sources.append(Source("labelled", uri, versions))
        for uri in cfg.logs:
            read = read_window(uri, window=window, now=now, timestamp_field=cfg.timestamp_field, client=client)
            counts.logs_read += read.read
            counts.logs_in_window += read.in_window
            for item in read.records:
                record = from_log(item.record, cfg.fields, cfg.rules, counts)
                if record is not None:
                    logged.append(record)
            versions = [file_version(f.uri, f.path, f.version, client) for f in read.sources]
            sources.append(Source("logs", uri, versions))
    except LogSourceUnavailable as exc:
        raise RuntimeStepError(str(exc)) from None
    except LogInputError as exc:
        raise UsageError(str(exc)) from None

    if cfg.scrub_pii:
        try:
            detector = PiiDetector(cfg.pii_entities or DEFAULT_PII_ENTITIES, cfg.pii_min_score)
        except ValueError as exc:
            raise UsageError(f"--pii-entity: {exc}") from None
        for group in (labelled, logged):
            for i, record in enumerate(group):
                scrubbed = {k: detector.scrub(v)[0] for k, v in record.items()}
                if scrubbed != record:
                    counts.pii_scrubbed += 1
                    group[i] = scrubbed

    ordered = canonical_order(labelled, logged)
    unique, counts.exact_duplicates = drop_exact_duplicates(ordered)
    distinct, counts.near_duplicates = drop_near_duplicates(unique, cfg.near_duplicate_threshold, cfg.num_perm)
    splits: dict[str, list[dict[str, str]]] = {"train": [], "eval": []}
    for record in distinct:
        splits["eval" if in_eval(record, cfg.seed, cfg.eval_fraction) else "train"].append(record)
    counts.train, counts.eval = len(splits["train"]), len(splits["eval"])
    if not splits["train"]:
        raise UsageError(f"no training records left after curation ({_counts_text(counts)})")

    data = {"train.jsonl": jsonl_bytes(splits["train"]), "eval.jsonl": jsonl_bytes(splits["eval"])}
    digest = content_hash(data)
    base = cfg.output.rstrip("/")
    uri = f"{base}/{digest}/" if is_s3(cfg.output) else f"{Path(base).resolve()}/{digest}/"
    manifest: dict[str, Any] = {
        "name": cfg.name,
        "uri": uri,
        "hash": f"sha256:{digest}",
        "files": {name: {"sha256": hashlib.sha256(b).hexdigest(), "records": b.count(b"\n"), "bytes": len(b)}
                  for name, b in data.items()},
        "counts": vars(counts),
        "parameters": cfg.parameters(),
        "sources": [{"kind": s.kind, "uri": s.uri, "files": sorted(s.files, key=lambda f: f["uri"])}
                    for s in sorted(sources, key=lambda s: (s.kind, s.uri))],
    }  # fmt: skip
    files = {**data, "manifest.json": (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")}
    try:
        written = write_output(cfg.output, digest, files, client)
    except OSError as exc:
        raise RuntimeStepError(f"cannot write {cfg.output}: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("botocore", "boto3")):
            raise RuntimeStepError(f"cannot write {cfg.output}: {exc}") from None
        raise
    assert written == uri
    return CurateResult(uri, manifest, splits)


def _counts_text(counts: Counts) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in vars(counts).items())


def build_parser() -> ArgParser:
    p = ArgParser(prog="python -m llmops_compiler.runtime.curate",
                  description="Curate production logs and labelled files into a content-addressed dataset.")
    p.add_argument("--name", required=True, help="dataset name (the Dataset spec's)")
    p.add_argument("--output", required=True, help="folder or s3://bucket/prefix the dataset versions go under")
    p.add_argument("--logs", action="append", default=[], help="production logs (file, folder, s3://; repeatable)")
    p.add_argument("--labelled", action="append", default=[], help="prompt/completion JSONL (repeatable)")
    p.add_argument("--window", metavar="DURATION", help="logs of the last DURATION before --now only (e.g. 7d)")
    p.add_argument("--now", metavar="ISO8601")
    p.add_argument("--timestamp-field", default=DEFAULT_TIMESTAMP_FIELD)
    p.add_argument("--prompt-field", default="prompt")
    p.add_argument("--response-field", default="response")
    p.add_argument("--context-field")
    p.add_argument("--rating-field")
    p.add_argument("--thumbs-field")
    p.add_argument("--corrected-field")
    p.add_argument("--min-rating", type=float, help="keep logged records rated at least this")
    p.add_argument("--keep-thumbs-up", action="store_true", help="keep logged records with thumbs up")
    p.add_argument("--keep-corrected", action="store_true", help="keep records with a corrected answer")
    p.add_argument("--no-scrub-pii", action="store_true", help="do not replace PII by <ENTITY_TYPE>")
    p.add_argument("--pii-entity", action="append", default=[], help="presidio entity to scrub (repeatable)")
    p.add_argument("--pii-min-score", type=float, default=PII_MIN_SCORE)
    p.add_argument("--near-duplicate-threshold", type=float, default=DEFAULT_NEAR_DUPLICATE_THRESHOLD)
    p.add_argument("--num-perm", type=int, default=DEFAULT_NUM_PERM)
    p.add_argument("--eval-fraction", type=float, default=DEFAULT_EVAL_FRACTION)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mlflow-tracking-uri")
    p.add_argument("--mlflow-experiment")
    p.add_argument("--uri-out", type=Path, help="also write the content-addressed URI to this file")
    return p


def config_from_args(args: Any) -> CurateConfig:
    return CurateConfig(
        name=args.name,
        output=args.output,
        labelled=list(args.labelled),
        logs=list(args.logs),
        fields=LogFields(
            args.prompt_field, args.response_field, args.context_field, args.rating_field, args.thumbs_field,
            args.corrected_field,
        ),
        rules=KeepRules(args.min_rating, args.keep_thumbs_up, args.keep_corrected),
        window=args.window,
        now=args.now,
        timestamp_field=args.timestamp_field,
        scrub_pii=not args.no_scrub_pii,
        pii_entities=tuple(args.pii_entity) or None,
        pii_min_score=args.pii_min_score,
        near_duplicate_threshold=args.near_duplicate_threshold,
        num_perm=args.num_perm,
        eval_fraction=args.eval_fraction,
        seed=args.seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        cfg = config_from_args(args)
        result = curate(cfg)
        counts = result.manifest["counts"]
        print(f"dataset {cfg.name}: {counts['train']} train, {counts['eval']} eval records")
        print(f"counts: {_counts_text(Counts(**counts))}")
        if args.mlflow_tracking_uri:
            try:
                run_id = log_to_mlflow(args.mlflow_tracking_uri, args.mlflow_experiment, cfg.name, result.uri,
                                       result.splits, result.manifest)  # fmt: skip
            except Exception as exc:
                raise RuntimeStepError(f"MLflow logging failed: {type(exc).__name__}: {exc}") from None
            print(f"logged to MLflow run {run_id}")
        if args.uri_out:
            args.uri_out.parent.mkdir(parents=True, exist_ok=True)
            args.uri_out.write_text(result.uri + "\n", encoding="utf-8")
        print(result.uri)
        return EXIT_OK

    return run_step("curate", body)


if __name__ == "__main__":
    sys.exit(main())
