"""``qihe gateway doctor`` checks that Zigbee2MQTT's broker answers, beside the central one."""

from __future__ import annotations

import io
import socket
from pathlib import Path
from types import SimpleNamespace

import yaml

from devstack import MosquittoProcess
from edge.doctor import run_doctor


def doctor(tmp_path: Path, broker: MosquittoProcess, zigbee_port: int) -> tuple[int, str]:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": "shancheng-dongxiang",
                "gateway": "gw1",
                "state_dir": str(tmp_path),
                "broker": {"host": broker.host, "port": broker.port},
                "zigbee": {
                    "broker": {"host": "127.0.0.1", "port": zigbee_port},
                    "devices": [
                        {"friendly_name": "front_door", "sensor": "front-door", "contact": True}
                    ],
                },
            }
        )
    )
    out = io.StringIO()
    code = run_doctor(
        config,
        timeout=3,
        out=out,
        clock_trust=SimpleNamespace(synchronised=lambda: True),
        statvfs=lambda _p: SimpleNamespace(f_bavail=50, f_blocks=100, f_frsize=2**30),
    )
    return code, out.getvalue()


def test_doctor_says_the_zigbee2mqtt_broker_answers(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    code, text = doctor(tmp_path, mosquitto, mosquitto.port)
    assert code == 0, text
    assert f"✓ Zigbee2MQTT 代理 broker: 127.0.0.1:{mosquitto.port} 已连接 connected" in text


def test_doctor_fails_when_the_zigbee2mqtt_broker_is_unreachable(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    code, text = doctor(tmp_path, mosquitto, closed)
    assert code == 1
    (line,) = [x for x in text.splitlines() if "Zigbee2MQTT" in x]
    assert line.startswith(f"✗ Zigbee2MQTT 代理 broker: 127.0.0.1:{closed} 无法连接 unreachable")
    assert f"✓ MQTT 代理 broker: 127.0.0.1:{mosquitto.port}" in text
