"""The usage figures the city office reports, each a :class:`~central.usage.figures.base.Figure`
computed by one skeleton (:func:`~central.usage.figures.base.compute`) into a Table.

- :mod:`~central.usage.figures.base`: what a figure is, and the skeleton every figure shares;
- :mod:`~central.usage.figures.readings`: step functions and counted events from the readings;
- :mod:`~central.usage.figures.counts`: visitors, door openings, day-care attendance;
- :mod:`~central.usage.figures.levels`: occupancy, peaks, typical busy times;
- :mod:`~central.usage.figures.seats`: seat utilisation, stays;
- :mod:`~central.usage.figures.air`: the air of the rooms (CO₂, temperature, humidity);
- :mod:`~central.usage.figures.registry`: every figure by name.

Every figure reads through a :class:`~central.usage.client.ReadingsSource` (InfluxDB selects
one site's readings in the range plus the reading carried in from before it) and computes in
Python with :mod:`central.usage.steps`, because each figure is a step function (a state holds
until the next reading), a counter across resets, or an interval. ``docs/statistics.md`` defines
each one.
"""

from central.usage.figures.air import AIR
from central.usage.figures.base import Ask, compute, sites_in
from central.usage.figures.counts import ATTENDANCE, DOORS, VISITORS
from central.usage.figures.levels import OCCUPANCY, PEAKS, TYPICAL
from central.usage.figures.registry import FIGURES
from central.usage.figures.seats import STAYS, UTILISATION

__all__ = [
    "AIR",
    "ATTENDANCE",
    "DOORS",
    "FIGURES",
    "OCCUPANCY",
    "PEAKS",
    "STAYS",
    "TYPICAL",
    "UTILISATION",
    "VISITORS",
    "Ask",
    "compute",
    "sites_in",
]
