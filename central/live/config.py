"""Configuration of the live service (``config/live.yaml``), validated without I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr

from central.broker import MqttConfig
from central.commands.config import CommandConfig
from central.live.ratelimit import RateLimitConfig
from central.sites import SiteDirectory, load_with_directory
from qihe.configtypes import Duration, Name, StrictModel
from qihe.metrics import MetricsConfig

__all__ = ["HttpConfig", "LiveConfig", "LiveSetup", "load_live_setup"]


def _token(value: SecretStr) -> SecretStr:
    # It travels in a header or a cookie: printable ASCII, no spaces, long enough to guess badly.
    if not re.fullmatch(r"[!-~]{12,256}", value.get_secret_value()):
        raise ValueError("must be 12-256 printable ASCII characters without spaces")
    return value


class HttpConfig(StrictModel):
    #: ``127.0.0.1`` behind a reverse proxy (the usual); ``0.0.0.0`` to serve the LAN directly.
    host: Name = "127.0.0.1"
    #: 0 picks a free port (tests, the demo).
    port: int = Field(default=8080, ge=0, le=65535)
    #: When set, the operator page and API ask for it (``Authorization: Bearer …`` or the
    #: ``qihe_operator`` cookie); the public summary never does.
    operator_token: Annotated[SecretStr, AfterValidator(_token)] | None = None
    #: Live streams open at once, at most; more are refused with 503.
    max_streams: int = Field(default=500, ge=1, le=100_000)
    #: Events queued per stream before a slow client is told to resync.
    stream_queue: int = Field(default=1000, ge=10, le=1_000_000)
    #: Seconds a proxy may cache the public summary.
    public_max_age: int = Field(default=10, ge=0, le=3600)


class PublicConfig(StrictModel):
    """The public page and its open-data API (docs/public-api.md)."""

    #: Requests per client address (token bucket), live streams per client, trusted proxies.
    rate_limit: RateLimitConfig = RateLimitConfig()
    #: ``qihe stats typical --format json`` written by a timer, relative to this file: "busy
    #: now against usual at this hour" (read at start and hourly when it changed).
    typical: Path | None = None


class LiveConfig(StrictModel):
    mqtt: MqttConfig = MqttConfig(client_id="qihe-live")
    http: HttpConfig = HttpConfig()
    #: The site directory (names, opening hours, seat layout), relative to this file.
    sites: Path
    #: A gateway silent this long (no message while its status says online) has its seats
    #: shown as unknown. Gateways report at least every ``link_report_interval`` (60 s).
    gateway_silent_after: Duration = timedelta(seconds=180)
    #: A board that missed this many report intervals (its HELLO gives the interval) has
    #: its seats shown as unknown.
    device_silent_intervals: Annotated[float, Field(ge=1, le=100)] = 3.0
    #: An air sensor with no reading for this long is shown as stale (``sensor_silent``).
    #: Modbus sensors are polled every few seconds; a Zigbee sensor that reports only on
    #: change (Aqara: about hourly in a still room) needs more.
    air_stale_after: Duration = timedelta(minutes=30)
    #: How often the passing of time alone is checked (silences, opening hours).
    refresh_interval: Duration = timedelta(seconds=1)
    #: Commands to boards from the operator page (docs/commands.md): an account with the
    #: broker's operator role. Without it the page shows no command buttons.
    commands: CommandConfig | None = None
    #: Prometheus ``/metrics`` on a port of its own (off when absent; loopback unless an
    #: address is given): never behind the public proxy, so it needs no token.
    metrics: MetricsConfig | None = None
    public: PublicConfig = PublicConfig()


@dataclass(frozen=True, slots=True)
class LiveSetup:
    config: LiveConfig
    directory: SiteDirectory


def load_live_setup(path: str | Path) -> LiveSetup:
    """The live config and the site directory it names; raise :class:`ConfigError`."""
    config, directory = load_with_directory(path, LiveConfig)
    typical = config.public.typical
    if typical is not None and not typical.is_absolute():  # relative to the config file
        public = config.public.model_copy(update={"typical": Path(path).resolve().parent / typical})
        config = config.model_copy(update={"public": public})
    return LiveSetup(config, directory)
