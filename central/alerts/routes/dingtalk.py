"""DingTalk (钉钉) custom robot: ``POST .../robot/send?access_token=<token>``, markdown.

Body ``{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles", "isAtAll"}}``.
``title`` is what the chat list shows; ``text`` holds at most 20000 bytes. DingTalk only
renders an @mention when the text also contains ``@<mobile>``, so the mobiles are written
on the last line — only while something fires.

With a ``secret`` (the robot's 加签 security setting) each request carries ``timestamp``
(ms) and ``sign`` = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")))
— DingTalk refuses a timestamp more than an hour off, hence the injected ``clock``.
errcode 130101 (sending too fast: more than 20 a minute; DingTalk then throttles the robot
for 10 minutes) is retried, as is -1 (system busy); 310000 (sign, keyword or IP allow-list
mismatch) and the rest need a person and fail at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Literal, Self
from urllib.parse import quote, quote_plus

import httpx
from pydantic import Field, SecretStr, StringConstraints, model_validator

from central.alerts import render
from central.alerts.model import Notification
from central.alerts.routes.base import HttpRouteSettings, RouteError, RouteName
from central.alerts.routes.webhook import JsonPoster
from qihe.configtypes import BaseUrl

__all__ = ["DingTalkRoute", "DingTalkRouteConfig"]

DINGTALK_URL = "https://oapi.dingtalk.com/robot/send"
MAX_TEXT_BYTES = 20_000
#: Shown in the chat list; longer titles are cut there anyway.
MAX_TITLE_CHARS = 64
RETRYABLE_ERRCODES = frozenset({-1, 130101})
_HINTS = {
    310000: "check the robot's security settings (加签 secret, keyword, IP allow-list)",
    300001: "check access_token",
}

Mobile = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9-]{4,19}$")]


def _sign(secret: str, timestamp_ms: int) -> str:
    """The ``sign`` query value, already URL-encoded as DingTalk's docs do it."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


class DingTalkRouteConfig(HttpRouteSettings):
    """A DingTalk custom robot; ``secret`` when its security setting is 加签 (signed URL)."""

    type: Literal["dingtalk"]
    name: RouteName = "dingtalk"
    max_per_minute: int | None = Field(default=20, ge=1, le=100_000)
    access_token: SecretStr
    secret: SecretStr | None = None
    #: Where the token is sent; only tests change it.
    base_url: BaseUrl = DINGTALK_URL
    #: Mobiles of group members mentioned when a message has firing alerts.
    at_mobiles: tuple[Mobile, ...] = ()
    at_all: bool = False

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.access_token.get_secret_value().strip():
            raise ValueError("access_token must not be empty")
        if self.secret is not None and not self.secret.get_secret_value().strip():
            raise ValueError("secret must not be empty (leave it out when not signing)")
        return self


class DingTalkRoute:
    """Sends one markdown message per ``send``: one site, or a digest of several."""

    def __init__(
        self,
        config: DingTalkRouteConfig,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = config.name
        self._config = config
        self._clock = clock
        token = config.access_token.get_secret_value()
        self._secret = config.secret.get_secret_value() if config.secret else None
        self._base = f"{config.base_url}?access_token={quote(token, safe='')}"
        self._http = JsonPoster(
            config.name,
            config.base_url,
            timeout=config.timeout.total_seconds(),
            secrets=[token, *([self._secret] if self._secret else [])],
            client=client,
        )

    def url(self) -> str:
        """The URL of the next request: signed with the current time when a secret is set."""
        if self._secret is None:
            return self._base
        timestamp = int(self._clock() * 1000)
        return f"{self._base}&timestamp={timestamp}&sign={_sign(self._secret, timestamp)}"

    def body(self, notifications: Sequence[Notification]) -> dict[str, object]:
        """The JSON sent for ``notifications``."""
        firing = any(n.firing for n in notifications)
        mobiles = list(self._config.at_mobiles) if firing else []
        at_all = self._config.at_all and firing
        mentions = " ".join([*(f"@{m}" for m in mobiles), *(["@所有人"] if at_all else [])])
        text = render.markdown(
            notifications, max_bytes=MAX_TEXT_BYTES, line_break="\n\n", footer=mentions
        )
        title = render.title(notifications)
        if len(title) > MAX_TITLE_CHARS:
            title = title[: MAX_TITLE_CHARS - 1] + "…"
        return {
            "msgtype": "markdown",
            "markdown": {"title": title, "text": text},
            "at": {"atMobiles": mobiles, "isAtAll": at_all},
        }

    async def send(self, notifications: Sequence[Notification]) -> None:
        errcode, errmsg = await self._http.post_for_errcode(self.url(), self.body(notifications))
        if errcode != 0:
            hint = _HINTS.get(errcode)
            raise RouteError(
                self.name,
                f"DingTalk refused the message: errcode {errcode}, {errmsg}"
                + (f" — {hint}" if hint else ""),
                retryable=errcode in RETRYABLE_ERRCODES,
                errcode=errcode,
            )

    async def aclose(self) -> None:
        await self._http.aclose()
