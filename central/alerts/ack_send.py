"""Send one acknowledgement or silence to the alert engine and wait for it to say so.

One short MQTT 5 connection with an operator account (``qihe alerts ack|silence|unsilence``):
subscribe first to where the engine answers (the alert's own topic, or the site's retained
silences), then publish the order on ``{prefix}/v1/_alerts_ctl/{site}`` at QoS 1, then wait
until the engine's answer shows it. A broker that refuses the publish (PUBACK 0x87: the
account is not an operator) raises :class:`ControlRefusedError`; an engine that does not
answer in time (stopped: orders are not queued for it) is the outcome ``False``.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import aiomqtt
from pydantic import TypeAdapter, ValidationError

from central.alerts.model import Alert
from central.broker import MqttConfig
from central.errors import CentralError
from qihe.contract import (
    AlertAck,
    AlertSilence,
    AlertUnsilence,
    PayloadError,
    SiteSilences,
    TopicTree,
    encode_payload,
    parse_site_silences,
)
from qihe.mqtt import PublishRefusedError, connect, reason_label

__all__ = [
    "ControlError",
    "NoSuchSilenceError",
    "parse_duration",
    "read_silences",
    "send_control",
]

Order = AlertAck | AlertSilence | AlertUnsilence

#: How long the broker's retained silences may take to arrive after subscribing.
RETAINED_WAIT_S = 1.0


class ControlError(CentralError):
    """An order could not be sent (broker unreachable, or no such silence)."""


class ControlRefusedError(ControlError, PermissionError):
    """The broker refused the order: the account lacks the operator role."""


class NoSuchSilenceError(ControlError, LookupError):
    """An unsilence names a silence the engine does not hold."""


def parse_duration(text: str) -> timedelta:
    """``90`` (seconds), ``45m``, ``2h``, ``3d``, or ISO 8601 (``PT2H``)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    try:
        if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
            return timedelta(seconds=float(text[:-1]) * units[text[-1]])
        if text.replace(".", "", 1).isdigit():
            return timedelta(seconds=float(text))
        return TypeAdapter(timedelta).validate_python(text)
    except (ValueError, ValidationError):
        raise ValueError(f"{text!r} is not a duration: use 90, 45m, 2h, 3d or PT2H") from None


def _answered(order: Order, body: bytes, seen_before: bool) -> bool:
    """Whether the engine's message on the watched topic shows ``order`` carried out."""
    if isinstance(order, AlertAck):
        if not body:
            return False
        try:
            alert = Alert.model_validate_json(body)
        except ValidationError:
            return False
        ack = alert.acknowledged
        return ack is not None and (ack.at, ack.by) == (order.at, order.by)
    silences = _silences(body)
    present = any(s.id == order.id for s in silences)
    if isinstance(order, AlertSilence):
        return any(s == order for s in silences)
    return seen_before and not present


def _silences(body: bytes) -> tuple[AlertSilence, ...]:
    if not body:
        return ()
    try:
        return parse_site_silences(body).silences
    except PayloadError:
        return ()


async def send_control(mqtt: MqttConfig, order: Order, *, wait_s: float) -> bool:
    """Publish ``order``; True once the engine shows it done, False after ``wait_s`` seconds."""
    tree = TopicTree(mqtt.topic_prefix)
    watched = (
        tree.alert(order.site, order.alert)
        if isinstance(order, AlertAck)
        else tree.silences(order.site)
    )
    try:
        async with connect(mqtt, identifier=f"{mqtt.client_id}-{secrets.token_hex(3)}") as client:
            await client.subscribe(watched, qos=1)
            seen_before = False
            if isinstance(order, AlertUnsilence):
                present = await _retained(client, RETAINED_WAIT_S)
                if not any(s.id == order.id for s in present):
                    raise NoSuchSilenceError(f"没有这个静默 no silence {order.id} at {order.site}")
                seen_before = True
            await client.publish(tree.alert_control(order.site), encode_payload(order), qos=1)
            try:
                async with asyncio.timeout(wait_s):
                    async for message in client.messages:
                        body = message.payload if isinstance(message.payload, bytes) else b""
                        if _answered(order, body, seen_before):
                            return True
            except TimeoutError:
                return False
    except PublishRefusedError as exc:
        raise ControlRefusedError(
            f"代理拒绝了指令 the broker refused the order on {exc.topic}: "
            f"{reason_label(exc.reason_code, exc.reason_name)} (an operator account is needed)"
        ) from exc
    except aiomqtt.MqttError as exc:
        raise ControlError(f"无法连接代理 broker {mqtt.host}:{mqtt.port}: {exc}") from exc
    return False


async def _retained(client: aiomqtt.Client, wait: float) -> tuple[AlertSilence, ...]:
    """The retained silences on the one subscribed topic (none after ``wait``)."""
    try:
        async with asyncio.timeout(wait):
            async for message in client.messages:
                body = message.payload if isinstance(message.payload, bytes) else b""
                return _silences(body)
    except TimeoutError:
        pass
    return ()


async def read_silences(mqtt: MqttConfig, site: str | None) -> list[SiteSilences]:
    """The active silences the engine keeps retained, of one site or of all."""
    tree = TopicTree(mqtt.topic_prefix)
    found: list[SiteSilences] = []
    try:
        async with connect(mqtt, identifier=f"{mqtt.client_id}-{secrets.token_hex(3)}") as client:
            await client.subscribe(tree.silences(site) if site else tree.silences_filter(), qos=1)
            try:
                async with asyncio.timeout(RETAINED_WAIT_S):
                    async for message in client.messages:
                        body = message.payload if isinstance(message.payload, bytes) else b""
                        if body and message.retain:
                            found.append(parse_site_silences(body))
            except TimeoutError:
                pass
    except aiomqtt.MqttError as exc:
        raise ControlError(f"无法连接代理 broker {mqtt.host}:{mqtt.port}: {exc}") from exc
    except PayloadError as exc:
        raise ControlError(f"retained silences unreadable: {exc}") from exc
    return found
