"""``qihe gateway doctor``: check a site on the spot, one line per check, with what to do.

Each check returns a :class:`CheckResult`; :func:`run_doctor` prints them as

    ✓ 名称 name: detail
    ✗ 名称 name: detail — 怎么办 what to do

and exits 0 when nothing failed (warnings, marked ``!``, do not fail), 1 otherwise.
The checks talk to the real things (the serial port, the pins, the broker) with a
short timeout; the hardware seams (``pin_factory``, ``clock_trust``, ``statvfs``)
are injectable so tests can play each condition. Secrets are never printed.

Run it with the service stopped (``systemctl stop qihe-gateway``): a running
gateway holds the pins and reads the serial ports, and the doctor would compete.
"""

from __future__ import annotations

import os
import sqlite3
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TextIO

from edge.clock import ClockTrust, KernelClockSync
from edge.config import GpioInputConfig, SerialPortConfig, load_gateway_config
from edge.refusals import STATE_FILE as REFUSALS_FILE
from edge.refusals import read_refusals
from edge.sources.modbus_config import ModbusDeviceConfig, ModbusPortConfig
from edge.sources.modbus_profiles import ModbusProfile
from firmware_bridge.codec import FrameDecoder, encode
from firmware_bridge.errors import FrameError
from firmware_bridge.messages import Frame, Ping
from qihe.configfile import ConfigError
from qihe.contract import TopicTree
from qihe.mqtt import BrokerConnection

__all__ = [
    "check_broker",
    "check_clock",
    "check_disk",
    "check_gpio",
    "check_modbus",
    "check_outbox",
    "check_refusals",
    "check_serial",
    "check_state_dir",
    "run_doctor",
]

Outcome = Literal["pass", "warn", "fail"]
_MARK = {"pass": "✓", "warn": "!", "fail": "✗"}
#: Below this share of free space the disk check warns; below _DISK_FAIL it fails.
_DISK_WARN = 0.10
_DISK_FAIL = 0.02
#: MQTT v5 CONNACK reason codes (and their v3 equivalents) that mean "not these credentials".
_REFUSED_CREDENTIALS = {4, 5, 134, 135}
_STOP_SERVICE = (
    "若网关服务在运行,先停止 if the service runs, stop it: sudo systemctl stop qihe-gateway"
)


@dataclass(frozen=True, slots=True)
class CheckResult:
    outcome: Outcome
    name: str
    detail: str
    remedy: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome != "fail"

    def line(self) -> str:
        text = f"{_MARK[self.outcome]} {self.name}: {self.detail}"
        if self.outcome != "pass" and self.remedy:
            text += f" — {self.remedy}"
        return text


def _passed(name: str, detail: str) -> CheckResult:
    return CheckResult("pass", name, detail)


def _failed(name: str, detail: str, remedy: str) -> CheckResult:
    return CheckResult("fail", name, detail, remedy)


# -- the host -----------------------------------------------------------------


def check_state_dir(state_dir: Path) -> CheckResult:
    name = "状态目录 state folder"
    if not state_dir.is_dir():
        return _failed(
            name,
            f"{state_dir} 不存在 does not exist",
            f"运行 install.sh,或 run install.sh, or: sudo install -d -o qihe -g qihe {state_dir}",
        )
    try:
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return _failed(
            name,
            f"{state_dir} 不可写 not writable ({exc.strerror})",
            f"以 qihe 用户运行 run as the qihe user (sudo -u qihe qihe gateway doctor ...), "
            f"or: sudo chown -R qihe:qihe {state_dir}",
        )
    return _passed(name, f"{state_dir} 可写 writable")


def check_disk(state_dir: Path, *, statvfs: Callable[[Path], Any] = os.statvfs) -> CheckResult:
    name = "磁盘空间 disk space"
    try:
        st = statvfs(state_dir)
    except OSError as exc:
        return _failed(
            name, f"无法读取 cannot read ({exc.strerror})", "检查 SD 卡 check the SD card"
        )
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    share = free / total if total else 0.0
    detail = f"剩余 free {free / 2**30:.1f} GiB of {total / 2**30:.1f} GiB ({share:.0%})"
    remedy = "清理空间 free space: sudo journalctl --vacuum-size=32M; sudo apt-get clean"
    if share < _DISK_FAIL:
        return _failed(name, detail, remedy)
    if share < _DISK_WARN:
        return CheckResult("warn", name, detail, remedy)
    return _passed(name, detail)


def check_outbox(path: Path) -> CheckResult:
    name = "发件箱 outbox"
    if not path.exists():
        return _passed(name, f"{path} 尚未创建 not created yet (the gateway creates it)")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (count,) = con.execute("SELECT COUNT(*) FROM outbox").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        return _failed(
            name,
            f"{path} 无法读取 unreadable ({exc})",
            "网关启动时会将其移到一旁 the gateway moves it aside at start; "
            "检查 SD 卡 check the SD card (dmesg)",
        )
    return _passed(name, f"{path}: 待发 {count} readings queued")


def check_refusals(state_dir: Path, topic_root: str) -> CheckResult:
    """What the broker refused, as the gateway's last health report left it in ``state_dir``.

    Read, not probed: a test publish on the gateway's topics would land as a reading.
    """
    name = "代理拒绝 broker refusals"
    path = state_dir / REFUSALS_FILE
    try:
        seen = read_refusals(path)
    except (OSError, ValueError) as exc:
        return CheckResult(
            "warn",
            name,
            f"{path} 无法读取 unreadable ({exc})",
            "网关下次报告时重写 the gateway rewrites it",
        )
    if seen is None or seen.total == 0:
        return _passed(name, "网关未记录被拒绝的发布 the gateway recorded no refused publish")
    detail = (
        f"截至 as of {seen.at}: 代理拒绝了 {seen.total} 条 the broker refused {seen.total} "
        f"({seen.describe()}); 待重试 {seen.held} held for a retry"
    )
    remedy = (
        f"检查代理的 ACL check the broker's ACL: the gateway's user must be allowed to write "
        f"{topic_root}/#; 修改后重载 then reload it: sudo systemctl reload mosquitto"
    )
    return CheckResult("fail" if seen.held else "warn", name, detail, remedy)


def check_clock(trust: ClockTrust) -> CheckResult:
    name = "时钟同步 clock"
    if trust.synchronised():
        return _passed(name, "已与 NTP 同步 synchronised")
    return _failed(
        name,
        "未同步 not synchronised (readings are held until it is)",
        "检查网络和 NTP check the network and NTP: timedatectl status; "
        "systemctl status systemd-timesyncd",
    )


# -- the sensors ------------------------------------------------------------------


def _frames(port: Any, deadline: float) -> Iterator[Frame | FrameError]:
    decoder = FrameDecoder()
    while time.monotonic() < deadline:
        data = port.read(256)
        if data:
            yield from decoder.feed(data)


def check_serial(config: SerialPortConfig, *, timeout: float) -> CheckResult:
    """Open the port, send a PING, wait for any valid frame (an ACK, a HELLO, a report)."""
    import serial

    name = f"串口 serial {config.device}"
    path = config.path
    if not os.path.exists(path):
        return _failed(
            name,
            f"{path} 不存在 not found",
            "检查 USB 线和 udev 规则 check the cable and the udev rule: ls -l /dev/serial/by-id/",
        )
    try:
        port = serial.Serial(path, config.baudrate, timeout=0.1)
    except serial.SerialException as exc:
        denied = isinstance(exc.__context__, PermissionError) or "Permission denied" in str(exc)
        remedy = (
            "用户需在 dialout 组 the user needs the dialout group: sudo usermod -aG dialout $USER"
            if denied
            else _STOP_SERVICE
        )
        return _failed(name, f"{path} 无法打开 cannot open ({exc})", remedy)
    errors = 0
    try:
        port.write(encode(Frame(0, Ping())))
        for event in _frames(port, time.monotonic() + timeout):
            if isinstance(event, Frame):
                kind = type(event.message).__name__.upper()
                return _passed(name, f"{path} 收到 {kind} 帧 answered with a {kind} frame")
            errors += 1
    except serial.SerialException as exc:
        return _failed(name, f"{path} 读取失败 read failed ({exc})", _STOP_SERVICE)
    finally:
        port.close()
    if errors:
        return _failed(
            name,
            f"{path} 只收到 {errors} 个坏帧 only garbled frames",
            f"检查波特率({config.baudrate})和接线 check the baud rate and the wiring",
        )
    return _failed(
        name,
        f"{path} {timeout:g}s 内无应答 no frame within {timeout:g}s",
        "板子通电了吗?端口对吗? is the board powered, is this its port? " + _STOP_SERVICE,
    )


def check_modbus(
    port: ModbusPortConfig, device: ModbusDeviceConfig, profile: ModbusProfile
) -> CheckResult:
    """Ask one Modbus device for its first registers, within the port's own timeout."""
    from edge.sources.modbus_bus import ModbusPortError, ModbusTimeoutError, probe_device
    from edge.sources.modbus_rtu import ExceptionReply, ModbusFrameError

    name = f"Modbus {port.name} 单元 unit {device.unit} ({device.sensor})"
    try:
        answer = probe_device(port, device, profile)
    except ModbusPortError as exc:
        return _failed(name, f"{port.path} 无法使用 cannot use ({exc})", _STOP_SERVICE)
    except ModbusTimeoutError:
        return _failed(
            name,
            f"{port.timeout.total_seconds():g}s 内无应答 no answer",
            f"检查单元号、波特率 {port.baudrate}、A/B 接线和终端电阻 check the unit id, "
            "the baud rate, the A/B wiring and the 120 Ω termination",
        )
    except ModbusFrameError as exc:
        return _failed(
            name,
            f"应答损坏 garbled answer ({exc.kind})",
            "检查波特率、校验位、A/B 接线和终端电阻 check baud rate, parity, A/B and termination",
        )
    if isinstance(answer, ExceptionReply):
        return _failed(
            name,
            f"设备拒绝 refused: exception {answer.code} ({answer.text})",
            f"检查档案 check the profile {device.profile} against the device's data sheet",
        )
    return _passed(name, f"应答 answered ({len(answer.values)} registers)")


def check_gpio(config: GpioInputConfig, *, pin_factory: Any = None) -> CheckResult:
    from gpiozero import DigitalInputDevice, GPIOZeroError

    name = f"GPIO {config.pin} ({config.kind} {config.sensor})"
    try:
        device = DigitalInputDevice(
            config.pin,
            pull_up=config.pull_up,
            active_state=True if config.pull_up is None else None,
            pin_factory=pin_factory,
        )
    except (GPIOZeroError, ValueError, OSError) as exc:
        return _failed(
            name,
            f"无法读取 cannot read ({exc})",
            "检查引脚号,用户需在 gpio 组 check the pin number; the user needs the gpio group. "
            + _STOP_SERVICE,
        )
    try:
        level = bool(device.pin.state)
    finally:
        device.close()
    active = level == config.active_high
    meaning = {"door": ("开 open", "关 closed"), "seat": ("有人 occupied", "空 free")}.get(
        config.kind, ("有动静 motion", "无动静 still")
    )
    state = meaning[0] if active else meaning[1]
    return _passed(name, f"{'高 high' if level else '低 low'} → {state}")


# -- the broker ---------------------------------------------------------------------


def check_broker(
    broker: BrokerConnection,
    *,
    client_id: str,
    timeout: float,
    name: str = "MQTT 代理 broker",
) -> CheckResult:
    """Connect with the configured credentials and TLS; tell refused from unreachable."""
    from qihe.mqtt import paho_client

    where = f"{broker.host}:{broker.port}" + (" (TLS)" if broker.tls else "")
    who = f" as {broker.username}" if broker.username else ""
    answered = threading.Event()
    codes: list[int] = []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        codes.append(int(reason.value))
        answered.set()

    unreachable = "检查网络、防火墙和地址 check the network, the firewall and broker.host/port"
    try:
        client = paho_client(broker, client_id=client_id)  # reads the CA file with TLS
        client.connect_timeout = timeout
        client.on_connect = on_connect
        client.connect(broker.host, broker.port, keepalive=max(5, int(timeout) + 5))
    except ssl.SSLError as exc:
        return _failed(
            name,
            f"{where} TLS 握手失败 handshake failed ({exc.reason})",
            "检查 ca_file check ca_file",
        )
    except (OSError, ValueError) as exc:
        return _failed(name, f"{where} 无法连接 unreachable ({exc})", unreachable)
    client.loop_start()
    try:
        if not answered.wait(timeout):
            return _failed(name, f"{where} {timeout:g}s 内无 CONNACK no answer", unreachable)
    finally:
        client.disconnect()
        client.loop_stop()
    code = codes[0]
    if code == 0:
        return _passed(name, f"{where}{who} 已连接 connected")
    if code in _REFUSED_CREDENTIALS:
        return _failed(
            name,
            f"{where}{who} 凭据被拒绝 credentials refused (CONNACK {code})",
            "检查 broker.username/password,与中心核对 check them with the central server",
        )
    return _failed(name, f"{where} 拒绝连接 refused (CONNACK {code})", unreachable)


# -- all together ---------------------------------------------------------------------


def run_doctor(
    config_path: str | Path,
    *,
    timeout: float = 5.0,
    out: TextIO | None = None,
    pin_factory: Any = None,
    clock_trust: ClockTrust | None = None,
    statvfs: Callable[[Path], Any] = os.statvfs,
) -> int:
    """Run every check against the site of ``config_path``, print a line each; 0 or 1."""
    stream = sys.stdout if out is None else out

    def report(result: CheckResult) -> bool:
        print(result.line(), file=stream, flush=True)
        return result.ok

    try:
        config = load_gateway_config(config_path)
    except ConfigError as exc:
        report(
            _failed("配置 config", str(exc), "改正配置文件后重试 fix the config file, then rerun")
        )
        return 1
    report(_passed("配置 config", f"{config_path}: site {config.site}, gateway {config.gateway}"))
    checks: list[Callable[[], CheckResult]] = [
        lambda: check_state_dir(config.state_dir),
        lambda: check_disk(config.state_dir, statvfs=statvfs),
        lambda: check_outbox(config.outbox_path),
        lambda: check_refusals(
            config.state_dir,
            TopicTree(config.broker.topic_prefix).gateway_root(config.site, config.gateway),
        ),
        lambda: check_clock(clock_trust or KernelClockSync()),
    ]
    checks += [partial(check_serial, port, timeout=timeout) for port in config.serial]
    checks += [partial(check_gpio, pin, pin_factory=pin_factory) for pin in config.gpio]
    client_id = f"qihe-doctor-{config.site}-{config.gateway}"
    checks.append(lambda: check_broker(config.broker, client_id=client_id, timeout=timeout))
    if (modbus := config.modbus) is not None:
        checks += [
            partial(check_modbus, port, device, modbus.profile(device.profile))
            for port in modbus.ports
            for device in port.devices
        ]
    if (zigbee := config.zigbee) is not None:  # Zigbee2MQTT's broker at the site
        checks.append(
            lambda: check_broker(
                zigbee.broker,
                client_id=f"{client_id}-z2m",
                timeout=timeout,
                name="Zigbee2MQTT 代理 broker",
            )
        )
    failures = sum(not report(check()) for check in checks)
    if failures:
        print(f"{failures} 项未通过 check(s) failed", file=stream)
        return 1
    print("全部通过 all checks passed", file=stream)
    return 0
