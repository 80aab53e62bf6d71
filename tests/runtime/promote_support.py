"""Real things the promote tests run against: a Prometheus whose history is backfilled with promtool, GitOps
repositories (a bare remote and clones), a git smart-HTTP server that wants a token, and a small fake of
GitHub's pull-request API. Everything binds 127.0.0.1 and stops by itself."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any

import servers

LIFETIME_S = 240.0
GIT_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid", "GIT_COMMITTER_NAME": "test",
           "GIT_COMMITTER_EMAIL": "test@example.invalid", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


# --- Prometheus with a backfilled history ----------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """Requests of one model version in one namespace: a constant rate, a share of 500s, and the share of
    requests per latency bucket (upper bound in seconds → share; what is left falls above the last bound)."""

    namespace: str
    version: int
    requests_per_second: float
    error_ratio: float
    latency_shares: tuple[tuple[float, float], ...]


CLIENT_ERROR_SHARE = 0.1
"""Share of every track's requests answered 404 or 429 in the backfilled series."""


def openmetrics(traffic: list[Traffic], model: str, start: datetime, end: datetime, step_s: int,
                buckets: tuple[float, ...]) -> str:
    """OpenMetrics text of the metric contract (`llm_requests_total{model,version,code,namespace}` and
    `llm_request_duration_seconds_bucket{model,version,le,namespace}`) for ``traffic`` from ``start`` to ``end``,
    one sample every ``step_s`` seconds, as `promtool tsdb create-blocks-from openmetrics` reads it."""
    times = [int(start.timestamp()) + offset for offset in range(0, int((end - start).total_seconds()) + 1, step_s)]
    requests: list[str] = ["# HELP llm_requests Requests answered.", "# TYPE llm_requests counter"]
    durations: list[str] = ["# HELP llm_request_duration_seconds Request duration.",
                            "# TYPE llm_request_duration_seconds histogram"]
    for item in traffic:
        labels = f'model="{model}",version="{item.version}",namespace="{item.namespace}"'
        # Every candidate also gets client errors and load shedding (4xx, 429): they are not the version's
        # errors, so the analysis must not count them (a healthy candidate at 0.2% 5xx passes).
        client_errors = (("404", CLIENT_ERROR_SHARE / 2), ("429", CLIENT_ERROR_SHARE / 2))
        for code, share in (("200", 1 - item.error_ratio - CLIENT_ERROR_SHARE), ("500", item.error_ratio),
                            *client_errors):
            rate = item.requests_per_second * share
            requests += [f'llm_requests_total{{{labels},code="{code}"}} {rate * (t - times[0]):.3f} {t}'
                         for t in times]
        cumulative = 0.0
        shares = dict(item.latency_shares)
        for bound in (*buckets, float("inf")):
            cumulative = 1.0 if bound == float("inf") else min(1.0, cumulative + shares.get(bound, 0.0))
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            rate = item.requests_per_second * cumulative
            durations += [f'llm_request_duration_seconds_bucket{{{labels},le="{le}"}} {rate * (t - times[0]):.3f} {t}'
                          for t in times]
    return "\n".join([*requests, *durations, "# EOF"]) + "\n"


def backfill(text: str, data_dir: Path) -> None:
    """Write ``text`` (OpenMetrics) as TSDB blocks into ``data_dir`` with promtool; fails with an install hint."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise servers.ServerError("promtool not found: apt-get install prometheus")
    source = data_dir.parent / "backfill.om"
    source.write_text(text, encoding="utf-8")
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
                   check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def prometheus_with_history(text: str, lifetime: float = LIFETIME_S) -> Iterator[servers.Server]:
    """A Prometheus on loopback serving the backfilled ``text`` (nothing scraped). Its TSDB path has to be the
    folder the blocks were written to, which `servers.prometheus` does not let a caller choose; retention is
    set wide so blocks far from the clock are not deleted."""
    with tempfile.TemporaryDirectory(prefix="llmops-promote-prometheus-") as tmp:
        workdir = Path(tmp)
        data = workdir / "data"
        backfill(text, data)
        config = workdir / "prometheus.yml"
        config.write_text("global: {scrape_interval: 1m}\n", encoding="utf-8")

        def args(port: int, _: Path) -> list[str]:
            return [f"--config.file={config}", f"--storage.tsdb.path={data}", f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=100y", "--log.level=warn"]

        with servers._serve("prometheus", args, workdir, lifetime, servers.READY_TIMEOUT_S, config) as server:
            yield server


# --- git ---------------------------------------------------------------------------------------------------


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run git with a fixed identity; stdout. Raises CalledProcessError with git's message."""
    result = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV, **(env or {})},
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, ["git", *args], result.stdout, result.stderr)
    return result.stdout


def make_remote(project: Path, remote: Path, branch: str = "main") -> str:
    """Commit ``project`` (specs/ and generated/) as the first commit of ``branch`` and make ``remote`` a bare
    repository holding it; returns that commit."""
    git("init", "--quiet", "-b", branch, cwd=project)
    git("add", "--all", cwd=project)
    git("commit", "--quiet", "-m", "initial", cwd=project)
    git("clone", "--quiet", "--bare", str(project), str(remote))
    return git("rev-parse", "HEAD", cwd=project).strip()


def remote_file(remote: Path, ref: str, path: str) -> str:
    return git("--git-dir", str(remote), "show", f"{ref}:{path}")


def commits_since(remote: Path, base: str, ref: str = "main") -> list[str]:
    """Commits on ``ref`` after ``base``, oldest first."""
    return git("--git-dir", str(remote), "rev-list", "--reverse", f"{base}..{ref}").split()


def commit_message(remote: Path, commit: str) -> str:
    return git("--git-dir", str(remote), "log", "-1", "--format=%B", commit)


def checkout(remote: Path, commit: str, into: Path) -> Path:
    """The tree of ``commit`` written into ``into`` (git archive)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "--git-dir", str(remote), "archive", commit], capture_output=True, check=True,
                             timeout=60).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


# --- a git smart-HTTP server that wants a token ------------------------------------------------------------


@dataclass
class GitHttpServer:
    url: str
    seen_authorizations: list[str] = field(default_factory=list)


@contextlib.contextmanager
def git_http_server(root: Path, username: str, token: str, lifetime: float = LIFETIME_S) -> Iterator[GitHttpServer]:
    """`git http-backend` (CGI) behind Basic authentication on loopback: the repositories under ``root`` at
    ``<url>/<name>.git``; requests without ``username:token`` get 401, as a forge answers."""
    expected = "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()
    record = GitHttpServer("")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _handle(self) -> None:
            authorization = self.headers.get("Authorization", "")
            record.seen_authorizations.append(authorization)
            body = self._body()
            if authorization != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            parsed = urllib.parse.urlsplit(self.path)
            env = {"PATH": os.environ.get("PATH", ""), "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1",
                   "REQUEST_METHOD": self.command, "PATH_INFO": parsed.path, "QUERY_STRING": parsed.query,
                   "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                   "REMOTE_USER": username, "REMOTE_ADDR": "127.0.0.1", "GIT_CONFIG_NOSYSTEM": "1"}
            encoding = self.headers.get("Content-Encoding")
            if encoding:
                env["HTTP_CONTENT_ENCODING"] = encoding
            output = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                                    timeout=60).stdout
            head, _, payload = output.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _handle
        do_POST = _handle

    with _serving(Handler, lifetime) as url:
        record.url = url
        yield record


@contextlib.contextmanager
def _serving(handler: type[BaseHTTPRequestHandler], lifetime: float) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stopper = threading.Timer(lifetime, server.shutdown)  # hard lifetime, whatever the test does
    stopper.daemon = True
    stopper.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stopper.cancel()
        server.shutdown()
        server.server_close()


# --- a fake of GitHub's pull-request API -------------------------------------------------------------------


@dataclass
class ForgeRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGitHub:
    """Records every request; ``POST /repos/{o}/{r}/pulls`` answers 201 the first time per head branch and 422
    ("A pull request already exists") after, as GitHub does; ``GET .../pulls?head=o:b`` lists the open one."""

    url: str = ""
    requests: list[ForgeRequest] = field(default_factory=list)
    open_pulls: dict[str, dict[str, Any]] = field(default_factory=dict)


@contextlib.contextmanager
def fake_github(lifetime: float = LIFETIME_S) -> Iterator[FakeGitHub]:
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body: dict[str, Any] = json.loads(raw) if raw else {}
            fake.requests.append(ForgeRequest("POST", self.path, dict(self.headers.items()), body))
            parts = self.path.strip("/").split("/")
            if len(parts) != 4 or parts[0] != "repos" or parts[3] != "pulls":
                return self._reply(404, {"message": "Not Found"})
            if not self.headers.get("Authorization", "").startswith("Bearer "):
                return self._reply(401, {"message": "Requires authentication"})
            head = str(body.get("head"))
            if head in fake.open_pulls:
                return self._reply(422, {"message": "Validation Failed", "errors": [
                    {"resource": "PullRequest", "code": "custom",
                     "message": f"A pull request already exists for {parts[1]}:{head}."}]})
            number = len(fake.open_pulls) + 1
            pull = {"number": number, "html_url": f"https://github.example/{parts[1]}/{parts[2]}/pull/{number}",
                    "head": {"ref": head}, "base": {"ref": body["base"]}, "state": "open", "title": body["title"]}
            fake.open_pulls[head] = pull
            return self._reply(201, pull)

        def do_GET(self) -> None:
            fake.requests.append(ForgeRequest("GET", self.path, dict(self.headers.items()), None))
            parsed = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parsed.query)
            head = query.get("head", [""])[0].split(":", 1)[-1]
            return self._reply(200, [fake.open_pulls[head]] if head in fake.open_pulls else [])

    with _serving(Handler, lifetime) as url:
        fake.url = url
        yield fake


def minutes(start: datetime, count: float) -> str:
    """``start + count`` minutes as ``--now`` takes it."""
    return (start + timedelta(minutes=count)).strftime("%Y-%m-%dT%H:%M:%SZ")
