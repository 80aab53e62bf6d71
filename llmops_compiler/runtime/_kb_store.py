"""The knowledge base's Milvus collection (pymilvus; a local ``*.db`` path is Milvus Lite).

One row per chunk:

================  =====================  ==============================================================
field             type                   meaning
================  =====================  ==============================================================
``id``            VARCHAR(96), primary   ``<sha256 of the document key>#<chunk index>``: one row per
                                         (document, chunk), so writing a document again overwrites it.
                                         Hex keeps the key free of quotes (pymilvus's query iterator
                                         pastes primary keys into filter expressions unquoted)
``document``      VARCHAR(1024)          the object key, relative to the bucket (S3 keys are <= 1024 bytes)
``chunk``         INT64                  the chunk's index in the document, from 0
``chunks``        INT64                  how many chunks this version of the document has
``text``          VARCHAR(65535)         the chunk's text (cut at 65,535 UTF-8 bytes, Milvus's limit)
``content_hash``  VARCHAR(64)            sha256 of the document's bytes
``etag``          VARCHAR(128)           the object's ETag when it was read
``pipeline``      VARCHAR(64)            fingerprint of what turned bytes into vectors (chunking, model)
``vector``        FLOAT_VECTOR(dim)      the chunk's embedding
================  =====================  ==============================================================

The vector field has an ``AUTOINDEX`` index with the collection's metric (``COSINE``, ``IP`` or ``L2``) and
``document`` an ``INVERTED`` index (deletes and look-ups filter on it). The collection is created with
``Strong`` consistency, so a query sees every write before it.

A document's rows are *complete* when they all carry one (content hash, etag, pipeline, chunks) version
and there are exactly ``chunks`` of them; anything else (a run that died half-way) is re-ingested.
Filter expressions quote document keys with :func:`string_literal`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from llmops_compiler.runtime._common import RuntimeStepError, UsageError

METRICS: Final = ("COSINE", "IP", "L2")
ID_MAX_LENGTH: Final = 96
DOCUMENT_MAX_LENGTH: Final = 1024
TEXT_MAX_BYTES: Final = 65_535
HASH_MAX_LENGTH: Final = 64
ETAG_MAX_LENGTH: Final = 128
#: Fields a collection must have for ingest and query to use it.
REQUIRED_FIELDS: Final = (
    "id", "document", "chunk", "chunks", "text", "content_hash", "etag", "pipeline", "vector",
)  # fmt: skip
VECTOR_FIELD: Final = "vector"
#: Rows per upsert request (keeps a request far below gRPC's 64 MiB message limit at full-size texts).
UPSERT_BATCH_ROWS: Final = 256
ITERATOR_BATCH_ROWS: Final = 1000

_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def string_literal(value: str) -> str:
    """``value`` as a double-quoted Milvus filter-expression string literal.

    Backslash, double quote, newline, carriage return and tab are escaped (the escapes both Milvus's
    expression grammar and Milvus Lite's parser accept); every other character stands for itself.
    """
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def chunk_id(document: str, chunk: int) -> str:
    """The primary key of chunk ``chunk`` of ``document``."""
    return f"{hashlib.sha256(document.encode('utf-8')).hexdigest()}#{chunk}"


def fit_text(text: str, max_bytes: int = TEXT_MAX_BYTES) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, at a character boundary."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


@dataclass(frozen=True)
class StoredVersion:
    content_hash: str
    etag: str
    pipeline: str
    chunks: int


@dataclass
class StoredDocument:
    """What the collection holds for one document: its row count and the versions its rows carry."""

    rows: int = 0
    versions: set[StoredVersion] = field(default_factory=set)

    def complete_version(self) -> StoredVersion | None:
        """The single version of all rows when they form a whole document (see the module docstring)."""
        if len(self.versions) != 1:
            return None
        (version,) = self.versions
        return version if version.chunks == self.rows and self.rows > 0 else None


@dataclass(frozen=True)
class CollectionInfo:
    dimension: int
    metric: str | None
    fields: tuple[str, ...]


@dataclass(frozen=True)
class ChunkRow:
    document: str
    chunk: int
    chunks: int
    text: str
    content_hash: str
    etag: str
    pipeline: str
    vector: Sequence[float]

    def as_entity(self) -> dict[str, Any]:
        return {
            "id": chunk_id(self.document, self.chunk),
            "document": self.document,
            "chunk": self.chunk,
            "chunks": self.chunks,
            "text": fit_text(self.text),
            "content_hash": self.content_hash,
            "etag": self.etag[:ETAG_MAX_LENGTH],
            "pipeline": self.pipeline,
            VECTOR_FIELD: self.vector,
        }


def is_milvus_lite(uri: str) -> bool:
    """Whether ``uri`` names a Milvus Lite database (a local path ending in ``.db``), as pymilvus decides."""
    return uri.endswith(".db")


def quiet_milvus() -> None:
    """pymilvus logs every failed RPC with a traceback before raising; we report errors ourselves.

    Call after importing pymilvus: its import configures its loggers.
    """
    if not os.environ.get("LLMOPS_DEBUG"):
        for name in ("pymilvus", "milvus_lite"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def milvus_errors(what: str) -> Iterator[None]:
    """Turn pymilvus / connection failures inside the block into a one-line :class:`RuntimeStepError`."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise RuntimeStepError(f"{what} failed: {message}") from None
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise RuntimeStepError(f"{what} failed: {type(exc).__name__}: {exc}") from None


class VectorStore:
    """A connection to Milvus (or Milvus Lite); close it to release a Milvus Lite database for others.

    Milvus Lite serves one ``.db`` per process and locks it against other processes; closing releases it for
    every connection of this process to that file, so keep one open ``VectorStore`` per database at a time.
    """

    def __init__(self, uri: str, token: str | None = None, create: bool = True) -> None:
        if is_milvus_lite(uri) and not create and not Path(uri).exists():
            raise UsageError(f"no vector store at {uri} (no Milvus Lite database there)")
        if is_milvus_lite(uri):
            # Milvus Lite's in-process gRPC server answers pymilvus's 10 s keepalive pings with GOAWAY
            # "too_many_pings" during long embeddings; gRPC reconnects, but its C core logs an error line.
            os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        from pymilvus import MilvusClient

        quiet_milvus()
        self.uri = uri
        if is_milvus_lite(uri):
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        with milvus_errors(f"connecting to the vector store {uri}"):
            self.client: Any = MilvusClient(uri=uri, token=token or "", timeout=60)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if is_milvus_lite(self.uri):
            # Milvus Lite serves a .db from a thread of this process and holds its LOCK until released.
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.uri)

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the collection ---------------------------------------------------------------------------

    def describe(self, collection: str) -> CollectionInfo | None:
        """Dimension, metric and field names of ``collection``; ``None`` when it does not exist."""
        with milvus_errors(f"describing collection {collection!r}"):
            if not self.client.has_collection(collection):
                return None
            description = self.client.describe_collection(collection)
            names = tuple(str(f["name"]) for f in description["fields"])
            dimension = next((int(f["params"]["dim"]) for f in description["fields"] if f["name"] == VECTOR_FIELD), 0)
            metric = None
            for index_name in self.client.list_indexes(collection, field_name=VECTOR_FIELD):
                metric = str(self.client.describe_index(collection, index_name).get("metric_type") or "") or None
        return CollectionInfo(dimension=dimension, metric=metric, fields=names)

    @staticmethod
    def check_fields(collection: str, info: CollectionInfo, consequence: str) -> None:
        """Raises :class:`UsageError` when ``collection`` lacks the fields ingest writes (another program made
        it); ``consequence`` ends the message."""
        missing = [f for f in REQUIRED_FIELDS if f not in info.fields]
        if missing:
            raise UsageError(f"collection {collection!r} lacks the field(s) {', '.join(missing)}: it was not "
                             f"created by ingest; {consequence}")

    def check_collection(self, collection: str, info: CollectionInfo, dimension: int, metric: str | None) -> None:
        """Raises :class:`UsageError` when an existing collection cannot hold this knowledge base's rows."""
        self.check_fields(collection, info, "use another collection name or drop it; nothing was written")
        if info.dimension != dimension:
            raise UsageError(
                f"collection {collection!r} holds {info.dimension}-dimensional vectors but this knowledge "
                f"base's embeddings have dimension {dimension} (--dimension); nothing was written"
            )
        if metric and info.metric and info.metric != metric:
            raise UsageError(
                f"collection {collection!r} is indexed for metric {info.metric} but --metric is {metric}; "
                "nothing was written"
            )

    def create_collection(self, collection: str, dimension: int, metric: str) -> None:
        """Create ``collection`` with the schema and indexes of the module docstring, and load it."""
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_LENGTH)
        schema.add_field("document", DataType.VARCHAR, max_length=DOCUMENT_MAX_LENGTH)
        schema.add_field("chunk", DataType.INT64)
        schema.add_field("chunks", DataType.INT64)
        schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX_BYTES)
        schema.add_field("content_hash", DataType.VARCHAR, max_length=HASH_MAX_LENGTH)
        schema.add_field("etag", DataType.VARCHAR, max_length=ETAG_MAX_LENGTH)
        schema.add_field("pipeline", DataType.VARCHAR, max_length=HASH_MAX_LENGTH)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dimension)
        index_params = self.client.prepare_index_params()
        index_params.add_index(field_name=VECTOR_FIELD, index_type="AUTOINDEX", metric_type=metric)
        index_params.add_index(field_name="document", index_type="INVERTED")
        with milvus_errors(f"creating collection {collection!r}"):
            self.client.create_collection(collection, schema=schema, consistency_level="Strong")
            # sync=False: pymilvus would poll the build of each index every 0.5 s; on an empty collection
            # there is nothing to build, and loading waits for the index definitions, not their build.
            self.client.create_index(collection, index_params, sync=False)
            self.client.load_collection(collection)

    def load(self, collection: str) -> None:
        """Load ``collection`` for queries (Milvus Lite releases collections when a database is reopened)."""
        with milvus_errors(f"loading collection {collection!r}"):
            self.client.load_collection(collection)

    # --- rows ------------------------------------------------------------------------------------

    def stored_documents(self, collection: str, document: str | None = None) -> dict[str, StoredDocument]:
        """Per document key, its rows and versions: one document's, or with ``document=None`` all of them."""
        expression = f"document == {string_literal(document)}" if document is not None else ""
        out: dict[str, StoredDocument] = {}
        with milvus_errors(f"reading collection {collection!r}"):
            iterator = self.client.query_iterator(
                collection,
                batch_size=ITERATOR_BATCH_ROWS,
                filter=expression,
                output_fields=["document", "chunks", "content_hash", "etag", "pipeline"],
            )
            try:
                while batch := iterator.next():
                    for row in batch:
                        stored = out.setdefault(str(row["document"]), StoredDocument())
                        stored.rows += 1
                        stored.versions.add(
                            StoredVersion(
                                str(row["content_hash"]), str(row["etag"]), str(row["pipeline"]), int(row["chunks"])
                            )
                        )
            finally:
                iterator.close()
        return out

    def upsert(self, collection: str, rows: Sequence[ChunkRow]) -> None:
        """Insert or overwrite ``rows`` (by primary key), in requests of :data:`UPSERT_BATCH_ROWS`."""
        with milvus_errors(f"writing to collection {collection!r}"):
            for start in range(0, len(rows), UPSERT_BATCH_ROWS):
                self.client.upsert(collection, [r.as_entity() for r in rows[start : start + UPSERT_BATCH_ROWS]])

    def delete_document(self, collection: str, document: str, from_chunk: int = 0) -> None:
        """Delete the rows of ``document`` whose chunk index is ``from_chunk`` or more (all of them by default)."""
        expression = f"document == {string_literal(document)}"
        if from_chunk > 0:
            expression += f" and chunk >= {int(from_chunk)}"
        with milvus_errors(f"deleting chunks of {document!r} from collection {collection!r}"):
            self.client.delete(collection, filter=expression)

    def search(self, collection: str, vector: Sequence[float], top_k: int) -> list[dict[str, Any]]:
        """The ``top_k`` nearest rows as ``{"document", "chunk", "text", "distance"}``, best first."""
        with milvus_errors(f"searching collection {collection!r}"):
            result = self.client.search(
                collection,
                data=[list(vector)],
                limit=top_k,
                anns_field=VECTOR_FIELD,
                output_fields=["document", "chunk", "text"],
            )
        hits: list[dict[str, Any]] = []
        for hit in result[0] if result else []:
            entity = hit.get("entity", {})
            hits.append(
                {
                    "document": str(entity["document"]),
                    "chunk": int(entity["chunk"]),
                    "text": str(entity["text"]),
                    "distance": float(hit["distance"]),
                }
            )
        return hits
