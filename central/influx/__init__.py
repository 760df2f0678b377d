"""InfluxDB sinks: a line-protocol encoder and one writer per write API, chosen by ``api``."""

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
