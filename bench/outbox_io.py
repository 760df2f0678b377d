"""Bytes written to disk per reading by the gateway's durable outbox (``/proc/self/io``).

    .venv/bin/python -m bench.outbox_io [--readings 20000] [--rate 50] [--runs 3]

Feeds readings into the outbox at a steady rate (as a site's boards would),
lets the publisher side confirm and delete them as a connected broker would,
and reads ``write_bytes`` (bytes this process caused to be sent to the block
layer) before and after. Beside it, in the same run, the naive baseline: one
SQLite transaction per reading (what a store without group commits does).
Prints the median of ``--runs`` runs of each and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.outbox import Outbox
from qihe.contract import SeatReading, encode_payload

T0 = datetime(2026, 11, 28, tzinfo=UTC)


def write_bytes() -> int:
    with open("/proc/self/io") as fh:
        for line in fh:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no write_bytes")


def reading(n: int) -> SeatReading:
    return SeatReading(
        site="qibin-taoyuan",
        gateway="gw1",
        device="board-a",
        sensor=f"board-a.{n % 24}",
        occupied=n % 2 == 0,
        ts=T0 + timedelta(milliseconds=n),
        seq=n % 65536,
    )


def sync_disk(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.sync()


async def outbox_run(folder: Path, readings: int, rate: float, interval_s: float) -> float:
    box = Outbox(folder / "outbox.sqlite3", max_readings=1_000_000, commit_interval=interval_s)
    await box.open()
    commits = asyncio.create_task(box.run())
    os.sync()
    before = write_bytes()
    cursor = 0
    interval = 1 / rate
    for n in range(readings):
        box.put(reading(n))
        if n % 10 == 9:  # the publisher confirms what the broker acknowledged
            rows = await box.fetch(after=cursor, limit=1000)
            if rows:
                box.confirm(r.id for r in rows)
                cursor = rows[-1].id
        await asyncio.sleep(interval)
    commits.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await commits
    await box.close()
    sync_disk(folder)
    return (write_bytes() - before) / readings


def naive_run(folder: Path, readings: int, rate: float) -> float:
    con = sqlite3.connect(folder / "naive.sqlite3", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, payload BLOB)")
    os.sync()
    before = write_bytes()
    interval = 1 / rate
    for n in range(readings):
        con.execute("INSERT INTO outbox (payload) VALUES (?)", (encode_payload(reading(n)),))
        con.execute("DELETE FROM outbox WHERE id = ?", (n,))  # acknowledged at once
        time.sleep(interval)
    con.close()
    sync_disk(folder)
    return (write_bytes() - before) / readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=500.0, help="readings per second")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--commit-interval", type=float, default=1.0, help="seconds")
    args = parser.parse_args()
    grouped, naive = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
            grouped.append(
                asyncio.run(outbox_run(Path(tmp), args.readings, args.rate, args.commit_interval))
            )
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
            naive.append(naive_run(Path(tmp), args.readings, args.rate))
    g, n = statistics.median(grouped), statistics.median(naive)
    print(f"readings per run: {args.readings} at {args.rate:g}/s, runs: {args.runs}")
    print("| store | bytes written per reading (median) |")
    print("|---|---|")
    print(f"| outbox, group commits every {args.commit_interval:g} s | {g:,.0f} |")
    print(f"| one transaction per reading (baseline) | {n:,.0f} |")
    print(f"| ratio outbox ÷ baseline | {g / n:.3f} |")
    per_day = g * args.rate * 86_400 / 1e6
    print(f"at {args.rate:g} readings/s the outbox writes {per_day:,.0f} MB a day")


if __name__ == "__main__":
    main()
