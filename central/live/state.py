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
6. ``occupied`` or ``free`` — its newest reading; with a presence channel, ``away`` or ``held``
   (:mod:`central.live.seats`, which also turns away seats held when their grace is over).

A seat is never shown with its last value once its source has gone quiet. Silence is measured
on the receive clock, not the gateway's timestamps, and a message replayed as retained when
this service (re)subscribes does not count as hearing from the gateway: after a restart every
gateway gets ``gateway_silent_after`` to speak before its seats turn unknown.

Only what can have changed is recomputed, so that a city of sites costs per message, not per
site. A message marks its site, and a seat or fault reading that seat; a site's seats are all
recomputed only when its *context* changed: a gateway's state, or which boards are silent.
Time alone changes views only at known moments — a gateway's or a board's silence timing out,
an opening-hours boundary — so each site keeps the earliest moment a silence can time out (its
*deadline*), and a ``timed`` refresh looks only at sites past their deadline or whose opening
hours now read differently. Air sensors (temperature, humidity, CO₂) are :mod:`central.live.air`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from central.alerts.model import Alert
from central.calendar_hours import SiteHours, hours_key, site_hours
from central.facts import FactStore, SiteFacts
from central.live.air import AirRoom
from central.live.events import EventKind, LiveEvent
from central.live.seats import COUNTED, HoldClock, Shown, count, seat_shown, seat_view
from central.live.views import (
    DeviceView,
    DoorView,
    GatewayView,
    Layout,
    PublicSite,
    PublicSites,
    SeatCounts,
    SeatView,
    SiteDetail,
    SiteFacade,
    Sites,
    SiteSummary,
)
from central.sites import SiteDirectory, SiteSpec
from qihe.contract import AirReading, FaultReading, GatewayStatus, Reading, SeatReading

__all__ = ["LiveState", "Timeouts"]

_AUTO_COLS = 8

Key = tuple[str, str]  # (gateway, sensor) or (gateway, device)
GatewayState = tuple[str, datetime | None]  # (state, since)

_NO_GATEWAY: GatewayState = ("unknown", None)
_FACADE = set(SiteFacade.model_fields)


@dataclass(frozen=True, slots=True)
class Timeouts:
    gateway_silent_after: timedelta = timedelta(seconds=180)
    device_silent_intervals: float = 3.0
    air_stale_after: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a seat is drawn (its id is the sensor, the second half of its key)."""

    label: str
    row: int | None
    col: int | None
    x: float | None
    y: float | None


class _Hours:
    """Opening hours shared by every site that has the same, with today's description kept."""

    __slots__ = ("_day", "_text", "hours", "now")

    def __init__(self, hours: SiteHours) -> None:
        self.hours = hours
        self._day: date | None = None
        self._text: tuple[str | None, str | None] = (None, None)
        #: ``(open_now, hours_today, hours_note)`` at the last timed refresh.
        self.now: tuple[bool, str | None, str | None] | None = None

    def at(self, local: datetime) -> tuple[bool, str | None, str | None]:
        day = local.date()
        if day != self._day:
            self._day, self._text = day, (self.hours.describe(day), self.hours.note(day))
        return self.hours.is_open(local), *self._text


@dataclass(frozen=True, slots=True)
class _Context:
    """What every seat of a site depends on besides its own reading and fault."""

    gateways: dict[str, GatewayState]
    #: Per (gateway, device): since when the board is silent, None while it is not.
    silent: dict[Key, datetime | None]


@dataclass(slots=True)
class _Site:
    spec: SiteSpec
    configured: bool
    hours: _Hours
    places: dict[Key, _Place] = field(default_factory=dict)
    #: Gateways the drawn seats belong to (a site's summary lists them even before they speak).
    place_gateways: set[str] = field(default_factory=set)
    door_labels: dict[Key, str] = field(default_factory=dict)
    facts: SiteFacts = field(default_factory=SiteFacts)
    air: AirRoom = field(default_factory=AirRoom)
    # What was last published, to send only differences.
    shown_seats: dict[Key, Shown] = field(default_factory=dict)
    shown_doors: dict[Key, DoorView] = field(default_factory=dict)
    shown_devices: dict[Key, DeviceView] = field(default_factory=dict)
    shown_summary: SiteSummary | None = None
    #: The context the shown seats were computed in (None: not yet shown).
    shown_context: _Context | None = None
    #: Shown seats by state (their sum is ``len(shown_seats)``).
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    holds: HoldClock = field(default_factory=HoldClock)  # when away seats turn held
    #: Seats a message may have changed since the last refresh, in arrival order.
    changed_seats: dict[Key, None] = field(default_factory=dict)
    #: A message other than a seat reading came since the last refresh (doors, boards).
    others_changed: bool = True
    alerts: dict[str, Alert] = field(default_factory=dict)
    alerts_changed: bool = False
    #: The earliest moment a silence can time out (None: none can before the next message).
    deadline: datetime | None = None
    #: The public entry, kept with the summary it was made from.
    public: tuple[SiteSummary, PublicSite] | None = None
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
        self._zone = directory.zone
        self._sites: dict[str, _Site] = {}
        self._hours: dict[Hashable, _Hours] = {}
        self._facts = FactStore()
        self._pending: list[LiveEvent] = []
        #: Sites to recompute at the next refresh, in the order they changed.
        self._dirty: dict[str, _Site] = {}
        #: The latest ``now`` a refresh saw: a clock that goes back voids the deadlines.
        self._latest: datetime | None = None
        for spec in directory.sites:
            site = self._configured(spec)
            self._sites[spec.id] = self._dirty[spec.id] = site

    # Feeding -------------------------------------------------------------------------

    def apply(
        self, message: GatewayStatus | Reading, received_at: datetime, *, retained: bool
    ) -> None:
        """Take one validated message; ``retained`` when the broker replayed it on subscribe."""
        site = self._site(message.site)
        self._facts.apply(message, received_at, retained=retained)
        self._dirty[message.site] = site
        # What else a message changes, seats change only through the site's context.
        if isinstance(message, SeatReading):
            key = (message.gateway, message.sensor)
            if key not in site.places:
                site.places[key] = _auto_place(site, key)
                site.place_gateways.add(message.gateway)
            site.changed_seats[key] = None
            return
        site.others_changed = True
        if isinstance(message, AirReading):
            site.air.take(message, received_at)
        if isinstance(message, FaultReading) and (message.target_kind or "seat") == "seat":
            site.changed_seats[(message.gateway, message.target or message.sensor)] = None

    def apply_alert(self, site_id: str, alert_id: str, alert: Alert | None) -> None:
        """An alert the engine published (``None``: resolved, or its retained message cleared)."""
        site = self._site(site_id)
        if alert is not None and alert.state == "firing":
            if site.alerts.get(alert_id) == alert:
                return
            site.alerts[alert_id] = alert
        elif site.alerts.pop(alert_id, None) is None:
            return
        site.alerts_changed = True
        self._dirty[site_id] = site

    def refresh(
        self, now: datetime, *, timed: bool = False, everything: bool = False
    ) -> list[LiveEvent]:
        """Recompute the sites that took a message since the last call and return the events
        to send, oldest first. ``timed``: also the sites whose views the passing of time alone
        changed by ``now`` (a silence timed out, opening hours) — the service asks for this
        every ``refresh_interval``. ``everything``: every site, from scratch."""
        if timed and self._latest is not None and now < self._latest:
            everything = True  # the clock went back: views and deadlines may be ahead of it
        if everything or self._latest is None or now > self._latest:
            self._latest = now
        if everything:
            sites: Iterable[_Site] = self._sites.values()
        else:
            if timed:
                self._mark_due(now)
            sites = self._dirty.values()
        events: list[LiveEvent] = []
        for site in sites:
            self._refresh_site(site, now, events, everything=everything)
        self._dirty.clear()
        return events

    # Reading -------------------------------------------------------------------------

    def sites(self, now: datetime) -> Sites:
        self._catch_up(now)
        summaries = tuple(s.shown_summary for s in self._ordered() if s.shown_summary is not None)
        return Sites(version=self.version, generated_at=now, sites=summaries)

    def has_site(self, site_id: str) -> bool:
        return site_id in self._sites

    def detail(self, site_id: str, now: datetime) -> SiteDetail | None:
        site = self._sites.get(site_id)
        if site is None:
            return None
        self._catch_up(now)
        assert site.shown_summary is not None
        shown = site.shown_seats
        seats = tuple(_seat(key, p, shown[key]) for key, p in site.places.items() if key in shown)
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
            air=site.air.views(),
        )

    def public(self, now: datetime) -> PublicSites:
        self._catch_up(now)
        out = [entry for site in self._ordered() if (entry := _public_of(site)) is not None]
        return PublicSites(generated_at=now, sites=tuple(out))

    def public_site(self, site_id: str) -> tuple[PublicSite, SiteSummary] | None:
        """One site's public entry and its summary as last refreshed, with no catch-up (for
        the public feed, which follows the events); None when it is not on the public page."""
        site = self._sites.get(site_id)
        entry = None if site is None else _public_of(site)
        if site is None or entry is None:
            return None
        assert site.shown_summary is not None
        return entry, site.shown_summary

    # Internals -----------------------------------------------------------------------

    def _catch_up(self, now: datetime) -> None:
        # A snapshot must not be older than the events already sent, nor than the clock: the
        # sites that changed since the last refresh (a message, a silence timing out, the
        # sites never shown yet at a start) are refreshed now, and what that produces is kept
        # for the service to send (it carries versions the snapshot already holds).
        self._pending.extend(self.refresh(now, timed=True))

    def take_pending(self) -> list[LiveEvent]:
        """Events produced while answering a snapshot request, for the service to send."""
        events, self._pending = self._pending, []
        return events

    def _ordered(self) -> Iterable[_Site]:
        return self._sites.values()

    def _mark_due(self, now: datetime) -> None:
        """Mark the sites whose views the passing of time alone changed by ``now``."""
        local = now.astimezone(self._zone)
        for hours in self._hours.values():
            hours.now = hours.at(local)
        for site_id, site in self._sites.items():
            summary = site.shown_summary
            if (
                summary is None
                or (site.deadline is not None and now >= site.deadline)
                or (summary.open_now, summary.hours_today, summary.hours_note) != site.hours.now
            ):
                self._dirty[site_id] = site

    def _configured(self, spec: SiteSpec) -> _Site:
        site = _Site(
            spec,
            True,
            self._hours_of(spec),
            facts=self._facts.sites.setdefault(spec.id, SiteFacts()),
        )
        for seat in spec.all_seats():
            key = (seat.gateway, seat.sensor)
            site.places[key] = _Place(seat.label or seat.sensor, seat.row, seat.col, seat.x, seat.y)
            site.place_gateways.add(seat.gateway)
        for door in spec.doors:
            site.door_labels[(door.gateway, door.sensor)] = door.label or door.sensor
        rows = [p.row for p in site.places.values() if p.row is not None]
        site.first_free_row = max(rows, default=0) + 1
        return site

    def _hours_of(self, spec: SiteSpec) -> _Hours:
        key = hours_key(spec)
        hours = self._hours.get(key)
        if hours is None:
            hours = self._hours[key] = _Hours(site_hours(self.directory, spec))
        return hours

    def _site(self, site_id: str) -> _Site:
        site = self._sites.get(site_id)
        if site is None:  # a gateway the directory does not know yet: show it anyway
            spec = SiteSpec(id=site_id, name=site_id, kind="other")
            facts = self._facts.sites.setdefault(site_id, SiteFacts())
            site = _Site(spec, False, self._hours_of(spec), facts=facts)
            self._sites[site_id] = self._dirty[site_id] = site
        return site

    def _event(self, kind: EventKind, site: str, body: dict[str, object]) -> LiveEvent:
        self.version += 1
        return LiveEvent.build(kind, site, self.version, body)

    def _context(self, site: _Site, now: datetime) -> tuple[_Context, datetime | None]:
        """What the site's seats depend on at ``now``, and the earliest moment after ``now``
        it changes if nothing more is heard: a gateway or a board turning silent (the only
        way time alone changes what a site shows, besides its opening hours)."""
        silent_after, started_at = self.timeouts.gateway_silent_after, self.started_at
        intervals = self.timeouts.device_silent_intervals
        deadline: datetime | None = None
        gateways: dict[str, GatewayState] = {}
        for name, gw in site.facts.gateways.items():
            gateways[name] = gw.state(now, silent_after=silent_after, started_at=started_at)
            if gw.status != "offline":  # as GatewayFacts.state: offline stays offline
                at = (gw.heard or started_at) + silent_after
                if at > now and (deadline is None or at < deadline):
                    deadline = at
        silent: dict[Key, datetime | None] = {}
        for key, dev in site.facts.devices.items():
            at = dev.silent_at(intervals, started_at)
            if now >= at:
                silent[key] = at
            else:
                silent[key] = None
                if deadline is None or at < deadline:
                    deadline = at
        air_at = site.air.deadline(now, self.timeouts.air_stale_after)  # an air sensor's silence
        if air_at is not None and (deadline is None or air_at < deadline):
            deadline = air_at
        return _Context(gateways, silent), deadline

    def _refresh_site(
        self, site: _Site, now: datetime, events: list[LiveEvent], *, everything: bool
    ) -> None:
        site_id = site.spec.id
        context, deadline = self._context(site, now)
        # The seats' own inputs changed only for the seats a message named (or whose hold
        # came), and doors' and boards' only if a message other than a seat reading came,
        # unless the context did; then everything is looked at again.
        everything = everything or context != site.shown_context
        site.changed_seats.update(dict.fromkeys(site.holds.due(now)))
        keys: Iterable[Key] = site.places if everything else site.changed_seats
        for key in keys:
            seat = self._seat_view(site, key, context, now)
            if seat is not None:
                events.append(self._event("seat", site_id, {"seat": seat}))
        site.changed_seats.clear()
        site.shown_context, site.deadline = context, site.holds.next_at(deadline)
        if everything or site.others_changed:
            site.others_changed = False
            for door in self._door_views(site, context):
                events.append(self._event("door", site_id, {"door": door}))
            for device in self._device_views(site, context):
                events.append(self._event("device", site_id, {"device": device}))
        air = site.air.changed(
            site.facts, context.gateways, context.silent, now, self.timeouts.air_stale_after
        )
        events.extend(self._event("air", site_id, {"air": view}) for view in air)
        if site.alerts_changed:
            site.alerts_changed = False
            events.append(self._event("alerts", site_id, {"alerts": _newest_first(site)}))
        summary, shown = self._summary(site, now, context), site.shown_summary
        # Any message moves last_seen: compare the whole summary only when it did not.
        if shown is None or summary.last_seen != shown.last_seen or summary != shown:
            site.shown_summary = summary
            events.append(self._event("site", site_id, {"site": summary}))

    def _seat_view(
        self, site: _Site, key: Key, context: _Context, now: datetime
    ) -> SeatView | None:
        """The seat's new view when it differs from the one shown (then shown from now on)."""
        place = site.places.get(key)
        if place is None:  # a fault naming a seat that is not drawn
            return None
        now_shown = seat_shown(
            site.facts, key, context.gateways, context.silent, now, site.spec.seat_hold, self._zone
        )
        site.holds.note(key, now_shown)
        shown = site.shown_seats.get(key)
        if shown is not None:
            if shown == now_shown:
                return None
            count(site.counts, shown, -1)
        site.shown_seats[key] = now_shown
        count(site.counts, now_shown, 1)
        return _seat(key, place, now_shown)

    def _door_views(self, site: _Site, context: _Context) -> list[DoorView]:
        """Doors whose view changed (then shown from now on)."""
        keys = list(site.door_labels) + [k for k in site.facts.doors if k not in site.door_labels]
        changed = []
        for key in keys:
            value = site.facts.doors.get(key)
            state, since = "unknown", None
            if value is not None and _source_alive(site, key[0], value.device, context):
                state, since = ("open" if value.on else "closed"), value.ts
            shown = site.shown_doors.get(key)
            if shown is not None and shown.state == state and shown.since == since:
                continue
            door = DoorView(
                id=key[1], label=site.door_labels.get(key, key[1]), state=state, since=since
            )
            site.shown_doors[key] = door
            changed.append(door)
        return changed

    def _device_views(self, site: _Site, context: _Context) -> list[DeviceView]:
        """Boards whose view changed (then shown from now on), in (gateway, device) order."""
        changed = []
        for key, dev in sorted(site.facts.devices.items()):
            if dev.firmware is None and dev.last_heartbeat is None:
                continue  # the gateway's own pseudo-devices (GPIO, its outbox)
            alive_gw = context.gateways.get(key[0], _NO_GATEWAY)[0] == "online"
            state = (
                "unknown" if not alive_gw else "ok" if context.silent.get(key) is None else "silent"
            )
            shown = site.shown_devices.get(key)
            if (
                shown is not None
                and shown.state == state
                and shown.firmware == dev.firmware
                and shown.supply_mv == dev.supply_mv
                and shown.last_heartbeat == dev.last_heartbeat
            ):
                continue
            device = DeviceView(
                id=key[1],
                gateway=key[0],
                firmware=dev.firmware,
                supply_mv=dev.supply_mv,
                last_heartbeat=dev.last_heartbeat,
                state=state,
            )
            site.shown_devices[key] = device
            changed.append(device)
        return changed

    def _summary(self, site: _Site, now: datetime, context: _Context) -> SiteSummary:
        spec, shown = site.spec, site.shown_summary
        counts = site.counts
        known = counts["free"] + counts["occupied"]
        total = len(site.shown_seats)
        old = shown.seats if shown is not None else None
        if (
            old is not None
            and old.total == total
            and all(getattr(old, name) == counts[name] for name in COUNTED)
        ):
            seats = old  # one model less to build for every message that changed no count
        else:
            seats = SeatCounts(total=total, **counts)
        door: str | None = None
        if site.shown_doors:
            states = {d.state for d in site.shown_doors.values()}
            door = "open" if "open" in states else "unknown" if "unknown" in states else "closed"
        open_now, hours_today, hours_note = site.hours.at(now.astimezone(self._zone))
        gateways = tuple(
            GatewayView(id=g, state=state, last_seen=gw.last_seen, since=since)
            for g, gw in sorted(site.facts.gateways.items())
            for state, since in [context.gateways[g]]
        )
        for g in sorted(site.place_gateways.difference(site.facts.gateways)):
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
            open_now=open_now,
            hours_today=hours_today,
            hours_note=hours_note,
            seats=seats,
            occupancy=round(counts["occupied"] / known, 4) if known else None,
            people_inside=_people_inside(site, context),
            door=door,
            online=bool(gateways) and all(g.state == "online" for g in gateways),
            last_seen=max(seen, default=None),
            gateways=gateways,
            alerts=len(site.alerts),
        )


def _seat(key: Key, place: _Place, shown: Shown) -> SeatView:
    return seat_view(key, shown, place.label, place.row, place.col, place.x, place.y)


def _source_alive(site: _Site, gateway: str, device: str, context: _Context) -> bool:
    if context.gateways.get(gateway, _NO_GATEWAY)[0] != "online":
        return False
    # Boards heartbeat; GPIO contacts on the gateway itself live as long as the gateway.
    dev = site.facts.devices.get((gateway, device))
    has_heartbeat = dev is not None and dev.last_heartbeat is not None
    return not (has_heartbeat and context.silent.get((gateway, device)) is not None)


def _people_inside(site: _Site, context: _Context) -> int | None:
    if not site.facts.counters:
        return None
    inside = 0
    for (gateway, _sensor), (in_total, out_total, _ts) in site.facts.counters.items():
        if context.gateways.get(gateway, _NO_GATEWAY)[0] != "online":
            return None
        # Totals count since the counter's last reset; more out than in means people
        # were inside at the reset: never show a negative room.
        inside += max(0, in_total - out_total)
    return inside


def _public_of(site: _Site) -> PublicSite | None:
    """The site's public entry, made again only when its summary changed."""
    summary = site.shown_summary
    if not (site.configured and site.spec.public) or summary is None:
        return None
    if site.public is None or site.public[0] is not summary:
        site.public = (summary, _public(summary))
    return site.public[1]


def _public(summary: SiteSummary) -> PublicSite:
    known = summary.seats.total - summary.seats.unknown
    return PublicSite(
        **summary.model_dump(include=_FACADE),
        free_seats=summary.seats.free if known > 0 else None,
        likely_free=summary.seats.held if known > 0 else None,
        total_seats=summary.seats.total,
        updated_at=summary.last_seen,
    )


def _newest_first(site: _Site) -> tuple[Alert, ...]:
    return tuple(sorted(site.alerts.values(), key=lambda a: a.starts_at, reverse=True))


def _auto_place(site: _Site, key: Key) -> _Place:
    """A seat the directory does not list: placed in the first free cell below the listed ones."""
    cols = max((p.col for p in site.places.values() if p.col is not None), default=_AUTO_COLS)
    taken = {(p.row, p.col) for p in site.places.values()}
    row, col = site.first_free_row, 1
    while (row, col) in taken:
        row, col = (row, col + 1) if col < cols else (row + 1, 1)
    return _Place(label=key[1], row=row, col=col, x=None, y=None)
