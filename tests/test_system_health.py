"""The gateway's own host: HostProbe on fake and real kernel files, and the `system` reading."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from central.consumer.points import reading_point
from devstack import MosquittoProcess
from edge.config import GatewayConfig
from edge.errors import EdgeError
from edge.gateway import Gateway
from edge.system import HostProbe, SystemProbeError, SystemSnapshot
from qihe.contract import (
    PERIODIC_KINDS,
    RETAINED_KINDS,
    SystemReading,
    encode_payload,
    parse_reading,
)
from tests.mqtt_helpers import Recorder, running

MEMINFO = """\
MemTotal:        3884812 kB
MemFree:          912340 kB
MemAvailable:    2950104 kB
Buffers:           81236 kB
Cached:          1840096 kB
"""


def fake_host(
    root: Path,
    *,
    meminfo: str | None = MEMINFO,
    loadavg: str | None = "0.42 0.35 0.30 2/231 4117\n",
    thermal: str | None = None,
) -> HostProbe:
    """A /proc and /sys tree under ``root`` holding only what is given (None: no such file)."""
    proc, sys = root / "proc", root / "sys"
    proc.mkdir(parents=True)
    sys.mkdir()
    if meminfo is not None:
        (proc / "meminfo").write_text(meminfo)
    if loadavg is not None:
        (proc / "loadavg").write_text(loadavg)
    if thermal is not None:
        zone = sys / "class" / "thermal" / "thermal_zone0"
        zone.mkdir(parents=True)
        (zone / "temp").write_text(thermal)
    state_dir = root / "state"
    state_dir.mkdir()
    return HostProbe(state_dir, proc=proc, sys=sys)


# --- HostProbe on fake kernel files -------------------------------------------------


def test_memory_and_load_come_from_proc(tmp_path: Path) -> None:
    snapshot = fake_host(tmp_path).read()
    assert snapshot.mem_total_bytes == 3884812 * 1024
    assert snapshot.mem_available_bytes == 2950104 * 1024
    assert snapshot.load_1m == 0.42


def test_disk_is_the_filesystem_holding_the_state_dir(tmp_path: Path) -> None:
    snapshot = fake_host(tmp_path).read()
    st = os.statvfs(tmp_path / "state")
    assert snapshot.disk_total_bytes == st.f_blocks * st.f_frsize
    assert 0 < snapshot.disk_free_bytes <= snapshot.disk_total_bytes


def test_a_pi_thermal_zone_in_millidegrees_becomes_degrees_celsius(tmp_path: Path) -> None:
    assert fake_host(tmp_path, thermal="48312\n").read().cpu_temp_c == 48.312


def test_a_machine_without_a_thermal_zone_has_no_cpu_temperature(tmp_path: Path) -> None:
    assert fake_host(tmp_path, thermal=None).read().cpu_temp_c is None


@pytest.mark.parametrize(
    "thermal",
    [
        pytest.param("", id="empty"),
        pytest.param("N/A\n", id="not-a-number"),
        pytest.param("-273150\n", id="driver-error-value"),
    ],
)
def test_an_unreadable_thermal_zone_means_no_cpu_temperature_not_no_reading(
    tmp_path: Path, thermal: str
) -> None:
    snapshot = fake_host(tmp_path, thermal=thermal).read()
    assert snapshot.cpu_temp_c is None
    assert snapshot.mem_total_bytes == 3884812 * 1024


@pytest.mark.parametrize(
    ("meminfo", "complaint"),
    [
        pytest.param(None, r"cannot read .*/proc/meminfo", id="missing-file"),
        pytest.param("", r"/proc/meminfo: no MemAvailable or MemTotal line", id="empty"),
        pytest.param(
            "MemTotal:        3884812 kB\n",
            r"/proc/meminfo: no MemAvailable line",
            id="old-kernel-without-memavailable",
        ),
        pytest.param(
            MEMINFO.replace("2950104 kB", "lots kB"),
            r"/proc/meminfo: cannot read 'MemAvailable:    lots kB'",
            id="not-a-number",
        ),
        pytest.param(
            MEMINFO.replace("3884812 kB", "3884812 MB"),
            r"/proc/meminfo: cannot read 'MemTotal:        3884812 MB'",
            id="unknown-unit",
        ),
        pytest.param(
            b"MemTotal: \xff\xfe kB\n".decode("latin-1"),
            r"cannot read .*/proc/meminfo",
            id="not-ascii",
        ),
    ],
)
def test_garbled_meminfo_is_a_probe_error_naming_the_file(
    tmp_path: Path, meminfo: str | None, complaint: str
) -> None:
    with pytest.raises(SystemProbeError, match=complaint) as caught:
        fake_host(tmp_path, meminfo=meminfo).read()
    assert isinstance(caught.value, EdgeError)
    assert isinstance(caught.value, OSError)


@pytest.mark.parametrize(
    "loadavg",
    [
        pytest.param(None, id="missing-file"),
        pytest.param("", id="empty"),
        pytest.param("high 0.35 0.30 2/231 4117\n", id="not-a-number"),
        pytest.param("nan 0.35 0.30 2/231 4117\n", id="nan"),
        pytest.param("-1.0 0.35 0.30 2/231 4117\n", id="negative"),
    ],
)
def test_garbled_loadavg_is_a_probe_error_naming_the_file(
    tmp_path: Path, loadavg: str | None
) -> None:
    with pytest.raises(SystemProbeError, match=r"/proc/loadavg"):
        fake_host(tmp_path, loadavg=loadavg).read()


def test_a_missing_state_dir_is_a_probe_error_naming_it(tmp_path: Path) -> None:
    probe = HostProbe(tmp_path / "nowhere", proc=Path("/proc"), sys=tmp_path)
    with pytest.raises(SystemProbeError, match=r"cannot stat the filesystem of .*/nowhere"):
        probe.read()


# --- HostProbe on this machine ------------------------------------------------------


def test_host_probe_on_this_machine_returns_sane_numbers(tmp_path: Path) -> None:
    snapshot = HostProbe(tmp_path).read()
    assert snapshot.disk_total_bytes > snapshot.disk_free_bytes > 0
    assert snapshot.mem_total_bytes > snapshot.mem_available_bytes > 0
    assert snapshot.load_1m >= 0
    assert snapshot.cpu_temp_c is None or 0 <= snapshot.cpu_temp_c < 150


# --- the wire and InfluxDB ----------------------------------------------------------


def test_system_is_periodic_telemetry_not_retained_state() -> None:
    assert "system" in PERIODIC_KINDS
    assert "system" not in RETAINED_KINDS


def test_a_system_reading_without_cpu_temperature_leaves_the_field_out() -> None:
    reading = SystemReading(
        site="qibin-taoyuan",
        gateway="gw1",
        device="gateway",
        sensor="gw1",
        ts=datetime(2026, 11, 28, 1, 5, tzinfo=UTC),
        disk_free_bytes=1,
        disk_total_bytes=2,
        mem_available_bytes=3,
        mem_total_bytes=4,
        load_1m=0.0,
    )
    payload = encode_payload(reading)
    assert "cpu_temp_c" not in json.loads(payload)
    assert parse_reading(payload) == reading
    assert "cpu_temp_c" not in reading_point(reading).fields


# --- the gateway publishes it -------------------------------------------------------

FAKE = SystemSnapshot(
    disk_free_bytes=1_500_000_000,
    disk_total_bytes=31_268_536_320,
    mem_available_bytes=180_000_000,
    mem_total_bytes=3_978_047_488,
    cpu_temp_c=71.5,
    load_1m=3.25,
)


class FakeProbe:
    """Returns :data:`FAKE`, after failing the first ``failures`` reads."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.reads = 0
        self._lock = threading.Lock()

    def read(self) -> SystemSnapshot:
        with self._lock:  # called from worker threads
            self.reads += 1
            if self.reads <= self.failures:
                raise SystemProbeError("/proc/meminfo: no MemAvailable line")
        return FAKE


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()


def health_config(broker: MosquittoProcess, prefix: str, state_dir: Path) -> GatewayConfig:
    # A gateway needs one source; a GPIO input on mock pins is the quietest.
    return GatewayConfig.model_validate(
        {
            "site": "qixian-qiyuan-daycare",
            "gateway": "gw1",
            "state_dir": state_dir,
            "broker": {"host": broker.host, "port": broker.port, "topic_prefix": prefix},
            "gpio": [{"pin": 17, "kind": "door", "sensor": "entrance", "debounce": 0.01}],
            "outbox": {"commit_interval": 0.02},
            "link_report_interval": 0.2,
        }
    )


async def test_gateway_publishes_its_host_health_as_a_periodic_system_reading(
    mosquitto: MosquittoProcess, topic_prefix: str, tmp_path: Path, mock_factory: MockFactory
) -> None:
    topic = f"{topic_prefix}/v1/qixian-qiyuan-daycare/gw1/system/gw1"
    recorder = Recorder(mosquitto, f"{topic_prefix}/v1/+/+/system/+")
    gateway = Gateway(
        health_config(mosquitto, topic_prefix, tmp_path),
        pin_factory=mock_factory,
        system_probe=FakeProbe(),
    )
    try:
        async with running(gateway):
            got = await recorder.until(lambda ms: len(ms) >= 1)
            # Nothing is retained: a late subscriber's first system message is a live one.
            late = Recorder(mosquitto, topic)
            try:
                late_got = await late.until(lambda ms: len(ms) >= 1)
            finally:
                late.close()
    finally:
        recorder.close()
    assert got[0].topic == topic
    reading = parse_reading(got[0].payload)
    assert isinstance(reading, SystemReading)
    assert (reading.site, reading.gateway, reading.device, reading.sensor) == (
        "qixian-qiyuan-daycare",
        "gw1",
        "gateway",
        "gw1",
    )
    assert (
        reading.disk_free_bytes,
        reading.disk_total_bytes,
        reading.mem_available_bytes,
        reading.mem_total_bytes,
        reading.cpu_temp_c,
        reading.load_1m,
    ) == (1_500_000_000, 31_268_536_320, 180_000_000, 3_978_047_488, 71.5, 3.25)
    assert reading.seq is None
    assert [m.retain for m in late_got] == [False] * len(late_got)


async def test_a_failing_probe_is_logged_once_and_skipped_until_it_reads_again(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    mock_factory: MockFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge.gateway")
    probe = FakeProbe(failures=3)
    recorder = Recorder(mosquitto, f"{topic_prefix}/v1/+/+/+/gw1")
    gateway = Gateway(
        health_config(mosquitto, topic_prefix, tmp_path),
        pin_factory=mock_factory,
        system_probe=probe,
    )
    try:
        async with running(gateway):
            got = await recorder.until(lambda ms: any("/system/" in m.topic for m in ms))
    finally:
        recorder.close()
    kinds = [m.topic.split("/")[-2] for m in got]
    # Every interval sent its outbox report; the first three had no system reading.
    assert kinds.index("system") == 4
    assert kinds[:4] == ["outbox"] * 4
    health = [
        r for r in caplog.records if r.name == "edge.gateway" and "system health" in r.getMessage()
    ]
    assert [(r.levelname, r.getMessage()) for r in health] == [
        ("WARNING", "system health not reported: /proc/meminfo: no MemAvailable line"),
        ("INFO", "system health readable again"),
    ]
