"""The fleet view: every gateway of the city in one table, kept from MQTT messages (sans-IO).

:class:`FleetState` is fed the messages the live service already follows — a gateway's
retained ``status`` and its periodic ``system``, ``outbox`` and ``link`` readings — and
answers with :class:`Fleet`, the document of ``GET /api/v1/fleet`` and of ``qihe fleet``. It
does no I/O and reads no clock: the caller passes ``now``.

A row is **stale** when its gateway's status says offline, or when nothing was heard from it
for ``stale_intervals`` (3) report intervals. The interval is learned per gateway from the
timestamps of its consecutive ``system`` readings (its ``link_report_interval``), 60 s until
two have come. Silence is measured on the receive clock; a message replayed as retained when
the service (re)subscribes does not count as hearing from the gateway, but it starts the
gateway's grace: after a restart every gateway gets its stale time to speak.

Rows sort by any of :data:`SORT_COLUMNS` (``-`` in front: descending); a row without the value
sorts last either way. The district filter takes the directory's Chinese or English name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from central.sites import SiteDirectory, SiteSpec
from qihe.contract import (
    ConfigReport,
    ConfigState,
    GatewayStatus,
    LinkReading,
    OutboxReading,
    Reading,
    SystemReading,
)

__all__ = [
    "SORT_COLUMNS",
    "Fleet",
    "FleetRow",
    "FleetState",
    "power_flags",
]

log = logging.getLogger(__name__)

#: The Raspberry Pi firmware's throttling bits (``docs/mqtt.md``, the ``system`` reading).
_POWER_BITS = (
    (0, "under_voltage"),
    (1, "freq_capped"),
    (2, "throttled"),
    (3, "soft_temp_limit"),
    (16, "under_voltage_occurred"),
    (17, "freq_capped_occurred"),
    (18, "throttled_occurred"),
    (19, "soft_temp_limit_occurred"),
)
_NOW_MASK = 0x0000_000F
_OCCURRED_MASK = 0x000F_0000

#: Gateways' complaints logged once each; beyond this many, no more are remembered.
_MOST_NOTED = 10_000

PowerState = Literal["ok", "occurred", "now"]
_STATE_ORDER = {"online": 0, "unknown": 1, "offline": 2}
_POWER_ORDER = {"ok": 0, "occurred": 1, "now": 2}


def power_flags(mask: int) -> tuple[str, ...]:
    """The names of the bits set in a firmware throttling mask, "now" bits first."""
    return tuple(name for bit, name in _POWER_BITS if mask >> bit & 1)


def _power_state(mask: int | None) -> PowerState | None:
    if mask is None:
        return None
    if mask & _NOW_MASK:
        return "now"
    return "occurred" if mask & _OCCURRED_MASK else "ok"


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class FleetRow(_View):
    """One gateway. ``None`` where nothing was heard yet (or the gateway does not say)."""

    site: str
    gateway: str
    #: From the site directory; None for a site it does not list.
    site_name: str | None
    site_name_en: str | None
    district: str | None
    district_en: str | None
    state: Literal["online", "offline", "unknown"]
    #: Offline, or silent for ``stale_intervals`` report intervals.
    stale: bool
    #: The gateway's software version and its config (label, short hash, what became of the
    #: last push and its one-line error), from its status.
    version: str | None
    config_version: str | None
    config_hash: str | None
    config_state: ConfigState | None
    config_error: str | None
    #: Seconds the gateway process and its host had been up at the last ``system`` reading.
    uptime_s: int | None
    host_uptime_s: int | None
    #: When a message from the gateway last arrived (receive clock; retained replays aside).
    last_seen: datetime | None
    #: Readings waiting in the gateway's outbox, and dropped from it (all causes, cumulative).
    outbox: int | None
    drops: int | None
    #: CRC errors, malformed frames and lost frames over all its serial links (since start).
    link_errors: int | None
    links: int
    cpu_temp_c: float | None
    disk_free_bytes: int | None
    disk_total_bytes: int | None
    disk_used_pct: float | None
    #: The Pi firmware's throttling mask, its bits by name, and the worst of them:
    #: ``now`` (under-voltage or throttling at the last reading), ``occurred`` (since boot).
    throttled: int | None
    power: PowerState | None
    power_flags: tuple[str, ...]


class Fleet(_View):
    """``GET /api/v1/fleet``: the rows asked for, and what the filter can choose from."""

    at: datetime
    sort: str
    district: str | None
    #: Every district of the directory and of the gateways heard, in directory order.
    districts: tuple[str, ...]
    #: Gateways in the fleet, before the district filter; stale ones among those shown.
    total: int
    stale: int
    gateways: tuple[FleetRow, ...]


@dataclass(slots=True)
class _Gateway:
    site: str
    gateway: str
    #: First moment anything about it arrived: the start of its grace when only retained
    #: messages came.
    watched_since: datetime
    state: Literal["online", "offline", "unknown"] = "unknown"
    session: int = -1
    version: str | None = None
    config: ConfigReport | None = None
    last_seen: datetime | None = None
    system: SystemReading | None = None
    #: Learned from consecutive ``system`` readings' timestamps.
    interval: timedelta | None = None
    outbox: OutboxReading | None = None
    links: dict[str, LinkReading] = field(default_factory=dict)


class FleetState:
    """Every gateway heard of, and the rows of the fleet view. On one thread (the loop)."""

    def __init__(
        self,
        directory: SiteDirectory,
        *,
        report_interval: timedelta = timedelta(seconds=60),
        stale_intervals: float = 3.0,
        logger: logging.Logger = log,
    ) -> None:
        self._sites: dict[str, SiteSpec] = {site.id: site for site in directory.sites}
        self._district_order = _unique(site.district for site in directory.sites)
        self._report_interval = report_interval
        self._stale_intervals = stale_intervals
        self._log = logger
        self._gateways: dict[tuple[str, str], _Gateway] = {}
        self._noted: set[tuple[str, ...]] = set()

    def __len__(self) -> int:
        return len(self._gateways)

    def apply(
        self, message: GatewayStatus | Reading, now: datetime, *, retained: bool = False
    ) -> None:
        """Take one validated message received at ``now``."""
        gw = self._gateway(message.site, message.gateway, now)
        if not retained:
            gw.last_seen = now
        match message:
            case GatewayStatus():
                self._status(gw, message)
            case SystemReading():
                if self._from_gateway(gw, message):
                    self._system(gw, message)
            case OutboxReading():
                if self._from_gateway(gw, message):
                    gw.outbox = message
            case LinkReading():
                gw.links[message.device] = message
            case _:
                pass  # seats, doors, heartbeats...: heard from it, nothing more for the fleet

    def view(self, now: datetime, *, district: str | None = None, sort: str = "site") -> Fleet:
        """The fleet at ``now``; raise :class:`ValueError` for a ``sort`` not in
        :data:`SORT_COLUMNS` (``-`` in front allowed)."""
        key, descending = _sort_key(sort)
        every = sorted(
            (self._row(gw, now) for gw in self._gateways.values()),
            key=lambda row: (row.site, row.gateway),
        )
        rows = every
        if district:
            wanted = district.casefold()
            rows = [
                row
                for row in every
                if wanted in {(row.district or "").casefold(), (row.district_en or "").casefold()}
            ]
        present = [row for row in rows if key(row) is not None]
        missing = [row for row in rows if key(row) is None]
        present.sort(key=key, reverse=descending)  # stable: ties keep site, gateway order
        heard = _unique(row.district for row in every)
        districts = self._district_order + tuple(d for d in heard if d not in self._district_order)
        return Fleet(
            at=now,
            sort=sort,
            district=district or None,
            districts=districts,
            total=len(every),
            stale=sum(row.stale for row in rows),
            gateways=tuple(present + missing),
        )

    # Taking messages -----------------------------------------------------------------

    def _gateway(self, site: str, gateway: str, now: datetime) -> _Gateway:
        gw = self._gateways.get((site, gateway))
        if gw is None:
            gw = self._gateways[(site, gateway)] = _Gateway(site, gateway, watched_since=now)
            if site not in self._sites:
                self._note(
                    (site, gateway, "site"),
                    "网关一览：站点 %s 不在站点目录中，网关 %s 照常列出 "
                    "fleet: site %s is not in the site directory; gateway %s is listed anyway",
                    site,
                    gateway,
                    site,
                    gateway,
                )
        return gw

    def _status(self, gw: _Gateway, status: GatewayStatus) -> None:
        if status.session < gw.session:
            # A Last Will that arrived after the gateway had reconnected (docs/mqtt.md).
            self._log.info(
                "网关一览：忽略 %s/%s 旧会话 %d 的状态（当前 %d） "
                "fleet: status of older session %d of %s/%s ignored (current %d)",
                gw.site,
                gw.gateway,
                status.session,
                gw.session,
                status.session,
                gw.site,
                gw.gateway,
                gw.session,
            )
            return
        gw.session = status.session
        gw.state = status.state
        # A Last Will may have been prepared without them: offline keeps what online said.
        if status.state == "online" or status.version is not None:
            gw.version = status.version
        if status.state == "online" or status.config is not None:
            gw.config = status.config

    def _from_gateway(self, gw: _Gateway, reading: SystemReading | OutboxReading) -> bool:
        if reading.device == "gateway":
            return True
        self._note(
            (gw.site, gw.gateway, reading.kind, reading.device),
            "网关一览：忽略 %s/%s 的 %s 读数：设备应为 gateway，而非 %s "
            "fleet: %s reading of %s/%s ignored: its device is %s, not gateway",
            gw.site,
            gw.gateway,
            reading.kind,
            reading.device,
            reading.kind,
            gw.site,
            gw.gateway,
            reading.device,
        )
        return False

    def _system(self, gw: _Gateway, reading: SystemReading) -> None:
        last = gw.system
        if last is not None:
            if reading.ts < last.ts:
                return  # an older one, late: the newer stays
            gap = reading.ts - last.ts
            if timedelta(seconds=1) <= gap <= timedelta(hours=1):
                gw.interval = gap
        gw.system = reading

    def _note(self, key: tuple[str, ...], message: str, *args: object) -> None:
        """Log a complaint about a gateway once (its messages come every minute)."""
        if key in self._noted or len(self._noted) >= _MOST_NOTED:
            return
        self._noted.add(key)
        self._log.warning(message, *args)

    # Rows ------------------------------------------------------------------------------

    def _row(self, gw: _Gateway, now: datetime) -> FleetRow:
        spec = self._sites.get(gw.site)
        interval = gw.interval or self._report_interval
        heard = gw.last_seen or gw.watched_since
        silent = now - heard > interval * self._stale_intervals
        system, outbox = gw.system, gw.outbox
        links = list(gw.links.values())
        mask = system.throttled if system else None
        used = None
        if system and system.disk_total_bytes:
            free = system.disk_free_bytes / system.disk_total_bytes
            used = round(100 * (1 - free), 1)
        return FleetRow(
            site=gw.site,
            gateway=gw.gateway,
            site_name=spec.name if spec else None,
            site_name_en=spec.name_en if spec else None,
            district=spec.district if spec else None,
            district_en=spec.district_en if spec else None,
            state=gw.state,
            stale=gw.state == "offline" or silent,
            version=gw.version,
            config_version=gw.config.version if gw.config else None,
            config_hash=gw.config.hash if gw.config else None,
            config_state=gw.config.state if gw.config else None,
            config_error=gw.config.error if gw.config else None,
            uptime_s=system.process_uptime_s if system else None,
            host_uptime_s=system.host_uptime_s if system else None,
            last_seen=gw.last_seen,
            outbox=outbox.queued if outbox else None,
            drops=(
                outbox.dropped_periodic + outbox.dropped_state + outbox.dropped_clock
                if outbox
                else None
            ),
            link_errors=(
                sum(link.crc_errors + link.malformed + link.lost for link in links)
                if links
                else None
            ),
            links=len(links),
            cpu_temp_c=system.cpu_temp_c if system else None,
            disk_free_bytes=system.disk_free_bytes if system else None,
            disk_total_bytes=system.disk_total_bytes if system else None,
            disk_used_pct=used,
            throttled=mask,
            power=_power_state(mask),
            power_flags=power_flags(mask) if mask is not None else (),
        )


def _natural(text: str | None) -> tuple[tuple[int, int | str], ...] | None:
    """``"1.10.0"`` after ``"1.9.2"``: digit runs compare as numbers."""
    if text is None:
        return None
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|\D+", text)
    )


#: Each column ``sort`` takes, and the value it sorts by (None: sorts last).
_SORT_KEYS: dict[str, Callable[[FleetRow], Any]] = {
    "site": lambda r: r.site,
    "gateway": lambda r: r.gateway,
    "district": lambda r: r.district,
    "state": lambda r: (r.stale, _STATE_ORDER[r.state]),
    "version": lambda r: _natural(r.version),
    "config": lambda r: _natural(r.config_version or r.config_hash),
    "uptime": lambda r: r.uptime_s,
    "last_seen": lambda r: r.last_seen,
    "outbox": lambda r: r.outbox,
    "drops": lambda r: r.drops,
    "link_errors": lambda r: r.link_errors,
    "cpu_temp": lambda r: r.cpu_temp_c,
    "disk": lambda r: r.disk_used_pct,
    "power": lambda r: None if r.power is None else (_POWER_ORDER[r.power], r.throttled),
}

#: What ``sort`` takes (each may have a ``-`` in front for descending order).
SORT_COLUMNS: tuple[str, ...] = tuple(_SORT_KEYS)


def _sort_key(sort: str) -> tuple[Callable[[FleetRow], Any], bool]:
    descending = sort.startswith("-")
    column = sort.removeprefix("-")
    if column not in _SORT_KEYS:
        raise ValueError(
            f"不能按 {column!r} 排序 cannot sort by {column!r}: "
            f"use one of {', '.join(SORT_COLUMNS)} (with - for descending)"
        )
    return _SORT_KEYS[column], descending


def _unique(values: Any) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        if value:
            seen.setdefault(value, None)
    return tuple(seen)
