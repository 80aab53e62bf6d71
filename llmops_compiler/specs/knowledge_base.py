"""KnowledgeBase: documents in object storage, chunked, embedded and kept in a vector store."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .common import Cron, HostPort, Identifier, ObjectName, StrictModel, Url

BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class Source(StrictModel):
    """Where the documents are: a bucket and prefix of an S3 or S3-compatible store."""

    bucket: Annotated[str, Field(pattern=BUCKET)]
    """Bucket name."""
    prefix: Annotated[str, Field(pattern=r"^[^\s\x00-\x1f\x7f]*$", max_length=1024)] = ""
    """Key prefix of the documents (`articles/`); empty for the whole bucket."""
    endpoint: HostPort | None = None
    """S3-compatible endpoint as `host:port` without a scheme (MinIO); without it, AWS S3."""
    insecure: bool = False
    """Plain HTTP instead of TLS to the endpoint."""
    credentials_secret: ObjectName | None = None
    """Secret with keys `accesskey` and `secretkey` (as Argo Events' minio source reads them) for the store;
    without it, the Project's object store keys, or the pods' identity."""
    notifications: Literal["minio", "sqs"] | None = None
    """How uploads are noticed: `minio` (MinIO's bucket notifications, the default with an `endpoint`) or
    `sqs` (AWS S3 notifications delivered to an SQS queue, the default without one)."""
    queue: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")] | None = None
    """SQS queue that receives the bucket's notifications (with `sqs`)."""
    region: Annotated[str, Field(pattern=r"^[a-z0-9-]+$", max_length=64)] | None = None
    """AWS region of the bucket and the queue (with `sqs`)."""


class Chunking(StrictModel):
    """How documents are split before embedding."""

    strategy: Literal["fixed", "recursive", "sentence"] = "recursive"
    """`fixed` (every N characters), `recursive` (paragraphs, then lines, then words) or `sentence`."""
    size: int = Field(gt=0, le=100_000)
    """Largest chunk, in characters."""
    overlap: int = Field(ge=0, default=0)
    """Characters shared by consecutive chunks (smaller than `size`)."""


class Embedding(StrictModel):
    """The sentence-transformers model that embeds chunks and queries."""

    model: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\s\x00-\x1f\x7f]+$")]
    """Model name (`sentence-transformers/all-MiniLM-L6-v2`) or a path in the runtime image."""
    dimension: int = Field(gt=0, le=65536)
    """Length of its embedding vectors; checked against known models at compile time and the model at run time."""


class VectorStore(StrictModel):
    """Where the chunks and their vectors are kept."""

    type: Literal["milvus"] = "milvus"
    """Vector store kind."""
    uri: Url
    """Milvus URI, e.g. `http://milvus.vector.svc:19530`."""
    collection: Identifier
    """Collection name."""
    credentials_secret: ObjectName | None = None
    """Secret with key `token` for Milvus."""
    metric: Literal["COSINE", "IP", "L2"] = "COSINE"
    """Similarity metric of the index."""


class KnowledgeBaseSpec(StrictModel):
    """Documents that are ingested into a vector index on upload and queried by chains' retrieve steps."""

    source: Source
    """The bucket the documents are uploaded to."""
    chunking: Chunking
    """How documents are split."""
    embedding: Embedding
    """How chunks are embedded."""
    vector_store: VectorStore
    """Where the index lives."""
    schedule: Cron | None = None
    """Full re-sync schedule (also removes chunks of documents no longer in the bucket)."""

