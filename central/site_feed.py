"""What the live service and the alert engine both follow on MQTT, decoded and sorted.

One subscription: the alerts the engine publishes (retained, under ``{prefix}/v1/_alerts/``),
then every gateway's status and readings. The alerts come first, so that the engine knows
the alerts it had sent before a restart before it judges anything. A gateway's status or
reading goes to ``on_message``, a message on an alert topic to ``on_alert``; what cannot be
decoded is refused into a :class:`RefusalLog` (a flood gives a few lines, not one each)::

    feed = SiteFeed(config.mqtt, name="live", logger=log, clock=clock)
    await feed.follow(on_message, on_alert, on_connected=..., on_lost=...)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

import aiomqtt
from pydantic import ValidationError

from central.alerts.model import Alert
from central.broker import MqttConfig
from central.errors import InvalidMessageError
from central.listen import listen
from central.messages import decode_message
from central.refusal_log import RefusalLog
from qihe.clock import Clock
from qihe.contract import GatewayStatus, Reading, TopicError, TopicTree

__all__ = ["SiteFeed"]

#: ``(message, retained)``: a gateway's status or reading, validated.
OnMessage = Callable[[GatewayStatus | Reading, bool], None]
#: ``(topic, body, retained)``: a message on an alert topic, as it came (``alert()`` reads it).
OnAlert = Callable[[str, bytes, bool], None]


class AlertMessage(NamedTuple):
    """A message on an alert topic, read: the site and alert id of its topic, and its body."""

    site: str
    alert_id: str
    #: None for an empty body: the retained alert was cleared.
    alert: Alert | None


class SiteFeed:
    """Follows the sites for ``name`` (``live``, ``alerts``); its refusals go to ``logger``.

    ``received`` counts every message, ``refused`` those that could not be taken.
    """

    def __init__(
        self,
        mqtt: MqttConfig,
        *,
        name: str,
        logger: logging.Logger,
        clock: Clock,
    ) -> None:
        self.tree = TopicTree(mqtt.topic_prefix)
        self.received = 0
        self.refused = 0
        self._mqtt = mqtt
        self._name = name
        self._alerts_root = f"{self.tree.root}/_alerts/"
        self._refusals = RefusalLog(logger, name, clock=clock)

    async def follow(
        self,
        on_message: OnMessage,
        on_alert: OnAlert,
        *,
        on_connected: Callable[[aiomqtt.Client], None],
        on_lost: Callable[[], None],
    ) -> None:
        """Until cancelled, reconnecting as :func:`central.listen.listen` does."""

        def take(topic: str, body: bytes, retained: bool) -> None:
            self.received += 1
            if topic.startswith(self._alerts_root):
                on_alert(topic, body, retained)
                return
            try:
                message = decode_message(self.tree, topic, body)
            except InvalidMessageError as exc:
                self._refuse(topic, exc.reason, exc.key)
                return
            on_message(message, retained)

        filters = (
            self.tree.alerts_filter(),
            self.tree.status_filter(),
            *self.tree.reading_filters(),
        )
        await listen(
            self._mqtt, filters, take, name=self._name, on_connected=on_connected, on_lost=on_lost
        )

    def alert(self, topic: str, body: bytes, what: str) -> AlertMessage | None:
        """The alert a message on an alert topic carries; None when it is refused, as ``what``
        (the reason's prefix and the refusal's key)."""
        try:
            site, alert_id = self.tree.parse_alert(topic)
            alert = Alert.model_validate_json(body) if body else None
        except (TopicError, ValidationError) as exc:
            self._refuse(topic, f"{what}: {exc}", what)
            return None
        return AlertMessage(site, alert_id, alert)

    def tick(self) -> None:
        """Log the refusals' summary if one is due (call it now and then)."""
        self._refusals.tick()

    def _refuse(self, topic: str, reason: str, key: str) -> None:
        self.refused += 1
        self._refusals.refused(topic, reason, key)
