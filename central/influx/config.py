"""Where an InfluxDB is and how to log in (:class:`InfluxServer`), and what each use adds to it.

Every InfluxDB config of the project is an :class:`InfluxServer` plus its own keys: the
consumer's writers (``api: v1``, ``api: v2`` here), the statistics' reader
(``central.usage.client.StatsInfluxConfig``) and downsampling
(``central.usage.downsample.apply.DownsampleInflux``). :class:`central.influx.session.InfluxSession`
is built from the server part alone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, model_validator

from qihe.configtypes import BaseUrl, Duration, Name, StrictModel

__all__ = ["InfluxConfig", "InfluxServer", "InfluxV1Config", "InfluxV2Config"]


class InfluxServer(StrictModel):
    """An InfluxDB server and how to log in: basic auth (``username``/``password``, 1.x users;
    2.x and 3.x also take a token as the password) or ``token``, sent as
    ``Authorization: Token …`` (2.x, 3.x, and their 1.x-compatible API)."""

    url: BaseUrl
    username: Name | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    #: Per request.
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> Self:
        if self.password is not None and self.username is None:
            raise ValueError("password is set without username")
        if self.token is not None and self.username is not None:
            raise ValueError("give username/password (basic auth) or token, not both")
        if self.token is not None and not self.token.get_secret_value().strip():
            raise ValueError("token must not be empty")
        return self


class InfluxV1Config(InfluxServer):
    """InfluxDB 1.x: ``POST /write?db=...`` (optionally with basic auth)."""

    api: Literal["v1"]
    database: Name
    retention_policy: Name | None = None
    #: Send ``CREATE DATABASE`` (idempotent in 1.x) before the first write.
    create_database: bool = True
    #: Compress request bodies (``Content-Encoding: gzip``, which 1.x's ``/write`` takes). Off by
    #: default: beside InfluxDB it saves no time (docs/benchmarks.md); for a distant server.
    gzip: bool = False


class InfluxV2Config(InfluxServer):
    """InfluxDB 2.x, and 3.x through its v2-compatible write API (bucket = database)."""

    api: Literal["v2"]
    token: SecretStr
    org: Name
    bucket: Name
    #: Compress request bodies (``Content-Encoding: gzip``).
    gzip: bool = False


InfluxConfig = Annotated[InfluxV1Config | InfluxV2Config, Field(discriminator="api")]
