"""The demo's console: type a command to put a fault on an emulated board, or take it off.

    stuck xinyuan2 3      seat 3's sensor sticks at "occupied" (the board reports FAULT STUCK)
    unstuck xinyuan2 3    …and comes free again
    silent xinyuan2       the board stops talking (a dead board, a broken cable)
    speak xinyuan2        …and talks again
    noise xinyuan2 0.2    that share of frames gets corrupted on the wire (0 stops it)
    supply xinyuan2 3200  the board's supply drops to 3.2 V (``off``: back to normal)
    help

A site is named by any part of its id (``xinyuan2`` for ``shancheng-xinyuan2``). Every
command answers with one line; a bad one says what is wrong and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any

__all__ = ["HELP", "apply_command", "console"]

HELP = (
    "命令 / commands: stuck SITE N · unstuck SITE N · silent SITE · speak SITE · "
    "noise SITE RATE · supply SITE MV|off · help"
)


_VERBS = frozenset({"stuck", "unstuck", "silent", "speak", "noise", "supply"})


def apply_command(line: str, emulators: Mapping[str, Any]) -> str:
    """Carry out one console line on the emulators (by site id); return the answer."""
    words = line.split()
    if not words:
        return ""
    verb, args = words[0].lower(), words[1:]
    if verb == "help":
        return HELP
    if verb not in _VERBS:
        return f"看不懂 / not understood: {line.strip()!r}. {HELP}"
    if not args:
        return f"需要站点 / which site? {HELP}"
    matches = [site for site in emulators if args[0] in site]
    if len(matches) != 1:
        known = ", ".join(sorted(emulators))
        return f"站点不明 / no single site matches {args[0]!r} (sites: {known})"
    site, board = matches[0], emulators[matches[0]]
    try:
        match verb, args[1:]:
            case (("stuck" | "unstuck"), [seat]):
                board.set_stuck(int(seat), verb == "stuck")
            case "silent", []:
                board.set_silent(True)
            case "speak", []:
                board.set_silent(False)
            case "noise", [rate]:
                board.set_noise(float(rate))
            case "supply", ["off"]:
                board.set_supply(None)
            case "supply", [millivolts]:
                board.set_supply(int(millivolts))
            case _:
                return f"看不懂 / not understood: {line.strip()!r}. {HELP}"
    except ValueError as exc:  # a bad number, a seat the board does not have
        return f"未执行 / not done: {exc}"
    return f"已执行 / done: {verb} {' '.join(args[1:])} @ {site}".rstrip()


@contextlib.asynccontextmanager
async def console(emulators: Mapping[str, Any]) -> AsyncIterator[None]:
    """Read commands from stdin while the block runs (no thread: a reader on the event loop)."""
    loop = asyncio.get_running_loop()
    buffer = b""

    def readable() -> None:
        nonlocal buffer
        try:
            chunk = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        if not chunk:  # end of input: nobody will type any more
            loop.remove_reader(fd)
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            answer = apply_command(line.decode("utf-8", "replace"), emulators)
            if answer:
                print(answer, flush=True)

    try:
        fd = sys.stdin.fileno()
        loop.add_reader(fd, readable)
    except (OSError, ValueError, PermissionError, NotImplementedError):
        yield  # no usable stdin (a file, a closed stream): the demo runs without a console
        return
    try:
        yield
    finally:
        loop.remove_reader(fd)
