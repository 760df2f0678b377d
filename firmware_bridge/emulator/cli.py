"""``qihe emulate``: play one book-house sensor board on a pty (or a real serial port)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from firmware_bridge.emulator.config import MAX_SEATS, EmulatorConfig
from firmware_bridge.emulator.port import Port, PtyPort, SerialDevicePort
from firmware_bridge.emulator.runner import BookHouseEmulator
from firmware_bridge.errors import SerialLinkError

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``qihe emulate``."""
    p = sub.add_parser(
        "emulate",
        help="模拟一块书屋传感器板 / emulate a book-house sensor board on a pty",
        description=(
            "模拟淇河书屋的传感器板（座位、人流计数、门磁、电压），经串口协议发送。"
            " / Emulates a Qihe Book House sensor board (seats, people counter, door, supply)"
            " speaking the serial protocol on a pty, or on a real serial port."
        ),
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--port", metavar="PATH", help="use an existing serial device")
    where.add_argument("--link", metavar="PATH", help="create a pty and keep a symlink here")
    p.add_argument("--baudrate", type=int, default=115200, help="for --port (default 115200)")
    p.add_argument("--device-id", default="taoyuan-1", help="board id in HELLO")
    p.add_argument("--seats", type=int, default=24, help=f"self-study seats (1..{MAX_SEATS})")
    p.add_argument(
        "--no-counter",
        dest="counter",
        action="store_false",
        help="no entrance people counter on this board: no PEOPLE reports",
    )
    p.add_argument(
        "--no-door", dest="door", action="store_false", help="no door contact: no DOOR reports"
    )
    p.add_argument(
        "--presence-seats",
        type=int,
        default=0,
        metavar="N",
        help="seats 1..N also have a presence channel (mmWave radar): SEAT_PRESENCE",
    )
    p.add_argument(
        "--lunch-away",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share (0..1) of students seated over lunch who leave their books 40-100 min",
    )
    p.add_argument("--speed", type=float, default=60.0, help="sim seconds per real second")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-interval", type=int, default=60, metavar="S", help="heartbeat, sim s")
    p.add_argument("--start", type=datetime.fromisoformat, help="sim start, ISO with offset")
    p.add_argument("--scripted", action="store_true", help="no visitors: HELLO and heartbeats")
    p.add_argument(
        "--retransmit-after",
        type=float,
        metavar="S",
        help="hold reports until REPORT_ACK; resend after S real s (default: off)",
    )
    faults = p.add_argument_group("faults / 故障")
    faults.add_argument("--noise", type=float, default=0.0, metavar="RATE", help="0..1 per frame")
    faults.add_argument("--stuck", type=int, action="append", default=[], metavar="SEAT")
    faults.add_argument("--stuck-silent", action="store_true", help="stuck seats raise no FAULT")
    faults.add_argument("--low-supply", type=int, metavar="MV", help="hold the supply at MV")
    faults.add_argument("--silent-after", type=float, metavar="S", help="go silent after S s")
    faults.add_argument("--unplug-after", type=float, metavar="S", help="unplug after S s")
    faults.add_argument("--unplug-for", type=float, default=5.0, metavar="S")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S real seconds")
    p.add_argument("--status-every", type=float, default=1.0, metavar="S")
    p.set_defaults(handler=_handle)


def _config(args: argparse.Namespace) -> EmulatorConfig:
    fields: dict[str, object] = {
        "device_id": args.device_id,
        "seats": args.seats,
        "counter": args.counter,
        "door": args.door,
        "presence_seats": args.presence_seats,
        "lunch_away": args.lunch_away,
        "speed": args.speed,
        "seed": args.seed,
        "report_interval_s": args.report_interval,
        "simulate": not args.scripted,
        "noise_rate": args.noise,
        "stuck_seats": tuple(args.stuck),
        "stuck_silent": args.stuck_silent,
        "supply_mv": args.low_supply,
        # A long demo must not grow without limit.
        "journal_limit": 10_000,
    }
    if args.retransmit_after is not None:
        fields["retransmit_after"] = timedelta(seconds=args.retransmit_after)
    if args.start is not None:
        fields["start"] = args.start
    return EmulatorConfig.model_validate(fields)


def _handle(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "arguments"
        print(f"qihe emulate: 参数错误 / bad argument: {where}: {first['msg']}", file=sys.stderr)
        return 2
    port: Port = (
        SerialDevicePort(args.port, baudrate=args.baudrate)
        if args.port
        else PtyPort(link=args.link)
    )
    try:
        return asyncio.run(_serve(BookHouseEmulator(config), port, args))
    except SerialLinkError as exc:
        print(f"qihe emulate: 串口错误 / serial error: {exc}", file=sys.stderr)
        return 1


async def _serve(emu: BookHouseEmulator, port: Port, args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    await port.open()
    where = port.name
    if isinstance(port, PtyPort) and port.link is not None:
        where = f"{port.link} → {port.path}"
    config = emu.config
    print(f"模拟设备已启动 / emulator started: {where}", flush=True)
    extras = [
        *(["人流计数 counter"] if config.counter else []),
        *(["门磁 door"] if config.door else []),
    ]
    print(
        f"  设备 device {config.device_id}, {config.seats} 座位 seats"
        f"{''.join(f' + {extra}' for extra in extras)}, ×{config.speed:g}, seed {config.seed}",
        flush=True,
    )
    # Ctrl-C, SIGTERM and --duration all end here by cancellation; attach() cleans up.
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        async with asyncio.timeout(args.duration), emu.attach(port), asyncio.TaskGroup() as tasks:
            if args.silent_after is not None:
                tasks.create_task(_silent_after(emu, args.silent_after), name="silent")
            if args.unplug_after is not None:
                unplug = _unplug(emu, args.unplug_after, args.unplug_for)
                tasks.create_task(unplug, name="unplug")
            tasks.create_task(_status(emu, args.status_every), name="status")
    port.close()
    state = emu.state
    print(
        f"模拟设备已停止 / emulator stopped: 已发送 sent {state.sent},"
        f" 丢弃 dropped {state.dropped}, 损坏 corrupted {state.corrupted}",
        flush=True,
    )
    return 0


async def _silent_after(emu: BookHouseEmulator, delay: float) -> None:
    await asyncio.sleep(delay)
    emu.set_silent(True)
    print("设备静默 / board went silent", flush=True)


async def _unplug(emu: BookHouseEmulator, after: float, seconds: float) -> None:
    await asyncio.sleep(after)
    print(f"拔出串口 / unplugged for {seconds:g} s", flush=True)
    await emu.unplug(seconds)
    print("重新插入 / plugged in again", flush=True)


async def _status(emu: BookHouseEmulator, every: float) -> None:
    """A line per ``every`` seconds: what went out since the last line, and the house."""
    tz = ZoneInfo(emu.config.timezone)
    seen = 0
    while True:
        await asyncio.sleep(every)
        state = emu.state
        fresh = emu.journal[-(state.sent - seen) :] if state.sent > seen else []
        seen = state.sent
        kinds = Counter(type(entry.frame.message).__name__.lower() for entry in fresh)
        what = " ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())) or "-"
        house = state.house
        stamp = f"{house.now.astimezone(tz):%m-%d %H:%M}"
        counted = (
            f" | 进 in {house.in_total} 出 out {house.out_total}" if emu.config.counter else ""
        )
        print(
            f"[{stamp}] 发送 sent {state.sent} (+{len(fresh)}: {what})"
            f" | 座位 seats {sum(house.seats)}/{len(house.seats)}{counted}"
            f" | {house.supply_mv} mV | 丢弃 dropped {state.dropped}"
            f" 损坏 corrupted {state.corrupted}"
            + (
                f" | 未确认 unacked {state.unacknowledged} 重发 resent {state.resent}"
                if emu.config.retransmit_after is not None
                else ""
            ),
            flush=True,
        )
