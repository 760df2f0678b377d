"""``qihe live --config FILE``: the live seat-availability service (API, stream, pages)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from qihe.running import cancel_on_signals, reload_on_sighup

if TYPE_CHECKING:  # loaded by the command itself: every ``qihe`` command imports this module
    from central.live.config import LiveSetup
    from central.live.service import LiveService

__all__ = ["run_live"]

log = logging.getLogger(__name__)

#: Seconds after the first connection to the broker: a city's retained replay is in by then.
LOADED_AFTER_S = 30.0


def run_live(args: argparse.Namespace) -> int:
    """``qihe live --config FILE [--check]`` (its parser: :mod:`central.service_cli`)."""
    from central.live.config import load_live_setup

    setup = load_live_setup(args.config)
    if args.check:
        sites = setup.directory.sites
        seats = sum(len(site.all_seats()) for site in sites)
        print(f"{args.config}: 配置有效 / config OK ({len(sites)} sites, {seats} seats)")
        return 0
    try:
        return asyncio.run(_serve(setup, args.config))
    except OSError as exc:
        print(f"qihe: {exc}", file=sys.stderr)
        return 1


async def _serve(setup: LiveSetup, path: Path) -> int:
    from central.live.config import load_live_setup
    from central.live.service import LiveService
    from central.reload import ConfigReloader

    service = LiveService(setup.config, setup.directory)
    task = asyncio.create_task(service.run(), name="live")
    cancel_on_signals(task)
    reloader = ConfigReloader(
        "live",
        path,
        load=lambda: load_live_setup(path),
        apply=lambda new: service.reload(new.config, new.directory),
    )
    reload_on_sighup(reloader.trigger)
    freezing = asyncio.create_task(_freeze_when_loaded(service), name="live-gc-freeze")
    listening = asyncio.create_task(service.wait_listening())
    await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
    if listening.done() and not task.done():
        print(f"运营页面 Operator page: {service.url}", file=sys.stderr)
        print(f"公众页面 Public page:   {service.url}public", file=sys.stderr)
    listening.cancel()
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        freezing.cancel()
        await reloader.aclose()
    print("实时服务已停止 / live service stopped", file=sys.stderr)
    return 0


async def _freeze_when_loaded(service: LiveService) -> None:
    """Set the loaded state aside from the garbage collector, once (``gc.freeze``).

    A city's present state is a few hundred thousand objects that live for hours, and a full
    collection walks them all with the event loop stopped: 100-200 ms in which no event is
    sent. Frozen once the broker's retained replay is in, they are not walked again; what
    changes afterwards is collected as usual. This process runs only the live service, so
    the whole heap may be frozen. Only the young generations are collected first (a few ms,
    not a full pass): what older garbage is frozen with the rest, and what was alive then
    and turns into a cycle later, stays — once, and little."""
    await service.broker_connected.wait()
    await asyncio.sleep(LOADED_AFTER_S)
    gc.collect(1)
    gc.freeze()
    log.info(
        "live: %d objects of the loaded state set aside from the garbage collector",
        gc.get_freeze_count(),
    )
