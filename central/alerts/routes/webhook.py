"""The generic JSON webhook (Alertmanager's payload), and the HTTP plumbing the robots share.

Existing tools (Alertmanager receivers, n8n, Grafana OnCall...) read Alertmanager's webhook
payload, version 4, so we send that: one POST per site group, as Alertmanager sends one per
group. When the worker hands several notifications at once they are POSTed one after the
other in the same call; if one fails, :class:`RouteError` says how many went through so
only the rest is retried.

The URL is a secret, as in Alertmanager (``url: <secret>``): many webhooks carry a token in
their path or query. Logs name only ``scheme://host``; httpx's own INFO line ("HTTP
Request: POST <url>") is cut to that too, by a filter on the ``httpx`` logger.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self
from urllib.parse import quote, quote_plus

import httpx
from pydantic import Field, SecretStr, StringConstraints, model_validator

from central.alerts.model import Alert, Notification
from central.alerts.routes.base import HttpRouteSettings, RouteError, RouteName, http_client
from central.errors import is_retryable_status

__all__ = ["JsonPoster", "WebhookRoute", "WebhookRouteConfig", "is_http_url"]

USER_AGENT = "qihe-central-alerts/1"
#: Go's zero time, which Alertmanager sends as ``endsAt`` of an alert still firing.
GO_ZERO_TIME = "0001-01-01T00:00:00Z"

HeaderName = Annotated[str, StringConstraints(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")]


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host (checked without echoing it: it may be secret)."""
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError):
        return False
    return url.scheme in ("http", "https") and bool(url.host)


class _HideUrls(logging.Filter):
    """Cuts our endpoints' URLs in httpx's log records to ``scheme://host/…``."""

    def __init__(self) -> None:
        super().__init__()
        self.endpoints: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._hide(arg) for arg in record.args)
        return True

    def _hide(self, arg: object) -> object:
        if isinstance(arg, httpx.URL) and str(arg).split("?", 1)[0] in self.endpoints:
            return f"{arg.scheme}://{arg.netloc.decode('ascii', 'replace')}/…"
        return arg


_HIDE_URLS = _HideUrls()


class JsonPoster:
    """POSTs JSON for one route: a client made on first use, a hard timeout, errors as
    :class:`RouteError`, and every configured secret redacted from what it reports."""

    def __init__(
        self,
        route: str,
        endpoint: str,
        *,
        timeout: float,
        secrets: Iterable[str] = (),
        client: httpx.AsyncClient | None = None,
    ) -> None:
        url = httpx.URL(endpoint)
        self.target = f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"
        self._route = route
        self._timeout = timeout
        self._client = client
        self._owns_client = client is None
        # Shorter strings are not worth hiding and would mangle messages ("/" in a path).
        self._secrets = sorted(
            {v for s in secrets if len(s) >= 6 for v in (s, quote(s, safe=""), quote_plus(s))},
            key=len,
            reverse=True,
        )
        logger = logging.getLogger("httpx")
        if _HIDE_URLS not in logger.filters:
            logger.addFilter(_HIDE_URLS)
        _HIDE_URLS.endpoints.add(str(url).split("?", 1)[0])

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def post(
        self, url: str, body: object, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """One POST; raises a retryable :class:`RouteError` when no answer came in time."""
        content = json.dumps(body, ensure_ascii=False).encode()
        sent = {"content-type": "application/json; charset=utf-8", "user-agent": USER_AGENT}
        sent.update(headers or {})
        if self._client is None:
            self._client = http_client(self._timeout)
        try:
            # httpx's timeout is per phase; this bounds the whole exchange.
            async with asyncio.timeout(self._timeout):
                return await self._client.post(url, content=content, headers=sent)
        except (TimeoutError, httpx.TimeoutException) as exc:
            reason = f"no answer from {self.target} within {self._timeout:g} s"
            raise RouteError(self._route, reason, retryable=True) from exc
        except httpx.TransportError as exc:
            reason = f"cannot reach {self.target}: {self.redact(str(exc)) or type(exc).__name__}"
            raise RouteError(self._route, reason, retryable=True) from exc
        except httpx.HTTPError as exc:
            reason = f"request to {self.target} failed: {self.redact(str(exc))}"
            raise RouteError(self._route, reason, retryable=False) from exc

    async def post_for_errcode(self, url: str, body: object) -> tuple[int, str]:
        """POST to a chat robot (WeCom, DingTalk) that answers ``{"errcode", "errmsg"}`` with
        HTTP 200; return those two (errmsg redacted). HTTP errors and non-JSON answers raise."""
        response = await self.post(url, body)
        error = self.status_error(response)
        if error is not None:
            raise error
        try:
            answer = response.json()
            errcode = int(answer.get("errcode", -2))
            errmsg = str(answer.get("errmsg", ""))
        except (ValueError, AttributeError, TypeError):
            detail = self.redact(response.text[:200])
            reason = f"{self.target} answered something else than JSON: {detail}"
            raise RouteError(self._route, reason, retryable=False) from None
        return errcode, self.redact(errmsg)

    def status_error(self, response: httpx.Response, delivered: int = 0) -> RouteError | None:
        """``None`` for a 2xx answer; else the error, retryable for 408, 429 and 5xx."""
        if response.is_success:
            return None
        detail = self.redact(" ".join(response.text.split())[:200]) or response.reason_phrase
        retry_after = response.headers.get("retry-after", "")
        return RouteError(
            self._route,
            f"{self.target} answered HTTP {response.status_code}: {detail}",
            retryable=is_retryable_status(response.status_code),
            status=response.status_code,
            retry_after=float(retry_after) if retry_after.isdigit() else None,
            delivered=delivered,
        )

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


class WebhookRouteConfig(HttpRouteSettings):
    """A generic webhook: ``POST url`` with Alertmanager's JSON payload (version 4)."""

    type: Literal["webhook"]
    name: RouteName = "webhook"
    url: SecretStr
    #: Extra request headers (``Authorization: Bearer ...``); values are secrets.
    headers: dict[HeaderName, SecretStr] = Field(default_factory=dict)
    #: ``externalURL`` of the payload: where people see the alerts (the live page).
    external_url: str = ""

    @model_validator(mode="after")
    def _url_is_http(self) -> Self:
        if not is_http_url(self.url.get_secret_value()):
            raise ValueError("url: must be an absolute http(s) URL")
        return self


def _go_time(when: datetime) -> str:
    """RFC 3339 in UTC as Go writes it: ``Z``, fraction without trailing zeros."""
    text = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def _labels(alert: Alert) -> dict[str, str]:
    labels = dict(alert.labels)
    where = {"gateway": alert.gateway, "device": alert.device, "sensor": alert.sensor}
    for key, value in where.items():
        if value is not None:
            labels.setdefault(key, value)
    labels.update(alertname=alert.rule, severity=alert.severity, site=alert.site)
    return dict(sorted(labels.items()))


def _annotations(alert: Alert, site_name: str) -> dict[str, str]:
    annotations = {
        "summary": alert.summary_zh,
        "summary_en": alert.summary_en,
        "site_name": site_name,
    }
    if alert.value is not None:
        annotations["description"] = f"测量值 / value: {alert.value:g}"
    return annotations


def _common(maps: Sequence[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    return {k: v for k, v in maps[0].items() if all(m.get(k) == v for m in maps[1:])}


def _alertmanager_payload(
    notification: Notification, *, receiver: str, external_url: str = ""
) -> dict[str, Any]:
    """One site group as Alertmanager's webhook (version 4) would send it."""
    labels = [_labels(alert) for alert in notification.alerts]
    annotations = [_annotations(alert, notification.site_name) for alert in notification.alerts]
    alerts = [
        {
            "status": alert.state,
            "labels": labels[i],
            "annotations": annotations[i],
            "startsAt": _go_time(alert.starts_at),
            "endsAt": (
                _go_time(alert.ends_at or notification.created_at)
                if alert.state == "resolved"
                else GO_ZERO_TIME
            ),
            "generatorURL": "",
            "fingerprint": alert.id,
        }
        for i, alert in enumerate(notification.alerts)
    ]
    site = notification.site.replace("\\", "\\\\").replace('"', '\\"')
    return {
        "version": "4",
        "groupKey": f'{{}}:{{site="{site}"}}',
        "truncatedAlerts": 0,
        "status": notification.status,
        "receiver": receiver,
        "groupLabels": {"site": notification.site},
        "commonLabels": _common(labels),
        "commonAnnotations": _common(annotations),
        "externalURL": external_url,
        "alerts": alerts,
    }


class WebhookRoute:
    """POSTs each notification (a site group) as one Alertmanager-style JSON payload."""

    def __init__(self, config: WebhookRouteConfig, *, client: httpx.AsyncClient | None = None):
        self.name = config.name
        self._config = config
        self._url = config.url.get_secret_value()
        self._headers = {k: v.get_secret_value() for k, v in config.headers.items()}
        # Which part of the URL is the token is unknown: its path and query values are
        # redacted too, should a server echo them in an error.
        url = httpx.URL(self._url)
        parts = [url.path, *(v for _, v in url.params.multi_items())]
        self._http = JsonPoster(
            config.name,
            self._url,
            timeout=config.timeout.total_seconds(),
            secrets=[self._url, *parts, *self._headers.values()],
            client=client,
        )

    async def send(self, notifications: Sequence[Notification]) -> None:
        for done, notification in enumerate(notifications):
            body = _alertmanager_payload(
                notification, receiver=self.name, external_url=self._config.external_url
            )
            try:
                response = await self._http.post(self._url, body, self._headers)
            except RouteError as exc:
                exc.delivered = done
                raise
            error = self._http.status_error(response, delivered=done)
            if error is not None:
                raise error

    async def aclose(self) -> None:
        await self._http.aclose()
