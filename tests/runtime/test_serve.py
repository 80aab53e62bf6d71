"""serve: the reference server on 127.0.0.1 with the tiny model, spoken to over real HTTP.

What is checked: the completions come from the model (greedy output equals transformers' own), OpenAI's
response and error shapes, the metric contract after known requests (counter by code, histogram buckets),
the concurrency bound (429) and the body timeout (408), readiness, error injection, a model registered with
``register`` and fetched with ``fetch_model`` served as it was fetched, and a graceful stop on SIGTERM.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_support import Samples, ServeProcess, finish_request, serve_process, wait_until

from llmops_compiler.runtime import fetch_model, register
from llmops_compiler.runtime.serve import ServeConfig, TextGenerator, build_app, load_generator

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
MODEL = "support-llm"
PROMPT = "Q: What is the capital of France?\nA:"
BUCKETS = ("0.5", "1.0", "2.5", "120.0", "+Inf")


@pytest.fixture(scope="module")
def chat_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a chat template (transformers reads ``chat_template.jinja`` beside the tokenizer)."""
    d = tmp_path_factory.mktemp("chat") / "model"
    shutil.copytree(tiny_model_dir, d)
    (d / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return d


class Reference:
    """Greedy generation computed in this process with transformers directly, to compare the server with."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()

    def generate(self, prompt: str, max_new_tokens: int, add_special_tokens: bool = True) -> tuple[str, int, str]:
        """(text, generated tokens without eos, OpenAI finish reason)."""
        tok = self.tokenizer
        ids = tok(prompt, return_tensors="pt", add_special_tokens=add_special_tokens)
        with self.torch.inference_mode():
            out = self.model.generate(
                **ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
            )
        new = out[0, ids["input_ids"].shape[1] :].tolist()
        finish = "length"
        if tok.eos_token_id in new:
            new, finish = new[: new.index(tok.eos_token_id)], "stop"
        return tok.decode(new, skip_special_tokens=True), len(new), finish

    def text(self, prompt: str, max_new_tokens: int, add_special_tokens: bool = True) -> str:
        return self.generate(prompt, max_new_tokens, add_special_tokens)[0]

    def count(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path) -> Reference:
    return Reference(tiny_model_dir)


@pytest.fixture(scope="module")
def server(chat_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    args = [
        "--model-dir", str(chat_model_dir), "--model-name", MODEL, "--version", "7",
        "--max-concurrency", "1", "--max-prompt-tokens", "100", "--max-tokens-limit", "40",
        "--max-body-bytes", "4096", "--body-timeout", "1.5", "--buckets", "0.5,1,2.5,120",
    ]  # fmt: skip
    with serve_process(args, tmp_path_factory.mktemp("serve")) as proc:
        yield proc


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# --- completions -----------------------------------------------------------------------------------


def test_completion_is_the_models_greedy_output_in_openai_shape(server: ServeProcess, reference: Reference) -> None:
    prompts = [PROMPT, "The cat sat"]
    request = {"model": MODEL, "prompt": prompts, "max_tokens": 8, "temperature": 0}
    status, body = server.post("/v1/completions", request)
    assert status == 200, body
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    assert body["object"] == "text_completion" and body["model"] == MODEL and body["id"].startswith("cmpl-")
    expected = [reference.generate(p, 8) for p in prompts]
    assert body["choices"] == [
        {"index": i, "text": text, "logprobs": None, "finish_reason": finish}
        for i, (text, _, finish) in enumerate(expected)
    ]
    prompt_tokens = sum(reference.count(p) for p in prompts)
    completion_tokens = sum(n for _, n, _ in expected)
    assert body["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }

    # A stop sequence taken from the real output cuts the text before it (OpenAI leaves the stop out).
    full = reference.text(PROMPT, 12)
    stop = full[3:5]
    request = {"prompt": PROMPT, "max_tokens": 12, "temperature": 0, "stop": [stop]}
    status, body = server.post("/v1/completions", request)
    assert status == 200
    assert body["choices"][0]["text"] == full[: full.find(stop)]
    assert body["choices"][0]["finish_reason"] == "stop"


def test_a_vanishing_temperature_decodes_greedily(server: ServeProcess, reference: Reference) -> None:
    """Logits divided by 1e-40 overflow and sampling fails: such temperatures are greedy (a 200, not a 500)."""
    status, body = server.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 6, "temperature": 1e-40})
    assert status == 200, body
    assert body["choices"][0]["text"] == reference.generate(PROMPT, 6)[0]


def test_a_chat_template_that_refuses_the_messages_is_a_400(tiny_model_dir: Path) -> None:
    from llmops_compiler.runtime.serve import ApiError, TransformersGenerator

    generator = TransformersGenerator(str(tiny_model_dir))
    generator.tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] not in ['user', 'assistant'] %}"
        "{{ raise_exception('roles must be user or assistant') }}{% endif %}{{ m['content'] }}{% endfor %}")
    assert generator.chat_prompt([{"role": "user", "content": "hi"}]) == "hi"
    with pytest.raises(ApiError, match="chat template refuses these messages: roles must be user or assistant"):
        generator.chat_prompt([{"role": "tool", "content": "x"}])


def test_chat_completion_renders_the_chat_template(server: ServeProcess, reference: Reference) -> None:
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Capital of Peru?"}]
    status, body = server.post("/v1/chat/completions", {"messages": messages, "max_tokens": 6, "temperature": 0})
    assert status == 200, body
    rendered = "system: Answer briefly.\nuser: Capital of Peru?\nassistant:"
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": reference.text(rendered, 6, False)}


def test_models_health_and_readiness(server: ServeProcess) -> None:
    assert server.get_json("/healthz") == (200, {"status": "ok"})
    assert server.get_json("/readyz") == (200, {"status": "ready", "model": MODEL, "version": "7"})
    status, body = server.get_json("/v1/models")
    assert status == 200 and [m["id"] for m in body["data"]] == [MODEL]


def _error(message: str, param: str | None = None, code: str | None = None, kind: str = "invalid_request_error") -> Any:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "expected"),
    [
        ("POST", "/v1/completions", b"{not json", 400, _error("the request body is not valid JSON")),
        ("POST", "/v1/completions", b"[1, 2]", 400, _error("the request body must be a JSON object")),
        (
            "POST", "/v1/completions", {"prompt": "hi", "max_tokens": 41}, 400,
            _error("'max_tokens' is 41, more than this server's limit of 40", "max_tokens"),
        ),
        (
            "POST", "/v1/completions", {"prompt": "hi", "stream": True}, 400,
            _error("'stream' is not supported by this server", "stream", "unsupported_parameter"),
        ),
        (
            "POST", "/v1/completions", {"prompt": [1, 2, 3]}, 400,
            _error("token-id prompts are not supported; send text", "prompt"),
        ),
        (
            "POST", "/v1/completions", {"prompt": "hi", "temperature": 3}, 400,
            _error("'temperature' must be a number from 0 to 2", "temperature"),
        ),
        (
            "POST", "/v1/completions", {"model": "other-llm", "prompt": "hi"}, 404,
            _error("The model `other-llm` does not exist.", "model", "model_not_found"),
        ),
        (
            "POST", "/v1/completions", {"prompt": "x" * 5000}, 413,
            _error("request body over the limit of 4096 bytes", code="request_too_large"),
        ),
        (
            "POST", "/v1/chat/completions", {"messages": "hi"}, 400,
            _error("'messages' must be a non-empty list", "messages"),
        ),
        (
            "POST", "/v1/completions", b'{"prompt": "\\ud800abc"}', 400,
            _error("'prompt' holds a lone UTF-16 surrogate (not valid Unicode)", "prompt"),
        ),
        (
            "POST", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x\\udfff"}]}', 400,
            _error("'messages' holds a lone UTF-16 surrogate (not valid Unicode)", "messages"),
        ),
        ("GET", "/v1/completions", None, 405, _error("Method Not Allowed", code="method_not_allowed")),
        ("GET", "/v2/nothing", None, 404, _error("Not Found", code="not_found")),
    ],
)  # fmt: skip
def test_errors_are_json_in_openai_shape(
    server: ServeProcess, method: str, path: str, body: Any, status: int, expected: Any
) -> None:
    got_status, headers, raw = server.request(method, path, body)
    assert got_status == status
    assert headers["content-type"] == "application/json"
    assert json.loads(raw) == expected


def test_prompt_and_context_limits(server: ServeProcess, reference: Reference) -> None:
    words = " ".join(["Paris Berlin Rome Madrid"] * 40)
    n = len(reference.tokenizer(words)["input_ids"])
    assert n > 100
    status, body = server.post("/v1/completions", {"prompt": words})
    assert (status, body["error"]["code"]) == (400, "prompt_too_long")
    assert body["error"]["message"] == f"the prompt has {n} tokens, more than this server's limit of 100"

    # Within the prompt limit but over the tiny model's context of 128 tokens together with max_tokens.
    prompt = " ".join(["Paris Berlin"] * 200)
    ids = reference.tokenizer(prompt)["input_ids"]
    prompt = reference.tokenizer.decode(ids[:95])
    m = len(reference.tokenizer(prompt)["input_ids"])
    assert 128 - 40 < m <= 100
    status, body = server.post("/v1/completions", {"prompt": prompt, "max_tokens": 40})
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"
    assert body["error"]["message"] == (
        f"This model's maximum context length is 128 tokens. However, you requested {m + 40} tokens "
        f"({m} in the prompt, 40 for the completion). Please reduce the prompt or max_tokens."
    )


# --- bounds and metrics ------------------------------------------------------------------------------


def test_concurrency_overflow_is_429_and_a_late_body_is_408(server: ServeProcess, reference: Reference) -> None:
    body = json.dumps({"prompt": PROMPT, "max_tokens": 4, "temperature": 0}).encode()
    held = server.open_partial_request("/v1/completions", body, sent=10)  # in flight, waiting for its body
    time.sleep(0.3)  # the server has admitted it once the headers arrived
    status, answer = server.post("/v1/completions", {"prompt": "hi", "max_tokens": 1})
    assert status == 429
    assert answer == _error(
        "too many concurrent requests (limit 1); retry later",
        code="too_many_concurrent_requests",
        kind="rate_limit_error",
    )
    assert finish_request(held, body[10:])[1]["choices"][0]["text"] == reference.text(PROMPT, 4)
    assert server.post("/v1/completions", {"prompt": "hi", "max_tokens": 1})[0] == 200  # the slot is free again

    late = server.open_partial_request("/v1/completions", body, sent=10)
    started = time.monotonic()
    status, answer = finish_request(late, b"")  # never send the rest
    assert 1.5 <= time.monotonic() - started < 10
    assert (status, answer) == (408, _error("request body not received within 1.5 seconds", code="request_timeout"))


def test_metrics_count_requests_by_code_and_time_them(server: ServeProcess) -> None:
    before = server.metrics()
    for _ in range(3):
        assert server.post("/v1/completions", {"prompt": "hi", "max_tokens": 2})[0] == 200
    assert server.post("/v1/completions", {"prompt": "hi", "max_tokens": 99})[0] == 400
    assert server.post("/v1/completions", {"model": "nope", "prompt": "hi"})[0] == 404
    assert server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})[0] == 200
    assert server.request("GET", "/v1/models")[0] == 200  # not a completion: not counted
    after = server.metrics()

    labels = {"model": MODEL, "version": "7"}
    deltas = {
        code: _value(after, "llm_requests_total", code=code, **labels)
        - _value(before, "llm_requests_total", code=code, **labels)
        for code in ("200", "400", "404", "429", "500", "503")
    }
    assert deltas == {"200": 4, "400": 1, "404": 1, "429": 0, "500": 0, "503": 0}
    for code in ("200", "400", "429", "500", "503"):  # initialised at 0, so rate() sees the first one
        assert ("llm_requests_total", frozenset({"code": code, **labels}.items())) in before

    bucket = "llm_request_duration_seconds_bucket"
    bounds = sorted({dict(k[1])["le"] for k in after if k[0] == bucket}, key=lambda b: float(b))
    assert tuple(bounds) == BUCKETS
    counts = [_value(after, bucket, le=le, **labels) - _value(before, bucket, le=le, **labels) for le in BUCKETS]
    assert counts == sorted(counts)  # cumulative
    assert counts[-1] == counts[-2] == 6  # every request took under 120 s
    count = "llm_request_duration_seconds_count"
    assert _value(after, count, **labels) - _value(before, count, **labels) == 6
    seconds = "llm_request_duration_seconds_sum"
    assert _value(after, seconds, **labels) > _value(before, seconds, **labels)


def test_prometheus_scrapes_the_contract_series(server: ServeProcess, tmp_path: Path) -> None:
    from servers import prometheus, query, wait_for

    with prometheus([], [server.url]) as prom:
        expected = {dict(k[1])["code"]: v for k, v in server.metrics().items() if k[0] == "llm_requests_total"}

        def scraped() -> dict[str, float] | None:
            result = query(prom.url, f'llm_requests_total{{model="{MODEL}",version="7"}}')
            got = {r["metric"]["code"]: float(r["value"][1]) for r in result}
            return got if got == expected else None

        wait_for(scraped, timeout=20, message="Prometheus scraping the request counter")
        le = query(prom.url, f'llm_request_duration_seconds_bucket{{model="{MODEL}",version="7"}}')
        assert sorted((r["metric"]["le"] for r in le), key=float) == list(BUCKETS)


# --- readiness ---------------------------------------------------------------------------------------


def test_not_ready_until_the_model_is_loaded(tiny_model_dir: Path) -> None:
    from starlette.testclient import TestClient

    cfg = ServeConfig(model_dir=str(tiny_model_dir), model_name=MODEL, version="3")
    release = threading.Event()

    def slow_load() -> TextGenerator:
        release.wait(30)
        return load_generator(cfg)

    with TestClient(build_app(cfg, load=slow_load)) as client:
        assert client.get("/healthz").status_code == 200
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json() == _error("the model is loading", code="model_not_ready", kind="server_error")
        assert client.post("/v1/completions", json={"prompt": "hi"}).status_code == 503
        release.set()
        wait_until(lambda: client.get("/readyz").status_code == 200, 60, "readiness")
        assert client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 1}).status_code == 200
        metrics = client.get("/metrics").text
        assert f'llm_requests_total{{code="503",model="{MODEL}",version="3"}} 1.0' in metrics
        assert f'llm_requests_total{{code="200",model="{MODEL}",version="3"}} 1.0' in metrics


def test_a_model_that_cannot_load_stops_the_server_with_exit_3(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    import subprocess
    import sys

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": "many"}))
    cmd = [sys.executable, "-m", "llmops_compiler.runtime.serve", "--model-dir", str(broken)]
    cmd += ["--model-name", MODEL, "--version", "1", "--port", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env, timeout=120)
    assert done.returncode == 3
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("serve: error: cannot load the model: ")
    assert "Traceback" not in done.stderr


# --- a registered, fetched model; error injection; graceful stop ----------------------------------


def test_fetched_model_served_with_injected_errors_then_stopped_gracefully(
    tiny_model_dir: Path, mlflow_uri: str, tmp_path: Path, reference: Reference
) -> None:
    name = f"serve-{uuid.uuid4().hex[:8]}"
    (tmp_path / "metrics.json").write_text(json.dumps({"exact_match": 0.5}))
    assert register.main([
        "--model-dir", str(tiny_model_dir), "--registered-model", name, "--metrics", str(tmp_path / "metrics.json"),
        "--spec-hash", "s", "--git-commit", "c", "--dataset-uri", "d", "--mlflow-tracking-uri", mlflow_uri,
    ]) == 0  # fmt: skip
    fetched = tmp_path / "fetched"
    assert (
        fetch_model.main(
            ["--model-uri", f"models:/{name}/1", "--output", str(fetched), "--mlflow-tracking-uri", mlflow_uri]
        )
        == 0
    )

    ratio, seed = 0.25, 7
    args = [
        "--model-dir", str(fetched), "--model-name", MODEL,  # the version comes from llmops-model.json
        "--inject-error-ratio", str(ratio), "--seed", str(seed), "--max-concurrency", "1",
        "--requests-metric", "team_llm_requests_total", "--duration-metric", "team_llm_latency_seconds",
    ]  # fmt: skip
    with serve_process(args, tmp_path / "serve") as proc:
        assert proc.get_json("/readyz") == (200, {"status": "ready", "model": MODEL, "version": "1"})
        draws = random.Random(seed)
        expected = [500 if draws.random() < ratio else 200 for _ in range(40)]
        answers = [
            proc.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 5, "temperature": 0}) for _ in expected
        ]
        assert [status for status, _ in answers] == expected
        assert 0 < expected.count(500) < 20
        assert {b["choices"][0]["text"] for s, b in answers if s == 200} == {
            reference.text(PROMPT, 5)
        }  # the registered model
        injected = next(b for s, b in answers if s == 500)
        assert injected == _error("injected error (--inject-error-ratio)", code="injected_error", kind="server_error")

        samples = proc.metrics()
        labels = {"model": MODEL, "version": "1"}
        assert _value(samples, "team_llm_requests_total", code="500", **labels) == expected.count(500)
        assert _value(samples, "team_llm_requests_total", code="200", **labels) == expected.count(200)
        assert _value(samples, "team_llm_latency_seconds_bucket", le="+Inf", **labels) == 40
        assert not any(name.startswith("llm_") for name, _ in samples)

        # Graceful stop: a request in flight when SIGTERM arrives is still answered; new connections are not.
        while draws.random() < ratio:  # the next request must not be one the injector fails
            assert proc.post("/v1/completions", {"prompt": "hi", "max_tokens": 1})[0] == 500
        body = json.dumps({"prompt": PROMPT, "max_tokens": 5, "temperature": 0}).encode()
        held = proc.open_partial_request("/v1/completions", body, sent=5)
        time.sleep(0.3)
        proc.process.terminate()  # `timeout` forwards SIGTERM to the server

        def refused() -> bool:
            try:
                proc.request("GET", "/healthz", timeout=2)
            except OSError:
                return True
            return False

        wait_until(refused, 15, "the listener closing")
        status, answer = finish_request(held, body[5:])
        assert (status, answer["choices"][0]["text"]) == (200, reference.text(PROMPT, 5))
        assert proc.process.wait(timeout=30) == 0
        assert "Traceback" not in proc.log()


def test_lora_adapter_is_served_on_its_base_model(tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from starlette.testclient import TestClient
    from transformers import AutoModelForCausalLM

    from llmops_compiler.runtime.tune import TuneConfig, tune

    adapter = tmp_path / "adapter"
    tune(TuneConfig(base_model=str(tiny_model_dir), dataset=str(tiny_dataset), output=str(adapter), r=4, alpha=8,
                    dropout=0.0, max_steps=8, learning_rate=3e-2, batch_size=6, seed=3))  # fmt: skip
    base = Reference(tiny_model_dir)
    tuned = Reference(tiny_model_dir)
    peft_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32), str(adapter)
    )
    tuned.model = peft_model.eval()  # peft's own (unmerged) forward pass is the reference
    expected = tuned.text(PROMPT, 6)
    assert expected != base.text(PROMPT, 6)  # the adapter changes the output, so the check below means something

    cfg = ServeConfig(model_dir=str(adapter), base_model=str(tiny_model_dir), model_name=MODEL, version="2")
    with TestClient(build_app(cfg)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, 60, "readiness")
        answer = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 6, "temperature": 0})
        assert answer.json()["choices"][0]["text"] == expected


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--version", "1", "--duration-metric", "llm_latency_bucket"],
         "--duration-metric 'llm_latency_bucket': give the histogram's base name, without _bucket/_sum/_count"),
        (["--version", "1", "--requests-metric", "llm_requests"],
         "--requests-metric 'llm_requests' is not a Prometheus counter name ending in _total"),
        (["--version", "1", "--buckets", "0.5,0.25"], "--buckets must be strictly increasing"),
        (["--version", "1", "--buckets", "0.5,fast"], "--buckets: 'fast' is not a number"),
        (["--version", "1", "--inject-error-ratio", "1.5"], "--inject-error-ratio must be in [0, 1], got 1.5"),
        (["--version", "1", "--graceful-timeout", "inf"],
         "--graceful-timeout must be a finite number of seconds > 0, got inf"),
        (["--version", "1", "--base-model", "/proc/llmops-missing"],
         "--base-model is only for an adapter directory; {model} has no adapter_config.json"),
        ([], "--version is required: no version in {model}/llmops-model.json"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2(
    extra: list[str], expected: str, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmops_compiler.runtime import serve

    assert serve.main(["--model-dir", str(tiny_model_dir), "--model-name", MODEL, *extra]) == 2
    assert capsys.readouterr().err.strip() == f"serve: error: {expected.format(model=tiny_model_dir)}"


def test_import_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmops_compiler.runtime.serve, llmops_compiler.runtime.fetch_model; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
