"""Every usage figure by name: the one list the command and the report choose from."""

from __future__ import annotations

from central.usage.figures.air import AIR
from central.usage.figures.base import Figure
from central.usage.figures.counts import ATTENDANCE, DOORS, VISITORS
from central.usage.figures.held import HELD
from central.usage.figures.levels import OCCUPANCY, PEAKS, TYPICAL
from central.usage.figures.seats import STAYS, UTILISATION

__all__ = ["FIGURES"]

#: A new figure is a :class:`Figure` in one of the figure modules and one line here (and its
#: subcommand in :mod:`central.usage.parsers`).
FIGURES: dict[str, Figure] = {
    figure.name: figure
    for figure in (
        VISITORS, OCCUPANCY, UTILISATION, PEAKS, STAYS, DOORS, ATTENDANCE, TYPICAL, AIR, HELD
    )
}  # fmt: skip
