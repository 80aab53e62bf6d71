"""A small reference model server speaking OpenAI's completions API and the project's metric contract.

``python -m llmops_compiler.runtime.serve --model-dir DIR --model-name NAME [--version V] [--base-model DIR]
[--host 127.0.0.1] [--port 8000] [--max-concurrency 4] [--max-prompt-tokens 2048] [--max-tokens-limit 512]
[--max-body-bytes 1048576] [--body-timeout 10] [--requests-metric llm_requests_total]
[--duration-metric llm_request_duration_seconds] [--buckets 0.05,0.1,...] [--graceful-timeout 30]
[--inject-error-ratio 0 --seed 0] [--log-level warning]``

For tests and small deployments (one process, one model, generation with ``transformers`` on CPU or one
GPU); large deployments run vLLM, whose metrics the README maps onto the same contract.

Model: ``--model-dir`` is a full Hugging Face causal-LM directory (what ``tune --method full``, ``quantize``
or ``fetch_model`` leave), or a LoRA adapter directory (it has ``adapter_config.json``) together with
``--base-model``, merged once at load time. ``--version`` defaults to the version in the directory's
``llmops-model.json`` (written by ``fetch_model``). ``--model-name`` is the model id clients send and the
``model`` label of every series: the Model spec's name, which the Monitor's rules select on.

Endpoints (errors always answer a JSON body in OpenAI's shape ``{"error": {"message", "type", "param",
"code"}}``):

``POST /v1/completions``       ``model`` (optional; another name is 404), ``prompt`` (a string or a list
                               of up to 16 strings), ``max_tokens`` (default 16), ``temperature`` (0-2,
                               default 1; 0, or below 0.001, is greedy), ``top_p``, ``stop`` (a string or up
                               to 4). A prompt that is not valid Unicode (a lone surrogate) is a 400.
                               Streaming, ``n`` > 1, ``echo``, ``logprobs``, ``suffix``, ``best_of`` > 1,
                               penalties, ``logit_bias`` and ``seed`` are refused (400), other fields ignored.
                               Absent fields take OpenAI's defaults, not the model's generation_config.json.
``POST /v1/chat/completions``  ``messages`` rendered with the tokenizer's chat template (400 without one, and
                               400 when the template refuses the messages).
``GET /v1/models``             the one model.
``GET /healthz``               200 while the process serves (liveness).
``GET /readyz``                200 once the model is loaded, 503 before (readiness).
``GET /metrics``               Prometheus exposition (text or OpenMetrics, as the scraper asks).

Metric contract (:mod:`llmops_compiler.conventions`), for the two completion endpoints only:
``<requests-metric>{model, version, code}`` counts answered requests by HTTP status (``code="429"``; 499 when
the client went away before the body arrived); ``<duration-metric>{model, version}`` is a histogram of the
seconds from the request's arrival to its response, over all of them, with the ``--buckets`` upper bounds
(+Inf added), so ``<duration-metric>_bucket{model, version, le}`` exists. A latency SLO's threshold must be
one of the buckets. Counter series for codes 200, 400, 429, 500 and 503 exist from the start (at 0), so that
``rate()`` sees their first increase.

Bounds: at most ``--max-concurrency`` completion requests in flight (from their headers to their response,
so a slow upload holds a slot for at most ``--body-timeout``), more are answered 429 at once (with
``Retry-After: 1``); while the model loads 503; bodies over ``--max-body-bytes`` 413; a body not received
within ``--body-timeout`` seconds 408; a prompt over ``--max-prompt-tokens`` 400; ``max_tokens`` over
``--max-tokens-limit`` 400; a prompt plus ``max_tokens`` over the model's context length
(``max_position_embeddings``) 400.

Testing aid: ``--inject-error-ratio F`` answers that share of completion requests 500 before doing anything
else: the k-th completion request fails when the k-th draw of ``random.Random(--seed).random()`` is below F.
It exists for chaos tests of alerts and rollbacks; never set it in production.

SIGTERM (or SIGINT) shuts down gracefully: the listener closes, requests in flight finish (up to
``--graceful-timeout`` seconds), then the process exits 0. Exit 2 for bad arguments, 3 when the model cannot
be loaded or the port cannot be bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from llmops_compiler import conventions
from llmops_compiler.runtime._common import (
    ArgParser,
    RuntimeStepError,
    UsageError,
    require_dir,
    run_step,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

STEP = "serve"
METADATA_FILE = "llmops-model.json"  # written by fetch_model
DEFAULT_DURATION_METRIC = conventions.REQUEST_DURATION_BUCKET.removesuffix("_bucket")
#: Upper bounds in seconds; they include 2.5 s, the latency threshold of the example Monitor. A Project
#: passes the buckets it declares; a latency SLO's threshold must be one of them.
DEFAULT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
PRE_INITIALISED_CODES = ("200", "400", "429", "500", "503")
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that went away before the response
MAX_PROMPTS_PER_REQUEST = 16
MAX_STOP_SEQUENCES = 4  # OpenAI's limit
# Fields of OpenAI's request this server does not implement, with the value that means "not used".
UNSUPPORTED_FIELDS: dict[str, object] = {
    "stream": False,
    "n": 1,
    "best_of": 1,
    "echo": False,
    "logprobs": None,
    "top_logprobs": None,
    "suffix": None,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logit_bias": None,
    "seed": None,
    "tools": None,
    "response_format": None,
}
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")  # Prometheus data model


# --- configuration ---------------------------------------------------------------------------------


MIN_SAMPLING_TEMPERATURE = 1e-3
"""Below this a ``temperature`` decodes greedily, as 0 does: dividing the logits by 1e-40 overflows them to
inf and sampling fails, and any temperature this small already picks the most likely token."""

@dataclass(frozen=True)
class ServeConfig:
    """Everything the server needs; :func:`validate` checks it before anything heavy is imported."""

    model_dir: str
    model_name: str
    version: str
    base_model: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    max_concurrency: int = 4
    max_prompt_tokens: int = 2048
    max_tokens_limit: int = 512
    default_max_tokens: int = 16
    max_body_bytes: int = 1 << 20
    body_timeout: float = 10.0
    requests_metric: str = conventions.REQUESTS_TOTAL
    duration_metric: str = DEFAULT_DURATION_METRIC
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    graceful_timeout: float = 30.0
    inject_error_ratio: float = 0.0
    seed: int = 0
    log_level: str = "warning"


def validate(cfg: ServeConfig) -> None:
    """Raise :class:`UsageError` (exit 2) for an unusable configuration."""
    require_dir(cfg.model_dir, "--model-dir")
    model_dir = Path(cfg.model_dir)
    if (model_dir / "adapter_config.json").is_file():
        if not cfg.base_model:
            raise UsageError(f"--model-dir {model_dir} holds a LoRA adapter; give its base model with --base-model")
        require_dir(cfg.base_model, "--base-model")
    elif cfg.base_model:
        raise UsageError(f"--base-model is only for an adapter directory; {model_dir} has no adapter_config.json")
    elif not (model_dir / "config.json").is_file():
        raise UsageError(f"--model-dir is not a Hugging Face model directory (no config.json): {model_dir}")
    if not cfg.model_name.strip():
        raise UsageError("--model-name is empty")
    if not cfg.version.strip():
        raise UsageError("--version is empty")
    if not 0 <= cfg.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {cfg.port}")
    for option, value in (
        ("--max-concurrency", cfg.max_concurrency),
        ("--max-prompt-tokens", cfg.max_prompt_tokens),
        ("--max-tokens-limit", cfg.max_tokens_limit),
        ("--max-body-bytes", cfg.max_body_bytes),
    ):
        if value < 1:
            raise UsageError(f"{option} must be >= 1, got {value}")
    if not 1 <= cfg.default_max_tokens <= cfg.max_tokens_limit:
        raise UsageError(f"the default max_tokens {cfg.default_max_tokens} exceeds --max-tokens-limit")
    for option, seconds in (("--body-timeout", cfg.body_timeout), ("--graceful-timeout", cfg.graceful_timeout)):
        if not 0 < seconds < math.inf:
            raise UsageError(f"{option} must be a finite number of seconds > 0, got {seconds}")
    if not 0.0 <= cfg.inject_error_ratio <= 1.0:
        raise UsageError(f"--inject-error-ratio must be in [0, 1], got {cfg.inject_error_ratio}")
    if not _METRIC_NAME.match(cfg.requests_metric) or not cfg.requests_metric.endswith("_total"):
        raise UsageError(f"--requests-metric '{cfg.requests_metric}' is not a Prometheus counter name ending in _total")
    if not _METRIC_NAME.match(cfg.duration_metric):
        raise UsageError(f"--duration-metric '{cfg.duration_metric}' is not a Prometheus metric name")
    if cfg.duration_metric.endswith(("_bucket", "_sum", "_count")):
        raise UsageError(
            f"--duration-metric '{cfg.duration_metric}': give the histogram's base name, without _bucket/_sum/_count"
        )
    if not cfg.buckets or any(not (b > 0 and math.isfinite(b)) for b in cfg.buckets):
        raise UsageError("--buckets must be positive finite numbers (+Inf is added)")
    if any(a >= b for a, b in zip(cfg.buckets, cfg.buckets[1:], strict=False)):
        raise UsageError("--buckets must be strictly increasing")


def parse_buckets(text: str) -> tuple[float, ...]:
    """``"0.1,0.5,2.5"`` as floats; :class:`UsageError` naming a value that is not a number."""
    values: list[float] = []
    for item in text.split(","):
        try:
            values.append(float(item))
        except ValueError:
            raise UsageError(f"--buckets: '{item.strip()}' is not a number") from None
    return tuple(values)


# --- errors in OpenAI's shape -----------------------------------------------------------------------


class ApiError(Exception):
    """An HTTP error answered as ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def response(self) -> Response:
        from starlette.responses import JSONResponse

        body = {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


# --- generation ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingParams:
    """``max_tokens`` new tokens at most; ``temperature`` 0 is greedy; output cut before any ``stop``."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" (eos or a stop sequence) | "length" (max_tokens reached)
    prompt_tokens: int
    completion_tokens: int


class TextGenerator(Protocol):
    """What the HTTP layer needs from a model."""

    context_length: int | None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...

    def chat_prompt(self, messages: list[dict[str, str]]) -> str: ...

    def complete(self, prompt_ids: list[int], params: SamplingParams) -> Completion: ...


class TransformersGenerator:
    """A causal LM and its tokenizer from local directories, generating with ``model.generate``."""

    def __init__(self, model_dir: str, base_model: str | None = None) -> None:
        import torch

        from llmops_compiler.runtime._common import load_causal_lm, load_tokenizer, pick_device, quiet_libraries

        quiet_libraries()
        self._torch = torch
        self.tokenizer = load_tokenizer(model_dir, base_model)
        if base_model:
            self.model = load_causal_lm(base_model, adapter=model_dir, merge=True)
        else:
            self.model = load_causal_lm(model_dir)
        self.model.to(pick_device()).eval()
        self.context_length: int | None = getattr(self.model.config, "max_position_embeddings", None)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        return ids

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise _invalid("this model's tokenizer has no chat template; use /v1/completions", code="no_chat_template")
        from jinja2.exceptions import TemplateError

        try:
            text: str = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except TemplateError as exc:  # templates raise on roles or orders they do not accept: the client's doing
            raise _invalid(f"this model's chat template refuses these messages: {exc}", param="messages") from None
        return text

    def complete(self, prompt_ids: list[int], params: SamplingParams) -> Completion:
        from transformers import GenerationConfig

        torch = self._torch
        tok = self.tokenizer
        options: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id,
        }
        if params.temperature >= MIN_SAMPLING_TEMPERATURE:
            options.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            options["do_sample"] = False
        extra: dict[str, Any] = {}
        if params.stop:
            options["stop_strings"] = list(params.stop)  # stops early; the text is cut below
            extra["tokenizer"] = tok
        config = GenerationConfig(**options)  # type: ignore[no-untyped-call]
        device = self.model.device
        input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=config,
                **extra,
            )
        new_ids: list[int] = output[0, len(prompt_ids) :].tolist()
        finish_reason = "length"
        if tok.eos_token_id is not None and tok.eos_token_id in new_ids:
            new_ids = new_ids[: new_ids.index(tok.eos_token_id)]
            finish_reason = "stop"
        text: str = tok.decode(new_ids, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in params.stop) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
            finish_reason = "stop"
        return Completion(text, finish_reason, len(prompt_ids), len(new_ids))


def load_generator(cfg: ServeConfig) -> TextGenerator:
    """The model of ``cfg``, warmed up with one generated token (so the first request is not slower)."""
    generator = TransformersGenerator(cfg.model_dir, cfg.base_model)
    generator.complete(generator.encode("Hello") or [0], SamplingParams(max_tokens=1, temperature=0.0))
    return generator


# --- metrics ------------------------------------------------------------------------------------------


class ContractMetrics:
    """The serving half of the metric contract in a registry of its own (plus process metrics)."""

    def __init__(self, cfg: ServeConfig) -> None:
        from prometheus_client import (
            GC_COLLECTOR,
            PLATFORM_COLLECTOR,
            PROCESS_COLLECTOR,
            CollectorRegistry,
            Counter,
            Histogram,
            disable_created_metrics,
        )

        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series: nothing reads them
        self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        labels = (conventions.LABEL_MODEL, conventions.LABEL_VERSION)
        self.requests = Counter(
            cfg.requests_metric.removesuffix("_total"),
            "Completion requests answered, by HTTP status code.",
            labelnames=(*labels, conventions.LABEL_CODE),
            registry=self.registry,
        )
        self.duration = Histogram(
            cfg.duration_metric,
            "Seconds from a completion request's arrival to its response.",
            labelnames=labels,
            buckets=cfg.buckets,
            registry=self.registry,
        )
        self._model = (cfg.model_name, cfg.version)
        self._duration = self.duration.labels(*self._model)
        for code in PRE_INITIALISED_CODES:
            self.requests.labels(*self._model, code)

    def observe(self, code: int, seconds: float) -> None:
        self.requests.labels(*self._model, str(code)).inc()
        self._duration.observe(seconds)


class ErrorInjector:
    """Decides, in arrival order, which completion requests answer 500 (``--inject-error-ratio``)."""

    def __init__(self, ratio: float, seed: int) -> None:
        self.ratio = ratio
        self._random = random.Random(seed)

    def should_fail(self) -> bool:
        return self.ratio > 0 and self._random.random() < self.ratio


# --- the application ----------------------------------------------------------------------------------


class ServerState:
    """What the handlers share; touched only from the event loop, except ``generator`` and ``ready``."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        self.metrics = ContractMetrics(cfg)
        self.injector = ErrorInjector(cfg.inject_error_ratio, cfg.seed)
        self.ready = threading.Event()
        self.generator: TextGenerator | None = None
        self.load_error: str | None = None
        self.in_flight = 0
        self.created = int(time.time())


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, at most ``limit`` bytes (413) and received within ``timeout`` seconds (408)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise ApiError(413, f"request body over the limit of {limit} bytes", code="request_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"request body over the limit of {limit} bytes", code="request_too_large")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"request body not received within {timeout:g} seconds", code="request_timeout") from None
    return b"".join(chunks)


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise _invalid("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _invalid("the request body must be a JSON object")
    return data


def _number(data: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _invalid(f"'{key}' must be a number from {low:g} to {high:g}", param=key)
    return float(value)


def sampling_params(data: dict[str, Any], cfg: ServeConfig) -> SamplingParams:
    """The sampling fields of an OpenAI request; :class:`ApiError` 400 naming the field that is wrong."""
    for key, unused in UNSUPPORTED_FIELDS.items():
        if data.get(key) not in (None, False, unused):  # `"logprobs": false` is how chat says "not used"
            raise _invalid(f"'{key}' is not supported by this server", param=key, code="unsupported_parameter")
    max_tokens = data.get("max_tokens", data.get("max_completion_tokens"))
    if max_tokens is None:
        max_tokens = cfg.default_max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _invalid("'max_tokens' must be a positive integer", param="max_tokens")
    if max_tokens > cfg.max_tokens_limit:
        raise _invalid(
            f"'max_tokens' is {max_tokens}, more than this server's limit of {cfg.max_tokens_limit}",
            param="max_tokens",
        )
    stop = data.get("stop")
    stops: tuple[str, ...] = ()
    if isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= MAX_STOP_SEQUENCES:
        stops = tuple(stop)
    elif stop is not None:
        raise _invalid(f"'stop' must be a string or a list of up to {MAX_STOP_SEQUENCES} strings", param="stop")
    if any(not s for s in stops):
        raise _invalid("'stop' sequences must not be empty", param="stop")
    temperature = _number(data, "temperature", 1.0, 0.0, 2.0)
    top_p = _number(data, "top_p", 1.0, 0.0, 1.0)
    if top_p == 0:
        raise _invalid("'top_p' must be greater than 0", param="top_p")
    return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stops)


def _unicode(text: str, param: str) -> str:
    """``text`` when it is valid Unicode; JSON's ``\\ud800`` escapes decode to lone surrogates, which no
    tokenizer accepts (a 400, never a 500)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(f"'{param}' holds a lone UTF-16 surrogate (not valid Unicode)", param=param) from None
    return text


def _prompts(data: dict[str, Any]) -> list[str]:
    prompt = data.get("prompt")
    if isinstance(prompt, str):
        return [_unicode(prompt, "prompt")]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) > MAX_PROMPTS_PER_REQUEST:
            raise _invalid(f"at most {MAX_PROMPTS_PER_REQUEST} prompts per request", param="prompt")
        return [_unicode(p, "prompt") for p in prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, int | list) for p in prompt):
        raise _invalid("token-id prompts are not supported; send text", param="prompt")
    raise _invalid("'prompt' must be a string or a non-empty list of strings", param="prompt")


def _messages(data: dict[str, Any]) -> list[dict[str, str]]:
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("'messages' must be a non-empty list", param="messages")
    out: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _invalid(f"messages[{i}] must be an object with a 'role'", param="messages")
        content = message.get("content")
        if isinstance(content, list):  # content parts: only text is understood
            if not all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
            ):
                raise _invalid(f"messages[{i}]: only text content parts are supported", param="messages")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise _invalid(f"messages[{i}].content must be a string or a list of text parts", param="messages")
        out.append({"role": _unicode(message["role"], "messages"), "content": _unicode(content, "messages")})
    return out


def _check_lengths(prompt_tokens: int, params: SamplingParams, cfg: ServeConfig, context: int | None) -> None:
    if prompt_tokens == 0:
        raise _invalid("the prompt is empty", param="prompt")
    if prompt_tokens > cfg.max_prompt_tokens:
        raise _invalid(
            f"the prompt has {prompt_tokens} tokens, more than this server's limit of {cfg.max_prompt_tokens}",
            param="prompt",
            code="prompt_too_long",
        )
    if context is not None and prompt_tokens + params.max_tokens > context:
        raise _invalid(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_tokens + params.max_tokens} tokens ({prompt_tokens} in the prompt, {params.max_tokens} for the "
            "completion). Please reduce the prompt or max_tokens.",
            param="max_tokens",
            code="context_length_exceeded",
        )


def build_app(
    cfg: ServeConfig,
    load: Callable[[], TextGenerator] | None = None,
    on_load_failure: Callable[[str], None] | None = None,
) -> Starlette:
    """The ASGI application. The model is loaded by ``load`` (default: :func:`load_generator`) in a thread
    started at startup, so ``/healthz`` answers while it loads; ``on_load_failure(message)`` is called when
    loading fails (the command line shuts the server down, exit 3)."""
    from prometheus_client.exposition import choose_encoder
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    state = ServerState(cfg)
    loader = load or (lambda: load_generator(cfg))

    def load_model() -> None:
        started = time.perf_counter()
        try:
            state.generator = loader()
        except Exception as exc:
            why = str(exc) if isinstance(exc, UsageError) else f"{type(exc).__name__}: {exc}"
            state.load_error = " ".join(why.split())
            if on_load_failure is not None:
                on_load_failure(state.load_error)
            return
        state.ready.set()
        seconds = time.perf_counter() - started
        print(f"{STEP}: model {cfg.model_name} version {cfg.version} loaded in {seconds:.1f}s; ready", file=sys.stderr)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        threading.Thread(target=load_model, name="model-loader", daemon=True).start()
        yield

    def require_generator() -> TextGenerator:
        if state.generator is None:
            why = f"the model failed to load: {state.load_error}" if state.load_error else "the model is loading"
            raise ApiError(503, why, "server_error", code="model_not_ready", headers={"Retry-After": "5"})
        return state.generator

    async def completion_request(
        request: Request, answer: Callable[[dict[str, Any], TextGenerator], Awaitable[dict[str, Any]]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            if state.injector.should_fail():
                raise ApiError(500, "injected error (--inject-error-ratio)", "server_error", code="injected_error")
            generator = require_generator()
            if state.in_flight >= cfg.max_concurrency:
                raise ApiError(
                    429,
                    f"too many concurrent requests (limit {cfg.max_concurrency}); retry later",
                    "rate_limit_error",
                    code="too_many_concurrent_requests",
                    headers={"Retry-After": "1"},
                )
            state.in_flight += 1
            try:
                data = _parse_json_object(await read_body(request, cfg.max_body_bytes, cfg.body_timeout))
                model = data.get("model", cfg.model_name)
                if model != cfg.model_name:
                    raise ApiError(404, f"The model `{model}` does not exist.", param="model", code="model_not_found")
                body = await answer(data, generator)
            finally:
                state.in_flight -= 1
            status = 200
            return JSONResponse(body)
        except ApiError as exc:
            status = exc.status
            return exc.response()
        except ClientDisconnect:
            status = CLIENT_CLOSED_REQUEST
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except Exception as exc:
            print(f"{STEP}: error: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
            return ApiError(500, "internal error while generating", "server_error").response()
        finally:
            state.metrics.observe(status, time.perf_counter() - started)

    async def generate(
        generator: TextGenerator, prompts: list[str], params: SamplingParams, *, templated: bool = False
    ) -> list[Completion]:
        def run() -> list[Completion]:  # on a worker thread: tokenizing a long prompt must not stall the loop
            # A chat template writes the special tokens (BOS) itself; the tokenizer must not add them again.
            encoded = [generator.encode(p, add_special_tokens=not templated) for p in prompts]
            for ids in encoded:
                _check_lengths(len(ids), params, cfg, generator.context_length)
            return [generator.complete(ids, params) for ids in encoded]

        return await asyncio.to_thread(run)

    def usage(results: Sequence[Completion]) -> dict[str, int]:
        prompt = sum(r.prompt_tokens for r in results)
        completion = sum(r.completion_tokens for r in results)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    async def answer_completion(data: dict[str, Any], generator: TextGenerator) -> dict[str, Any]:
        prompts = _prompts(data)
        results = await generate(generator, prompts, sampling_params(data, cfg))
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": cfg.model_name,
            "choices": [
                {"index": i, "text": r.text, "logprobs": None, "finish_reason": r.finish_reason}
                for i, r in enumerate(results)
            ],
            "usage": usage(results),
        }

    async def answer_chat(data: dict[str, Any], generator: TextGenerator) -> dict[str, Any]:
        prompt = generator.chat_prompt(_messages(data))
        results = await generate(generator, [prompt], sampling_params(data, cfg), templated=True)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": cfg.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": results[0].text},
                    "logprobs": None,
                    "finish_reason": results[0].finish_reason,
                }
            ],
            "usage": usage(results),
        }

    async def completions(request: Request) -> Response:
        return await completion_request(request, answer_completion)

    async def chat_completions(request: Request) -> Response:
        return await completion_request(request, answer_chat)

    async def models(request: Request) -> Response:
        model = {"id": cfg.model_name, "object": "model", "created": state.created, "owned_by": "llmops"}
        return JSONResponse({"object": "list", "data": [model]})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            require_generator()
        except ApiError as exc:
            return exc.response()
        return JSONResponse({"status": "ready", "model": cfg.model_name, "version": cfg.version})

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(state.metrics.registry), headers={"Content-Type": content_type})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return ApiError(exc.status_code, str(exc.detail), code=code, headers=dict(exc.headers or {})).response()

    async def server_error(request: Request, exc: Exception) -> Response:
        return ApiError(500, "internal server error", "server_error").response()

    routes = [
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.llmops = state
    return app


# --- command line ---------------------------------------------------------------------------------------


def serve(cfg: ServeConfig) -> int:
    """Run the server until SIGTERM/SIGINT (exit 0) or until the model fails to load (exit 3)."""
    import uvicorn

    failure: list[str] = []
    stop_signals: list[int] = []
    server: uvicorn.Server | None = None

    def on_load_failure(message: str) -> None:
        failure.append(message)
        if server is not None:
            server.should_exit = True

    app = build_app(cfg, on_load_failure=on_load_failure)
    config = uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        log_level=cfg.log_level,
        access_log=False,
        lifespan="on",
        loop="asyncio",
        http="h11",
        timeout_graceful_shutdown=math.ceil(cfg.graceful_timeout),
        server_header=False,
    )
    server = uvicorn.Server(config)

    def remember(sig: int, frame: FrameType | None) -> None:
        stop_signals.append(sig)

    # uvicorn handles SIGTERM/SIGINT while serving, then restores these handlers and raises the signal again:
    # ours records it, so a graceful stop exits 0 instead of dying of the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, remember)

    try:  # bound here rather than by uvicorn, which answers a busy port with sys.exit
        family = socket.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.create_server((cfg.host, cfg.port), family=family)
    except OSError as exc:
        raise RuntimeStepError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}") from None

    async def run() -> None:
        assert server is not None
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            host, port = listener.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            print(f"{STEP}: listening on http://{shown}:{port}", file=sys.stderr, flush=True)
        await task

    with listener:
        if not stop_signals:
            asyncio.run(run())
    if failure:
        raise RuntimeStepError(f"cannot load the model: {failure[0]}")
    return 0


def build_parser() -> ArgParser:
    p = ArgParser(prog=f"python -m llmops_compiler.runtime.{STEP}", description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", required=True, help="full model directory, or a LoRA adapter with --base-model")
    p.add_argument("--base-model", help="base model directory of an adapter (merged at load time)")
    p.add_argument("--model-name", required=True, help="served model id and the `model` label of the metrics")
    p.add_argument("--version", help="the `version` label; default: the version in <model-dir>/llmops-model.json")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 inside a pod)")
    p.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks a free one (printed)")
    p.add_argument("--max-concurrency", type=int, default=4, help="completion requests in flight; more get 429")
    p.add_argument("--max-prompt-tokens", type=int, default=2048)
    p.add_argument("--max-tokens-limit", type=int, default=512, help="largest max_tokens a request may ask")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20)
    p.add_argument("--body-timeout", type=float, default=10.0, help="seconds to receive a request body (408)")
    p.add_argument("--requests-metric", default=conventions.REQUESTS_TOTAL, help="counter name (ends in _total)")
    p.add_argument("--duration-metric", default=DEFAULT_DURATION_METRIC, help="histogram base name (no _bucket)")
    p.add_argument("--buckets", default=",".join(f"{b:g}" for b in DEFAULT_BUCKETS), help="histogram bounds, s")
    p.add_argument("--graceful-timeout", type=float, default=30.0, help="seconds in-flight requests get on SIGTERM")
    p.add_argument("--inject-error-ratio", type=float, default=0.0, help="TESTING AID: share of requests to fail")
    p.add_argument("--seed", type=int, default=0, help="seed of the error injection")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    return p


def config_from_args(argv: list[str] | None) -> ServeConfig:
    a = build_parser().parse_args(argv)
    version = a.version
    if version is None:
        metadata_path = Path(a.model_dir) / METADATA_FILE
        try:
            version = str(json.loads(metadata_path.read_text(encoding="utf-8"))["version"])
        except (OSError, ValueError, KeyError, TypeError):
            raise UsageError(f"--version is required: no version in {metadata_path}") from None
    return ServeConfig(
        model_dir=a.model_dir,
        model_name=a.model_name,
        version=version,
        base_model=a.base_model,
        host=a.host,
        port=a.port,
        max_concurrency=a.max_concurrency,
        max_prompt_tokens=a.max_prompt_tokens,
        max_tokens_limit=a.max_tokens_limit,
        default_max_tokens=min(16, a.max_tokens_limit),
        max_body_bytes=a.max_body_bytes,
        body_timeout=a.body_timeout,
        requests_metric=a.requests_metric,
        duration_metric=a.duration_metric,
        buckets=parse_buckets(a.buckets),
        graceful_timeout=a.graceful_timeout,
        inject_error_ratio=a.inject_error_ratio,
        seed=a.seed,
        log_level=a.log_level,
    )


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        cfg = config_from_args(argv)
        validate(cfg)
        return serve(cfg)

    return run_step(STEP, body)


if __name__ == "__main__":
    raise SystemExit(main())
