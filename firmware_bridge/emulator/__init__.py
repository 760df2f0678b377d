"""A book-house sensor board on a pty: simulated seats, people counter, door and supply.

The model (:mod:`.model`) and the board's protocol behaviour (:mod:`.board`) are
sans-IO and deterministic; :class:`BookHouseEmulator` runs them on a
:class:`PtyPort` (or a real serial device) with faults switchable at run time.
"""

from __future__ import annotations

from firmware_bridge.emulator.board import Board
from firmware_bridge.emulator.config import MAX_SEATS, EmulatorConfig
from firmware_bridge.emulator.model import SUPPLY_SENSOR, BookHouseModel
from firmware_bridge.emulator.port import PtyPort, SerialDevicePort
from firmware_bridge.emulator.profile import SHANGHAI, OpeningHours, SupplyCurve
from firmware_bridge.emulator.runner import BookHouseEmulator
from firmware_bridge.emulator.window import HOLD_HORIZON, ReportWindow

__all__ = [
    "HOLD_HORIZON",
    "MAX_SEATS",
    "SHANGHAI",
    "SUPPLY_SENSOR",
    "Board",
    "BookHouseEmulator",
    "BookHouseModel",
    "EmulatorConfig",
    "OpeningHours",
    "PtyPort",
    "ReportWindow",
    "SerialDevicePort",
    "SupplyCurve",
]
