"""The MQTT wire contract: one definition of topics and payloads, imported by both sides."""

from qihe.contract.errors import ContractError, PayloadError, TopicError
from qihe.contract.payloads import (
    ID_PATTERN,
    READING_KINDS,
    SCHEMA_VERSION,
    DeviceReading,
    DoorReading,
    FaultReading,
    GatewayStatus,
    HeartbeatReading,
    LinkReading,
    MotionReading,
    PeopleReading,
    Reading,
    SeatReading,
    encode_payload,
    parse_reading,
    parse_status,
)
from qihe.contract.topics import DEFAULT_PREFIX, RETAINED_KINDS, TopicParts, TopicTree

__all__ = [
    "DEFAULT_PREFIX",
    "ID_PATTERN",
    "READING_KINDS",
    "RETAINED_KINDS",
    "SCHEMA_VERSION",
    "ContractError",
    "DeviceReading",
    "DoorReading",
    "FaultReading",
    "GatewayStatus",
    "HeartbeatReading",
    "LinkReading",
    "MotionReading",
    "PayloadError",
    "PeopleReading",
    "Reading",
    "SeatReading",
    "TopicError",
    "TopicParts",
    "TopicTree",
    "encode_payload",
    "parse_reading",
    "parse_status",
]
