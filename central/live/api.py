"""The live service's HTTP face: JSON API, server-sent events, and the two pages.

Everything here is read-only but the operators' commands to boards (``commands_api.py``,
off unless a ``commands`` account is configured, and behind the operator token), so the
service is safe to put behind a public reverse proxy: path and query values are validated
against the id pattern, errors are short JSON documents without internals, and responses
carry a strict Content-Security-Policy. The public summary (``/public``,
``/api/v1/public/...``) holds nothing about people, gateways or devices; when
``operator_token`` is set, everything else asks for it.

The handlers that read the live state are coroutines: FastAPI runs them on the event loop,
where the state is kept, never in its thread pool.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Annotated, Literal, Protocol

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from central.commands.config import CommandConfig
from central.live.alerts_api import AlertDesk, alerts_router
from central.live.commands_api import commands_router
from central.live.config import HttpConfig
from central.live.events import LiveEvent
from central.live.fleet_api import FleetSource, fleet_router
from central.live.hub import EventHub, HubFullError
from central.live.public_api import public_router
from central.live.public_feed import PublicFeed
from central.live.ratelimit import RateLimitConfig, RateLimiter
from central.live.views import PublicSites, SiteDetail, Sites
from qihe.contract import ID_PATTERN

__all__ = ["LiveSource", "create_app"]

log = logging.getLogger(__name__)

STATIC = resources.files("central.live") / "static"
COOKIE = "qihe_operator"

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


class LiveSource(Protocol):
    """What the API reads from (the running :class:`~central.live.service.LiveService`)."""

    hub: EventHub

    def sites(self) -> Sites: ...
    def detail(self, site_id: str) -> SiteDetail | None: ...
    def public(self) -> PublicSites: ...
    def has_site(self, site_id: str) -> bool: ...
    def health(self) -> dict[str, object]: ...


SiteId = Annotated[str, Path(pattern=ID_PATTERN, description="site id, e.g. qibin-taoyuan")]


def create_app(
    source: LiveSource,
    http: HttpConfig,
    *,
    fleet: FleetSource | None = None,
    commands: CommandConfig | None = None,
    alerts: AlertDesk | None = None,
    public: PublicFeed | None = None,
    limits: RateLimitConfig | None = None,
) -> FastAPI:
    app = FastAPI(
        title="qihe live seat availability",
        summary="淇河书屋实时座位 · Live seats of the Qihe Book Houses and day-care centres",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,  # the Swagger page loads its scripts from a CDN; the document is enough
        redoc_url=None,
    )
    # Read at each request: a reloaded config (SIGHUP) replaces it (central/live/service.py).
    app.state.http = http
    operator = Depends(_operator_check(app))

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.get("/api/v1/sites", response_model=Sites, dependencies=[operator], tags=["operator"])
    async def list_sites() -> Response:
        """Every site: seat counts, occupancy, door, gateways online and last seen."""
        return _json(source.sites(), "no-store")

    @app.get(
        "/api/v1/sites/{site_id}",
        response_model=SiteDetail,
        dependencies=[operator],
        tags=["operator"],
        responses={404: {"description": "no such site"}},
    )
    async def site_detail(site_id: SiteId) -> Response:
        """One site's seat map, doors and devices."""
        detail = source.detail(site_id)
        if detail is None:
            raise HTTPException(404, "no such site")
        return _json(detail, "no-store")

    @app.get(
        "/api/v1/events",
        dependencies=[operator],
        tags=["operator"],
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
            503: {"description": "too many live streams open"},
        },
    )
    async def events(
        site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
        seats: Literal["all", "none"] = "all",
    ) -> StreamingResponse:
        """Changes as server-sent events: ``ready`` first, then ``site``, ``seat``, ``door``
        (and ``resync`` when this client fell behind). Every event's ``v`` grows; apply only
        those newer than the snapshot's ``version``."""
        if site is not None and not source.has_site(site):
            raise HTTPException(404, "no such site")
        if source.hub.subscribers >= app.state.http.max_streams:
            raise HTTPException(503, "too many live streams open; try again shortly")
        return StreamingResponse(
            _stream(source.hub, site=site, seats=seats == "all"),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/healthz", tags=["operator"], dependencies=[operator])
    async def health() -> dict[str, object]:
        return source.health()

    @app.get("/", include_in_schema=False)
    def operator_page() -> FileResponse:
        return _page("operator.html")

    @app.get("/public", include_in_schema=False)
    def public_page() -> FileResponse:
        return _page("public.html")

    # The public API, its stream and its rate limits (central/live/public_api.py).
    app.include_router(
        public_router(
            public or PublicFeed(source),
            RateLimiter(limits or RateLimitConfig()),
            max_age=lambda: int(app.state.http.public_max_age),
        )
    )
    if fleet is not None:  # the fleet view (central/live/fleet_api.py)
        app.include_router(fleet_router(fleet, operator))
    # Commands to boards (central/live/commands_api.py): 503 unless ``commands`` is configured.
    app.include_router(commands_router(commands, operator, source.has_site))
    if alerts is not None:  # orders to the alert engine (central/live/alerts_api.py)
        app.include_router(alerts_router(alerts, operator, source.has_site))
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def _json(snapshot: BaseModel, cache: str) -> Response:
    # Written by the model itself, as the response_model would be, without FastAPI
    # validating it once more (a city's overview is hundreds of summaries).
    return Response(
        snapshot.model_dump_json(by_alias=True),
        media_type="application/json",
        headers={"Cache-Control": cache},
    )


def _page(name: str) -> FileResponse:
    return FileResponse(str(STATIC / name), media_type="text/html; charset=utf-8")


def _operator_check(app: FastAPI) -> Callable[[Request], Awaitable[None]]:
    async def check(request: Request) -> None:  # a coroutine: no trip to the thread pool
        secret = app.state.http.operator_token
        if secret is None:
            return
        token = secret.get_secret_value().encode()
        given = request.cookies.get(COOKIE, "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        if not hmac.compare_digest(given.encode(), token):
            raise HTTPException(
                401, "operator token required", headers={"WWW-Authenticate": "Bearer"}
            )

    return check


async def _stream(hub: EventHub, *, site: str | None, seats: bool) -> AsyncIterator[bytes]:
    try:
        async with hub.subscribe(site=site, seats=seats) as sub:
            ready = LiveEvent.build("ready", None, hub.version, {})
            yield b"retry: 2000\n\n" + ready.frame
            async for chunk in sub.frames():
                yield chunk
    except HubFullError as exc:
        log.warning("live stream refused: %s", exc)
