"""Acknowledged alerts: who took on which firing alert, until it resolves (sans-IO).

An acknowledgement belongs to one firing of one alert: its id *and* the moment it started.
When the alert resolves the acknowledgement goes with it, so the next firing of the same
fault (same id, later start) is news again.

After a restart the engine may not know when a firing started (the broker lost its retained
alerts): an acknowledgement read from the state file then goes to the first firing of its
alert until the rules have had their grace (:meth:`AckBook.prune`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import AwareDatetime

from central.alerts.model import Alert
from qihe.configtypes import StrictModel
from qihe.contract import Acknowledgement

__all__ = ["AckBook", "StoredAck"]


class StoredAck(StrictModel):
    """One acknowledgement as the engine keeps it (in memory and in its state file)."""

    alert: str
    site: str
    #: The firing it belongs to.
    starts_at: AwareDatetime
    ack: Acknowledgement


class AckBook:
    def __init__(self) -> None:
        self._acks: dict[str, StoredAck] = {}
        #: Read from the state file, not yet matched to a firing since the restart.
        self._from_before: set[str] = set()

    def __len__(self) -> int:
        return len(self._acks)

    def all(self) -> list[StoredAck]:
        return list(self._acks.values())

    def acknowledge(self, alert: Alert, ack: Acknowledgement) -> None:
        """Acknowledge ``alert`` (firing); a second acknowledgement replaces the first."""
        self._acks[alert.id] = StoredAck(
            alert=alert.id, site=alert.site, starts_at=alert.starts_at, ack=ack
        )

    def adopt(self, stored: StoredAck, *, from_file: bool = False) -> None:
        """An acknowledgement known from before a restart: the state file's, or a retained
        alert's (which knows its firing's start for sure)."""
        if from_file:
            self._from_before.add(stored.alert)
        else:
            self._from_before.discard(stored.alert)
            self._acks[stored.alert] = stored
            return
        self._acks.setdefault(stored.alert, stored)

    def get(self, alert: Alert) -> Acknowledgement | None:
        stored = self._acks.get(alert.id)
        if stored is None:
            return None
        if stored.starts_at != alert.starts_at:
            if alert.id not in self._from_before:
                return None
            stored = stored.model_copy(update={"starts_at": alert.starts_at})
            self._acks[alert.id] = stored
        self._from_before.discard(alert.id)
        return stored.ack

    def forget(self, resolved: Iterable[Alert]) -> bool:
        """Drop the acknowledgements of resolved alerts; True when any was dropped."""
        dropped = [a.id for a in resolved if self._acks.pop(a.id, None) is not None]
        return bool(dropped)

    def prune(self, firing: Mapping[str, Alert]) -> bool:
        """Drop acknowledgements of firings that are gone (resolved while the engine was
        away); only once the rules had their grace. True when any was dropped."""
        gone = [
            alert_id
            for alert_id, stored in self._acks.items()
            if alert_id not in firing or firing[alert_id].starts_at != stored.starts_at
        ]
        for alert_id in gone:
            del self._acks[alert_id]
        self._from_before.clear()
        return bool(gone)
