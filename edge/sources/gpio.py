"""GPIO source: door contacts, seat switches and PIR detectors wired to the gateway's pins.

gpiozero calls back from its own thread; we hop onto the event loop and
debounce there (a change counts once the pin has held its new level for
``debounce``), the same way on every pin factory. The pin factory is given by
the caller: gpiozero's default (``GPIOZERO_PIN_FACTORY``) on a Pi, its
MockFactory in tests and the demo.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gpiozero import DigitalInputDevice, GPIOZeroError

from edge.config import GpioInputConfig
from edge.errors import GpioError
from edge.sources.base import Emit
from edge.stamps import Stamper
from qihe.clock import Clock, utc_now
from qihe.contract import DoorReading, MotionReading, Reading, SeatReading

__all__ = ["GpioSource"]

log = logging.getLogger(__name__)

GPIO_DEVICE = "gpio"


class _Input:
    def __init__(self, config: GpioInputConfig, device: Any) -> None:
        self.config = config
        self.device = device
        self.published: bool | None = None
        self.settle: asyncio.TimerHandle | None = None


class GpioSource:
    def __init__(
        self,
        inputs: tuple[GpioInputConfig, ...],
        *,
        site: str,
        gateway: str,
        emit: Emit,
        pin_factory: Any = None,
        clock: Clock = utc_now,
    ) -> None:
        self.name = "gpio"
        self._configs = inputs
        self._site = site
        self._gateway = gateway
        self._emit = emit
        self._pin_factory = pin_factory
        # Strictly increasing: two edges within one microsecond stay two points.
        self._clock = Stamper(clock)
        self._inputs: list[_Input] = []
        self.changes = 0

    def _reading(self, config: GpioInputConfig, active: bool) -> Reading:
        common: dict[str, Any] = {
            "site": self._site,
            "gateway": self._gateway,
            "device": GPIO_DEVICE,
            "sensor": config.sensor,
            "ts": self._clock(),
        }
        if config.kind == "door":
            return DoorReading(open=active, **common)
        if config.kind == "seat":
            return SeatReading(occupied=active, **common)
        return MotionReading(motion=active, **common)

    def _claim(self, config: GpioInputConfig) -> Any:
        # gpiozero ties its own "active" to the pull resistor; we read the raw level and
        # apply active_high ourselves, so any wiring can be described.
        try:
            return DigitalInputDevice(
                config.pin,
                pull_up=config.pull_up,
                active_state=True if config.pull_up is None else None,
                pin_factory=self._pin_factory,
            )
        except (GPIOZeroError, ValueError, OSError) as exc:
            raise GpioError(f"gpio pin {config.pin!r} ({config.sensor}): {exc}") from exc

    def _settled(self, item: _Input) -> None:
        item.settle = None
        level = bool(item.device.pin.state)
        active = level == item.config.active_high
        if active != item.published:
            item.published = active
            self.changes += 1
            self._emit(self._reading(item.config, active))

    def _edge(self, item: _Input) -> None:
        if item.settle is not None:
            item.settle.cancel()
        loop = asyncio.get_running_loop()
        item.settle = loop.call_later(item.config.debounce.total_seconds(), self._settled, item)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for config in self._configs:
                device = await loop.run_in_executor(None, self._claim, config)
                item = _Input(config, device)
                self._inputs.append(item)

                def on_change(item: _Input = item) -> None:
                    loop.call_soon_threadsafe(self._edge, item)

                device.when_activated = on_change
                device.when_deactivated = on_change
                self._settled(item)  # the present state, published once at start
                log.info("gpio pin %s → %s %s", config.pin, config.kind, config.sensor)
            await asyncio.Event().wait()
        finally:
            for item in self._inputs:
                if item.settle is not None:
                    item.settle.cancel()
                item.device.close()
            self._inputs.clear()
