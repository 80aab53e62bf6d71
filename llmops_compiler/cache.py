"""The compile cache: work that is pure and costly, kept on disk so that the next run can skip it.

What is kept, each under a key that names every input it depends on:

- per spec file (its name and bytes): the parsed documents, their validation results and diagnostics;
- per specs folder state (the digest of every spec file, see :meth:`.load.SpecInputs.content_digest`): the sha256 of
  every file a successful compile produced and its warnings, so that `check`, `validate` and an up-to-date
  `compile` answer without loading a spec;
- per output folder: the sha256 of the bytes each resource rendered to (keyed by a fingerprint of the resource),
  so that a resource built again as it was is taken from the output folder instead of serialised again.

Every key includes the compiler's fingerprint: its version, the bytes of its own source files, the Python
version and the installed versions of the libraries whose behaviour reaches the output, so an upgrade or a
source edit starts a fresh cache. An entry carries a sha256 of its key and payload; an entry that is missing,
truncated, corrupted, written by another version or unreadable is a miss, never an error. Writes go to a
temporary file renamed into place (atomic); the folder is trimmed, oldest entries first, to ``MAX_BYTES``.

Where: ``$LLMOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/llmops-compiler``, else ``~/.cache/llmops-compiler``.
Deleting it is always safe. The cache is trusted like the compiler itself (entries are Python pickles): it is
used only when the folder belongs to the current user and no one else can write to it, and it lives outside the
repository by default, so a checkout can never supply entries.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import pickle
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CACHE_DIR_ENV = "LLMOPS_CACHE_DIR"
FORMAT = "v1"
MAGIC = b"LLMOPS-CACHE-1\n"
MAX_BYTES = 256 * 1024 * 1024
"""Size the cache folder is trimmed to after a run that wrote to it (all compiler versions together)."""
PRUNE_TARGET = 0.75
"""Fraction of ``MAX_BYTES`` that trimming leaves, so that it does not run again on the next write."""
DEPENDENCIES = ("pydantic", "pydantic_core", "yaml", "jinja2", "detect_secrets", "jsonschema", "click")
"""Libraries whose behaviour reaches the output or the diagnostics; their installed files are in the key."""


def default_folder() -> Path:
    """``$LLMOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/llmops-compiler``, else ``~/.cache/llmops-compiler``."""
    chosen = os.environ.get(CACHE_DIR_ENV)
    if chosen:
        return Path(chosen)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "llmops-compiler"


@functools.cache
def _source_digest() -> str:
    """sha256 of the compiler's own source files (path and bytes of every ``.py`` under the package)."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(name for name in dirs if name != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                digest.update(os.path.relpath(path, package).encode() + b"\0")
                with open(path, "rb") as handle:
                    digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


@functools.cache
def _dependency_stamp() -> str:
    """Where each library in ``DEPENDENCIES`` is installed, with the size and modification time of its entry
    file (a reinstall rewrites it), found without importing it."""
    stamps = []
    for name in DEPENDENCIES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
        try:
            info = os.stat(origin) if origin else None
        except OSError:
            info = None
        stamps.append(f"{name}={origin}:{info.st_size if info else -1}:{info.st_mtime_ns if info else -1}")
    return "\n".join(stamps)


def compiler_fingerprint() -> str:
    """What the compiler is, for cache keys: a hex sha256 of its version, its source files, the Python that
    runs it and the libraries it relies on."""
    import llmops_compiler

    text = "\n".join((FORMAT, llmops_compiler.__version__, sys.version, _source_digest(), _dependency_stamp()))
    return hashlib.sha256(text.encode()).hexdigest()


def _private(folder: Path) -> bool:
    """Whether ``folder`` belongs to the current user and nobody else can write to it."""
    try:
        info = os.stat(folder)
    except OSError:
        return False
    owner_ok = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    return stat.S_ISDIR(info.st_mode) and owner_ok and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


class Cache:
    """One cache folder, seen by one compiler (its :func:`compiler_fingerprint`).

    Entries live in ``<folder>/<FORMAT>-<fingerprint prefix>/<namespace>/<key[:2]>/<key[2:]>``; a key is a hex
    sha256 of the fingerprint, the namespace and the entry's inputs."""

    def __init__(self, folder: Path, fingerprint: str | None = None) -> None:
        self.folder = folder
        self.fingerprint = fingerprint or compiler_fingerprint()
        self.version_folder = folder / f"{FORMAT}-{self.fingerprint[:32]}"
        self.usable: bool | None = None
        self.wrote = False

    @classmethod
    def open(cls, folder: Path | None = None) -> Cache:
        """The cache in ``folder`` (default: :func:`default_folder`)."""
        return cls(folder if folder is not None else default_folder())

    def key(self, namespace: str, *parts: bytes | str) -> str:
        """The key of an entry: sha256 of the fingerprint, the namespace and each part (length-prefixed)."""
        digest = hashlib.sha256(self.fingerprint.encode() + b"\0" + namespace.encode() + b"\0")
        for part in parts:
            data = part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big") + data)
        return digest.hexdigest()

    def _path(self, namespace: str, key: str) -> Path:
        return self.version_folder / namespace / key[:2] / key[2:]

    def _ready(self) -> bool:
        """Whether the folder can be used: created private if missing, refused if others can write to it."""
        if self.usable is None:
            with contextlib.suppress(OSError):
                self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.usable = _private(self.folder)
        return self.usable

    def get(self, namespace: str, key: str) -> bytes | None:
        """The payload stored under ``key``, or None (missing, corrupted, unreadable, unusable folder)."""
        if not self._ready():
            return None
        try:
            with open(self._path(namespace, key), "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        header = len(MAGIC) + 32
        if len(data) < header or not data.startswith(MAGIC):
            return None
        payload = data[header:]
        if hashlib.sha256(key.encode() + payload).digest() != data[len(MAGIC):header]:
            return None
        return payload

    def put(self, namespace: str, key: str, payload: bytes) -> None:
        """Store ``payload`` under ``key`` atomically (a temporary file renamed into place); failures are
        ignored (a full disk or a read-only folder only means a slower next run)."""
        if not self._ready():
            return
        path = self._path(namespace, key)
        temporary = None
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(MAGIC + hashlib.sha256(key.encode() + payload).digest() + payload)
            os.replace(temporary, path)
            temporary = None
            self.wrote = True
        except OSError:
            pass
        finally:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)

    # --- typed entries ---------------------------------------------------------------------------------

    def get_pickle(self, namespace: str, key: str) -> Any:
        """An unpickled entry, or None when missing or unreadable in any way."""
        payload = self.get(namespace, key)
        if payload is None:
            return None
        try:
            return pickle.loads(payload)
        except Exception:  # any damage that passed the checksum (another Python, a moved class): a miss
            return None

    def put_pickle(self, namespace: str, key: str, value: Any) -> None:
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
            return
        self.put(namespace, key, payload)

    def get_json(self, namespace: str, key: str) -> Any:
        payload = self.get(namespace, key)
        if payload is None:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            return None

    def put_json(self, namespace: str, key: str, value: Any) -> None:
        self.put(namespace, key, json.dumps(value, separators=(",", ":")).encode())

    # --- size ------------------------------------------------------------------------------------------

    def prune(self, max_bytes: int = MAX_BYTES) -> None:
        """Trim the whole cache folder (every compiler version) to ``PRUNE_TARGET`` of ``max_bytes`` when it is
        larger than ``max_bytes``: folders of other compiler versions first, then the oldest entries."""
        if not self.wrote or not self._ready():
            return
        entries: list[tuple[bool, int, int, str]] = []  # (this version, mtime, size, path)
        total = 0
        for root, dirs, files in os.walk(self.folder):
            dirs[:] = [name for name in dirs if not os.path.islink(os.path.join(root, name))]
            current = Path(root).is_relative_to(self.version_folder)
            for name in files:
                path = os.path.join(root, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                total += info.st_size
                entries.append((current, info.st_mtime_ns, info.st_size, path))
        if total <= max_bytes:
            return
        for _, _, size, path in sorted(entries):
            if total <= max_bytes * PRUNE_TARGET:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
                total -= size


def files_digests(files: Mapping[str, bytes]) -> dict[str, str]:
    """Path → hex sha256 of the bytes."""
    return {path: hashlib.sha256(content).hexdigest() for path, content in files.items()}
