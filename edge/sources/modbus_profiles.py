"""Modbus device profiles: a device's register map as data (``config/modbus/*.yaml``).

A profile says where each value a device measures sits (holding or input registers, the
address), how it is encoded (16 or 32 bits, signed or not, which word comes first) and
what it means (``people_in``, ``people_out``, ``temperature_c``, ``humidity_pct``,
``co2_ppm``, ``presence``); the value is ``raw * scale + offset``. A site config names a
profile and a unit id; a new device model is a new file, not new code (``docs/sensors.md``,
"Writing a profile").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge.sources.modbus_rtu import MAX_REGISTERS, ReadRequest, Table
from qihe.configfile import load_config_file
from qihe.configtypes import StrictModel

__all__ = [
    "PROFILE_NAME",
    "ModbusProfile",
    "PlannedRead",
    "RegisterSpec",
    "decode_value",
    "load_profile",
    "plan_reads",
]

#: What a register's value means, and so which reading it goes to.
Meaning = Literal["people_in", "people_out", "temperature_c", "humidity_pct", "co2_ppm", "presence"]

#: A profile's name is its file's name without ``.yaml``.
PROFILE_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"

#: Counters are totals: whole, never negative, never scaled.
_COUNTERS = frozenset({"people_in", "people_out"})
#: Two registers further apart than this are read with two requests, not one spanning both.
_MAX_GAP = 8


class RegisterSpec(StrictModel):
    """One value of a device: where it is, how it is encoded, what it means."""

    meaning: Meaning
    table: Table = "holding"
    #: The register's address on the wire, from 0 (a data sheet's "40001" is holding 0).
    address: int = Field(ge=0, le=0xFFFF)
    type: Literal["uint16", "int16", "uint32", "int32"] = "uint16"
    #: 32-bit values: ``big`` when the high word comes first (the common case), ``little``
    #: when the low word does (some meters "swap words").
    word_order: Literal["big", "little"] = "big"
    scale: Annotated[float, Field(allow_inf_nan=False)] = 1.0
    offset: Annotated[float, Field(allow_inf_nan=False)] = 0.0

    @property
    def words(self) -> int:
        return 2 if self.type.endswith("32") else 1

    @property
    def bits(self) -> int:
        return 16 * self.words

    @model_validator(mode="after")
    def _fits(self) -> RegisterSpec:
        if self.address + self.words > 0x10000:
            raise ValueError(f"a {self.type} at address {self.address} runs past 65535")
        if self.scale == 0:
            raise ValueError("scale 0 would read every value as the offset")
        if self.meaning in _COUNTERS and (
            self.type.startswith("int") or self.scale != 1 or self.offset != 0
        ):
            raise ValueError(
                f"{self.meaning} is a counter: an unsigned type (uint16 or uint32), "
                "scale 1 and offset 0"
            )
        return self


class ModbusProfile(StrictModel):
    """A device model's register map."""

    description: str = Field(min_length=1, max_length=500)
    registers: tuple[RegisterSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ModbusProfile:
        meanings = [r.meaning for r in self.registers]
        repeated = sorted({m for m in meanings if meanings.count(m) > 1})
        if repeated:
            raise ValueError(f"each meaning at most once, repeated: {', '.join(repeated)}")
        if ("people_in" in meanings) != ("people_out" in meanings):
            raise ValueError("a people counter needs both people_in and people_out")
        taken: dict[tuple[str, int], str] = {}
        for spec in self.registers:
            for word in range(spec.address, spec.address + spec.words):
                other = taken.setdefault((spec.table, word), spec.meaning)
                if other != spec.meaning:
                    raise ValueError(
                        f"{spec.meaning} and {other} overlap at {spec.table} register {word}"
                    )
        return self

    @property
    def meanings(self) -> frozenset[str]:
        return frozenset(r.meaning for r in self.registers)

    def spec(self, meaning: str) -> RegisterSpec | None:
        return next((r for r in self.registers if r.meaning == meaning), None)


def load_profile(directory: Path, name: str) -> ModbusProfile:
    """``directory/name.yaml`` validated; raise ConfigError naming the file and the key."""
    return load_config_file(directory / f"{name}.yaml", ModbusProfile)


def decode_value(spec: RegisterSpec, words: Sequence[int]) -> float | int:
    """The value of ``spec`` from its register words (in address order)."""
    if spec.words == 2:
        high, low = (words[0], words[1]) if spec.word_order == "big" else (words[1], words[0])
        raw = (high << 16) | low
    else:
        raw = words[0]
    if spec.type.startswith("int") and raw >= 1 << (spec.bits - 1):
        raw -= 1 << spec.bits
    if spec.scale == 1 and spec.offset == 0:
        return raw
    return raw * spec.scale + spec.offset


@dataclass(frozen=True, slots=True)
class PlannedRead:
    """One request and the values it brings: ``(spec, index of its first word)``."""

    table: Table
    address: int
    count: int
    values: tuple[tuple[RegisterSpec, int], ...]

    def request(self, unit: int) -> ReadRequest:
        return ReadRequest(unit, self.table, self.address, self.count)


def plan_reads(registers: Sequence[RegisterSpec]) -> tuple[PlannedRead, ...]:
    """As few requests as read every register: neighbours (gaps up to a few registers) share
    one, at most :data:`MAX_REGISTERS` each. Fewer requests, less of the half-duplex bus."""
    plans: list[PlannedRead] = []
    for table in ("holding", "input"):
        specs = sorted((r for r in registers if r.table == table), key=lambda r: r.address)
        group: list[RegisterSpec] = []
        for spec in specs:
            if group:
                start = group[0].address
                end = max(r.address + r.words for r in group)
                if spec.address - end > _MAX_GAP or spec.address + spec.words - start > (
                    MAX_REGISTERS
                ):
                    plans.append(_planned(table, group))
                    group = []
            group.append(spec)
        if group:
            plans.append(_planned(table, group))
    return tuple(plans)


def _planned(table: Table, group: list[RegisterSpec]) -> PlannedRead:
    start = group[0].address
    end = max(r.address + r.words for r in group)
    return PlannedRead(table, start, end - start, tuple((r, r.address - start) for r in group))
