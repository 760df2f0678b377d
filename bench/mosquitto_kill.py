"""What a SIGKILLed Mosquitto 2.0 loses of the messages it had acknowledged, per autosave setting.

    .venv/bin/python -m bench.mosquitto_kill [--runs 3] [--backlogs 0,5000]

A consumer's persistent session is offline, so the broker queues every message
for it. A publisher first fills a backlog (all acknowledged), then publishes
numbered QoS 1 messages as fast as the broker acknowledges them (at most 100
awaiting PUBACK, like a gateway) until the broker is SIGKILLed at a random
moment. The broker is restarted from its persistence file, the consumer comes
back, and every message it is given is counted: an acknowledged message it never
receives is lost.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devstack import MosquittoProcess

__all__ = ["main"]

#: name -> extra broker config (the devstack sets persistence and autosave_interval 1).
SETTINGS: dict[str, str] = {
    "autosave_interval 1": "",
    "autosave_on_changes, every change": "autosave_on_changes true",
}
TOPIC = "bench/v1/site/gw1/seat/board-a.1"
INFLIGHT = 100


@dataclass(frozen=True, slots=True)
class KillRun:
    backlog: int
    acknowledged: int  # messages the broker PUBACKed, backlog included
    received: int  # of those, delivered to the consumer after the restart
    lost_last: int  # lost ones among the last INFLIGHT acknowledged before the kill

    @property
    def lost(self) -> int:
        return self.acknowledged - self.received


def _connect(broker: MosquittoProcess, client_id: str, *, persistent: bool) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(INFLIGHT)
    client.max_queued_messages_set(INFLIGHT)
    properties = None
    if persistent:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=not persistent, properties=properties)
    client.loop_start()
    return client


def _consumer_session(broker: MosquittoProcess, received: set[int] | None) -> mqtt.Client:
    client = _connect(broker, "bench-consumer", persistent=True)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    if received is not None:
        client.on_message = lambda _c, _u, msg: received.add(int(msg.payload.split(b" ")[0]))
    client.subscribe("bench/#", qos=1)
    if not subscribed.wait(5):
        raise TimeoutError("the bench consumer could not subscribe")
    return client


def _stop(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except RuntimeError:  # published while the broker was gone: never acknowledged
        return False


def kill_run(extra_config: str, backlog: int, rng: random.Random) -> KillRun:
    with tempfile.TemporaryDirectory(prefix="qihe-kill-") as folder:
        broker = MosquittoProcess(Path(folder), extra_config=extra_config).start()
        try:
            _stop(_consumer_session(broker, None))  # the session stays, offline
            time.sleep(2.5)  # saved by now, with any autosave setting measured here
            publisher = _connect(broker, "bench-gateway", persistent=False)
            sent: list[mqtt.MQTTMessageInfo] = []
            window: list[mqtt.MQTTMessageInfo] = []
            killer: threading.Timer | None = None
            stop_at = time.monotonic() + 120.0  # the kill comes long before
            while time.monotonic() < stop_at:
                if killer is None and len(sent) >= backlog:
                    for info in window:  # the backlog is in; the kill hits the live stream
                        info.wait_for_publish(30)
                    window.clear()
                    killer = threading.Timer(
                        rng.uniform(0.2, 1.5), broker.stop, kwargs={"kill": True}
                    )
                    killer.start()
                elif killer is not None and not killer.is_alive():
                    break  # the broker is gone
                info = publisher.publish(TOPIC, f"{len(sent)} ".encode() + b"x" * 290, qos=1)
                sent.append(info)
                window.append(info)
                if len(window) >= INFLIGHT:
                    with contextlib.suppress(RuntimeError, ValueError):
                        window.pop(0).wait_for_publish(1)
            if killer is not None:
                killer.join()
            publisher.loop_stop()
            acknowledged = [n for n, info in enumerate(sent) if _acknowledged(info)]
            broker.start()
            received: set[int] = set()
            consumer = _consumer_session(broker, received)
            quiet_since, seen = time.monotonic(), -1
            while time.monotonic() - quiet_since < 2.0:  # until nothing new for 2 s
                if len(received) != seen:
                    seen, quiet_since = len(received), time.monotonic()
                time.sleep(0.1)
            _stop(consumer)
        finally:
            broker.stop()
    got = set(acknowledged) & received
    last = acknowledged[-INFLIGHT:]
    return KillRun(backlog, len(acknowledged), len(got), sum(1 for n in last if n not in got))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mosquitto_kill", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backlogs", default="0,5000", help="comma-separated")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    print("| setting | backlog | acknowledged | lost | of them among the last 100 acked |")
    print("|---|---:|---:|---:|---:|")
    for name, extra in SETTINGS.items():
        for backlog in (int(b) for b in args.backlogs.split(",")):
            for _ in range(args.runs):
                run = kill_run(extra, backlog, rng)
                print(
                    f"| {name} | {run.backlog:,} | {run.acknowledged:,} | {run.lost:,} "
                    f"| {run.lost_last} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
