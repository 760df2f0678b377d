"""Where an InfluxDB is and how to reach it: 1.x (``/write``, ``/query``) or 2.x/3.x (v2 API)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, model_validator

from qihe.configtypes import BaseUrl, Duration, Name, StrictModel

__all__ = ["InfluxConfig", "InfluxV1Config", "InfluxV2Config"]


class InfluxV1Config(StrictModel):
    """InfluxDB 1.x: ``POST /write?db=...`` (optionally with basic auth)."""

    api: Literal["v1"]
    url: BaseUrl
    database: Name
    username: Name | None = None
    password: SecretStr | None = None
    retention_policy: Name | None = None
    #: Send ``CREATE DATABASE`` (idempotent in 1.x) before the first write.
    create_database: bool = True
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.password is not None and self.username is None:
            raise ValueError("password is set without username")
        return self


class InfluxV2Config(StrictModel):
    """InfluxDB 2.x, and 3.x through its v2-compatible write API (bucket = database)."""

    api: Literal["v2"]
    url: BaseUrl
    token: SecretStr
    org: Name
    bucket: Name
    #: Compress request bodies (``Content-Encoding: gzip``).
    gzip: bool = False
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _token_given(self) -> Self:
        if not self.token.get_secret_value().strip():
            raise ValueError("token must not be empty")
        return self


InfluxConfig = Annotated[InfluxV1Config | InfluxV2Config, Field(discriminator="api")]
