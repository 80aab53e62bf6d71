"""The library API the CLI and the tests call: validate, build, compile, check.

Every function takes an optional :class:`.cache.Cache`; with one, work whose inputs have not changed is taken
from it (see :mod:`.cache`), and the results are the same bytes and diagnostics as without. The stages after
loading (validation, resolution, targets) are imported only when a run needs them, so that an answer the
cache already holds costs no more than reading the specs and the output folder. Large projects validate their
spec files and run their environment targets in forked processes (:func:`_jobs`, ``$LLMOPS_JOBS``), with the
same result.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import hashlib
import os
import pickle
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from . import emit
from .diagnostics import CompileError, Diagnostic, sorted_unique
from .load import SpecInputs, read_spec_inputs, specs_folder_name

if TYPE_CHECKING:
    from .cache import Cache, TargetCache
    from .resolve import ProjectGraph
    from .targets import Resource
    from .validate import InvalidSpec, SpecObject

# Loader findings after which a file contributes no documents at all (syntax error, unreadable, too large).
UNREADABLE_FILE_CODES = frozenset({"LLM001", "LLM007", "LLM008"})
JOBS_ENV = "LLMOPS_JOBS"
MAX_JOBS = 4
PARALLEL_SPECS = 200
"""Below this many spec files, forking costs more than it saves (measured by benchmarks/compile_scale.py)."""
CHILD_PATIENCE = (30.0, 10.0)
"""A forked child is waited for at least this many seconds, or this many times what this process took for its
own share; then its share is computed here."""


@dataclass(frozen=True)
class Build:
    """The result of compiling in memory: the graph, the resources, and the files they become."""

    graph: ProjectGraph
    resources: list[Resource]
    files: emit.Files
    specs_digest: str = ""
    """What the specs say (:func:`.load.specs_digest`), as the manifest records it."""
    warnings: list[Diagnostic] = field(default_factory=list)
    """The run's warnings (a build has no errors), sorted by position."""


# --- cache entries -----------------------------------------------------------------------------------

UNITS = "units"  # per specs folder, per spec file: (file problems, file digest, [(spec object, problems) per document])
CHECKED = "checked"  # per specs digest: the warnings of a run whose specs have no errors
BUILDS = "builds"  # per specs digest: a successful build's files (path → sha256), environments, resource count
RENDERS = "renders"  # per specs folder: resource fingerprint → sha256 of its bytes, from the latest build


@dataclass(frozen=True)
class BuildRecord:
    """What a successful compile of one state of the specs produced (kept in the cache)."""

    files: dict[str, str]
    environments: list[str]
    resources: int
    repo_path: str


def _diagnostics(value: Any) -> list[Diagnostic] | None:
    if isinstance(value, list) and all(isinstance(item, Diagnostic) for item in value):
        return value
    return None


Unit = tuple[list[Diagnostic], bytes, list[tuple["SpecObject | InvalidSpec | None", list[Diagnostic]]]]
"""What one spec file contributes: its loader findings, its :func:`.load.file_digest`, and per document the
validated spec (or the name of an invalid one, or None) with its findings."""


def _unit(value: Any) -> Unit | None:
    """A cached unit, or None when it does not have the expected shape."""
    from .validate import InvalidSpec, SpecObject

    if not (isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], bytes)
            and isinstance(value[2], list)):
        return None
    file_problems = _diagnostics(value[0])
    if file_problems is None:
        return None
    for entry in value[2]:
        if not (isinstance(entry, tuple) and len(entry) == 2 and _diagnostics(entry[1]) is not None
                and (entry[0] is None or isinstance(entry[0], SpecObject | InvalidSpec))):
            return None
    return file_problems, value[1], value[2]


def _build_record(cache: Cache, inputs: SpecInputs) -> BuildRecord | None:
    value = cache.get_pickle(BUILDS, cache.key(BUILDS, inputs.content_digest()))
    if not (isinstance(value, tuple) and len(value) == 4):
        return None
    files, environments, resources, repo_path = value
    if not (isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
            and isinstance(environments, list) and all(isinstance(item, str) for item in environments)
            and isinstance(resources, int) and isinstance(repo_path, str)):
        return None
    return BuildRecord(files, environments, resources, repo_path)


@dataclass
class _Loaded:
    """The spec files parsed and validated: the spec objects, every problem, the :func:`.load.specs_digest` of
    the files, and per file (by the name diagnostics show) the sha256 of its name and bytes."""

    objects: list[SpecObject | InvalidSpec]
    problems: list[Diagnostic]
    digest: str
    file_keys: dict[str, bytes]


def _unit_key(display: str, content: bytes) -> bytes:
    """What names one spec file's unit: the sha256 of its name (as diagnostics show it) and its bytes."""
    return hashlib.sha256(display.encode("utf-8", "surrogateescape") + b"\0" + content).digest()


def _units_pack(cache: Cache | None, scope: str) -> dict[bytes, tuple[bytes, bytes]]:
    """The cached units of a specs folder: unit key → (:func:`.load.file_digest`, pickled :data:`Unit`)."""
    if cache is None:
        return {}
    stored = cache.get_pickle(UNITS, cache.key(UNITS, scope))
    if not isinstance(stored, dict):
        return {}
    return {key: value for key, value in stored.items() if isinstance(key, bytes) and isinstance(value, tuple)
            and len(value) == 2 and isinstance(value[0], bytes) and isinstance(value[1], bytes)}


def _compute_unit(display: str, content: bytes) -> Unit:
    from .load import file_digest, parse_spec_bytes
    from .validate import validate_document

    documents, file_problems = parse_spec_bytes(content, display)
    return (file_problems, file_digest(display, documents, file_problems),
            [validate_document(document) for document in documents])


def _load_and_validate(inputs: SpecInputs, cache: Cache | None, scope: str, remember: bool = True) -> _Loaded:
    """Every spec file parsed and each document validated: from the cache for a file whose name and bytes it
    holds, computed otherwise (in several processes when there are many, see :func:`_jobs`). The cache keeps,
    per ``scope`` (a specs folder), one pack of the units of its latest run (so its size follows the
    project's), rewritten when ``remember`` and a unit was computed."""
    from .load import specs_digest

    pack = _units_pack(cache, scope)
    readable = [item for item in inputs.files if not isinstance(item.content, Diagnostic)]
    keys = [_unit_key(item.display, cast(bytes, item.content)) for item in readable]
    units: dict[bytes, Unit] = {}
    for key in keys:
        if key in pack:
            with contextlib.suppress(Exception):  # a unit that does not load is computed again
                unit = _unit(pickle.loads(pack[key][1]))
                if unit is not None:
                    units[key] = unit
    from_pack = set(units)
    missing = [index for index, key in enumerate(keys) if key not in units]
    jobs = _jobs(len(inputs.files))
    if jobs > 1 and len(missing) >= 2 * jobs:
        def work(share: list[int], here: bool) -> list[tuple[int, Any]]:
            computed = [(index, _compute_unit(readable[index].display, cast(bytes, readable[index].content)))
                        for index in share]
            if here:
                return computed
            return [(index, pickle.dumps(unit, protocol=pickle.HIGHEST_PROTOCOL)) for index, unit in computed]

        for share in _forked(_shares(missing, jobs, [None] * len(missing)), work):
            for index, unit in share:
                units[keys[index]] = pickle.loads(unit) if isinstance(unit, bytes) else unit
    kept: dict[bytes, tuple[bytes, bytes]] = {}
    objects: list[SpecObject | InvalidSpec] = []
    problems: list[Diagnostic] = []
    digests: list[bytes] = []
    unreadable: list[Diagnostic] = []
    file_keys: dict[str, bytes] = {}
    readable_keys = dict(zip((id(item) for item in readable), keys, strict=True))
    for item in inputs.files:
        if isinstance(item.content, Diagnostic):
            problems.append(item.content)
            unreadable.append(item.content)
            continue
        unit_key = file_keys[item.display] = readable_keys[id(item)]
        unit = units.get(unit_key)
        if unit is None:
            unit = units[unit_key] = _compute_unit(item.display, item.content)
        if unit_key in from_pack:
            kept[unit_key] = pack[unit_key]
        elif cache is not None and unit_key not in kept:
            with contextlib.suppress(Exception):  # a unit that cannot be pickled is computed every time
                kept[unit_key] = (unit[1], pickle.dumps(unit, protocol=pickle.HIGHEST_PROTOCOL))
        problems.extend(unit[0])
        digests.append(unit[1])
        for spec_object, document_problems in unit[2]:
            problems.extend(document_problems)
            if spec_object is not None:
                objects.append(spec_object)
    if cache is not None and remember and kept.keys() != pack.keys():
        cache.put_pickle(UNITS, cache.key(UNITS, scope), kept)
    return _Loaded(objects, problems, specs_digest(inputs.root_name, digests, unreadable), file_keys)


def _semantic_digest(inputs: SpecInputs, cache: Cache | None, scope: str) -> str:
    """:func:`.load.semantic_digest` of ``inputs``, each file's digest taken from the cached units where they
    hold it."""
    from .load import semantic_digest

    pack = _units_pack(cache, scope)

    def known(display: str, content: bytes) -> bytes | None:
        entry = pack.get(_unit_key(display, content))
        return entry[0] if entry is not None else None

    return semantic_digest(inputs, known)


# --- stages ------------------------------------------------------------------------------------------

def resolve_specs(
    specs_dir: Path, cache: Cache | None = None, inputs: SpecInputs | None = None, stale_steps: bool = False,
) -> tuple[ProjectGraph | None, list[Diagnostic]]:
    """Load, validate and resolve; every problem of the run comes back together, sorted by position.

    ``inputs`` are the spec files already read (:func:`.load.read_spec_inputs`), read here when not given.
    ``stale_steps`` makes a rollout state on a step its policy no longer has a warning, not an error, for the
    commands that can repair it (``llmops rollout status`` and ``abort``)."""
    graph, problems, _ = _resolve(specs_dir, cache, inputs, stale_steps=stale_steps)
    return graph, problems


def _resolve(
    specs_dir: Path, cache: Cache | None = None, inputs: SpecInputs | None = None, scope: Path | None = None,
    remember: bool = True, stale_steps: bool = False,
) -> tuple[ProjectGraph | None, list[Diagnostic], _Loaded | None]:
    """:func:`resolve_specs`, and what loading found (see :class:`_Loaded`). ``scope`` is the specs folder
    whose cached units are used (default ``specs_dir``); ``remember=False`` leaves them as they were."""
    from .resolve import resolve

    inputs = inputs if inputs is not None else read_spec_inputs(specs_dir)
    if inputs.missing is not None:
        return None, [inputs.missing], None  # only "the folder does not exist"; nothing else can be said
    loaded = _load_and_validate(inputs, cache, _scope(scope or specs_dir), remember)
    problems = list(loaded.problems)
    unreadable = {problem.position.file for problem in problems if problem.code in UNREADABLE_FILE_CODES}
    graph, resolution_problems = resolve(loaded.objects, specs_root=specs_folder_name(specs_dir),
                                         complete=not unreadable, stale_steps=stale_steps)
    problems += resolution_problems
    problems = sorted_unique(problems)
    if any(problem.severity == "error" for problem in problems):
        return None, problems, loaded
    return graph, problems, loaded


def validate(specs_dir: Path, cache: Cache | None = None) -> list[Diagnostic]:
    """Every problem in the specs (errors and warnings), sorted by position: exactly what ``compile`` would
    report, since specs that resolve are compiled in memory too (names and label values the targets derive
    are only checked there); nothing is written. With ``cache``, specs a compile or validate already found
    free of errors are answered from it."""
    inputs = read_spec_inputs(specs_dir)
    if cache is not None and inputs.missing is None:
        warnings = _diagnostics(cache.get_pickle(CHECKED, cache.key(CHECKED, inputs.content_digest())))
        if warnings is not None and not any(item.severity == "error" for item in warnings):
            return warnings
    try:
        problems = build(specs_dir, cache=cache, inputs=inputs, render=False).warnings
    except CompileError as error:
        problems = error.diagnostics
    if cache is not None:
        cache.prune()
    return problems


def lower(graph: ProjectGraph) -> list[Resource]:
    """Every resource of every target: each environment's, then the project's."""
    return _lower(graph, None, 1, {}).resources


@dataclass
class _Lowered:
    resources: list[Resource]
    rendered: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(fingerprint, sha256, bytes) of resources already serialised (by a forked process)."""
    problems: list[Diagnostic] = field(default_factory=list)
    """What :func:`.emit.body_problems` found in resources checked as they were built."""


def _lower(graph: ProjectGraph, targets: TargetCache | None, jobs: int, positions: Mapping[str, Any],
           render: bool = True) -> _Lowered:
    """:func:`lower`; with ``targets``, environment targets whose inputs did not change are not run again (see
    :class:`.cache.TargetCache`), and with ``jobs`` > 1 the others run in that many processes (forked: each
    hands back its targets' entries, the problems of their bodies and, when ``render``, the bytes they
    serialise to)."""
    from .targets import ENVIRONMENT_TARGETS, PROJECT_TARGETS

    # Target by target, each in every environment: shares dealt out in this order each get some of every target.
    tasks = [(view, target) for target in ENVIRONMENT_TARGETS for view in graph.environments]
    order = {(id(view), id(target)): index for index, (view, target) in enumerate(
        (view, target) for view in graph.environments for target in ENVIRONMENT_TARGETS)}
    slots: list[list[Resource] | None] = [None] * len(tasks)
    lowered = _Lowered([])
    if targets is None:
        slots = [target(view) for view, target in tasks]
    else:
        for index, (view, target) in enumerate(tasks):
            slots[index] = targets.taken(target, view)
        pending = [index for index, slot in enumerate(slots) if slot is None]
        if jobs > 1 and len(pending) >= 2 * jobs:
            _lower_forked(tasks, pending, slots, targets, jobs, positions, lowered, render)
        for index in pending:
            if slots[index] is None:
                view, target = tasks[index]
                slots[index] = targets.run(target, view)
    for index in sorted(range(len(tasks)), key=lambda index: order[id(tasks[index][0]), id(tasks[index][1])]):
        lowered.resources.extend(slots[index] or [])  # environment by environment, as the targets are listed
    environment_resources = list(lowered.resources)
    for project_target in PROJECT_TARGETS:
        lowered.resources.extend(project_target(graph, environment_resources))
    return lowered


def _lower_forked(tasks: list[tuple[Any, Any]], pending: list[int], slots: list[list[Resource] | None],
                  targets: TargetCache, jobs: int, positions: Mapping[str, Any], lowered: _Lowered,
                  render: bool = True) -> None:
    """Run the ``pending`` tasks in ``jobs`` processes, filling ``slots``; a task a process could not hand back
    stays empty (the caller runs it). Each process also serialises what it built when ``render``."""
    from .targets.base import Resource

    Done = tuple[int, Any, list[tuple[str, str, bytes]], list[Diagnostic], list[Resource] | None]

    def work(share: list[int], here: bool) -> list[Done]:
        done: list[Done] = []
        for index in share:
            view, target = tasks[index]
            built, entry = targets.build(target, view)
            if entry is None:  # cannot be handed over: built here, or again by the caller
                done.append((index, None, [], [], built if here else None))
                continue
            rendered = []
            for resource, piece in zip(built, entry[2], strict=True) if render else ():
                content = emit.render_resource(resource)
                rendered.append((piece[4], hashlib.sha256(content).hexdigest(), content))
            problems = [problem for resource in built for problem in emit.body_problems(resource, positions)]
            done.append((index, entry, rendered, problems, built if here else None))
        return done

    for share in _forked(_shares(pending, jobs, [targets.seconds.get(targets.identity(tasks[index][1], tasks[index][0]))
                                                 for index in pending]), work):
        for index, entry, rendered, problems, built in share:
            view, target = tasks[index]
            if entry is None:
                slots[index] = built
                continue
            targets.changed[targets.identity(target, view)] = entry
            slots[index] = targets.resources(entry[2], [resource.body for resource in built] if built else None)
            lowered.rendered.extend(rendered)
            lowered.problems.extend(problems)


T = TypeVar("T")


def _shares(tasks: list[int], jobs: int, seconds: list[float | None]) -> list[list[int]]:
    """``tasks`` dealt out to ``jobs`` processes: by how long each took the last time when that is known for all
    (longest first, each to the least loaded process), else in turn."""
    if any(value is None for value in seconds):
        return [tasks[offset::jobs] for offset in range(jobs)]
    shares: list[list[int]] = [[] for _ in range(jobs)]
    loads = [0.0] * jobs
    for value, task in sorted(zip(seconds, tasks, strict=True), key=lambda item: -(item[0] or 0.0)):
        lightest = loads.index(min(loads))
        shares[lightest].append(task)
        loads[lightest] += value or 0.0
    return shares


def _forked(shares: list[list[int]], work: Callable[[list[int], bool], list[T]]) -> list[list[T]]:
    """``work(share, here)`` for every share: the first in this process (``here`` True), each other in a forked
    child that pickles its result back through a pipe. A child that fails, cannot be forked, or takes far longer
    than this process took for its own share (``CHILD_PATIENCE``) leaves its share to this process, so the
    result never depends on the children."""
    children: list[tuple[int, int, list[int]]] = []
    parent = os.getpid()
    gc.freeze()  # the children share the parent's objects untouched (no copy for the collector's sake)
    try:
        for share in shares[1:]:
            try:
                read, write = os.pipe()
            except OSError:
                children.append((-1, -1, share))
                continue
            try:
                pid = os.fork()
            except OSError:
                os.close(read)
                os.close(write)
                children.append((-1, -1, share))
                continue
            if pid == 0:  # the child: compute, hand back, leave without running the parent's cleanup
                os.close(read)
                _die_with_parent(parent)
                try:
                    data = pickle.dumps(work(share, False), protocol=pickle.HIGHEST_PROTOCOL)
                except BaseException:
                    data = b""
                with contextlib.suppress(BaseException), os.fdopen(write, "wb") as handle:
                    handle.write(data)
                os._exit(0)
            os.close(write)
            children.append((pid, read, share))
        start = time.monotonic()
        results = [work(shares[0], True)]
        deadline = time.monotonic() + max(CHILD_PATIENCE[0], CHILD_PATIENCE[1] * (time.monotonic() - start))
        for index, (pid, read, share) in enumerate(children):
            value: list[T] | None = None
            if pid > 0:
                handed = _read_until(read, deadline)
                os.close(read)
                if handed is None:  # too slow: stopped, and its share computed here
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                children[index] = (0, -1, share)
                with contextlib.suppress(Exception):
                    value = pickle.loads(handed) if handed else None
            results.append(value if value is not None else work(share, True))
        return results
    finally:
        gc.unfreeze()
        for pid, _, _ in children:
            if pid > 0:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)


def _die_with_parent(parent: int) -> None:
    """In a forked child: be killed when the parent dies (Linux prctl PR_SET_PDEATHSIG), so that a compile
    killed with SIGKILL leaves no process behind; exit at once if the parent is already gone."""
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _read_until(descriptor: int, deadline: float) -> bytes | None:
    """Everything a pipe carries until it closes, or None when ``deadline`` (monotonic) passes first."""
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([descriptor], [], [], remaining)[0]:
            return None
        chunk = os.read(descriptor, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _jobs(specs: int) -> int:
    """Processes to compile with: ``$LLMOPS_JOBS`` (1: none forked), else the cores this process may use (at most
    ``MAX_JOBS``) when there are at least ``PARALLEL_SPECS`` spec files and the machine is not already busy (a
    load average under the number of cores: a second process on a core another program keeps busy made a compile
    slower, not faster). Always 1 where processes are not forked (not Linux) and in a process with threads (a
    lock another thread held would stay locked in the child)."""
    if sys.platform != "linux" or not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    setting = os.environ.get(JOBS_ENV, "").strip()
    if setting:
        try:
            return max(1, int(setting))
        except ValueError:
            return 1
    cores = len(os.sched_getaffinity(0))
    if specs < PARALLEL_SPECS or os.getloadavg()[0] >= cores:
        return 1
    return max(1, min(cores, MAX_JOBS))


def _scope(specs_dir: Path) -> str:
    """What names a project in the cache: the real path of its specs folder."""
    return os.path.realpath(specs_dir)


def build(
    specs_dir: Path, strict: bool = False, cache: Cache | None = None, reuse_from: Mapping[str, bytes] | None = None,
    inputs: SpecInputs | None = None, scope: Path | None = None, remember: bool = True, render: bool = True,
) -> Build:
    """Compile in memory; raises CompileError with every diagnostic when the specs have errors.

    ``render=False`` (what ``validate`` does) runs every check of a compile but serialises nothing: the
    Build's ``files`` are then empty.

    With ``strict``, every generated object is also checked against its real schema (see :mod:`.strict`);
    raises :class:`.strict.StrictUnavailable` when the schema packages are not installed. With ``cache``,
    unchanged spec files are not parsed or validated again, and a resource built exactly as in the previous
    compile of the specs folder (``scope``, default ``specs_dir``) takes its bytes from ``reuse_from``
    (files of an earlier output, path → bytes) instead of being serialised again; ``remember=False`` leaves
    the scope's cached units and renders as they were (for a compile of another state of the specs)."""
    inputs = inputs if inputs is not None else read_spec_inputs(specs_dir)
    graph, problems, loaded = _resolve(specs_dir, cache, inputs, scope, remember)
    if graph is None or loaded is None:
        raise CompileError(problems)
    digest = loaded.digest
    project = _scope(scope or specs_dir)
    from .cache import TargetCache

    jobs = _jobs(len(inputs.files))
    targets = TargetCache(loaded.file_keys, cache, project) if cache is not None or jobs > 1 else None
    positions = {spec.source: spec.position for view in graph.environments
                 for specs in view.specs.values() for spec in specs.values()}
    lowered = _lower(graph, targets, jobs, positions, render)
    resources = lowered.resources
    reuse = None
    known: Any = {}
    if targets is not None and render:
        if cache is not None:
            known = cache.get_pickle(RENDERS, cache.key(RENDERS, project))
            known = known if isinstance(known, dict) else {}
        available = {hashlib.sha256(content).hexdigest(): content for content in (reuse_from or {}).values()}
        reuse = emit.RenderReuse(dict(known), available, fingerprints=targets.fingerprints)
        for fingerprint, sha, content in lowered.rendered:
            reuse.known[fingerprint] = sha
            reuse.available[sha] = content
    environments = [view.name for view in graph.environments]
    files, emit_problems = emit.render_files(resources, environments, positions, digest, reuse, render=render)
    emit_problems += lowered.problems
    if strict:
        from .strict import strict_diagnostics

        emit_problems += strict_diagnostics(resources, positions)
    if emit_problems:
        raise CompileError(sorted_unique([*problems, *emit_problems]))
    if cache is not None and not strict:
        cache.put_pickle(CHECKED, cache.key(CHECKED, inputs.content_digest()), problems)
    if cache is not None and targets is not None and remember:
        targets.store()
    if cache is not None and reuse is not None and targets is not None:
        if remember and reuse.learned != known:
            cache.put_pickle(RENDERS, cache.key(RENDERS, project), reuse.learned)
        if not strict:
            record = ({path: hashlib.sha256(content).hexdigest() for path, content in files.items()},
                      environments, len(resources), graph.project.spec.repo.path)
            cache.put_pickle(BUILDS, cache.key(BUILDS, inputs.content_digest()), record)
    return Build(graph, resources, files, digest, problems)


def compiled_files(
    specs_dir: Path, cache: Cache | None = None, current: Mapping[str, bytes] | None = None
) -> emit.Files:
    """The files a compile of ``specs_dir`` writes. With ``cache``, when it holds a build of exactly these specs
    and ``current`` (an output folder's files) has every one of its files, those bytes are the answer (checked
    against the build's sha256); otherwise the specs are compiled (raises CompileError on errors)."""
    inputs = read_spec_inputs(specs_dir)
    if cache is not None and current is not None and inputs.missing is None:
        record = _build_record(cache, inputs)
        if record is not None and all(
                path in current and hashlib.sha256(current[path]).hexdigest() == digest
                for path, digest in record.files.items()):
            return {path: current[path] for path in record.files}
    files = build(specs_dir, cache=cache, reuse_from=current, inputs=inputs).files
    if cache is not None:
        cache.prune()
    return files


@dataclass(frozen=True)
class CompileResult:
    build: Build | None
    """None when the cache showed that the output folder already holds this compile."""
    written: list[str]
    removed: list[str]
    unchanged: bool
    environments: list[str] = field(default_factory=list)
    resources: int = 0
    repo_path: str = ""
    """The Project's ``repo.path``: where its ArgoCD Applications expect the output in the repository."""


def _written(write: Callable[[], emit.WriteResult]) -> emit.WriteResult:
    try:
        return write()
    except emit.OutputConflict as conflict:
        raise CompileError(conflict.diagnostics) from None


def compile_project(specs_dir: Path, output_dir: Path, strict: bool = False, cache: Cache | None = None
                    ) -> CompileResult:
    """Compile and write ``output_dir`` atomically; on any error nothing is written.

    With ``cache`` (see :func:`build`), the output folder's lock is held for the whole compile, so that the
    bytes taken from it cannot change meanwhile; when the cache holds a build of exactly these specs and the
    folder already holds its files, nothing is compiled. An output folder that overlaps the specs folder is
    refused (:func:`.emit.overlap_problems`)."""
    refused = emit.overlap_problems(specs_dir, output_dir) or emit.output_kind_problems(output_dir)
    if refused:
        raise CompileError(refused)
    if cache is None or not os.path.lexists(output_dir):  # nothing to reuse; a failed compile creates nothing
        result = build(specs_dir, strict=strict, cache=cache)
        written = _written(lambda: emit.write_output(output_dir, result.files))
    else:
        inputs = read_spec_inputs(specs_dir)
        with emit.opened_output(output_dir) as state:
            record = _build_record(cache, inputs) if not strict and inputs.missing is None else None
            if record is not None and state.unchanged_by(record.files):
                return CompileResult(None, [], [], True, record.environments, record.resources, record.repo_path)
            result = build(specs_dir, strict=strict, cache=cache, reuse_from=state.current, inputs=inputs)
            written = _written(lambda: emit.write_state(state, result.files))
    if cache is not None:
        cache.prune()
    return CompileResult(result, written.written, written.removed, written.unchanged,
                         [view.name for view in result.graph.environments], len(result.resources),
                         result.graph.project.spec.repo.path)


@dataclass(frozen=True)
class CheckResult:
    """Whether ``output_dir`` equals a fresh compile, and the unified diff when it does not."""

    stale: list[str] = field(default_factory=list)
    diff: str = ""

    @property
    def ok(self) -> bool:
        return not self.stale


def check(specs_dir: Path, output_dir: Path, cache: Cache | None = None) -> CheckResult:
    current = emit.read_owned(output_dir)
    fresh = compiled_files(specs_dir, cache, current) if cache is not None else build(specs_dir).files
    stale = sorted(path for path in set(fresh) | set(current) if fresh.get(path) != current.get(path))
    chunks = []
    for path in stale:
        before = current.get(path, b"").decode(errors="replace").splitlines(keepends=True)
        after = fresh.get(path, b"").decode(errors="replace").splitlines(keepends=True)
        old_name = f"a/{output_dir.name}/{path}" if path in current else "/dev/null"
        new_name = f"b/{output_dir.name}/{path}" if path in fresh else "/dev/null"
        chunks.append("".join(difflib.unified_diff(before, after, old_name, new_name)))
    return CheckResult(stale, "".join(chunk if chunk.endswith("\n") else chunk + "\n" for chunk in chunks))


def files_at_revision(
    specs_dir: Path, output_dir: Path, revision: str, cache: Cache | None = None,
    reuse_from: Mapping[str, bytes] | None = None,
) -> tuple[emit.Files, str]:
    """The files a compile of the specs as committed at git ``revision`` writes, and where they came from:

    - ``"committed"``: the output folder committed at ``revision``, when its manifest says this compiler version
      made it from exactly those specs and every file matches the manifest (see :func:`.plan.committed_output`;
      files with the bytes of ``reuse_from`` are not read from git);
    - ``"compiled"``: otherwise the specs at ``revision`` are compiled (raises CompileError when they have
      errors), with ``cache`` and the bytes of ``reuse_from`` (see :func:`build`);
    - ``"absent"``: the specs folder did not exist at ``revision`` (no files).

    Raises :class:`.plan.GitError` when ``revision`` or the repository cannot be read."""
    import tempfile

    import llmops_compiler

    from . import plan

    scope = _scope(specs_dir)
    inputs = plan.spec_inputs_at_revision(specs_dir, revision)
    if inputs is None:
        return {}, "absent"
    with tempfile.TemporaryDirectory() as temporary:
        if inputs == "extract":
            base_specs = plan.specs_at_revision(specs_dir, revision, Path(temporary))
            if base_specs is None:
                return {}, "absent"
            inputs = read_spec_inputs(base_specs)
        else:
            base_specs = Path(temporary, inputs.root_name)  # named as the specs folder; its files are in `inputs`
        committed = plan.committed_output(specs_dir, output_dir, revision, _semantic_digest(inputs, cache, scope),
                                          llmops_compiler.__version__, known=reuse_from)
        if committed is not None:
            return committed, "committed"
        files = build(base_specs, cache=cache, reuse_from=reuse_from, inputs=inputs, scope=specs_dir,
                      remember=False).files
        return files, "compiled"
