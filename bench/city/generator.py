"""The city's load generator, a worker process (``bench/city/stack.py`` starts it).

    python -m bench.city.generator PLAN

PLAN is a JSON file: the broker (``host``, ``port``, ``prefix``, ``keepalive``), the
gateways' ``inflight`` window, ``nodelay`` (``TCP_NODELAY`` on their sockets),
``report_interval`` (s), ``occupied_share``, ``seed`` and this process's ``sites`` (``id``,
``devices``: [board id, seats]). Every site is one :class:`~bench.city.gateway.EmulatedGateway`,
all driven by one ``selectors`` loop.

Protocol on the pipes, one JSON line each: the worker prints ``{"ready": true}``, then
answers every command read from stdin: ``start`` (connect every gateway, which then sends
its initial state), ``rate`` (``seat_rate`` seat changes/s from now, Poisson-timed; answers
with the changes made since the last ``rate`` and how late the latest was), ``periodic``
(``on``: the periodic reports) and ``stats`` (its counters). End of stdin disconnects every
gateway and exits. This module imports no more than it needs (no HTTP client, no harness),
so the process's CPU time is the gateways'.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import math
import os
import random
import selectors
import signal
import socket
import sys
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.city.gateway import EmulatedGateway, Totals
from bench.city.payload import check_seat_payload, now_us, seat_payload
from bench.city.sites import SiteLayout
from qihe.contract import encode_payload, parse_reading

__all__ = ["COOLDOWN_S", "Generator", "main"]

#: A seat is not changed again within this (shorter at high rates), so every change has its event.
COOLDOWN_S = 5.0


class Generator:
    """Every gateway of this process, a Poisson source of seat changes, the periodic
    reports, and one ``selectors`` loop; commands arrive as JSON lines on stdin."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.totals = Totals()
        sites = [SiteLayout(s["id"], tuple((d, n) for d, n in s["devices"])) for s in plan["sites"]]
        self.gateways = [EmulatedGateway(site, plan, self.totals) for site in sites]
        self.rng = random.Random(plan["seed"])
        self.seats = [
            (gw, device, number)
            for gw in self.gateways
            for device, count in gw.site.devices
            for number in range(1, count + 1)
        ]
        self.occupied = bytearray(
            1 if self.rng.random() < plan["occupied_share"] else 0 for _ in self.seats
        )
        self.changed_at = array("d", [-math.inf]) * len(self.seats)
        self.rate = 0.0
        self.next_change = math.inf
        self.changes = 0  # since the last rate command
        self.skipped = 0
        self.behind = 0.0
        self.interval: float = plan["report_interval"]
        self.periodic = True
        now = time.monotonic()
        self.reports = [
            (now + self.rng.uniform(0, self.interval), i) for i in range(len(self.gateways))
        ]
        heapq.heapify(self.reports)
        self.selector = selectors.DefaultSelector()
        self.touched: set[EmulatedGateway] = set()
        # This run's ids in a formatted payload: the contract reads it and writes it back
        # byte for byte.
        gw = self.gateways[0]
        device = gw.site.devices[0][0]
        sample = seat_payload(gw.site.id, device, f"{device}.1", now_us(), 0, True)
        if encode_payload(parse_reading(sample)) != sample:
            raise RuntimeError(f"seat payload differs from the contract's:\n{sample!r}")

    # Commands ------------------------------------------------------------------------------

    def command(self, doc: dict[str, Any]) -> dict[str, Any]:
        cmd = doc["cmd"]
        if cmd == "start":
            self.start()
            return {"gateways": len(self.gateways)}
        if cmd == "rate":
            changes, self.changes = self.changes, 0
            behind, self.behind = self.behind, 0.0
            self.rate = float(doc["seat_rate"])
            self.next_change = (
                time.monotonic() + self.rng.expovariate(self.rate) if self.rate > 0 else math.inf
            )
            return {"at": time.time(), "changes": changes, "behind": behind}
        if cmd == "periodic":
            self.periodic = bool(doc["on"])
            return {}
        if cmd == "stats":
            return {
                "connected": self.totals.connected,
                "published": self.totals.published,
                "acked": sum(self.totals.acked.values()),
                "acked_by_kind": dict(self.totals.acked),
                "queued": sum(len(gw.outbox) for gw in self.gateways),
                "inflight": sum(gw.inflight for gw in self.gateways),
                "refused": self.totals.refused,
                "disconnects": self.totals.disconnects,
                "skipped": self.skipped,
                "behind": self.behind,
            }
        raise ValueError(f"unknown command {cmd!r}")

    def start(self) -> None:
        """Connect every gateway (CONNECT sent; CONNACK comes through the loop)."""
        host, port = self.plan["host"], self.plan["port"]
        index = 0
        for gw in self.gateways:
            count = sum(n for _, n in gw.site.devices)
            states = [bool(s) for s in self.occupied[index : index + count]]
            index += count
            per_board, at = [], 0
            for _, n in gw.site.devices:
                per_board.append(states[at : at + n])
                at += n
            gw.initial(per_board)
            gw.client.connect(host, port, keepalive=self.plan["keepalive"])
            sock = gw.client.socket()
            assert isinstance(sock, socket.socket)
            if self.plan.get("nodelay", False):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            gw.fd = sock.fileno()
            self.selector.register(gw.fd, selectors.EVENT_READ, gw)
            self._watch_write(gw)

    # The loop --------------------------------------------------------------------------------

    def run(self) -> int:
        stdin = sys.stdin.fileno()
        os.set_blocking(stdin, False)
        self.selector.register(stdin, selectors.EVENT_READ, None)
        pending = b""
        next_misc = time.monotonic() + 1.0
        print(json.dumps({"ready": True}), flush=True)
        while True:
            now = time.monotonic()
            due = min(self.next_change, self.reports[0][0] if self.periodic else math.inf)
            timeout = min(max(0.0, due - now), 0.2)
            for key, mask in self.selector.select(timeout):
                gw = key.data
                if gw is None:
                    data = os.read(stdin, 65536)
                    if not data:
                        self.shutdown()
                        return 0
                    pending += data
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        reply = self.command(json.loads(line))
                        sys.stdout.write(json.dumps(reply) + "\n")
                        sys.stdout.flush()
                    continue
                if mask & selectors.EVENT_READ:
                    gw.client.loop_read()
                if mask & selectors.EVENT_WRITE:
                    gw.client.loop_write()
                self.touched.add(gw)
            now = time.monotonic()
            self._emit_due(now)
            for gw in self.touched:
                gw.pump()
                self._watch_write(gw)
            self.touched.clear()
            if now >= next_misc:
                next_misc = now + 1.0
                for gw in self.gateways:
                    if gw.fd >= 0:
                        gw.client.loop_misc()
                        self._watch_write(gw)

    def _watch_write(self, gw: EmulatedGateway) -> None:
        if gw.fd < 0:
            return
        if gw.client.socket() is None:  # connection lost: paho closed the socket
            with contextlib.suppress(KeyError, OSError, ValueError):
                self.selector.unregister(gw.fd)
            gw.fd = -1
            return
        want = gw.client.want_write()
        if want != gw.watching_write:
            gw.watching_write = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self.selector.modify(gw.fd, events, gw)

    def _emit_due(self, now: float) -> None:
        while self.next_change <= now:
            self.behind = max(self.behind, now - self.next_change)
            self._change(now)
            self.next_change += self.rng.expovariate(self.rate)
        while self.periodic and self.reports[0][0] <= now:
            due, i = heapq.heappop(self.reports)
            gw = self.gateways[i]
            gw.report()
            self.touched.add(gw)
            heapq.heappush(self.reports, (max(due + self.interval, now), i))

    def _change(self, now: float) -> None:
        n = len(self.seats)
        cooldown = min(COOLDOWN_S, 0.5 * n / self.rate)
        for _ in range(30):
            i = self.rng.randrange(n)
            if now - self.changed_at[i] >= cooldown:
                break
        else:
            self.skipped += 1
            return
        self.changed_at[i] = now
        self.occupied[i] ^= 1
        gw, device, number = self.seats[i]
        gw.seat(device, number, bool(self.occupied[i]))
        self.touched.add(gw)
        self.changes += 1

    def shutdown(self) -> None:
        for gw in self.gateways:
            if gw.fd >= 0:
                gw.client.disconnect()
                with contextlib.suppress(OSError):
                    gw.client.loop_write()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator of the plan file named in ``argv`` until stdin closes or SIGTERM."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m bench.city.generator PLAN", file=sys.stderr)
        return 2
    check_seat_payload()
    plan = json.loads(Path(args[0]).read_text())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return Generator(plan).run()


if __name__ == "__main__":
    sys.exit(main())
