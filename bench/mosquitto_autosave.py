"""What Mosquitto 2.0's snapshot persistence costs at each autosave setting.

    .venv/bin/python -m bench.mosquitto_autosave [--messages 20000] [--step 5000]

First with the consumer connected (messages pass straight through; the database
holds little but sessions), then with its persistent session left offline
(subscribed at QoS 1, then gone), so every message a publisher sends is queued
for it and becomes part of the broker's database. The publisher sends QoS 1
messages of 300 bytes, at most 100 awaiting PUBACK (the gateway's
``max_inflight``); we time each block of ``--step`` messages, with the size of
``mosquitto.db`` after it. Mosquitto writes the whole database at every save (and fsyncs it), so
saving after every change costs more the longer the backlog.
"""

from __future__ import annotations

import argparse
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

__all__ = ["SETTINGS", "main"]

#: name -> extra broker config (the devstack sets persistence and autosave_interval 1).
SETTINGS: dict[str, str] = {
    "autosave_interval 60": "autosave_interval 60",
    "autosave_interval 1": "",
    "autosave_on_changes, every 100": "autosave_on_changes true\nautosave_interval 100",
    "autosave_on_changes, every change": "autosave_on_changes true",
}

TOPIC = "bench/v1/site/gw1/seat/board-a.1"
PAYLOAD = b"x" * 300
INFLIGHT = 100


@dataclass(frozen=True, slots=True)
class Block:
    backlog: int  # messages queued for the offline consumer after the block
    rate: float  # messages per second acknowledged during the block
    db_bytes: int


def _subscribe_consumer(broker: MosquittoProcess) -> mqtt.Client:
    """A consumer with a persistent session, subscribed at QoS 1 (paho acks on receipt)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-consumer", protocol=mqtt.MQTTv5
    )
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=False, properties=properties)
    client.loop_start()
    client.subscribe("bench/#", qos=1)
    if not subscribed.wait(5):
        raise TimeoutError("the bench consumer could not subscribe")
    return client


def _leave(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _publish_blocks(broker: MosquittoProcess, total: int, step: int) -> list[Block]:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-gateway", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(INFLIGHT)
    client.max_queued_messages_set(INFLIGHT)
    client.connect(broker.host, broker.port)
    client.loop_start()
    db = broker.folder / "data" / "mosquitto.db"
    blocks: list[Block] = []
    try:
        sent = 0
        while sent < total:
            started = time.monotonic()
            pending = []
            for _ in range(step):
                info = client.publish(TOPIC, PAYLOAD, qos=1)
                pending.append(info)
                if len(pending) >= INFLIGHT:
                    pending.pop(0).wait_for_publish(30)
            for info in pending:
                info.wait_for_publish(30)
            sent += step
            elapsed = time.monotonic() - started
            size = db.stat().st_size if db.exists() else 0
            blocks.append(Block(sent, step / elapsed, size))
    finally:
        client.disconnect()
        client.loop_stop()
    return blocks


def measure(extra_config: str, total: int, step: int) -> list[Block]:
    """The consumer online for one block (backlog 0), then away while the backlog grows."""
    with tempfile.TemporaryDirectory(prefix="qihe-autosave-") as folder:
        broker = MosquittoProcess(Path(folder), extra_config=extra_config).start()
        try:
            consumer = _subscribe_consumer(broker)
            (online,) = _publish_blocks(broker, step, step)
            _leave(consumer)
            away = _publish_blocks(broker, total, step)
            return [Block(0, online.rate, online.db_bytes), *away]
        finally:
            broker.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mosquitto_autosave", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--step", type=int, default=5_000)
    args = parser.parse_args(argv)
    results = {name: measure(extra, args.messages, args.step) for name, extra in SETTINGS.items()}
    backlogs = [block.backlog for block in next(iter(results.values()))]
    print("QoS 1 messages acknowledged per second, by messages queued for the consumer:\n")
    print("| setting | " + " | ".join(f"{b:,}" for b in backlogs) + " | db at the end |")
    print("|---|" + "---:|" * (len(backlogs) + 1))
    for name, blocks in results.items():
        rates = " | ".join(f"{block.rate:,.0f}" for block in blocks)
        print(f"| {name} | {rates} | {blocks[-1].db_bytes / 1e6:.1f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
