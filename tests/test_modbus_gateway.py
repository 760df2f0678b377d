"""Modbus devices (pymodbus's server on a pty cable) → the whole gateway → a real Mosquitto;
and ``qihe gateway doctor`` asking each configured device."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer

from devstack import MosquittoProcess
from edge.config import GatewayConfig
from edge.doctor import check_modbus, run_doctor
from edge.gateway import Gateway
from edge.sources.modbus_profiles import ModbusProfile
from tests.mqtt_helpers import Recorder, running, wait_until
from tests.test_modbus_bus import ROOT, Line, _sim_device

pytestmark = pytest.mark.integration


@pytest.fixture
async def devices(tmp_path: Path) -> AsyncIterator[tuple[Line, ModbusSerialServer]]:
    line = Line(tmp_path)
    server = ModbusSerialServer(
        [_sim_device(1), _sim_device(2)],
        framer=FramerType.RTU,
        port=line.device_path,
        baudrate=9600,
    )
    await server.serve_forever(background=True)
    line.start()
    await server.async_setValues(1, 3, 0, [0, 130, 0, 121])
    await server.async_setValues(2, 4, 0, [512, 231, 1480])
    try:
        yield line, server
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        line.close()


def site(line: Line, state_dir: Path, broker: dict[str, Any]) -> dict[str, Any]:
    """The example site config, on the test's cable, broker and state folder."""
    data: dict[str, Any] = yaml.safe_load(
        (ROOT / "config" / "gateway-modbus.yaml").read_text(encoding="utf-8")
    )
    data["state_dir"] = str(state_dir)
    data["broker"] = broker
    data["clock"] = {"require_sync": False}
    data["link_report_interval"] = 0.2
    modbus = data["modbus"]
    modbus["profile_dir"] = str(ROOT / "config" / "modbus")
    port = modbus["ports"][0]
    port.update(path=line.gateway_path, timeout=0.2)
    for device in port["devices"]:
        device["interval"] = 0.1
    return data


async def test_modbus_readings_reach_the_broker_through_the_outbox(
    mosquitto: MosquittoProcess,
    topic_prefix: str,
    tmp_path: Path,
    devices: tuple[Line, ModbusSerialServer],
) -> None:
    line, _server = devices
    broker = {"host": mosquitto.host, "port": mosquitto.port, "topic_prefix": topic_prefix}
    config = GatewayConfig.model_validate(site(line, tmp_path, broker))
    root = f"{topic_prefix}/v1/qibin-dongfang/gw1"
    recorder = Recorder(mosquitto, f"{topic_prefix}/#")

    def payloads(topic: str) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in recorder.snapshot() if m.topic == topic]

    try:
        async with running(Gateway(config)):
            await wait_until(
                lambda: bool(
                    payloads(f"{root}/people/entrance")
                    and payloads(f"{root}/air/study-room")
                    and payloads(f"{root}/link/rs485-1")
                )
            )
    finally:
        recorder.close()
    people = payloads(f"{root}/people/entrance")[0]
    assert (people["in_total"], people["out_total"], people["device"]) == (130, 121, "rs485-1")
    air = payloads(f"{root}/air/study-room")[0]
    assert (air["humidity_pct"], air["temperature_c"], air["co2_ppm"]) == (
        pytest.approx(51.2),
        pytest.approx(23.1),
        1480,
    )
    assert "seq" not in air  # these sensors have no frame numbers
    assert payloads(f"{root}/link/rs485-1")[0]["frames"] >= 2


async def test_doctor_checks_each_modbus_device(
    mosquitto: MosquittoProcess, tmp_path: Path, devices: tuple[Line, ModbusSerialServer]
) -> None:
    line, _server = devices
    broker = {"host": mosquitto.host, "port": mosquitto.port}
    data = site(line, tmp_path, broker)
    data["modbus"]["ports"][0]["devices"].append(
        {"unit": 9, "profile": "presence_sensor", "sensor": "desk-9"}
    )
    line.muted.add(9)  # nothing at unit 9
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = io.StringIO()
    # The doctor blocks on the port; the cable's relay runs on this loop, so the doctor
    # runs in a thread.
    code = await asyncio.to_thread(run_doctor, path, out=out, timeout=2.0)
    lines = out.getvalue().splitlines()
    modbus = [ln for ln in lines if ln[2:].startswith("Modbus")]
    assert len(modbus) == 3, lines
    assert modbus[0].startswith("✓") and "unit 1 (entrance)" in modbus[0]
    assert modbus[1].startswith("✓") and "unit 2 (study-room)" in modbus[1]
    assert modbus[2].startswith("✗") and "no answer" in modbus[2]
    assert code == 1

    config = GatewayConfig.model_validate(data)
    assert config.modbus is not None
    port, counter = config.modbus.ports[0], config.modbus.ports[0].devices[0]
    far = ModbusProfile.model_validate(
        {"description": "far", "registers": [{"meaning": "co2_ppm", "address": 100}]}
    )
    result = await asyncio.to_thread(check_modbus, port, counter, far)
    assert not result.ok
    assert "exception 2 (illegal data address)" in result.line()
