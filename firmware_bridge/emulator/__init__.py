"""A book-house sensor board on a pty: simulated seats, people counter, door and supply.

The model (:mod:`.model`) and the board's protocol behaviour (:mod:`.board`) are
sans-IO and deterministic; :class:`BookHouseEmulator` runs them on a
:class:`PtyPort` (or a real serial device) with faults switchable at run time.
"""

from __future__ import annotations

from firmware_bridge.emulator.board import FIRMWARE, Board, BoardCounters
from firmware_bridge.emulator.config import MAX_SEATS, EmulatorConfig
from firmware_bridge.emulator.line import DroppedFrame, DropReason, JournalEntry, Line, LineCounters
from firmware_bridge.emulator.model import SUPPLY_SENSOR, BookHouseModel, HouseState
from firmware_bridge.emulator.noise import LineNoise
from firmware_bridge.emulator.port import Port, PtyPort, SerialDevicePort
from firmware_bridge.emulator.profile import SHANGHAI, OpeningHours, SupplyCurve, VisitorProfile
from firmware_bridge.emulator.runner import BookHouseEmulator, EmulatorState
from firmware_bridge.emulator.window import HOLD_HORIZON, ProducedReport, ReportFate, ReportWindow

__all__ = [
    "FIRMWARE",
    "HOLD_HORIZON",
    "MAX_SEATS",
    "SHANGHAI",
    "SUPPLY_SENSOR",
    "Board",
    "BoardCounters",
    "BookHouseEmulator",
    "BookHouseModel",
    "DropReason",
    "DroppedFrame",
    "EmulatorConfig",
    "EmulatorState",
    "HouseState",
    "JournalEntry",
    "Line",
    "LineCounters",
    "LineNoise",
    "OpeningHours",
    "Port",
    "ProducedReport",
    "PtyPort",
    "ReportFate",
    "ReportWindow",
    "SerialDevicePort",
    "SupplyCurve",
    "VisitorProfile",
]
