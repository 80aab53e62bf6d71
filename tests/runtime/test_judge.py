"""The LLM judge against a small OpenAI-compatible server on loopback: request shape, token header, retries
with backoff on 429/5xx, failures left out, the request and token bounds, and an unreachable judge."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_support import Recorded, Reply, chat_reply, graded_answer, json_server

from llmops_compiler.runtime import judge as judge_module
from llmops_compiler.runtime.judge import Judge, JudgeConfig, JudgeConfigError, JudgeItem, parse_score

ITEMS = [JudgeItem("Politeness", f"answer {i}", question=f"question {i}") for i in range(6)]


def score_by_number(request: Recorded, n: int) -> Reply:
    """Grade answer i with 1 + i % 5, as a JSON object wrapped in prose."""
    i = int(graded_answer(request).split()[-1])
    return 200, chat_reply(f'Here is my grade: {{"score": {1 + i % 5}, "reason": "ok"}}'), {}


def test_request_shape_token_header_and_scores() -> None:
    item = JudgeItem(
        "Groundedness: every statement is supported", "Hold the button for 10 seconds.",
        question="How do I reset it?", context=("Press the reset button for 10 seconds.", "Lights blink."),
        reference="Hold reset for 10 s.",
    )  # fmt: skip
    with json_server(lambda r, n: (200, chat_reply('{"score": 4}', total_tokens=321), {})) as server:
        judge = Judge(JudgeConfig(url=f"{server.url}/v1", model="judge-7b", token="s3cret", completion_tokens=64))
        run = judge.judge([item])
    assert run.scores == [0.75]  # (4 - 1) / 4
    assert (run.requests, run.tokens, run.judged, run.unavailable) == (1, 321, 1, False)
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["content-type"] == "application/json"
    body = request.body
    assert body["model"] == "judge-7b"
    assert body["temperature"] == 0 and body["max_tokens"] == 64
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert '"score"' in body["messages"][0]["content"]
    user = body["messages"][1]["content"]
    for part in ("Criterion: Groundedness", "Question:\nHow do I reset it?", "[1] Press the reset button",
                 "[2] Lights blink.", "Reference answer:\nHold reset for 10 s.", "Answer to grade:\nHold the button"):
        assert part in user, part


def test_no_token_no_header_and_concurrency_keeps_order() -> None:
    with json_server(score_by_number) as server:
        run = Judge(JudgeConfig(url=server.url, model="m", max_concurrency=3)).judge(ITEMS)
    assert run.scores == [(i % 5) / 4 for i in range(6)]
    assert all("authorization" not in r.headers for r in server.requests)
    assert run.requests == 6 and run.tokens == 600


def test_retries_429_and_5xx_with_backoff_then_succeeds() -> None:
    def flaky(request: Recorded, n: int) -> Reply:
        if n == 1:
            return 429, {"error": "slow down"}, {"Retry-After": "2"}
        if n == 2:
            return 503, {"error": "overloaded"}, {}
        return 200, chat_reply('{"score": 5}'), {}

    sleeps: list[float] = []
    with json_server(flaky) as server:
        judge = Judge(JudgeConfig(url=server.url, model="m", retries=3, backoff=0.5), sleep=sleeps.append)
        run = judge.judge(ITEMS[:1])
    assert run.scores == [1.0]
    assert run.requests == 3 and len(server.requests) == 3
    assert sleeps == [2.0, 1.0]  # Retry-After honoured, then backoff * 2**1


def test_failures_are_left_out_and_counted() -> None:
    def mixed(request: Recorded, n: int) -> Reply:
        i = int(graded_answer(request).split()[-1])
        if i == 1:
            return 400, {"error": "bad request"}, {}  # not retried
        if i == 2:
            return 200, chat_reply("I would rather not say."), {}
        if i == 3:
            return 500, {"error": "boom"}, {}  # retried, then given up
        return 200, chat_reply('{"score": 3}'), {}

    with json_server(mixed) as server:
        run = Judge(JudgeConfig(url=server.url, model="m", retries=2, backoff=0), sleep=lambda s: None).judge(ITEMS)
    assert run.scores == [0.5, None, None, None, 0.5, 0.5]
    assert dict(run.failures) == {"HTTP 400": 1, "reply has no score": 1, "HTTP 500 after 3 attempts": 1}
    assert run.requests == 1 + 1 + 3 + 3  # 400 once, unparseable once, 500 three times, three good ones
    assert not run.unavailable


def test_request_bound_counts_retries_and_skips_the_rest() -> None:
    def always_429(request: Recorded, n: int) -> Reply:
        return 429, {"error": "rate limited"}, {}

    with json_server(always_429) as server:
        run = Judge(JudgeConfig(url=server.url, model="m", max_requests=5, retries=3, max_concurrency=1),
                    sleep=lambda s: None).judge(ITEMS)  # fmt: skip
    assert len(server.requests) == 5 == run.requests
    assert run.scores == [None] * 6
    assert run.failures == {"HTTP 429 after 4 attempts": 1}
    assert run.skipped_budget == 5
    assert run.unavailable  # nothing ever answered


def test_token_bound_stops_new_requests() -> None:
    with json_server(lambda r, n: (200, chat_reply('{"score": 2}', total_tokens=400), {})) as server:
        run = Judge(JudgeConfig(url=server.url, model="m", max_tokens=1000, max_concurrency=1)).judge(ITEMS)
    # 400 + 400 < 1000 lets a third request start; after it (1200) no new request starts
    assert len(server.requests) == 3 and run.tokens == 1200
    assert run.scores == [0.25, 0.25, 0.25, None, None, None]
    assert run.skipped_budget == 3


def test_budget_is_shared_by_every_metric_of_a_run() -> None:
    with json_server(lambda r, n: (200, chat_reply('{"score": 5}'), {})) as server:
        judge = Judge(JudgeConfig(url=server.url, model="m", max_requests=8, max_concurrency=1))
        first = judge.judge(ITEMS)
        second = judge.judge(ITEMS)
    assert (first.requests, second.requests) == (6, 2)
    assert second.skipped_budget == 4 and len(server.requests) == 8


def test_unreachable_judge_is_unavailable() -> None:
    from servers import free_port

    config = JudgeConfig(url=f"http://127.0.0.1:{free_port()}/v1", model="m", retries=1, timeout=5)
    run = Judge(config, sleep=lambda s: None).judge(ITEMS[:2])
    assert run.unavailable
    assert run.scores == [None, None]
    assert run.failures == {"connection error after 2 attempts": 2}
    assert run.requests == 4


@pytest.mark.parametrize(
    ("content", "expected"),
    [('{"score": 1}', 0.0), ('{"score": 5, "reason": "x"}', 1.0), ('Sure. {"reason": "fine", "score": "3"}', 0.5),
     ("4", 0.75), ("Score: 2/5", None), ('{"score": 6}', None), ('{"score": 2.5}', None), ("no idea", None)],
)
def test_parse_score(content: str, expected: float | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            parse_score(content)
    else:
        assert parse_score(content) == expected


def test_bad_configs() -> None:
    with pytest.raises(JudgeConfigError, match="http"):
        JudgeConfig(url="judge:8000", model="m")
    with pytest.raises(JudgeConfigError, match="max requests"):
        JudgeConfig(url="http://x", model="m", max_requests=0)
    assert JudgeConfig(url="http://x/v1/", model="m").endpoint == "http://x/v1/chat/completions"
    assert JudgeConfig(url="http://x/v1/chat/completions", model="m").endpoint == "http://x/v1/chat/completions"
    assert set(judge_module.CRITERIA) == {"groundedness", "relevance", "similarity", "safety", "privacy"}
