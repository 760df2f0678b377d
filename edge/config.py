"""The gateway's configuration (YAML, validated at start without touching the network)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge.outbox import DEFAULT_MAX_PENDING
from edge.sources.modbus_config import ModbusConfig
from edge.sources.zigbee_config import ZigbeeConfig
from firmware_bridge.messages import DEVICE_ID_PATTERN
from qihe.configfile import load_config_file
from qihe.configtypes import StrictModel, TopicPrefix
from qihe.contract import DEFAULT_PREFIX, ID_PATTERN, MAX_BATCH
from qihe.metrics import MetricsConfig
from qihe.mqtt import BrokerConnection

__all__ = [
    "BrokerConfig",
    "GatewayConfig",
    "GpioInputConfig",
    "SerialPortConfig",
    "load_gateway_config",
]

Ident = Annotated[str, Field(pattern=ID_PATTERN)]


class BrokerConfig(BrokerConnection):
    """The broker the gateway publishes to (``host`` required), and how it publishes."""

    keepalive: timedelta = timedelta(seconds=30)
    topic_prefix: TopicPrefix = DEFAULT_PREFIX
    #: Publishes awaiting PUBACK at once (paho's message ids are 16-bit; keep far below).
    max_inflight: int = Field(default=100, ge=1, le=1000)
    reconnect_min: timedelta = timedelta(seconds=1)
    reconnect_max: timedelta = timedelta(seconds=60)


class SerialPortConfig(StrictModel):
    """One serial port and the sensor board behind it."""

    path: str = Field(min_length=1, description="device path; prefer /dev/serial/by-id/...")
    device: Annotated[str, Field(pattern=DEVICE_ID_PATTERN.pattern)] = Field(
        description="the board's id; names its sensors in topics (device.index)"
    )
    baudrate: int = Field(default=115200, gt=0)
    reconnect_min: timedelta = timedelta(milliseconds=500)
    reconnect_max: timedelta = timedelta(seconds=30)


class GpioInputConfig(StrictModel):
    """One contact wired to a GPIO pin of the gateway itself."""

    pin: int | str = Field(
        description="BCM number (17) or a gpiozero pin name ('GPIO17', 'BOARD11')"
    )
    kind: Literal["door", "seat", "motion"]
    sensor: Ident
    #: The pin level that means open / occupied / motion: high (true) or low (false).
    active_high: bool = True
    pull_up: bool | None = Field(
        default=None, description="internal pull-up (true), pull-down (false) or none (null)"
    )
    debounce: timedelta = timedelta(milliseconds=50)


class OutboxConfig(StrictModel):
    """The durable store of readings the broker has not acknowledged (docs/reliability.md)."""

    #: Where the SQLite file lives; relative paths are under ``state_dir``.
    path: Path = Path("outbox.sqlite3")
    #: Bound of stored readings (~300 bytes each on disk). When full, the oldest
    #: periodic telemetry goes first, then the oldest reading of any kind.
    max_readings: int = Field(default=500_000, ge=100)
    #: Bound of readings held in memory while commits fail (card full or read-only, file
    #: locked), with the same drop policy; drops are counted and stored once commits work.
    #: ~300 bytes each held, ~430 at the peak of the commit that stores them: the default
    #: 100,000 is ~30-43 MB, under a tenth of a 512 MB Pi (docs/reliability.md).
    max_pending: int = Field(default=DEFAULT_MAX_PENDING, ge=100)
    #: Readings are committed in groups: at most this long after they arrive...
    commit_interval: timedelta = timedelta(seconds=1)
    #: ...or as soon as this many are waiting.
    commit_max: int = Field(default=500, ge=1)
    #: How long a commit waits for another process's lock on the file before it fails and
    #: is retried (SQLite's busy timeout). A commit stuck longer than the systemd watchdog
    #: allows gets the gateway restarted; one that fails and is retried does not.
    busy_timeout: timedelta = Field(
        default=timedelta(seconds=1), gt=timedelta(0), le=timedelta(minutes=5)
    )
    #: Readings packed into one backlog message when replaying after an outage.
    backlog_batch: int = Field(default=500, ge=1, le=MAX_BATCH)


class ClockConfig(StrictModel):
    """Whether to wait for NTP before trusting the wall clock (a Pi has no real-time clock)."""

    #: true on a Raspberry Pi: readings taken before NTP has synchronised the clock are
    #: held and restamped once it has. false where the clock is right from boot.
    require_sync: bool = False
    poll: timedelta = timedelta(seconds=1)


class RemoteConfigConfig(StrictModel):
    """Configs pushed over MQTT (``qihe gateway push-config``, docs/remote-config.md)."""

    #: Listen for pushed configs on ``{prefix}/v1/{site}/{gateway}/config``.
    enabled: bool = True
    #: A pushed config that has not reached the broker this long after it was applied is
    #: rolled back to the last good one. The running config's value counts, not the pushed one's.
    rollback_after: timedelta = Field(
        default=timedelta(minutes=2), gt=timedelta(0), le=timedelta(hours=1)
    )


class GatewayConfig(StrictModel):
    site: Ident
    gateway: Ident
    #: A label of this config chosen by whoever wrote it (``2026-11-28a``); in the status.
    version: Ident | None = None
    broker: BrokerConfig
    state_dir: Path = Path("/var/lib/qihe")
    serial: tuple[SerialPortConfig, ...] = ()
    gpio: tuple[GpioInputConfig, ...] = ()
    #: Zigbee sensors through a Zigbee2MQTT instance at the site (docs/sensors.md).
    zigbee: ZigbeeConfig | None = None
    #: Modbus RTU sensors on RS485 buses (docs/sensors.md).
    modbus: ModbusConfig | None = None
    outbox: OutboxConfig = OutboxConfig()
    clock: ClockConfig = ClockConfig()
    link_report_interval: timedelta = timedelta(seconds=60)
    remote_config: RemoteConfigConfig = RemoteConfigConfig()
    #: Prometheus ``/metrics`` (off when absent; loopback unless an address is given).
    metrics: MetricsConfig | None = None

    @model_validator(mode="after")
    def _unique(self) -> GatewayConfig:
        devices = [p.device for p in self.serial]
        if len(set(devices)) != len(devices):
            raise ValueError(f"serial devices must be unique, got {devices}")
        paths = [p.path for p in self.serial]
        if len(set(paths)) != len(paths):
            raise ValueError(f"serial paths must be unique, got {paths}")
        pins = [str(g.pin) for g in self.gpio]
        if len(set(pins)) != len(pins):
            raise ValueError(f"gpio pins must be unique, got {pins}")
        sensors = [(g.kind, g.sensor) for g in self.gpio]
        if len(set(sensors)) != len(sensors):
            raise ValueError("gpio sensors must be unique per kind")
        if self.modbus is not None:
            taken = {p.path for p in self.serial} & {p.path for p in self.modbus.ports}
            if taken:
                raise ValueError(f"a port is both serial and modbus: {sorted(taken)}")
        if not self.serial and not self.gpio and self.zigbee is None and self.modbus is None:
            raise ValueError(
                "no sources: configure at least one serial port, gpio input, "
                "zigbee or modbus device"
            )
        return self

    @property
    def outbox_path(self) -> Path:
        return self.state_dir / self.outbox.path


def load_gateway_config(path: str | Path) -> GatewayConfig:
    """Load and validate a gateway config; raise ConfigError with file, key and reason."""
    return load_config_file(path, GatewayConfig)
