"""``qihe demo``: the whole pipe on one machine, with no configuration from the user.

A real Mosquitto and a real InfluxDB under a state folder; per book house an
emulated sensor board on a pty and a gateway reading it; a day-care centre with
contacts on (mock) GPIO pins; the consumer writing everything to InfluxDB; the
live service with its operator page on a local port. It prints what flows and
how many points have landed, until Ctrl-C or ``--duration``.

Sites come from ``config/demo/demo.yaml`` and the gateway configs beside it;
the demo only replaces addresses, folders and serial paths with its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
import sys
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field

from devstack import DevStackError, InfluxdProcess, MosquittoProcess
from qihe.configfile import load_config_file
from qihe.configtypes import StrictModel
from qihe.contract import TopicTree
from qihe_cli.demo_console import HELP, console

__all__ = ["DemoConfig", "add_parsers"]

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "demo" / "demo.yaml"
MEASUREMENTS = (
    *("seat", "people", "door", "motion", "heartbeat", "device", "fault", "link", "outbox"),
    "system",
    "gateway_status",
)


class DemoEmulator(StrictModel):
    seats: int = Field(default=24, ge=1, le=64)
    seed: int = 0
    #: Simulated time before a stuck seat's board reports FAULT STUCK.
    stuck_report_after: timedelta = timedelta(minutes=5)


class DemoSite(StrictModel):
    name: str
    district: str = ""
    gateway_config: Path
    emulator: DemoEmulator | None = None
    gpio_activity: bool = False


class DemoConfig(StrictModel):
    speed: float = Field(default=60.0, gt=0)
    start_local_time: time = time(15, 0)
    timezone: str = "Asia/Shanghai"
    database: str = Field(default="qihe_demo", pattern=r"^[A-Za-z0-9_]+$")
    consumer_config: Path
    #: The live service's config; its site directory is cut down to the demo's sites.
    live_config: Path
    #: Where the operator page is served (a free port when this one is taken).
    live_port: int = Field(default=8080, ge=0, le=65535)
    #: The alert engine's config, and what the demo changes in it (its rules run in real
    #: time while the boards live 60x faster).
    alerts_config: Path
    alerts_overrides: dict[str, Any] = Field(default_factory=dict)
    sites: tuple[DemoSite, ...] = Field(min_length=1)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo", help="run broker, InfluxDB, emulated book houses, gateways and consumer locally"
    )
    demo.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="demo YAML")
    demo.add_argument(
        "--state-dir", type=Path, default=Path(".qihe-demo"), help="where servers keep data"
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    demo.add_argument("--every", type=float, default=5.0, help="print a status line every SECONDS")
    demo.set_defaults(handler=_main)


@dataclass
class _Running:
    """What the demo started, for its status lines."""

    influxd: InfluxdProcess
    database: str
    gateways: dict[str, Any] = field(default_factory=dict)
    emulators: dict[str, Any] = field(default_factory=dict)
    consumer: Any = None
    live: Any = None


def _main(args: argparse.Namespace) -> int:
    config = load_config_file(args.config, DemoConfig)
    base = args.config.resolve().parent
    state = args.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)

    from central.consumer.config import ConsumerConfig
    from central.consumer.service import Consumer

    consumer_config = load_config_file(base / config.consumer_config, ConsumerConfig)
    broker = MosquittoProcess(state / "mosquitto")
    influxd = InfluxdProcess(state / "influxdb")
    print("启动本地服务 / starting local servers …", flush=True)
    with broker, influxd:
        consumer_config = consumer_config.model_copy(
            update={
                "mqtt": consumer_config.mqtt.model_copy(
                    update={"host": broker.host, "port": broker.port, "client_id": "qihe-demo"}
                ),
                "influx": consumer_config.influx.model_copy(
                    update={"url": influxd.url, "database": config.database}
                ),
            }
        )
        print(f"  MQTT broker   mqtt://{broker.host}:{broker.port}   (log {broker.log_path})")
        print(f"  InfluxDB 1.x  {influxd.url}   database {config.database}")
        print(
            f"  查询 / query:  influx -port {influxd.port} -database {config.database} "
            "-execute 'SELECT COUNT(*) FROM seat'"
        )
        stats = _stats_config(state, base / config.live_config, influxd.url, config.database)
        today = datetime.now(ZoneInfo(config.timezone)).date()
        print(
            f"  统计 / statistics: qihe stats occupancy --config {stats} --from {today} "
            f"--to {today} --by hour"
        )
        running = _Running(influxd=influxd, database=config.database)
        consumer = Consumer(consumer_config)
        consumer.start()
        running.consumer = consumer
        try:
            asyncio.run(_run_sites(config, base, state, broker, running, args))
        finally:
            consumer.stop()
            _print_totals(running)
    return 0


async def _run_sites(
    config: DemoConfig,
    base: Path,
    state: Path,
    broker: MosquittoProcess,
    running: _Running,
    args: argparse.Namespace,
) -> None:
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main.cancel)
    zone = ZoneInfo(config.timezone)
    sim_start = datetime.combine(datetime.now(zone).date(), config.start_local_time, zone)
    with contextlib.suppress(asyncio.CancelledError):
        async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as tg:
            tg.create_task(_run_live(config, base, broker, running), name="demo-live")
            tg.create_task(_run_alerts(config, base, broker, state), name="demo-alerts")
            await stack.enter_async_context(console(running.emulators))
            for site in config.sites:
                tg.create_task(
                    _run_site(site, config, base, state, broker, running, sim_start),
                    name=f"site:{site.gateway_config.stem}",
                )
            tg.create_task(_report(running, args.every), name="demo-report")
            if args.duration is not None:
                await asyncio.sleep(args.duration)
                raise asyncio.CancelledError


async def _run_live(
    config: DemoConfig, base: Path, broker: MosquittoProcess, running: _Running
) -> None:
    """The live service on ``live_port``, showing only the sites the demo plays."""
    from central.live.config import load_live_setup
    from central.live.service import LiveService
    from edge.config import load_gateway_config

    setup = load_live_setup(base / config.live_config)
    played = {load_gateway_config(base / s.gateway_config).site for s in config.sites}
    directory = setup.directory.model_copy(
        update={"sites": tuple(s for s in setup.directory.sites if s.id in played)}
    )
    live_config = setup.config.model_copy(
        update={
            "mqtt": setup.config.mqtt.model_copy(update={"host": broker.host, "port": broker.port}),
            "http": setup.config.http.model_copy(
                update={"host": "127.0.0.1", "port": _port_or_free(config.live_port)}
            ),
        }
    )
    service = LiveService(live_config, directory)
    running.live = service
    task = asyncio.create_task(service.run(), name="live")
    try:
        await service.wait_listening()
        print(f"  运营页面 Operator page  {service.url}", flush=True)
        print(f"  公众页面 Public page    {service.url}public", flush=True)
        await task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _run_alerts(
    config: DemoConfig, base: Path, broker: MosquittoProcess, state: Path
) -> None:
    """The alert engine over the demo's broker; its alerts go to MQTT and to this console;
    acknowledgements and silences are kept in the demo's state folder."""
    from central.alerts.config import AlertsConfig
    from central.alerts.engine import AlertEngine
    from central.sites import load_directory

    path = base / config.alerts_config
    loaded = load_config_file(path, AlertsConfig)
    data = loaded.model_dump(by_alias=True, exclude={"routes"})
    data["routes"] = [{"type": "log"}]
    data["mqtt"] = {**data["mqtt"], "host": broker.host, "port": broker.port}
    data["state_dir"] = str(state / "alerts")
    for key, value in config.alerts_overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    alerts = AlertsConfig.model_validate(data)
    engine = AlertEngine(alerts, load_directory(path, alerts.sites))
    root = TopicTree(alerts.mqtt.topic_prefix).root
    print(
        f"  告警 Alerts            mosquitto_sub -p {broker.port} -t '{root}/_alerts/#' -v",
        flush=True,
    )
    print(f"  {HELP}", flush=True)
    await engine.run()


def _stats_config(state: Path, live_config: Path, url: str, database: str) -> Path:
    """A ``qihe stats`` config for the demo's own InfluxDB and the directory the page uses."""
    from central.live.config import LiveConfig

    sites = load_config_file(live_config, LiveConfig).sites
    sites = sites if sites.is_absolute() else (live_config.parent / sites).resolve()
    path = state / "stats.yaml"
    text = f"sites: {sites}\ninflux:\n  url: {url}\n  database: {database}\n"
    path.write_text(text, encoding="utf-8")
    return path


def _port_or_free(port: int) -> int:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0  # taken: the service picks a free one and prints it
    return port


async def _run_site(
    site: DemoSite,
    config: DemoConfig,
    base: Path,
    state: Path,
    broker: MosquittoProcess,
    running: _Running,
    sim_start: datetime,
) -> None:
    from edge.config import load_gateway_config
    from edge.gateway import Gateway
    from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort

    gateway_config = load_gateway_config(base / site.gateway_config)
    folder = state / "sites" / gateway_config.site
    (folder / "dev").mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {
        "state_dir": folder,
        "broker": gateway_config.broker.model_copy(
            update={"host": broker.host, "port": broker.port}
        ),
    }
    ports = []
    if gateway_config.serial:
        board = gateway_config.serial[0]
        link = folder / "dev" / board.device
        ports.append(PtyPort(link))
        overrides["serial"] = (board.model_copy(update={"path": str(link)}),)
    gateway_config = gateway_config.model_copy(update=overrides)

    pin_factory = None
    if gateway_config.gpio:
        from gpiozero.pins.mock import MockFactory

        pin_factory = MockFactory()
    gateway = Gateway(gateway_config, pin_factory=pin_factory)
    running.gateways[site.name] = gateway
    print(
        f"  {site.name} · {site.district}: gateway {gateway_config.site}/{gateway_config.gateway}"
    )
    async with contextlib.AsyncExitStack() as stack:
        for port in ports:
            await stack.enter_async_context(port)
        gateway_task = asyncio.create_task(gateway.run(), name=f"gateway:{gateway_config.site}")
        try:
            if ports and site.emulator is not None:
                # pyserial empties the input buffer when it opens a port: attach the board
                # only once the gateway listens, or its HELLO would be thrown away.
                await gateway.serial_sources[0].connected.wait()
                emulator = BookHouseEmulator(
                    EmulatorConfig(
                        device_id=gateway_config.serial[0].device,
                        seats=site.emulator.seats,
                        seed=site.emulator.seed,
                        speed=config.speed,
                        start=sim_start,
                        stuck_report_after=site.emulator.stuck_report_after,
                    )
                )
                running.emulators[gateway_config.site] = emulator
                async with emulator.attach(ports[0]):
                    await gateway_task
            elif site.gpio_activity and pin_factory is not None:
                await _gpio_activity(gateway_config, pin_factory, config.speed)
            else:
                await gateway_task
        finally:
            gateway_task.cancel()
            await asyncio.gather(gateway_task, return_exceptions=True)


async def _gpio_activity(gateway_config: Any, pin_factory: Any, speed: float) -> None:
    """Residents come and go at the day-care centre: the door opens, the hall PIR trips."""
    rng = random.Random(7)
    pins = {g.kind: pin_factory.pin(g.pin) for g in gateway_config.gpio}
    door, pir = pins.get("door"), pins.get("motion")
    while True:
        await asyncio.sleep(rng.uniform(60, 300) / speed)
        if door is not None:
            door.drive_high()  # open
            await asyncio.sleep(rng.uniform(3, 10) / speed + 0.1)
            door.drive_low()
        if pir is not None:
            pir.drive_high()
            await asyncio.sleep(rng.uniform(30, 120) / speed + 0.3)
            pir.drive_low()


def _count_points(influxd: InfluxdProcess, database: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in MEASUREMENTS:
        rows = influxd.rows(f'SELECT COUNT(*) FROM "{name}"', database)
        if rows:
            counts[name] = max(int(v) for k, v in rows[0].items() if k.startswith("count_"))
    return counts


async def _report(running: _Running, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        frames = sum(len(e.journal) for e in running.emulators.values())
        readings = sum(g.stats().readings for g in running.gateways.values())
        published = sum(g.stats().publisher.published for g in running.gateways.values())
        consumed = running.consumer.stats()
        try:
            counts = await asyncio.to_thread(_count_points, running.influxd, running.database)
        except (DevStackError, OSError) as exc:  # a status line must never stop the demo
            log.warning("InfluxDB count failed: %s", exc)
            continue
        total = sum(counts.values())
        by_kind = " ".join(f"{k}={v}" for k, v in counts.items())
        print(
            f"帧 frames {frames} → 读数 readings {readings} → 已发布 published {published} → "
            f"已写入 written {consumed.written_points} | InfluxDB {total} points ({by_kind})",
            flush=True,
        )


def _print_totals(running: _Running) -> None:
    try:
        counts = _count_points(running.influxd, running.database)
    except (DevStackError, OSError) as exc:
        print(f"InfluxDB count failed: {exc}", file=sys.stderr)
        return
    print("\n已入库 / points in InfluxDB (SELECT COUNT(*)):")
    for name, count in counts.items():
        print(f"  {name:<15} {count}")
    print(f"  {'total':<15} {sum(counts.values())}")
