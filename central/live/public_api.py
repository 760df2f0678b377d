"""The public API (open data, ``docs/public-api.md``): houses, seat maps and their live stream.

Anyone may read it, without a token; every path is rate-limited per client address
(:mod:`central.live.ratelimit`: 429 with ``Retry-After``). The JSON documents may be cached by
any proxy (``Cache-Control: public``) and carry an ``ETag``, so a reader asking again with
``If-None-Match`` gets a bodiless 304 while nothing changed. Nothing here says anything about a
person: counts, opening and each seat's free or not (:mod:`central.live.public_views`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from central.live.hub import HubFullError
from central.live.public_feed import PublicFeed
from central.live.public_views import PublicHouses, PublicSiteDetail
from central.live.ratelimit import RateLimitedError, RateLimiter
from qihe.contract import ID_PATTERN

__all__ = ["public_router"]

log = logging.getLogger(__name__)

_TOO_MANY = "请求过于频繁，请稍后再试 too many requests, try again later"
_NO_SITE = "没有这个公开站点 no such public site"

SiteId = Annotated[str, Path(pattern=ID_PATTERN, description="site id, e.g. qibin-taoyuan")]


def public_router(
    feed: PublicFeed, limiter: RateLimiter, *, max_age: Callable[[], int]
) -> APIRouter:
    """The public routes; ``max_age`` is read at each request (a reload may change it)."""

    async def limit(request: Request) -> str:
        client = limiter.client_address(
            request.client.host if request.client else None,
            request.headers.get("x-forwarded-for"),
        )
        try:
            limiter.take(client)
        except RateLimitedError as exc:
            raise HTTPException(
                429, _TOO_MANY, headers={"Retry-After": str(exc.retry_after)}
            ) from None
        return client

    # A default, not an Annotated alias: annotations are strings here (``from __future__``),
    # resolved in the module's globals, where this closure is not.
    client_of = Depends(limit)
    router = APIRouter(tags=["public"], responses={429: {"description": "too many requests"}})

    @router.get("/api/v1/public/sites", response_model=PublicHouses)
    async def public_sites(request: Request, _client: str = client_of) -> Response:
        """Per house: open now, today's hours, free seats, busy now against usual — nothing
        about a person."""
        return _cached(request, feed.houses(), max_age())

    @router.get(
        "/api/v1/public/sites/{site_id}",
        response_model=PublicSiteDetail,
        responses={404: {"description": "no such public site"}},
    )
    async def public_site(request: Request, site_id: SiteId, _client: str = client_of) -> Response:
        """One house and its seat map: each seat's number, label, place and whether it is free."""
        detail = feed.site(site_id)
        if detail is None:
            raise HTTPException(404, _NO_SITE)
        return _cached(request, detail, max_age())

    @router.get(
        "/api/v1/public/events",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
            404: {"description": "no such public site"},
            503: {"description": "too many live streams open"},
        },
    )
    async def public_events(
        site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None, client: str = client_of
    ) -> StreamingResponse:
        """The public view as server-sent events: ``ready``, then the whole view (``sites``, or
        ``detail`` for one site's stream with its seat map), then ``site`` (a house changed),
        ``seat`` (with ``?site=``) and ``resync`` (reconnect)."""
        if site is not None and not feed.has_site(site):
            raise HTTPException(404, _NO_SITE)
        if feed.hub.subscribers >= feed.max_streams:
            raise HTTPException(503, "实时连接已满，请稍后再试 too many live streams open")
        if limiter.streams_of(client) >= limiter.config.streams_per_client:
            raise HTTPException(429, _TOO_MANY, headers={"Retry-After": "30"})
        return StreamingResponse(
            _stream(feed, limiter, client, site),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router


def _cached(request: Request, document: BaseModel, max_age: int) -> Response:
    """The document with an ETag of its content (its ``generated_at`` left out: the same
    content asked for twice is the same ETag), or a bodiless 304 when the client has it."""
    tag_source = document.model_dump_json(exclude={"generated_at"}).encode()
    etag = f'"{hashlib.sha256(tag_source).hexdigest()[:32]}"'
    headers = {"Cache-Control": f"public, max-age={max_age}", "ETag": etag}
    asked = request.headers.get("if-none-match", "")
    if etag in {t.strip().removeprefix("W/") for t in asked.split(",")} or asked.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(document.model_dump_json(), media_type="application/json", headers=headers)


async def _stream(
    feed: PublicFeed, limiter: RateLimiter, client: str, site: str | None
) -> AsyncIterator[bytes]:
    # The client's stream place is taken here, not in the handler: a response that is never
    # sent never runs its body, and would never give the place back.
    try:
        limiter.open_stream(client)
    except RateLimitedError:
        return  # two opened at once past the limit: the later one ends at once
    try:
        async with feed.hub.subscribe(site=site, seats=site is not None) as sub:
            # No await between subscribing and the opening: every later event is newer.
            yield b"retry: 2000\n\n" + feed.opening(site)
            async for chunk in sub.frames():
                yield chunk
    except HubFullError as exc:
        log.warning("public stream refused: %s", exc)
    finally:
        limiter.close_stream(client)
