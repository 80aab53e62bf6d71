"""The reference server (``python -m llmops_compiler.runtime.serve``) in a subprocess on 127.0.0.1, for tests.

:func:`serve_process` starts it under ``timeout`` (GNU coreutils) with a hard lifetime, so it stops by
itself even when the test process dies; it binds port 0 and reads the port the server prints, then waits for
``/readyz``. Helpers speak plain HTTP with the standard library (``urllib``, raw sockets for a request whose
body arrives late) and parse ``/metrics`` with prometheus-client's own parser.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"serve: listening on http://127\.0\.0\.1:(\d+)")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class ServeError(RuntimeError):
    """The server did not start, did not become ready, or answered something unparseable."""


@dataclass
class ServeProcess:
    """A running server: ``url`` is ``http://127.0.0.1:<port>``; ``process`` is the ``timeout`` wrapper."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def request(
        self, method: str, path: str, body: bytes | Mapping[str, Any] | None = None, timeout: float = 30.0
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request; returns (status, headers, body), also for error statuses."""
        data = json.dumps(body).encode() if isinstance(body, Mapping) else body
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return int(resp.status), dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), dict(exc.headers), exc.read()

    def post(self, path: str, body: bytes | Mapping[str, Any]) -> tuple[int, Any]:
        """POST ``body`` (a mapping is sent as JSON); returns (status, parsed JSON body)."""
        status, _, raw = self.request("POST", path, body)
        return status, json.loads(raw)

    def get_json(self, path: str) -> tuple[int, Any]:
        status, _, raw = self.request("GET", path)
        return status, json.loads(raw)

    def metrics(self) -> Samples:
        """``/metrics`` as ``{(sample name, labels): value}`` (prometheus-client's text parser)."""
        from prometheus_client.parser import text_string_to_metric_families

        status, _, raw = self.request("GET", "/metrics")
        if status != 200:
            raise ServeError(f"/metrics answered {status}")
        samples: Samples = {}
        for family in text_string_to_metric_families(raw.decode()):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    def open_partial_request(self, path: str, body: bytes, sent: int) -> socket.socket:
        """Send the headers of ``POST path`` and the first ``sent`` bytes of ``body``; the rest is sent by
        :func:`finish_request`. The server holds the request in flight meanwhile."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + body[:sent])
        return sock


def finish_request(sock: socket.socket, rest: bytes) -> tuple[int, Any]:
    """Send ``rest`` of a request opened by :meth:`ServeProcess.open_partial_request`; (status, JSON body)."""
    with sock:
        if rest:
            sock.sendall(rest)
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, Any]:
    """Read a whole ``Connection: close`` response from ``sock``; (status, JSON body)."""
    chunks: list[bytes] = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise ServeError(f"not an HTTP response: {raw[:200]!r}")
    return int(head.split()[1]), json.loads(body)


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise ServeError(f"{what} not within {timeout:g}s")


def stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group (``timeout`` and the server), SIGKILL after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)


@contextlib.contextmanager
def serve_process(
    args: Sequence[str], workdir: Path, lifetime: float = 180.0, ready_timeout: float = 120.0
) -> Iterator[ServeProcess]:
    """Run the server with ``args`` (plus ``--port 0``) until the block ends or ``lifetime`` seconds pass."""
    timeout_bin = shutil.which("timeout")
    if timeout_bin is None:
        raise ServeError("coreutils 'timeout' not found; it bounds the server's lifetime (apt-get install coreutils)")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"serve-{time.monotonic_ns()}.log"
    cmd = [timeout_bin, "--kill-after=10", f"{lifetime:g}", sys.executable, "-m", "llmops_compiler.runtime.serve"]
    cmd += ["--host", "127.0.0.1", "--port", "0", *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    try:

        def port() -> int | None:
            if process.poll() is not None:
                raise ServeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
            match = LISTENING.search(log_path.read_text(encoding="utf-8", errors="replace"))
            return int(match[1]) if match else None

        bound = wait_until(port, ready_timeout, "the server's port")
        server = ServeProcess(f"http://127.0.0.1:{bound}", bound, process, log_path)

        def ready() -> bool:
            if process.poll() is not None:
                raise ServeError(f"server exited with {process.returncode}:\n{server.log()}")
            return server.request("GET", "/readyz")[0] == 200

        wait_until(ready, ready_timeout, "/readyz answering 200")
        yield server
    finally:
        stop(process)
