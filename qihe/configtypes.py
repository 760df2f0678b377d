"""The field types every config file shares (gateway, consumer, live, alerts, statistics, demo).

Durations are seconds (``1``, ``0.5``) or ISO 8601 (``PT1M``); names are one line of text;
identifiers and topic prefixes are exactly what the MQTT contract accepts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    HttpUrl,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from qihe.contract import ID_PATTERN, TopicError, TopicTree

__all__ = ["BaseUrl", "Duration", "Ident", "Name", "StrictModel", "TopicPrefix"]


class StrictModel(BaseModel):
    """A config section: unknown keys are refused (a typo is an error, not a default) and the
    values never change after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


def _topic_prefix(value: str) -> str:
    try:
        TopicTree(value)
    except TopicError as exc:
        raise ValueError(str(exc)) from None
    return value


_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _base_url(value: str) -> str:
    try:
        url = _HTTP_URL.validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"not an http(s) URL: {exc.errors()[0]['msg']}") from None
    if url.query or url.fragment:
        raise ValueError("must not carry a query or fragment")
    return str(url).rstrip("/")


#: A duration longer than zero.
Duration = Annotated[timedelta, AfterValidator(_positive)]
#: One line of text (a database, a user, a host): never a line break an attacker could use.
Name = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\r\n]+$")]
#: An http(s) URL without query or fragment, kept without its trailing slash.
BaseUrl = Annotated[str, AfterValidator(_base_url)]
#: A site, gateway or sensor id as the MQTT contract accepts it.
Ident = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
#: The first levels of every topic (``qihe``, ``city/hebi``): the contract's own check.
TopicPrefix = Annotated[str, AfterValidator(_topic_prefix)]
