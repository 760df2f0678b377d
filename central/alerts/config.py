"""Configuration of the alert engine (``config/alerts.yaml``): rules, silences, routes.

Every rule has sensible defaults, so ``rules: {}`` runs them all. Thresholds that a value can
hover around come in pairs — the level that fires and the level that clears — so an alert does
not flap (hysteresis). ``for`` is how long a condition must hold before the alert fires;
``keep_firing_for`` how long it must be gone before the alert resolves.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, ClassVar, Literal, NamedTuple, Self

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, model_validator

from central.alerts.model import Severity
from central.alerts.routes import RouteConfig, check_unique_names
from central.broker import MqttConfig
from qihe.configtypes import Name, StrictModel
from qihe.contract import ID_PATTERN
from qihe.metrics import MetricsConfig

__all__ = [
    "AlertsConfig",
    "Rules",
    "Silence",
]

NonNegativeDuration = Annotated[timedelta, Field(ge=timedelta(0))]
PositiveDuration = Annotated[timedelta, Field(gt=timedelta(0))]
Ident = Annotated[str, Field(pattern=ID_PATTERN)]


class _Model(StrictModel):
    model_config = ConfigDict(populate_by_name=True)


class _Levels(NamedTuple):
    """A rule's two levels, by field name: the one that fires and the one that clears."""

    fires: str
    clears: str
    #: The rule fires below its level (the clearing level may not be lower), else above it.
    below: bool


class _Rule(_Model):
    enabled: bool = True
    severity: Severity = "warning"
    for_: NonNegativeDuration = Field(default=timedelta(0), alias="for")
    keep_firing_for: NonNegativeDuration = timedelta(0)
    #: The levels of a rule whose value can hover around them, checked to be in order.
    _levels: ClassVar[_Levels | None] = None

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        levels = self._levels
        if levels is None:
            return self
        fires, clears = getattr(self, levels.fires), getattr(self, levels.clears)
        if levels.below and clears < fires:
            raise ValueError(f"{levels.clears} must not be below {levels.fires}")
        if not levels.below and clears > fires:
            raise ValueError(f"{levels.clears} must not exceed {levels.fires}")
        return self


class GatewayOffline(_Rule):
    """Its status is offline (its Last Will, or it said goodbye), or nothing came from it."""

    severity: Severity = "critical"
    for_: NonNegativeDuration = Field(default=timedelta(seconds=60), alias="for")
    #: No message at all for this long counts as offline too.
    silent_after: PositiveDuration = timedelta(seconds=180)


class DeviceSilent(_Rule):
    """A board that said HELLO (or sent heartbeats) missed this many report intervals."""

    missed_reports: Annotated[float, Field(ge=1, le=1000)] = 3


class SupplyLow(_Rule):
    below_mv: Annotated[int, Field(ge=0, le=65535)] = 3400
    clear_above_mv: Annotated[int, Field(ge=0, le=65535)] = 3500
    for_: NonNegativeDuration = Field(default=timedelta(minutes=2), alias="for")
    _levels: ClassVar[_Levels | None] = _Levels("below_mv", "clear_above_mv", below=True)


class DeviceFault(_Rule):
    """A board reported a FAULT (stuck, no_response, out_of_range, supply_low, other)."""


class SeatStuck(_Rule):
    #: Occupied without a change for longer than this (nobody studies 6 hours without a break).
    occupied_longer_than: PositiveDuration = timedelta(hours=6)
    #: Occupied this long after the site closed (cleaners, the last visitor leaving).
    closed_grace: NonNegativeDuration = timedelta(minutes=30)


class DoorOpen(_Rule):
    open_longer_than: PositiveDuration = timedelta(minutes=10)


class DoorOpenAfterHours(_Rule):
    """A door open while the site is closed: its opening hours with public holidays, 调休
    make-up working days and temporary closures (``docs/calendar.md``)."""

    #: The door open this long, and the site closed this long (the last visitor, staff leaving).
    grace: NonNegativeDuration = timedelta(minutes=5)


class SeatHeldEmpty(_Rule):
    """A seat held while empty (占座): things on it and nobody there for longer than the
    site's grace (the directory's ``seat_hold:``). A gentle notice, not a fault."""

    severity: Severity = "info"


class LinkErrors(_Rule):
    """CRC/malformed frames, or lost sequence numbers, per minute on a serial link."""

    errors_per_minute: Annotated[float, Field(gt=0)] = 5
    clear_below_per_minute: Annotated[float, Field(ge=0)] = 1
    for_: NonNegativeDuration = Field(default=timedelta(minutes=2), alias="for")
    _levels: ClassVar[_Levels | None] = _Levels(
        "errors_per_minute", "clear_below_per_minute", below=False
    )


class _Percent(_Rule):
    below_percent: Annotated[float, Field(gt=0, lt=100)] = 10
    clear_above_percent: Annotated[float, Field(gt=0, lt=100)] = 15
    _levels: ClassVar[_Levels | None] = _Levels("below_percent", "clear_above_percent", below=True)


class DiskLow(_Percent):
    """Free space on the gateway's SD card (the filesystem of its state folder)."""


class MemoryLow(_Percent):
    """Available memory of the gateway."""


class CpuHot(_Rule):
    above_c: float = 75
    clear_below_c: float = 70
    for_: NonNegativeDuration = Field(default=timedelta(minutes=2), alias="for")
    _levels: ClassVar[_Levels | None] = _Levels("above_c", "clear_below_c", below=False)


class _OnGrowth(_Rule):
    """A rule that fires when a gateway's counter grows (drops, refusals)."""

    #: Growth shows in one report only: keep the alert up a while rather than flap.
    keep_firing_for: NonNegativeDuration = timedelta(minutes=15)


class OutboxBacklog(_OnGrowth):
    """Readings waiting in the gateway's outbox (they cannot get out), or being dropped."""

    queued_above: Annotated[int, Field(ge=1)] = 1000
    clear_below: Annotated[int, Field(ge=0)] = 100
    for_: NonNegativeDuration = Field(default=timedelta(minutes=5), alias="for")


class PublishRefused(_OnGrowth):
    """The broker refused a gateway's publishes (MQTT 5 PUBACK 0x80 or above: an ACL that
    denies its topics, a quota): the readings wait in its outbox, not lost, not arriving."""


class BoardDropped(_OnGrowth):
    """A board gave reports up before its gateway acknowledged them (its window overflowed
    while the gateway could not store them): those readings may never arrive."""


class Co2High(_Rule):
    """The CO₂ of a room (an air sensor) above ``threshold_ppm`` for ``for``: air it. Cleared
    once it is below ``threshold_ppm - hysteresis_ppm``."""

    threshold_ppm: Annotated[float, Field(gt=0, le=100_000)] = 1000
    hysteresis_ppm: Annotated[float, Field(ge=0)] = 100
    for_: NonNegativeDuration = Field(default=timedelta(minutes=10), alias="for")
    #: A CO₂ value older than this (no air reading since, on the receive clock) no longer
    #: counts: a sensor that stopped reporting does not keep its alert up forever.
    stale_after: PositiveDuration = timedelta(minutes=30)

    @model_validator(mode="after")
    def _clears_above_zero(self) -> Self:
        if self.hysteresis_ppm >= self.threshold_ppm:
            raise ValueError("hysteresis_ppm must be below threshold_ppm")
        return self


class BatteryLow(_Rule):
    """A wireless sensor's battery (Zigbee) below ``percent``: replace it before it dies."""

    percent: Annotated[int, Field(ge=1, le=100)] = 20
    clear_above_percent: Annotated[int, Field(ge=1, le=100)] = 25
    _levels: ClassVar[_Levels | None] = _Levels("percent", "clear_above_percent", below=True)


class Rules(_Model):
    gateway_offline: GatewayOffline = GatewayOffline()
    device_silent: DeviceSilent = DeviceSilent()
    supply_low: SupplyLow = SupplyLow()
    device_fault: DeviceFault = DeviceFault()
    seat_stuck: SeatStuck = SeatStuck()
    door_open: DoorOpen = DoorOpen()
    door_open_after_hours: DoorOpenAfterHours = DoorOpenAfterHours()
    seat_held_empty: SeatHeldEmpty = SeatHeldEmpty()
    link_errors: LinkErrors = LinkErrors()
    disk_low: DiskLow = DiskLow()
    memory_low: MemoryLow = MemoryLow()
    cpu_hot: CpuHot = CpuHot()
    outbox_backlog: OutboxBacklog = OutboxBacklog()
    publish_refused: PublishRefused = PublishRefused()
    board_dropped: BoardDropped = BoardDropped()
    co2_high: Co2High = Co2High()
    battery_low: BatteryLow = BatteryLow()

    def rule(self, name: str) -> _Rule:
        """The settings of the rule called ``name`` (one of this model's fields)."""
        settings: _Rule = getattr(self, name)
        return settings

    def enabled(self) -> list[str]:
        """The names of the rules that are enabled."""
        return [name for name in type(self).model_fields if self.rule(name).enabled]


Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Weekly(_Model):
    """A maintenance window every week, in the directory's local time."""

    days: tuple[Day, ...] = _DAYS
    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start (one day at a time)")
        return self

    def covers(self, local: datetime) -> bool:
        return _DAYS[local.weekday()] in self.days and self.start <= local.time() < self.end


class Silence(_Model):
    """A maintenance window: matching alerts still show on MQTT but are not sent to people."""

    #: Which alerts: all of these that are given must match.
    site: Ident | None = None
    gateway: Ident | None = None
    rules: tuple[str, ...] = ()
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    weekly: Weekly | None = None
    comment: Annotated[str, Field(max_length=200)] = ""

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.weekly is None and (self.starts_at is None or self.ends_at is None):
            raise ValueError("give starts_at and ends_at, or weekly")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        unknown = set(self.rules) - set(Rules.model_fields)
        if unknown:
            raise ValueError(f"unknown rules: {', '.join(sorted(unknown))}")
        return self


def _known_rules(routes: tuple[RouteConfig, ...]) -> tuple[RouteConfig, ...]:
    for route in routes:
        unknown = set(route.rules) - set(Rules.model_fields)
        if unknown:
            raise ValueError(f"route {route.name}: unknown rules: {', '.join(sorted(unknown))}")
    return routes


class AlertsConfig(_Model):
    # Route secrets sit beside other values: an error must never echo what was given.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )

    mqtt: MqttConfig = MqttConfig(client_id="qihe-alerts")
    #: The site directory (names, opening hours), relative to this file.
    sites: Path
    rules: Rules = Rules()
    silences: tuple[Silence, ...] = ()
    routes: Annotated[
        tuple[RouteConfig, ...], AfterValidator(check_unique_names), AfterValidator(_known_rules)
    ] = ()
    #: How often the rules are evaluated.
    evaluation_interval: PositiveDuration = timedelta(seconds=1)
    #: A new alert waits this long for others of its site, to go out in one message.
    group_wait: NonNegativeDuration = timedelta(seconds=30)
    #: After a site's message, changes wait at least this long for the next one.
    group_interval: NonNegativeDuration = timedelta(minutes=5)
    #: An alert still firing is sent again this often.
    repeat_interval: PositiveDuration = timedelta(hours=4)
    #: At start, how long to collect the alerts this engine published before (retained).
    restore_wait: PositiveDuration = timedelta(seconds=1)
    #: The name the engine gives itself in messages (e.g. the city office).
    sender: Name = "淇河书屋运维 qihe-alerts"
    #: Prometheus ``/metrics`` (off when absent; loopback unless an address is given).
    metrics: MetricsConfig | None = None
    #: Where operators' acknowledgements and silences are kept across restarts (relative to
    #: this file). Without it they live in memory only.
    state_dir: Path | None = None
