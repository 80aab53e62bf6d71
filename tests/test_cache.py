"""The compile cache never changes what a compile writes or reports: cached and cold compiles write the same
bytes through edits, deletions and renames, across compiler versions and with a damaged cache; a spec with
errors is reported on every run; an up-to-date answer comes from the cache without loading the pipeline."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from project_paths import ROOT, run_llmops

import llmops_compiler
from llmops_compiler import api, cache, conventions
from llmops_compiler.diagnostics import CompileError

Cli = Callable[..., Result]


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cold(specs: Path, tmp_path: Path) -> dict[str, bytes]:
    """What a compile without any cache writes into a fresh folder."""
    output = tmp_path / "cold"
    shutil.rmtree(output, ignore_errors=True)
    api.compile_project(specs, output)
    return _tree(output)


def _entries(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def test_cached_compiles_write_what_cold_ones_do_through_edits_deletions_and_renames(
        example_copy: Path, tmp_path: Path) -> None:
    specs, output = example_copy / "specs", example_copy / "generated"
    store = cache.Cache(tmp_path / "cache")
    prompt, tool = specs / "prompts/answer.yaml", specs / "tools/order-status.yaml"
    original_prompt = prompt.read_text()

    def edit_prompt() -> None:
        prompt.write_text(original_prompt.replace("asks: {{ question }}", "writes: {{ question }}"))

    def delete_prompt() -> None:
        (specs / "prompts/summarize-ticket.yaml").unlink()

    def rename_tool() -> None:  # the file name is in every header and annotation of what the tool compiles to
        tool.rename(specs / "tools/orders.yaml")

    def add_tool() -> None:
        (specs / "tools/refunds.yaml").write_text(
            "apiVersion: llmops.dev/v1alpha1\nkind: Tool\nmetadata: {name: refund-status}\nspec:\n"
            "  description: Where a refund stands.\n  kind: rest\n  endpoint: https://refunds.example.com/status\n"
            "  parameters: {type: object, properties: {order: {type: string}}, required: [order]}\n")

    def revert_prompt() -> None:
        prompt.write_text(original_prompt)

    def edit(path: str, old: str, new: str) -> Callable[[], None]:
        def change() -> None:
            text = (specs / path).read_text()
            assert old in text, (path, old)
            (specs / path).write_text(text.replace(old, new, 1))
        return change

    steps = [("first run", lambda: None), ("again, unchanged", lambda: None), ("edit", edit_prompt),
             ("delete", delete_prompt), ("rename", rename_tool), ("add", add_tool), ("revert", revert_prompt),
             ("model", edit("models/support-llm.yaml", "r: 16", "r: 32")),
             ("monitor", edit("monitoring/support-llm.yaml", "threshold: 0.15", "threshold: 0.25")),
             ("chain", edit("chains/support-answer.yaml", "topK: 5", "topK: 6")),
             ("knowledge base", edit("knowledge/help-center.yaml", 'schedule: "0 3 * * *"', 'schedule: "0 4 * * *"')),
             ("dataset", edit("datasets/support-feedback.yaml", 'schedule: "0 2 * * *"', 'schedule: "0 1 * * *"')),
             ("project", edit("project.yaml", "autoSync: false", "autoSync: true"))]
    results = []
    for name, change in steps:
        change()
        result = api.compile_project(specs, output, cache=store)
        assert _tree(output) == _cold(specs, tmp_path), f"cached compile differs after: {name}"
        assert api.check(specs, output, cache=store).ok, name
        assert api.validate(specs, cache=store) == api.validate(specs), name
        results.append(result)
    assert results[0].build is not None  # computed
    assert results[1].build is None and results[1].unchanged  # answered from the cache
    assert results[1].resources == results[0].resources and results[1].environments == results[0].environments
    assert all(result.build is not None and not result.unchanged for result in results[2:])
    assert all(isinstance(result.build.resources[0].body, dict) for result in results[2:] if result.build)
    manifest = json.loads((output / conventions.MANIFEST_FILE).read_text())
    assert results[-1].build is not None
    assert manifest["compilerVersion"] == llmops_compiler.__version__
    assert manifest["specsDigest"] == results[-1].build.specs_digest


def test_unchanged_resources_are_not_serialised_again(example_copy: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_compiler import emit

    specs, output = example_copy / "specs", example_copy / "generated"
    store = cache.Cache(tmp_path / "cache")
    api.compile_project(specs, output, cache=store)  # learns what each resource renders to
    rendered: list[str] = []
    real_render = emit.render_resource

    def counting(resource: object) -> bytes:
        rendered.append(resource.path)  # type: ignore[attr-defined]
        return real_render(resource)  # type: ignore[arg-type]

    prompt = specs / "prompts/answer.yaml"
    prompt.write_text(prompt.read_text().replace("asks: {{ question }}", "writes: {{ question }}"))
    monkeypatch.setattr(emit, "render_resource", counting)
    result = api.compile_project(specs, output, cache=store)
    monkeypatch.undo()
    assert result.build is not None and len(result.build.resources) > 100
    # Only what the prompt reaches is rendered: its ConfigMaps, the prompt-registration Jobs, the chains' and
    # serving objects that name the prompt's content hash.
    assert 0 < len(rendered) < len(result.build.resources) / 4, rendered
    assert any("/prompt-answer-" in path for path in rendered)
    assert _tree(output) == _cold(specs, tmp_path)


def test_a_target_runs_again_exactly_when_what_it_read_changed(example_copy: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_compiler import targets
    from llmops_compiler.targets.base import Resource

    specs, output = example_copy / "specs", example_copy / "generated"
    ran: list[str] = []

    def counted(target: Callable[..., list[Resource]]) -> Callable[..., list[Resource]]:
        def run(view: object) -> list[Resource]:
            ran.append(target.__name__)
            return target(view)
        run.__module__, run.__qualname__ = target.__module__, target.__qualname__
        return run

    def lists_every_kind(view: object) -> list[Resource]:  # reads the kinds themselves: depends on all specs
        kinds = sorted(view.specs)  # type: ignore[attr-defined]
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kinds"}, "data": {"kinds": ",".join(
            f"{kind}={len(view.specs[kind])}" for kind in kinds)}}  # type: ignore[attr-defined]
        return [Resource(f"{view.name}/configmaps/kinds.configmap.yaml", body, "test")]  # type: ignore[attr-defined]

    def needs_a_real_dict(view: object) -> list[Resource]:  # fails on the noting view: run every time
        count = len(view.specs.copy())  # type: ignore[attr-defined]
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "count"}, "data": {"n": str(count)}}
        return [Resource(f"{view.name}/configmaps/count.configmap.yaml", body, "test")]  # type: ignore[attr-defined]

    wrapped = [counted(target) for target in targets.ENVIRONMENT_TARGETS]
    monkeypatch.setattr(targets, "ENVIRONMENT_TARGETS", [*wrapped, counted(lists_every_kind),
                                                         counted(needs_a_real_dict)])
    store = cache.Cache(tmp_path / "cache")
    api.compile_project(specs, output, cache=store)
    assert len(ran) == 3 * len(wrapped) + 3 + 3 * 2  # the last one ran twice: noting view, then the real one
    for path, old, new, expected, not_run in [
        ("tools/order-status.yaml", "timeout: 5s", "timeout: 6s", {"tool_registry", "lists_every_kind"},
         {"tune_workflow_templates", "prometheus_rules", "prompt_configmaps", "drift_cron_workflows"}),
        ("models/support-llm.yaml", "r: 16", "r: 32", {"tune_workflow_templates", "lists_every_kind"},
         {"prompt_configmaps", "tool_registry", "knowledge_base_targets", "curation_workflows"}),
        ("models/support-llm.yaml", "r: 32", "r: 16", {"tune_workflow_templates", "lists_every_kind"},
         {"prompt_configmaps", "tool_registry", "knowledge_base_targets", "curation_workflows"}),
    ]:
        ran.clear()
        (specs / path).write_text((specs / path).read_text().replace(old, new, 1))
        api.compile_project(specs, output, cache=store)
        assert set(ran) >= expected | {"needs_a_real_dict"}, (path, set(ran))
        assert not set(ran) & not_run, (path, set(ran))
        cold = tmp_path / "cold"
        shutil.rmtree(cold, ignore_errors=True)
        api.compile_project(specs, cold)
        assert _tree(output) == _tree(cold)
    kinds = output / "prod/configmaps/kinds.configmap.yaml"
    assert b"Prompt=3" in kinds.read_bytes()
    (specs / "prompts/summarize-ticket.yaml").unlink()
    ran.clear()
    api.compile_project(specs, output, cache=store)
    assert "lists_every_kind" in ran and "tune_workflow_templates" not in ran
    assert b"Prompt=2" in kinds.read_bytes()


def test_a_compiler_change_starts_from_an_empty_cache(example_copy: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    specs, output = example_copy / "specs", example_copy / "generated"
    folder = tmp_path / "cache"
    old = cache.Cache.open(folder)
    api.compile_project(specs, output, cache=old)
    # Poison every render record of this compiler: each resource "renders to" the bytes of another file of the
    # output. A compile that trusted these records would write wrong files.
    available = sorted({cache.files_digests({"x": content})["x"] for content in _tree(output).values()})
    for entry in _entries(old.version_folder / api.RENDERS):
        key = entry.parent.name + entry.name
        learned = old.get_pickle(api.RENDERS, key)
        old.put_pickle(api.RENDERS, key, {fingerprint: available[0] for fingerprint in learned})
    prompt = specs / "prompts/answer.yaml"
    prompt.write_text(prompt.read_text().replace("asks: {{ question }}", "writes: {{ question }}"))
    poisoned = tmp_path / "poisoned"
    shutil.copytree(output, poisoned)
    api.compile_project(specs, poisoned, cache=old)
    assert _tree(poisoned) != _cold(specs, tmp_path)  # the poison works on the compiler it was written for

    monkeypatch.setattr(llmops_compiler, "__version__", "99.0.0")
    new = cache.Cache.open(folder)
    assert new.fingerprint != old.fingerprint and new.version_folder != old.version_folder
    api.compile_project(specs, output, cache=new)
    assert _tree(output) == _cold(specs, tmp_path)
    assert json.loads((output / conventions.MANIFEST_FILE).read_text())["compilerVersion"] == "99.0.0"


def test_a_damaged_cache_is_ignored(example_copy: Path, tmp_path: Path) -> None:
    specs, output = example_copy / "specs", example_copy / "generated"
    store = cache.Cache(tmp_path / "cache")
    api.compile_project(specs, output, cache=store)
    api.validate(specs, cache=store)
    entries = _entries(store.version_folder)
    assert {path.relative_to(store.version_folder).parts[0] for path in entries} == {
        api.UNITS, api.CHECKED, api.BUILDS, api.RENDERS, cache.TARGETS}
    prompt = specs / "prompts/answer.yaml"
    prompt.write_text(prompt.read_text().replace("asks: {{ question }}", "writes: {{ question }}"))
    damages: list[Callable[[Path], None]] = [
        lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]),  # truncated
        lambda path: path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1])),  # one bit
        lambda path: path.write_bytes(b"garbage"),
        lambda path: path.write_bytes(b""),
        lambda path: (path.unlink(), path.mkdir()),  # a folder where a file should be
        lambda path: (path.unlink(), path.symlink_to("/dev/zero")),  # endless: read, it would fill memory
        lambda path: (path.unlink(), os.mkfifo(path)),  # opened, it would wait for a writer forever
    ]
    for damage in damages:
        for entry in _entries(store.version_folder):
            damage(entry)
        result = api.compile_project(specs, output, cache=store)
        assert result.build is not None  # nothing was taken from the damaged entries
        assert _tree(output) == _cold(specs, tmp_path)
        assert api.check(specs, output, cache=store).ok
        assert api.validate(specs, cache=store) == api.validate(specs)
        shutil.rmtree(store.folder)
        api.compile_project(specs, tmp_path / "warm-up", cache=store)  # a healthy cache to damage again


class _Planted:
    """A pickle that, loaded, creates a file: what someone able to write into the cache could plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_entries_below_a_folder_others_can_write_are_not_loaded(example_copy: Path, tmp_path: Path) -> None:
    """Entries are pickles, so one is loaded only from private folders all the way down: a version folder or
    an entry others may write (or a link in the path) makes every entry there a miss, and a planted pickle
    is never run."""
    specs, output = example_copy / "specs", example_copy / "generated"
    store = cache.Cache(tmp_path / "cache")
    api.compile_project(specs, output, cache=store)
    marker = tmp_path / "planted-pickle-ran"
    payload = pickle.dumps(_Planted(marker))

    def plant(mode: int) -> None:
        for entry in _entries(store.version_folder):
            _, prefix, rest = entry.relative_to(store.version_folder).parts
            entry.write_bytes(cache.MAGIC + hashlib.sha256((prefix + rest).encode() + payload).digest() + payload)
            entry.chmod(mode)

    prompt = specs / "prompts/answer.yaml"
    prompt.write_text(prompt.read_text().replace("asks: {{ question }}", "writes: {{ question }}"))
    for folder_mode, entry_mode in ((0o770, 0o600), (0o700, 0o666)):  # the group may write the folder; anyone an entry
        store.version_folder.chmod(0o700)
        plant(entry_mode)
        store.version_folder.chmod(folder_mode)
        api.compile_project(specs, output, cache=cache.Cache(store.folder))
        assert not marker.exists(), (oct(folder_mode), oct(entry_mode))
        assert _tree(output) == _cold(specs, tmp_path)
    # The same entries in private folders and files are loaded: the check, not the payload, kept them out.
    store.version_folder.chmod(0o700)
    plant(0o600)
    with contextlib.suppress(Exception):
        api.compile_project(specs, output, cache=cache.Cache(store.folder))
    assert marker.exists()


def test_an_unreadable_cache_folder_is_no_error(example_copy: Path, tmp_path: Path) -> None:
    specs, output = example_copy / "specs", example_copy / "generated"
    (tmp_path / "file").write_text("not a folder")
    for folder in (tmp_path / "file", tmp_path / "file" / "below"):
        api.compile_project(specs, output, cache=cache.Cache(folder))
        assert _tree(output) == _cold(specs, tmp_path)


def test_a_cache_folder_others_can_write_is_not_used(example_copy: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shared-cache"
    folder.mkdir()
    folder.chmod(0o777)
    api.compile_project(example_copy / "specs", example_copy / "generated", cache=cache.Cache(folder))
    assert not list(folder.iterdir())


def test_a_spec_with_errors_is_reported_on_every_run(example_copy: Path, tmp_path: Path) -> None:
    specs, output = example_copy / "specs", example_copy / "generated"
    store = cache.Cache(tmp_path / "cache")
    api.compile_project(specs, output, cache=store)
    before = _tree(output)
    model = specs / "models/support-llm.yaml"
    model.write_text(model.read_text().replace("port: 8080", "port: 80800"))
    with pytest.raises(CompileError) as cold:
        api.build(specs)
    assert any(item.code == "LLM106" and item.position.line for item in cold.value.diagnostics)
    for _ in range(2):  # the second run finds the broken file's own unit in the cache
        with pytest.raises(CompileError) as cached:
            api.compile_project(specs, output, cache=store)
        assert cached.value.diagnostics == cold.value.diagnostics
        assert api.validate(specs, cache=store) == cold.value.diagnostics
        with pytest.raises(CompileError):
            api.check(specs, output, cache=store)
        assert _tree(output) == before
    model.write_text(model.read_text().replace("port: 80800", "port: 8080"))
    assert api.compile_project(specs, output, cache=store).unchanged


def test_an_up_to_date_answer_loads_no_spec_model(example_copy: Path, tmp_path: Path) -> None:
    """`check`, `validate` and `compile` on unchanged specs read the specs and the output, not the pipeline; a
    hand edit of a generated file is still found (the output is read, not trusted)."""
    specs, output = example_copy / "specs", example_copy / "generated"
    folder = tmp_path / "cache"
    api.compile_project(specs, output, cache=cache.Cache.open(folder))
    probe = (
        "import sys; from pathlib import Path; from llmops_compiler import api, cache; "
        f"store = cache.Cache.open(Path({str(folder)!r})); specs, output = Path({str(specs)!r}), "
        f"Path({str(output)!r}); "
        "print(api.check(specs, output, cache=store).ok, api.validate(specs, cache=store), "
        "api.compile_project(specs, output, cache=store).unchanged, "
        "[m for m in ('pydantic', 'jinja2', 'detect_secrets', 'llmops_compiler.resolve') if m in sys.modules])"
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env=environment)
    assert result.stdout.strip() == "True [] True []"
    chain = output / "prod/configmaps/chain-support-answer.configmap.yaml"
    chain.write_text(chain.read_text().replace("topK: 5", "topK: 7"))
    stale = api.check(specs, output, cache=cache.Cache.open(folder))
    assert stale.stale == ["prod/configmaps/chain-support-answer.configmap.yaml"]
    assert not api.compile_project(specs, output, cache=cache.Cache.open(folder)).unchanged
    assert _tree(output) == _cold(specs, tmp_path)


def test_cache_writes_are_atomic_and_the_folder_is_bounded(example_copy: Path, tmp_path: Path) -> None:
    specs = example_copy / "specs"
    folder = tmp_path / "cache"
    other_version = folder / "v1-0123456789abcdef0123456789abcdef"
    other_version.mkdir(parents=True)
    (other_version / "stale").write_bytes(b"x" * 300_000)
    store = cache.Cache(folder)
    api.compile_project(specs, tmp_path / "out", cache=store)
    assert not [path for path in folder.rglob(".tmp-*")]  # every entry was renamed into place
    fresh = cache.Cache(tmp_path / "new-cache")
    api.validate(specs, cache=fresh)
    assert stat.S_IMODE(fresh.folder.stat().st_mode) == 0o700  # created private
    size = sum(path.stat().st_size for path in _entries(folder))
    assert size > 300_000
    store.wrote = True
    store.prune(max_bytes=size - 1)
    assert not (other_version / "stale").exists()  # another compiler's entries go first
    assert sum(path.stat().st_size for path in _entries(folder)) <= (size - 1) * cache.PRUNE_TARGET


def test_the_cli_uses_the_cache_folder_it_is_given_and_none_with_no_cache(
        cli: Cli, example_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cli-cache"
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(folder))
    for command in (["compile", "--no-cache"], ["check", "--no-cache"], ["validate", "--no-cache"],
                    ["diff", "--no-cache"]):
        assert cli(*command, cwd=example_copy).exit_code == 0, command
    assert not folder.exists()
    first = cli("compile", cwd=example_copy)
    assert first.exit_code == 0 and "up to date" in first.stdout
    assert _entries(folder)
    assert cli("check", cwd=example_copy).exit_code == 0
    assert cli("validate", cwd=example_copy).exit_code == 0
    assert cli("diff", cwd=example_copy).exit_code == 0
    assert cache.default_folder() == folder
    monkeypatch.delenv(cache.CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_folder() == tmp_path / "xdg" / "llmops-compiler"


def _cli(command: str, specs: Path, jobs: int, cache_folder: Path | None,
         *arguments: str) -> subprocess.CompletedProcess[str]:
    """``llmops COMMAND SPECS ARGUMENTS`` in a fresh process with ``jobs`` processes, on ``cache_folder``
    (``--no-cache`` when None)."""
    environment = {"PYTHONPATH": str(ROOT), "LLMOPS_JOBS": str(jobs)}
    if cache_folder is None:
        arguments = (*arguments, "--no-cache")
    else:
        environment["LLMOPS_CACHE_DIR"] = str(cache_folder)
    return run_llmops(command, str(specs), *arguments, env=environment)


def _cli_compile(specs: Path, output: Path, jobs: int, cache_folder: Path | None) -> None:
    result = _cli("compile", specs, jobs, cache_folder, "-o", str(output))
    assert result.returncode == 0, result.stderr


def test_compiling_in_several_processes_writes_the_same_bytes(example_copy: Path, tmp_path: Path) -> None:
    """Forked processes validate spec files and run environment targets; the output is the same, with and
    without the cache, and after an edit (a fresh single-threaded process per compile, as the CLI runs)."""
    specs = example_copy / "specs"
    for step in range(3):
        if step == 2:
            prompt = specs / "prompts/answer.yaml"
            prompt.write_text(prompt.read_text().replace("asks: {{ question }}", "writes: {{ question }}"))
        single, forked, cached = (tmp_path / f"{name}-{step}" for name in ("single", "forked", "cached"))
        _cli_compile(specs, single, 1, None)
        _cli_compile(specs, forked, 3, None)
        _cli_compile(specs, tmp_path / "warm", 3, tmp_path / "cache")  # keeps the cache warm across steps
        _cli_compile(specs, cached, 3, tmp_path / "cache")
        assert _tree(single) == _tree(forked) == _tree(cached) == _tree(tmp_path / "warm"), step


def test_validating_in_several_processes_reports_and_caches_what_one_process_does(
        example_copy: Path, tmp_path: Path) -> None:
    """Forked processes run the targets of `validate` without serialising what they build: the diagnostics the
    targets find (a derived name too long for its kind) are the same as in one process, and a compile that takes
    the targets `validate` cached writes the bytes of a cold compile."""
    specs = example_copy / "specs"
    monitor = specs / "monitoring/support-llm.yaml"
    original = monitor.read_text()
    monitor.write_text(original.replace("- name: prompt-length\n", "- name: prompt-length-distribution-of-requests\n"))
    single = _cli("validate", specs, 1, None)
    assert single.returncode == 1 and "error[LLM502]" in single.stderr, single.stderr
    for cache_folder in (None, tmp_path / "cache", tmp_path / "cache"):
        forked = _cli("validate", specs, 3, cache_folder)
        assert (forked.returncode, forked.stderr) == (single.returncode, single.stderr)
    monitor.write_text(original)
    assert _cli("validate", specs, 3, tmp_path / "cache").returncode == 0
    _cli_compile(specs, tmp_path / "cached", 3, tmp_path / "cache")
    assert _tree(tmp_path / "cached") == _cold(specs, tmp_path)


def test_a_forked_child_that_fails_or_hangs_leaves_its_share_to_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    parent = os.getpid()

    def identify(share: list[int], here: bool) -> list[tuple[int, int]]:
        return [(index, os.getpid()) for index in share]

    results = api._forked([[0, 2], [1, 3]], identify)
    assert results[0] == [(0, parent), (2, parent)]
    assert [index for index, _ in results[1]] == [1, 3] and all(pid != parent for _, pid in results[1])

    def fails_away(share: list[int], here: bool) -> list[tuple[int, int]]:
        if not here:
            raise RuntimeError("child failed")
        return identify(share, here)

    assert api._forked([[0], [1]], fails_away) == [[(0, parent)], [(1, parent)]]

    def hangs_away(share: list[int], here: bool) -> list[tuple[int, int]]:
        if not here:
            time.sleep(60)
        return identify(share, here)

    monkeypatch.setattr(api, "CHILD_PATIENCE", (0.5, 1.0))
    start = time.monotonic()
    assert api._forked([[0], [1]], hangs_away) == [[(0, parent)], [(1, parent)]]
    assert time.monotonic() - start < 10


def test_jobs_follow_the_setting_and_the_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(api.JOBS_ENV, raising=False)
    assert api._jobs(api.PARALLEL_SPECS - 1) == 1
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    expected = 1 if threading_count() > 1 else max(1, min(cores, api.MAX_JOBS))
    assert api._jobs(api.PARALLEL_SPECS) == expected
    monkeypatch.setattr(os, "getloadavg", lambda: (float(cores), 0.0, 0.0))  # every core already busy
    assert api._jobs(api.PARALLEL_SPECS) == 1
    monkeypatch.setenv(api.JOBS_ENV, "1")
    assert api._jobs(10_000) == 1
    monkeypatch.setenv(api.JOBS_ENV, "not a number")
    assert api._jobs(10_000) == 1


def threading_count() -> int:
    import threading

    return threading.active_count()
