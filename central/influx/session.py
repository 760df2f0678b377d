"""The one HTTP session to an InfluxDB server, and the one place its answers become errors.

Every request the project sends to InfluxDB goes through :class:`InfluxSession`: the writers
(``/write``, ``/api/v2/write``), the statistics' reader and the downsampling admin (``/query``).
It is built from an :class:`~central.influx.config.InfluxServer` alone and logs in as that says:
``username``/``password`` as basic auth, or ``token`` as ``Authorization: Token …``.

Failures are mapped here, once, to :class:`~central.errors.InfluxError` (or the subclass the
caller names, :class:`~central.errors.InfluxWriteError` for writes):

=============================  ======  =========  ==============================================
what happened                  status  retryable  detail
=============================  ======  =========  ==============================================
no connection, reset           None    yes        ``unreachable (…)``
no answer in ``timeout``       None    yes        ``no answer within 10 s``
HTTP error status              status  5xx, 408,  the answer's ``error`` (1.x) or ``message``
                                       429        (2.x), else its text
``results[].error`` in a 200   200     no         that error (``database not found: qihe``)
=============================  ======  =========  ==============================================

A ``Retry-After`` header given in seconds is carried as ``retry_after``. The URL in an error never
holds credentials. Tests pass ``transport`` (``httpx.MockTransport``) to answer without a server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Self

import httpx

from central.errors import InfluxError
from central.influx.config import InfluxServer

__all__ = ["InfluxSession", "SessionOwner"]


class InfluxSession:
    """An httpx client for one InfluxDB server; no I/O until the first request."""

    def __init__(
        self, server: InfluxServer, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        headers = {"Accept": "application/json"}
        auth: httpx.BasicAuth | None = None
        if server.token is not None:
            headers["Authorization"] = f"Token {server.token.get_secret_value()}"
        elif server.username is not None:
            password = server.password.get_secret_value() if server.password else ""
            auth = httpx.BasicAuth(server.username, password)
        self._timeout = server.timeout.total_seconds()
        self._http = httpx.Client(
            base_url=server.url,
            headers=headers,
            auth=auth,
            timeout=self._timeout,
            transport=transport,
        )
        #: The server's URL as errors and logs show it: without credentials.
        self.url = str(httpx.URL(server.url).copy_with(userinfo=b""))
        #: ``X-Influxdb-Version`` of the last answer that had one (1.x and 2.x send it).
        self.server_version: str | None = None

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        statement: str | None = None,
        error: type[InfluxError] = InfluxError,
    ) -> httpx.Response:
        """Send one request; return its 2xx answer or raise ``error`` (see the table above).

        ``statement`` is the InfluxQL sent, if any, for the error to name.
        """

        def fail(
            detail: str, status: int | None = None, retry_after: float | None = None
        ) -> InfluxError:
            return error(
                detail, url=self.url, status=status, retry_after=retry_after, statement=statement
            )

        try:
            response = self._http.request(
                method, path, params=params, data=data, content=content, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise fail(f"no answer within {self._timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise fail(f"unreachable ({exc or type(exc).__name__})") from exc
        except httpx.RequestError as exc:
            raise fail(f"request failed ({exc or type(exc).__name__})") from exc
        self.server_version = response.headers.get("X-Influxdb-Version", self.server_version)
        status = response.status_code
        if 200 <= status < 300:
            return response
        try:
            message = _message(_json_objects(response.text))
        except ValueError:
            message = None
        raise fail(
            message or response.text.strip()[:200] or response.reason_phrase,
            status=status,
            retry_after=_seconds(response.headers.get("Retry-After")),
        )

    def query(
        self,
        statement: str,
        *,
        params: Mapping[str, str],
        post: bool = False,
        error: type[InfluxError] = InfluxError,
    ) -> list[dict[str, Any]]:
        """Send InfluxQL to ``/query``: every JSON object of the answer (one per chunk when
        ``chunked=true``), or ``error`` when the answer holds one (``results[].error``).

        ``GET`` (read-only statements) puts ``q`` in the URL; ``post`` sends the form instead,
        as 1.x wants for statements that change the server.
        """
        form = {**params, "q": statement}
        response = self.send(
            "POST" if post else "GET",
            "/query",
            params=None if post else form,
            data=form if post else None,
            statement=statement,
            error=error,
        )
        try:
            answers = _json_objects(response.text)
        except ValueError:
            answers = []
        if not answers:
            raise error(
                "the answer is not InfluxDB JSON",
                url=self.url,
                status=response.status_code,
                statement=statement,
            )
        message = _message(answers)
        if message is not None:
            raise error(message, url=self.url, status=response.status_code, statement=statement)
        return answers

    def close(self) -> None:
        self._http.close()


class SessionOwner:
    """Base of the session's users (the writers, the reader, the admin): each holds one session
    and closes it with itself. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self, server: InfluxServer, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._session = InfluxSession(server, transport=transport)

    @property
    def url(self) -> str:
        """The server, without credentials."""
        return self._session.url

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object of a body: one when not chunked, one per chunk when chunked."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return out
        value, at = decoder.raw_decode(text, at)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        out.append(value)


def _message(answers: list[dict[str, Any]]) -> str | None:
    """InfluxDB's own error message: ``error`` (1.x), ``message`` (2.x), ``results[].error``."""
    for answer in answers:
        for key in ("error", "message"):
            if isinstance(answer.get(key), str) and answer[key]:
                return str(answer[key])
        for result in answer.get("results") or []:
            if isinstance(result, dict) and isinstance(result.get("error"), str):
                return str(result["error"])
    return None


def _seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds (HTTP dates are ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
