"""InfluxDB 2.x / 3.x writer: ``POST /api/v2/write?org=..&bucket=..&precision=ns``.

It sends ``Authorization: Token <token>`` and, when ``gzip`` is set, the body compressed
with ``Content-Encoding: gzip``. InfluxDB 2.x answers 204, or JSON ``{"code", "message"}``
with the error status; InfluxDB 3.x accepts the same request with the database name as bucket.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence

import httpx

from central.errors import InfluxWriteError
from central.influx.config import InfluxV2Config
from central.influx.session import SessionOwner

__all__ = ["InfluxV2Writer"]


class InfluxV2Writer(SessionOwner):
    """Writes line protocol to one bucket of an InfluxDB 2.x organisation (or a 3.x database)."""

    def __init__(
        self, config: InfluxV2Config, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__(config, transport=transport)
        self._config = config
        self._params = {"org": config.org, "bucket": config.bucket, "precision": "ns"}
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if config.gzip:
            self._headers["Content-Encoding"] = "gzip"

    @property
    def target(self) -> str:
        config = self._config
        return f"InfluxDB v2 API {self.url} org={config.org} bucket={config.bucket}"

    def prepare(self) -> None:
        """Nothing: buckets are made by an operator; a write token need not be allowed to."""

    def write(self, lines: Sequence[str]) -> None:
        body = "\n".join([*lines, ""]).encode()  # every line ends with a newline
        if self._config.gzip:
            body = gzip.compress(body)
        self._session.send(
            "POST",
            "/api/v2/write",
            params=self._params,
            content=body,
            headers=self._headers,
            error=InfluxWriteError,
        )
