"""What the gateway adds to its `system` reading for the fleet view (edge/system.py): the Pi
firmware's under-voltage/throttling mask and the host's and the gateway's uptime, read from
fake kernel files under tmp_path."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from central.consumer.points import reading_point
from edge.system import HostProbe, parse_throttled
from qihe.contract import PayloadError, SystemReading, encode_payload, parse_reading

FIRMWARE = Path("devices/platform/soc/soc:firmware/get_throttled")


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def probe(
    root: Path,
    *,
    throttled: str | bytes | None = None,
    uptime: str | None = "12345.67 40000.00\n",
    ticks: Ticks | None = None,
) -> HostProbe:
    proc, sys = root / "proc", root / "sys"
    proc.mkdir(parents=True)
    sys.mkdir()
    (proc / "meminfo").write_text("MemTotal: 3884812 kB\nMemAvailable: 2950104 kB\n")
    (proc / "loadavg").write_text("0.42 0.35 0.30 2/231 4117\n")
    if uptime is not None:
        (proc / "uptime").write_text(uptime)
    if throttled is not None:
        (sys / FIRMWARE).parent.mkdir(parents=True)
        data = throttled if isinstance(throttled, bytes) else throttled.encode()
        (sys / FIRMWARE).write_bytes(data)
    state = root / "state"
    state.mkdir()
    return HostProbe(state, proc=proc, sys=sys, monotonic=ticks or Ticks())


# --- the throttling mask --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mask"),
    [
        ("0\n", 0),
        ("1\n", 1 << 0),  # under-voltage now
        ("2\n", 1 << 1),  # ARM frequency capped now
        ("4\n", 1 << 2),  # throttled now
        ("8\n", 1 << 3),  # soft temperature limit now
        ("10000\n", 1 << 16),  # under-voltage has occurred
        ("20000\n", 1 << 17),  # frequency capping has occurred
        ("40000\n", 1 << 18),  # throttling has occurred
        ("80000\n", 1 << 19),  # soft temperature limit has occurred
        ("50005\n", 0x50005),
        ("0x50005", 0x50005),  # as vcgencmd writes it
        ("E000F\n", 0xE000F),
        ("ffffffff", 0xFFFF_FFFF),
    ],
)
def test_the_firmware_mask_is_read_as_hexadecimal(text: str, mask: int, tmp_path: Path) -> None:
    assert parse_throttled(text) == mask
    assert probe(tmp_path, throttled=text).read().throttled == mask


@pytest.mark.parametrize(
    "text",
    ["", "\n", "throttled=0x0", "0x", "50005 junk", "-1", "1.5", "123456789", "0xg", "５"],
)
def test_garbage_in_the_firmware_file_is_refused_by_the_parser(text: str) -> None:
    with pytest.raises(ValueError, match="not a hexadecimal throttling mask"):
        parse_throttled(text)


def test_garbage_in_the_firmware_file_leaves_the_mask_out_logs_once_and_loses_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = probe(tmp_path, throttled=b"\xff\xfe garbage")

    first, second = host.read(), host.read()

    assert first.throttled is None and second.throttled is None
    assert first.mem_total_bytes == 3884812 * 1024 and first.host_uptime_s == 12345
    [record] = [r for r in caplog.records if r.name == "edge.system"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "供电/降频状态无法读取 throttling state not reported: cannot read "
    )
    assert "get_throttled" in record.getMessage()


def test_a_firmware_file_that_heals_is_read_again_and_logged_again_when_it_breaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = probe(tmp_path, throttled="junk")
    path = tmp_path / "sys" / FIRMWARE
    assert host.read().throttled is None
    path.write_text("50000\n")
    assert host.read().throttled == 0x50000
    path.write_text("junk again")
    assert host.read().throttled is None
    assert [r.getMessage().endswith("'junk'") for r in caplog.records] == [True, False]


def test_off_a_pi_there_is_no_firmware_file_and_no_mask_and_no_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot = probe(tmp_path).read()

    assert snapshot.throttled is None
    assert caplog.records == []


# --- uptimes --------------------------------------------------------------------------------


def test_the_host_uptime_is_the_first_number_of_proc_uptime(tmp_path: Path) -> None:
    assert probe(tmp_path, uptime="350735.47 234388.90\n").read().host_uptime_s == 350735


@pytest.mark.parametrize("uptime", [None, "", "soon", "-5 1", "nan 1", "inf 0"])
def test_an_unreadable_host_uptime_is_left_out(tmp_path: Path, uptime: str | None) -> None:
    snapshot = probe(tmp_path, uptime=uptime).read()
    assert snapshot.host_uptime_s is None
    assert snapshot.load_1m == 0.42  # the rest is read as ever


def test_the_gateway_uptime_counts_from_the_probes_making(tmp_path: Path) -> None:
    ticks = Ticks()
    host = probe(tmp_path, ticks=ticks)
    assert host.read().process_uptime_s == 0
    ticks.now += 3725.9
    assert host.read().process_uptime_s == 3725


def test_this_machine_has_a_host_uptime_and_a_gateway_uptime(tmp_path: Path) -> None:
    snapshot = HostProbe(tmp_path).read()
    assert snapshot.host_uptime_s is not None and snapshot.host_uptime_s > 0
    assert snapshot.process_uptime_s == 0


# --- on the wire ------------------------------------------------------------------------------


def test_the_new_fields_travel_in_the_system_reading_and_are_optional(tmp_path: Path) -> None:
    snapshot = probe(tmp_path, throttled="50005\n").read()
    fields = {
        "site": "shancheng-xinyuan2",
        "gateway": "gw1",
        "device": "gateway",
        "sensor": "gw1",
        "ts": datetime(2026, 11, 28, 1, 5, tzinfo=UTC),
    }
    reading = SystemReading(**fields, **asdict(snapshot))
    wire = json.loads(encode_payload(reading))

    assert (wire["throttled"], wire["host_uptime_s"], wire["process_uptime_s"]) == (
        0x50005,
        12345,
        0,
    )
    assert parse_reading(encode_payload(reading)) == reading
    older = {k: v for k, v in wire.items() if k not in ("throttled", "host_uptime_s")}
    assert parse_reading(json.dumps(older)).throttled is None  # type: ignore[union-attr]
    # The consumer's InfluxDB point is as before the fleet view (it writes none of them).
    assert "throttled" not in reading_point(reading).fields


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("throttled", None),
        ("throttled", -1),
        ("throttled", 0x1_0000_0000),
        ("throttled", "0x50005"),
        ("host_uptime_s", 1.5),
        ("process_uptime_s", None),
    ],
)
def test_a_bad_value_of_the_new_fields_is_refused(field: str, value: object) -> None:
    payload = {
        "schema": 1,
        "kind": "system",
        "site": "shancheng-xinyuan2",
        "gateway": "gw1",
        "device": "gateway",
        "sensor": "gw1",
        "ts": "2026-11-28T01:05:00Z",
        "disk_free_bytes": 1,
        "disk_total_bytes": 2,
        "mem_available_bytes": 3,
        "mem_total_bytes": 4,
        "load_1m": 0.1,
        field: value,
    }
    with pytest.raises(PayloadError, match=field):
        parse_reading(json.dumps(payload))
