"""Reading JSON Lines logs and datasets: one file or a folder of them (``.jsonl``, ``.jsonl.gz``), locally
or under an ``s3://bucket/prefix``, optionally cut to a time window and a seeded sample.

Shared by ``drift`` (the production window it compares with its reference), ``score`` (the window it
evaluates) and ``curate`` (its sources); ``_common.read_jsonl`` (tune, evaluate) parses lines with the same
:func:`iter_jsonl_lines`.

Time window
-----------
With ``window`` (seconds) a record is kept when its ``timestamp_field`` falls in ``[now - window, now]``
(both ends included). A timestamp is an ISO 8601 string (``2026-11-02T10:00:00Z``, ``...+01:00``; one
without an offset is read as UTC) or a number of seconds since the Unix epoch. A record without a readable
timestamp is bad input (:class:`LogInputError`, naming file and line): a log whose timestamps cannot be read
would silently fall out of every window. Under ``s3://`` an object last modified before the window starts is
not downloaded at all: a log object is written after the records it holds, so it cannot hold records of a
later window.

Sample
------
With ``sample_size`` the records in the window are cut to a uniform random sample of that many, without
replacement, by bottom-k sampling: each record's key is a keyed hash (BLAKE2b, keyed by the seed) of its
line, and the ``sample_size`` records with the smallest keys are kept in a heap. Memory is bounded by the
sample, not the log, and the sample depends only on the seed and the set of lines, not on how the lines are
spread over files or ordered within them (a reservoir sample would depend on the order). The sample is
returned in key order, which is a seeded shuffle: a consumer that stops early (a judge budget) still has a
uniform sample. Identical lines get identical keys, so duplicated lines are kept or dropped together.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import io
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

SUFFIXES: Final = (".jsonl", ".jsonl.gz")
DEFAULT_TIMESTAMP_FIELD: Final = "timestamp"
_DURATION_UNITS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION: Final = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")


class LogInputError(Exception):
    """Unreadable input: ``source`` (a path or URI), the 1-based ``line`` when one line is at fault, and the
    ``reason``; shown as ``source:line: reason``."""

    def __init__(self, source: str, reason: str, line: int | None = None) -> None:
        super().__init__(f"{source}:{line}: {reason}" if line is not None else f"{source}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


class LogSourceUnavailable(LogInputError):
    """The object store could not be asked (no connection, no credentials, a server error or throttling):
    nothing is wrong with the input, so the steps exit 3 and the workflow retries."""


_MISSING = frozenset({"NoSuchBucket", "NoSuchKey", "404", "NotFound", "InvalidBucketName"})


def _store_error(uri: str, what: str, exc: Exception) -> LogInputError:
    """What an S3 failure means: the input is not there (a ClientError such as ``NoSuchBucket``: bad input),
    or the store could not be asked (:class:`LogSourceUnavailable`)."""
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    if isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in _MISSING:
        return LogInputError(uri, f"{what}: {exc}")
    return LogSourceUnavailable(uri, f"{what}: {exc}")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""What :func:`lookup` returns for a field a record does not have."""


def lookup(record: dict[str, Any], path: str) -> Any:
    """The value of field ``path`` in ``record``: a key with that literal name, else a dotted path walked
    through nested objects (``request.prompt``); :data:`MISSING` when there is neither."""
    if path in record:
        return record[path]
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


# --- time ---------------------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus-style duration (``90s``, ``30m``, ``1h30m``, ``7d``); ValueError otherwise."""
    value = text.strip()
    if not _DURATION.match(value):
        raise ValueError(f"bad duration {text!r}: expected e.g. 30m, 1h, 1h30m, 7d")
    seconds = sum(int(n) * _DURATION_UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", value))
    if seconds <= 0:
        raise ValueError(f"bad duration {text!r}: must be positive")
    return float(seconds)


def parse_timestamp(value: Any) -> float:
    """Seconds since the Unix epoch of an ISO 8601 string or an epoch-seconds number; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {json.dumps(value)}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"not a timestamp: {value}")
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {value[:40]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise ValueError(f"not a timestamp: {json.dumps(value)[:40]}")


# --- lines and files ------------------------------------------------------------------------------------


def iter_jsonl_lines(lines: Iterable[str], where: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(line number, line, object)`` for every non-blank line of a JSON Lines text; ``where`` names it.

    Raises :class:`LogInputError` at ``where:line`` for a line that is not JSON or not a JSON object.
    """
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LogInputError(where, f"malformed JSON: {exc.msg} (column {exc.colno})", lineno) from None
        if not isinstance(record, dict):
            raise LogInputError(where, f"expected a JSON object, got {type(record).__name__}", lineno)
        yield lineno, line, record


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def iter_jsonl_file(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """:func:`iter_jsonl_lines` over a local file (gzip when its name ends in ``.gz``)."""
    try:
        with _open_text(path) as fh:
            yield from iter_jsonl_lines(fh, str(path))
    except UnicodeDecodeError as exc:
        raise LogInputError(str(path), f"not UTF-8 text ({exc.reason})") from None
    except (OSError, EOFError) as exc:
        raise LogInputError(str(path), f"cannot read: {exc}") from None


def is_s3(source: str | Path) -> bool:
    return str(source).startswith("s3://")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key or prefix)`` of ``s3://bucket/key``; ValueError without a bucket."""
    rest = uri.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"bad S3 URI {uri!r}: expected s3://bucket/key")
    return bucket, key


def s3_client() -> Any:
    """A boto3 S3 client configured the standard way (``AWS_ENDPOINT_URL`` for an S3-compatible store,
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, else the pod's identity)."""
    import boto3  # type: ignore[import-untyped]

    return boto3.client("s3")


@dataclass(frozen=True)
class InputFile:
    """One JSONL input: a local path or an S3 object (``uri`` is ``s3://bucket/key``)."""

    uri: str
    path: Path | None = None
    last_modified: float | None = None
    version: str | None = None
    """S3 ``VersionId`` (when the bucket keeps versions) or ``ETag``; ``None`` for a local file."""


def input_files(source: str | Path, *, client: Any = None) -> list[InputFile]:
    """The JSONL files of ``source``: a file, or every ``*.jsonl``/``*.jsonl.gz`` below a folder or S3 prefix,
    sorted by name.

    Raises :class:`LogInputError` for a missing source and for a folder or prefix without JSONL files.
    """
    if is_s3(source):
        return _s3_files(str(source), client or s3_client())
    path = Path(source)
    if not path.exists():
        raise LogInputError(str(path), "no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        if not files:
            raise LogInputError(str(path), "folder holds no .jsonl or .jsonl.gz files")
        return [InputFile(str(p), p) for p in files]
    if not path.is_file():
        raise LogInputError(str(path), "not a file")
    return [InputFile(str(path), path)]


def _s3_files(uri: str, client: Any) -> list[InputFile]:
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    bucket, prefix = split_s3_uri(uri)
    files: list[InputFile] = []
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if not (key == prefix or key.endswith(SUFFIXES)):
                    continue
                etag = str(obj.get("ETag", "")).strip('"')
                files.append(InputFile(f"s3://{bucket}/{key}", None, obj["LastModified"].timestamp(), etag))
    except (BotoCoreError, ClientError) as exc:
        raise _store_error(uri, "cannot list", exc) from None
    if not files:
        raise LogInputError(uri, "no .jsonl or .jsonl.gz objects under this prefix")
    return sorted(files, key=lambda f: f.uri)


def iter_input_file(file: InputFile, client: Any = None) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """:func:`iter_jsonl_lines` over one input file, local or S3 (streamed, gzip by name)."""
    if file.path is not None:
        yield from iter_jsonl_file(file.path)
        return
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3_uri(file.uri)
    try:
        body = (client or s3_client()).get_object(Bucket=bucket, Key=key)["Body"]
        raw: Any = gzip.GzipFile(fileobj=body) if key.endswith(".gz") else body
        with io.TextIOWrapper(raw, encoding="utf-8") as text:
            yield from iter_jsonl_lines(text, file.uri)
    except UnicodeDecodeError as exc:
        raise LogInputError(file.uri, f"not UTF-8 text ({exc.reason})") from None
    except (BotoCoreError, ClientError) as exc:
        raise _store_error(file.uri, "cannot read", exc) from None
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise LogInputError(file.uri, f"cannot read: {exc}") from None


# --- windowed, sampled reading --------------------------------------------------------------------------


@dataclass(frozen=True)
class LogRecord:
    """A record and where it came from (``file:line``, for messages)."""

    where: str
    record: dict[str, Any]


@dataclass
class LogWindow:
    """What :func:`read_window` kept, and how much it looked at."""

    records: list[LogRecord]
    files: int = 0
    read: int = 0
    """Records read (non-blank lines)."""
    in_window: int = 0
    """Records whose timestamp fell in the window (all read records without a window)."""
    start: float | None = None
    end: float | None = None
    skipped_files: int = 0
    """S3 objects not downloaded because they were last modified before the window started."""
    sources: list[InputFile] = field(default_factory=list)
    """The files read (not those skipped)."""

    def summary(self) -> dict[str, Any]:
        def iso(t: float | None) -> str | None:
            return None if t is None else datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")

        return {
            "files": self.files,
            "skipped_files": self.skipped_files,
            "read": self.read,
            "in_window": self.in_window,
            "sampled": len(self.records),
            "start": iso(self.start),
            "end": iso(self.end),
        }


def sample_key(seed: int, line: str) -> bytes:
    """The bottom-k sampling key of a line: BLAKE2b-128 of the stripped line, keyed by the seed."""
    key = seed.to_bytes(16, "big", signed=True)
    return hashlib.blake2b(line.strip().encode("utf-8"), digest_size=16, key=key).digest()


def read_window(
    source: str | Path,
    *,
    window: float | None = None,
    now: float | None = None,
    timestamp_field: str = DEFAULT_TIMESTAMP_FIELD,
    sample_size: int | None = None,
    seed: int = 0,
    client: Any = None,
) -> LogWindow:
    """The records of ``source`` in ``[now - window, now]`` (every record without ``window``), cut to a
    seeded sample of ``sample_size`` (all of them without it); see the module docstring.

    ``now`` defaults to the current time (epoch seconds). Raises :class:`LogInputError` for unreadable input
    and, with a window, for a record without a readable timestamp; ValueError for a bad size or window.
    """
    import time

    if sample_size is not None and sample_size < 1:
        raise ValueError(f"sample size must be >= 1, got {sample_size}")
    if window is not None and not window > 0:
        raise ValueError(f"window must be positive, got {window}")
    end = time.time() if now is None else now
    start = None if window is None else end - window
    if is_s3(source) and client is None:
        client = s3_client()
    files = input_files(source, client=client)
    result = LogWindow(records=[], start=start, end=end if window is not None else None)
    # A max-heap (negated keys) of the sample_size smallest keys seen so far.
    heap: list[tuple[int, int, LogRecord]] = []
    kept: list[LogRecord] = []
    for file in files:
        if start is not None and file.last_modified is not None and file.last_modified < start:
            result.skipped_files += 1
            continue
        result.files += 1
        result.sources.append(file)
        for lineno, line, record in iter_input_file(file, client):
            result.read += 1
            where = f"{file.uri}:{lineno}"
            if start is not None:
                raw = lookup(record, timestamp_field)
                if raw is MISSING or raw is None:
                    raise LogInputError(file.uri, f"record has no timestamp field {timestamp_field!r}", lineno)
                try:
                    t = parse_timestamp(raw)
                except ValueError as exc:
                    raise LogInputError(file.uri, f"field {timestamp_field!r}: {exc}", lineno) from None
                if not start <= t <= end:
                    continue
            result.in_window += 1
            item = LogRecord(where, record)
            if sample_size is None:
                kept.append(item)
                continue
            key = int.from_bytes(sample_key(seed, line), "big")
            if len(heap) < sample_size:
                heapq.heappush(heap, (-key, result.in_window, item))
            elif key < -heap[0][0]:
                heapq.heapreplace(heap, (-key, result.in_window, item))
    if sample_size is None:
        result.records = kept
    else:
        result.records = [item for _, _, item in sorted(heap, key=lambda entry: (-entry[0], entry[1]))]
    return result
