"""The MQTT topic tree (``docs/mqtt.md``)::

    {prefix}/v1/{site}/{gateway}/status                  retained, also the Last Will
    {prefix}/v1/{site}/{gateway}/{kind}/{sensor}         readings, QoS 1
    {prefix}/v1/{site}/{gateway}/backlog                 readings replayed after an outage, packed
    {prefix}/v1/{site}/{gateway}/cmd/{device}            commands to a board (JSON)
    {prefix}/v1/{site}/{gateway}/cmd_reply/{device}      ACK/NACK of those commands
    {prefix}/v1/{site}/{gateway}/config                  a config pushed to the gateway, retained
    {prefix}/v1/_dead_letter/{client}                    payloads a consumer refused
    {prefix}/v1/_alerts/{site}/{alert}                   active maintenance alerts, retained
    {prefix}/v1/_alerts_ctl/{site}                       operators' acks and silences (operator)
    {prefix}/v1/_silences/{site}                         a site's active silences, retained

``kind`` is one of :data:`READING_KINDS`. Ids match :data:`ID_PATTERN`, which
excludes ``/``, ``+``, ``#`` and anything else that could escape a topic level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qihe.contract.errors import TopicError
from qihe.contract.payloads import ID_PATTERN, READING_KINDS

__all__ = [
    "DEFAULT_PREFIX",
    "PERIODIC_KINDS",
    "RETAINED_KINDS",
    "TopicParts",
    "TopicTree",
]

DEFAULT_PREFIX = "qihe"
VERSION_LEVEL = "v1"

#: Kinds whose last value is the present state: published retained so late subscribers see it.
RETAINED_KINDS: frozenset[str] = frozenset({"seat", "door", "motion", "people", "fault", "device"})

#: The rest is periodic telemetry (heartbeat, link, outbox, system, air, battery): the next
#: one comes anyway, so it is not retained, and a full outbox drops it first.
PERIODIC_KINDS: frozenset[str] = frozenset(READING_KINDS) - RETAINED_KINDS

_ID = re.compile(ID_PATTERN)
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


def _checked(name: str, value: str) -> str:
    if not _ID.fullmatch(value):
        raise TopicError(f"{name} {value!r} cannot be used in a topic: it must match {ID_PATTERN}")
    return value


@dataclass(frozen=True, slots=True)
class TopicParts:
    site: str
    gateway: str
    kind: str
    sensor: str | None = None


@dataclass(frozen=True, slots=True)
class TopicTree:
    """Builds and parses topics under one prefix."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise TopicError(f"topic prefix {self.prefix!r} must be plain levels of [A-Za-z0-9_-]")

    @property
    def root(self) -> str:
        return f"{self.prefix}/{VERSION_LEVEL}"

    def gateway_root(self, site: str, gateway: str) -> str:
        return f"{self.root}/{_checked('site', site)}/{_checked('gateway', gateway)}"

    def status(self, site: str, gateway: str) -> str:
        return f"{self.gateway_root(site, gateway)}/status"

    def backlog(self, site: str, gateway: str) -> str:
        return f"{self.gateway_root(site, gateway)}/backlog"

    def reading(self, site: str, gateway: str, kind: str, sensor: str) -> str:
        if kind not in READING_KINDS:
            raise TopicError(f"unknown reading kind {kind!r}")
        return f"{self.gateway_root(site, gateway)}/{kind}/{_checked('sensor', sensor)}"

    def command(self, site: str, gateway: str, device: str) -> str:
        return f"{self.gateway_root(site, gateway)}/cmd/{_checked('device', device)}"

    def command_reply(self, site: str, gateway: str, device: str) -> str:
        return f"{self.gateway_root(site, gateway)}/cmd_reply/{_checked('device', device)}"

    def command_filter(self, site: str, gateway: str) -> str:
        """Every board's commands of one gateway (what the gateway subscribes to)."""
        return f"{self.gateway_root(site, gateway)}/cmd/+"

    def parse_command(self, topic: str, site: str, gateway: str) -> str:
        """The device of a command topic of ``site``/``gateway``; :class:`TopicError` otherwise."""
        head = f"{self.gateway_root(site, gateway)}/cmd/"
        if not topic.startswith(head):
            raise TopicError(f"topic {topic!r} is not a command to {site}/{gateway}")
        return _checked("device", topic[len(head) :])

    def config(self, site: str, gateway: str) -> str:
        """Where an operator pushes a gateway's config (retained; ``docs/remote-config.md``)."""
        return f"{self.gateway_root(site, gateway)}/config"

    def dead_letter(self, client: str) -> str:
        return f"{self.root}/_dead_letter/{_checked('client', client)}"

    def alert(self, site: str, alert_id: str) -> str:
        return f"{self.root}/_alerts/{_checked('site', site)}/{_checked('alert', alert_id)}"

    def alerts_filter(self, site: str = "+") -> str:
        return f"{self.root}/_alerts/{site}/+"

    def alert_control(self, site: str) -> str:
        """Operators' acknowledgements and silences for one site (``alert_control.py``)."""
        return f"{self.root}/_alerts_ctl/{_checked('site', site)}"

    def alert_control_filter(self) -> str:
        return f"{self.root}/_alerts_ctl/+"

    def silences(self, site: str) -> str:
        """The active silences of one site, retained by the alert engine."""
        return f"{self.root}/_silences/{_checked('site', site)}"

    def silences_filter(self) -> str:
        return f"{self.root}/_silences/+"

    def parse_site_level(self, topic: str, level: str) -> str:
        """The site of ``{root}/{level}/{site}`` (``_alerts_ctl``, ``_silences``);
        :class:`TopicError` otherwise."""
        head = f"{self.root}/{level}/"
        if not topic.startswith(head):
            raise TopicError(f"topic {topic!r} is not under {head!r}")
        return _checked("site", topic[len(head) :])

    def parse_alert(self, topic: str) -> tuple[str, str]:
        """``(site, alert id)`` of an alert topic; raise :class:`TopicError` otherwise."""
        head = f"{self.root}/_alerts/"
        levels = topic[len(head) :].split("/") if topic.startswith(head) else []
        if len(levels) != 2:
            raise TopicError(f"topic {topic!r} is not an alert topic")
        return _checked("site", levels[0]), _checked("alert", levels[1])

    # Subscription filters -------------------------------------------------

    def reading_filters(self, site: str = "+", gateway: str = "+") -> list[str]:
        """One filter per reading kind (``+/+/+/+`` would also match commands)."""
        return [f"{self.root}/{site}/{gateway}/{kind}/+" for kind in READING_KINDS]

    def status_filter(self, site: str = "+", gateway: str = "+") -> str:
        return f"{self.root}/{site}/{gateway}/status"

    def backlog_filter(self, site: str = "+", gateway: str = "+") -> str:
        return f"{self.root}/{site}/{gateway}/backlog"

    # Parsing ----------------------------------------------------------------

    def parse(self, topic: str) -> TopicParts:
        """Split a reading, status or backlog topic; raise :class:`TopicError` otherwise."""
        head = self.root + "/"
        if not topic.startswith(head):
            raise TopicError(f"topic {topic!r} is not under {head!r}")
        levels = topic[len(head) :].split("/")
        if len(levels) == 3 and levels[2] in ("status", "backlog"):
            site, gateway, kind = levels
            return TopicParts(_checked("site", site), _checked("gateway", gateway), kind)
        if len(levels) == 4 and levels[2] in READING_KINDS:
            site, gateway, kind, sensor = levels
            return TopicParts(
                _checked("site", site),
                _checked("gateway", gateway),
                kind,
                _checked("sensor", sensor),
            )
        raise TopicError(f"topic {topic!r} is not a reading, status or backlog topic")
