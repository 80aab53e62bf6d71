"""promote: a real Prometheus with a backfilled history, a sqlite MLflow registry and GitOps repositories with a
bare remote. The example project is the repository's content; its three environments each see a different
candidate in Prometheus:

* prod (namespace support-prod): v8 healthy (0.2% errors, p95 ≈ 0.95s, 3 requests/s); the stable v7 beside
  it is slow and failing, so a query that picked the wrong version would fail the candidate;
* dev (support-dev): v8 failing (5% errors);
* staging (support-staging): v8 with too little traffic (0.2 requests/s: 60 in 5m, the policy wants 200).
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from promote_support import (
    Traffic,
    checkout,
    commit_message,
    commits_since,
    fake_github,
    git,
    git_http_server,
    make_remote,
    minutes,
    openmetrics,
    prometheus_with_history,
    remote_file,
)

from llmops_compiler import api, gitops, rollout
from llmops_compiler.runtime import promote
from llmops_compiler.specs.project import DEFAULT_LATENCY_BUCKETS
from llmops_compiler.specs.rollout import EnvironmentState

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
STATE_PATH = "specs/rollouts/support-llm.state.yaml"
HEALTHY = ((0.25, 0.3), (0.5, 0.4), (1.0, 0.28), (2.5, 0.02))
SLOW = ((2.5, 0.4), (5.0, 0.6))
EXAMPLE_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"


@pytest.fixture(scope="module")
def prometheus_url() -> Iterator[str]:
    from datetime import timedelta

    traffic = [
        Traffic("support-prod", 8, 3.0, 0.002, HEALTHY),
        Traffic("support-prod", 7, 3.0, 0.2, SLOW),
        Traffic("support-dev", 8, 3.0, 0.05, HEALTHY),
        Traffic("support-staging", 8, 0.2, 0.0, HEALTHY),
    ]
    text = openmetrics(traffic, "support-llm", T0 - timedelta(hours=1), T0 + timedelta(hours=4, minutes=30), 30,
                       DEFAULT_LATENCY_BUCKETS)
    with prometheus_with_history(text) as server:
        yield server.url


@dataclass
class GitOpsRepo:
    """The remote the promote step clones, its first commit, and the registered model of this test."""

    remote: Path
    initial: str
    registered_model: str
    workdir: Path

    @property
    def url(self) -> str:
        return str(self.remote)

    def state(self, environment: str, ref: str = "main") -> EnvironmentState:
        text = remote_file(self.remote, ref, STATE_PATH)
        path = self.workdir / f"state-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(text, encoding="utf-8")
        return rollout.read_state_file(path, "support-llm").environments.get(environment, EnvironmentState())

    def commits(self, ref: str = "main") -> list[str]:
        return commits_since(self.remote, self.initial, ref)


def _state(**fields: object) -> EnvironmentState:
    return EnvironmentState.model_validate(fields)


def _in_flight(step: int, since: datetime = T0) -> EnvironmentState:
    return _state(stable=7, candidate=8, step=step, status="progressing",
                  lastTransition={"reason": "set up by the test", "time": rollout.format_time(since)})


def make_repo(project: Path, tmp_path: Path, prometheus: str, states: dict[str, EnvironmentState]) -> GitOpsRepo:
    """The example project, pointed at this test's Prometheus and registered model, with ``states``, compiled,
    committed and cloned bare."""
    registered_model = f"support-llm-{uuid.uuid4().hex[:8]}"
    project_file = project / "specs" / "project.yaml"
    project_file.write_text(project_file.read_text().replace(EXAMPLE_PROMETHEUS, prometheus))
    model_file = project / "specs" / "models" / "support-llm.yaml"
    model_file.write_text(model_file.read_text().replace("registeredModel: support-llm",
                                                         f"registeredModel: {registered_model}"))
    policy_file = project / "specs" / "rollouts" / "support-llm.yaml"  # staging gives up sooner on no traffic
    policy_file.write_text(policy_file.read_text() + "environments:\n  staging:\n    analysis:\n"
                           "      inconclusiveLimit: 3\n")
    for environment, state in states.items():
        rollout.write_environment_state(project / STATE_PATH, "support-llm", environment, state)
    api.compile_project(project / "specs", project / "generated")
    remote = tmp_path / "remote.git"
    initial = make_remote(project, remote)
    workdir = tmp_path / "work"
    workdir.mkdir()
    return GitOpsRepo(remote, initial, registered_model, workdir)


@pytest.fixture
def registry(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], dict[str, int]]:
    """Registers versions 1 to 9 of a model; returns a function giving its aliases."""
    from mlflow import MlflowClient

    monkeypatch.setenv(promote.TRACKING_URI_ENV, mlflow_uri)
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)

    def aliases(name: str) -> dict[str, int]:
        try:
            client.get_registered_model(name)
        except Exception:
            client.create_registered_model(name)
            for _ in range(9):
                client.create_model_version(name, source=f"/models/{name}")
        return {alias: int(version) for alias, version in client.get_registered_model(name).aliases.items()}

    return aliases


def run_promote(repo: GitOpsRepo, capsys: pytest.CaptureFixture[str], environment: str, now: str,
                *extra: str) -> tuple[int, str, str]:
    code = promote.main(["--repo-url", repo.url, "--branch", "main", "--policy", "support-llm", "--environment",
                         environment, "--now", now, "--workdir", str(repo.workdir), *extra])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def assert_every_commit_checks(repo: GitOpsRepo, tmp_path: Path, ref: str = "main") -> None:
    """`llmops check` passes on every commit the test pushed (state and generated output agree)."""
    for index, commit in enumerate(repo.commits(ref)):
        tree = checkout(repo.remote, commit, tmp_path / f"check-{ref.replace('/', '-')}-{index}")
        result = api.check(tree / "specs", tree / "generated")
        assert result.ok, f"commit {commit[:8]} is stale: {result.stale}"


def test_healthy_candidate_walks_every_step_then_becomes_stable(
        example_copy: Path, tmp_path: Path, prometheus_url: str, registry: Callable[[str], dict[str, int]],
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(example_copy, tmp_path, prometheus_url, {"prod": _state(stable=7, status="idle")})
    assert registry(repo.registered_model) == {}
    steps = [
        # (minutes after T0, extra arguments, exit code, stdout)
        (0, ("--propose-version", "8", "--reason", "registered by tune-support-llm"), 0,
         "prod: support-llm canary of v8 started at 10% (stable v7)"),
        (10, (), 0, "prod: support-llm: no change: analysis passed at 10% (error ratio 0.002 <= 0.01, p95 latency "
                    "0.9464s <= 2.5s, server-errors 0.006 <= 0.5, 900 requests); holds until 2026-11-20T08:30:00Z"),
        (31, (), 0, "prod: support-llm canary 10% → 25%"),
        (60, (), 0, None),  # the 1h pause of 25% counts from 08:31
        (92, (), 0, "prod: support-llm canary 25% → 50%"),
        (213, (), 0, "prod: support-llm canary 50% → 100%"),
        (215, (), 0, None),  # the last step has no pause, but is judged on one whole interval of its own
        (219, (), 0, "prod: support-llm v8 promoted (was v7)"),
        (225, (), 0, "prod: support-llm: no change: no candidate in flight (the last one was promoted)"),
    ]
    for after, extra, code, out in steps:
        result = run_promote(repo, capsys, "prod", minutes(T0, after), *extra)
        assert result[0] == code, result
        if out is not None:
            assert result[1] == out
        else:
            assert result[1].startswith("prod: support-llm: no change: analysis passed at "), result
        if after == 31:  # while v8 is in flight, MLflow names it the candidate, in prod and (last env) plainly
            assert registry(repo.registered_model) == {"stable": 7, "stable-prod": 7, "candidate": 8,
                                                       "candidate-prod": 8}

    commits = repo.commits()
    assert len(commits) == 5  # propose, three steps, promotion: holds and no-change runs commit nothing
    messages = [commit_message(repo.remote, commit) for commit in commits]
    assert messages[1].startswith("prod: support-llm canary 10% → 25%\n\nanalysis passed at 10% (error ratio "
                                  "0.002 <= 0.01, p95 latency 0.9464s <= 2.5s, server-errors 0.006 <= 0.5, 900 "
                                  "requests)\n")
    assert "Llmops-Change: prod stable=v7 candidate=v8 step=1 status=progressing" in messages[1]
    assert messages[4].startswith("prod: support-llm v8 promoted (was v7)\n\nv8 promoted: analysis passed at 100%")
    changed = git("--git-dir", str(repo.remote), "show", "--name-only", "--format=", commits[0]).split()
    assert STATE_PATH in changed and any(path.startswith("generated/prod/") for path in changed), changed

    final = repo.state("prod")
    assert (final.stable, final.candidate, final.status) == (8, None, "promoted")
    assert final.last_transition is not None and final.last_transition.time == "2026-11-20T11:39:00Z"
    assert repo.state("dev") == _state(stable=7, candidate=8, step=1, status="progressing", lastTransition={
        "reason": "analysis passed at 10% (error ratio 0.002 <= 0.01, p95 latency 1.1s <= 2.5s, 1840 requests)",
        "time": "2026-11-28T09:35:00Z"})  # the example's dev entry, untouched
    text = remote_file(repo.remote, "main", STATE_PATH)
    original = (example_copy / STATE_PATH).read_text()
    assert text.splitlines()[:3] == original.splitlines()[:3]  # the header comments survive every edit
    assert registry(repo.registered_model) == {"stable": 8, "stable-prod": 8}
    assert_every_commit_checks(repo, tmp_path)


def test_failing_candidate_holds_then_rolls_back_at_the_failure_limit(
        example_copy: Path, tmp_path: Path, prometheus_url: str, registry: Callable[[str], dict[str, int]],
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(example_copy, tmp_path, prometheus_url, {"dev": _in_flight(1)})
    registry(repo.registered_model)
    code, out, _ = run_promote(repo, capsys, "dev", minutes(T0, 10))
    assert code == 0
    assert out == ("dev: support-llm v8 holds at 25%: analysis failed (1 of 2): error ratio 0.05 > 0.01, p95 latency "
                   "0.9464s <= 2.5s, server-errors 0.15 <= 0.5, 900 requests")
    assert repo.state("dev").failed_analyses == 1
    assert registry(repo.registered_model)["candidate-dev"] == 8

    code, out, _ = run_promote(repo, capsys, "dev", minutes(T0, 15))
    assert code == 1  # the gate failed: the workflow run shows it
    assert out == ("dev: candidate v8 rolled back: error ratio 0.05 > 0.01, p95 latency 0.9464s <= 2.5s, "
                   "server-errors 0.15 <= 0.5, 900 requests (2 failed analyses in a row at 25%)")
    state = repo.state("dev")
    assert (state.stable, state.candidate, state.status, state.failed_analyses) == (7, None, "rolledBack", 0)
    assert state.last_transition is not None and "error ratio 0.05 > 0.01" in state.last_transition.reason
    assert "candidate-dev" not in registry(repo.registered_model)
    assert registry(repo.registered_model)["stable-dev"] == 7

    assert run_promote(repo, capsys, "dev", minutes(T0, 20))[:2] == (
        0, "dev: support-llm: no change: no candidate in flight (the last one was rolled back)")
    assert len(repo.commits()) == 2
    assert_every_commit_checks(repo, tmp_path)


def test_too_little_traffic_holds_never_promotes_and_rolls_back_at_the_inconclusive_limit(
        example_copy: Path, tmp_path: Path, prometheus_url: str, registry: Callable[[str], dict[str, int]],
        capsys: pytest.CaptureFixture[str]) -> None:
    # At the last step (100%) and long past its pause: a passing run would promote at once.
    repo = make_repo(example_copy, tmp_path, prometheus_url, {"staging": _in_flight(3)})
    registry(repo.registered_model)
    for index, after in enumerate((10, 15), start=1):
        code, out, _ = run_promote(repo, capsys, "staging", minutes(T0, after))
        assert (code, out) == (0, f"staging: support-llm v8 holds at 100%: analysis inconclusive ({index} of 3): "
                                  "60 requests < 200 minimum, error ratio 0 <= 0.01, p95 latency 0.9464s <= 2.5s, "
                                  "server-errors 0 <= 0.5")
        assert repo.state("staging").status == "progressing"
    code, out, _ = run_promote(repo, capsys, "staging", minutes(T0, 20))
    assert code == 1
    assert out.startswith("staging: candidate v8 rolled back: 60 requests < 200 minimum")
    assert out.endswith("(3 inconclusive analyses in a row at 100%)")
    assert repo.state("staging").stable == 7  # never promoted
    assert "stable-staging" in registry(repo.registered_model)
    assert all("promoted" not in commit_message(repo.remote, commit) for commit in repo.commits())


def test_prometheus_unreachable_changes_nothing_and_says_so(
        example_copy: Path, tmp_path: Path, subprocess_env: dict[str, str], python: str) -> None:
    from servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    repo = make_repo(example_copy, tmp_path, url, {"prod": _in_flight(0)})
    result = subprocess.run(
        [python, "-m", "llmops_compiler.runtime.promote", "--repo-url", repo.url, "--branch", "main", "--policy",
         "support-llm", "--environment", "prod", "--now", minutes(T0, 31), "--workdir", str(repo.workdir)],
        env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3
    assert result.stdout == ""
    assert re.fullmatch(rf"promote: error: no change: Prometheus at {url} is unreachable: \[Errno 111\] "
                        r"Connection refused\n", result.stderr), result.stderr
    assert repo.commits() == []


def _other_writer(repo: GitOpsRepo, tmp_path: Path, environment: str) -> Path:
    """Another clone that has committed a person's `pause` of ``environment`` (state and output), unpushed."""
    other = tmp_path / "other"
    git("clone", "--quiet", repo.url, str(other))
    state_file = other / STATE_PATH
    current = rollout.read_state_file(state_file, "support-llm").environments[environment]
    decision = rollout.pause(current, "a person looks at the dashboards", T0)
    rollout.write_environment_state(state_file, "support-llm", environment, decision.after)
    gitops.compile_clone(other)
    git("commit", "--quiet", "-am", f"{environment}: pause", cwd=other)
    return other


def _pre_push_hook(tmp_path: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pre-push hook for the promote step's clone (through a global git config only its git sees)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    hook = hooks / "pre-push"
    hook.write_text("#!/bin/sh\nset -e\nunset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE\n" + script)
    hook.chmod(0o755)
    config = tmp_path / "gitconfig"
    config.write_text(f"[core]\n\thooksPath = {hooks}\n[user]\n\tname = another writer\n"
                      "\temail = another@example.invalid\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))


@pytest.mark.parametrize("paused", ["staging", "prod"])
def test_a_concurrent_push_is_retried_to_one_consistent_result(
        paused: str, example_copy: Path, tmp_path: Path, prometheus_url: str,
        registry: Callable[[str], dict[str, int]], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(example_copy, tmp_path, prometheus_url, {"prod": _in_flight(0), "staging": _in_flight(3)})
    registry(repo.registered_model)
    other = _other_writer(repo, tmp_path, paused)
    marker = tmp_path / "pushed"
    # Right before the promote step's push, the other writer's push lands first (once).
    _pre_push_hook(tmp_path, f'[ -e "{marker}" ] && exit 0\ntouch "{marker}"\n'
                             f'git -C "{other}" push --quiet --no-verify origin HEAD:main\n', monkeypatch)
    code, out, _ = run_promote(repo, capsys, "prod", minutes(T0, 31))
    assert code == 0 and marker.exists()
    commits = repo.commits()
    assert commit_message(repo.remote, commits[0]).startswith(f"{paused}: pause")
    if paused == "staging":  # the advance is decided again on the new head, and lands on top of it
        assert out == "prod: support-llm canary 10% → 25% (pushed on attempt 2)"
        assert len(commits) == 2
        assert (repo.state("prod").step, repo.state("staging").status) == (1, "paused")
    else:  # the person paused this very rollout: analysis no longer moves it
        assert out == "prod: support-llm: no change: paused by a person; resume it to let analysis move it"
        assert len(commits) == 1
        assert (repo.state("prod").step, repo.state("prod").status) == (0, "paused")
    assert_every_commit_checks(repo, tmp_path)


def test_a_branch_that_keeps_moving_fails_clearly_after_the_attempts(
        example_copy: Path, tmp_path: Path, prometheus_url: str, registry: Callable[[str], dict[str, int]],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(example_copy, tmp_path, prometheus_url, {"prod": _in_flight(0)})
    registry(repo.registered_model)
    other = tmp_path / "other"
    git("clone", "--quiet", repo.url, str(other))
    _pre_push_hook(tmp_path, f'git -C "{other}" pull --quiet --rebase origin main\n'
                             f'git -C "{other}" commit --quiet --allow-empty -m "another writer"\n'
                             f'git -C "{other}" push --quiet --no-verify origin HEAD:main\n', monkeypatch)
    code, out, err = run_promote(repo, capsys, "prod", minutes(T0, 31), "--max-push-attempts", "2")
    assert (code, out) == (3, "")
    assert err == ("promote: error: push to main was rejected 2 times: other writers keep changing the branch; "
                   "nothing was pushed, the next run decides again")
    assert [commit_message(repo.remote, commit).strip() for commit in repo.commits()] == ["another writer"] * 2


def test_pull_request_mode_pushes_a_branch_and_opens_one_pull_request(
        example_copy: Path, tmp_path: Path, prometheus_url: str, registry: Callable[[str], dict[str, int]],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(example_copy, tmp_path, prometheus_url, {"prod": _in_flight(0)})
    registry(repo.registered_model)
    monkeypatch.setenv("TEST_FORGE_TOKEN", "forge-token-123")
    branch = "llmops/rollout/support-llm-prod"
    with fake_github() as forge:
        pr_args = ("--mode", "pullRequest", "--forge-api", forge.url, "--forge-repository", "acme/gitops",
                   "--forge-token-env", "TEST_FORGE_TOKEN")
        code, out, _ = run_promote(repo, capsys, "prod", minutes(T0, 31), *pr_args)
        assert code == 0
        assert out == ("prod: support-llm canary 10% → 25% (proposed in "
                       "https://github.example/acme/gitops/pull/1)")
        head = git("--git-dir", str(repo.remote), "rev-parse", branch).strip()
        # The same decision a run later: the open pull request already proposes it; nothing is pushed again.
        code, out, _ = run_promote(repo, capsys, "prod", minutes(T0, 36), *pr_args)
        assert code == 0 and out.endswith("(proposed in https://github.example/acme/gitops/pull/1)")
        assert git("--git-dir", str(repo.remote), "rev-parse", branch).strip() == head

    assert repo.commits() == []  # the watched branch is untouched: a person merges
    assert len(repo.commits(branch)) == 1
    assert repo.state("prod", ref=branch).step == 1
    first, second, lookup = forge.requests
    assert (first.method, first.path) == ("POST", "/repos/acme/gitops/pulls")
    assert first.headers["Authorization"] == "Bearer forge-token-123"
    assert first.headers["Accept"] == "application/vnd.github+json"
    assert first.body["head"] == branch and first.body["base"] == "main"
    assert first.body["title"] == "prod: support-llm canary 10% → 25%"
    assert "error ratio 0.002 <= 0.01" in first.body["body"]
    assert (second.method, lookup.method) == ("POST", "GET")
    assert lookup.path == f"/repos/acme/gitops/pulls?head=acme%3A{branch.replace('/', '%2F')}&base=main&state=open"
    # MLflow follows the watched branch: v8 is still the candidate at 10% there.
    assert registry(repo.registered_model)["candidate-prod"] == 8
    assert_every_commit_checks(repo, tmp_path, ref=branch)


def test_an_https_remote_gets_the_token_from_the_environment_and_never_stores_it(
        example_copy: Path, tmp_path: Path, prometheus_url: str, registry: Callable[[str], dict[str, int]],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(example_copy, tmp_path, prometheus_url, {"prod": _in_flight(0)})
    registry(repo.registered_model)
    token = f"tok-{uuid.uuid4().hex}"
    with git_http_server(repo.remote.parent, "x-access-token", token) as server:
        url = f"{server.url}/{repo.remote.name}"
        repo_args = ["--repo-url", url, "--branch", "main", "--policy", "support-llm", "--environment", "prod",
                     "--workdir", str(repo.workdir), "--git-token-env", "TEST_GIT_TOKEN"]
        assert promote.main([*repo_args, "--now", minutes(T0, 31)]) == 3  # the variable is not set
        assert capsys.readouterr().err.strip() == ("promote: error: environment variable TEST_GIT_TOKEN (the token) "
                                                   "is not set or empty")
        monkeypatch.setenv("TEST_GIT_TOKEN", token)
        assert promote.main([*repo_args, "--now", minutes(T0, 31)]) == 0
        assert capsys.readouterr().out.strip() == "prod: support-llm canary 10% → 25%"

        clone = tmp_path / "clone"  # a clone made the same way, inspected before it is thrown away
        with gitops.Repository.clone(gitops.Remote(url, "main", "TEST_GIT_TOKEN"), clone) as repository:
            assert repository.private_dir is not None
            stored = [path for folder in (clone, repository.private_dir) for path in folder.rglob("*")
                      if path.is_file() and token.encode() in path.read_bytes()]
            assert stored == []
            assert token not in git("config", "--list", cwd=clone)
    assert any(seen.startswith("Basic ") for seen in server.seen_authorizations)
    assert len(repo.commits()) == 1
    assert not any(token.encode() in path.read_bytes() for path in repo.remote.rglob("*") if path.is_file())


def test_refused_proposals_exit_2_and_change_nothing(
        example_copy: Path, tmp_path: Path, prometheus_url: str, registry: Callable[[str], dict[str, int]],
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(example_copy, tmp_path, prometheus_url, {"prod": _in_flight(0)})
    registry(repo.registered_model)
    cases = [
        ("6", "promote: error: refused: v6 is older than the candidate in flight v8"),
        ("42", f"promote: error: registered model `{repo.registered_model}` has no version 42 in MLflow"),
    ]
    for version, message in cases:
        code, out, err = run_promote(repo, capsys, "prod", minutes(T0, 1), "--propose-version", version,
                                     "--reason", "test")
        assert (code, out, err) == (2, "", message)
    code, out, _ = run_promote(repo, capsys, "prod", minutes(T0, 1), "--propose-version", "8", "--reason", "again")
    assert (code, out) == (0, "prod: support-llm: no change: v8 is already the candidate in flight")
    code, out, _ = run_promote(repo, capsys, "prod", minutes(T0, 2), "--rollback", "--reason", "alert ErrorBudgetBurn")
    assert (code, out) == (0, "prod: candidate v8 rolled back: alert ErrorBudgetBurn")  # asked for: not a failed gate
    code, out, _ = run_promote(repo, capsys, "prod", minutes(T0, 3), "--rollback", "--reason", "the alert again")
    assert (code, out) == (0, "prod: support-llm: no change: no candidate in flight to roll back")
    assert len(repo.commits()) == 1
    assert run_promote(repo, capsys, "nowhere", minutes(T0, 4))[2] == (
        "promote: error: environment `nowhere` is not in the Project; it has dev, staging, prod")


def test_a_promotion_committed_by_a_person_reaches_mlflow_on_the_next_run(
        example_copy: Path, tmp_path: Path, prometheus_url: str, registry: Callable[[str], dict[str, int]],
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(example_copy, tmp_path, prometheus_url, {"prod": _in_flight(0)})
    registry(repo.registered_model)
    assert run_promote(repo, capsys, "prod", minutes(T0, 5))[0] == 0  # holds at 10%; MLflow learns of v8
    assert registry(repo.registered_model) == {"stable": 7, "stable-prod": 7, "candidate": 8, "candidate-prod": 8}
    person = tmp_path / "person"  # `llmops rollout promote prod` and a push, as a person would
    git("clone", "--quiet", repo.url, str(person))
    current = rollout.read_state_file(person / STATE_PATH, "support-llm").environments["prod"]
    rollout.write_environment_state(person / STATE_PATH, "support-llm", "prod",
                                    rollout.promote(current, "hotfix for ticket 123", T0).after)
    gitops.compile_clone(person)
    git("commit", "--quiet", "-am", "prod: promote v8 by hand", cwd=person)
    git("push", "--quiet", "origin", "HEAD:main", cwd=person)
    code, out, err = run_promote(repo, capsys, "prod", minutes(T0, 10))
    assert (code, out) == (0, "prod: support-llm: no change: no candidate in flight (the last one was promoted)")
    assert err == (f"promote: MLflow aliases of {repo.registered_model}: removed candidate-prod (was v8), "
                   "stable-prod → v8, removed candidate (was v8), stable → v8")
    assert registry(repo.registered_model) == {"stable": 8, "stable-prod": 8}
    assert run_promote(repo, capsys, "prod", minutes(T0, 15))[2] == ""  # in step: nothing more to say


@pytest.mark.parametrize(("query", "message"), [
    # valid PromQL (the compiler checks syntax) that Prometheus refuses while evaluating it
    ('label_replace(sum(rate(llm_requests_total[5m])), "a", "$1", "b", "(")',
     r"query `label_replace\(.+\)` failed: \w+: .+"),
    ("rate(llm_requests_total[5m])", r"query `rate\(llm_requests_total\[5m\]\)` returned \d+ series; an analysis "
                                     r"query must return one number \(aggregate it, e.g. with sum\)"),
])
def test_a_query_that_fails_changes_nothing(
        query: str, message: str, example_copy: Path, tmp_path: Path, prometheus_url: str,
        registry: Callable[[str], dict[str, int]], capsys: pytest.CaptureFixture[str]) -> None:
    policy_file = example_copy / "specs" / "rollouts" / "support-llm.yaml"
    text = policy_file.read_text()
    start = text.index("        query: ") + len("        query: ")
    policy_file.write_text(text[:start] + query + text[text.index("\n", start):])
    repo = make_repo(example_copy, tmp_path, prometheus_url, {"prod": _in_flight(0)})
    registry(repo.registered_model)
    code, out, err = run_promote(repo, capsys, "prod", minutes(T0, 31))
    assert (code, out) == (3, "")
    assert re.fullmatch(f"promote: error: no change: {message}", err), err
    assert repo.commits() == []


def test_a_persons_checkout_gets_commits_and_is_never_reset(
        example_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the CLI's `llmops rollout ... --commit` does in a person's checkout (git identity of their own)."""
    from promote_support import GIT_ENV

    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)
    repo = make_repo(example_copy, tmp_path, "http://127.0.0.1:9", {"prod": _in_flight(0)})
    person = tmp_path / "person"
    git("clone", "--quiet", repo.url, str(person))

    def transition(kind: str) -> gitops.Edit:
        def edit(clone: Path) -> gitops.Change:
            current = rollout.read_state_file(clone / STATE_PATH, "support-llm").environments["prod"]
            decision = getattr(rollout, kind)(current, "by hand", T0)
            rollout.write_environment_state(clone / STATE_PATH, "support-llm", "prod", decision.after)
            return gitops.Change(f"prod: {kind}", [STATE_PATH])
        return edit

    checkout_repo = gitops.Repository.open(person)
    assert (checkout_repo.remote.url, checkout_repo.remote.branch) == (repo.url, "main")
    committed = gitops.publish(checkout_repo, transition("pause"), None, push=False)
    assert committed.outcome == "committed" and repo.commits() == []
    assert api.check(person / "specs", person / "generated").ok
    git("commit", "--quiet", "--allow-empty", "-m", "meanwhile", cwd=_clone(repo, tmp_path / "another"))
    git("push", "--quiet", "origin", "HEAD:main", cwd=tmp_path / "another")
    with pytest.raises(gitops.PushConflict, match="your commit is kept: pull, check the rollout again and push"):
        gitops.publish(checkout_repo, transition("resume"), None)
    assert git("log", "--format=%s", "-2", cwd=person).split("\n")[:2] == ["prod: resume", "prod: pause"]
    assert git("status", "--porcelain", cwd=person) == ""


def _clone(repo: GitOpsRepo, into: Path) -> Path:
    git("clone", "--quiet", repo.url, str(into))
    return into


@pytest.mark.parametrize("data", [
    {"resultType": "vector", "result": [{"metric": {}, "value": [0, "abc"]}]},
    {"resultType": "vector", "result": [{"metric": {}}]},
    {"resultType": "vector", "result": [{"metric": {}, "value": [0, None]}]},
    {"resultType": "scalar", "result": "5"},
])
def test_an_answer_that_is_not_a_sample_value_is_a_prometheus_error(data: dict[str, Any]) -> None:
    """What a broken Prometheus-compatible backend or proxy answers is named, never a raw Python error."""
    import http.server
    import threading

    body = json.dumps({"status": "success", "data": data}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(promote.PrometheusError, match=r"^query `x`: Prometheus at .+ answered a \w+ that is not "
                                                          r"a sample value: "):
            promote.query_value(url, "x", T0)
    finally:
        server.shutdown()
        server.server_close()
