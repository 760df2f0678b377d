"""The fleet view's HTTP face: ``GET /api/v1/fleet`` (operators only) and the page ``/fleet``.

The page itself holds no data (it is static, like the operator page) and asks for the token
the way the operator page does; the API answers 401 without it. Filtering and sorting happen
here, so ``qihe fleet`` and the page show the same order::

    GET /api/v1/fleet?district=山城区&sort=-cpu_temp
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Protocol

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.params import Depends
from fastapi.responses import FileResponse

from central.fleet import SORT_COLUMNS, Fleet

__all__ = ["FleetSource", "fleet_router"]

STATIC = resources.files("central.live") / "static"

_SORT_PATTERN = rf"^-?({'|'.join(SORT_COLUMNS)})$"


class FleetSource(Protocol):
    """What the fleet API reads (the running :class:`~central.live.service.LiveService`)."""

    def fleet(self, *, district: str | None, sort: str) -> Fleet: ...


def fleet_router(source: FleetSource, operator: Depends) -> APIRouter:
    """The fleet's routes; ``operator`` is the dependency that asks for the operator token."""
    router = APIRouter()

    @router.get("/api/v1/fleet", response_model=Fleet, dependencies=[operator], tags=["operator"])
    async def fleet(
        district: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=200,
                pattern=r"^[^\r\n\x00]+$",
                description="a district as the site directory names it, e.g. 山城区 or Shancheng",
            ),
        ] = None,
        sort: Annotated[
            str,
            Query(
                pattern=_SORT_PATTERN,
                description=f"one of {', '.join(SORT_COLUMNS)}; a leading - sorts descending",
            ),
        ] = "site",
    ) -> Response:
        """Every gateway: versions, uptime, last seen, outbox, drops, link errors, CPU
        temperature, disk and the Pi's under-voltage/throttling; stale rows marked."""
        try:
            view = source.fleet(district=district, sort=sort)
        except ValueError as exc:  # the pattern above should have caught it
            raise HTTPException(422, str(exc)) from exc
        return Response(
            view.model_dump_json(),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    @router.get("/fleet", include_in_schema=False)
    def fleet_page() -> FileResponse:
        return FileResponse(str(STATIC / "fleet.html"), media_type="text/html; charset=utf-8")

    return router
