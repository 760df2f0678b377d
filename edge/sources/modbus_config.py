"""The ``modbus:`` section of a gateway config: RS485 ports, and the devices on each.

Each device names a profile (``config/modbus/{profile}.yaml``) and its unit id; the
profiles are loaded and checked with the config, so ``qihe gateway check`` refuses a
site whose profile is missing or wrong before anything is opened.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, model_validator

from edge.sources.modbus_profiles import PROFILE_NAME, ModbusProfile, load_profile
from qihe.configfile import ConfigError
from qihe.configtypes import Duration, Ident, StrictModel

__all__ = ["ModbusConfig", "ModbusDeviceConfig", "ModbusPortConfig"]


class ModbusDeviceConfig(StrictModel):
    """One device on a bus: its unit id, its profile, the sensor id its readings carry."""

    unit: int = Field(ge=1, le=247, description="the Modbus unit (slave) id set on the device")
    profile: Annotated[str, Field(pattern=PROFILE_NAME)]
    sensor: Ident
    #: How often it is read. A device that does not answer is asked less often (backoff).
    interval: Duration = timedelta(seconds=10)
    #: A presence register becomes a motion reading (a PIR-like detector) or a seat reading.
    presence_as: Literal["motion", "seat"] = "motion"


class ModbusPortConfig(StrictModel):
    """One RS485 adapter (a bus) and the devices wired to it."""

    #: The bus's id: the readings' ``device`` and the id of its link readings.
    name: Ident
    path: str = Field(min_length=1, description="device path; prefer /dev/serial/by-id/...")
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    #: How long one request waits for its answer: bounds what a silent device costs the bus.
    timeout: Duration = Field(default=timedelta(milliseconds=500), le=timedelta(seconds=5))
    #: A device that does not answer is asked again after its interval, doubled per miss up
    #: to this.
    backoff_max: Duration = timedelta(seconds=60)
    #: After this many polls in a row without an answer, the device is reported absent.
    absent_after: int = Field(default=3, ge=1, le=100)
    reconnect_min: Duration = timedelta(milliseconds=500)
    reconnect_max: Duration = timedelta(seconds=30)
    devices: tuple[ModbusDeviceConfig, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ModbusPortConfig:
        units = [d.unit for d in self.devices]
        if len(set(units)) != len(units):
            raise ValueError(f"unit ids on one bus must be unique, got {units}")
        return self


class ModbusConfig(StrictModel):
    """RS485 buses read with Modbus RTU (``docs/sensors.md``)."""

    #: Where the profiles are: ``{profile_dir}/{profile}.yaml``. A relative path is taken
    #: from the gateway's working directory.
    profile_dir: Path = Path("/etc/qihe/modbus")
    ports: tuple[ModbusPortConfig, ...] = Field(min_length=1)
    _profiles: dict[str, ModbusProfile] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> ModbusConfig:
        for what, values in (
            ("port names", [p.name for p in self.ports]),
            ("port paths", [p.path for p in self.ports]),
            ("sensors", [d.sensor for p in self.ports for d in p.devices]),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"modbus {what} must be unique, got {values}")
        for port in self.ports:
            for device in port.devices:
                if device.profile not in self._profiles:
                    try:
                        self._profiles[device.profile] = load_profile(
                            self.profile_dir, device.profile
                        )
                    except ConfigError as exc:
                        raise ValueError(
                            f"device {device.sensor} (unit {device.unit} on {port.name}): "
                            f"profile {device.profile!r}: {exc}"
                        ) from None
        return self

    def profile(self, name: str) -> ModbusProfile:
        """A profile the config names (loaded and checked with the config)."""
        return self._profiles[name]
