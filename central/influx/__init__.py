"""InfluxDB access: one session per server, and its users.

- ``config``: where a server is and how to log in (:class:`InfluxServer`), and the writers' configs;
- ``session``: the one HTTP session, and the one place InfluxDB's answers become errors;
- ``writer`` (the seam), ``v1``, ``v2``: line protocol to ``/write`` or ``/api/v2/write``,
  chosen by ``api`` (:func:`open_writer`, the explicit registry of write APIs);
- ``reader``: read-only InfluxQL (``GET /query``); ``admin``: statements that change a 1.x
  server (``POST /query``);
- ``line_protocol``: the encoder of the lines the writers send.
"""

from central.influx.config import InfluxConfig, InfluxV1Config, InfluxV2Config
from central.influx.line_protocol import FieldValue, Point, datetime_to_ns, encode_line
from central.influx.v1 import InfluxV1Writer
from central.influx.v2 import InfluxV2Writer
from central.influx.writer import PointWriter

__all__ = [
    "FieldValue",
    "InfluxV1Writer",
    "InfluxV2Writer",
    "Point",
    "PointWriter",
    "datetime_to_ns",
    "encode_line",
    "open_writer",
]


def open_writer(config: InfluxConfig) -> PointWriter:
    """The writer for ``config.api`` (the explicit registry of write APIs)."""
    match config:
        case InfluxV1Config():
            return InfluxV1Writer(config)
        case InfluxV2Config():
            return InfluxV2Writer(config)
