"""Where a knowledge base's documents live: an ``s3://bucket/prefix`` in AWS S3 or an S3-compatible store (boto3).

Credentials come from boto3's default chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` in the
environment, a web-identity token, an instance profile). With an endpoint other than AWS's the client uses
path-style addressing, which MinIO and most S3-compatible stores need.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llmops_compiler.runtime._common import RuntimeStepError, UsageError

#: Endpoints that mean AWS S3 itself (boto3 then picks the regional endpoint).
AWS_ENDPOINTS = frozenset({"s3.amazonaws.com"})

_S3_URI = re.compile(r"^s3://(?P<bucket>[^/]+)/?(?P<prefix>.*)$")
# S3 bucket naming rules (also what the KnowledgeBase spec accepts).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class SourceLocation:
    """A bucket and a key prefix (``""`` for the whole bucket); object keys are relative to the bucket."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> SourceLocation:
        """``s3://bucket/prefix`` (prefix may be empty); raises :class:`UsageError` for anything else."""
        m = _S3_URI.match(uri.strip())
        if not m or not _BUCKET.match(m["bucket"]):
            raise UsageError(f"--source must look like s3://BUCKET/PREFIX, got {uri!r}")
        return cls(m["bucket"], m["prefix"])

    def contains(self, key: str) -> bool:
        """Whether ``key`` is under the prefix (a plain string prefix, as S3 itself matches prefixes)."""
        return key.startswith(self.prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    etag: str


@dataclass
class FetchedObject:
    """An object whose headers have been read; ``body`` is the open stream, read with :meth:`read`."""

    key: str
    size: int
    etag: str
    body: Any

    def read(self, limit: int) -> bytes:
        """The whole body; more than ``limit`` bytes (a size that changed under us) is an error."""
        try:
            data = bytes(self.body.read(limit + 1))
        except Exception as exc:  # botocore/urllib3 read errors have no common base class
            raise RuntimeStepError(f"reading {self.key} failed: {type(exc).__name__}: {exc}") from None
        finally:
            self.body.close()
        if len(data) > limit:
            raise ObjectTooLarge(self.key, len(data), limit)
        return data

    def close(self) -> None:
        self.body.close()


class ObjectMissing(Exception):
    """The object does not exist (any more): S3's ``NoSuchKey``."""


class ObjectTooLarge(Exception):
    """The object is larger than the configured maximum (bounded work per document)."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        super().__init__(f"{key}: {size} bytes is over the limit of {limit} bytes (--max-object-bytes)")
        self.size = size
        self.limit = limit


def s3_client(endpoint: str | None, *, insecure: bool = False, region: str | None = None) -> Any:
    """A boto3 S3 client for AWS (``endpoint`` None or ``s3.amazonaws.com``) or for ``HOST:PORT``.

    ``endpoint`` may also be a full ``http(s)://`` URL; otherwise the scheme is ``http`` with ``insecure``
    and ``https`` without it. Retries use botocore's ``standard`` mode (5 attempts).
    """
    import boto3
    from botocore.config import Config

    endpoint_url: str | None = None
    if endpoint and endpoint not in AWS_ENDPOINTS:
        endpoint_url = endpoint if "://" in endpoint else f"{'http' if insecure else 'https'}://{endpoint}"
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"} if endpoint_url else {},
    )
    # boto3's default session caches the loaded service models: a second client costs milliseconds, not ~0.5 s.
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region or session.region_name or "us-east-1",
        config=config,
    )


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def describe_s3_error(exc: Exception, what: str) -> RuntimeStepError:
    """A one-line :class:`RuntimeStepError` (exit 3) for a failed S3 call: the store, not the input, failed."""
    code = _error_code(exc)
    detail = f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"
    return RuntimeStepError(f"{what} failed: {detail}")


def list_objects(client: Any, location: SourceLocation) -> Iterator[ListedObject]:
    """Every object under the prefix (folder markers, keys ending in ``/``, left out), in key order."""
    from botocore.exceptions import BotoCoreError, ClientError

    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if key.endswith("/"):
                    continue
                yield ListedObject(key, int(item.get("Size", 0)), str(item.get("ETag", "")).strip('"'))
    except (BotoCoreError, ClientError) as exc:
        raise describe_s3_error(exc, f"listing {location}") from None


def fetch_object(client: Any, bucket: str, key: str) -> FetchedObject:
    """Open ``s3://bucket/key`` for reading; raises :class:`ObjectMissing` on ``NoSuchKey``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            raise ObjectMissing(key) from None
        raise describe_s3_error(exc, f"reading s3://{bucket}/{key}") from None
    except BotoCoreError as exc:
        raise describe_s3_error(exc, f"reading s3://{bucket}/{key}") from None
    return FetchedObject(
        key=key,
        size=int(response.get("ContentLength", 0)),
        etag=str(response.get("ETag", "")).strip('"'),
        body=response["Body"],
    )
