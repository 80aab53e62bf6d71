"""KnowledgeBase: documents in object storage, chunked, embedded and kept in a vector store."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Cron, Identifier, ObjectName, StrictModel, Url


class Source(StrictModel):
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = ""
    endpoint: Url | None = None
    credentials_secret: ObjectName | None = None


class Chunking(StrictModel):
    strategy: Literal["fixed", "recursive", "sentence"] = "recursive"
    size: int = Field(gt=0, le=100_000)
    overlap: int = Field(ge=0, default=0)


class Embedding(StrictModel):
    model: str = Field(min_length=1)
    dimension: int = Field(gt=0, le=65536)


class VectorStore(StrictModel):
    uri: Url
    collection: Identifier
    credentials_secret: ObjectName | None = None


class KnowledgeBaseSpec(StrictModel):
    source: Source
    chunking: Chunking
    embedding: Embedding
    vector_store: VectorStore
    schedule: Cron | None = None
