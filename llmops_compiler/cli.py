"""The `llmops` command: parse arguments, call the API, render results, set the exit code.

Exit codes: 0 ok, 1 findings (errors in specs, stale output, failed rule tests), 2 usage or internal error,
3 `llmops diff` found changes (so that a spec error, 1, is never mistaken for a plan).
Heavy modules are imported inside the commands so that `llmops --help` starts fast.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
EXIT_CHANGES = 3  # `llmops diff`: the plan is not empty
DIAGNOSTIC_FORMATS = click.Choice(["human", "json", "github"])
specs_argument = click.argument(
    "specs", type=click.Path(path_type=Path, file_okay=False, exists=True), default="specs", required=False
)
output_option = click.option(
    "-o", "--output", type=click.Path(path_type=Path, file_okay=False), default="generated", show_default=True,
    help="Folder of generated manifests.",
)
format_option = click.option(
    "--format", "output_format", type=DIAGNOSTIC_FORMATS, default="human", show_default=True,
    help="How to print diagnostics.",
)
no_cache_option = click.option(
    "--no-cache", is_flag=True,
    help="Do not read or write the compile cache ($LLMOPS_CACHE_DIR, default ~/.cache/llmops-compiler).",
)


def _cache(no_cache: bool) -> Any:
    """The compile cache the command uses, or None with --no-cache."""
    if no_cache:
        return None
    from .cache import Cache

    return Cache.open()


def _color() -> bool:
    return sys.stderr.isatty() and "NO_COLOR" not in os.environ


def _fail(diagnostics: Any, output_format: str) -> NoReturn:
    from .diagnostics import render

    text = render(diagnostics, output_format, color=_color())
    click.echo(text, err=output_format == "human")
    sys.exit(1)


def handles_errors(command: F) -> F:
    """Spec problems become rendered diagnostics and exit 1; anything unexpected exits 2 without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .diagnostics import CompileError

        try:
            return command(*args, **kwargs)
        except CompileError as error:
            _fail(error.diagnostics, kwargs.get("output_format", "human")
                  if kwargs.get("output_format") in ("human", "json", "github") else "human")
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted; the output folder was left as it was", err=True)
            sys.exit(2)
        except OSError as error:  # the machine, not the specs: a read-only or full disk, permissions, ...
            if os.environ.get("LLMOPS_DEBUG"):
                raise
            where = f": {error.filename}" if error.filename else ""
            click.echo(f"error: {error.strerror or error}{where}", err=True)
            sys.exit(2)
        except Exception as error:  # the boundary: report, never a traceback
            if os.environ.get("LLMOPS_DEBUG"):
                raise
            click.echo(f"internal error: {type(error).__name__}: {error} (set LLMOPS_DEBUG=1 for details)", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmops-compiler", prog_name="llmops")
def main() -> None:
    """Compile LLMOps specs (models, prompts, chains, tools, knowledge bases, monitors, rollouts)
    into deterministic GitOps manifests for ArgoCD."""
    # A compile allocates millions of short-lived objects and few cycles; the default thresholds make the
    # cyclic collector run thousands of times for nothing (about 15% of a large compile). This is a
    # short-lived process, so collect rarely instead.
    gc.set_threshold(100_000, 50, 100)
    # pydantic looks for plugins (observers of every validation) by scanning the entry points of every installed
    # distribution on the first validation: 20-80 ms where the runtime extras are installed, for plugins the
    # compiler never uses. Set to anything, the variable is left as the user set it.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def _warn_elsewhere(output: Path, repo_path: str) -> None:
    """Warn when the output folder is not where the Project's ArgoCD Applications look (``repo.path``,
    relative to the repository root): compared by the trailing folder names, without asking git."""
    expected = Path(repo_path).parts
    actual = Path(os.path.abspath(output)).parts
    if repo_path and actual[-len(expected):] != expected:
        click.echo(f"warning: the ArgoCD Applications read `{repo_path}/<environment>` (the Project's repo.path), "
                   f"but this compile wrote `{output}`: ArgoCD will not see it unless you commit it there",
                   err=True)


@main.command("compile")
@specs_argument
@output_option
@format_option
@click.option("--strict", is_flag=True,
              help="Also check every generated object against its real schema (Argo, Istio, prometheus-operator, "
                   "Kubernetes models; needs the `strict` extra).")
@no_cache_option
@handles_errors
def compile_command(specs: Path, output: Path, output_format: str, strict: bool, no_cache: bool) -> None:
    """Validate SPECS and write the manifests into the output folder (atomically)."""
    from . import api

    if strict:
        from .strict import StrictUnavailable, require_models

        try:
            require_models()
        except StrictUnavailable as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
    result = api.compile_project(specs, output, strict=strict, cache=_cache(no_cache))
    _warn_elsewhere(output, result.repo_path)
    environments = ", ".join(result.environments)
    resources = result.resources
    if result.unchanged:
        click.echo(f"{output}: up to date ({resources} resources for {environments})")
    else:
        click.echo(f"{output}: {resources} resources for {environments}; "
                   f"{len(result.written)} file(s) written, {len(result.removed)} removed")


@main.command()
@specs_argument
@output_option
@format_option
@no_cache_option
@handles_errors
def check(specs: Path, output: Path, output_format: str, no_cache: bool) -> None:
    """Exit 1 with a unified diff when the output folder is not what SPECS compile to."""
    from . import api, conventions, emit
    from .diagnostics import Diagnostic, Position

    result = api.check(specs, output, cache=_cache(no_cache))
    if result.ok:
        click.echo(f"{output}: up to date")
        return
    damage = emit.manifest_damage(output)
    if damage is not None:  # no owned file could be read: every one shows as missing
        manifest = f"{output}/{conventions.MANIFEST_FILE}"
        restore = f"restore it (`git checkout -- {manifest}`), then run `llmops compile` and commit"
        if output_format != "human":
            _fail([Diagnostic(Position(manifest), "LLM600", f"the manifest cannot be read ({damage})", restore)],
                  output_format)
    if output_format == "human":
        click.echo(result.diff, nl=False)
        if damage is not None:
            click.echo(f"{manifest} cannot be read ({damage}), so no generated file is known: {restore}.",
                       err=True)
        click.echo(f"{output} is stale: {len(result.stale)} file(s) differ. Run `llmops compile` and commit.",
                   err=True)
        sys.exit(1)
    _fail([Diagnostic(Position(f"{output}/{path}"), "LLM600", "generated file is stale or missing",
                      "run `llmops compile` and commit the result") for path in result.stale], output_format)


@main.command()
@specs_argument
@output_option
@click.option("--base", "base_ref", metavar="GIT_REF", help="Compare with the specs at this git revision.")
@click.option("--format", "plan_format", type=click.Choice(["text", "markdown"]), default="text", show_default=True)
@no_cache_option
@handles_errors
def diff(specs: Path, output: Path, base_ref: str | None, plan_format: str, no_cache: bool) -> None:
    """Show what the specs change in each environment, per resource and field (exit 3 when anything does, 1
    when the specs have errors).

    Without --base, compares with the output folder on disk; with --base, with the specs at that revision (its
    committed output folder when that is up to date with them, else a compile of them)."""
    from . import api, emit, plan
    from .diagnostics import CompileError

    cache = _cache(no_cache)
    current = emit.read_owned(output) if cache is not None or base_ref is None else {}
    if cache is None and base_ref is not None:  # two compiles of one project: the second takes the first's work
        from .cache import MemoryCache

        cache = MemoryCache()
    after = api.compiled_files(specs, cache, current)
    note = None
    if base_ref is None:
        before = current
    else:
        try:
            before, source = api.files_at_revision(specs, output, base_ref, cache, reuse_from=after)
        except plan.GitError as error:
            raise click.UsageError(f"cannot read specs at `{base_ref}`: {error}") from None
        except CompileError as error:
            from .diagnostics import render_human

            errors = [item for item in error.diagnostics if item.severity == "error"]
            first = render_human(errors[:1]).splitlines()[0] if errors else "none"
            note = (f"the specs at `{base_ref}` do not compile ({len(errors)} error(s); the first: {first}); "
                    "showing everything as new")
            before = {}
        else:
            if source == "absent":
                note = f"`{specs}` did not exist at `{base_ref}`; showing everything as new"
    result = plan.compare(before, after)
    if note is not None:
        click.echo(note, err=True)
    if plan_format == "markdown":
        click.echo((f"> **Note:** {note}\n\n" if note is not None else "") + plan.render_markdown(result))
    else:
        click.echo(plan.render_text(result))
    sys.exit(0 if result.empty else EXIT_CHANGES)


@main.command()
@specs_argument
@format_option
@no_cache_option
@handles_errors
def validate(specs: Path, output_format: str, no_cache: bool) -> None:
    """Check SPECS without writing anything."""
    from . import api

    problems = api.validate(specs, cache=_cache(no_cache))
    if problems:
        _fail(problems, output_format)
    click.echo(f"{specs}: ok")


@main.command()
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file.")
@handles_errors
def schema(output: Path | None) -> None:
    """Print the JSON Schema of spec documents (point a `yaml-language-server: $schema=` modeline at it)."""
    from .schema import json_schema_text

    text = json_schema_text()
    if output is None:
        click.echo(text, nl=False)
        return
    if not output.parent.is_dir():
        raise click.BadParameter(f"`{output.parent}` is not a folder", param_hint="-o")
    try:
        output.write_text(text)
    except OSError as error:  # a full disk, a file that refuses writes: name it
        raise OSError(error.errno, error.strerror, str(output)) from None


@main.command()
@specs_argument
@click.option("--env", "environment", metavar="ENV", help="Only what this environment needs.")
@click.option("--format", "requirements_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@handles_errors
def requirements(specs: Path, environment: str | None, requirements_format: str) -> None:
    """List what the clusters must already have: controllers and versions, CRDs, every Secret and key."""
    from . import api
    from . import requirements as needs

    build = api.build(specs)
    names = [view.name for view in build.graph.environments]
    if environment is not None and environment not in names:
        raise click.BadParameter(f"`{environment}` is not an environment (expected one of: {', '.join(names)})",
                                 param_hint="--env")
    found = needs.requirements(build, environment)
    click.echo(needs.render_json(found) if requirements_format == "json" else needs.render_text(found))


@main.command()
@click.argument("target", required=False, default="", metavar="[KIND[.FIELD...]]")
@handles_errors
def explain(target: str) -> None:
    """Document a kind or a field of the spec language (like `kubectl explain`)."""
    from .explain import ExplainError
    from .explain import explain as explain_text

    try:
        click.echo(explain_text(target))
    except ExplainError as error:
        raise click.BadParameter(str(error), param_hint="KIND[.FIELD...]") from None


@main.command()
@click.argument("specs", type=click.Path(path_type=Path, file_okay=False), default="specs", required=False)
@click.option("--name", default="my-assistant", show_default=True, help="Project name (a DNS label).")
@handles_errors
def init(specs: Path, name: str) -> None:
    """Create a new spec project in SPECS that compiles as it is."""
    from .scaffold import ScaffoldError, scaffold

    try:
        written = scaffold(specs, name)
    except ScaffoldError as error:
        raise click.UsageError(str(error)) from None
    for path in written:
        click.echo(f"created {path}")
    click.echo(f"next: edit {specs}/project.yaml, then `llmops compile {specs} -o generated`")


@main.command()
@specs_argument
@click.option("--format", "graph_format", type=click.Choice(["text", "dot", "mermaid"]), default="text",
              show_default=True)
@handles_errors
def graph(specs: Path, graph_format: str) -> None:
    """Print the dependencies between specs."""
    from . import api
    from .diagnostics import CompileError
    from .graph import RENDERERS

    resolved, problems = api.resolve_specs(specs)
    if resolved is None:
        raise CompileError(problems)
    click.echo(RENDERERS[graph_format](resolved))


def _require_git_work_tree(*paths: Path) -> None:
    """A usage error unless every path lies in a git work tree (checked before ``--commit`` changes anything)."""
    import subprocess

    for path in paths:
        folder = path if path.is_dir() else path.parent
        done = subprocess.run(["git", "-C", str(folder if folder.exists() else Path.cwd()), "rev-parse",
                               "--is-inside-work-tree"], capture_output=True, text=True)
        if done.returncode != 0 or done.stdout.strip() != "true":
            raise click.UsageError(f"--commit needs a git repository, and `{path}` is not in one; nothing changed")


def _require_clean(*paths: Path) -> None:
    """An error (exit 1) when git sees uncommitted changes or untracked files under ``paths``: ``--commit`` records
    a transition alone, and a compile would carry those edits into its commit."""
    import subprocess

    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *map(str, paths)],
                          capture_output=True, text=True, timeout=GIT_SECONDS)
    changed = [line[3:] for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or changed:
        shown = ", ".join(f"`{path}`" for path in changed[:3]) + (f" and {len(changed) - 3} more"
                                                                     if len(changed) > 3 else "")
        raise click.ClickException(
            f"--commit records the transition alone, but {shown or 'the repository'} "
            f"{'has' if len(changed) == 1 else 'have'} uncommitted changes that its compile would carry into the "
            "commit; nothing changed. Commit or stash them first, or run without --commit")


@contextlib.contextmanager
def _transition_lock(specs: Path) -> Iterator[None]:
    """Hold the specs folder's rollout lock (``flock`` on the folder itself) for a whole transition: a second
    transition waits for the first to finish (up to ``LOCK_SECONDS``), then reads the state the first left."""
    import fcntl
    import time

    descriptor = os.open(specs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + LOCK_SECONDS
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise click.ClickException(
                        f"another rollout transition on `{specs}` has been running for {LOCK_SECONDS} s; "
                        "nothing changed. Try again when it has finished") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _run_git(command: list[str], seconds: float) -> Any:
    """Run a git command; when it times out or this process is interrupted (Ctrl-C, SIGTERM), git is asked to
    stop with SIGTERM first, on which it removes its lock files (``index.lock``), so the index can be reset."""
    import subprocess

    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=seconds)
        except BaseException:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


GIT_SECONDS = 120
"""How long a `git status` may take before ``--commit`` gives up (a hung filesystem or hook)."""
GIT_COMMIT_SECONDS = 600
"""How long `git add` or `git commit` (its hooks included) may take in a ``--commit`` transition."""
LOCK_SECONDS = 300
"""How long a rollout transition waits for another one on the same specs folder (a commit hook may run)."""


def _resolved(specs: Path, environment: str | None = None, stale_steps: bool = False) -> Any:
    """The resolved project graph; raises CompileError on spec errors and a usage error for an ``--env`` the
    Project does not define. ``stale_steps``: see :func:`.api.resolve_specs`."""
    from . import api
    from .diagnostics import CompileError

    graph, problems = api.resolve_specs(specs, stale_steps=stale_steps)
    if graph is None:
        raise CompileError(problems)
    if problems:  # warnings (a rollout state on a step its policy no longer has, say): shown, not fatal
        from .diagnostics import render_human

        click.echo(render_human(problems, color=_color()), err=True)
    names = [view.name for view in graph.environments]
    if environment is not None and environment not in names:
        raise click.BadParameter(f"`{environment}` is not an environment (expected one of: {', '.join(names)})",
                                 param_hint="--env")
    return graph


@main.group()
def rollout() -> None:
    """Where rollouts stand, and a person's transitions: promote, pause, resume, abort."""


@rollout.command("status")
@specs_argument
@click.option("--env", "environment", metavar="ENV", help="Only this environment.")
@handles_errors
def rollout_status(specs: Path, environment: str | None) -> None:
    """Per environment and RolloutPolicy: stable, candidate, strategy, step and weight, failures, last reason."""
    from .rollout import describe_state

    graph = _resolved(specs, environment, stale_steps=True)
    lines = [describe_state(view.name, policy.name, policy.spec, view.rollout_state(policy.name))
             for view in graph.environments if environment in (None, view.name) for policy in view.rollout_policies()]
    click.echo("\n".join(lines) if lines else "no RolloutPolicy")


def _transition_command(name: str, summary: str) -> None:
    @rollout.command(name, help=summary)
    @click.argument("model")
    @click.option("--env", "environment", metavar="ENV", required=True, help="The environment.")
    @click.option("--reason", default="", help="Why (recorded in the state and the commit).")
    @click.option("--specs", "specs", type=click.Path(path_type=Path, file_okay=False, exists=True), default="specs",
                  show_default=True)
    @output_option
    @click.option("--commit", is_flag=True, help="Commit the state and the regenerated output (not pushed).")
    @handles_errors
    def command(model: str, environment: str, reason: str, specs: Path, output: Path, commit: bool) -> None:
        import signal

        def terminated(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)  # unwinds like Ctrl-C, so the transition is undone

        previous = signal.signal(signal.SIGTERM, terminated)
        try:
            with _transition_lock(specs):
                transition(model, environment, reason, specs, output, commit)
        finally:
            signal.signal(signal.SIGTERM, previous)

    def transition(model: str, environment: str, reason: str, specs: Path, output: Path, commit: bool) -> None:
        import subprocess
        from datetime import UTC, datetime

        from . import api
        from . import rollout as machine

        stale_steps = name == "abort"  # abort repairs a state on a step the policy no longer has
        graph = _resolved(specs, environment, stale_steps=stale_steps)
        view = next(item for item in graph.environments if item.name == environment)
        policy = next((item for item in view.rollout_policies() if item.spec.model == model), None)
        if policy is None:
            raise click.BadParameter(f"no RolloutPolicy rolls out Model `{model}` in {environment}",
                                     param_hint="MODEL")
        if commit:
            _require_git_work_tree(specs, output)
            _require_clean(specs, output)
        why = reason
        step = getattr(machine, name)
        now = datetime.now(UTC)

        compiled = False
        staged: list[str] = []

        def compile_and_commit(decision: machine.Decision, path: Path) -> None:
            nonlocal compiled
            api.compile_project(specs, output)
            compiled = True
            if commit:
                words = machine.describe_decision(environment, policy.name, policy.spec, decision)
                paths = [str(path), str(output)]
                for command in (["git", "add", "--", *paths],
                                ["git", "commit", "-q", "-m", words, *(["-m", why] if why else []), "--", *paths]):
                    staged[:] = paths
                    try:
                        done = _run_git(command, GIT_COMMIT_SECONDS)
                    except subprocess.TimeoutExpired:
                        raise click.ClickException(f"`{' '.join(command[:2])}` did not finish in "
                                                   f"{GIT_COMMIT_SECONDS} s (a hook?), so nothing changed") from None
                    if done.returncode != 0:
                        raise click.ClickException(f"`{' '.join(command[:2])}` failed, so nothing changed: "
                                                   f"{(done.stderr or done.stdout).strip()}")
                staged.clear()

        try:
            decision, _ = machine.record_transition(specs, policy.name, environment,
                                                    lambda state: step(state, why, now), then=compile_and_commit,
                                                    stale_steps=stale_steps)
        except machine.TransitionRefused as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)
        except BaseException:  # a failure, Ctrl-C or SIGTERM: the state file has its previous bytes again
            if staged:  # nor does the index keep what was staged for the commit
                subprocess.run(["git", "reset", "-q", "--", *staged], capture_output=True, timeout=GIT_SECONDS)
            if compiled:  # and the output is compiled from the state as it was
                api.compile_project(specs, output)
            raise
        words = machine.describe_decision(environment, policy.name, policy.spec, decision)
        if not decision.changed:
            click.echo(f"{words} (nothing to change)")
            return
        click.echo(words)
        if commit:
            click.echo("committed (not pushed)")


for _name, _summary in (("promote", "Promote the candidate now: it becomes stable."),
                        ("pause", "Hold the rollout at its step (analysis stops moving it)."),
                        ("resume", "Resume a paused rollout (the step's pause starts again)."),
                        ("abort", "Roll the candidate back now.")):
    _transition_command(_name, _summary)


@main.command("test-rules")
@specs_argument
@click.option("--env", "environment", metavar="ENV", help="Only the Monitors of this environment.")
@handles_errors
def test_rules(specs: Path, environment: str | None) -> None:
    """Run promtool rule tests generated from every Monitor: each alert fires on a burn, none on health."""
    from . import rule_tests

    graph = _resolved(specs, environment)
    try:
        results = rule_tests.run_rule_tests(graph, environment)
    except rule_tests.PromtoolMissing as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    for result in results:
        status = "ok" if result.ok else "FAILED"
        click.echo(f"{result.environment}: Monitor {result.monitor}: {result.cases} rule test case(s) {status}")
        if not result.ok:
            click.echo(result.output, err=True)
    failed = sum(1 for result in results if not result.ok)
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
