"""The site benchmark's gateway, in a process of its own (``bench/site_load.py`` starts it).

    python -m bench.site_worker CONFIG

What ``qihe gateway run --config CONFIG`` does, with gpiozero's ``MockFactory`` for the
GPIO door so the bench can open and shut it. This module imports nothing more than that
command does (no harness, no emulator driver, no HTTP client), so the peak resident
memory read from ``/proc/<pid>`` is the gateway's.

Protocol on the pipes, one line each: the worker prints ``ready`` once every serial port
is open, the broker connected and the door's pin claimed and shut. Then it reads
commands from stdin: ``open`` / ``close`` drive the back door's pin; ``stats`` prints one
JSON line of the gateway's counters. End of stdin (the bench is gone) stops the gateway as
SIGTERM does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Sequence

from gpiozero.pins.mock import MockFactory

from edge.config import load_gateway_config
from edge.gateway import Gateway
from edge.sources.gpio import GpioSource
from qihe.running import cancel_on_signals
from qihe_cli.main import build_parser

__all__ = ["main", "serve"]


async def serve(config_path: str) -> int:
    """Run the gateway of ``config_path`` until SIGTERM or until stdin closes."""
    # The deployed command builds the whole ``qihe`` parser (every part's CLI module) first.
    build_parser()
    config = load_gateway_config(config_path)
    factory = MockFactory()
    gateway = Gateway(config, pin_factory=factory)
    door = factory.pin(config.gpio[0].pin)
    gpio = next(s for s in gateway.sources if isinstance(s, GpioSource))
    running = asyncio.create_task(gateway.run(), name="gateway")
    cancel_on_signals(running)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def ready() -> None:
        await asyncio.gather(*(s.connected.wait() for s in gateway.serial_sources))
        await gateway.publisher.connected.wait()
        # The pin is claimed and its first state published (the source has no event for it).
        while gpio.changes < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        door.drive_low()  # the pull-up floats the pin high (open); the door is shut
        print("ready", flush=True)

    async def commands() -> None:
        while line := (await stdin.readline()).decode().strip():
            if line == "open":
                door.drive_high()
            elif line == "close":
                door.drive_low()
            elif line == "stats":
                stats = gateway.stats()
                reply = {
                    "readings": stats.readings,
                    "frames": sum(c.frames for c in stats.links.values()),
                    "lost": sum(c.lost for c in stats.links.values()),
                    "commits": gateway.outbox.commits,
                    "queued": stats.queued,
                    "watchdog_pings": gateway.watchdog.pings,
                }
                print(json.dumps(reply), flush=True)
        running.cancel()

    helpers = [
        asyncio.create_task(ready(), name="ready"),
        asyncio.create_task(commands(), name="commands"),
    ]
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await running
    finally:
        for helper in helpers:
            helper.cancel()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m bench.site_worker CONFIG", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(serve(args[0]))


if __name__ == "__main__":
    sys.exit(main())
