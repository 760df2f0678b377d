"""Line protocol encoding: escaping, field types, refusals, and the exact line of every reading."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from central.consumer.points import reading_line, reading_point, status_line, status_point
from central.errors import LineProtocolError
from central.influx import FieldValue, Point, datetime_to_ns, encode_line
from devstack import InfluxdProcess
from qihe.contract import parse_reading, parse_status

# (name, measurement, tag value, string field value, expected line)
ESCAPING = [
    ("plain", "seat", "board-a.3", "ok", 'seat,t=board-a.3 s="ok" 1'),
    ("comma", "seat", "a,b", "a,b", 'seat,t=a\\,b s="a,b" 1'),
    ("space", "seat", "a b", "a b", 'seat,t=a\\ b s="a b" 1'),
    ("equals", "seat", "a=b", "a=b", 'seat,t=a\\=b s="a=b" 1'),
    ("all three", "seat", "x,y=z w", "x,y=z w", 'seat,t=x\\,y\\=z\\ w s="x,y=z w" 1'),
    ("double quote", "seat", 'say "hi"', 'say "hi"', 'seat,t=say\\ "hi" s="say \\"hi\\"" 1'),
    ("backslash", "seat", "a\\b", "a\\b", 'seat,t=a\\b s="a\\\\b" 1'),
    ("slash", "seat", "a/b", "a/b", 'seat,t=a/b s="a/b" 1'),
    ("chinese", "seat", "座位1", "淇河书屋", 'seat,t=座位1 s="淇河书屋" 1'),
    ("measurement comma space", "my seat,x", "v", "v", 'my\\ seat\\,x,t=v s="v" 1'),
    ("measurement equals kept", "a=b", "v", "v", 'a=b,t=v s="v" 1'),
    ("newline in string", "seat", "v", "a\nb", 'seat,t=v s="a\nb" 1'),
]


@pytest.mark.parametrize(
    ("measurement", "tag", "text", "expected"),
    [case[1:] for case in ESCAPING],
    ids=[case[0] for case in ESCAPING],
)
def test_escaping(measurement: str, tag: str, text: str, expected: str) -> None:
    assert encode_line(Point(measurement, {"t": tag}, {"s": text}, 1)) == expected


def test_keys_are_escaped_like_tag_values() -> None:
    point = Point("m", {"tag key,=": "v"}, {"field key,=": 1}, None)
    assert encode_line(point) == "m,tag\\ key\\,\\==v field\\ key\\,\\==1i"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "0i"),
        (-42, "-42i"),
        (2**63 - 1, "9223372036854775807i"),
        (True, "true"),
        (False, "false"),
        (0.5, "0.5"),
        (-1e-05, "-1e-05"),
        ("", '""'),
        ('\\"', '"\\\\\\""'),
    ],
    ids=repr,
)
def test_field_types(value: FieldValue, encoded: str) -> None:
    assert encode_line(Point("m", {}, {"f": value}, None)) == f"m f={encoded}"


def test_tags_are_sorted_and_fields_keep_their_order() -> None:
    point = Point("m", {"sensor": "s", "device": "d", "site": "x"}, {"b": 1, "a": 2}, 7)
    assert encode_line(point) == "m,device=d,sensor=s,site=x b=1i,a=2i 7"


REFUSED = [
    ("empty measurement", Point("", {}, {"f": 1}), "measurement is empty"),
    ("comment measurement", Point("#m", {}, {"f": 1}), "comment"),
    ("no fields", Point("m", {"t": "v"}, {}), "no fields"),
    ("empty tag value", Point("m", {"t": ""}, {"f": 1}), "tag value of 't' is empty"),
    ("empty tag key", Point("m", {"": "v"}, {"f": 1}), "tag key is empty"),
    ("newline in tag", Point("m", {"t": "a\nb"}, {"f": 1}), "line break"),
    ("carriage return", Point("m\r", {}, {"f": 1}), "line break"),
    ("trailing backslash", Point("m", {"t": "a\\"}, {"f": 1}), "backslash"),
    ("tag key time", Point("m", {"time": "1"}, {"f": 1}), "reserved"),
    ("field key time", Point("m", {}, {"time": 1}), "reserved"),
    ("int too big", Point("m", {}, {"f": 2**63}), "64-bit"),
    ("nan", Point("m", {}, {"f": float("nan")}), "finite"),
    ("infinity", Point("m", {}, {"f": float("inf")}), "finite"),
    ("timestamp too big", Point("m", {}, {"f": 1}, 2**63), "64-bit"),
]


@pytest.mark.parametrize(
    ("point", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_unencodable_points_are_refused(point: Point, message: str) -> None:
    with pytest.raises(LineProtocolError, match=message):
        encode_line(point)


@pytest.mark.parametrize(
    ("moment", "ns"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), 0),
        (datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=UTC), 1_795_827_723_456_789_000),
        # The same instant written in Hebi's local time (UTC+8).
        (
            datetime(2026, 11, 28, 9, 2, 3, 456789, tzinfo=timezone(timedelta(hours=8))),
            1_795_827_723_456_789_000,
        ),
        (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), -1_000),
    ],
)
def test_timestamps_are_exact_nanoseconds(moment: datetime, ns: int) -> None:
    assert datetime_to_ns(moment) == ns


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(LineProtocolError, match="no time zone"):
        datetime_to_ns(datetime(2026, 1, 1))


# The reading examples of docs/mqtt.md and the line each one writes.
TAGS = "device=board-a,gateway=gw1,sensor=board-a"
READING_LINES = [
    (
        '{"schema": 1, "kind": "seat", "site": "qibin-taoyuan", "gateway": "gw1",'
        ' "device": "board-a", "sensor": "board-a.3", "ts": "2026-11-28T01:02:03.456789Z",'
        ' "seq": 812, "occupied": true}',
        "seat,device=board-a,gateway=gw1,sensor=board-a.3,site=qibin-taoyuan"
        " occupied=1i,seq=812i 1795827723456789000",
    ),
    (
        '{"schema": 1, "kind": "people", "site": "qibin-taoyuan", "gateway": "gw1",'
        ' "device": "board-a", "sensor": "board-a.1", "ts": "2026-11-28T01:02:04Z",'
        ' "seq": 813, "in_total": 130, "out_total": 121}',
        "people,device=board-a,gateway=gw1,sensor=board-a.1,site=qibin-taoyuan"
        " in_total=130i,out_total=121i,seq=813i 1795827724000000000",
    ),
    (
        '{"schema": 1, "kind": "door", "site": "qibin-taoyuan", "gateway": "gw1",'
        ' "device": "gpio", "sensor": "back-door", "ts": "2026-11-28T01:02:05Z", "open": false}',
        "door,device=gpio,gateway=gw1,sensor=back-door,site=qibin-taoyuan"
        " open=0i 1795827725000000000",
    ),
    (
        '{"schema": 1, "kind": "motion", "site": "qixian-qiyuan-daycare", "gateway": "gw1",'
        ' "device": "gpio", "sensor": "hall-pir", "ts": "2026-11-28T01:02:06Z", "motion": true}',
        "motion,device=gpio,gateway=gw1,sensor=hall-pir,site=qixian-qiyuan-daycare"
        " motion=1i 1795827726000000000",
    ),
    (
        '{"schema": 1, "kind": "heartbeat", "site": "qibin-taoyuan", "gateway": "gw1",'
        ' "device": "board-a", "sensor": "board-a", "ts": "2026-11-28T01:03:00Z", "seq": 820,'
        ' "uptime_s": 86400, "supply_mv": 3710}',
        f"heartbeat,{TAGS},site=qibin-taoyuan"
        " uptime_s=86400i,supply_mv=3710i,seq=820i 1795827780000000000",
    ),
    (
        '{"schema": 1, "kind": "fault", "site": "qibin-taoyuan", "gateway": "gw1",'
        ' "device": "board-a", "sensor": "board-a.7", "ts": "2026-11-28T01:04:00Z", "seq": 830,'
        ' "code": "stuck", "active": true}',
        "fault,device=board-a,gateway=gw1,sensor=board-a.7,site=qibin-taoyuan"
        ' code="stuck",active=1i,seq=830i 1795827840000000000',
    ),
    (
        '{"schema": 1, "kind": "fault", "site": "qibin-taoyuan", "gateway": "gw1",'
        ' "device": "board-a", "sensor": "board-a.seat.7", "ts": "2026-11-28T01:04:00Z",'
        ' "seq": 830, "code": "stuck", "active": true, "target_kind": "seat",'
        ' "target": "board-a.7"}',
        "fault,device=board-a,gateway=gw1,sensor=board-a.seat.7,site=qibin-taoyuan"
        ' code="stuck",active=1i,target_kind="seat",target="board-a.7",seq=830i'
        " 1795827840000000000",
    ),
    (
        '{"schema": 1, "kind": "device", "site": "qibin-taoyuan", "gateway": "gw1",'
        ' "device": "board-a", "sensor": "board-a", "ts": "2026-11-28T00:00:01Z", "seq": 0,'
        ' "firmware": "1.0.0", "report_interval_s": 60,'
        ' "sensors": ["seat.1", "seat.2", "people.1", "door.1"]}',
        f"device,{TAGS},site=qibin-taoyuan"
        ' firmware="1.0.0",report_interval_s=60i,sensors="seat.1,seat.2,people.1,door.1",seq=0i'
        " 1795824001000000000",
    ),
    (
        '{"schema": 1, "kind": "link", "site": "qibin-taoyuan", "gateway": "gw1",'
        ' "device": "board-a", "sensor": "board-a", "ts": "2026-11-28T01:05:00Z",'
        ' "frames": 5120, "crc_errors": 3, "malformed": 1, "lost": 2, "duplicates": 0,'
        ' "reconnects": 1}',
        f"link,{TAGS},site=qibin-taoyuan"
        " frames=5120i,crc_errors=3i,malformed=1i,lost=2i,duplicates=0i,reconnects=1i"
        " 1795827900000000000",
    ),
    (
        '{"schema": 1, "kind": "outbox", "site": "qibin-taoyuan", "gateway": "gw1",'
        ' "device": "gateway", "sensor": "gw1", "ts": "2026-11-28T01:05:00Z",'
        ' "queued": 12840, "dropped_periodic": 310, "dropped_state": 0, "dropped_clock": 0}',
        "outbox,device=gateway,gateway=gw1,sensor=gw1,site=qibin-taoyuan"
        " queued=12840i,dropped_periodic=310i,dropped_state=0i,dropped_clock=0i"
        " 1795827900000000000",
    ),
    (
        '{"schema": 1, "kind": "system", "site": "qibin-taoyuan", "gateway": "gw1",'
        ' "device": "gateway", "sensor": "gw1", "ts": "2026-11-28T01:05:00Z",'
        ' "disk_free_bytes": 21474836480, "disk_total_bytes": 31268536320,'
        ' "mem_available_bytes": 3221225472, "mem_total_bytes": 4124626944,'
        ' "cpu_temp_c": 48.312, "load_1m": 0.42}',
        "system,device=gateway,gateway=gw1,sensor=gw1,site=qibin-taoyuan"
        " disk_free_bytes=21474836480i,disk_total_bytes=31268536320i,"
        "mem_available_bytes=3221225472i,mem_total_bytes=4124626944i,cpu_temp_c=48.312,load_1m=0.42"
        " 1795827900000000000",
    ),
    (
        '{"schema": 1, "kind": "air", "site": "qibin-taoyuan", "gateway": "gw1",'
        ' "device": "air-1", "sensor": "air-1", "ts": "2026-11-28T01:06:00Z",'
        ' "temperature_c": 22.4, "humidity_pct": 41.5, "co2_ppm": 870}',
        "air,device=air-1,gateway=gw1,sensor=air-1,site=qibin-taoyuan"
        " temperature_c=22.4,humidity_pct=41.5,co2_ppm=870.0 1795827960000000000",
    ),
    (
        '{"schema": 1, "kind": "battery", "site": "qibin-taoyuan", "gateway": "gw1",'
        ' "device": "front-door", "sensor": "front-door", "ts": "2026-11-28T01:07:00Z",'
        ' "percent": 64}',
        "battery,device=front-door,gateway=gw1,sensor=front-door,site=qibin-taoyuan"
        " percent=64i 1795828020000000000",
    ),
]


@pytest.mark.parametrize(
    ("payload", "line"), READING_LINES, ids=[p.split('"kind": "')[1][:6] for p, _ in READING_LINES]
)
def test_exact_line_of_each_reading_kind(payload: str, line: str) -> None:
    assert encode_line(reading_point(parse_reading(payload))) == line


def test_every_reading_kind_has_a_line_test() -> None:
    from qihe.contract import READING_KINDS

    tested = {encode_line(reading_point(parse_reading(p))).split(",")[0] for p, _ in READING_LINES}
    assert tested == set(READING_KINDS)


@pytest.mark.parametrize(
    "payload",
    [p for p, _ in READING_LINES],
    ids=[p.split('"kind": "')[1][:6] for p, _ in READING_LINES],
)
@pytest.mark.parametrize("seq", ["as sent", None, 0, 65535], ids=str)
def test_the_consumers_fast_line_is_the_encoded_point_byte_for_byte(
    payload: str, seq: str | int | None
) -> None:
    reading = parse_reading(payload)
    if seq != "as sent":
        reading = reading.model_copy(update={"seq": seq})
    assert reading_line(reading).encode() == encode_line(reading_point(reading)).encode()


@pytest.mark.parametrize("occupied", [True, False])
def test_the_fast_line_of_a_seat_keeps_its_state_and_timestamp(occupied: bool) -> None:
    reading = parse_reading(READING_LINES[0][0]).model_copy(update={"occupied": occupied})
    assert reading_line(reading) == (
        "seat,device=board-a,gateway=gw1,sensor=board-a.3,site=qibin-taoyuan"
        f" occupied={int(occupied)}i,seq=812i 1795827723456789000"
    )


def test_a_reading_too_far_in_the_future_for_nanoseconds_is_refused_by_the_fast_line() -> None:
    reading = parse_reading(READING_LINES[0][0]).model_copy(
        update={"ts": datetime(2263, 1, 1, tzinfo=UTC)}
    )
    with pytest.raises(LineProtocolError, match="64-bit"):
        reading_line(reading)


@pytest.mark.parametrize(("state", "online"), [("online", 1), ("offline", 0)])
def test_exact_line_of_gateway_status(state: str, online: int) -> None:
    status = parse_status(
        '{"schema": 1, "site": "qibin-taoyuan", "gateway": "gw1", "state": "' + state + '",'
        ' "session": 7, "ts": "2026-11-28T01:00:00Z"}'
    )
    assert (
        encode_line(status_point(status))
        == status_line(status)
        == (
            f"gateway_status,gateway=gw1,site=qibin-taoyuan online={online}i,session=7i"
            " 1795827600000000000"
        )
    )


def test_escaped_lines_read_back_unchanged_from_real_influxdb(
    influxd: InfluxdProcess, influx_db: str
) -> None:
    points = [
        Point(measurement, {"case": name.replace(" ", "_"), "v": tag}, {"s": text}, 1)
        for name, measurement, tag, text, _ in ESCAPING
        if measurement == "seat"
    ]
    body = "\n".join(encode_line(p) for p in points).encode()
    response = httpx.post(
        f"{influxd.url}/write", params={"db": influx_db, "precision": "ns"}, content=body
    )
    assert response.status_code == 204, response.text
    rows = influxd.rows('SELECT "s", "v", "case" FROM "seat"', influx_db)
    assert sorted((row["case"], row["v"], row["s"]) for row in rows) == sorted(
        (p.tags["case"], p.tags["v"], p.fields["s"]) for p in points
    )


def test_line_examples_in_the_docs_are_what_the_encoder_writes() -> None:
    doc = Path(__file__).resolve().parent.parent / "docs" / "influxdb.md"
    examples = re.findall(r"```\n(\w+,.*?)\n```", doc.read_text(encoding="utf-8"))
    status = parse_status(
        '{"schema": 1, "site": "qibin-taoyuan", "gateway": "gw1", "state": "online",'
        ' "session": 7, "ts": "2026-11-28T01:00:00Z"}'
    )
    written = {line for _, line in READING_LINES} | {encode_line(status_point(status))}
    assert len(examples) == 2
    assert set(examples) <= written
