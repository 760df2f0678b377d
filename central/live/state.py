"""The present state of every site, gateway and sensor, kept from MQTT messages (sans-IO).

:class:`LiveState` is fed typed messages (:meth:`LiveState.apply`) and the passing of time
(:meth:`LiveState.refresh`), and answers with the views of :mod:`central.live.views` and the
events that changed them. It does no I/O and reads no clock: the service passes ``now``.

What a seat shows, in order of precedence:

1. ``unknown / gateway_offline`` — the gateway's retained status (or its Last Will) says offline;
2. ``unknown / gateway_silent`` — nothing heard from the gateway for ``gateway_silent_after``;
3. ``unknown / no_data`` — no reading of the seat yet;
4. ``unknown / device_silent`` — its board missed ``device_silent_intervals`` heartbeats;
5. ``fault / {code}`` — an active fault report names the seat;
6. ``occupied`` or ``free`` — its newest reading.

A seat is never shown with its last value once its source has gone quiet. Silence is measured
on the receive clock, not the gateway's timestamps, and a message replayed as retained when
this service (re)subscribes does not count as hearing from the gateway: after a restart every
gateway gets ``gateway_silent_after`` to speak before its seats turn unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from central.alerts.model import Alert
from central.facts import DeviceFacts, FactStore, GatewayFacts, SiteFacts
from central.live.events import EventKind, LiveEvent
from central.live.views import (
    DeviceView,
    DoorView,
    GatewayView,
    Layout,
    PublicSite,
    PublicSites,
    SeatCounts,
    SeatState,
    SeatView,
    SiteDetail,
    SiteFacade,
    Sites,
    SiteSummary,
)
from central.sites import SiteDirectory, SiteSpec
from qihe.contract import GatewayStatus, Reading, SeatReading

__all__ = ["LiveState", "Timeouts"]

_AUTO_COLS = 8

Key = tuple[str, str]  # (gateway, sensor)


@dataclass(frozen=True, slots=True)
class Timeouts:
    gateway_silent_after: timedelta = timedelta(seconds=180)
    device_silent_intervals: float = 3.0


@dataclass(frozen=True, slots=True)
class _Place:
    id: str
    label: str
    row: int | None
    col: int | None
    x: float | None
    y: float | None


@dataclass(slots=True)
class _Site:
    spec: SiteSpec
    configured: bool
    places: dict[Key, _Place] = field(default_factory=dict)
    door_labels: dict[Key, str] = field(default_factory=dict)
    facts: SiteFacts = field(default_factory=SiteFacts)
    # What was last published, to send only differences.
    shown_seats: dict[Key, SeatView] = field(default_factory=dict)
    shown_doors: dict[Key, DoorView] = field(default_factory=dict)
    shown_devices: dict[tuple[str, str], DeviceView] = field(default_factory=dict)
    shown_summary: SiteSummary | None = None
    alerts: dict[str, Alert] = field(default_factory=dict)
    alerts_changed: bool = False
    dirty: bool = True
    #: Seats the directory does not list are drawn from this row on.
    first_free_row: int = 1


class LiveState:
    def __init__(
        self, directory: SiteDirectory, *, started_at: datetime, timeouts: Timeouts | None = None
    ) -> None:
        self.directory = directory
        self.timeouts = timeouts or Timeouts()
        self.started_at = started_at
        #: Grows by one with every event; snapshots carry it so a client can drop older events.
        self.version = 0
        self._sites: dict[str, _Site] = {}
        self._facts = FactStore()
        self._pending: list[LiveEvent] = []
        for spec in directory.sites:
            self._sites[spec.id] = _configured(spec, self._facts)

    # Feeding -------------------------------------------------------------------------

    def apply(
        self, message: GatewayStatus | Reading, received_at: datetime, *, retained: bool
    ) -> None:
        """Take one validated message; ``retained`` when the broker replayed it on subscribe."""
        site = self._site(message.site)
        self._facts.apply(message, received_at, retained=retained)
        site.dirty = True
        if isinstance(message, SeatReading):
            key = (message.gateway, message.sensor)
            if key not in site.places:
                site.places[key] = _auto_place(site, key)

    def apply_alert(self, site_id: str, alert_id: str, alert: Alert | None) -> None:
        """An alert the engine published (``None``: resolved, or its retained message cleared)."""
        site = self._site(site_id)
        if alert is not None and alert.state == "firing":
            if site.alerts.get(alert_id) == alert:
                return
            site.alerts[alert_id] = alert
        elif site.alerts.pop(alert_id, None) is None:
            return
        site.alerts_changed = site.dirty = True

    def refresh(self, now: datetime, *, everything: bool = False) -> list[LiveEvent]:
        """Recompute what changed since the last call (every site when ``everything``: time
        passing alone turns seats unknown) and return the events to send, oldest first."""
        events: list[LiveEvent] = []
        for site_id, site in self._sites.items():
            if not (site.dirty or everything):
                continue
            site.dirty = False
            for key, seat in self._seat_views(site, now).items():
                if site.shown_seats.get(key) != seat:
                    site.shown_seats[key] = seat
                    events.append(self._event("seat", site_id, {"seat": seat}))
            for key, door in self._door_views(site, now).items():
                if site.shown_doors.get(key) != door:
                    site.shown_doors[key] = door
                    events.append(self._event("door", site_id, {"door": door}))
            for device in self._device_views(site, now):
                if site.shown_devices.get((device.gateway, device.id)) != device:
                    site.shown_devices[(device.gateway, device.id)] = device
                    events.append(self._event("device", site_id, {"device": device}))
            if site.alerts_changed:
                site.alerts_changed = False
                events.append(self._event("alerts", site_id, {"alerts": _newest_first(site)}))
            summary = self._summary(site, now)
            if summary != site.shown_summary:
                site.shown_summary = summary
                events.append(self._event("site", site_id, {"site": summary}))
        return events

    # Reading -------------------------------------------------------------------------

    def sites(self, now: datetime) -> Sites:
        self._catch_up(now)
        summaries = tuple(s.shown_summary for s in self._ordered() if s.shown_summary is not None)
        return Sites(version=self.version, generated_at=now, sites=summaries)

    def site_ids(self) -> list[str]:
        return list(self._sites)

    def detail(self, site_id: str, now: datetime) -> SiteDetail | None:
        site = self._sites.get(site_id)
        if site is None:
            return None
        self._catch_up(now)
        assert site.shown_summary is not None
        seats = tuple(site.shown_seats[key] for key in site.places if key in site.shown_seats)
        rows = [p.row for p in site.places.values() if p.row is not None]
        cols = [p.col for p in site.places.values() if p.col is not None]
        return SiteDetail(
            version=self.version,
            generated_at=now,
            site=site.shown_summary,
            layout=Layout(rows=max(rows, default=None), cols=max(cols, default=None)),
            seats=seats,
            doors=tuple(site.shown_doors.values()),
            devices=tuple(site.shown_devices[k] for k in sorted(site.shown_devices)),
            alerts=_newest_first(site),
        )

    def public(self, now: datetime) -> PublicSites:
        self._catch_up(now)
        out = []
        for site in self._ordered():
            summary = site.shown_summary
            if not (site.configured and site.spec.public) or summary is None:
                continue
            known = summary.seats.total - summary.seats.unknown
            out.append(
                PublicSite(
                    **summary.model_dump(include=set(SiteFacade.model_fields)),
                    free_seats=summary.seats.free if known > 0 else None,
                    total_seats=summary.seats.total,
                    updated_at=summary.last_seen,
                )
            )
        return PublicSites(generated_at=now, sites=tuple(out))

    # Internals -----------------------------------------------------------------------

    def _catch_up(self, now: datetime) -> None:
        # A snapshot must not be older than the events already sent; what this refresh
        # produces is kept for the service to send with its next batch, not dropped.
        self._pending.extend(self.refresh(now, everything=True))

    def take_pending(self) -> list[LiveEvent]:
        """Events produced while answering a snapshot request, for the service to send."""
        events, self._pending = self._pending, []
        return events

    def _ordered(self) -> Iterable[_Site]:
        return self._sites.values()

    def _site(self, site_id: str) -> _Site:
        site = self._sites.get(site_id)
        if site is None:  # a gateway the directory does not know yet: show it anyway
            spec = SiteSpec(id=site_id, name=site_id, kind="other")
            site = _Site(spec, False, facts=self._facts.sites.setdefault(site_id, SiteFacts()))
            self._sites[site_id] = site
        return site

    def _event(self, kind: EventKind, site: str, body: dict[str, object]) -> LiveEvent:
        self.version += 1
        return LiveEvent.build(kind, site, self.version, body)

    def _gateway_state(self, gateway: GatewayFacts, now: datetime) -> tuple[str, datetime | None]:
        return gateway.state(
            now, silent_after=self.timeouts.gateway_silent_after, started_at=self.started_at
        )

    def _device_silent_at(self, site: _Site, gateway: str, device: str) -> datetime | None:
        dev = site.facts.devices.get((gateway, device))
        if dev is None:
            return None
        return dev.silent_at(self.timeouts.device_silent_intervals, self.started_at)

    def _seat_views(self, site: _Site, now: datetime) -> dict[Key, SeatView]:
        gateway_states = {g: self._gateway_state(gw, now) for g, gw in site.facts.gateways.items()}
        views: dict[Key, SeatView] = {}
        for key, place in site.places.items():
            state, reason, since = self._seat_state(site, key, gateway_states, now)
            shown = site.shown_seats.get(key)
            if shown is not None and (shown.state, shown.reason, shown.since) == (
                state,
                reason,
                since,
            ):
                views[key] = shown
                continue
            views[key] = SeatView(
                id=place.id,
                label=place.label,
                row=place.row,
                col=place.col,
                x=place.x,
                y=place.y,
                state=state,
                since=since,
                reason=reason,
            )
        return views

    def _seat_state(
        self,
        site: _Site,
        key: Key,
        gateway_states: dict[str, tuple[str, datetime | None]],
        now: datetime,
    ) -> tuple[SeatState, str | None, datetime | None]:
        gateway_state, gateway_since = gateway_states.get(key[0], ("unknown", None))
        if gateway_state == "offline":
            return "unknown", "gateway_offline", gateway_since
        if gateway_state == "silent":
            return "unknown", "gateway_silent", gateway_since
        value = site.facts.seats.get(key)
        if value is None:
            return "unknown", "no_data", None
        silent_at = self._device_silent_at(site, key[0], value.device)
        if silent_at is not None and now >= silent_at:
            return "unknown", "device_silent", silent_at
        fault = site.facts.faults.get((key[0], "seat", key[1]))
        if fault is not None:
            return "fault", fault.code, fault.ts
        return ("occupied" if value.on else "free"), None, value.ts

    def _door_views(self, site: _Site, now: datetime) -> dict[Key, DoorView]:
        keys = list(site.door_labels) + [k for k in site.facts.doors if k not in site.door_labels]
        views = {}
        for key in keys:
            value = site.facts.doors.get(key)
            state, since = "unknown", None
            if value is not None and self._source_alive(site, key[0], value.device, now):
                state, since = ("open" if value.on else "closed"), value.ts
            views[key] = DoorView(
                id=key[1], label=site.door_labels.get(key, key[1]), state=state, since=since
            )
        return views

    def _source_alive(self, site: _Site, gateway: str, device: str, now: datetime) -> bool:
        gw = site.facts.gateways.get(gateway)
        if gw is None or self._gateway_state(gw, now)[0] not in ("online",):
            return False
        silent_at = self._device_silent_at(site, gateway, device)
        # Boards heartbeat; GPIO contacts on the gateway itself live as long as the gateway.
        has_heartbeat = (
            site.facts.devices.get((gateway, device), DeviceFacts()).last_heartbeat is not None
        )
        return not (has_heartbeat and silent_at is not None and now >= silent_at)

    def _summary(self, site: _Site, now: datetime) -> SiteSummary:
        spec = site.spec
        counts = {"free": 0, "occupied": 0, "unknown": 0, "fault": 0}
        for seat in site.shown_seats.values():
            counts[seat.state] += 1
        known = counts["free"] + counts["occupied"]
        doors = list(site.shown_doors.values())
        door: str | None = None
        if doors:
            states = {d.state for d in doors}
            door = "open" if "open" in states else "unknown" if "unknown" in states else "closed"
        local = now.astimezone(self.directory.zone)
        hours = spec.hours()
        gateways = tuple(
            GatewayView(id=g, state=state, last_seen=gw.last_seen, since=since)
            for g, gw in sorted(site.facts.gateways.items())
            for state, since in [self._gateway_state(gw, now)]
        )
        for g in sorted({k[0] for k in site.places} - set(site.facts.gateways)):
            gateways += (GatewayView(id=g, state="unknown", last_seen=None, since=None),)
        seen = [gw.last_seen for gw in site.facts.gateways.values() if gw.last_seen is not None]
        return SiteSummary(
            id=spec.id,
            name=spec.name,
            name_en=spec.name_en,
            kind=spec.kind,
            district=spec.district,
            district_en=spec.district_en,
            address=spec.address,
            capacity=spec.capacity if spec.capacity is not None else (len(site.places) or None),
            open_now=hours.is_open(local),
            hours_today=hours.describe(local.date()),
            seats=SeatCounts(total=len(site.shown_seats), **counts),
            occupancy=round(counts["occupied"] / known, 4) if known else None,
            people_inside=self._people_inside(site, now),
            door=door,
            online=bool(gateways) and all(g.state == "online" for g in gateways),
            last_seen=max(seen, default=None),
            gateways=gateways,
            alerts=len(site.alerts),
        )

    def _people_inside(self, site: _Site, now: datetime) -> int | None:
        if not site.facts.counters:
            return None
        inside = 0
        for (gateway, _sensor), (in_total, out_total, _ts) in site.facts.counters.items():
            gw = site.facts.gateways.get(gateway)
            if gw is None or self._gateway_state(gw, now)[0] != "online":
                return None
            # Totals count since the counter's last reset; more out than in means people
            # were inside at the reset: never show a negative room.
            inside += max(0, in_total - out_total)
        return inside

    def _device_views(self, site: _Site, now: datetime) -> tuple[DeviceView, ...]:
        out = []
        for (gateway, device), dev in sorted(site.facts.devices.items()):
            if dev.firmware is None and dev.last_heartbeat is None:
                continue  # the gateway's own pseudo-devices (GPIO, its outbox)
            silent_at = self._device_silent_at(site, gateway, device)
            gw = site.facts.gateways.get(gateway)
            alive_gw = gw is not None and self._gateway_state(gw, now)[0] == "online"
            state = (
                "unknown"
                if not alive_gw
                else ("silent" if silent_at is not None and now >= silent_at else "ok")
            )
            out.append(
                DeviceView(
                    id=device,
                    gateway=gateway,
                    firmware=dev.firmware,
                    supply_mv=dev.supply_mv,
                    last_heartbeat=dev.last_heartbeat,
                    state=state,
                )
            )
        return tuple(out)


def _newest_first(site: _Site) -> tuple[Alert, ...]:
    return tuple(sorted(site.alerts.values(), key=lambda a: a.starts_at, reverse=True))


def _configured(spec: SiteSpec, facts: FactStore) -> _Site:
    site = _Site(spec, True, facts=facts.sites.setdefault(spec.id, SiteFacts()))
    for seat in spec.all_seats():
        key = (seat.gateway, seat.sensor)
        site.places[key] = _Place(
            id=seat.sensor,
            label=seat.label or seat.sensor,
            row=seat.row,
            col=seat.col,
            x=seat.x,
            y=seat.y,
        )
    for door in spec.doors:
        site.door_labels[(door.gateway, door.sensor)] = door.label or door.sensor
    rows = [p.row for p in site.places.values() if p.row is not None]
    site.first_free_row = max(rows, default=0) + 1
    return site


def _auto_place(site: _Site, key: Key) -> _Place:
    """A seat the directory does not list: placed in the first free cell below the listed ones."""
    cols = max((p.col for p in site.places.values() if p.col is not None), default=_AUTO_COLS)
    taken = {(p.row, p.col) for p in site.places.values()}
    row, col = site.first_free_row, 1
    while (row, col) in taken:
        row, col = (row, col + 1) if col < cols else (row + 1, 1)
    return _Place(id=key[1], label=key[1], row=row, col=col, x=None, y=None)
