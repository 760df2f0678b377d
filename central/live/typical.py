"""The typical busy times of each site, for "busy now compared with usual at this hour".

The profile is the output of ``qihe stats typical --format json`` (docs/statistics.md,
"typical"): one row per site, weekday (0 = Monday) and local hour with the 25th, 50th and 75th
percentiles (``low``, ``typical``, ``high``) of the share of seats occupied, in percent. A
timer runs that command (weekly is plenty) and the live service reads the file at start and
again whenever it changed (checked every hour): no database query on the live service's path.

A busy level is compared with the profile of its weekday and hour:

- ``busier``: above both the usual band (``high``) and ``typical`` + 5 points;
- ``quieter``: below both the band (``low``) and ``typical`` − 5 points;
- ``usual`` otherwise; None when the hour has no profile (a new site, no file).

The 5 points keep a small room from flickering between arrows when one seat changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = ["Trend", "TypicalError", "TypicalHour", "TypicalProfile", "trend"]

Trend = Literal["busier", "usual", "quieter"]
#: Points (of percent) a level must be off the typical value before it is not "usual".
MARGIN = 5.0


class TypicalError(ValueError):
    """The profile file cannot be read or is not ``qihe stats typical --format json``."""


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    site: str
    weekday: int = Field(ge=0, le=6)
    hour: int = Field(ge=0, le=23)
    low: float | None
    typical: float | None
    high: float | None


_ROWS: TypeAdapter[list[_Row]] = TypeAdapter(list[_Row])


@dataclass(frozen=True, slots=True)
class TypicalHour:
    low: float
    typical: float
    high: float


class TypicalProfile:
    """Per (site, weekday, hour) the usual busy level; empty when there is no file."""

    def __init__(self, hours: dict[tuple[str, int, int], TypicalHour] | None = None) -> None:
        self._hours = dict(hours or {})
        #: The file's modification time when it was read (to read it again only on change).
        self.mtime_ns: int | None = None

    @classmethod
    def load(cls, path: Path) -> TypicalProfile:
        """Read a profile file (blocking: call it off the event loop)."""
        try:
            mtime = os.stat(path).st_mtime_ns
            rows = _ROWS.validate_json(path.read_bytes())
        except OSError as exc:
            raise TypicalError(f"{path}: cannot read the typical busy times: {exc}") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise TypicalError(
                f"{path}: not the output of 'qihe stats typical --format json': "
                f"{where}: {first['msg']}"
            ) from None
        hours = {
            (r.site, r.weekday, r.hour): TypicalHour(r.low, r.typical, r.high)
            for r in rows
            if r.low is not None and r.typical is not None and r.high is not None
        }
        profile = cls(hours)
        profile.mtime_ns = mtime
        return profile

    def __len__(self) -> int:
        return len(self._hours)

    def at(self, site: str, weekday: int, hour: int) -> TypicalHour | None:
        return self._hours.get((site, weekday, hour))


def trend(level: float | None, usual: TypicalHour | None) -> Trend | None:
    """How ``level`` (percent) compares with ``usual`` (see the module's docstring)."""
    if level is None or usual is None:
        return None
    if level > max(usual.high, usual.typical + MARGIN):
        return "busier"
    if level < min(usual.low, usual.typical - MARGIN):
        return "quieter"
    return "usual"
