"""The InfluxDB session: how it logs in, and how every failure becomes one typed error, once.

Answers come from ``httpx.MockTransport`` (the session's transport seam); the writers, the reader
and the admin are checked against a real InfluxDB in their own suites.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from central.errors import InfluxError, InfluxWriteError
from central.influx.admin import InfluxAdmin
from central.influx.config import InfluxServer
from central.influx.reader import InfluxQLReader
from central.influx.session import InfluxSession

URL = "http://influx.test:8086"

Answer = Callable[[httpx.Request], httpx.Response]


def server(**settings: object) -> InfluxServer:
    return InfluxServer.model_validate({"url": URL, **settings})


def session(answer: Answer, **settings: object) -> InfluxSession:
    return InfluxSession(server(**settings), transport=httpx.MockTransport(answer))


def test_a_token_is_sent_as_authorization_token() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    session(answer, token="read-token").send("GET", "/ping")
    assert seen[0].headers["Authorization"] == "Token read-token"


def test_username_and_password_are_sent_as_basic_auth() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    session(answer, username="u", password="p").send("GET", "/ping")
    assert seen[0].headers["Authorization"] == "Basic dTpw"


def test_an_error_inside_a_200_answer_is_an_error_naming_the_statement() -> None:
    body = {"results": [{"statement_id": 0, "error": "database not found: qihe"}]}
    reader = InfluxQLReader(
        server(),
        database="qihe",
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=body)),
    )
    with reader, pytest.raises(InfluxError) as caught:
        reader.query("SHOW MEASUREMENTS")
    error = caught.value
    assert (error.status, error.retryable, error.detail) == (200, False, "database not found: qihe")
    assert str(error) == f"InfluxDB at {URL}: database not found: qihe (query: SHOW MEASUREMENTS)"


def test_a_401_is_not_retryable_and_says_to_check_the_credentials() -> None:
    answer = httpx.Response(401, json={"error": "authorization failed"})
    with pytest.raises(InfluxError) as caught:
        session(lambda _: answer, username="u", password="wrong").query("SHOW DATABASES", params={})
    error = caught.value
    assert (error.status, error.retryable, error.detail) == (401, False, "authorization failed")
    assert str(error) == (
        f"InfluxDB at {URL}: HTTP 401: not authorised (authorization failed); "
        "check username/password or token (query: SHOW DATABASES)"
    )


def test_a_v2_error_message_and_retry_after_are_carried() -> None:
    answer = httpx.Response(
        503, json={"code": "unavailable", "message": "busy"}, headers={"Retry-After": "3"}
    )
    with pytest.raises(InfluxWriteError) as caught:
        session(lambda _: answer).send("POST", "/api/v2/write", error=InfluxWriteError)
    error = caught.value
    assert (error.status, error.retryable, error.retry_after) == (503, True, 3.0)
    assert str(error) == "InfluxDB write failed (HTTP 503): busy"


def test_a_text_answer_is_its_own_detail() -> None:
    answer = httpx.Response(502, text="<html>bad gateway</html>")
    with pytest.raises(InfluxError) as caught:
        session(lambda _: answer).send("GET", "/query")
    assert (caught.value.status, caught.value.detail) == (502, "<html>bad gateway</html>")


def test_a_transport_error_is_retryable_without_status() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("All connection attempts failed", request=request)

    with pytest.raises(InfluxError) as caught:
        session(refuse).query("SHOW DATABASES", params={})
    error = caught.value
    assert (error.status, error.retryable) == (None, True)
    assert str(error) == (
        f"InfluxDB at {URL}: unreachable (All connection attempts failed) (query: SHOW DATABASES)"
    )
    assert isinstance(error.__cause__, httpx.ConnectError)


def test_a_timeout_says_how_long_it_waited() -> None:
    def wait(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(InfluxError) as caught:
        session(wait, timeout=2.5).send("GET", "/query")
    assert (caught.value.status, caught.value.retryable) == (None, True)
    assert caught.value.detail == "no answer within 2.5 s"


def test_errors_never_show_the_credentials_of_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    config = InfluxServer(url="http://reader:s3cret@influx.test:8086")
    with pytest.raises(InfluxError) as caught:
        InfluxSession(config, transport=httpx.MockTransport(refuse)).send("GET", "/ping")
    assert caught.value.url == URL
    assert "s3cret" not in str(caught.value)


def test_a_chunked_answer_is_joined_back_into_its_series() -> None:
    chunks = [
        {"results": [{"statement_id": 0, "partial": True, "series": [
            {"name": "seat", "tags": {"sensor": "a.1"}, "columns": ["time", "occupied"],
             "values": [[1, 1]], "partial": True}]}]},
        {"results": [{"statement_id": 0, "series": [
            {"name": "seat", "tags": {"sensor": "a.1"}, "columns": ["time", "occupied"],
             "values": [[2, 0]]}]}]},
    ]  # fmt: skip
    body = "\n".join(json.dumps(chunk) for chunk in chunks)
    reader = InfluxQLReader(
        server(),
        database="qihe",
        transport=httpx.MockTransport(lambda _: httpx.Response(200, text=body)),
    )
    with reader:
        [series] = reader.query("SELECT occupied FROM seat GROUP BY sensor")
    assert (series.name, series.tags) == ("seat", {"sensor": "a.1"})
    assert list(series.rows()) == [{"time": 1, "occupied": 1}, {"time": 2, "occupied": 0}]


def test_admin_statements_are_posted_as_a_form_and_the_version_is_kept() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {
            "results": [
                {
                    "statement_id": 0,
                    "series": [
                        {
                            "name": "databases",
                            "columns": ["name"],
                            "values": [["_internal"], ["qihe"]],
                        }
                    ],
                }
            ]
        }
        return httpx.Response(200, json=body, headers={"X-Influxdb-Version": "1.6.7~rc0"})

    with InfluxAdmin(server(), transport=httpx.MockTransport(answer)) as admin:
        rows = admin.rows("SHOW DATABASES", database="qihe")
        assert admin.server_version == "1.6.7~rc0"
    assert rows == [("databases", {"name": "_internal"}), ("databases", {"name": "qihe"})]
    assert seen[0].method == "POST"
    assert seen[0].content == b"db=qihe&q=SHOW+DATABASES"
