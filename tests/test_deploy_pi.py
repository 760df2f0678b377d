"""The Pi deployment: systemd unit, install script, sd_notify watchdog, ``qihe gateway doctor``."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from gpiozero.pins.mock import MockFactory

from devstack import MosquittoProcess
from edge.config import BrokerConfig, GatewayConfig, GpioInputConfig, SerialPortConfig
from edge.doctor import (
    check_broker,
    check_clock,
    check_disk,
    check_gpio,
    check_outbox,
    check_serial,
    check_state_dir,
    run_doctor,
)
from edge.gateway import Gateway
from edge.outbox import Outbox
from edge.sdnotify import Notifier
from firmware_bridge.emulator import BookHouseEmulator, EmulatorConfig, PtyPort
from qihe_cli.main import main
from tests.mqtt_helpers import running, wait_until

ROOT = Path(__file__).resolve().parent.parent
PI = ROOT / "deploy" / "pi"
UNIT = PI / "qihe-gateway.service"
INSTALL = PI / "install.sh"


# -- the systemd unit ---------------------------------------------------------------


def unit_settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as {section: {key: [values in order]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"{path}: setting outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_unit_has_the_watchdog_restart_and_hardening_settings() -> None:
    unit = unit_settings(UNIT)
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["WatchdogSec"] == "30"
    assert (service["Restart"], service["RestartSec"]) == ("always", "5")
    assert {"StartLimitIntervalSec", "StartLimitBurst"} <= unit["Unit"].keys()
    assert (service["User"], service["Group"]) == ("qihe", "qihe")
    assert service["SupplementaryGroups"].split() == ["dialout", "gpio"]
    assert service["StateDirectory"] == service["ConfigurationDirectory"] == "qihe"
    assert service["ExecStart"] == (
        "/opt/qihe/venv/bin/qihe gateway run --config /etc/qihe/gateway.yaml"
    )
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[key] == "yes", key
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectKernelTunables"] == service["ProtectKernelModules"] == "yes"
    # adjtimex(2) tells the gateway whether NTP has set the clock; ProtectClock forbids it.
    assert "ProtectClock" not in service
    assert "PrivateDevices" not in service  # it would hide the serial ports
    assert service["DevicePolicy"] == "closed"
    assert unit["Service"]["DeviceAllow"] == [
        "char-ttyUSB rw",
        "char-ttyACM rw",
        "char-ttyAMA rw",
        "char-ttyS rw",
        "char-gpiochip rw",
    ]
    assert set(service["RestrictAddressFamilies"].split()) == {
        "AF_INET",
        "AF_INET6",
        "AF_UNIX",
        "AF_NETLINK",
    }
    # lgpio writes its notification pipes into the working directory.
    assert service["WorkingDirectory"] == "/var/lib/qihe"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_install_script_puts_the_program_where_the_unit_runs_it() -> None:
    script = INSTALL.read_text()
    assert "PREFIX=/opt/qihe" in script
    assert 'VENV="$PREFIX/venv"' in script
    assert "CONF_DIR=/etc/qihe" in script
    assert 'CONF="$CONF_DIR/gateway.yaml"' in script


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify also checks that ExecStart exists: point it at this checkout's qihe, the rest
    # of the unit is verified as shipped.
    qihe = Path(sys.executable).parent / "qihe"
    assert qihe.exists()
    text = UNIT.read_text().replace("/opt/qihe/venv/bin/qihe", str(qihe))
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # Unknown keys are only warned about, with exit code 0: no line may name the unit.
    complaints = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []


def test_journald_drop_in_keeps_a_capped_persistent_journal() -> None:
    journal = unit_settings(PI / "journald-qihe.conf")["Journal"]
    assert journal["Storage"] == ["persistent"]
    assert journal["SystemMaxUse"] == ["64M"]
    assert "SyncIntervalSec" in journal


def test_udev_rules_give_each_board_a_symlink_under_dev_qihe() -> None:
    rules = [
        line
        for line in (PI / "99-qihe-boards.rules").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(rules) == 3
    for rule in rules:
        assert 'SUBSYSTEM=="tty"' in rule
        assert re.search(r'SYMLINK\+="qihe/board-[a-z]+"', rule)
        assert 'GROUP="dialout"' in rule
        # udev keys are KEY=="match", KEY="assign" or KEY+="add", comma-separated.
        for part in rule.split(", "):
            assert re.fullmatch(r'[A-Z_]+(\{[A-Za-z_]+\})?(==|\+=|=)"[^"]*"', part), part


# -- the install script ------------------------------------------------------------------


def test_install_script_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(INSTALL)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert INSTALL.read_text().splitlines()[1:15].count("set -euo pipefail") == 1
    assert os.access(INSTALL, os.X_OK)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_install_script_passes_shellcheck() -> None:
    result = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_install_dry_run_prints_every_step_and_changes_nothing(tmp_path: Path) -> None:
    config = ROOT / "config" / "gateway-taoyuan.yaml"
    result = subprocess.run(
        [str(INSTALL), "--dry-run", "--config", str(config), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "dry run" in out
    for expected in (
        "+ install -d -o root -g qihe -m 0750 /etc/qihe",
        "+ install -d -o qihe -g qihe -m 0750 /var/lib/qihe",
        f"+ /opt/qihe/venv/bin/pip install --disable-pip-version-check --quiet --upgrade {ROOT}",
        f"+ install -o root -g qihe -m 0640 {config} /etc/qihe/gateway.yaml",
        "+ runuser -u qihe -- /opt/qihe/venv/bin/qihe gateway check --config "
        "/etc/qihe/gateway.yaml",
        f"+ install -o root -g root -m 0644 {UNIT} /etc/systemd/system/qihe-gateway.service",
        "+ systemctl enable qihe-gateway.service",
        "+ systemctl restart qihe-gateway.service",
    ):
        assert expected in out, expected
    assert "usermod --append --groups dialout\\,gpio qihe" in out
    steps = re.findall(r"^== (\d)\.", out, flags=re.M)
    assert steps == ["1", "2", "3", "4", "5", "6"]


def test_install_refuses_a_system_that_is_not_debian(tmp_path: Path) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text('ID=fedora\nID_LIKE="rhel centos"\n')
    result = subprocess.run(
        [str(INSTALL), "--dry-run", str(ROOT)],
        capture_output=True,
        text=True,
        env={**os.environ, "QIHE_OS_RELEASE": str(os_release)},
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "不是 Debian" in result.stderr
    assert "supports Debian and Raspberry Pi OS (bookworm) only" in result.stderr


# -- sd_notify ------------------------------------------------------------------------------


class NotifySocket:
    """systemd's end: an abstract AF_UNIX datagram socket, read from a thread with timestamps."""

    def __init__(self) -> None:
        self.name = f"@qihe-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.name[1:].encode())
        self.sock.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self._lock:
                self.received.append((time.monotonic(), data.decode()))

    def times(self, state: str) -> list[float]:
        with self._lock:
            return [t for t, text in self.received if state in text.split("\n")]

    def texts(self) -> list[str]:
        with self._lock:
            return [text for _, text in self.received]

    async def wait_for(self, state: str, *, after: float = 0.0, timeout: float = 10.0) -> float:
        async with asyncio.timeout(timeout):
            while not (times := [t for t in self.times(state) if t > after]):
                await asyncio.sleep(0.02)
        return times[0]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    sock = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", sock.name)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # ping every 0.5 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()


def gpio_gateway_config(broker: MosquittoProcess, prefix: str, state_dir: Path) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": "qibin-taoyuan",
            "gateway": "gw1",
            "state_dir": state_dir,
            "broker": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "gpio": [{"pin": 17, "kind": "door", "sensor": "front-door", "debounce": 0.02}],
            "outbox": {"commit_interval": 0.1},
            # Readings keep arriving, so every commit writes to the store.
            "link_report_interval": 0.2,
        }
    )


def test_notifier_without_notify_socket_does_nothing() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog_timeout is None


def test_notifier_ignores_a_watchdog_meant_for_another_process() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}
    assert Notifier.from_environ(env).watchdog_timeout == 30.0
    mine = Notifier.from_environ({**env, "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_timeout == 30.0
    other = Notifier.from_environ({**env, "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_timeout is None


async def test_gateway_says_ready_pings_and_stops_pinging_while_its_loop_is_blocked(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    mock_factory: MockFactory,
    notify_socket: NotifySocket,
) -> None:
    gateway = Gateway(
        gpio_gateway_config(mosquitto, topic_prefix, tmp_path), pin_factory=mock_factory
    )
    async with running(gateway):
        ready = await notify_socket.wait_for("READY=1")
        first = await notify_socket.wait_for("WATCHDOG=1", after=ready)
        await notify_socket.wait_for("WATCHDOG=1", after=first + 0.1)
        block: list[float] = []

        def stuck() -> None:  # a stuck gateway: nothing else runs on its event loop
            block.append(time.monotonic())
            time.sleep(3)
            block.append(time.monotonic())

        asyncio.get_running_loop().call_soon(stuck)
        await wait_until(lambda: len(block) == 2)
        blocked_at, unblocked_at = block
        resumed = await notify_socket.wait_for("WATCHDOG=1", after=unblocked_at, timeout=3)
        stopped_at = time.monotonic()
    stopping = await notify_socket.wait_for("STOPPING=1", after=stopped_at)

    during = [t for t in notify_socket.times("WATCHDOG=1") if blocked_at + 0.1 < t < unblocked_at]
    assert during == []
    assert resumed - unblocked_at < 1.5
    assert stopping > resumed
    texts = notify_socket.texts()
    assert "READY=1" in texts[1] and "STATUS=" in texts[1]  # after "opening the outbox"
    assert any("event loop stalled" in text for text in texts)


async def test_watchdog_stops_pinging_while_an_outbox_commit_hangs(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    mock_factory: MockFactory,
    notify_socket: NotifySocket,
) -> None:
    config = gpio_gateway_config(mosquitto, topic_prefix, tmp_path)
    # A commit that waits this long for the lock is one that does not come back.
    outbox = config.outbox.model_copy(update={"busy_timeout": timedelta(seconds=30)})
    gateway = Gateway(config.model_copy(update={"outbox": outbox}), pin_factory=mock_factory)
    async with running(gateway):
        ready = await notify_socket.wait_for("READY=1")
        await notify_socket.wait_for("WATCHDOG=1", after=ready)
        # Another writer holds the store: the loop stays healthy, the commit hangs.
        holder = sqlite3.connect(config.outbox_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        await asyncio.sleep(3.5)
        holder.execute("ROLLBACK")
        released_at = time.monotonic()
        holder.close()
        resumed = await notify_socket.wait_for("WATCHDOG=1", after=released_at, timeout=3)

    # Stale after 2 ping intervals (1 s); a ping may still leave in that grace period.
    silent = [t for t in notify_socket.times("WATCHDOG=1") if locked_at + 1.5 < t < released_at]
    assert silent == []
    assert resumed - released_at < 1.5
    assert any("not reporting: outbox" in text for text in notify_socket.texts())


async def test_watchdog_keeps_pinging_while_failing_commits_are_retried(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    mock_factory: MockFactory,
    notify_socket: NotifySocket,
) -> None:
    """A locked or full store fails each commit within its busy timeout and is retried: the
    gateway is alive, its readings bounded in memory; a restart would only lose them."""
    config = gpio_gateway_config(mosquitto, topic_prefix, tmp_path)
    outbox = config.outbox.model_copy(update={"busy_timeout": timedelta(milliseconds=100)})
    gateway = Gateway(config.model_copy(update={"outbox": outbox}), pin_factory=mock_factory)
    async with running(gateway):
        ready = await notify_socket.wait_for("READY=1")
        await notify_socket.wait_for("WATCHDOG=1", after=ready)
        holder = sqlite3.connect(config.outbox_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        await wait_until(lambda: gateway.outbox.failing_commits >= 3)
        await asyncio.sleep(3.5)
        failing = gateway.outbox.failing_commits
        holder.execute("ROLLBACK")
        released_at = time.monotonic()
        holder.close()
        await wait_until(lambda: gateway.outbox.failing_commits == 0)

    assert failing >= 10
    pinged = [t for t in notify_socket.times("WATCHDOG=1") if locked_at + 1.5 < t < released_at]
    assert len(pinged) >= 4  # every 0.5 s throughout
    assert not any("not reporting: outbox" in text for text in notify_socket.texts())
    assert any("store failing" in text for text in notify_socket.texts())


# -- the doctor: each check passing and failing -----------------------------------------------


def test_doctor_config_check_stops_at_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "gateway.yaml"
    broken.write_text("site: qibin-taoyuan\nbroker: {host: x, port: 99999}\n")
    out = io.StringIO()
    assert run_doctor(broken, out=out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("✗ 配置 config: ")
    assert "broker.port: Input should be less than or equal to 65535" in out.getvalue()
    assert "fix the config file" in out.getvalue()
    assert not any(line.startswith(("✓", "!")) for line in lines)


def test_doctor_command_exits_1_on_a_missing_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gateway", "doctor", "--config", str(tmp_path / "nope.yaml")]) == 1
    assert "✗ 配置 config:" in capsys.readouterr().out


def test_doctor_passes_a_healthy_site_and_never_prints_the_password(
    mosquitto: MosquittoProcess, tmp_path: Path, mock_factory: MockFactory
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": "qibin-taoyuan",
                "gateway": "gw1",
                "state_dir": str(tmp_path / "state"),
                # Mosquitto's fixture allows anonymous clients and ignores the password.
                "broker": {
                    "host": mosquitto.host,
                    "port": mosquitto.port,
                    "username": "gw1",
                    "password": "s3cret-pw",
                },
                "gpio": [{"pin": 17, "kind": "door", "sensor": "front-door"}],
            }
        )
    )
    config.chmod(0o640)  # it holds a password
    (tmp_path / "state").mkdir()
    out = io.StringIO()
    code = run_doctor(
        config,
        timeout=3,
        out=out,
        pin_factory=mock_factory,
        clock_trust=SimpleNamespace(synchronised=lambda: True),
        statvfs=lambda _p: SimpleNamespace(f_bavail=50, f_blocks=100, f_frsize=2**30),
    )
    text = out.getvalue()
    assert code == 0, text
    names = [line.split(":")[0] for line in text.splitlines()[:-1]]
    assert names == [
        "✓ 配置 config",
        "✓ 状态目录 state folder",
        "✓ 磁盘空间 disk space",
        "✓ 发件箱 outbox",
        "✓ 代理拒绝 broker refusals",
        "✓ 时钟同步 clock",
        "✓ GPIO 17 (door front-door)",
        "✓ MQTT 代理 broker",
    ]
    assert text.splitlines()[-1] == "全部通过 all checks passed"
    assert "s3cret-pw" not in text


def test_doctor_state_folder_writable_vs_missing(tmp_path: Path) -> None:
    assert check_state_dir(tmp_path).outcome == "pass"
    missing = check_state_dir(tmp_path / "absent")
    assert missing.outcome == "fail"
    assert "不存在 does not exist" in missing.line()
    assert "install.sh" in missing.line()


def test_doctor_disk_free_vs_nearly_full(tmp_path: Path) -> None:
    assert check_disk(tmp_path).ok  # this machine's disk (pass, or a warning below 10 %)

    def fake(free: int) -> Callable[[Path], object]:
        return lambda _p: SimpleNamespace(f_bavail=free, f_blocks=1000, f_frsize=4096)

    assert check_disk(tmp_path, statvfs=fake(500)).outcome == "pass"
    assert check_disk(tmp_path, statvfs=fake(50)).outcome == "warn"  # 5 %
    full = check_disk(tmp_path, statvfs=fake(10))  # 1 %
    assert full.outcome == "fail"
    assert "(1%)" in full.line()
    assert "journalctl --vacuum-size" in full.line()


async def test_doctor_outbox_readable_vs_garbage(tmp_path: Path) -> None:
    assert check_outbox(tmp_path / "outbox.sqlite3").outcome == "pass"  # not created yet
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_readings=100)
    await outbox.open()
    await outbox.close()
    assert check_outbox(tmp_path / "outbox.sqlite3").line().endswith("待发 0 readings queued")
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database at all" * 100)
    assert check_outbox(garbage).outcome == "fail"


def test_doctor_clock_synchronised_vs_not() -> None:
    assert check_clock(SimpleNamespace(synchronised=lambda: True)).outcome == "pass"
    unsynced = check_clock(SimpleNamespace(synchronised=lambda: False))
    assert unsynced.outcome == "fail"
    assert "timedatectl status" in unsynced.line()


async def test_doctor_serial_port_with_a_board_speaking_the_protocol(tmp_path: Path) -> None:
    emulator = BookHouseEmulator(EmulatorConfig(seats=4, simulate=False, report_interval_s=3600))
    async with PtyPort(tmp_path / "board-a") as port, emulator.attach(port):
        config = SerialPortConfig(path=str(tmp_path / "board-a"), device="board-a")
        result = await asyncio.to_thread(check_serial, config, timeout=3)
    assert result.outcome == "pass", result.line()
    # pyserial empties the input at open: the board's answer to our PING is what we read.
    assert "ACK" in result.detail


def test_doctor_serial_port_where_nothing_speaks_or_nothing_is_plugged(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        silent = check_serial(
            SerialPortConfig(path=os.ttyname(slave), device="board-a"), timeout=0.5
        )
    finally:
        os.close(master)
        os.close(slave)
    assert silent.outcome == "fail"
    assert "0.5s 内无应答 no frame within 0.5s" in silent.line()
    missing = check_serial(SerialPortConfig(path=str(tmp_path / "gone"), device="b"), timeout=1)
    assert missing.outcome == "fail"
    assert "不存在 not found" in missing.line()
    assert "/dev/serial/by-id/" in missing.line()


def test_doctor_gpio_pin_readable_vs_a_pin_that_raises(mock_factory: MockFactory) -> None:
    door = GpioInputConfig(pin=17, kind="door", sensor="front-door", pull_up=True)
    ok = check_gpio(door, pin_factory=mock_factory)
    assert ok.line() == "✓ GPIO 17 (door front-door): 高 high → 开 open"
    bad = check_gpio(door.model_copy(update={"pin": "GPIO99"}), pin_factory=mock_factory)
    assert bad.outcome == "fail"
    assert "无法读取 cannot read" in bad.line()
    assert "gpio group" in bad.line()


def test_doctor_broker_reachable_vs_closed_port(mosquitto: MosquittoProcess) -> None:
    good = check_broker(
        BrokerConfig(host=mosquitto.host, port=mosquitto.port), client_id="doc-ok", timeout=3
    )
    assert good.outcome == "pass", good.line()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    bad = check_broker(BrokerConfig(host="127.0.0.1", port=closed_port), client_id="x", timeout=2)
    assert bad.outcome == "fail"
    assert "无法连接 unreachable" in bad.line()


def test_doctor_broker_tells_refused_credentials_from_unreachable() -> None:
    # A broker that answers every CONNECT with MQTT 5 CONNACK "bad user name or password".
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(bytes([0x20, 0x03, 0x00, 0x86, 0x00]))
            conn.recv(1024)

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        result = check_broker(
            BrokerConfig(host="127.0.0.1", port=port, username="gw1", password="wrong-pw"),
            client_id="doc",
            timeout=3,
        )
    finally:
        thread.join(5)
        server.close()
    assert result.outcome == "fail"
    assert "as gw1 凭据被拒绝 credentials refused (CONNACK 134)" in result.line()
    assert "wrong-pw" not in result.line()


def test_deploy_doc_walks_through_the_gateway_and_points_to_the_central_server() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    assert "## 网关 The gateway (Raspberry Pi)" in doc
    central = doc[doc.index("## Central server") :]
    assert "(deploy-central.md)" in central
    assert (ROOT / "docs" / "deploy-central.md").is_file()
    # The doctor's lines in the doc are in the format the doctor prints.
    example = [line for line in doc.splitlines() if line.startswith(("✓ ", "✗ "))]
    assert len(example) == 10  # the example run (9) and the broker-refusals failure
    assert all(re.match(r"[✓✗] [^:]+: .+", line) for line in example)
