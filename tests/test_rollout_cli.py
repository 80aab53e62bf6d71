"""`llmops rollout status|promote|pause|resume|abort` on the example project, and `llmops diff` saying rollout
changes in words. The state file keeps its comments; every edit recompiles; `--commit` commits both."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import Result

from llmops_compiler.scaffold import ignore_compiler_files

Cli = Callable[..., Result]
STATE = "specs/rollouts/support-llm.state.yaml"
IDENTITY = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com", "GIT_COMMITTER_NAME": "Ada",
            "GIT_COMMITTER_EMAIL": "ada@example.com"}  # fmt: skip


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**IDENTITY, "PATH": "/usr/bin:/bin"}).stdout  # fmt: skip


def environments(project: Path) -> dict[str, dict[str, object]]:
    return dict(yaml.safe_load((project / STATE).read_text())["spec"]["environments"])


def repository(project: Path, monkeypatch: pytest.MonkeyPatch, ignore: bool = False) -> str:
    """Make ``project`` a git repository with everything committed (as Ada); the commit's hash."""
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)
    git(project, "init", "-q", "-b", "main")
    if ignore:
        ignore_compiler_files(project)  # as `llmops init` does
    git(project, "add", "-A")
    git(project, "commit", "-qm", "base")
    return git(project, "rev-parse", "HEAD").strip()


def rollouts(plan: str) -> list[str]:
    """The lines of the plan's "Rollouts:" section."""
    section = plan.split("\nRollouts:\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in section.splitlines()]


def test_status_says_where_each_environment_stands(cli: Cli, example_copy: Path) -> None:
    result = cli("rollout", "status", cwd=example_copy)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("dev: support-llm canary v8 at 25% (step 2 of 4), stable v7: progressing since "
                               "2026-11-28T09:35:00Z: analysis passed at 10%")
    assert lines[1].startswith("staging: support-llm: stable v7, promoted since 2026-11-27T16:05:00Z")
    assert lines[2] == "prod: support-llm: stable v6, idle"
    only = cli("rollout", "status", "--env", "prod", cwd=example_copy)
    assert only.output.splitlines() == ["prod: support-llm: stable v6, idle"]
    unknown = cli("rollout", "status", "--env", "qa", cwd=example_copy)
    assert unknown.exit_code == 2 and "`qa` is not an environment" in unknown.output


def test_pause_resume_and_promote_edit_the_state_keep_comments_and_recompile(cli: Cli, example_copy: Path) -> None:
    comments = [line for line in (example_copy / STATE).read_text().splitlines() if line.startswith("#")]
    paused = cli("rollout", "pause", "support-llm", "--env", "dev", "--reason", "load test tonight", cwd=example_copy)
    assert paused.exit_code == 0, paused.output
    assert paused.output.strip() == "dev: support-llm v8 paused at 25%"
    dev = environments(example_copy)["dev"]
    assert dev["status"] == "paused" and dev["lastTransition"]["reason"] == "paused: load test tonight"  # type: ignore[index]
    assert [line for line in (example_copy / STATE).read_text().splitlines() if line.startswith("#")] == comments
    assert cli("check", cwd=example_copy).exit_code == 0  # the output was recompiled with the state

    paused_state = (example_copy / STATE).read_bytes()
    again = cli("rollout", "pause", "support-llm", "--env", "dev", cwd=example_copy)
    assert again.exit_code == 1 and again.output.startswith("error: ") and "paused" in again.output
    assert (example_copy / STATE).read_bytes() == paused_state

    resumed = cli("rollout", "resume", "support-llm", "--env", "dev", cwd=example_copy)
    assert resumed.exit_code == 0 and environments(example_copy)["dev"]["status"] == "progressing"

    promoted = cli("rollout", "promote", "support-llm", "--env", "dev", "--reason", "looks good", cwd=example_copy)
    assert promoted.exit_code == 0, promoted.output
    assert promoted.output.strip() == "dev: support-llm v8 promoted (was v7)"
    dev = environments(example_copy)["dev"]
    assert dev["stable"] == 8 and dev["status"] == "promoted" and "candidate" not in dev
    virtual_service = yaml.safe_load(
        (example_copy / "generated/dev/traffic/support-llm.virtualservice.yaml").read_text())
    assert [[item["weight"] for item in route["route"]] for route in virtual_service["spec"]["http"]] == [[100]]
    assert not (example_copy / "generated/dev/serving/support-llm-candidate.deployment.yaml").exists()
    assert cli("check", cwd=example_copy).exit_code == 0


def test_abort_rolls_back_and_refusals_change_nothing(cli: Cli, example_copy: Path) -> None:
    before = (example_copy / STATE).read_bytes()
    refused = cli("rollout", "promote", "support-llm", "--env", "prod", cwd=example_copy)
    assert refused.exit_code == 1 and "error:" in refused.output
    assert (example_copy / STATE).read_bytes() == before
    unknown = cli("rollout", "abort", "no-such-model", "--env", "dev", cwd=example_copy)
    assert unknown.exit_code == 2 and "no RolloutPolicy rolls out Model `no-such-model`" in unknown.output
    assert (example_copy / STATE).read_bytes() == before

    aborted = cli("rollout", "abort", "support-llm", "--env", "dev", "--reason", "answers too long",
                  cwd=example_copy)  # fmt: skip
    assert aborted.exit_code == 0, aborted.output
    assert aborted.output.strip() == "dev: candidate v8 rolled back: aborted: answers too long"
    dev = environments(example_copy)["dev"]
    assert dev["stable"] == 7 and dev["status"] == "rolledBack" and "candidate" not in dev


def test_commit_records_state_and_output_together_and_diff_says_it_in_words(
    cli: Cli, example_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = repository(example_copy, monkeypatch, ignore=True)

    result = cli("rollout", "abort", "support-llm", "--env", "dev", "--reason", "error ratio 0.034 > 0.01",
                 "--commit", cwd=example_copy)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert git(example_copy, "status", "--porcelain") == ""  # state and generated/ in one commit
    assert git(example_copy, "log", "-1", "--format=%s").strip() == (
        "dev: candidate v8 rolled back: aborted: error ratio 0.034 > 0.01")
    changed = set(git(example_copy, "diff", "--name-only", base, "HEAD").split())
    assert STATE in changed and "generated/dev/serving/support-llm-candidate.deployment.yaml" in changed

    diff = cli("diff", "--base", base, cwd=example_copy)
    assert diff.exit_code == 3, diff.output
    assert rollouts(diff.output) == ["dev: candidate v8 rolled back: aborted: error ratio 0.034 > 0.01"]


def test_diff_words_a_step_change(cli: Cli, example_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repository(example_copy, monkeypatch)
    state = example_copy / STATE
    state.write_text(state.read_text().replace("      step: 1\n", "      step: 2\n", 1))
    diff = cli("diff", "--base", "HEAD", cwd=example_copy)
    assert diff.exit_code == 3, diff.output
    assert rollouts(diff.output) == ["dev: support-llm canary 25% → 50%"]
    assert "spec.http[0].route[0].weight: 75 → 50" in diff.output  # and the fields it changes


def test_a_policy_edit_that_strands_a_rollout_is_repaired_by_abort(cli: Cli, example_copy: Path) -> None:
    """Removing steps while dev is at step 1 makes the specs invalid; the hint's command is the way out."""
    policy = example_copy / "specs/rollouts/support-llm.yaml"
    policy.write_text(policy.read_text().replace(
        "    - weight: 10\n      pause: 30m\n    - weight: 25\n      pause: 1h\n    - weight: 50\n      pause: 2h\n",
        ""))
    stranded = cli("validate", cwd=example_copy)
    assert stranded.exit_code == 1
    assert "error[LLM319]: step 1 does not exist: the policy has steps 0 to 0" in stranded.stderr
    assert "`llmops rollout abort support-llm --env dev`" in stranded.stderr
    refused = cli("rollout", "promote", "support-llm", "--env", "dev", cwd=example_copy)
    assert refused.exit_code == 1 and "LLM319" in refused.stderr
    status = cli("rollout", "status", "--env", "dev", cwd=example_copy)
    assert status.exit_code == 0 and status.stdout.startswith("dev: support-llm canary v8"), status.output
    assert "warning[LLM319]: step 1 does not exist" in status.stderr  # said, not hidden
    aborted = cli("rollout", "abort", "support-llm", "--env", "dev", cwd=example_copy)
    assert aborted.exit_code == 0, aborted.output
    assert environments(example_copy)["dev"]["status"] == "rolledBack"
    assert cli("check", cwd=example_copy).exit_code == 0


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the output folder's lock (an empty file a compile leaves, ignored by git)."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*")
            if path.is_file() and not path.name.endswith(".llmops-lock")}


def test_a_transition_that_cannot_finish_changes_nothing(
    cli: Cli, example_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _tree(example_copy)
    outside_git = cli("rollout", "pause", "support-llm", "--env", "dev", "--commit", cwd=example_copy)
    assert outside_git.exit_code == 2 and "--commit needs a git repository" in outside_git.output
    assert _tree(example_copy) == before

    # The output cannot be written (a link where the compile needs a folder): the state is put back.
    serving = example_copy / "generated/dev/serving"
    for path in serving.iterdir():
        path.unlink()
    serving.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    serving.symlink_to(elsewhere, target_is_directory=True)
    before = _tree(example_copy)
    blocked = cli("rollout", "pause", "support-llm", "--env", "dev", cwd=example_copy)
    assert blocked.exit_code == 1 and "LLM503" in blocked.stderr
    assert _tree(example_copy) == before and list(elsewhere.iterdir()) == []
    serving.unlink()
    elsewhere.rmdir()

    # The commit is refused (a pre-commit hook): state, output and index are as they were.
    assert cli("compile", cwd=example_copy).exit_code == 0
    repository(example_copy, monkeypatch)
    hook = example_copy / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'commits are frozen' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = _tree(example_copy / "specs"), _tree(example_copy / "generated")
    frozen = cli("rollout", "pause", "support-llm", "--env", "dev", "--commit", cwd=example_copy)
    assert frozen.exit_code == 1 and "commits are frozen" in frozen.output and "nothing changed" in frozen.output
    assert (_tree(example_copy / "specs"), _tree(example_copy / "generated")) == before
    assert git(example_copy, "status", "--porcelain") == ""


def test_diff_words_a_policy_edit_that_moves_a_rollout_in_flight_and_new_rollouts(
    cli: Cli, example_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository(example_copy, monkeypatch)
    policy = example_copy / "specs/rollouts/support-llm.yaml"
    policy.write_text(policy.read_text().replace("    - weight: 25\n", "    - weight: 30\n"))
    diff = cli("diff", "--base", "HEAD", cwd=example_copy)
    assert diff.exit_code == 3, diff.output
    assert rollouts(diff.output) == ["dev: support-llm v8 canary 25% → 30% (the policy changed)"]

    # From a commit without any rollout, each environment's rollout is new and says where it stands.
    git(example_copy, "checkout", "-q", "--", "specs")
    git(example_copy, "rm", "-q", "specs/rollouts/support-llm.yaml", STATE)
    git(example_copy, "commit", "-qm", "no rollouts")
    git(example_copy, "checkout", "-q", "HEAD~1", "--", "specs/rollouts")
    added = cli("diff", "--base", "HEAD", cwd=example_copy)
    assert [line.split(" since ")[0] for line in rollouts(added.output)] == [
        "dev: support-llm canary v8 at 25% (step 2 of 4), stable v7: progressing",
        "prod: support-llm: stable v6, idle (new)",
        "staging: support-llm: stable v7, promoted"]


def test_commit_refuses_uncommitted_spec_or_output_changes(cli: Cli, example_copy: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`--commit` records the transition alone: with an uncommitted spec edit (which its compile would carry into
    every environment's output) or an untracked spec file, it refuses and changes nothing."""
    assert cli("compile", cwd=example_copy).exit_code == 0
    head = repository(example_copy, monkeypatch)
    prompt = example_copy / "specs/prompts/answer.yaml"
    prompt.write_text(prompt.read_text().replace("asks: {{ question }}", "writes: {{ question }}"))
    for extra in (None, example_copy / "specs/prompts/draft.yaml"):
        if extra is not None:
            git(example_copy, "checkout", "--", "specs/prompts/answer.yaml")
            extra.write_text(prompt.read_text().replace("name: answer", "name: draft"))
        before = _tree(example_copy / "specs"), _tree(example_copy / "generated")
        refused = cli("rollout", "pause", "support-llm", "--env", "dev", "--commit", cwd=example_copy)
        assert refused.exit_code == 1, refused.output
        assert "uncommitted changes" in refused.output and "nothing changed" in refused.output
        assert ("specs/prompts/answer.yaml" if extra is None else "specs/prompts/draft.yaml") in refused.output
        assert (_tree(example_copy / "specs"), _tree(example_copy / "generated")) == before
        assert git(example_copy, "rev-parse", "HEAD").strip() == head


def test_concurrent_transitions_take_turns(cli: Cli, example_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two transitions at once: the second waits for the first (held in its pre-commit hook) and then reads the
    state the first committed, so neither undoes the other and the work tree matches HEAD afterwards."""
    import os
    import sys
    import time

    assert cli("compile", cwd=example_copy).exit_code == 0
    repository(example_copy, monkeypatch)
    hook = example_copy / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\nsleep 3\n")
    hook.chmod(0o755)
    environment = {**os.environ, **IDENTITY}

    def start(*arguments: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "llmops_compiler.cli", "rollout", *arguments, "support-llm",
                                 "--env", "dev", "--commit"], cwd=example_copy, env=environment,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = start("pause", "--reason", "first")
    time.sleep(1.5)  # the first holds the lock, waiting in its hook
    second = start("abort", "--reason", "second")
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), outputs
    assert git(example_copy, "status", "--porcelain", "--", "specs", "generated") == ""
    assert environments(example_copy)["dev"]["status"] == "rolledBack"
    messages = git(example_copy, "log", "-2", "--format=%B")
    assert messages.index("second") < messages.index("first")  # the abort came after the pause, on top of it


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_an_interrupted_commit_leaves_state_output_and_index_as_they_were(
        cli: Cli, example_copy: Path, monkeypatch: pytest.MonkeyPatch, signal_name: str) -> None:
    """Ctrl-C or SIGTERM while the commit's hook runs: the state file, the output and the index are as before
    (nothing staged for a later `git commit` to pick up), and no git lock is left behind."""
    import os
    import signal
    import sys
    import time

    assert cli("compile", cwd=example_copy).exit_code == 0
    head = repository(example_copy, monkeypatch)
    hook = example_copy / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\nsleep 8\n")
    hook.chmod(0o755)
    before = _tree(example_copy / "specs"), _tree(example_copy / "generated")
    process = subprocess.Popen([sys.executable, "-m", "llmops_compiler.cli", "rollout", "pause", "support-llm",
                                "--env", "dev", "--commit"], cwd=example_copy, env={**os.environ, **IDENTITY},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (example_copy / ".git/index.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the commit has started: its hook runs
    process.send_signal(getattr(signal, signal_name))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0, stderr
    assert "Traceback" not in stderr
    assert (_tree(example_copy / "specs"), _tree(example_copy / "generated")) == before
    assert git(example_copy, "status", "--porcelain", "--", "specs", "generated") == ""
    assert git(example_copy, "diff", "--cached", "--name-only") == ""
    assert git(example_copy, "rev-parse", "HEAD").strip() == head
    assert not (example_copy / ".git/index.lock").exists()
