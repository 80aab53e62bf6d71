"""Move a rollout on: judge the candidate on live metrics and commit the next step, the promotion or the rollback.

``python -m llmops_compiler.runtime.promote --repo-url URL --branch B --policy NAME --environment ENV
[--rollback --reason TEXT] [--propose-version N --reason TEXT] [--git-token-env VAR] [--git-username NAME]
[--mode push|pullRequest --forge-api URL --forge-repository OWNER/NAME --forge-token-env VAR]
[--author-name N --author-email E] [--now ISO8601] [--max-push-attempts 5] [--workdir DIR]``

The workflow passes only what to act on; everything else comes from the specs in a fresh clone of the GitOps
repository: the RolloutPolicy as the environment sees it, its Model (``registeredModel``, ``serving``'s
aliases), the Project (Prometheus URL, metric names, MLflow URI) and the environment's namespace. The
environment's RolloutState says where the rollout stands. One run:

1. decides, by :mod:`llmops_compiler.rollout`'s rules: with ``--propose-version N`` a new candidate at step 0
   (the version must exist in MLflow); with ``--rollback`` back to stable; otherwise one analysis of the
   candidate over ``analysis.interval``, ending at ``--now`` (default: the clock);
2. edits the state file, compiles the clone and commits both with a message that says what happened and why
   (metric values included), then pushes (``--mode push``) or opens a pull request (``--mode pullRequest``);
   a rejected push is retried from a fresh read of the branch (``--max-push-attempts``) by
   :func:`llmops_compiler.gitops.publish`;
3. carries the state into MLflow's aliases (below), on every run, so that a promotion committed by a person
   (``llmops rollout promote``) reaches MLflow on the next run.

Analysis (the metric contract; ``{sel}`` is ``model="<Model>",version="<candidate>",namespace="<namespace>"``,
``I`` the interval):

* requests: ``sum(increase(<requestsTotal>{sel}[I]))``, compared with ``analysis.minimumRequests``;
* ``maxErrorRatio``: ``(sum(increase(<requestsTotal>{sel,code=~"5.."}[I])) or vector(0))`` divided by the
  requests: the candidate's share of server errors (a client's bad request, 4xx, or load shed with 429 says
  nothing about the version, and a hostile client could send them on purpose to fail a healthy candidate);
* ``maxLatencyP95``: ``histogram_quantile(0.95, sum by (le) (rate(<requestDurationBucket>{sel}[I])))``;
* each ``analysis.metrics`` query with ``{{model}}``, ``{{version}}``, ``{{track}}`` (``candidate``),
  ``{{namespace}}`` and ``{{interval}}`` filled in; it must return one number.

Queries go to ``<prometheus.url>/api/v1/query`` with ``time=--now``. An empty result is "no data" (an
inconclusive run, never a pass); Prometheus unreachable or a query error changes nothing and exits 3.

MLflow (``MLFLOW_TRACKING_URI`` from the environment, else the Project's ``mlflow.trackingUri``): registered
models and aliases are shared by every environment, so each environment gets its own pair,
``<stableAlias>-<environment>`` and ``<candidateAlias>-<environment>``, set to the state's stable and in-flight
candidate versions (the candidate alias removed when none is in flight); the Model's plain ``stableAlias`` and
``candidateAlias`` follow the Project's last environment (the one production runs in, by the order
environments are listed). A stable alias is never removed. A promotion thus moves ``stable`` to the candidate
and removes ``candidate``; a rollback removes ``candidate``. In the pull-request mode MLflow follows the
watched branch, i.e. only what has been merged.

Exit codes: 0 done (also "no change" and a requested ``--rollback``); 1 the analysis rolled the candidate back
(a failed gate); 2 bad arguments, specs that do not compile, an unknown policy or environment, a refused
transition, a version MLflow does not have; 3 Prometheus, git, the forge or MLflow failed, or every push was
rejected. One line on stderr, never a traceback. The state is committed before MLflow is touched: when MLflow
fails after a push, the next run completes it.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from llmops_compiler import gitops, rollout
from llmops_compiler.runtime._common import ArgParser, RuntimeStepError, UsageError, run_step

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from llmops_compiler.resolve import EnvironmentView, ResolvedSpec
    from llmops_compiler.specs import ModelSpec, ProjectSpec, RolloutPolicySpec
    from llmops_compiler.specs.rollout import EnvironmentState

STEP = "promote"
EXIT_ROLLED_BACK = 1
PROMETHEUS_TIMEOUT_S = 30
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
PR_BRANCH_PREFIX = "llmops/rollout/"


@dataclass
class PromoteConfig:
    """The command line, parsed."""

    repo_url: str
    branch: str
    policy: str
    environment: str
    now: datetime
    rollback: bool = False
    propose_version: int | None = None
    reason: str | None = None
    git_token_env: str | None = None
    git_username: str = gitops.DEFAULT_USERNAME
    mode: str = "push"
    forge_api: str | None = None
    forge_repository: str | None = None
    forge_token_env: str | None = None
    author: gitops.Author = field(default_factory=gitops.Author)
    max_push_attempts: int = 5
    workdir: str | None = None


@dataclass(frozen=True)
class Context:
    """What one environment's rollout of one policy is, read from a clone."""

    clone: Path
    view: EnvironmentView
    policy: ResolvedSpec[RolloutPolicySpec]
    model: ResolvedSpec[ModelSpec]
    project: ProjectSpec
    state: EnvironmentState
    state_file: Path
    policy_file: Path


# --- reading the clone -----------------------------------------------------------------------------------


def read_context(clone: Path, policy_name: str, environment: str) -> Context:
    """Resolve ``clone/specs`` and pick the policy, its Model and the environment. Raises UsageError."""
    from llmops_compiler.api import resolve_specs

    specs_dir = clone / "specs"
    graph, problems = resolve_specs(specs_dir)
    if graph is None:
        errors = [problem for problem in problems if problem.severity == "error"] or problems
        first = errors[0] if errors else None
        where = f"{first.position}: {first.message}" if first else f"{specs_dir.name}/ not found"
        raise UsageError(f"the specs of the repository do not compile ({len(errors)} error(s)); first: {where}")
    views = {view.name: view for view in graph.environments}
    if environment not in views:
        raise UsageError(f"environment `{environment}` is not in the Project; it has {', '.join(views)}")
    view = views[environment]
    policy = view.get("RolloutPolicy", policy_name)
    if policy is None:
        known = ", ".join(spec.name for spec in view.rollout_policies()) or "none"
        raise UsageError(f"RolloutPolicy `{policy_name}` is not in the specs (policies: {known})")
    model = view.get("Model", policy.spec.model)
    if model is None or model.spec.serving is None:
        raise UsageError(f"RolloutPolicy `{policy_name}` rolls out Model `{policy.spec.model}`, which has no serving")
    state_file, policy_file = rollout.state_file_for(specs_dir, graph, policy_name)
    return Context(clone, view, policy, model, view.project.spec, view.rollout_state(policy_name), state_file,
                   policy_file)


# --- Prometheus --------------------------------------------------------------------------------------------


class PrometheusError(Exception):
    """Prometheus could not answer a query (unreachable, an error status, a result that is not one number)."""


def query_value(prometheus_url: str, promql: str, at: datetime) -> float | None:
    """The one number ``promql`` evaluates to at ``at`` (``GET /api/v1/query``); None for an empty result or NaN.

    Raises PrometheusError when Prometheus is unreachable, answers an error, or returns several series."""
    url = f"{prometheus_url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode(
        {"query": promql, "time": f"{at.timestamp():.3f}"})
    try:
        with urllib.request.urlopen(url, timeout=PROMETHEUS_TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            payload = json.loads(body)
            detail = f"{payload.get('errorType', 'error')}: {payload.get('error', '')}"
        except (json.JSONDecodeError, AttributeError):
            detail = f"HTTP {exc.code}"
        raise PrometheusError(f"query `{promql}` failed: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PrometheusError(f"Prometheus at {prometheus_url} is unreachable: {reason}") from None
    try:
        payload = json.loads(body)
        data = payload["data"]
        result_type, result = data["resultType"], data["result"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise PrometheusError(f"Prometheus at {prometheus_url} answered something that is not its API") from None
    if payload.get("status") != "success":
        raise PrometheusError(f"query `{promql}` failed: {payload.get('error', payload.get('status'))}")
    try:
        if result_type == "scalar":
            raw = result[1]
        elif result_type == "vector":
            if not result:
                return None
            if len(result) > 1:
                raise PrometheusError(f"query `{promql}` returned {len(result)} series; an analysis query must "
                                      "return one number (aggregate it, e.g. with sum)")
            raw = result[0]["value"][1]
        else:
            raise PrometheusError(f"query `{promql}` returned a {result_type}; it must return one number")
        if not isinstance(raw, str):  # the API writes sample values as strings ("0.25", "NaN", "+Inf")
            raise TypeError(raw)
        value = float(raw)
    except (KeyError, IndexError, TypeError, ValueError):
        shown = json.dumps(result)[:200]
        raise PrometheusError(f"query `{promql}`: Prometheus at {prometheus_url} answered a {result_type} "
                              f"that is not a sample value: {shown}") from None
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class AnalysisQuery:
    """One query of an analysis and the bound its value is judged by."""

    name: str
    query: str
    max: float | None = None
    min: float | None = None
    unit: str = ""


def analysis_queries(context: Context, version: int) -> tuple[str, list[AnalysisQuery]]:
    """(the candidate's request-count query, the judged queries) for candidate ``version`` (see the module
    docstring for the formulas)."""
    names = context.project.metrics
    analysis = context.policy.spec.analysis
    interval = analysis.interval
    selector = (f'model="{context.policy.spec.model}",version="{version}",'
                f'namespace="{context.view.namespace}"')
    requests = f"sum(increase({names.requests_total}{{{selector}}}[{interval}]))"
    queries: list[AnalysisQuery] = []
    if analysis.max_error_ratio is not None:
        errors = f'sum(increase({names.requests_total}{{{selector},code=~"5.."}}[{interval}]))'
        queries.append(AnalysisQuery("error ratio", f"({errors} or vector(0)) / {requests}", analysis.max_error_ratio))
    if analysis.max_latency_p95 is not None:
        queries.append(AnalysisQuery("p95 latency", f"histogram_quantile(0.95, sum by (le) (rate("
                                     f"{names.request_duration_bucket}{{{selector}}}[{interval}])))",
                                     analysis.max_latency_p95, unit="s"))
    values = {"model": context.policy.spec.model, "version": str(version), "track": "candidate",
              "namespace": context.view.namespace, "interval": interval}
    for metric in analysis.metrics:
        query = rollout.fill_analysis_query(metric.query, values)
        queries.append(AnalysisQuery(metric.name, query, metric.max, metric.min))
    return requests, queries


def analyse(context: Context, version: int, now: datetime) -> rollout.AnalysisResult:
    """Query every metric of the candidate at ``now``; an AnalysisResult with ``error`` when Prometheus fails."""
    prometheus_url = context.project.prometheus.url
    requests_query, queries = analysis_queries(context, version)
    try:
        requests = query_value(prometheus_url, requests_query, now)
        if requests is not None and not (math.isfinite(requests) and requests >= 0):
            raise PrometheusError(f"query `{requests_query}` answered {requests} requests, not a count")
        metrics = [rollout.MetricResult(query.name, query_value(prometheus_url, query.query, now), query.max,
                                        query.min, query.unit) for query in queries]
    except PrometheusError as exc:
        return rollout.AnalysisResult(error=str(exc))
    return rollout.AnalysisResult(metrics, requests)


# --- MLflow ----------------------------------------------------------------------------------------------------


def alias_targets(context: Context, state: EnvironmentState) -> dict[str, int | None]:
    """Alias → version the state implies (None: remove the alias); see the module docstring. A stable alias
    whose environment has no stable version yet is left alone (absent here)."""
    serving = context.model.spec.serving
    assert serving is not None
    in_flight = state.candidate if state.status in rollout.IN_FLIGHT else None
    environment = context.view.name
    targets: dict[str, int | None] = {f"{serving.candidate_alias}-{environment}": in_flight}
    if state.stable is not None:
        targets[f"{serving.stable_alias}-{environment}"] = state.stable
    if environment == context.project.environments[-1].name:
        targets[serving.candidate_alias] = in_flight
        if state.stable is not None:
            targets[serving.stable_alias] = state.stable
    return targets


def tracking_uri(context: Context) -> str:
    import os

    return os.environ.get(TRACKING_URI_ENV) or context.project.mlflow.tracking_uri


def _client(context: Context) -> MlflowClient:
    from llmops_compiler.runtime._common import mlflow_client

    return mlflow_client(tracking_uri(context))


def require_version(context: Context, version: int) -> None:
    """Raise UsageError when the registered model has no ``version``, RuntimeStepError when MLflow fails."""
    from mlflow.exceptions import MlflowException

    name = context.model.spec.registered_model
    try:
        _client(context).get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise UsageError(f"registered model `{name}` has no version {version} in MLflow") from None
        raise RuntimeStepError(f"MLflow at {tracking_uri(context)} failed: {exc.message}") from None


def reconcile_aliases(context: Context, state: EnvironmentState) -> list[str]:
    """Make MLflow's aliases of the Model's registered model say what ``state`` says; the changes made, in words.

    Raises RuntimeStepError when MLflow fails (the state is already committed; the next run retries)."""
    from mlflow.exceptions import MlflowException

    targets = alias_targets(context, state)
    name = context.model.spec.registered_model
    if not any(version is not None for version in targets.values()):
        return []  # nothing deployed and no candidate: nothing to say, even about a model not registered yet
    changes: list[str] = []
    try:
        client = _client(context)
        current = dict(client.get_registered_model(name).aliases or {})
        for alias, version in targets.items():
            if version is None and alias in current:
                client.delete_registered_model_alias(name, alias)
                changes.append(f"removed {alias} (was v{current[alias]})")
            elif version is not None and str(current.get(alias)) != str(version):
                client.set_registered_model_alias(name, alias, str(version))
                changes.append(f"{alias} → v{version}")
    except MlflowException as exc:
        raise RuntimeStepError(f"the state is committed, but updating MLflow's aliases of `{name}` failed "
                               f"({exc.message}); the next run retries") from None
    return changes


# --- one run ---------------------------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """What the last edit decided (an edit runs again after a rejected push)."""

    context: Context | None = None
    decision: rollout.Decision | None = None
    analysis: rollout.AnalysisResult | None = None
    requested: bool = False
    analyses: dict[int, rollout.AnalysisResult] = field(default_factory=dict)


def decide(config: PromoteConfig, context: Context, record: RunRecord) -> rollout.Decision:
    """The decision for this run; raises UsageError for a refused transition, RuntimeStepError when the
    analysis could not run."""
    state = context.state
    reason = config.reason or "no reason given"
    try:
        if config.propose_version is not None:
            record.requested = True
            if state.candidate != config.propose_version:
                require_version(context, config.propose_version)
            return rollout.propose(state, config.propose_version, reason, config.now)
        if config.rollback:
            record.requested = True
            if state.status not in rollout.IN_FLIGHT:
                return rollout.Decision("none", state, state, "no change: no candidate in flight to roll back")
            assert state.candidate is not None
            return rollout.rollback(state, reason, config.now)
    except rollout.TransitionRefused as exc:
        raise UsageError(f"refused: {exc}") from None
    analysis: rollout.AnalysisResult | None = None
    if state.status == "progressing" and state.candidate is not None and rollout.measures_candidate(
            context.policy.spec, state.step):
        analysis = record.analyses.get(state.candidate)  # measured once per run, whatever the retries
        if analysis is None:
            analysis = record.analyses[state.candidate] = analyse(context, state.candidate, config.now)
        if analysis.error is not None:
            raise RuntimeStepError(f"no change: {analysis.error}")
    record.analysis = analysis
    return rollout.decide(context.policy.spec, state, analysis, config.now)


def commit_message(config: PromoteConfig, context: Context, decision: rollout.Decision) -> str:
    """Subject: what happened (``dev: support-llm canary 10% → 25%``); body: why, with the metric values."""
    policy = context.policy
    subject = rollout.describe_decision(context.view.name, policy.name, policy.spec, decision)
    after = decision.after
    lines = [subject, ""]
    if decision.reason not in subject:
        lines += [decision.reason, ""]
    lines += [
        f"RolloutPolicy {policy.name} ({policy.spec.strategy}) in environment {context.view.name} "
        f"(namespace {context.view.namespace}); Model {policy.spec.model} "
        f"(registered model {context.model.spec.registered_model}).",
        f"State: stable {_v(after.stable)}, candidate {_v(after.candidate)}, step {after.step}, {after.status}, "
        f"failed analyses {after.failed_analyses}, inconclusive analyses {after.inconclusive_analyses}.",
        f"Decided by llmops_compiler.runtime.promote at {rollout.format_time(config.now)}.",
    ]
    return "\n".join(lines)


def _v(version: int | None) -> str:
    return f"v{version}" if version is not None else "none"


def edit_function(config: PromoteConfig, record: RunRecord) -> gitops.Edit:
    """The edit :func:`gitops.publish` runs (again after a rejected push): read, decide, write the state."""

    def edit(clone: Path) -> gitops.Change | None:
        context = read_context(clone, config.policy, config.environment)
        decision = decide(config, context, record)
        record.context, record.decision = context, decision
        if not decision.changed:
            return None
        rollout.write_environment_state(context.state_file, config.policy, config.environment, decision.after,
                                        header_from=context.policy_file)
        return gitops.Change(commit_message(config, context, decision),
                             [context.state_file.relative_to(clone).as_posix()],
                             rollout.state_identity(config.environment, decision.after))

    return edit


def run(config: PromoteConfig) -> int:
    """Clone, decide, publish, reconcile MLflow; the exit code (see the module docstring)."""
    pull_request: gitops.PullRequestTarget | None = None
    if config.mode == "pullRequest":
        assert config.forge_api and config.forge_repository and config.forge_token_env
        pull_request = gitops.PullRequestTarget(config.forge_api, config.forge_repository, config.forge_token_env,
                                                f"{PR_BRANCH_PREFIX}{config.policy}-{config.environment}")
    remote = gitops.Remote(config.repo_url, config.branch, config.git_token_env, config.git_username)
    if config.workdir:
        Path(config.workdir).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="llmops-promote-", dir=config.workdir))
    record = RunRecord()
    try:
        try:
            with gitops.Repository.clone(remote, scratch / "repo") as repository:
                result = gitops.publish(repository, edit_function(config, record), config.author,
                                        config.max_push_attempts, pull_request)
        except gitops.GitError as exc:
            raise RuntimeStepError(str(exc)) from None
        except rollout.StateFileError as exc:
            raise UsageError(f"the state file cannot be edited: {exc}") from None
        context, decision = record.context, record.decision
        assert context is not None and decision is not None
        line = rollout.describe_decision(context.view.name, context.policy.name, context.policy.spec, decision)
        # MLflow follows the watched branch: what was pushed, or (pull request, no change) what is there.
        deployed = decision.after if result.outcome == "pushed" else decision.before
        aliases = reconcile_aliases(context, deployed)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if result.outcome in ("proposed", "already-proposed"):
        line += f" (proposed in {result.pull_request_url or 'a pull request'})"
    elif result.outcome == "pushed" and result.attempts > 1:
        line += f" (pushed on attempt {result.attempts})"
    print(line)
    if aliases:
        print(f"{STEP}: MLflow aliases of {context.model.spec.registered_model}: {', '.join(aliases)}",
              file=sys.stderr)
    if decision.action == "rollback" and not record.requested:
        return EXIT_ROLLED_BACK
    return 0


# --- command line ----------------------------------------------------------------------------------------


def build_parser() -> ArgParser:
    p = ArgParser(prog=f"python -m llmops_compiler.runtime.{STEP}", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--repo-url", required=True, help="clone URL of the GitOps repository (the Project's repo.url)")
    p.add_argument("--branch", required=True, help="the branch ArgoCD watches")
    p.add_argument("--policy", required=True, help="RolloutPolicy name")
    p.add_argument("--environment", required=True, help="environment name")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--rollback", action="store_true", help="roll the candidate in flight back (a Monitor)")
    action.add_argument("--propose-version", type=int, metavar="N", help="start rolling out registered version N")
    p.add_argument("--reason", help="why (with --rollback or --propose-version); recorded in the state")
    p.add_argument("--git-token-env", metavar="VAR", help="environment variable holding the https token")
    p.add_argument("--git-username", default=gitops.DEFAULT_USERNAME, help="user name sent with the token")
    p.add_argument("--mode", choices=("push", "pullRequest"), default="push")
    p.add_argument("--forge-api", metavar="URL", help="forge REST API base, e.g. https://api.github.com")
    p.add_argument("--forge-repository", metavar="OWNER/NAME")
    p.add_argument("--forge-token-env", metavar="VAR", help="environment variable holding the forge API token")
    p.add_argument("--author-name", default=gitops.Author.name)
    p.add_argument("--author-email", default=gitops.Author.email)
    p.add_argument("--now", help="the time of this run, ISO 8601 with a zone (default: the clock)")
    p.add_argument("--max-push-attempts", type=int, default=5)
    p.add_argument("--workdir", help="folder for the temporary clone (default: the system's temp folder)")
    return p


def config_from_args(argv: list[str] | None) -> PromoteConfig:
    """Parse and check the command line; raises UsageError."""
    args = build_parser().parse_args(argv)
    if args.mode == "pullRequest":
        missing = [flag for flag, value in (("--forge-api", args.forge_api), ("--forge-repository",
                   args.forge_repository), ("--forge-token-env", args.forge_token_env)) if not value]
        if missing:
            raise UsageError(f"--mode pullRequest needs {', '.join(missing)}")
    if args.max_push_attempts < 1:
        raise UsageError("--max-push-attempts must be at least 1")
    if (args.rollback or args.propose_version is not None) and not (args.reason or "").strip():
        raise UsageError("--rollback and --propose-version need --reason (it is recorded in the state)")
    if args.propose_version is not None and args.propose_version < 1:
        raise UsageError("--propose-version must be a registered-model version (1 or more)")
    try:
        now = rollout.parse_time(args.now) if args.now else datetime.now(UTC).replace(microsecond=0)
    except ValueError as exc:
        raise UsageError(f"--now: {exc}") from None
    return PromoteConfig(
        repo_url=args.repo_url, branch=args.branch, policy=args.policy, environment=args.environment, now=now,
        rollback=args.rollback, propose_version=args.propose_version, reason=args.reason,
        git_token_env=args.git_token_env, git_username=args.git_username, mode=args.mode,
        forge_api=args.forge_api, forge_repository=args.forge_repository, forge_token_env=args.forge_token_env,
        author=gitops.Author(args.author_name, args.author_email), max_push_attempts=args.max_push_attempts,
        workdir=args.workdir,
    )


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        from llmops_compiler.diagnostics import CompileError

        config = config_from_args(argv)
        try:
            return run(config)
        except CompileError as exc:
            first = exc.diagnostics[0] if exc.diagnostics else None
            where = f"{first.position}: {first.message}" if first else "unknown error"
            raise UsageError(f"the edited specs do not compile: {where}") from None

    return run_step(STEP, body)


__all__ = ["PromoteConfig", "analyse", "analysis_queries", "main", "query_value", "run"]

if __name__ == "__main__":
    raise SystemExit(main())
