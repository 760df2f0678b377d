"""InfluxDB 1.x writer: ``POST /write?db=..&precision=ns[&rp=..]``.

InfluxDB 1.x answers 204 when every line was stored. A batch with some lines it
cannot store (unparsable, field type conflict) gets 400 ``partial write`` — and
the good lines of that batch *are* stored. The consumer then splits the batch to
find the bad lines; writing the good ones again is harmless (same points).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence

import httpx

from central.errors import InfluxWriteError
from central.influx.config import InfluxV1Config
from central.influx.session import SessionOwner

__all__ = ["InfluxV1Writer"]

_HEADERS = {"Content-Type": "text/plain; charset=utf-8"}


class InfluxV1Writer(SessionOwner):
    """Writes line protocol to one InfluxDB 1.x database (and retention policy)."""

    def __init__(
        self, config: InfluxV1Config, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__(config, transport=transport)
        self._config = config
        self._params = {"db": config.database, "precision": "ns"}
        self._headers = dict(_HEADERS)
        if config.gzip:
            self._headers["Content-Encoding"] = "gzip"
        if config.retention_policy is not None:
            self._params["rp"] = config.retention_policy

    @property
    def target(self) -> str:
        rp = f" rp={self._config.retention_policy}" if self._config.retention_policy else ""
        return f"InfluxDB 1.x {self.url} db={self._config.database}{rp}"

    def prepare(self) -> None:
        """``CREATE DATABASE`` when configured; it is a no-op for an existing database."""
        if not self._config.create_database:
            return
        name = self._config.database.replace("\\", "\\\\").replace('"', '\\"')
        self._session.query(
            f'CREATE DATABASE "{name}"', params={}, post=True, error=InfluxWriteError
        )

    def write(self, lines: Sequence[str]) -> None:
        body = "\n".join([*lines, ""]).encode()  # every line ends with a newline
        if self._config.gzip:
            # Level 1: the fastest; line protocol still shrinks about tenfold.
            body = gzip.compress(body, compresslevel=1)
        try:
            self._post(body)
        except InfluxWriteError as exc:
            if exc.status != 404 or not self._config.create_database:
                raise
            # "database not found": dropped since start, or created before the server was reset.
            self.prepare()
            self._post(body)

    def _post(self, body: bytes) -> None:
        self._session.send(
            "POST",
            "/write",
            params=self._params,
            content=body,
            headers=self._headers,
            error=InfluxWriteError,
        )
