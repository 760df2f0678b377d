"""Silences set by operators at runtime: one rule at one site, until a moment (sans-IO).

Maintenance windows written in the config (``AlertsConfig.silences``) are the other kind; both
mark an alert ``silenced`` (shown, not sent). These come over MQTT
(:class:`qihe.contract.AlertSilence`), end by themselves on the engine's clock, and can be
ended early (:class:`qihe.contract.AlertUnsilence`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from central.alerts.model import Alert
from qihe.contract import AlertSilence

__all__ = ["SilenceBook"]


class SilenceBook:
    def __init__(self) -> None:
        self._by_site: dict[str, dict[str, AlertSilence]] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_site.values())

    def all(self) -> list[AlertSilence]:
        return [s for site in self._by_site.values() for s in site.values()]

    def of_site(self, site: str) -> tuple[AlertSilence, ...]:
        """The site's silences, the one ending first first."""
        return tuple(sorted(self._by_site.get(site, {}).values(), key=lambda s: (s.until, s.id)))

    def sites(self) -> set[str]:
        return set(self._by_site)

    def add(self, silence: AlertSilence) -> bool:
        """Set (or replace, by id) a silence; False when it was already there as it is."""
        site = self._by_site.setdefault(silence.site, {})
        if site.get(silence.id) == silence:
            return False
        site[silence.id] = silence
        return True

    def remove(self, site: str, silence_id: str) -> AlertSilence | None:
        silences = self._by_site.get(site, {})
        removed = silences.pop(silence_id, None)
        if not silences:
            self._by_site.pop(site, None)
        return removed

    def covers(self, alert: Alert, now: datetime) -> bool:
        return any(
            s.covers(alert.site, alert.rule, now)
            for s in self._by_site.get(alert.site, {}).values()
        )

    def expire(self, now: datetime) -> list[AlertSilence]:
        """Remove the silences that ended by ``now``; return them."""
        ended = [s for s in self.all() if s.until <= now]
        for silence in ended:
            self.remove(silence.site, silence.id)
        return ended

    def load(self, silences: Iterable[AlertSilence]) -> None:
        for silence in silences:
            self.add(silence)
