"""The v2 writer (InfluxDB 2.x/3.x) against a local endpoint that checks each request exactly as
the InfluxDB v2 API documents ``POST /api/v2/write`` (no 2.x server can be installed here)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.consumer.config import ConsumerConfig
from central.consumer.service import Consumer
from central.errors import InfluxWriteError
from central.influx import InfluxV2Writer
from central.influx.config import InfluxV2Config
from devstack import MosquittoProcess, free_port
from qihe.contract import SeatReading, TopicTree, encode_payload

TOKEN = "qihe-write-token=="
ORG = "鹤壁 community"
BUCKET = "qihe/autogen"


@dataclass(frozen=True)
class WriteRequest:
    query: dict[str, list[str]]
    headers: dict[str, str]
    lines: list[str]


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()


class FakeInfluxV2:
    """``POST /api/v2/write`` as documented: query ``org``, ``bucket``, ``precision``; header
    ``Authorization: Token <token>``; body line protocol, ``text/plain; charset=utf-8``, gzip
    when ``Content-Encoding: gzip``; 204 on success, JSON ``{"code", "message"}`` on errors.

    Accepted lines are kept in ``stored``; a line containing ``refuse`` is answered like a
    field type conflict (422) so a batch holding it is refused whole.
    """

    def __init__(self, *, token: str = TOKEN, org: str = ORG, bucket: str = BUCKET) -> None:
        self.expected = {"token": token, "org": org, "bucket": bucket}
        self.requests: list[WriteRequest] = []
        self.stored: list[str] = []
        self.answers: list[Answer] = []
        self.refuse: str | None = None
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _problems(self, request: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> str:
        problems = []
        path = urlsplit(request.path).path
        if path != "/api/v2/write":
            problems.append(f"path {path!r}")
        expected_query = {
            "org": [self.expected["org"]],
            "bucket": [self.expected["bucket"]],
            "precision": ["ns"],
        }
        if query != expected_query:
            problems.append(f"query {query!r}")
        content_type = request.headers.get("Content-Type", "")
        if content_type.replace(" ", "").lower() not in ("text/plain", "text/plain;charset=utf-8"):
            problems.append(f"Content-Type {content_type!r}")
        if request.headers.get("Content-Encoding", "identity") not in ("identity", "gzip"):
            problems.append(f"Content-Encoding {request.headers['Content-Encoding']!r}")
        return "; ".join(problems)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(request.path).query, keep_blank_values=True, strict_parsing=True)
        body = request.rfile.read(int(request.headers.get("Content-Length", "0")))
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        lines = body.decode("utf-8").splitlines()
        with self._lock:
            self.requests.append(WriteRequest(query, dict(request.headers.items()), lines))
            answer = self._answer(request, query, lines)
            if answer.status == 204:
                self.stored.extend(lines)
        request.send_response(answer.status)
        for name, value in answer.headers:
            request.send_header(name, value)
        if answer.body is None:
            request.end_headers()
            return
        data = json.dumps(answer.body).encode()
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _answer(
        self, request: BaseHTTPRequestHandler, query: dict[str, list[str]], lines: list[str]
    ) -> Answer:
        if request.headers.get("Authorization") != f"Token {self.expected['token']}":
            return Answer(401, {"code": "unauthorized", "message": "unauthorized access"})
        problem = self._problems(request, query)
        if problem:
            return Answer(
                400, {"code": "invalid", "message": f"request not as documented: {problem}"}
            )
        if self.answers:
            return self.answers.pop(0)
        if self.refuse and any(self.refuse in line for line in lines):
            return Answer(
                422,
                {
                    "code": "unprocessable entity",
                    "message": "failure writing points to database: partial write: field type "
                    'conflict: input field "occupied" on measurement "seat" is type integer, '
                    "already exists as type string dropped=1",
                },
            )
        return Answer(204)


@pytest.fixture
def fake_influx() -> Iterator[FakeInfluxV2]:
    server = FakeInfluxV2()
    server.start()
    yield server
    server.close()


def v2_config(url: str, *, token: str = TOKEN, gzip: bool = False) -> InfluxV2Config:
    return InfluxV2Config.model_validate(
        {"api": "v2", "url": url, "token": token, "org": ORG, "bucket": BUCKET, "gzip": gzip,
         "timeout": 2}
    )  # fmt: skip


LINES = [
    "seat,device=board-a,gateway=gw1,sensor=board-a.3,site=qibin-taoyuan occupied=1i 1",
    'fault,device=board-a,gateway=gw1,sensor=board-a.7,site=qibin-taoyuan code="stuck" 2',
]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_write_sends_the_documented_v2_request(fake_influx: FakeInfluxV2, compress: bool) -> None:
    writer = InfluxV2Writer(v2_config(fake_influx.url, gzip=compress))
    try:
        writer.write(LINES)
    finally:
        writer.close()
    [request] = fake_influx.requests
    assert request.query == {"org": [ORG], "bucket": [BUCKET], "precision": ["ns"]}
    assert request.headers["Authorization"] == f"Token {TOKEN}"
    assert request.headers.get("Content-Encoding") == ("gzip" if compress else None)
    assert request.lines == LINES
    assert fake_influx.stored == LINES


def refusal(status: int, code: str, message: str) -> Answer:
    return Answer(status, {"code": code, "message": message})


# (name, answer, retryable, rejects_points)
ERRORS = [
    ("malformed", refusal(400, "invalid", "unable to parse 'x'"), False, True),
    ("type conflict", refusal(422, "unprocessable entity", "conflict"), False, True),
    ("bucket missing", refusal(404, "not found", "bucket not found"), False, False),
    ("forbidden", refusal(403, "forbidden", "insufficient permissions"), False, False),
    ("rate limited", refusal(429, "too many requests", "slow down"), True, False),
    ("unavailable", refusal(503, "unavailable", "starting up"), True, False),
    ("internal", refusal(500, "internal error", "boom"), True, False),
]


@pytest.mark.parametrize(
    ("answer", "retryable", "rejects_points"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_error_answers_map_to_typed_errors(
    fake_influx: FakeInfluxV2, answer: Answer, retryable: bool, rejects_points: bool
) -> None:
    fake_influx.answers.append(answer)
    writer = InfluxV2Writer(v2_config(fake_influx.url))
    try:
        with pytest.raises(InfluxWriteError) as caught:
            writer.write(LINES)
    finally:
        writer.close()
    error = caught.value
    assert answer.body is not None
    assert (error.status, error.retryable, error.rejects_points) == (
        answer.status,
        retryable,
        rejects_points,
    )
    assert error.detail == answer.body["message"]
    assert fake_influx.stored == []


def test_wrong_token_is_a_401_that_is_not_retryable(fake_influx: FakeInfluxV2) -> None:
    writer = InfluxV2Writer(v2_config(fake_influx.url, token="not-the-token"))
    try:
        with pytest.raises(InfluxWriteError) as caught:
            writer.write(LINES)
    finally:
        writer.close()
    assert (caught.value.status, caught.value.retryable) == (401, False)
    assert caught.value.detail == "unauthorized access"


def test_retry_after_is_carried(fake_influx: FakeInfluxV2) -> None:
    fake_influx.answers.append(
        Answer(503, {"code": "unavailable", "message": "busy"}, (("Retry-After", "3"),))
    )
    writer = InfluxV2Writer(v2_config(fake_influx.url))
    try:
        with pytest.raises(InfluxWriteError) as caught:
            writer.write(LINES)
    finally:
        writer.close()
    assert caught.value.retry_after == 3.0


def test_nothing_listening_is_retryable_without_status() -> None:
    writer = InfluxV2Writer(v2_config(f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(InfluxWriteError) as caught:
            writer.write(LINES)
    finally:
        writer.close()
    assert (caught.value.status, caught.value.retryable) == (None, True)


@pytest.mark.integration
def test_consumer_writes_through_the_v2_api_and_dead_letters_what_it_refuses(
    fake_influx: FakeInfluxV2,
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    unique_name: str,
) -> None:
    tree = TopicTree(topic_prefix)
    config = ConsumerConfig.model_validate(
        {
            "mqtt": {
                "host": mosquitto.host,
                "port": mosquitto.port,
                "client_id": f"c-{unique_name}",
                "topic_prefix": topic_prefix,
                "session_expiry": 300,
            },
            "influx": {"api": "v2", "url": fake_influx.url, "token": TOKEN, "org": ORG,
                       "bucket": BUCKET, "gzip": True},
            "flush_idle": 0.2,
            "retry_min_delay": 0.05,
            "retry_max_delay": 0.2,
        }
    )  # fmt: skip
    fake_influx.refuse = "sensor=board-a.5,"
    ts = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
    readings = [
        SeatReading(
            site="qibin-taoyuan", gateway="gw1", device="board-a", sensor=f"board-a.{i}", ts=ts,
            occupied=i % 2 == 0, seq=i,
        )
        for i in range(8)
    ]  # fmt: skip
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    try:
        with Consumer(config) as consumer:
            for reading in readings:
                topic = tree.reading("qibin-taoyuan", "gw1", "seat", reading.sensor)
                publisher.publish(topic, encode_payload(reading), qos=1).wait_for_publish(5)
            deadline = time.monotonic() + 10
            while consumer.stats().acked < 8 and time.monotonic() < deadline:
                time.sleep(0.02)
            stats = consumer.stats()
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    assert (stats.acked, stats.written_points, stats.rejected_points, stats.dead_lettered) == (
        8,
        7,
        1,
        1,
    )
    expected = [
        f"seat,device=board-a,gateway=gw1,sensor=board-a.{i},site=qibin-taoyuan"
        f" occupied={1 - i % 2}i,seq={i}i 1795827723000000000"
        for i in range(8)
        if i != 5
    ]
    assert sorted(fake_influx.stored) == expected
    assert all(r.headers.get("Content-Encoding") == "gzip" for r in fake_influx.requests)
