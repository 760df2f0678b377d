"""Modbus RTU source: off-the-shelf sensors on an RS485 bus, read by polling.

One source per bus (port). RS485 is half duplex and the gateway is the only master, so
the bus's requests go one at a time, each bounded by the port's ``timeout``: a silent
device costs the bus at most that per poll, and is then asked less often (its interval
doubled per miss, up to ``backoff_max``) until it answers again, so it never holds the
others past their own intervals. The bus polls whichever device is due first.

What a device measures becomes readings as its profile says (``modbus_profiles``):
people totals (kept rising across resets and wrap-arounds, ``modbus_totals``), air, and
presence as motion or seat. People and presence are state: published when they change
and every :data:`REFRESH` else. Air is telemetry: published at every poll.

Link health per bus, as a link reading: ``frames`` good answers, ``crc_errors``,
``malformed`` (exception answers and garbled bytes), ``lost`` (requests without an
answer), ``reconnects``. A device that misses ``absent_after`` polls in a row is absent:
said once in the log and raised as a ``no_response`` fault, cleared when it answers. A
port that disappears (a replugged USB adapter) is reopened with capped backoff.

The pieces: ``modbus_rtu`` (the sans-IO codec), ``modbus_bus`` (the transport),
``modbus_profiles`` and ``modbus_config`` (what to read), ``modbus_totals`` (counters).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from edge.normalise import LinkCounters
from edge.sources.base import Emit
from edge.sources.modbus_bus import ModbusBus, ModbusPortError, ModbusTimeoutError
from edge.sources.modbus_config import ModbusConfig, ModbusDeviceConfig, ModbusPortConfig
from edge.sources.modbus_profiles import ModbusProfile, PlannedRead, decode_value, plan_reads
from edge.sources.modbus_rtu import ExceptionReply, ModbusFrameError
from edge.sources.modbus_totals import STATE_FILE, CounterTrack, load_tracks, restore, save_tracks
from edge.stamps import Stamper
from qihe.backoff import Backoff
from qihe.clock import Clock, utc_now
from qihe.contract import (
    AirReading,
    FaultReading,
    LinkReading,
    MotionReading,
    PeopleReading,
    Reading,
    SeatReading,
)
from qihe.once import OncePerKey

__all__ = ["ModbusSource"]

log = logging.getLogger(__name__)

#: State readings (people, presence) are published at least this often, changed or not.
REFRESH = 60.0
#: The counter bases are saved at most this often while only the last values move.
_SAVE_EVERY = 10.0


@dataclass(slots=True)
class _Tally:
    frames: int = 0
    crc_errors: int = 0
    malformed: int = 0
    lost: int = 0
    reconnects: int = 0


@dataclass(slots=True)
class _Device:
    config: ModbusDeviceConfig
    profile: ModbusProfile
    reads: tuple[PlannedRead, ...]
    due: float = 0.0
    misses: int = 0
    absent: bool = False
    answered: int = 0
    people: tuple[CounterTrack, CounterTrack] | None = None
    last_state: dict[str, tuple[Any, float]] = field(default_factory=dict)


class ModbusSource:
    """One RS485 bus and its devices: readings go to ``emit``."""

    def __init__(
        self,
        port: ModbusPortConfig,
        modbus: ModbusConfig,
        *,
        site: str,
        gateway: str,
        emit: Emit,
        state_dir: Path,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = f"modbus:{port.name}"
        self.port = port
        self._site = site
        self._gateway = gateway
        self._emit = emit
        self._clock = clock
        self._stamp = Stamper(clock)
        self._monotonic = monotonic
        self._state_path = state_dir / STATE_FILE
        self.devices = [self._device(d, modbus.profile(d.profile)) for d in port.devices]
        self._tally = _Tally()
        self.connected = asyncio.Event()
        self._backoff = Backoff(
            port.reconnect_min.total_seconds(), port.reconnect_max.total_seconds()
        )
        self._said = OncePerKey()
        self._tracks_loaded = False
        self._tracks_dirty = False
        self._tracks_saved_at = 0.0

    @staticmethod
    def _device(config: ModbusDeviceConfig, profile: ModbusProfile) -> _Device:
        device = _Device(config, profile, plan_reads(profile.registers))
        people_in, people_out = profile.spec("people_in"), profile.spec("people_out")
        if people_in is not None and people_out is not None:
            device.people = (CounterTrack(people_in.bits), CounterTrack(people_out.bits))
        return device

    @property
    def counters(self) -> LinkCounters:
        t = self._tally
        return LinkCounters(
            frames=t.frames,
            crc_errors=t.crc_errors,
            malformed=t.malformed,
            lost=t.lost,
            reconnects=t.reconnects,
        )

    @property
    def absent(self) -> int:
        """Devices on this bus that are absent now."""
        return sum(d.absent for d in self.devices)

    def link_reading(self) -> LinkReading:
        c = self._tally
        return LinkReading(
            site=self._site,
            gateway=self._gateway,
            device=self.port.name,
            sensor=self.port.name,
            ts=self._clock(),
            frames=c.frames,
            crc_errors=c.crc_errors,
            malformed=c.malformed,
            lost=c.lost,
            duplicates=0,
            reconnects=c.reconnects,
        )

    # -- running ---------------------------------------------------------------------

    async def run(self) -> None:
        await self._load_tracks()
        opened_before = False
        try:
            while True:
                bus = ModbusBus(self.port)
                try:
                    await bus.open()
                    if opened_before:
                        self._tally.reconnects += 1
                    opened_before = True
                    self._backoff.reset()
                    self.connected.set()
                    log.info(
                        "RS485 %s 已打开 open (%s), %d device(s)",
                        self.port.name, self.port.path, len(self.devices),
                    )  # fmt: skip
                    await self._poll_forever(bus)
                except ModbusPortError as exc:
                    delay = self._backoff.next_delay()
                    if self.connected.is_set() or self._backoff.failures == 1:
                        log.warning("%s；%.1f 秒后重试 retrying in %.1fs", exc, delay, delay)
                    self.connected.clear()
                    await asyncio.sleep(delay)
                finally:
                    bus.close()
        finally:
            self._save_tracks_now()

    async def _poll_forever(self, bus: ModbusBus) -> None:
        now = self._monotonic()
        for device in self.devices:
            device.due = min(device.due, now) if device.due else now
        while True:
            device = min(self.devices, key=lambda d: d.due)
            delay = device.due - self._monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.poll(bus, device)
            await self._maybe_save_tracks()

    async def poll(self, bus: ModbusBus, device: _Device) -> None:
        """Read one device once and publish what it measured; schedule its next poll."""
        unit = device.config.unit
        values: dict[str, float | int] = {}
        silent = answered = False
        for planned in device.reads:
            try:
                answer = await bus.transact(planned.request(unit))
            except ModbusTimeoutError:
                self._tally.lost += 1
                silent = True
                break  # one silence per poll: the device's other reads would be silent too
            except ModbusFrameError as exc:
                self._on_frame_error(device, exc)
                continue
            answered = True
            if answer.noise:
                self._tally.malformed += 1
                self._say(
                    f"noise:{unit}",
                    "%s：单元 %d 的应答前有杂波 noise before the answer of unit %d (%d bytes)",
                    self.port.name, unit, unit, answer.noise,
                )  # fmt: skip
            if isinstance(answer, ExceptionReply):
                self._tally.malformed += 1
                self._on_exception(device, planned, answer)
                continue
            self._tally.frames += 1
            for spec, index in planned.values:
                values[spec.meaning] = decode_value(spec, answer.values[index : index + spec.words])
        self._schedule(device, silent=silent and not answered)
        if answered:
            self._answered(device)
        if values:
            self._publish(device, values)

    def _schedule(self, device: _Device, *, silent: bool) -> None:
        interval = device.config.interval.total_seconds()
        now = self._monotonic()
        if not silent:
            device.misses = 0
            device.due += interval
            if device.due < now - interval:  # fell behind (a port outage): no burst to catch up
                device.due = now
            return
        device.misses += 1
        backoff = min(
            interval * 2 ** min(device.misses - 1, 16), self.port.backoff_max.total_seconds()
        )
        device.due = now + max(backoff, interval)
        if device.misses >= self.port.absent_after and not device.absent:
            device.absent = True
            log.warning(
                "%s：单元 %d（%s）连续 %d 次无应答，视为离线 / unit %d (%s) did not answer %d "
                "polls in a row: absent; asked every %.0fs at most until it answers",
                self.port.name, device.config.unit, device.config.sensor, device.misses,
                device.config.unit, device.config.sensor, device.misses,
                self.port.backoff_max.total_seconds(),
            )  # fmt: skip
            self._emit(self._fault(device, active=True))

    def _answered(self, device: _Device) -> None:
        device.answered += 1
        if device.absent:
            device.absent = False
            log.info(
                "%s：单元 %d（%s）恢复应答 / unit %d (%s) answers again",
                self.port.name, device.config.unit, device.config.sensor,
                device.config.unit, device.config.sensor,
            )  # fmt: skip
            self._emit(self._fault(device, active=False))

    def _on_frame_error(self, device: _Device, exc: ModbusFrameError) -> None:
        if exc.kind == "crc":
            self._tally.crc_errors += 1
        else:
            self._tally.malformed += 1
        self._say(
            f"{exc.kind}:{device.config.unit}",
            "%s：丢弃坏应答 dropped a bad answer (%s): %s", self.port.name, exc.kind, exc,
        )  # fmt: skip

    def _on_exception(self, device: _Device, planned: PlannedRead, answer: ExceptionReply) -> None:
        unit = device.config.unit
        self._say(
            f"exception:{unit}:{answer.code}",
            "%s：单元 %d 拒绝读取 %s 寄存器 %d-%d，异常码 %d（%s）；检查档案 %s / unit %d refused "
            "to read %s registers %d-%d: exception %d (%s); check profile %s",
            self.port.name, unit, planned.table, planned.address,
            planned.address + planned.count - 1, answer.code, answer.text,
            device.config.profile, unit, planned.table, planned.address,
            planned.address + planned.count - 1, answer.code, answer.text, device.config.profile,
        )  # fmt: skip

    def _say(self, key: str, message: str, *args: Any) -> None:
        # Once per kind and unit: a noisy line must not flood the journal of an SD-card Pi.
        if self._said.first(key):
            log.warning(message, *args)

    # -- readings --------------------------------------------------------------------

    def _common(self, device: _Device) -> dict[str, Any]:
        return {
            "site": self._site,
            "gateway": self._gateway,
            "device": self.port.name,
            "sensor": device.config.sensor,
            "ts": self._stamp(),
        }

    def _fault(self, device: _Device, *, active: bool) -> FaultReading:
        meanings = device.profile.meanings
        kind: Literal["people", "seat", "motion", "air"] | None = (
            "people"
            if device.people
            else "seat"
            if self._is_seat(device)
            else "motion"
            if "presence" in meanings
            else "air"
            if meanings & {"temperature_c", "humidity_pct", "co2_ppm"}
            else None
        )
        common = self._common(device)
        common["sensor"] = f"{device.config.sensor}.no_response"
        return FaultReading(
            **common,
            code="no_response",
            active=active,
            target_kind=kind,
            target=device.config.sensor,
        )

    @staticmethod
    def _is_seat(device: _Device) -> bool:
        return "presence" in device.profile.meanings and device.config.presence_as == "seat"

    def _publish(self, device: _Device, values: dict[str, float | int]) -> None:
        if device.people is not None and "people_in" in values and "people_out" in values:
            self._publish_people(device, int(values["people_in"]), int(values["people_out"]))
        if "presence" in values:
            present = values["presence"] != 0
            if self._changed(device, "presence", present):
                common = self._common(device)
                reading: Reading = (
                    SeatReading(occupied=present, **common)
                    if self._is_seat(device)
                    else MotionReading(motion=present, **common)
                )
                self._emit(reading)
        air: dict[str, Any] = {
            k: values[k] for k in ("temperature_c", "humidity_pct", "co2_ppm") if k in values
        }
        if air:
            try:
                self._emit(AirReading(**self._common(device), **air))
            except ValidationError as exc:
                self._say(
                    f"range:{device.config.sensor}",
                    "%s：%s 的读数超出范围，未发布（检查档案的 scale）/ %s: values out of range, "
                    "not published (check the profile's scale): %s",
                    self.port.name, device.config.sensor, device.config.sensor,
                    exc.errors(include_url=False)[0]["msg"],
                )  # fmt: skip

    def _publish_people(self, device: _Device, raw_in: int, raw_out: int) -> None:
        assert device.people is not None
        track_in, track_out = device.people
        in_total, event_in = track_in.update(raw_in)
        out_total, event_out = track_out.update(raw_out)
        self._tracks_dirty = True
        for what, event, raw in (("in", event_in, raw_in), ("out", event_out, raw_out)):
            if event is not None:
                log.info(
                    "%s：%s 的 %s 计数%s（寄存器 %d），累计继续 / %s %s counter %s (register "
                    "now %d): totals carry on",
                    self.port.name, device.config.sensor, what,
                    "回绕" if event == "wrap" else "被重置", raw,
                    device.config.sensor, what, "wrapped" if event == "wrap" else "was reset", raw,
                )  # fmt: skip
                self._tracks_saved_at = 0.0  # a new base is saved at once
        if self._changed(device, "people", (in_total, out_total)):
            self._emit(
                PeopleReading(**self._common(device), in_total=in_total, out_total=out_total)
            )

    def _changed(self, device: _Device, key: str, value: Any) -> bool:
        """A state value worth publishing: new, different, or not said for :data:`REFRESH`."""
        now = self._monotonic()
        previous = device.last_state.get(key)
        if previous is not None and previous[0] == value and now - previous[1] < REFRESH:
            return False
        device.last_state[key] = (value, now)
        return True

    # -- the counters' bases ---------------------------------------------------------

    def _track_key(self, device: _Device, what: str) -> str:
        return f"{self.port.name}/{device.config.sensor}/{what}"

    async def _load_tracks(self) -> None:
        if self._tracks_loaded:
            return
        self._tracks_loaded = True
        saved = await asyncio.to_thread(load_tracks, self._state_path)
        for device in self.devices:
            if device.people is not None:
                restore(device.people[0], saved.get(self._track_key(device, "in")))
                restore(device.people[1], saved.get(self._track_key(device, "out")))

    def _tracks(self) -> dict[str, list[int]]:
        # Other buses keep their counters in the same file: keep theirs as they are.
        tracks = load_tracks(self._state_path)
        for device in self.devices:
            if device.people is not None:
                tracks[self._track_key(device, "in")] = device.people[0].to_json()
                tracks[self._track_key(device, "out")] = device.people[1].to_json()
        return tracks

    async def _maybe_save_tracks(self) -> None:
        now = self._monotonic()
        if not self._tracks_dirty or now - self._tracks_saved_at < _SAVE_EVERY:
            return
        self._tracks_dirty = False
        self._tracks_saved_at = now
        try:
            await asyncio.to_thread(self._save_locked)
        except OSError as exc:
            self._say("save", "无法保存计数器状态 cannot save the counter bases to %s: %s",
                      self._state_path, exc)  # fmt: skip

    def _save_locked(self) -> None:
        with _SAVE_LOCK:
            save_tracks(self._state_path, self._tracks())

    def _save_tracks_now(self) -> None:
        if not self._tracks_dirty:
            return
        try:
            self._save_locked()
        except OSError as exc:
            log.warning("无法保存计数器状态 cannot save the counter bases to %s: %s",
                        self._state_path, exc)  # fmt: skip


#: Buses save into one file from worker threads: one writer at a time.
_SAVE_LOCK = threading.Lock()
