"""InfluxDB 1.x writer: ``POST /write?db=..&precision=ns[&rp=..]`` over httpx.

InfluxDB 1.x answers 204 when every line was stored. A batch with some lines it
cannot store (unparsable, field type conflict) gets 400 ``partial write`` — and
the good lines of that batch *are* stored. The consumer then splits the batch to
find the bad lines; writing the good ones again is harmless (same points).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import httpx

from central.errors import InfluxWriteError, is_retryable_status
from central.influx.config import InfluxV1Config
from central.influx.writer import parse_retry_after

__all__ = ["InfluxV1Writer"]


class InfluxV1Writer:
    """Writes line protocol to one InfluxDB 1.x database (and retention policy)."""

    def __init__(
        self, config: InfluxV1Config, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._config = config
        auth = None
        if config.username is not None:
            password = config.password.get_secret_value() if config.password else ""
            auth = httpx.BasicAuth(config.username, password)
        self._http = httpx.Client(
            base_url=config.url,
            auth=auth,
            timeout=config.timeout.total_seconds(),
            transport=transport,
        )
        self._params = {"db": config.database, "precision": "ns"}
        if config.retention_policy is not None:
            self._params["rp"] = config.retention_policy

    @property
    def target(self) -> str:
        rp = f" rp={self._config.retention_policy}" if self._config.retention_policy else ""
        return f"InfluxDB 1.x {self._config.url} db={self._config.database}{rp}"

    def prepare(self) -> None:
        """``CREATE DATABASE`` when configured; it is a no-op for an existing database."""
        if not self._config.create_database:
            return
        name = self._config.database.replace("\\", "\\\\").replace('"', '\\"')
        response = self._post("/query", params={"q": f'CREATE DATABASE "{name}"'})
        if response.status_code != 200:
            raise _error(response)
        results = _json(response).get("results")
        for statement in results if isinstance(results, list) else []:
            if isinstance(statement, dict) and "error" in statement:
                raise InfluxWriteError(str(statement["error"]), retryable=False, status=200)

    def write(self, lines: Sequence[str]) -> None:
        body = "\n".join([*lines, ""]).encode()  # every line ends with a newline
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        response = self._post("/write", params=self._params, content=body, headers=headers)
        if response.status_code == 404 and self._config.create_database:
            # "database not found": dropped since start, or created before the server was reset.
            self.prepare()
            response = self._post("/write", params=self._params, content=body, headers=headers)
        if not 200 <= response.status_code < 300:
            raise _error(response)

    def close(self) -> None:
        self._http.close()

    def _post(
        self,
        path: str,
        *,
        params: dict[str, str],
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return self._http.post(path, params=params, content=content, headers=headers)
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise InfluxWriteError(f"{self._config.url}: {detail}", retryable=True) from exc


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        data = json.loads(response.content)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error(response: httpx.Response) -> InfluxWriteError:
    detail = _json(response).get("error") or response.text.strip() or response.reason_phrase
    return InfluxWriteError(
        str(detail),
        retryable=is_retryable_status(response.status_code),
        status=response.status_code,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )
