"""The compile cache: work that is pure and costly, kept on disk so that the next run can skip it.

What is kept, each under a key that names every input it depends on:

- per spec file (its name and bytes): the parsed documents, their validation results and diagnostics;
- per state of the specs folder (:meth:`.load.SpecInputs.content_digest`): the sha256 of every file a
  successful compile produced, and its warnings, so that `check`, `validate` and an up-to-date `compile`
  answer without loading a spec;
- per environment target: the kinds of spec it read and the resources it built (:class:`TargetCache`), so
  that a target runs again only when something it read changed;
- per specs folder: the sha256 of the bytes each resource rendered to (keyed by a fingerprint of the
  resource), so that a resource built again as it was is taken from the output folder, not serialised again.

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
import dataclasses
import functools
import hashlib
import importlib.util
import marshal
import os
import pickle
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from .targets.base import Resource

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
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "llmops-compiler"
    try:
        return Path.home() / ".cache" / "llmops-compiler"
    except (RuntimeError, KeyError):  # no home folder: a per-user folder that is used only if it is private
        return Path(tempfile.gettempdir()) / f"llmops-compiler-{os.getuid() if hasattr(os, 'getuid') else 0}"


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


def _private(folder: Path, follow: bool = True) -> bool:
    """Whether ``folder`` is a folder that belongs to the current user and nobody else can write to (with
    ``follow=False``, not a link to one either)."""
    from .files import owned_privately

    try:
        info = os.stat(folder) if follow else os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and owned_privately(info)


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
        self.private_folders: set[Path] = set()
        """Folders below the cache folder found private (see :meth:`_private_below`)."""

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

    def _private_below(self, folder: Path) -> bool:
        """Whether every folder from the cache folder down to ``folder`` is private (see :func:`_private`) and
        none is a link: only then can no one else have put an entry there (entries are pickles)."""
        if folder in self.private_folders:
            return True
        parents = [folder, *folder.parents]
        below = parents[:parents.index(self.folder)] if self.folder in parents else None
        if below is None or not all(_private(item, follow=False) for item in below):
            return False
        self.private_folders.add(folder)
        return True

    def get(self, namespace: str, key: str) -> bytes | None:
        """The payload stored under ``key``, or None (missing, corrupted, unreadable, unusable folder, or an entry
        that is not a private regular file below private folders)."""
        from .files import read_regular

        if not self._ready():
            return None
        path = self._path(namespace, key)
        if not self._private_below(path.parent):
            return None
        try:
            data = read_regular(str(path), MAX_BYTES, private=True)
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


class MemoryCache(Cache):
    """A cache that lives in this process only, for a command that compiles two states of one project (``diff
    --base`` when the base must be compiled) under ``--no-cache``: the second compile takes what the first one
    computed (the same entries, keys and checks as on disk), and nothing is read from or kept in any folder."""

    def __init__(self) -> None:
        super().__init__(Path(os.devnull), fingerprint="in-memory")
        self.entries: dict[tuple[str, str], bytes] = {}

    def _ready(self) -> bool:
        return True

    def get(self, namespace: str, key: str) -> bytes | None:
        return self.entries.get((namespace, key))

    def put(self, namespace: str, key: str, payload: bytes) -> None:
        self.entries[namespace, key] = payload
        self.wrote = True

    def prune(self, max_bytes: int = MAX_BYTES) -> None:
        """Nothing to trim: the entries go with the process."""


def files_digests(files: Mapping[str, bytes]) -> dict[str, str]:
    """Path → hex sha256 of the bytes."""
    return {path: hashlib.sha256(content).hexdigest() for path, content in files.items()}


# --- environment targets ---------------------------------------------------------------------------

TARGETS = "targets"  # per specs folder, target and environment: the kinds it read and what it built
ALL_KINDS = "*"  # read: a target listed the kinds themselves


class KindReads(Mapping[str, Any]):
    """An environment's specs by kind (``EnvironmentView.specs``) that notes every kind a target reads; listing
    the kinds (iterating, counting) is noted as reading all of them."""

    def __init__(self, specs: Mapping[str, Any], reads: set[str]) -> None:
        self.specs = specs
        self.reads = reads

    def __getitem__(self, kind: str) -> Any:
        self.reads.add(kind)
        return self.specs[kind]

    def get(self, kind: str, default: Any = None) -> Any:
        self.reads.add(kind)
        return self.specs.get(kind, default)

    def __contains__(self, kind: object) -> bool:
        self.reads.add(str(kind))
        return kind in self.specs

    def __iter__(self) -> Iterator[str]:
        self.reads.add(ALL_KINDS)
        return iter(self.specs)

    def __len__(self) -> int:
        self.reads.add(ALL_KINDS)
        return len(self.specs)


@functools.cache
def stored_resource() -> type[Resource]:
    """The class of resources rebuilt from their marshalled form (defined on first use: it needs the targets'
    base class, which a cache that answers alone never loads)."""
    from .targets.base import Resource

    class StoredResource(Resource):
        """A resource as a target built it: path, source, kind and name at hand, and the body decoded from its
        marshalled form only when something reads it. ``prechecked``: :func:`.emit.body_problems` was run on
        it when it was built (and found nothing, or its findings were reported then)."""

        prechecked = True

        def __init__(self, path: str, source: str, kind: str, name: str, piece: bytes,
                     body: dict[str, Any] | None = None) -> None:
            for attribute, value in (("path", path), ("source", source), ("_kind", kind), ("_name", name),
                                     ("_piece", piece), ("_body", body)):
                object.__setattr__(self, attribute, value)

        @property
        def body(self) -> dict[str, Any]:
            body = self.__dict__.get("_body")
            if body is None:
                body = marshal.loads(self.__dict__["_piece"])[1]
                object.__setattr__(self, "_body", body)
            return cast(dict[str, Any], body)

        @property
        def kind(self) -> str:
            return cast(str, self.__dict__["_kind"])

        @property
        def name(self) -> str:
            return cast(str, self.__dict__["_name"])

    return StoredResource


Piece = tuple[str, str, str, str, str, bytes]
"""A resource as kept: path, source, kind, name, fingerprint (see :func:`.emit.resource_fingerprint`), and the
marshalled (source, body)."""
Entry = tuple[tuple[str, ...], bytes, list[Piece], float]
"""What a target built: the kinds it read, the digest of its inputs, its resources, the seconds it took."""


class TargetCache:
    """Environment targets run only when what they read changed.

    A target is a pure function of its environment view. It runs on a view that notes which kinds of spec it
    reads (:class:`KindReads`); what it built is kept with those kinds and a digest of its inputs: the target,
    the environment, the Project's file (which also defines the environment) and, for each kind it read, the
    name and file (name and bytes) of every spec of that kind. Next time, when that digest is the same,
    everything the target read is the same, so it would read the same and build the same: its resources are
    taken as built, and decoded only if something reads their bodies (a resource whose bytes the output folder
    has is never decoded). A target that fails on the noting view, or builds a value ``marshal`` refuses, is
    simply run every time. Without a ``cache``, nothing is taken or stored, but what targets build still comes
    as entries (which is how forked processes hand it back)."""

    def __init__(self, file_keys: Mapping[str, bytes], cache: Cache | None, scope: str) -> None:
        self.file_keys = file_keys
        self.cache = cache
        self.scope = scope
        self.changed: dict[str, Entry] = {}
        """Entries to store: built in this compile (each target and environment has one entry per scope)."""
        self.fingerprints: dict[int, str] = {}
        """id(resource) → fingerprint, for every resource built or taken here."""
        self.seconds: dict[str, float] = {}
        """How long targets that must run again took the last time (to share them out between processes)."""

    @staticmethod
    def identity(target: Callable[..., Any], view: Any) -> str:
        return f"{target.__module__}.{target.__qualname__}@{view.name}"

    def _kind_digest(self, view: Any, kind: str) -> bytes:
        specs = view.specs.get(kind)
        if specs is None:
            return b"absent"
        digest = hashlib.sha256()
        for name in sorted(specs):
            digest.update(name.encode() + b"\0" + self.file_keys.get(specs[name].file, b"?"))
        return digest.digest()

    def _inputs_digest(self, identity: str, view: Any, reads: tuple[str, ...]) -> bytes:
        digest = hashlib.sha256(identity.encode() + b"\0" + self.file_keys.get(view.project.file, b"?"))
        kinds = sorted(view.specs) if ALL_KINDS in reads else [kind for kind in reads if kind != ALL_KINDS]
        if ALL_KINDS in reads:
            digest.update(b"all:" + ",".join(kinds).encode())
        for kind in kinds:
            digest.update(kind.encode() + b"\0" + self._kind_digest(view, kind))
        return digest.digest()

    def taken(self, target: Callable[..., Any], view: Any) -> list[Resource] | None:
        """The target's resources as kept, when what it read is unchanged; None otherwise."""
        if self.cache is None:
            return None
        identity = self.identity(target, view)
        entry = self.cache.get_pickle(TARGETS, self.cache.key(TARGETS, self.scope, identity))
        if not (isinstance(entry, tuple) and len(entry) == 4 and isinstance(entry[0], tuple)
                and all(isinstance(kind, str) for kind in entry[0]) and isinstance(entry[2], list)
                and all(isinstance(piece, tuple) and len(piece) == 6 and all(isinstance(part, str)
                        for part in piece[:5]) and isinstance(piece[5], bytes) for piece in entry[2])
                and isinstance(entry[3], float)):
            return None
        if entry[1] != self._inputs_digest(identity, view, entry[0]):
            self.seconds[identity] = entry[3]
            return None
        return self.resources(entry[2])

    def resources(self, pieces: list[Piece], bodies: list[dict[str, Any]] | None = None) -> list[Resource]:
        """Resources from their kept form (with their bodies when at hand)."""
        stored = stored_resource()
        resources = []
        for index, (path, source, kind, name, fingerprint, piece) in enumerate(pieces):
            resource = stored(path, source, kind, name, piece, bodies[index] if bodies else None)  # type: ignore[call-arg, arg-type]
            self.fingerprints[id(resource)] = fingerprint
            resources.append(resource)
        return resources

    def build(self, target: Callable[[Any], list[Resource]], view: Any) -> tuple[list[Resource], Entry | None]:
        """Run the target on a noting view: its resources, and its entry (None when it cannot be kept)."""
        reads: set[str] = set()
        start = time.perf_counter()
        try:
            built = target(dataclasses.replace(view, specs=KindReads(view.specs, reads)))
        except Exception:  # the target needs more than the noting view gives: run it as it is
            return target(view), None
        pieces: list[Piece] = []
        for resource in built:
            try:
                piece = marshal.dumps((resource.source, resource.body), 2)
            except ValueError:
                return built, None
            fingerprint = hashlib.sha256(piece).hexdigest()
            self.fingerprints[id(resource)] = fingerprint
            pieces.append((resource.path, resource.source, resource.kind, resource.name, fingerprint, piece))
        read = tuple(sorted(reads))
        seconds = time.perf_counter() - start
        return built, (read, self._inputs_digest(self.identity(target, view), view, read), pieces, seconds)

    def run(self, target: Callable[[Any], list[Resource]], view: Any) -> list[Resource]:
        """The target's resources: as kept when nothing it read changed, built (and kept) otherwise."""
        taken = self.taken(target, view)
        if taken is not None:
            return taken
        built, entry = self.build(target, view)
        if entry is not None:
            self.changed[self.identity(target, view)] = entry
        return built

    def store(self) -> None:
        if self.cache is not None:
            for identity, entry in self.changed.items():
                self.cache.put_pickle(TARGETS, self.cache.key(TARGETS, self.scope, identity), entry)
