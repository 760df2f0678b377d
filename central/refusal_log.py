"""Bounded logging of refused messages: a flood of bad messages gives a few lines, not one each.

Each refusal has a *key*, the kind of problem without any value a sender chose (the field and
the error type, ``seat.occupied: bool_type``; see :class:`qihe.contract.PayloadError`). The
first refusal of a key is logged whole, naming its topic and reason; later ones are only
counted, and while any are counted a summary is logged once per ``interval``::

    拒收消息 / refusing a message on qihe/v1/a/gw1/seat/x: seat.occupied: Input should be a
      valid boolean (got a string) (此类问题以后只计数，每 60 秒汇总 / further ones are counted
      and summarised every 60 s)
    过去 60 秒又拒收 9497 条消息 / 9497 more bad messages in the last 60 s:
      9000 × seat.occupied: bool_type; 497 × topic

Keys come from the contract's fields, so they are few; still both the keys remembered and
the keys counted per interval are bounded (the rest are counted as "other").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from qihe.once import OncePerKey

__all__ = ["RefusalLog"]

#: Keys counted separately per interval; further ones are counted together as "other".
MAX_KEYS = 64
#: Keys named in a summary line, most frequent first.
SHOWN_KEYS = 5
OTHER = "other"


class RefusalLog:
    """Logs refused messages for ``who`` (``consumer``, ``live``, ``alerts``) to ``logger``.

    Thread-safe: :meth:`refused` may come from a network thread while :meth:`tick` runs in
    another. ``clock`` is injected so tests control the interval without waiting.
    """

    def __init__(
        self,
        logger: logging.Logger,
        who: str,
        *,
        clock: Callable[[], datetime],
        interval: timedelta = timedelta(seconds=60),
    ) -> None:
        self._log = logger
        self._who = who
        self._clock = clock
        self._interval = interval
        self._first = OncePerKey()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._since: datetime | None = None

    def refused(self, topic: str, reason: str, key: str) -> None:
        """One refused message: logged if it is the first of its key, else counted."""
        if self._first.first(key):
            seconds = self._interval.total_seconds()
            self._log.warning(
                "%s: 拒收消息 / refusing a message on %s: %s "
                "(此类问题以后只计数，每 %g 秒汇总 / further ones are counted and summarised "
                "every %g s)",
                self._who,
                topic,
                reason,
                seconds,
                seconds,
            )
        else:
            with self._lock:
                if self._since is None:
                    self._since = self._clock()
                if key not in self._counts and len(self._counts) >= MAX_KEYS:
                    key = OTHER
                self._counts[key] = self._counts.get(key, 0) + 1
        self.tick()

    def tick(self) -> None:
        """Log the summary if one is due (call it now and then, messages or not)."""
        now = self._clock()
        with self._lock:
            since = self._since
            if since is None or now - since < self._interval:
                return
        self.flush()

    def flush(self) -> None:
        """Log the summary of what is counted now, due or not (at a stop)."""
        now = self._clock()
        with self._lock:
            counts, since = self._counts, self._since
            self._counts, self._since = {}, None
        if since is None:
            return
        total = sum(counts.values())
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        shown = "; ".join(f"{n} × {key}" for key, n in ranked[:SHOWN_KEYS])
        if len(ranked) > SHOWN_KEYS:
            rest = sum(n for _, n in ranked[SHOWN_KEYS:])
            shown += f"; {rest} × {len(ranked) - SHOWN_KEYS} other reasons"
        seconds = max(0, round((now - since).total_seconds()))
        self._log.warning(
            "%s: 过去 %d 秒又拒收 %d 条消息 / %d more bad messages in the last %d s: %s",
            self._who,
            seconds,
            total,
            total,
            seconds,
            shown,
        )
