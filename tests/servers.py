"""Real Prometheus, Pushgateway and Alertmanager servers on 127.0.0.1 for tests.

Each helper is a context manager that starts the real binary (Debian's ``prometheus``,
``prometheus-pushgateway``, ``prometheus-alertmanager``, or the names in the environment variables
``LLMOPS_PROMETHEUS``, ``LLMOPS_PUSHGATEWAY``, ``LLMOPS_ALERTMANAGER``) on a free loopback port with its own
temporary storage directory, waits until ``GET /-/ready`` answers 200, and yields a :class:`Server`. On exit
the process group gets SIGTERM, then SIGKILL after a grace period. Every process also runs under
``timeout`` (GNU coreutils) with a hard lifetime (``lifetime`` seconds, 300 by default), so it stops by
itself even if the test process is killed before it can clean up.

A missing binary raises :class:`ServerError` (tests fail, never skip).

Usage::

    with pushgateway() as pg, prometheus([rules], [pg.url]) as prom:
        push_something(pg.url)
        wait_for(lambda: query(prom.url, "llmops_drift_score"), timeout=20)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

DEFAULT_LIFETIME_S = 300.0
READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0

_BINARIES = {
    "prometheus": ("LLMOPS_PROMETHEUS", ("prometheus",)),
    "pushgateway": ("LLMOPS_PUSHGATEWAY", ("prometheus-pushgateway", "pushgateway")),
    "alertmanager": ("LLMOPS_ALERTMANAGER", ("prometheus-alertmanager", "alertmanager")),
}


class ServerError(RuntimeError):
    """A server binary is missing, did not start, or did not become ready."""


@dataclass
class Server:
    """A running server: ``url`` is ``http://127.0.0.1:<port>`` (no trailing slash)."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    config_path: Path | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, as Prometheus wants scrape and Alertmanager targets."""
        return f"127.0.0.1:{self.port}"

    def log(self, tail: int = 4000) -> str:
        """The last ``tail`` characters of the server's combined stdout and stderr."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]
        except OSError:
            return ""

    def running(self) -> bool:
        return self.process.poll() is None


# --------------------------------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------------------------------


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET ``url``; returns (status, body), also for HTTP error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def get_json(url: str, timeout: float = 10.0) -> Any:
    status, body = http_get(url, timeout)
    if status != 200:
        raise ServerError(f"GET {url}: HTTP {status}: {body[:500]!r}")
    return json.loads(body)


def query(prom_url: str, promql: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Instant query; returns ``data.result`` (a list of ``{"metric": {...}, "value": [ts, "v"]}``)."""
    url = f"{prom_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    payload = get_json(url, timeout)
    if payload.get("status") != "success":
        raise ServerError(f"query {promql!r} failed: {payload}")
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result


def prometheus_alerts(prom_url: str) -> list[dict[str, Any]]:
    """Alerts Prometheus currently holds (pending and firing), from ``/api/v1/alerts``."""
    alerts: list[dict[str, Any]] = get_json(f"{prom_url}/api/v1/alerts")["data"]["alerts"]
    return alerts


def alertmanager_alerts(am_url: str) -> list[dict[str, Any]]:
    """Alerts Alertmanager has received, from ``/api/v2/alerts``."""
    alerts: list[dict[str, Any]] = get_json(f"{am_url}/api/v2/alerts")
    return alerts


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.2,
    message: str | None = None,
) -> T:
    """Call ``predicate`` until it returns something truthy and return that; raise TimeoutError after
    ``timeout`` seconds (the last exception the predicate raised, if any, is chained)."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_exc = None
        except Exception as exc:  # keep polling, report the last failure
            last_exc = exc
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"{what} not met within {timeout:g}s") from last_exc
        time.sleep(interval)


# --------------------------------------------------------------------------------------------------
# Process management
# --------------------------------------------------------------------------------------------------


def find_binary(kind: str) -> str:
    """Absolute path of the server binary for ``kind`` ("prometheus", "pushgateway", "alertmanager")."""
    env_var, names = _BINARIES[kind]
    override = os.environ.get(env_var)
    candidates = (override,) if override else names
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    raise ServerError(
        f"{kind} binary not found (looked for {', '.join(candidates)} on PATH; set {env_var} to override). "
        "On Debian/Ubuntu: apt-get install prometheus prometheus-pushgateway prometheus-alertmanager"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group we created (``timeout`` and the server), SIGKILL after ``grace``."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def _serve(
    kind: str,
    args_for: Callable[[int, Path], list[str]],
    workdir: Path,
    lifetime: float,
    ready_timeout: float,
    config_path: Path | None = None,
    attempts: int = 3,
) -> Iterator[Server]:
    binary = find_binary(kind)
    timeout_bin = shutil.which("timeout")
    if timeout_bin is None:
        raise ServerError("coreutils 'timeout' not found; it bounds the servers' lifetime")
    last_error = ""
    for attempt in range(attempts):
        port = free_port()
        log_path = workdir / f"{kind}-{attempt}.log"
        # `timeout` puts itself and the server into a new process group (no --foreground) and forwards
        # SIGTERM to the server; start_new_session makes that group ours to signal as a whole.
        cmd = [timeout_bin, "--kill-after=10", f"{lifetime:g}", binary, *args_for(port, workdir)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        server = Server(kind, f"http://127.0.0.1:{port}", port, process, workdir, log_path, config_path)
        try:
            if _wait_ready(server, ready_timeout):
                try:
                    yield server
                finally:
                    _stop(process)
                return
            last_error = f"{kind} exited with status {process.returncode} before becoming ready"
        except BaseException:
            _stop(process)
            raise
        _stop(process)
        if "address already in use" not in server.log().lower():
            break
    raise ServerError(f"{last_error}; command: {' '.join(cmd)}\n--- log ---\n{server.log()}")


def _wait_ready(server: Server, timeout: float) -> bool:
    """True once ``/-/ready`` answers 200; False if the process exits first; ServerError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.running():
            return False
        try:
            status, _ = http_get(f"{server.url}/-/ready", timeout=2.0)
            if status == 200:
                return True
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    _stop(server.process)
    raise ServerError(
        f"{server.name} not ready at {server.url} after {timeout:g}s\n--- log ---\n{server.log()}"
    )


@contextlib.contextmanager
def _workdir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"llmops-{prefix}-") as tmp:
        yield Path(tmp)


# --------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def pushgateway(
    lifetime: float = DEFAULT_LIFETIME_S,
    extra_args: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT_S,
) -> Iterator[Server]:
    """A Pushgateway (admin API enabled, so ``PUT /api/v1/admin/wipe`` works; no persistence to disk
    outside its temporary directory)."""
    with _workdir("pushgateway") as workdir:

        def args(port: int, wd: Path) -> list[str]:
            return [
                f"--web.listen-address=127.0.0.1:{port}",
                f"--persistence.file={wd / 'pushgateway.data'}",
                "--web.enable-admin-api",
                "--log.level=warn",
                *extra_args,
            ]

        with _serve("pushgateway", args, workdir, lifetime, ready_timeout) as server:
            yield server


def _host_port(target: str) -> tuple[str, str, str]:
    """(scheme, host:port, path) of ``http://host:port/path`` or ``host:port``."""
    if "://" not in target:
        return "http", target.rstrip("/"), ""
    parsed = urllib.parse.urlsplit(target)
    if not parsed.netloc:
        raise ValueError(f"bad target {target!r}")
    return parsed.scheme, parsed.netloc, parsed.path.rstrip("/")


def prometheus_config(
    rule_files: Sequence[Path],
    scrape_targets: Sequence[str],
    alertmanager_url: str | None,
    evaluation_interval: str = "1s",
    scrape_interval: str = "1s",
    file_sd: Sequence[Path] = (),
) -> dict[str, Any]:
    """The prometheus.yml the :func:`prometheus` helper runs: one job per target, ``honor_labels: true``
    (the Pushgateway's ``job``/``instance`` labels are kept), alerts sent to ``alertmanager_url``.

    ``file_sd``: JSON files of Prometheus' file-based service discovery (``[{"targets": [...], "labels":
    {...}}]``), read again on every change, for targets that come and go while the server runs (pods); their
    labels are attached to every scraped series, as Kubernetes service discovery attaches ``namespace``."""
    scrape_configs: list[dict[str, Any]] = []
    for i, target in enumerate(scrape_targets):
        scheme, address, path = _host_port(target)
        scrape_configs.append(
            {
                "job_name": f"target-{i}",
                "honor_labels": True,
                "scheme": scheme,
                "metrics_path": path or "/metrics",
                "static_configs": [{"targets": [address]}],
            }
        )
    if file_sd:
        scrape_configs.append({"job_name": "file-sd", "file_sd_configs": [
            {"files": [str(Path(f).resolve()) for f in file_sd], "refresh_interval": "1s"}]})
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(Path(f).resolve()) for f in rule_files],
        "scrape_configs": scrape_configs,
    }
    if alertmanager_url:
        scheme, address, path = _host_port(alertmanager_url)
        am: dict[str, Any] = {"scheme": scheme, "static_configs": [{"targets": [address]}]}
        if path:
            am["path_prefix"] = path
        config["alerting"] = {"alertmanagers": [am]}
    return config


@contextlib.contextmanager
def prometheus(
    rule_files: Sequence[Path] = (),
    scrape_targets: Sequence[str] = (),
    alertmanager_url: str | None = None,
    evaluation_interval: str = "1s",
    scrape_interval: str = "1s",
    lifetime: float = DEFAULT_LIFETIME_S,
    extra_args: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT_S,
    file_sd: Sequence[Path] = (),
) -> Iterator[Server]:
    """A Prometheus evaluating ``rule_files`` and scraping ``scrape_targets`` (URLs or ``host:port``) and the
    targets listed in the ``file_sd`` files (see :func:`prometheus_config`).

    Invalid rule files make Prometheus exit at start-up; that raises :class:`ServerError` with its log.
    Alerts are re-sent to Alertmanager every second (``--rules.alert.resend-delay=1s``).
    """
    for f in rule_files:
        if not Path(f).is_file():
            raise ServerError(f"rule file {f} does not exist")
    with _workdir("prometheus") as workdir:
        config_path = workdir / "prometheus.yml"
        config = prometheus_config(
            rule_files, scrape_targets, alertmanager_url, evaluation_interval, scrape_interval, file_sd
        )
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

        def args(port: int, wd: Path) -> list[str]:
            return [
                f"--config.file={config_path}",
                f"--storage.tsdb.path={wd / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
                "--rules.alert.resend-delay=1s",
                "--log.level=warn",
                *extra_args,
            ]

        with _serve("prometheus", args, workdir, lifetime, ready_timeout, config_path) as server:
            yield server


@contextlib.contextmanager
def alertmanager(
    config_yaml: str,
    lifetime: float = DEFAULT_LIFETIME_S,
    extra_args: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT_S,
) -> Iterator[Server]:
    """An Alertmanager with the given configuration (clustering disabled)."""
    with _workdir("alertmanager") as workdir:
        config_path = workdir / "alertmanager.yml"
        config_path.write_text(config_yaml, encoding="utf-8")

        def args(port: int, wd: Path) -> list[str]:
            return [
                f"--config.file={config_path}",
                f"--storage.path={wd / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
                *extra_args,
            ]

        with _serve("alertmanager", args, workdir, lifetime, ready_timeout, config_path) as server:
            yield server


def reload(server: Server, timeout: float = 10.0) -> None:
    """Make a Prometheus or Alertmanager read its configuration (and rule files) again, as the
    prometheus-operator's config reloader does: ``POST /-/reload``. Raises ServerError when it refuses."""
    request = urllib.request.Request(f"{server.url}/-/reload", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        status, body = int(exc.code), exc.read()
    if status != 200:
        raise ServerError(f"{server.name} refused to reload: HTTP {status}: {body[:500]!r}\n{server.log()}")
