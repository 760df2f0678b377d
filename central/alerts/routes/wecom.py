"""WeCom (企业微信) group robot: ``POST .../cgi-bin/webhook/send?key=<key>``, markdown.

Body ``{"msgtype": "markdown", "markdown": {"content": "..."}}``; WeCom answers
``{"errcode": 0, "errmsg": "ok"}`` or another errcode. The content may hold at most 4096
bytes of UTF-8, so :func:`~central.alerts.render.markdown` cuts it with a last line
``…以及另外 N 条 / and N more``.

Mentions: the markdown message has no ``mentioned_mobile_list`` (that field belongs to the
``text`` message); WeCom's docs say text and markdown content may mention a member with the
``<@userid>`` extension, and markdown cannot mention ``@all``. So the config takes
``mentioned_userids``, written as ``<@userid>`` on the last line, and only while something
fires: nobody is woken for a recovery.

The key is the robot's only credential: it is a :class:`SecretStr`, logs name the host
only, and an ``errmsg`` that echoes the URL is redacted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, Self
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr, StringConstraints, model_validator

from central.alerts import render
from central.alerts.model import Notification
from central.alerts.routes.base import HttpRouteSettings, RouteError, RouteName
from central.alerts.routes.webhook import JsonPoster, is_http_url
from qihe.configtypes import BaseUrl

__all__ = ["WeComRoute", "WeComRouteConfig"]

WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
#: WeCom's limit of ``markdown.content``.
MAX_CONTENT_BYTES = 4096
#: "system busy, retry later" (global code) and "API freq out of limit" (20 a minute).
RETRYABLE_ERRCODES = frozenset({-1, 45009})

UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-][A-Za-z0-9_.@-]{0,63}$")]


class WeComRouteConfig(HttpRouteSettings):
    """A WeCom group robot; give its ``key``, or the whole webhook ``url`` as WeCom shows it."""

    type: Literal["wecom"]
    name: RouteName = "wecom"
    max_per_minute: int | None = Field(default=20, ge=1, le=100_000)
    key: SecretStr | None = None
    #: The whole webhook address (it contains the key); instead of ``key``.
    url: SecretStr | None = None
    #: Where ``key`` is sent; only tests change it.
    base_url: BaseUrl = WECOM_URL
    #: WeCom user ids mentioned (``<@userid>``) when a message has firing alerts.
    mentioned_userids: tuple[UserId, ...] = ()

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        if (self.key is None) == (self.url is None):
            raise ValueError("set exactly one of key and url")
        if self.key is not None and not self.key.get_secret_value().strip():
            raise ValueError("key must not be empty")
        if self.url is not None and not is_http_url(self.url.get_secret_value()):
            raise ValueError("url: must be an absolute http(s) URL")
        return self


class WeComRoute:
    """Sends one markdown message per ``send``: one site, or a digest of several."""

    def __init__(self, config: WeComRouteConfig, *, client: httpx.AsyncClient | None = None):
        self.name = config.name
        self._config = config
        if config.key is not None:
            key = config.key.get_secret_value()
            self._url = f"{config.base_url}?key={quote(key, safe='')}"
            secrets = [key, self._url]
        else:
            assert config.url is not None  # the validator allows nothing else
            self._url = config.url.get_secret_value()
            secrets = [self._url, *httpx.URL(self._url).params.get_list("key")]
        self._http = JsonPoster(
            config.name,
            self._url,
            timeout=config.timeout.total_seconds(),
            secrets=secrets,
            client=client,
        )

    def body(self, notifications: Sequence[Notification]) -> dict[str, object]:
        """The JSON sent for ``notifications``."""
        mentions = ""
        if self._config.mentioned_userids and any(n.firing for n in notifications):
            mentions = " ".join(f"<@{u}>" for u in self._config.mentioned_userids)
        content = render.markdown(notifications, max_bytes=MAX_CONTENT_BYTES, footer=mentions)
        return {"msgtype": "markdown", "markdown": {"content": content}}

    async def send(self, notifications: Sequence[Notification]) -> None:
        errcode, errmsg = await self._http.post_for_errcode(self._url, self.body(notifications))
        if errcode != 0:
            raise RouteError(
                self.name,
                f"WeCom refused the message: errcode {errcode}, {errmsg}",
                retryable=errcode in RETRYABLE_ERRCODES,
                errcode=errcode,
            )

    async def aclose(self) -> None:
        await self._http.aclose()
