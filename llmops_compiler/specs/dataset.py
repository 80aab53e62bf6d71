"""Dataset: production feedback and labelled files curated into a versioned, content-addressed training set."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from .common import Cron, DnsLabel, Duration, Identifier, StrictModel, Url
from .monitor import FieldPath


class DatasetSource(StrictModel):
    """Where records come from: production logs with feedback, labelled files, or another Dataset."""

    merge_key: ClassVar[str] = "name"

    name: Identifier
    """Source name, for messages and the manifest."""
    logs: Url | None = None
    """Production request logs (JSONL, `s3://bucket/prefix/`), read through `window`, fields named in `fields`."""
    labelled: Url | None = None
    """Labelled prompt/completion JSONL (a file or a prefix)."""
    dataset: DnsLabel | None = None
    """Another Dataset: its latest version, train and eval splits, as labelled records."""
    window: Duration | None = None
    """How far back to read the logs (logs only; default: all)."""


class FeedbackFields(StrictModel):
    """Where a log record keeps the request, the answer and the user's feedback (dotted paths)."""

    timestamp: FieldPath = "timestamp"
    """When the request was served."""
    prompt: FieldPath = "prompt"
    """The request."""
    response: FieldPath = "response"
    """The model's answer."""
    context: FieldPath | None = None
    """The retrieved context, kept with the record."""
    rating: FieldPath | None = None
    """A numeric rating."""
    thumbs: FieldPath | None = None
    """Thumbs up or down."""
    correction: FieldPath | None = None
    """An answer a person corrected: it replaces the model's."""


class Keep(StrictModel):
    """Which logged records become training records (a record kept by any rule is kept)."""

    min_rating: float | None = None
    """Keep records rated at least this."""
    thumbs_up: bool = False
    """Keep records with thumbs up."""
    corrected: bool = True
    """Keep records with a corrected answer (the correction becomes the completion)."""


class Curation(StrictModel):
    """How records are cleaned and split."""

    keep: Keep = Keep()
    """Which logged records are kept."""
    scrub_pii: bool = True
    """Replace personal data (e-mail addresses, phone and card numbers, ...) with its type."""
    near_duplicate_threshold: float = Field(default=0.8, gt=0, le=1)
    """Drop a record whose estimated Jaccard similarity (MinHash) to a kept one is at least this (1: exact
    duplicates only)."""
    eval_fraction: float = Field(default=0.1, gt=0, lt=1)
    """Share of records in the evaluation split."""
    seed: int = 0
    """Seed of the split: the same records and seed give the same split."""


class DatasetSpec(StrictModel):
    """A versioned training set: each run writes `<output>/<sha256>/` (train, eval, manifest) and `latest/`."""

    sources: Annotated[list[DatasetSource], Field(min_length=1)]
    """Where records come from."""
    fields: FeedbackFields = FeedbackFields()
    """Where log records keep request, answer and feedback."""
    curation: Curation = Curation()
    """How records are cleaned and split."""
    output: Url
    """`s3://bucket/prefix/` the versions are written under."""
    schedule: Cron | None = None
    """When to curate a new version (otherwise on demand: `argo submit --from workflowtemplate/curate-<name>`)."""
