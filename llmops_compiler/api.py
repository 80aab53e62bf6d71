"""The library API the CLI and the tests call: validate, build, compile, check."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from . import emit
from .diagnostics import CompileError, Diagnostic, sorted_unique
from .load import load_specs
from .resolve import ProjectGraph, resolve
from .targets import ENVIRONMENT_TARGETS, PROJECT_TARGETS, Resource
from .validate import validate_documents

# Loader findings after which a file contributes no documents at all (syntax error, unreadable, too large).
UNREADABLE_FILE_CODES = frozenset({"LLM001", "LLM007", "LLM008"})


@dataclass(frozen=True)
class Build:
    """The result of compiling in memory: the graph, the resources, and the files they become."""

    graph: ProjectGraph
    resources: list[Resource]
    files: emit.Files


def resolve_specs(specs_dir: Path) -> tuple[ProjectGraph | None, list[Diagnostic]]:
    """Load, validate and resolve; every problem of the run comes back together, sorted by position."""
    documents, problems = load_specs(specs_dir)
    if not specs_dir.is_dir():
        return None, problems  # only "the folder does not exist"; nothing else can be said
    objects, validation_problems = validate_documents(documents)
    problems += validation_problems
    unreadable = {problem.position.file for problem in problems if problem.code in UNREADABLE_FILE_CODES}
    graph, resolution_problems = resolve(objects, specs_root=specs_dir.name, complete=not unreadable)
    problems += resolution_problems
    problems = sorted_unique(problems)
    if any(problem.severity == "error" for problem in problems):
        return None, problems
    return graph, problems


def validate(specs_dir: Path) -> list[Diagnostic]:
    return resolve_specs(specs_dir)[1]


def lower(graph: ProjectGraph) -> list[Resource]:
    resources: list[Resource] = []
    for view in graph.environments:
        for environment_target in ENVIRONMENT_TARGETS:
            resources.extend(environment_target(view))
    environment_resources = list(resources)
    for project_target in PROJECT_TARGETS:
        resources.extend(project_target(graph, environment_resources))
    return resources


def build(specs_dir: Path, strict: bool = False) -> Build:
    """Compile in memory; raises CompileError with every diagnostic when the specs have errors.

    With ``strict``, every generated object is also checked against its real schema (see :mod:`.strict`);
    raises :class:`.strict.StrictUnavailable` when the schema packages are not installed."""
    graph, problems = resolve_specs(specs_dir)
    if graph is None:
        raise CompileError(problems)
    resources = lower(graph)
    positions = {spec.source: spec.position for view in graph.environments
                 for specs in view.specs.values() for spec in specs.values()}
    files, emit_problems = emit.render_files(resources, [view.name for view in graph.environments], positions)
    if strict:
        from .strict import strict_diagnostics

        emit_problems += strict_diagnostics(resources, positions)
    if emit_problems:
        raise CompileError(emit_problems)
    return Build(graph, resources, files)


@dataclass(frozen=True)
class CompileResult:
    build: Build
    written: list[str]
    removed: list[str]
    unchanged: bool


def compile_project(specs_dir: Path, output_dir: Path, strict: bool = False) -> CompileResult:
    """Compile and write ``output_dir`` atomically; on any error nothing is written."""
    result = build(specs_dir, strict=strict)
    try:
        written = emit.write_output(output_dir, result.files)
    except emit.OutputConflict as conflict:
        raise CompileError(conflict.diagnostics) from None
    return CompileResult(result, written.written, written.removed, written.unchanged)


@dataclass(frozen=True)
class CheckResult:
    """Whether ``output_dir`` equals a fresh compile, and the unified diff when it does not."""

    stale: list[str] = field(default_factory=list)
    diff: str = ""

    @property
    def ok(self) -> bool:
        return not self.stale


def check(specs_dir: Path, output_dir: Path) -> CheckResult:
    fresh = build(specs_dir).files
    current = emit.read_owned(output_dir)
    stale = sorted(path for path in set(fresh) | set(current) if fresh.get(path) != current.get(path))
    chunks = []
    for path in stale:
        before = current.get(path, b"").decode(errors="replace").splitlines(keepends=True)
        after = fresh.get(path, b"").decode(errors="replace").splitlines(keepends=True)
        old_name = f"a/{output_dir.name}/{path}" if path in current else "/dev/null"
        new_name = f"b/{output_dir.name}/{path}" if path in fresh else "/dev/null"
        chunks.append("".join(difflib.unified_diff(before, after, old_name, new_name)))
    return CheckResult(stale, "".join(chunk if chunk.endswith("\n") else chunk + "\n" for chunk in chunks))
