"""Run a real Mosquitto and a real InfluxDB 1.x as child processes on free loopback ports.

Used by the test fixtures, ``qihe demo`` and the benchmarks (and a Prometheus for the metrics
tests). Each server gets its
own folder for config, data and log; :meth:`stop` ends it, :meth:`start` brings it
back on the same port with the same data (tests use that for real outages).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

__all__ = [
    "DevStackError",
    "InfluxdProcess",
    "MosquittoProcess",
    "PrometheusProcess",
    "find_program",
    "free_port",
]


class DevStackError(RuntimeError):
    """A local server could not be found, started or reached."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_program(binary: str, *fallbacks: str, package: str) -> str:
    """The path of ``binary`` (on PATH, else the first executable fallback); raise
    :class:`DevStackError` naming the Debian ``package`` that installs it."""
    for candidate in (shutil.which(binary), *fallbacks):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise DevStackError(
        f"{binary} is not installed; install the Debian package {package} or run ./dev.sh"
    )


class _ChildServer:
    name = "server"

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = Path(folder)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> Self:
        if self.running:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        command = self._command()
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DevStackError(
                    f"{self.name} exited with {self._proc.returncode} at start; "
                    f"see {self.log_path}:\n{self._tail()}"
                )
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise DevStackError(f"{self.name} did not answer on port {self.port} within {timeout}s")

    def stop(self, *, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MosquittoProcess(_ChildServer):
    """A Mosquitto 2.x broker on loopback, anonymous, persistent, with queue limits set on purpose.

    ``max_queued_messages`` is raised from Mosquitto's default of 1000 (which
    silently drops QoS 1 messages for a slow persistent subscriber) to a bound
    chosen for a consumer that is down for a while; see ``deploy/mosquitto``.
    """

    name = "mosquitto"

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        *,
        max_queued_messages: int = 1_000_000,
        extra_config: str = "",
    ) -> None:
        super().__init__(folder, port)
        self.max_queued_messages = max_queued_messages
        self.extra_config = extra_config

    def listener_config(self) -> list[str]:
        """The listener and who may connect: here plain TCP, anonymous (subclasses secure it)."""
        return [f"listener {self.port} {self.host}", "allow_anonymous true"]

    def config_text(self) -> str:
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        return "\n".join(
            [
                *self.listener_config(),
                "persistence true",
                f"persistence_location {data}/",
                "autosave_interval 1",
                # Started by root (as CI is), Mosquitto would drop to the mosquitto user,
                # which cannot write this private folder: it would never persist anything.
                *(["user root"] if os.geteuid() == 0 else []),
                f"max_queued_messages {self.max_queued_messages}",
                "max_queued_bytes 0",
                "max_inflight_messages 100",
                "log_dest stdout",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                self.extra_config,
                "",
            ]
        )

    def _command(self) -> list[str]:
        conf = self.folder / "mosquitto.conf"
        conf.write_text(self.config_text())
        return [
            find_program("mosquitto", "/usr/sbin/mosquitto", package="mosquitto"),
            "-c",
            str(conf),
        ]

    def _ready(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            return sock.connect_ex((self.host, self.port)) == 0


class InfluxdProcess(_ChildServer):
    """InfluxDB 1.x (Debian's 1.6.7) on loopback with its data under ``folder``."""

    name = "influxd"

    def __init__(self, folder: Path, port: int | None = None) -> None:
        super().__init__(folder, port)
        self.rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config_text(self) -> str:
        return f"""reporting-disabled = true
bind-address = "{self.host}:{self.rpc_port}"
[meta]
  dir = "{self.folder}/meta"
[data]
  dir = "{self.folder}/data"
  wal-dir = "{self.folder}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[http]
  bind-address = "{self.host}:{self.port}"
  log-enabled = false
[logging]
  level = "warn"
"""

    def _command(self) -> list[str]:
        conf = self.folder / "influxdb.conf"
        conf.write_text(self.config_text())
        return [
            find_program("influxd", "/usr/bin/influxd", package="influxdb"),
            "-config",
            str(conf),
        ]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as resp:
                return int(resp.status) == 204
        except (urllib.error.URLError, OSError):
            return False

    # Small InfluxQL helpers for tests and the demo ---------------------------

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """Run InfluxQL and return the parsed JSON; raise :class:`DevStackError` on an error."""
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        body = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(f"{self.url}/query", data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                result: dict[str, Any] = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise DevStackError(f"InfluxQL {q!r} failed: {exc.read().decode()}") from exc
        for statement in result.get("results", []):
            if "error" in statement:
                raise DevStackError(f"InfluxQL {q!r} failed: {statement['error']}")
        return result

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """Rows of the first series of a query's results, as dicts (tags included)."""
        out: list[dict[str, Any]] = []
        for statement in self.query(q, db).get("results", []):
            for series in statement.get("series", []):
                tags = series.get("tags", {})
                for values in series["values"]:
                    out.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return out

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def server_now(self) -> datetime:
        """The server's own clock (UTC, to the microsecond). Retention and ``now()`` in InfluxQL
        follow it; ``faketime`` does not move it (Go reads the time without the C library)."""
        for series in self.query("SHOW DIAGNOSTICS")["results"][0].get("series", []):
            if series["name"] == "system":
                text = series["values"][0][series["columns"].index("currentTime")]
                # RFC 3339 with up to nine fraction digits: keep six for fromisoformat.
                head, _, tail = text.rstrip("Z").partition(".")
                return datetime.fromisoformat(f"{head}.{(tail + '000000')[:6]}").replace(tzinfo=UTC)
        raise DevStackError("SHOW DIAGNOSTICS has no system section")


class PrometheusProcess(_ChildServer):
    """Prometheus 2.x (Debian's 2.42) on loopback, its config from ``config_text``, its data
    under ``folder``; :meth:`query` asks its HTTP API (``/api/v1/query``)."""

    name = "prometheus"

    def __init__(self, folder: Path, config_text: str, port: int | None = None) -> None:
        super().__init__(folder, port)
        self.config_text = config_text

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        conf = self.folder / "prometheus.yml"
        conf.write_text(self.config_text)
        return [
            find_program("prometheus", "/usr/bin/prometheus", package="prometheus"),
            f"--config.file={conf}",
            f"--storage.tsdb.path={self.folder / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--log.level=warn",
        ]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=0.5) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a GET on the HTTP API (``rules``, ``targets``, ``query``...)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                answer = json.load(resp)
        except urllib.error.HTTPError as exc:
            problem = exc.read().decode()
            raise DevStackError(f"Prometheus {path} {params} failed: {problem}") from exc
        if answer.get("status") != "success":
            raise DevStackError(f"Prometheus {path} {params} failed: {answer}")
        return answer["data"]

    def query(self, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query's series: their labels (sorted pairs, the name included) → value."""
        data = self.api("query", query=promql)
        return {
            tuple(sorted(series["metric"].items())): float(series["value"][1])
            for series in data["result"]
        }
