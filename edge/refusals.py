"""Publishes the broker refused: counted, logged once per reason per interval, held for a retry.

A refused reading (PUBACK reason 0x80 or above, :class:`qihe.mqtt.PublishRefusedError`)
is not confirmed: it stays in the outbox. While its connection lasts the publisher
keeps it in :class:`HeldReadings`, with every later reading of the same sensor behind
it (so a sensor's readings still land in order), and retries the oldest of each
sensor with a capped exponential backoff with jitter; readings of other sensors keep
flowing meanwhile. :class:`RefusalCounter` counts refusals by kind and reason for the
gateway's ``outbox`` health reading and ``qihe gateway doctor``.

Both are plain objects driven by the publisher on the event loop, with the clock and
the random source injected, so they are tested without a broker.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from edge.outbox import StoredReading
from qihe.backoff import Backoff
from qihe.mqtt import PublishRefusedError, reason_label
from qihe.once import OncePerInterval

__all__ = [
    "STATE_FILE",
    "HeldReadings",
    "RefusalCounter",
    "RefusalSnapshot",
    "read_refusals",
    "write_refusals",
]

log = logging.getLogger(__name__)

#: A reason's refusals are logged at most once per this many seconds (the rest are counted).
LOG_EVERY_S = 60.0
#: Refused readings held in memory at most; past it the live stream waits for retries.
HELD_MAX = 10_000
#: Where the gateway leaves its refusal counters for ``qihe gateway doctor`` (in state_dir).
STATE_FILE = "publish-refusals.json"

Monotonic = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RefusalSnapshot:
    """Refusals so far: the total, by ``(kind, reason code)``, and the readings held now."""

    total: int
    by_kind: dict[tuple[str, int], int]
    names: dict[int, str]
    held: int
    last_topic: str | None = None
    last_reason: int | None = None
    #: When the gateway wrote it (read back by the doctor), RFC 3339.
    at: str | None = None

    def describe(self) -> str:
        """``door 0x87 Not authorized ×12, seat 0x97 Quota exceeded ×1``."""
        return ", ".join(
            f"{kind} {reason_label(code, self.names.get(code, 'refused'))} ×{count}"
            for (kind, code), count in sorted(self.by_kind.items())
        )


class RefusalCounter:
    """Counts refused messages by kind and reason; logs each reason once per ``log_every``.

    A message is counted once however often its retries are refused: ``total`` is how
    many readings (backlog batches, status messages) the broker refused, not attempts.
    A reading held behind a refused one of its sensor counts too, with that reason: it
    would have been refused, and it is not delivered either.
    """

    def __init__(
        self, *, clock: Monotonic = time.monotonic, log_every: float = LOG_EVERY_S
    ) -> None:
        self._clock = clock
        self.by_kind: Counter[tuple[str, int]] = Counter()
        self.names: dict[int, str] = {}
        self.total = 0
        self._log_limit: OncePerInterval[int] = OncePerInterval(log_every)  # by reason code
        self.last: PublishRefusedError | None = None

    def count(
        self, kind: str, refused: PublishRefusedError, *, again: bool = False, quiet: bool = False
    ) -> None:
        """One message of ``kind`` refused; ``again`` for the retry of one counted before
        (logged under the same limit, not counted twice); ``quiet`` for a reading held
        behind a refused one of its sensor (counted with its reason, not logged)."""
        code = refused.reason_code
        self.names[code] = refused.reason_name
        if not again:
            self.by_kind[(kind, code)] += 1
            self.total += 1
        if quiet:
            return
        self.last = refused
        if not self._log_limit.due(code, self._clock()):
            return
        since = self._log_limit.suppressed(code)
        log.warning(
            "代理拒绝了发布,读数留在发件箱中稍后重试 broker refused a publish on %s: %s; "
            "the reading stays in the outbox and is retried%s",
            refused.topic,
            reason_label(code, refused.reason_name),
            f" ({since} more refusals for this reason since the last such line)" if since else "",
        )

    def snapshot(self, held: int) -> RefusalSnapshot:
        last = self.last
        return RefusalSnapshot(
            total=self.total,
            by_kind=dict(self.by_kind),
            names=dict(self.names),
            held=held,
            last_topic=None if last is None else last.topic,
            last_reason=None if last is None else last.reason_code,
        )


@dataclass
class _Sensor:
    rows: list[StoredReading] = field(default_factory=list)  # id order
    due: float = 0.0
    backoff: Backoff | None = None
    busy: bool = False  # a retry of its oldest row is on the wire
    reason: PublishRefusedError | None = None  # its latest refusal


class HeldReadings:
    """Refused readings and the later readings of their sensors, waiting for a retry.

    Keyed by ``(kind, sensor)``: a sensor with a held reading holds every later one
    too, so its readings go out in order. Each sensor retries its oldest reading on
    its own backoff (``minimum`` doubling to ``maximum``, with jitter); once one is
    accepted the rest follow at once.
    """

    def __init__(
        self,
        *,
        minimum: float,
        maximum: float,
        clock: Monotonic = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._minimum = minimum
        self._maximum = maximum
        self._clock = clock
        self._rng = rng or random.Random()
        self._sensors: dict[tuple[str, str], _Sensor] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def full(self) -> bool:
        return self._count >= HELD_MAX

    def blocks(self, row: StoredReading) -> bool:
        """Whether ``row``'s sensor has readings held (then ``row`` must wait behind them)."""
        return (row.kind, row.sensor) in self._sensors

    def hold(self, row: StoredReading) -> None:
        """Keep ``row`` behind its sensor's held readings (no retry is scheduled by this)."""
        sensor = self._sensors.get((row.kind, row.sensor))
        if sensor is None:
            sensor = self._sensors[(row.kind, row.sensor)] = _Sensor(due=self._clock())
        ids = [r.id for r in sensor.rows]
        sensor.rows.insert(bisect.bisect(ids, row.id), row)
        self._count += 1

    def reason(self, row: StoredReading) -> PublishRefusedError | None:
        """The latest refusal of ``row``'s sensor (what a reading held behind it waits for)."""
        sensor = self._sensors.get((row.kind, row.sensor))
        return None if sensor is None else sensor.reason

    def refused(self, row: StoredReading, reason: PublishRefusedError) -> None:
        """Live ``row`` was refused: hold it; a sensor held anew retries after a backoff."""
        key = (row.kind, row.sensor)
        new = key not in self._sensors
        self.hold(row)
        sensor = self._sensors[key]
        sensor.reason = reason
        if new:
            sensor.backoff = Backoff(self._minimum, self._maximum, self._rng)
            sensor.due = self._clock() + sensor.backoff.next_delay()

    def retry_refused(self, row: StoredReading, reason: PublishRefusedError) -> None:
        """The retry of ``row`` (from :meth:`due`) was refused again: back off further."""
        sensor = self._sensors[(row.kind, row.sensor)]
        sensor.reason = reason
        if sensor.backoff is None:
            sensor.backoff = Backoff(self._minimum, self._maximum, self._rng)
        sensor.busy = False
        sensor.due = self._clock() + sensor.backoff.next_delay()

    def due(self) -> list[StoredReading]:
        """The oldest held reading of every sensor whose retry is due (marked as on the wire)."""
        now = self._clock()
        out = []
        for sensor in self._sensors.values():
            if not sensor.busy and sensor.due <= now:
                sensor.busy = True
                out.append(sensor.rows[0])
        return out

    def next_due(self) -> float | None:
        """Monotonic time of the next retry, or ``None`` when nothing waits for one."""
        times = [s.due for s in self._sensors.values() if not s.busy]
        return min(times) if times else None

    def accepted(self, row: StoredReading) -> None:
        """The retry of ``row`` was accepted: the next of its sensor is due at once."""
        key = (row.kind, row.sensor)
        sensor = self._sensors[key]
        sensor.rows = [r for r in sensor.rows if r.id != row.id]
        self._count -= 1
        if not sensor.rows:
            del self._sensors[key]
            return
        sensor.busy = False
        sensor.due = self._clock()
        if sensor.backoff is not None:
            sensor.backoff.reset()

    def released(self, row: StoredReading) -> None:
        """A retry of ``row`` ended without an answer (connection lost): due again later."""
        sensor = self._sensors.get((row.kind, row.sensor))
        if sensor is not None:
            sensor.busy = False


def write_refusals(path: Path, snapshot: RefusalSnapshot, at: datetime) -> None:
    """Leave the counters where ``qihe gateway doctor`` reads them (replaced atomically)."""
    document = {
        "at": at.isoformat().replace("+00:00", "Z"),
        "refused": snapshot.total,
        "held": snapshot.held,
        "by_kind": [
            {"kind": kind, "reason": code, "name": snapshot.names.get(code, ""), "count": n}
            for (kind, code), n in sorted(snapshot.by_kind.items())
        ],
        "last_topic": snapshot.last_topic,
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False))
    os.replace(tmp, path)


def read_refusals(path: Path) -> RefusalSnapshot | None:
    """What :func:`write_refusals` left, or ``None`` when the gateway never wrote it.

    Raise ``ValueError`` (or ``OSError``) when the file cannot be read or makes no sense.
    """
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text())
        entries = document["by_kind"]
        return RefusalSnapshot(
            total=int(document["refused"]),
            by_kind={(str(e["kind"]), int(e["reason"])): int(e["count"]) for e in entries},
            names={int(e["reason"]): str(e["name"]) for e in entries},
            held=int(document["held"]),
            last_topic=document.get("last_topic"),
            at=document.get("at"),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not what the gateway writes ({exc!r})") from exc
