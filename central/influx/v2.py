"""InfluxDB 2.x / 3.x writer through the official ``influxdb-client`` (synchronous write API).

It sends ``POST /api/v2/write?org=..&bucket=..&precision=ns`` with
``Authorization: Token <token>``. InfluxDB 3.x accepts the same request with the
database name as bucket.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import urllib3.exceptions
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from central.errors import InfluxWriteError, is_retryable_status
from central.influx.config import InfluxV2Config
from central.influx.writer import parse_retry_after

__all__ = ["InfluxV2Writer"]


class InfluxV2Writer:
    """Writes line protocol to one bucket of an InfluxDB 2.x organisation (or a 3.x database)."""

    def __init__(self, config: InfluxV2Config) -> None:
        self._config = config
        # Builds a connection pool only; nothing is sent until the first write.
        self._client = InfluxDBClient(
            url=config.url,
            token=config.token.get_secret_value(),
            org=config.org,
            timeout=int(config.timeout.total_seconds() * 1000),
            enable_gzip=config.gzip,
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    @property
    def target(self) -> str:
        config = self._config
        return f"InfluxDB v2 API {config.url} org={config.org} bucket={config.bucket}"

    def prepare(self) -> None:
        """Nothing: buckets are made by an operator; a write token need not be allowed to."""

    def write(self, lines: Sequence[str]) -> None:
        try:
            self._api.write(
                bucket=self._config.bucket,
                org=self._config.org,
                record=list(lines),
                # The library declares the constant as str but the parameter as its class.
                write_precision=cast(WritePrecision, WritePrecision.NS),
            )
        except ApiException as exc:
            status = int(exc.status) if exc.status is not None else None
            raise InfluxWriteError(
                _detail(exc),
                retryable=status is None or is_retryable_status(status),
                status=status,
                retry_after=parse_retry_after(exc.retry_after),
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise InfluxWriteError(f"{self._config.url}: {exc}", retryable=True) from exc

    def close(self) -> None:
        # influxdb-client leaves these two unannotated.
        self._api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]


def _detail(exc: Any) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            return body.strip()
        if message:
            return str(message)
    return str(exc.reason or "no detail")
