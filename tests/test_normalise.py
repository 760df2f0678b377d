"""Frames become readings named so that every sensor of a board has its own topic."""

from __future__ import annotations

from datetime import UTC, datetime

from edge.normalise import FrameNormaliser
from firmware_bridge.messages import Fault, FaultCode, Frame, SensorKind, SensorRef
from qihe.contract import FaultReading, TopicTree

T0 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def _fault(seq: int, kind: SensorKind, code: FaultCode) -> FaultReading:
    normaliser = FrameNormaliser("qibin-taoyuan", "gw1", "board-a", clock=lambda: T0)
    reading = normaliser.on_frame(Frame(seq, Fault(SensorRef(kind, 1), code, True)))
    assert isinstance(reading, FaultReading)
    return reading


def test_a_fault_names_the_sensor_it_is_about_by_that_sensors_own_id() -> None:
    reading = _fault(1, SensorKind.SEAT, FaultCode.STUCK)

    assert (reading.target_kind, reading.target) == ("seat", "board-a.1")
    assert reading.sensor == "board-a.seat.1"


def test_faults_of_seat_1_and_counter_1_keep_separate_retained_topics() -> None:
    seat = _fault(1, SensorKind.SEAT, FaultCode.STUCK)
    counter = _fault(2, SensorKind.PEOPLE, FaultCode.SUPPLY_LOW)
    tree = TopicTree()

    topics = {tree.reading(r.site, r.gateway, r.kind, r.sensor) for r in (seat, counter)}

    assert topics == {
        "qihe/v1/qibin-taoyuan/gw1/fault/board-a.seat.1",
        "qihe/v1/qibin-taoyuan/gw1/fault/board-a.people.1",
    }
