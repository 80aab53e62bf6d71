"""Rollouts as a state machine: where an environment stands, what happens next and why, in words people read.

Three parts, all pure except the state file I/O at the end:

* :func:`decide` turns the policy, the environment's state, one analysis (metric values from Prometheus) and
  the time into the next state and a one-line reason; :func:`propose`, :func:`rollback`, :func:`abort`,
  :func:`pause`, :func:`resume` and :func:`promote` are the other transitions. Each returns a
  :class:`Decision`; a transition that makes no sense raises :class:`TransitionRefused`.
* :func:`describe_change`, :func:`describe_decision` and :func:`describe_state` are the sentences the promote
  step's commits, ``llmops diff`` and ``llmops rollout status`` print (``prod: support-llm canary 10% → 25%``).
* :func:`write_environment_state` edits a RolloutState file with ruamel.yaml's round-trip mode, so comments,
  key order and everything else in the file survive; it creates the file beside the policy when there is none.

The rules (the README's rollout table says the same):

========================  ==================================================================================
state / input             next
========================  ==================================================================================
not ``progressing``       no change: ``paused`` is a person's hold, ``idle``/``promoted``/``rolledBack`` have
                          no candidate
step without candidate    (``canary``/``blueGreen`` weight 0) nothing to measure: advances once its ``pause``
traffic by design         has passed since the last transition
analysis error            no change (Prometheus unreachable, a query failed); nothing is counted
failed                    a metric with data breaches its bound (and the candidate had ``minimumRequests``):
                          ``failedAnalyses`` + 1; at ``failureLimit`` roll back
inconclusive              fewer than ``minimumRequests`` candidate requests, or a metric without data:
                          ``inconclusiveAnalyses`` + 1; at ``inconclusiveLimit`` roll back; never a pass
passed                    both counters reset; once the step has lasted ``max(pause, analysis.interval)`` since
                          the last transition, advance one step, or promote after the last step
========================  ==================================================================================

The counters count runs since the last pass (a failed and an inconclusive run do not reset each other). A
step is judged only after it has lasted one whole analysis interval, so its verdict rests on its own traffic.
Holds change only the counters; ``lastTransition`` records transitions (step, status or versions), and the
pause of a step counts from it (a ``resume`` restarts the pause). A state without ``lastTransition`` counts as
having waited long enough.
"""

from __future__ import annotations

import io
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .conventions import API_VERSION
from .specs.common import duration_seconds
from .specs.rollout import EnvironmentState, RolloutPolicySpec, RolloutStateSpec, RolloutStep

if TYPE_CHECKING:
    from .resolve import ProjectGraph

Action = Literal["none", "hold", "advance", "promote", "rollback", "propose", "pause", "resume", "abort"]
IN_FLIGHT = ("progressing", "paused")
STATE_KIND = "RolloutState"
STATE_SUFFIX = ".state.yaml"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_REASON = 4096  # `Transition.reason` holds at most this many characters


ANALYSIS_PLACEHOLDERS = ("model", "version", "track", "namespace", "interval")
"""What an analysis metric's query may hold as ``{{name}}``: filled in for the candidate by ``promote``."""
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def fill_analysis_query(query: str, values: Mapping[str, str]) -> str:
    """``query`` with each ``{{name}}`` of :data:`ANALYSIS_PLACEHOLDERS` replaced by ``values[name]`` (spaces
    inside the braces allowed); other text is left as it is."""
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), query)


def analysis_query_problem(query: str, interval: str) -> str | None:
    """Why Prometheus would refuse ``query`` (an analysis metric's PromQL), or None: a ``{{...}}`` that is not
    one of :data:`ANALYSIS_PLACEHOLDERS`, or, with sample values filled in (``interval`` for ``{{interval}}``),
    a PromQL syntax error as `promql-parser` (a port of Prometheus's own parser) reports it."""
    import promql_parser

    unknown = sorted({match.group(1) for match in _PLACEHOLDER.finditer(query)} - set(ANALYSIS_PLACEHOLDERS))
    if unknown:
        return (f"unknown placeholder `{{{{{unknown[0]}}}}}`; the query may use "
                + ", ".join(f"`{{{{{name}}}}}`" for name in ANALYSIS_PLACEHOLDERS))
    filled = fill_analysis_query(query, {"model": "model", "version": "1", "track": "candidate",
                                         "namespace": "namespace", "interval": interval})
    try:
        promql_parser.parse(filled)
    except ValueError as error:
        return f"not valid PromQL: {error}"
    return None


class TransitionRefused(ValueError):
    """A transition that does not apply to the state (resume what is not paused, promote nothing...)."""


class StateFileError(ValueError):
    """A RolloutState file that cannot be read or edited (not YAML, no such document, wrong shape)."""


# --- time -------------------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """``moment`` as the state file writes times: UTC, whole seconds, ``YYYY-MM-DDTHH:MM:SSZ``.

    Raises ValueError for a naive datetime (its zone would be a guess)."""
    if moment.tzinfo is None:
        raise ValueError("a time without a zone is ambiguous; give a UTC time")
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A time as the state file or ``--now`` writes it (ISO 8601; ``Z`` or an offset), as an aware UTC datetime.

    Raises ValueError when ``text`` is not such a time or has no zone."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"`{text}` has no time zone: write it in UTC, such as `2026-11-29T12:00:00Z`")
    return moment.astimezone(UTC)


# --- analysis results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricResult:
    """One analysis metric of the candidate: its value over the interval (None: no data) and its bound."""

    name: str
    """As written in reasons: ``error ratio``, ``p95 latency`` or the policy's metric name."""
    value: float | None
    max: float | None = None
    min: float | None = None
    unit: str = ""
    """Appended to numbers in reasons (``s`` for latency)."""

    @property
    def failed(self) -> bool:
        """The value breaches a bound (never for a missing value)."""
        if self.value is None:
            return False
        return (self.max is not None and self.value > self.max) or (self.min is not None and self.value < self.min)

    def words(self) -> str:
        """``error ratio 0.034 > 0.01``, ``p95 latency 1.1s <= 2.5s``, ``server-errors: no data``."""
        if self.value is None:
            return f"{self.name}: no data"
        shown = f"{format_number(self.value)}{self.unit}"
        if self.max is not None and (self.value > self.max or self.min is None):
            sign = ">" if self.value > self.max else "<="
            return f"{self.name} {shown} {sign} {format_number(self.max)}{self.unit}"
        if self.min is not None:
            sign = "<" if self.value < self.min else ">="
            return f"{self.name} {shown} {sign} {format_number(self.min)}{self.unit}"
        return f"{self.name} {shown}"


@dataclass(frozen=True)
class AnalysisResult:
    """One analysis run of the candidate over ``analysis.interval``.

    ``requests`` is the candidate's request count over the interval (None when Prometheus has no series: no
    requests at all); ``error`` says why the analysis could not run (Prometheus unreachable, a query failed),
    in which case the metrics mean nothing."""

    metrics: Sequence[MetricResult] = ()
    requests: float | None = None
    error: str | None = None


Verdict = Literal["passed", "failed", "inconclusive"]


def judge(analysis: AnalysisResult, minimum_requests: int) -> tuple[Verdict, str]:
    """The verdict of one analysis and its values in words, the deciding ones first.

    Fewer than ``minimum_requests`` candidate requests is inconclusive whatever the metrics say (too few to
    judge either way); otherwise a metric breaching its bound fails the run, and a metric without data makes
    it inconclusive. Raises ValueError for an analysis that carries an ``error``."""
    if analysis.error is not None:
        raise ValueError(f"the analysis did not run: {analysis.error}")
    requests = analysis.requests or 0.0
    metric_words = [metric.words() for metric in analysis.metrics]
    request_words = f"{format_number(round(requests))} requests"
    if requests < minimum_requests:
        return "inconclusive", ", ".join([f"{request_words} < {minimum_requests} minimum", *metric_words])
    failing = [metric.words() for metric in analysis.metrics if metric.failed]
    if failing:
        rest = [metric.words() for metric in analysis.metrics if not metric.failed]
        return "failed", ", ".join([*failing, *rest, request_words])
    missing = [metric.words() for metric in analysis.metrics if metric.value is None]
    if missing:
        rest = [metric.words() for metric in analysis.metrics if metric.value is not None]
        return "inconclusive", ", ".join([*missing, *rest, request_words])
    return "passed", ", ".join([*metric_words, request_words])


def format_number(value: float) -> str:
    """A metric value as reasons show it: whole numbers plainly, others to 4 significant digits."""
    if math.isinf(value) or math.isnan(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


# --- decisions ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What a transition did: the state before and after, why (one line, with the metric values), and which
    kind of transition it was. ``action == "none"`` and ``after is before`` when nothing changes."""

    action: Action
    before: EnvironmentState
    after: EnvironmentState
    reason: str
    verdict: Verdict | None = None
    """The analysis verdict when an analysis was judged."""

    @property
    def changed(self) -> bool:
        """Whether the state file needs a new commit."""
        return self.after != self.before


def _state(stable: int | None, candidate: int | None = None, step: int = 0, status: str = "idle",
           failed: int = 0, inconclusive: int = 0, reason: str | None = None, time: str | None = None,
           keep: EnvironmentState | None = None) -> EnvironmentState:
    """A validated state; ``reason``/``time`` set ``lastTransition``, else ``keep``'s is kept."""
    data: dict[str, Any] = {"stable": stable, "candidate": candidate, "step": step, "status": status,
                            "failedAnalyses": failed, "inconclusiveAnalyses": inconclusive}
    if reason is not None and time is not None:
        data["lastTransition"] = {"reason": _one_line(reason), "time": time}
    elif keep is not None and keep.last_transition is not None:
        data["lastTransition"] = keep.last_transition.model_dump(by_alias=True)
    return EnvironmentState.model_validate(data)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def _one_line(text: str) -> str:
    """A reason as the state keeps it: one line without control characters, at most MAX_REASON characters."""
    line = " ".join(_CONTROL.sub(" ", text).split())
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"


def _no_change(state: EnvironmentState, reason: str, verdict: Verdict | None = None) -> Decision:
    return Decision("none", state, state, f"no change: {reason}", verdict)


def policy_steps(policy: RolloutPolicySpec) -> list[RolloutStep]:
    """The steps a candidate walks: the policy's, or for ``abTest``/``shadow`` without steps one step without a
    pause (``canary`` and ``blueGreen`` always have steps: the compiler refuses them without)."""
    if policy.steps:
        return list(policy.steps)
    return [RolloutStep.model_validate({"weight": 100} if policy.strategy in ("canary", "blueGreen") else {})]


def measures_candidate(policy: RolloutPolicySpec, step: int) -> bool:
    """Whether the candidate gets traffic at ``step``: not at weight 0 of a ``canary`` or ``blueGreen`` (nothing
    to measure there); ``abTest`` and ``shadow`` steps are judged on the matched or mirrored traffic."""
    if policy.strategy in ("abTest", "shadow"):
        return True
    return policy_steps(policy)[step].weight > 0


def step_wait(policy: RolloutPolicySpec, step: int) -> timedelta:
    """Least time at ``step`` since the transition into it: its ``pause``, and at least one whole
    ``analysis.interval`` when the step is measured (so the verdict rests on the step's own traffic)."""
    current = policy_steps(policy)[step]
    pause = duration_seconds(current.pause) if current.pause else 0.0
    if measures_candidate(policy, step):
        pause = max(pause, duration_seconds(policy.analysis.interval))
    return timedelta(seconds=pause)


def ready_at(policy: RolloutPolicySpec, state: EnvironmentState) -> datetime | None:
    """When the current step may advance (None: already, as there is no recorded transition)."""
    if state.last_transition is None:
        return None
    return parse_time(state.last_transition.time) + step_wait(policy, state.step)


def decide(policy: RolloutPolicySpec, state: EnvironmentState, analysis: AnalysisResult | None,
           now: datetime) -> Decision:
    """The next state after one analysis run (see the module docstring for the rules).

    ``policy`` as the environment sees it; ``analysis`` may be None only where :func:`measures_candidate` is
    false (ValueError otherwise); ``now`` is an aware datetime. Never promotes on missing or inconclusive data.
    """
    if state.status != "progressing" or state.candidate is None:
        why = {"paused": "paused by a person; resume it to let analysis move it",
               "idle": "no candidate in flight", "promoted": "no candidate in flight (the last one was promoted)",
               "rolledBack": "no candidate in flight (the last one was rolled back)"}
        return _no_change(state, why.get(state.status, "no candidate in flight"))
    steps = policy_steps(policy)
    if state.step >= len(steps):
        raise ValueError(f"step {state.step} does not exist: the policy has {len(steps)} step(s)")
    label = step_label(policy, state.step)
    ready = ready_at(policy, state)
    waited = ready is None or now >= ready
    until = f"holds until {format_time(ready)}" if ready is not None else ""

    if not measures_candidate(policy, state.step):
        if not waited:
            return _no_change(state, f"{label} (no candidate traffic by design) {until}")
        pause = policy_steps(policy)[state.step].pause or "0s"
        return _forward(policy, state, now, f"pause {pause} at {label} passed (no candidate traffic by design)")

    if analysis is None:
        raise ValueError(f"step {state.step} sends the candidate traffic: it needs an analysis")
    if analysis.error is not None:
        return _no_change(state, f"analysis could not run: {analysis.error}")
    limits = policy.analysis
    verdict, values = judge(analysis, limits.minimum_requests)
    time = format_time(now)
    if verdict == "failed":
        failed = state.failed_analyses + 1
        if failed >= limits.failure_limit:
            return _rolled_back(state, f"{values} ({failed} failed analyses in a row at {label})", time, verdict)
        after = _state(state.stable, state.candidate, state.step, "progressing", failed, state.inconclusive_analyses,
                       keep=state)
        return Decision("hold", state, after, f"analysis failed ({failed} of {limits.failure_limit}): {values}",
                        verdict)
    if verdict == "inconclusive":
        inconclusive = state.inconclusive_analyses + 1
        if inconclusive >= limits.inconclusive_limit:
            return _rolled_back(state, f"{values} ({inconclusive} inconclusive analyses in a row at {label})", time,
                                verdict)
        after = _state(state.stable, state.candidate, state.step, "progressing", state.failed_analyses,
                       inconclusive, keep=state)
        return Decision("hold", state, after, f"analysis inconclusive ({inconclusive} of "
                        f"{limits.inconclusive_limit}): {values}", verdict)
    passed = f"analysis passed at {label} ({values})"
    if waited:
        return _forward(policy, state, now, passed, verdict)
    after = _state(state.stable, state.candidate, state.step, "progressing", keep=state)
    if after == state:
        return _no_change(state, f"{passed}; {until}", verdict)
    return Decision("hold", state, after, f"analysis passed ({values}); {until}", verdict)


def _rolled_back(state: EnvironmentState, reason: str, time: str, verdict: Verdict | None = None) -> Decision:
    after = _state(state.stable, status="rolledBack", reason=reason, time=time)
    assert after.last_transition is not None
    return Decision("rollback", state, after, after.last_transition.reason, verdict)


def _forward(policy: RolloutPolicySpec, state: EnvironmentState, now: datetime, why: str,
             verdict: Verdict | None = None) -> Decision:
    """Advance one step, or promote after the last one."""
    assert state.candidate is not None
    time = format_time(now)
    if state.step + 1 >= len(policy_steps(policy)):
        reason = f"v{state.candidate} promoted: {why}"
        return Decision("promote", state, _state(state.candidate, status="promoted", reason=reason, time=time),
                        reason, verdict)
    after = _state(state.stable, state.candidate, state.step + 1, "progressing", reason=why, time=time)
    return Decision("advance", state, after, why, verdict)


# --- the other transitions ----------------------------------------------------------------------------


def propose(state: EnvironmentState, version: int, reason: str, now: datetime) -> Decision:
    """Start rolling out ``version`` at step 0 (status ``progressing``, counters 0).

    Without a candidate in flight any version but the stable one starts (an older one too: that is how a
    person goes back after a bad promotion); proposing the stable version changes nothing (a retrain that
    ``register`` recognised as an existing version). While a candidate is in flight, proposing it again
    changes nothing (a retried workflow step), and a newer version replaces it, back at step 0, only when
    that rollout is ``progressing`` (a retrain forced during a rollout). Refused (:class:`TransitionRefused`)
    while one is in flight: the stable version, a version older than the candidate, and any other version
    while the rollout is ``paused`` (a person holds it: resume or abort it first)."""
    if version < 1:
        raise TransitionRefused(f"v{version} is not a registered-model version (versions start at 1)")
    if version == state.stable and state.candidate is None:
        return _no_change(state, f"v{version} is already the stable version")
    time = format_time(now)
    if state.status in IN_FLIGHT and state.candidate is not None:
        if version == state.candidate:
            return _no_change(state, f"v{version} is already the candidate in flight")
        if version == state.stable:
            raise TransitionRefused(f"v{version} is the stable version; roll candidate v{state.candidate} back to "
                                    "keep only it")
        if state.status == "paused":
            raise TransitionRefused(f"candidate v{state.candidate} is paused by a person; resume or abort it "
                                    f"before proposing v{version}")
        if version < state.candidate:
            raise TransitionRefused(f"v{version} is older than the candidate in flight v{state.candidate}")
        why = _because(f"v{version} replaces candidate v{state.candidate} at step {state.step + 1}", reason)
    else:
        why = _because(f"v{version} proposed", reason)
    return Decision("propose", state, _state(state.stable, version, 0, "progressing", reason=why, time=time), why)


def _because(what: str, reason: str) -> str:
    """``what: reason``, or ``what`` alone when no reason is given. Steps in these words count from 1, as
    ``llmops rollout status`` shows them (the state file's ``step`` counts from 0)."""
    return f"{what}: {reason}" if reason else what


def rollback(state: EnvironmentState, reason: str, now: datetime) -> Decision:
    """Back to the stable version only (status ``rolledBack``), ``reason`` recorded. Refused when no candidate
    is in flight."""
    if state.status not in IN_FLIGHT or state.candidate is None:
        raise TransitionRefused("no candidate in flight to roll back")
    return _rolled_back(state, reason, format_time(now))


def abort(state: EnvironmentState, reason: str, now: datetime) -> Decision:
    """A person's rollback: like :func:`rollback`, the reason prefixed ``aborted:``."""
    decision = rollback(state, _because("aborted", reason), now)
    return Decision("abort", decision.before, decision.after, decision.reason)


def pause(state: EnvironmentState, reason: str, now: datetime) -> Decision:
    """Hold a ``progressing`` rollout where it is: analysis no longer moves it. Refused otherwise."""
    if state.status != "progressing" or state.candidate is None:
        raise TransitionRefused(f"only a progressing rollout can be paused; this one is {state.status}")
    why = _because("paused", reason)
    return Decision("pause", state, _state(state.stable, state.candidate, state.step, "paused",
                                           state.failed_analyses, state.inconclusive_analyses, why,
                                           format_time(now)), why)


def resume(state: EnvironmentState, reason: str, now: datetime) -> Decision:
    """Let analysis move a ``paused`` rollout again; the step's pause counts from now. Refused otherwise."""
    if state.status != "paused" or state.candidate is None:
        raise TransitionRefused(f"only a paused rollout can be resumed; this one is {state.status}")
    why = _because("resumed", reason)
    return Decision("resume", state, _state(state.stable, state.candidate, state.step, "progressing",
                                            state.failed_analyses, state.inconclusive_analyses, why,
                                            format_time(now)), why)


def promote(state: EnvironmentState, reason: str, now: datetime) -> Decision:
    """A person's promotion: the candidate in flight becomes stable at once (status ``promoted``), whatever
    step it is at. Refused when no candidate is in flight."""
    if state.status not in IN_FLIGHT or state.candidate is None:
        raise TransitionRefused("no candidate in flight to promote")
    why = _because(f"v{state.candidate} promoted by hand at step {state.step + 1}", reason)
    return Decision("promote", state, _state(state.candidate, status="promoted", reason=why,
                                             time=format_time(now)), why)


# --- words ----------------------------------------------------------------------------------------------


def step_label(policy: RolloutPolicySpec, step: int) -> str:
    """How a step reads: the candidate's weight for ``canary``/``blueGreen`` (``25%``), else ``step 2 of 3``."""
    steps = policy_steps(policy)
    if policy.strategy in ("canary", "blueGreen") and step < len(steps):
        return f"{steps[step].weight}%"
    return f"step {step + 1} of {len(steps)}"


def _version(version: int | None) -> str:
    return f"v{version}" if version is not None else "none"


def describe_change(environment: str, policy_name: str, policy: RolloutPolicySpec, before: EnvironmentState,
                    after: EnvironmentState) -> str | None:
    """One line saying what a state change does, for commits and ``llmops diff``; None when nothing changes.

    ``prod: support-llm canary 10% → 25%``, ``prod: candidate v7 rolled back: error ratio 0.034 > 0.01 (...)``,
    ``prod: support-llm canary v8 started at 10% (stable v7)``, ``prod: support-llm v8 promoted (was v7)``."""
    if before == after:
        return None
    head = f"{environment}: {policy_name}"
    reason = after.last_transition.reason if after.last_transition else ""
    was_in_flight = before.status in IN_FLIGHT and before.candidate is not None
    if after.status == "rolledBack" and was_in_flight and after.stable == before.stable:
        return f"{environment}: candidate v{before.candidate} rolled back" + (f": {reason}" if reason else "")
    if after.status == "promoted" and (before.status != "promoted" or before.stable != after.stable):
        was = f"was {_version(before.stable)}" if before.stable is not None else "first stable version"
        return f"{head} {_version(after.stable)} promoted ({was})"
    if after.status in IN_FLIGHT and after.candidate is not None:
        where = step_label(policy, after.step)
        if not was_in_flight or before.candidate != after.candidate:
            replaces = f", replacing v{before.candidate}" if was_in_flight else ""
            return (f"{head} {policy.strategy} of v{after.candidate} started at {where} "
                    f"(stable {_version(after.stable)}{replaces})")
        if before.step != after.step:
            return f"{head} {policy.strategy} {step_label(policy, before.step)} → {where}"
        if before.status != after.status:
            verb = "paused" if after.status == "paused" else "resumed"
            return f"{head} v{after.candidate} {verb} at {where}"
        counters = [f"{name} {old} → {new}" for name, old, new in (
            ("failed analyses", before.failed_analyses, after.failed_analyses),
            ("inconclusive analyses", before.inconclusive_analyses, after.inconclusive_analyses)) if old != new]
        if counters:
            return f"{head} v{after.candidate} holds at {where}: {', '.join(counters)}"
    fields = [f"{name} {old} → {new}" for name, old, new in (
        ("stable", _version(before.stable), _version(after.stable)),
        ("candidate", _version(before.candidate), _version(after.candidate)),
        ("status", before.status, after.status), ("step", before.step, after.step)) if old != new]
    return f"{head}: {', '.join(fields) or 'transition recorded'}"


def describe_decision(environment: str, policy_name: str, policy: RolloutPolicySpec, decision: Decision) -> str:
    """One line for a decision: a commit's subject, the promote step's output (holds and no change included)."""
    if decision.action == "hold":
        label = step_label(policy, decision.after.step)
        return f"{environment}: {policy_name} v{decision.after.candidate} holds at {label}: {decision.reason}"
    change = describe_change(environment, policy_name, policy, decision.before, decision.after)
    return change if change is not None else f"{environment}: {policy_name}: {decision.reason}"


def describe_state(environment: str, policy_name: str, policy: RolloutPolicySpec, state: EnvironmentState) -> str:
    """One line for ``llmops rollout status``: where the environment stands, since when and why."""
    head = f"{environment}: {policy_name}"
    since = ""
    if state.last_transition is not None:
        since = f" since {state.last_transition.time}: {state.last_transition.reason}"
    if state.status in IN_FLIGHT and state.candidate is not None:
        steps = policy_steps(policy)
        counters = "".join(f", {count} {name}{'is' if count == 1 else 'es'}" for name, count in (
            ("failed analys", state.failed_analyses), ("inconclusive analys", state.inconclusive_analyses))
            if count)
        label = step_label(policy, state.step)
        where = label if label.startswith("step ") else f"{label} (step {state.step + 1} of {len(steps)})"
        return (f"{head} {policy.strategy} v{state.candidate} at {where}, stable {_version(state.stable)}{counters}: "
                f"{state.status}{since}")
    if state.stable is None and state.status == "idle":
        return f"{head}: idle, nothing deployed"
    status = {"idle": "idle", "promoted": "promoted", "rolledBack": "rolled back"}.get(state.status, state.status)
    return f"{head}: stable {_version(state.stable)}, {status}{since}"


def state_identity(environment: str, state: EnvironmentState) -> str:
    """The state without its reason and time, as one line: two runs that reach the same state agree on it
    (the pull-request mode uses it to see that an open pull request already proposes this state)."""
    return (f"{environment} stable={_version(state.stable)} candidate={_version(state.candidate)} "
            f"step={state.step} status={state.status} failed={state.failed_analyses} "
            f"inconclusive={state.inconclusive_analyses}")


# --- the state file ---------------------------------------------------------------------------------------

# Keys of an environment's entry in the order the example writes them; a key is written only when it says
# something (no `candidate` or `step` without a candidate in flight, no zero counters).
_KEY_ORDER = ("stable", "candidate", "step", "status", "failedAnalyses", "inconclusiveAnalyses", "lastTransition")
_SCHEMA_COMMENT = re.compile(r"^# yaml-language-server: \$schema=\S+$")


def state_file_beside(policy_file: Path) -> Path:
    """Where a new RolloutState goes: ``<policy file stem>.state.yaml`` in the policy's folder."""
    return policy_file.with_name(policy_file.stem + STATE_SUFFIX)


def state_file_for(specs_dir: Path, graph: ProjectGraph, policy_name: str) -> tuple[Path, Path]:
    """(the file holding policy ``policy_name``'s RolloutState, the policy's file): the existing state's file,
    else :func:`state_file_beside` the policy. Paths as ``specs_dir`` is given. Raises KeyError when no
    environment knows the policy."""
    policy_file: Path | None = None
    for view in graph.environments:
        state = view.get(STATE_KIND, policy_name)
        policy = view.get("RolloutPolicy", policy_name)
        if policy is not None:
            policy_file = specs_dir.parent / policy.file
        if state is not None and policy_file is not None:
            return specs_dir.parent / state.file, policy_file
    if policy_file is None:
        raise KeyError(policy_name)
    return state_file_beside(policy_file), policy_file


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments, key order, quoting and flow style survive
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100_000  # a long reason stays on one line
    return yaml


def _is_state(document: Any, policy_name: str) -> bool:
    return (isinstance(document, Mapping) and document.get("kind") == STATE_KIND
            and isinstance(document.get("metadata"), Mapping) and document["metadata"].get("name") == policy_name)


def _load_documents(path: Path) -> list[Any]:
    from ruamel.yaml.error import YAMLError

    try:
        return [document for document in _yaml().load_all(path.read_text(encoding="utf-8"))]
    except (OSError, UnicodeDecodeError, YAMLError) as exc:
        raise StateFileError(f"{path}: {' '.join(str(exc).split())}") from None


def read_state_file(path: Path, policy_name: str) -> RolloutStateSpec:
    """The RolloutState named ``policy_name`` in ``path`` (an empty one when the file or document is missing).

    Raises StateFileError when the file is not YAML or the state does not validate."""
    from pydantic import ValidationError

    if not path.exists():
        return RolloutStateSpec()
    for document in _load_documents(path):
        if _is_state(document, policy_name):
            try:
                return RolloutStateSpec.model_validate(_plain(document.get("spec") or {}))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                raise StateFileError(f"{path}: spec.{where}: {first['msg']}") from None
    return RolloutStateSpec()


def _plain(value: Any) -> Any:
    """ruamel's round-trip values as plain dicts, lists, ints and strings."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def new_state_text(policy_name: str, header_from: Path | None = None) -> str:
    """The text of a new RolloutState file for ``policy_name``, headed like the example: the policy file's
    ``yaml-language-server`` schema line (the same folder, so the same relative path) and what the file is."""
    lines = []
    if header_from is not None and header_from.is_file():
        first = header_from.read_text(encoding="utf-8").split("\n", 1)[0]
        if _SCHEMA_COMMENT.fullmatch(first):
            lines.append(first)
    lines += [
        f"# Machine-written: where each environment's rollout of {policy_name} stands. The promote step and",
        "# `llmops rollout` edit this file (comments and key order are kept); change the policy, not this file.",
        f"apiVersion: {API_VERSION}",
        f"kind: {STATE_KIND}",
        "metadata:",
        f"  name: {policy_name}",
        "spec:",
        "  environments: {}",
    ]
    return "\n".join(lines) + "\n"


def _entry(state: EnvironmentState) -> dict[str, Any]:
    """The keys an environment's entry should have, in order (see ``_KEY_ORDER``)."""
    in_flight = state.status in IN_FLIGHT and state.candidate is not None
    entry: dict[str, Any] = {}
    if state.stable is not None:
        entry["stable"] = state.stable
    if state.candidate is not None:
        entry["candidate"] = state.candidate
    if in_flight or state.step:
        entry["step"] = state.step
    entry["status"] = state.status
    if state.failed_analyses:
        entry["failedAnalyses"] = state.failed_analyses
    if state.inconclusive_analyses:
        entry["inconclusiveAnalyses"] = state.inconclusive_analyses
    if state.last_transition is not None:
        entry["lastTransition"] = {"reason": state.last_transition.reason, "time": state.last_transition.time}
    return entry


def _block_map() -> Any:
    from ruamel.yaml.comments import CommentedMap

    mapping = CommentedMap()
    mapping.fa.set_block_style()
    return mapping


def _update(target: Any, desired: dict[str, Any]) -> None:
    """Make mapping ``target`` hold ``desired`` in place: changed values are replaced where they stand, keys
    that no longer apply are removed, new keys go where ``_KEY_ORDER`` puts them; other keys are untouched."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    for key in [key for key in target if key in _KEY_ORDER and key not in desired]:
        del target[key]
    for key in _KEY_ORDER:
        if key not in desired:
            continue
        value = desired[key]
        if key == "lastTransition":
            existing = target.get(key)
            transition = existing if isinstance(existing, MutableMapping) else _block_map()
            for name in ("reason", "time"):  # double-quoted like the example; a time must stay a string
                if transition.get(name) != value[name]:
                    transition[name] = DoubleQuotedScalarString(value[name])
            value = transition
        if key in target:
            if target[key] is not value and target[key] != value:
                target[key] = value
            continue
        earlier = [index for index, existing in enumerate(target) if existing in _KEY_ORDER
                   and _KEY_ORDER.index(existing) < _KEY_ORDER.index(key)]
        target.insert(earlier[-1] + 1 if earlier else 0, key, value)


def write_environment_state(path: Path, policy_name: str, environment: str, state: EnvironmentState,
                            header_from: Path | None = None) -> bool:
    """Record ``environment``'s ``state`` in the RolloutState ``policy_name`` of ``path``, editing the file in
    place (comments, key order, quoting and the other environments and documents stay as they are).

    Creates the file (:func:`new_state_text`, schema line copied from ``header_from``) or appends the document
    when missing. Writes atomically; returns whether the file changed. Raises StateFileError when the file is
    not YAML or its document has the wrong shape."""
    text = path.read_text(encoding="utf-8") if path.exists() else None
    documents = _load_documents(path) if text is not None else []
    yaml = _yaml()
    if text is None:
        documents = [yaml.load(new_state_text(policy_name, header_from))]
    document = next((candidate for candidate in documents if _is_state(candidate, policy_name)), None)
    if document is None:
        document = yaml.load(new_state_text(policy_name).split("\n", 2)[2])  # no comments inside the file
        documents.append(document)
    spec = document.get("spec")
    if spec is None:
        document["spec"] = spec = _block_map()
    if not isinstance(spec, MutableMapping):
        raise StateFileError(f"{path}: `spec` of RolloutState `{policy_name}` is not a mapping")
    environments = spec.get("environments")
    if environments is None or (isinstance(environments, Mapping) and not environments):
        spec["environments"] = environments = _block_map()
    if not isinstance(environments, MutableMapping):
        raise StateFileError(f"{path}: `spec.environments` of RolloutState `{policy_name}` is not a mapping")
    entry = environments.get(environment)
    if not isinstance(entry, Mapping):
        environments[environment] = entry = _block_map()
    _update(entry, _entry(state))
    out = io.StringIO()
    yaml.dump_all(documents, out)
    new_text = out.getvalue()
    if new_text == text:
        return False
    _write_atomically(path, new_text)
    return True


def record_transition(specs_dir: Path, policy_name: str, environment: str,
                      transition: Callable[[EnvironmentState], Decision],
                      then: Callable[[Decision, Path], None] | None = None,
                      stale_steps: bool = False) -> tuple[Decision, Path]:
    """Apply ``transition`` to ``environment``'s state of policy ``policy_name`` in the specs under ``specs_dir``
    and write the state file when the state changes: what ``llmops rollout pause|resume|promote|abort`` does
    (``lambda state: pause(state, reason, now)``). Returns the decision and the state file (written or not).

    ``then(decision, state_file)`` runs after a change is written (the caller compiles and commits there); when
    it raises, the state file gets its previous bytes back (or goes, when it was new) and the exception
    propagates, so the state never says what the output does not. ``stale_steps``: see
    :func:`.api.resolve_specs` (for ``abort``, which repairs a state on a step the policy no longer has).
    Raises KeyError for an unknown environment or policy, ``CompileError`` when the specs have errors,
    TransitionRefused from the transition, StateFileError from the edit."""
    from .api import resolve_specs
    from .diagnostics import CompileError

    graph, problems = resolve_specs(specs_dir, stale_steps=stale_steps)
    if graph is None:
        raise CompileError(problems)
    view = next((view for view in graph.environments if view.name == environment), None)
    if view is None:
        raise KeyError(environment)
    policy = view.get("RolloutPolicy", policy_name)
    if policy is None:
        raise KeyError(policy_name)
    decision = transition(view.rollout_state(policy_name))
    path, policy_file = state_file_for(specs_dir, graph, policy_name)
    if decision.changed:
        previous = path.read_bytes() if path.exists() else None
        write_environment_state(path, policy_name, environment, decision.after, header_from=policy_file)
        if then is not None:
            try:
                then(decision, path)
            except BaseException:
                if previous is None:
                    path.unlink(missing_ok=True)
                else:
                    _write_atomically(path, previous.decode("utf-8"))
                raise
    return decision, path


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename; the file keeps its mode (a new one gets 0666 less umask,
    as an editor would write it, not the 0600 of a temporary file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        mode = path.stat().st_mode & 0o7777
    else:
        umask = os.umask(0o022)
        os.umask(umask)
        mode = 0o666 & ~umask
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


__all__ = [
    "AnalysisResult", "Decision", "MetricResult", "StateFileError", "TransitionRefused", "abort", "decide",
    "describe_change", "describe_decision", "describe_state", "format_time", "judge", "measures_candidate",
    "new_state_text", "parse_time", "pause", "policy_steps", "promote", "propose", "read_state_file", "ready_at",
    "record_transition", "resume", "rollback", "state_file_beside", "state_file_for", "state_identity",
    "step_label", "step_wait", "write_environment_state",
]
