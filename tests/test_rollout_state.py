"""The rollout state machine, its words and the RolloutState file edits (llmops_compiler.rollout): pure, fast."""

from __future__ import annotations

import difflib
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops_compiler import api, rollout
from llmops_compiler.checks import check_rollout_state
from llmops_compiler.rollout import AnalysisResult, MetricResult
from llmops_compiler.specs.rollout import EnvironmentState, RolloutPolicySpec, RolloutStateSpec

FIXTURE = Path(__file__).parent / "fixtures" / "promote" / "commented.state.yaml"
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
CANARY = RolloutPolicySpec.model_validate({
    "model": "support-llm", "strategy": "canary",
    "steps": [{"weight": 10, "pause": "30m"}, {"weight": 25, "pause": "1h"}, {"weight": 100}],
    "analysis": {"interval": "5m", "maxErrorRatio": 0.01, "minimumRequests": 100, "failureLimit": 2,
                 "inconclusiveLimit": 3},
})
BLUE_GREEN = RolloutPolicySpec.model_validate({
    "model": "support-llm", "strategy": "blueGreen", "steps": [{"weight": 0, "pause": "1h"}, {"weight": 100}]})
AB_TEST = RolloutPolicySpec.model_validate({
    "model": "support-llm", "strategy": "abTest", "match": {"header": {"name": "x-variant", "value": "b"}},
    "steps": [{"pause": "1h"}, {"pause": "2h"}]})


def state(**fields: Any) -> EnvironmentState:
    return EnvironmentState.model_validate(fields)


def in_flight(step: int = 0, since: datetime = T0, **fields: Any) -> EnvironmentState:
    return state(stable=7, candidate=8, step=step, status="progressing",
                 lastTransition={"reason": "set up", "time": rollout.format_time(since)}, **fields)


def analysis(error_ratio: float | None = 0.002, requests: float | None = 900) -> AnalysisResult:
    return AnalysisResult([MetricResult("error ratio", error_ratio, max=0.01)], requests)


PASS, FAIL, NO_TRAFFIC, NO_DATA = analysis(), analysis(0.034), analysis(0.0, 40), analysis(None)


# --- the decision table -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["paused", "idle", "promoted", "rolledBack"])
def test_analysis_moves_only_a_progressing_rollout(status: str) -> None:
    before = state(stable=7, candidate=8, status=status) if status == "paused" else state(stable=7, status=status)
    for result in (PASS, FAIL, NO_TRAFFIC):
        decision = rollout.decide(CANARY, before, result, T0 + timedelta(days=1))
        assert (decision.action, decision.after, decision.changed) == ("none", before, False)
    assert rollout.decide(CANARY, state(stable=7, candidate=8, status="paused"), FAIL, T0).reason == (
        "no change: paused by a person; resume it to let analysis move it")


def test_a_pass_holds_until_the_pause_has_passed_then_advances() -> None:
    before = in_flight(0)
    hold = rollout.decide(CANARY, before, PASS, T0 + timedelta(minutes=29, seconds=59))
    assert (hold.action, hold.changed) == ("none", False)
    assert hold.reason == ("no change: analysis passed at 10% (error ratio 0.002 <= 0.01, 900 requests); holds until "
                           "2026-11-20T08:30:00Z")
    advance = rollout.decide(CANARY, before, PASS, T0 + timedelta(minutes=30))
    assert advance.action == "advance"
    assert advance.after == state(stable=7, candidate=8, step=1, status="progressing", lastTransition={
        "reason": "analysis passed at 10% (error ratio 0.002 <= 0.01, 900 requests)", "time": "2026-11-20T08:30:00Z"})


def test_a_pass_resets_both_counters_even_while_the_step_holds() -> None:
    before = in_flight(0, failedAnalyses=1, inconclusiveAnalyses=2)
    decision = rollout.decide(CANARY, before, PASS, T0 + timedelta(minutes=10))
    assert decision.action == "hold"
    assert (decision.after.failed_analyses, decision.after.inconclusive_analyses) == (0, 0)
    assert decision.after.last_transition == before.last_transition  # a hold is not a transition: the pause runs on


def test_a_pass_at_the_last_step_promotes() -> None:
    decision = rollout.decide(CANARY, in_flight(2), PASS, T0 + timedelta(minutes=5))
    assert decision.action == "promote"
    assert decision.after == state(stable=8, status="promoted", lastTransition={
        "reason": "v8 promoted: analysis passed at 100% (error ratio 0.002 <= 0.01, 900 requests)",
        "time": "2026-11-20T08:05:00Z"})


def test_a_step_is_judged_on_one_whole_interval_of_its_own() -> None:
    # The last step has no pause; one analysis interval (5m) must still pass since the transition into it.
    assert rollout.decide(CANARY, in_flight(2), PASS, T0 + timedelta(minutes=4)).action == "none"
    assert rollout.decide(CANARY, in_flight(2), PASS, T0 + timedelta(minutes=5)).action == "promote"


def test_failures_hold_then_roll_back_at_the_failure_limit() -> None:
    first = rollout.decide(CANARY, in_flight(1), FAIL, T0 + timedelta(hours=2))
    assert (first.action, first.after.failed_analyses, first.after.step) == ("hold", 1, 1)
    assert first.reason == "analysis failed (1 of 2): error ratio 0.034 > 0.01, 900 requests"
    second = rollout.decide(CANARY, first.after, FAIL, T0 + timedelta(hours=2, minutes=5))
    assert second.action == "rollback"
    assert second.after == state(stable=7, status="rolledBack", lastTransition={
        "reason": "error ratio 0.034 > 0.01, 900 requests (2 failed analyses in a row at 25%)",
        "time": "2026-11-20T10:05:00Z"})


def test_too_little_traffic_is_inconclusive_even_with_a_failing_metric_and_never_promotes() -> None:
    before = in_flight(2)
    after = before
    for count in (1, 2):
        decision = rollout.decide(CANARY, after, analysis(0.5, 40), T0 + timedelta(hours=count))
        assert (decision.action, decision.verdict) == ("hold", "inconclusive")
        after = decision.after
        assert (after.inconclusive_analyses, after.failed_analyses, after.status) == (count, 0, "progressing")
    last = rollout.decide(CANARY, after, NO_TRAFFIC, T0 + timedelta(hours=3))
    assert (last.action, last.after.stable, last.after.status) == ("rollback", 7, "rolledBack")
    assert last.reason == ("40 requests < 100 minimum, error ratio 0 <= 0.01 (3 inconclusive analyses in a row at "
                           "100%)")


def test_a_metric_without_data_is_inconclusive_and_a_failing_one_wins_over_it() -> None:
    decision = rollout.decide(CANARY, in_flight(2), NO_DATA, T0 + timedelta(hours=1))
    assert (decision.verdict, decision.reason) == ("inconclusive", "analysis inconclusive (1 of 3): error ratio: no "
                                                                   "data, 900 requests")
    mixed = AnalysisResult([MetricResult("p95 latency", None, max=2.5, unit="s"),
                            MetricResult("error ratio", 0.2, max=0.01)], 900)
    assert rollout.decide(CANARY, in_flight(2), mixed, T0 + timedelta(hours=1)).reason == (
        "analysis failed (1 of 2): error ratio 0.2 > 0.01, p95 latency: no data, 900 requests")
    low = AnalysisResult([MetricResult("quality", 0.4, min=0.7)], 900)
    assert rollout.decide(CANARY, in_flight(2), low, T0 + timedelta(hours=1)).reason == (
        "analysis failed (1 of 2): quality 0.4 < 0.7, 900 requests")


def test_failed_and_inconclusive_runs_do_not_reset_each_other() -> None:
    once = rollout.decide(CANARY, in_flight(1), FAIL, T0 + timedelta(hours=1)).after
    inconclusive = rollout.decide(CANARY, once, NO_TRAFFIC, T0 + timedelta(hours=1, minutes=5)).after
    assert (inconclusive.failed_analyses, inconclusive.inconclusive_analyses) == (1, 1)
    assert rollout.decide(CANARY, inconclusive, FAIL, T0 + timedelta(hours=1, minutes=10)).action == "rollback"


def test_an_analysis_that_could_not_run_changes_nothing() -> None:
    broken = AnalysisResult(error="Prometheus at http://prom:9090 is unreachable: connection refused")
    decision = rollout.decide(CANARY, in_flight(1, failedAnalyses=1), broken, T0 + timedelta(hours=5))
    assert (decision.action, decision.changed) == ("none", False)
    assert decision.reason == "no change: analysis could not run: Prometheus at http://prom:9090 is unreachable: " \
                              "connection refused"


def test_a_step_without_candidate_traffic_advances_on_its_pause_alone() -> None:
    before = in_flight(0)
    assert not rollout.measures_candidate(BLUE_GREEN, 0) and rollout.measures_candidate(BLUE_GREEN, 1)
    assert rollout.decide(BLUE_GREEN, before, None, T0 + timedelta(minutes=59)).reason == (
        "no change: 0% (no candidate traffic by design) holds until 2026-11-20T09:00:00Z")
    decision = rollout.decide(BLUE_GREEN, before, None, T0 + timedelta(hours=1))
    assert (decision.action, decision.after.step) == ("advance", 1)
    assert decision.reason == "pause 1h at 0% passed (no candidate traffic by design)"
    with pytest.raises(ValueError, match="needs an analysis"):
        rollout.decide(BLUE_GREEN, decision.after, None, T0 + timedelta(hours=2))


def test_ab_test_steps_are_judged_on_the_matched_traffic() -> None:
    assert rollout.measures_candidate(AB_TEST, 0)  # steps without a weight still send matched requests
    with pytest.raises(ValueError, match="needs an analysis"):
        rollout.decide(AB_TEST, in_flight(0), None, T0 + timedelta(hours=2))
    decision = rollout.decide(AB_TEST, in_flight(0), PASS, T0 + timedelta(hours=1))
    assert rollout.describe_decision("dev", "support-llm", AB_TEST, decision) == (
        "dev: support-llm abTest step 1 of 2 → step 2 of 2")


def test_a_state_without_a_recorded_transition_has_waited_long_enough() -> None:
    bare = state(stable=7, candidate=8, step=0, status="progressing")
    assert rollout.decide(CANARY, bare, PASS, T0).action == "advance"


# --- the other transitions ---------------------------------------------------------------------------------


def test_propose_starts_at_step_zero_from_any_state_without_a_candidate() -> None:
    for before in (state(), state(stable=7, status="promoted"), state(stable=7, status="rolledBack",
                                                                        failedAnalyses=1)):
        decision = rollout.propose(before, 9, "registered by tune", T0)
        assert decision.after == state(stable=before.stable, candidate=9, step=0, status="progressing",
                                       lastTransition={"reason": "v9 proposed: registered by tune",
                                                       "time": "2026-11-20T08:00:00Z"})


def test_propose_while_a_candidate_is_in_flight() -> None:
    assert rollout.propose(in_flight(1), 8, "retry", T0).action == "none"  # a retried workflow step
    newer = rollout.propose(in_flight(1, failedAnalyses=1), 9, "forced retrain", T0)
    assert (newer.after.candidate, newer.after.step, newer.after.failed_analyses) == (9, 0, 0)
    assert newer.reason == "v9 replaces candidate v8 at step 2: forced retrain"
    with pytest.raises(rollout.TransitionRefused, match="v6 is older than the candidate in flight v8"):
        rollout.propose(in_flight(1), 6, "x", T0)
    with pytest.raises(rollout.TransitionRefused, match="paused by a person; resume or abort it"):
        rollout.propose(state(stable=7, candidate=8, status="paused"), 9, "x", T0)
    assert rollout.propose(state(stable=7, status="promoted"), 7, "x", T0).reason == (
        "no change: v7 is already the stable version")
    older = rollout.propose(state(stable=7, status="promoted"), 5, "v7 misbehaves", T0)  # going back is allowed
    assert older.after.candidate == 5
    with pytest.raises(rollout.TransitionRefused, match="v7 is the stable version; roll candidate v5 back"):
        rollout.propose(older.after, 7, "x", T0)


def test_person_transitions_and_their_refusals() -> None:
    paused = rollout.pause(in_flight(1, failedAnalyses=1), "looking at the dashboards", T0)
    assert (paused.after.status, paused.after.failed_analyses, paused.after.step) == ("paused", 1, 1)
    resumed = rollout.resume(paused.after, "looks fine", T0 + timedelta(hours=3))
    assert resumed.after.status == "progressing"
    # The pause of the step counts again from the resume: a pass an hour after the pause does not advance.
    assert rollout.decide(CANARY, resumed.after, PASS, T0 + timedelta(hours=3, minutes=59)).after.step == 1
    assert rollout.decide(CANARY, resumed.after, PASS, T0 + timedelta(hours=4)).after.step == 2
    promoted = rollout.promote(paused.after, "urgent fix", T0)
    assert promoted.after == state(stable=8, status="promoted", lastTransition={
        "reason": "v8 promoted by hand at step 2: urgent fix", "time": "2026-11-20T08:00:00Z"})
    aborted = rollout.abort(in_flight(0), "wrong adapter", T0)
    assert (aborted.action, aborted.after.status, aborted.after.stable) == ("abort", "rolledBack", 7)
    assert aborted.reason == "aborted: wrong adapter"
    refusals = [
        (rollout.pause, paused.after, "only a progressing rollout can be paused; this one is paused"),
        (rollout.resume, in_flight(0), "only a paused rollout can be resumed; this one is progressing"),
        (rollout.promote, state(stable=7, status="promoted"), "no candidate in flight to promote"),
        (rollout.rollback, state(stable=7, status="idle"), "no candidate in flight to roll back"),
        (rollout.abort, state(stable=7, status="rolledBack"), "no candidate in flight to roll back"),
    ]
    for transition, before, message in refusals:
        with pytest.raises(rollout.TransitionRefused) as refused:
            transition(before, "x", T0)
        assert str(refused.value) == message


def test_times_are_utc_seconds_and_a_time_without_a_zone_is_refused() -> None:
    from datetime import timezone

    moment = datetime(2026, 11, 20, 9, 30, 15, 900, tzinfo=timezone(timedelta(hours=1)))
    assert rollout.format_time(moment) == "2026-11-20T08:30:15Z"
    assert rollout.parse_time("2026-11-20T08:30:15Z") == datetime(2026, 11, 20, 8, 30, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match="has no time zone"):
        rollout.parse_time("2026-11-20T08:30:15")
    with pytest.raises(ValueError):
        rollout.format_time(datetime(2026, 11, 20))


# --- words ---------------------------------------------------------------------------------------------------


def test_the_words_people_read() -> None:
    def words(before: EnvironmentState, after: EnvironmentState) -> str | None:
        return rollout.describe_change("prod", "support-llm", CANARY, before, after)

    assert words(in_flight(0), in_flight(1)) == "prod: support-llm canary 10% → 25%"
    assert words(in_flight(1), state(stable=7, status="rolledBack", lastTransition={
        "reason": "error ratio 0.034 > 0.01", "time": "2026-11-20T08:00:00Z"})) == (
        "prod: candidate v8 rolled back: error ratio 0.034 > 0.01")
    assert words(state(stable=7, status="promoted"), in_flight(0)) == (
        "prod: support-llm canary of v8 started at 10% (stable v7)")
    assert words(in_flight(1), rollout.propose(in_flight(1), 9, "x", T0).after) == (
        "prod: support-llm canary of v9 started at 10% (stable v7, replacing v8)")
    assert words(in_flight(2), state(stable=8, status="promoted")) == "prod: support-llm v8 promoted (was v7)"
    assert words(state(candidate=1, status="progressing"), state(stable=1, status="promoted")) == (
        "prod: support-llm v1 promoted (first stable version)")
    assert words(in_flight(1), rollout.pause(in_flight(1), "x", T0).after) == "prod: support-llm v8 paused at 25%"
    assert words(in_flight(1), in_flight(1, failedAnalyses=1)) == (
        "prod: support-llm v8 holds at 25%: failed analyses 0 → 1")
    assert words(in_flight(1), in_flight(1)) is None


def test_status_lines() -> None:
    def line(current: EnvironmentState) -> str:
        return rollout.describe_state("prod", "support-llm", CANARY, current)

    assert line(state()) == "prod: support-llm: idle, nothing deployed"
    assert line(in_flight(1, failedAnalyses=1)) == (
        "prod: support-llm canary v8 at 25% (step 2 of 3), stable v7, 1 failed analysis: progressing since "
        "2026-11-20T08:00:00Z: set up")
    assert line(state(stable=7, status="rolledBack", lastTransition={"reason": "error ratio 0.034 > 0.01",
                                                                     "time": "2026-11-20T08:00:00Z"})) == (
        "prod: support-llm: stable v7, rolled back since 2026-11-20T08:00:00Z: error ratio 0.034 > 0.01")


# --- the state file ------------------------------------------------------------------------------------------


def _diff(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_an_edit_keeps_comments_key_order_quoting_and_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "support-llm.state.yaml"
    shutil.copy(FIXTURE, path)
    original = path.read_text()
    before = rollout.read_state_file(path, "support-llm").environments["dev"]
    advanced = rollout.decide(CANARY, before, PASS, T0 + timedelta(hours=2)).after
    assert rollout.write_environment_state(path, "support-llm", "dev", advanced)
    assert _diff(original, path.read_text()) == [
        "-      step: 1         # 25%",
        "+      step: 2         # 25%",
        "-      failedAnalyses: 1",
        "-        reason: 'analysis passed at 10%'   # a person's note",
        '-        time: "2026-11-20T08:00:00Z"',
        '+        reason: "analysis passed at 25% (error ratio 0.002 <= 0.01, 900 requests)" # a person\'s note',
        '+        time: "2026-11-20T10:00:00Z"',
    ]
    assert rollout.read_state_file(path, "support-llm").environments["dev"] == advanced
    assert not rollout.write_environment_state(path, "support-llm", "dev", advanced)  # nothing to change


def test_a_promotion_removes_the_keys_that_no_longer_apply_and_new_keys_go_in_order(tmp_path: Path) -> None:
    path = tmp_path / "support-llm.state.yaml"
    shutil.copy(FIXTURE, path)
    original = path.read_text()
    promoted = rollout.promote(rollout.read_state_file(path, "support-llm").environments["dev"], "x", T0).after
    rollout.write_environment_state(path, "support-llm", "dev", promoted)
    proposed = rollout.propose(state(stable=6, status="idle"), 7, "tune", T0).after
    rollout.write_environment_state(path, "support-llm", "prod", proposed)
    text = path.read_text()
    assert _diff(original, text) == [
        "-      stable: 7       # the version before the canary",
        "-      candidate: 8",
        "-      step: 1         # 25%",
        "-      status: progressing",
        "-      failedAnalyses: 1",
        "+      stable: 8       # the version before the canary",
        "+      status: promoted",
        "-        reason: 'analysis passed at 10%'   # a person's note",
        "+        reason: \"v8 promoted by hand at step 2: x\" # a person's note",
        "-    prod: {stable: 6, status: idle}   # flow style, kept",
        "+    prod: {stable: 6, candidate: 7, step: 0, status: progressing, lastTransition: {reason: \"v7 proposed: "
        "tune\", time: \"2026-11-20T08:00:00Z\"}} # flow style, kept",
    ]
    assert rollout.read_state_file(path, "other-policy").environments["dev"] == state(stable=3, status="idle")


def test_a_missing_state_file_is_created_beside_the_policy_and_compiles(example_copy: Path) -> None:
    specs = example_copy / "specs"
    (specs / "rollouts" / "support-llm.state.yaml").unlink()
    graph, problems = api.resolve_specs(specs)
    assert graph is not None, problems
    assert all(view.rollout_state("support-llm") == EnvironmentState() for view in graph.environments)  # idle
    path, policy_file = rollout.state_file_for(specs, graph, "support-llm")
    assert (path, policy_file) == (specs / "rollouts" / "support-llm.state.yaml", specs / "rollouts" /
                                   "support-llm.yaml")
    proposed = rollout.propose(EnvironmentState(), 1, "first version", T0).after
    assert rollout.write_environment_state(path, "support-llm", "staging", proposed, header_from=policy_file)
    assert path.read_text() == (
        "# yaml-language-server: $schema=../.schema/llmops.schema.json\n"
        "# Machine-written: where each environment's rollout of support-llm stands. The promote step and\n"
        "# `llmops rollout` edit this file (comments and key order are kept); change the policy, not this file.\n"
        "apiVersion: llmops.dev/v1alpha1\nkind: RolloutState\nmetadata:\n  name: support-llm\nspec:\n"
        "  environments:\n    staging:\n      candidate: 1\n      step: 0\n      status: progressing\n"
        "      lastTransition:\n        reason: \"v1 proposed: first version\"\n"
        "        time: \"2026-11-20T08:00:00Z\"\n")
    graph, problems = api.resolve_specs(specs)
    assert graph is not None, problems
    staging = next(view for view in graph.environments if view.name == "staging")
    assert staging.rollout_state("support-llm") == proposed
    api.compile_project(specs, example_copy / "generated")
    assert api.check(specs, example_copy / "generated").ok


def test_a_file_without_the_policy_s_state_gets_a_new_document(tmp_path: Path) -> None:
    path = tmp_path / "support-llm.state.yaml"
    shutil.copy(FIXTURE, path)
    original = path.read_text()
    rollout.write_environment_state(path, "third", "dev", state(stable=2, status="idle"))
    text = path.read_text()
    assert text.startswith(original)
    assert text[len(original):] == ("---\napiVersion: llmops.dev/v1alpha1\nkind: RolloutState\nmetadata:\n"
                                     "  name: third\nspec:\n  environments:\n    dev:\n      stable: 2\n"
                                     "      status: idle\n")


def test_a_broken_state_file_is_reported_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "broken.state.yaml"
    path.write_text("spec: [unclosed\n")
    with pytest.raises(rollout.StateFileError, match=r"broken\.state\.yaml"):
        rollout.write_environment_state(path, "support-llm", "dev", state())
    assert path.read_text() == "spec: [unclosed\n"
    path.write_text("kind: RolloutState\nmetadata: {name: p}\nspec: {environments: {dev: {step: -1}}}\n")
    with pytest.raises(rollout.StateFileError, match=r"spec\.environments\.dev\.step"):
        rollout.read_state_file(path, "p")


def test_record_transition_is_what_the_cli_does(example_copy: Path) -> None:
    specs = example_copy / "specs"
    decision, path = rollout.record_transition(specs, "support-llm", "dev",
                                               lambda current: rollout.pause(current, "on call says wait", T0))
    assert path == specs / "rollouts" / "support-llm.state.yaml"
    assert rollout.read_state_file(path, "support-llm").environments["dev"] == decision.after
    assert rollout.describe_decision("dev", "support-llm", CANARY, decision) == "dev: support-llm v8 paused at 25%"
    with pytest.raises(rollout.TransitionRefused):
        rollout.record_transition(specs, "support-llm", "prod", lambda current: rollout.resume(current, "x", T0))
    with pytest.raises(KeyError):
        rollout.record_transition(specs, "support-llm", "qa", lambda current: rollout.pause(current, "x", T0))
    api.compile_project(specs, example_copy / "generated")
    assert api.check(specs, example_copy / "generated").ok


# --- any sequence of transitions keeps the state valid ----------------------------------------------------------

_RESULTS = {"pass": PASS, "fail": FAIL, "low traffic": NO_TRAFFIC, "no data": NO_DATA,
            "error": AnalysisResult(error="unreachable")}
_OPERATIONS = st.one_of(
    st.tuples(st.just("analysis"), st.sampled_from(sorted(_RESULTS)), st.integers(0, 180)),
    st.tuples(st.just("propose"), st.integers(1, 12), st.just(0)),
    st.tuples(st.sampled_from(["pause", "resume", "promote", "abort", "rollback"]), st.just(""), st.just(0)),
)


@settings(max_examples=200, deadline=None)
@given(policy=st.sampled_from([CANARY, BLUE_GREEN, AB_TEST]), operations=st.lists(_OPERATIONS, max_size=25))
def test_any_sequence_of_transitions_keeps_the_state_valid(policy: RolloutPolicySpec,
                                                           operations: list[tuple[str, Any, int]]) -> None:
    current, now = state(stable=3, status="idle"), T0
    for kind, argument, minutes in operations:
        now += timedelta(minutes=minutes)
        try:
            if kind == "analysis":
                measured = current.status == "progressing" and rollout.measures_candidate(policy, current.step)
                decision = rollout.decide(policy, current, _RESULTS[argument] if measured else None, now)
                if decision.action == "promote":  # only a pass (or a step without traffic) promotes
                    assert argument == "pass" or not measured
                if argument in ("error",) or decision.verdict == "inconclusive":
                    assert decision.action != "promote"
            elif kind == "propose":
                decision = rollout.propose(current, argument, "test", now)
            else:
                decision = getattr(rollout, kind)(current, "test", now)
        except rollout.TransitionRefused:
            continue
        if decision.changed and decision.action != "hold":
            assert decision.after.last_transition is not None
            assert decision.after.last_transition.time == rollout.format_time(now)
        current = decision.after
        spec = RolloutStateSpec.model_validate({"environments": {"dev": current.model_dump(by_alias=True)}})
        assert list(check_rollout_state(spec, {})) == []
        assert current.step < len(rollout.policy_steps(policy))
        assert current.failed_analyses < policy.analysis.failure_limit
        assert current.inconclusive_analyses < policy.analysis.inconclusive_limit
