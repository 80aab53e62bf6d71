"""The library API the CLI and the tests call: validate, build, compile, check.

Every function takes an optional :class:`.cache.Cache`; with one, work whose inputs have not changed is taken
from it (see :mod:`.cache`), and the results are the same bytes and diagnostics as without. The stages after
loading (validation, resolution, targets) are imported only when a run needs them, so that an answer the
cache already holds costs no more than reading the specs and the output folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import hashlib
import marshal
import os
import pickle
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import emit
from .diagnostics import CompileError, Diagnostic, sorted_unique
from .load import SpecInputs, read_spec_inputs

if TYPE_CHECKING:
    from .cache import Cache
    from .resolve import ProjectGraph
    from .targets import Resource
    from .validate import InvalidSpec, SpecObject

# Loader findings after which a file contributes no documents at all (syntax error, unreadable, too large).
UNREADABLE_FILE_CODES = frozenset({"LLM001", "LLM007", "LLM008"})


@dataclass(frozen=True)
class Build:
    """The result of compiling in memory: the graph, the resources, and the files they become."""

    graph: ProjectGraph
    resources: list[Resource]
    files: emit.Files
    specs_digest: str = ""
    """What the specs say (:func:`.load.specs_digest`), as the manifest records it."""


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
    if not (isinstance(value, tuple) and len(value) == 3):
        return None
    files, environments, resources = value
    if not (isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
            and isinstance(environments, list) and all(isinstance(item, str) for item in environments)
            and isinstance(resources, int)):
        return None
    return BuildRecord(files, environments, resources)


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


def _load_and_validate(inputs: SpecInputs, cache: Cache | None, scope: str, remember: bool = True) -> _Loaded:
    """Every spec file parsed and each document validated: from the cache for a file whose name and bytes it
    holds, computed otherwise. The cache keeps, per ``scope`` (a specs folder), one pack of the units of its
    latest run (so its size follows the project's), rewritten when ``remember`` and a unit was computed."""
    from .load import file_digest, parse_spec_bytes, specs_digest
    from .validate import validate_document

    pack = _units_pack(cache, scope)
    kept: dict[bytes, tuple[bytes, bytes]] = {}
    objects: list[SpecObject | InvalidSpec] = []
    problems: list[Diagnostic] = []
    digests: list[bytes] = []
    unreadable: list[Diagnostic] = []
    file_keys: dict[str, bytes] = {}
    for item in inputs.files:
        if isinstance(item.content, Diagnostic):
            problems.append(item.content)
            unreadable.append(item.content)
            continue
        unit_key = file_keys[item.display] = _unit_key(item.display, item.content)
        unit = None
        if unit_key in pack:
            with contextlib.suppress(Exception):  # a unit that does not load is computed again
                unit = _unit(pickle.loads(pack[unit_key][1]))
        if unit is None:
            documents, file_problems = parse_spec_bytes(item.content, item.display)
            unit = (file_problems, file_digest(item.display, documents, file_problems),
                    [validate_document(document) for document in documents])
            if cache is not None:
                with contextlib.suppress(Exception):  # a unit that cannot be pickled is computed every time
                    kept[unit_key] = (unit[1], pickle.dumps(unit, protocol=pickle.HIGHEST_PROTOCOL))
        else:
            kept[unit_key] = pack[unit_key]
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
    """:func:`.load.specs_digest` of ``inputs``: each file's digest from the cached units where they hold it,
    parsed otherwise (nothing is validated)."""
    from .load import file_digest, parse_spec_bytes, specs_digest

    pack = _units_pack(cache, scope)
    digests: list[bytes] = []
    unreadable: list[Diagnostic] = []
    for item in inputs.files:
        if isinstance(item.content, Diagnostic):
            unreadable.append(item.content)
            continue
        entry = pack.get(_unit_key(item.display, item.content))
        if entry is not None:
            digests.append(entry[0])
        else:
            documents, problems = parse_spec_bytes(item.content, item.display)
            digests.append(file_digest(item.display, documents, problems))
    return specs_digest(inputs.root_name, digests, unreadable)


# --- stages ------------------------------------------------------------------------------------------

def resolve_specs(
    specs_dir: Path, cache: Cache | None = None, inputs: SpecInputs | None = None,
) -> tuple[ProjectGraph | None, list[Diagnostic]]:
    """Load, validate and resolve; every problem of the run comes back together, sorted by position.

    ``inputs`` are the spec files already read (:func:`.load.read_spec_inputs`), read here when not given."""
    graph, problems, _ = _resolve(specs_dir, cache, inputs)
    return graph, problems


def _resolve(
    specs_dir: Path, cache: Cache | None = None, inputs: SpecInputs | None = None, scope: Path | None = None,
    remember: bool = True,
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
    graph, resolution_problems = resolve(loaded.objects, specs_root=specs_dir.name, complete=not unreadable)
    problems += resolution_problems
    problems = sorted_unique(problems)
    if any(problem.severity == "error" for problem in problems):
        return None, problems, loaded
    if cache is not None:
        cache.put_pickle(CHECKED, cache.key(CHECKED, inputs.content_digest()), problems)
    return graph, problems, loaded


def validate(specs_dir: Path, cache: Cache | None = None) -> list[Diagnostic]:
    """Every problem in the specs (errors and warnings), sorted by position."""
    if cache is not None:
        inputs = read_spec_inputs(specs_dir)
        if inputs.missing is None:
            warnings = _diagnostics(cache.get_pickle(CHECKED, cache.key(CHECKED, inputs.content_digest())))
            if warnings is not None and not any(item.severity == "error" for item in warnings):
                return warnings
        problems = resolve_specs(specs_dir, cache, inputs)[1]
        cache.prune()
        return problems
    return resolve_specs(specs_dir)[1]


def lower(graph: ProjectGraph, targets: _TargetCache | None = None) -> list[Resource]:
    """Every resource of every target, environment by environment, then the project's; with ``targets``, an
    environment target whose inputs are as in the previous compile is not run again (see :class:`_TargetCache`)."""
    from .targets import ENVIRONMENT_TARGETS, PROJECT_TARGETS

    resources: list[Resource] = []
    for view in graph.environments:
        for environment_target in ENVIRONMENT_TARGETS:
            resources.extend(targets.run(environment_target, view) if targets else environment_target(view))
    environment_resources = list(resources)
    for project_target in PROJECT_TARGETS:
        resources.extend(project_target(graph, environment_resources))
    return resources


LOWERED = "lowered"  # per specs folder and target and environment: the kinds it read and what it built
ALL_KINDS = "*"  # read: a target listed the kinds themselves


class _KindReads(Mapping[str, Any]):
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
def _stored_resource() -> type[Resource]:
    """The class of resources taken from the cache (defined on first use: it needs the targets' base class)."""
    from .targets.base import Resource

    class StoredResource(Resource):
        """A resource as an earlier compile built it: path, source, kind, name and fingerprint at hand, and the
        body decoded from its marshalled form only when something reads it. ``prechecked``: it passed the
        checks :func:`.emit.render_files` makes of a body when it was built."""

        prechecked = True

        def __init__(self, path: str, source: str, kind: str, name: str, piece: bytes) -> None:
            for attribute, value in (("path", path), ("source", source), ("_kind", kind), ("_name", name),
                                     ("_piece", piece)):
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
"""A resource in the cache: path, source, kind, name, fingerprint, marshalled (source, body)."""


@dataclass
class _TargetCache:
    """Environment targets run only when what they read changed.

    A target is a pure function of its environment view. When it runs, it runs on a view that notes which kinds
    of spec it reads (:class:`_KindReads`); what it built is kept with those kinds and a digest of its inputs:
    the target, the environment, the Project's file (which also defines the environment) and, for each kind it
    read, the name and file (name and bytes) of every spec of that kind. Next time, when that digest is the same,
    everything the target read is the same, so it would read the same and build the same: its resources are
    taken as built, and decoded only if something reads their bodies (a resource whose bytes the output folder
    has is never decoded). A target that fails on the noting view, or builds a value ``marshal`` refuses, is
    simply run every time."""

    file_keys: Mapping[str, bytes]
    cache: Cache
    scope: str
    changed: dict[str, tuple[tuple[str, ...], bytes, list[Piece]]] = field(default_factory=dict)
    """Entries to store: built in this compile (each target and environment has one entry per specs folder)."""
    fingerprints: dict[int, str] = field(default_factory=dict)
    """id(resource) → :func:`.emit.resource_fingerprint`, for every resource built or taken here."""
    taken: int = 0

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

    def store(self) -> None:
        for identity, entry in self.changed.items():
            self.cache.put_pickle(LOWERED, self.cache.key(LOWERED, self.scope, identity), entry)

    def _taken(self, identity: str, view: Any) -> list[Resource] | None:
        entry = self.cache.get_pickle(LOWERED, self.cache.key(LOWERED, self.scope, identity))
        if not (isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[0], tuple)
                and all(isinstance(kind, str) for kind in entry[0]) and isinstance(entry[2], list)
                and all(isinstance(piece, tuple) and len(piece) == 6 and all(isinstance(part, str)
                        for part in piece[:5]) and isinstance(piece[5], bytes) for piece in entry[2])):
            return None
        reads, digest, pieces = entry
        if digest != self._inputs_digest(identity, view, reads):
            return None
        stored = _stored_resource()
        resources = []
        for path, source, kind, name, fingerprint, piece in pieces:
            resource = stored(path, source, kind, name, piece)  # type: ignore[call-arg]
            self.fingerprints[id(resource)] = fingerprint
            resources.append(resource)
        self.taken += 1
        return resources

    def run(self, target: Callable[[Any], list[Resource]], view: Any) -> list[Resource]:
        identity = f"{target.__module__}.{target.__qualname__}@{view.name}"
        taken = self._taken(identity, view)
        if taken is not None:
            return taken
        reads: set[str] = set()
        try:
            built = target(dataclasses.replace(view, specs=_KindReads(view.specs, reads)))
        except Exception:  # the target needs more than the noting view gives: run it as it is, every time
            return target(view)
        pieces: list[Piece] = []
        for resource in built:
            try:
                piece = marshal.dumps((resource.source, resource.body), 2)
            except ValueError:
                return built
            fingerprint = hashlib.sha256(piece).hexdigest()
            self.fingerprints[id(resource)] = fingerprint
            pieces.append((resource.path, resource.source, resource.kind, resource.name, fingerprint, piece))
        read = tuple(sorted(reads))
        self.changed[identity] = (read, self._inputs_digest(identity, view, read), pieces)
        return built


def _scope(specs_dir: Path) -> str:
    """What names a project in the cache: the real path of its specs folder."""
    return os.path.realpath(specs_dir)


def build(
    specs_dir: Path, strict: bool = False, cache: Cache | None = None, reuse_from: Mapping[str, bytes] | None = None,
    inputs: SpecInputs | None = None, scope: Path | None = None, remember: bool = True,
) -> Build:
    """Compile in memory; raises CompileError with every diagnostic when the specs have errors.

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
    targets = None
    if cache is not None:
        targets = _TargetCache(loaded.file_keys, cache, project)
    resources = lower(graph, targets)
    positions = {spec.source: spec.position for view in graph.environments
                 for specs in view.specs.values() for spec in specs.values()}
    reuse = None
    if cache is not None and targets is not None:
        known = cache.get_pickle(RENDERS, cache.key(RENDERS, project))
        available = {hashlib.sha256(content).hexdigest(): content for content in (reuse_from or {}).values()}
        reuse = emit.RenderReuse(known if isinstance(known, dict) else {}, available,
                                 fingerprints=targets.fingerprints)
    environments = [view.name for view in graph.environments]
    files, emit_problems = emit.render_files(resources, environments, positions, digest, reuse)
    if strict:
        from .strict import strict_diagnostics

        emit_problems += strict_diagnostics(resources, positions)
    if emit_problems:
        raise CompileError(emit_problems)
    if cache is not None and reuse is not None and targets is not None:
        if remember and reuse.learned != reuse.known:
            cache.put_pickle(RENDERS, cache.key(RENDERS, project), reuse.learned)
        if remember:
            targets.store()
        if not strict:
            record = ({path: hashlib.sha256(content).hexdigest() for path, content in files.items()},
                      environments, len(resources))
            cache.put_pickle(BUILDS, cache.key(BUILDS, inputs.content_digest()), record)
    return Build(graph, resources, files, digest)


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
    folder already holds its files, nothing is compiled."""
    if cache is None or not os.path.lexists(output_dir):  # nothing to reuse; a failed compile creates nothing
        result = build(specs_dir, strict=strict, cache=cache)
        written = _written(lambda: emit.write_output(output_dir, result.files))
    else:
        inputs = read_spec_inputs(specs_dir)
        with emit.opened_output(output_dir) as state:
            record = _build_record(cache, inputs) if not strict and inputs.missing is None else None
            if record is not None and state.unchanged_by(record.files):
                return CompileResult(None, [], [], True, record.environments, record.resources)
            result = build(specs_dir, strict=strict, cache=cache, reuse_from=state.current, inputs=inputs)
            written = _written(lambda: emit.write_state(state, result.files))
    if cache is not None:
        cache.prune()
    return CompileResult(result, written.written, written.removed, written.unchanged,
                         [view.name for view in result.graph.environments], len(result.resources))


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
