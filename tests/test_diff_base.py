"""`llmops diff --base REF` reads the output committed at REF when it is up to date with the specs at REF (its
manifest records this compiler version and their digest, and every file matches the manifest), and compiles
the specs at REF otherwise. Real git repositories in temp folders."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from project_paths import run_llmops

import llmops_compiler
from llmops_compiler import api, cache, conventions

Cli = Callable[..., Result]
CHAIN = "prod/configmaps/chain-support-answer.configmap.yaml"


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "cache"))


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin"}).stdout


def _commit(repo: Path, message: str) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", message)


def _repository(example_copy: Path) -> Path:
    _git(example_copy, "init", "-q", "-b", "main")
    _commit(example_copy, "base")
    return example_copy


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _hand_tune(output: Path) -> None:
    """Change one generated file and record its new hash in the manifest: an output that is consistent with its
    manifest, but not what this compiler makes of the specs."""
    chain = output / CHAIN
    chain.write_text(chain.read_text().replace("topK: 5", "topK: 6"))
    manifest_path = output / conventions.MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][CHAIN] = "sha256:" + hashlib.sha256(chain.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def test_an_up_to_date_committed_output_is_read_not_compiled(cli: Cli, example_copy: Path) -> None:
    repo = _repository(example_copy)
    specs, output = repo / "specs", repo / "generated"
    files, source = api.files_at_revision(specs, output, "HEAD")
    assert source == "committed"
    assert files == _tree(output) == api.build(specs).files
    # The committed bytes are what is compared, not a compile of the specs: a consistent hand-tuned output
    # shows up as the change the specs make to it.
    _hand_tune(output)
    _commit(repo, "hand-tuned output")
    files, source = api.files_at_revision(specs, output, "HEAD")
    assert source == "committed" and b"topK: 6" in files[CHAIN]
    api.compile_project(specs, output)
    result = cli("diff", "--base", "HEAD", cwd=repo)
    assert result.exit_code == 3, result.output
    assert "~ prod: ConfigMap/chain-support-answer (change)" in result.stdout.splitlines()
    assert "        -  topK: 6\n        +  topK: 5\n" in result.stdout


def test_a_stale_committed_output_is_not_trusted(cli: Cli, example_copy: Path) -> None:
    repo = _repository(example_copy)
    specs, output = repo / "specs", repo / "generated"
    chain = specs / "chains/support-answer.yaml"
    chain.write_text(chain.read_text().replace("topK: 5", "topK: 8"))
    _commit(repo, "specs changed, output not regenerated")
    files, source = api.files_at_revision(specs, output, "HEAD")
    assert source == "compiled"
    assert files == api.build(specs).files and files != _tree(output)
    assert b"topK: 8" in files[CHAIN]
    # The working tree's specs are those of HEAD: nothing changes, whatever the stale output says.
    assert cli("diff", "--base", "HEAD", cwd=repo).exit_code == 0


def test_a_committed_output_that_does_not_match_its_manifest_is_compiled_again(example_copy: Path) -> None:
    repo = _repository(example_copy)
    specs, output = repo / "specs", repo / "generated"
    chain = output / CHAIN
    chain.write_text(chain.read_text().replace("topK: 5", "topK: 6"))  # the manifest still has the old hash
    _commit(repo, "hand edit")
    files, source = api.files_at_revision(specs, output, "HEAD")
    assert source == "compiled" and b"topK: 5" in files[CHAIN]
    (output / "dev/namespace/support-dev.namespace.yaml").unlink()  # a listed file missing
    chain.write_text(chain.read_text().replace("topK: 6", "topK: 5"))
    _commit(repo, "a file deleted")
    assert api.files_at_revision(specs, output, "HEAD")[1] == "compiled"


def test_output_of_another_compiler_version_is_compiled_again(example_copy: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repository(example_copy)
    monkeypatch.setattr(llmops_compiler, "__version__", "99.0.0")
    files, source = api.files_at_revision(repo / "specs", repo / "generated", "HEAD")
    assert source == "compiled"
    assert json.loads(files[conventions.MANIFEST_FILE])["compilerVersion"] == "99.0.0"


def test_comments_and_document_order_do_not_make_an_output_stale(example_copy: Path) -> None:
    """The manifest records what the specs say, not how they are written, like the output itself."""
    repo = _repository(example_copy)
    specs, output = repo / "specs", repo / "generated"
    tools = specs / "tools/order-status.yaml"
    documents = tools.read_text().split("\n---\n")
    assert len(documents) > 1
    tools.write_text("# reordered\n" + "\n---\n".join(document.strip("\n") + "\n" for document in documents[::-1]))
    _commit(repo, "cosmetic")
    assert api.files_at_revision(specs, output, "HEAD")[1] == "committed"
    assert api.check(specs, output).ok


def test_an_output_folder_outside_the_commit_or_no_specs_at_all(example_copy: Path, tmp_path: Path) -> None:
    repo = example_copy
    _git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text("generated/\n")
    _git(repo, "add", ".gitignore")
    _git(repo, "commit", "-qm", "empty")
    _git(repo, "tag", "empty")
    _commit(repo, "specs")
    specs, output = repo / "specs", repo / "generated"
    files, source = api.files_at_revision(specs, output, "HEAD")
    assert source == "compiled" and files == api.build(specs).files
    assert api.files_at_revision(specs, tmp_path / "elsewhere", "HEAD")[1] == "compiled"
    assert api.files_at_revision(specs, output, "empty") == ({}, "absent")


def test_specs_with_a_symbolic_link_are_read_from_a_checkout(example_copy: Path) -> None:
    """A link is followed by the loader; git's archive only knows it as a link, so the base is checked out."""
    from llmops_compiler import plan

    specs, output = example_copy / "specs", example_copy / "generated"
    (specs / "extra").mkdir()
    (specs / "extra/refunds.txt").write_text(
        "apiVersion: llmops.dev/v1alpha1\nkind: Tool\nmetadata: {name: refund-status}\nspec:\n"
        "  description: Where a refund stands.\n  kind: rest\n  endpoint: https://refunds.example.com/status\n"
        "  parameters: {type: object, properties: {order: {type: string}}, required: [order]}\n")
    (specs / "tools/refunds.yaml").symlink_to("../extra/refunds.txt")
    api.compile_project(specs, output)
    repo = _repository(example_copy)
    assert plan.spec_inputs_at_revision(specs, "HEAD") == "extract"
    files, source = api.files_at_revision(specs, output, "HEAD")
    assert source == "committed" and any(b"refund-status" in content for content in files.values())
    assert files == api.build(specs).files
    assert repo == example_copy


def test_no_cache_diff_shares_work_between_its_two_compiles_in_memory_only(
        cli: Cli, example_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --no-cache, `diff --base` compiles the working tree and then the base (its committed output made
    stale); the base compile takes the first one's work from a cache in memory. The plan is the one an empty
    disk cache and a warm one give, and nothing is written to the cache folder."""
    repo = _repository(example_copy)
    specs, output = repo / "specs", repo / "generated"
    chain = specs / "chains/support-answer.yaml"
    chain.write_text(chain.read_text().replace("topK: 5", "topK: 8"))
    _commit(repo, "specs changed, output not regenerated")
    assert api.files_at_revision(specs, output, "HEAD")[1] == "compiled"
    prompt = specs / "prompts/answer.yaml"
    prompt.write_text(prompt.read_text().replace("asks: {{ question }}", "writes: {{ question }}"))
    chain.write_text(chain.read_text().replace("topK: 8", "topK: 7"))
    computed: list[str] = []
    compute_unit = api._compute_unit
    monkeypatch.setattr(api, "_compute_unit", lambda display, content: computed.append(display)
                        or compute_unit(display, content))
    plans = [cli("diff", "--base", "HEAD", "--no-cache", cwd=repo)]
    # It parsed every spec file of the working tree once, and of the base only the two that differ.
    assert sorted(computed) == sorted([*(path.relative_to(repo).as_posix() for path in specs.rglob("*.yaml")),
                                       "specs/prompts/answer.yaml", "specs/chains/support-answer.yaml"])
    plans += [cli("diff", "--base", "HEAD", *flags, cwd=repo) for flags in ([], [], ["--no-cache"])]
    assert all(result.exit_code == 3 for result in plans), [result.output for result in plans]
    assert len({result.stdout for result in plans}) == 1
    assert "        -  topK: 8\n        +  topK: 7\n" in plans[0].stdout
    # The two runs with the disk cache wrote entries; the --no-cache runs wrote none of their own.
    entries = sorted(path for path in (tmp_path / "cache").rglob("*") if path.is_file())
    assert entries
    shutil.rmtree(tmp_path / "cache")
    assert cli("diff", "--base", "HEAD", "--no-cache", cwd=repo).stdout == plans[0].stdout
    assert not (tmp_path / "cache").exists()


def test_the_memory_cache_keeps_entries_in_the_process() -> None:
    memory = cache.MemoryCache()
    assert memory.get_pickle("units", "k") is None
    memory.put_pickle("units", "k", {"a": [1, 2]})
    assert memory.get_pickle("units", "k") == {"a": [1, 2]}
    memory.prune(max_bytes=0)
    assert memory.get_pickle("units", "k") == {"a": [1, 2]}


def test_a_specs_folder_at_the_top_of_its_repository_is_compared_with_its_base(example_copy: Path,
                                                                               tmp_path: Path) -> None:
    """The specs folder may be a repository of its own (its path in it is `.`): the base is read, not taken for
    absent, and an unchanged project has no changes."""
    specs = example_copy / "specs"
    _git(specs, "init", "-q", "-b", "main")
    _commit(specs, "specs alone")
    output = tmp_path / "generated"
    api.compile_project(specs, output)
    files, source = api.files_at_revision(specs, output, "HEAD")
    assert source == "compiled" and files == _tree(output)
    result = run_llmops("diff", ".", "-o", str(output), "--base", "HEAD", cwd=specs)
    assert result.returncode == 0, result.stdout + result.stderr
    chain = specs / "chains/support-answer.yaml"
    chain.write_text(chain.read_text().replace("topK: 5", "topK: 6"))
    changed = run_llmops("diff", ".", "-o", str(output), "--base", "HEAD", cwd=specs)
    assert changed.returncode == 3 and "0 to add, 1 to change, 0 to delete" in changed.stdout


def test_the_markdown_plan_says_when_the_base_does_not_compile_or_has_no_specs(cli: Cli, example_copy: Path) -> None:
    """The job summary carries the caveat that everything shows as new, and why (the base's first error)."""
    repo = _repository(example_copy)
    model = repo / "specs/models/support-llm.yaml"
    original = model.read_text()
    model.write_text(original.replace("kind: Model", "kind: Modle"))
    _commit(repo, "broken")
    model.write_text(original)
    result = cli("diff", "--base", "HEAD", "--format", "markdown", cwd=repo)
    assert result.exit_code == 3
    first = result.stdout.splitlines()[0]
    assert first.startswith("> **Note:** the specs at `HEAD` do not compile (")
    assert "specs/models/support-llm.yaml:" in first and "showing everything as new" in first
    (repo / "other").mkdir()
    _git(repo, "mv", "specs", "other/specs")
    _commit(repo, "specs moved")
    _git(repo, "mv", "other/specs", "specs")
    absent = cli("diff", "--base", "HEAD", "--format", "markdown", cwd=repo)
    assert absent.stdout.startswith("> **Note:** `specs` did not exist at `HEAD`; showing everything as new")


def test_a_base_missing_from_a_shallow_clone_is_explained(cli: Cli, example_copy: Path, tmp_path: Path) -> None:
    """CI checkouts are shallow by default: a base that is not there says so and how to fetch it; a name that
    looks like an option is a revision, never a git option."""
    repo = _repository(example_copy)
    (repo / "README.txt").write_text("second commit\n")
    _commit(repo, "second")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], check=True,
                   capture_output=True)
    result = cli("diff", "--base", "HEAD~1", cwd=clone)
    assert result.exit_code == 2
    assert "`HEAD~1` is not a commit of this repository; this clone is shallow" in result.output
    assert "fetch-depth: 0" in result.output
    for name in ("-x", "--output=x"):
        odd = cli("diff", "--base", name, cwd=repo)
        assert odd.exit_code == 2 and f"`{name}` is not a commit of this repository; check the name" in odd.output
        assert not (repo / "x").exists()
