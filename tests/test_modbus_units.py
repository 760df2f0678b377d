"""The Modbus pieces without a bus: the RTU codec, profiles, the site config, counter totals."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymodbus.framer import FramerRTU

from edge.config import GatewayConfig, load_gateway_config
from edge.sources.modbus_config import ModbusConfig
from edge.sources.modbus_profiles import (
    PROFILE_NAME,
    ModbusProfile,
    RegisterSpec,
    decode_value,
    load_profile,
    plan_reads,
)
from edge.sources.modbus_rtu import (
    EXCEPTION_NAMES,
    MAX_REGISTERS,
    ExceptionReply,
    ModbusFrameError,
    ReadRequest,
    Registers,
    decode_reply,
    encode_request,
    silence_error,
)
from edge.sources.modbus_totals import (
    WRAP_WINDOW,
    CounterTrack,
    load_tracks,
    restore,
    save_tracks,
)
from qihe.configfile import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "config" / "modbus"


def _framed(body: bytes) -> bytes:
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


# -- the RTU codec ------------------------------------------------------------------------

READ_2 = ReadRequest(1, "holding", 0, 2)


def test_a_request_is_the_bytes_the_modbus_spec_gives() -> None:
    # Modbus over serial line: read holding 0-1 of unit 1 is 01 03 0000 0002 C40B.
    assert encode_request(READ_2).hex() == "010300000002c40b"
    assert encode_request(ReadRequest(17, "input", 8, 1)).hex()[:12] == "110400080001"


def test_an_answer_gives_the_registers() -> None:
    answer = _framed(bytes([1, 3, 4, 0x12, 0x34, 0xAB, 0xCD]))
    assert decode_reply(READ_2, answer) == Registers((0x1234, 0xABCD))


def test_every_strict_prefix_of_an_answer_waits_for_more() -> None:
    answer = _framed(bytes([1, 3, 4, 0, 1, 0, 2]))
    for end in range(len(answer)):
        assert decode_reply(READ_2, answer[:end]) is None


def test_an_exception_answer_names_its_code() -> None:
    reply = decode_reply(READ_2, _framed(bytes([1, 0x83, 2])))
    assert reply == ExceptionReply(2)
    assert isinstance(reply, ExceptionReply) and reply.text == EXCEPTION_NAMES[2]


def test_noise_before_an_answer_is_skipped_and_counted() -> None:
    answer = _framed(bytes([1, 3, 4, 0, 1, 0, 2]))
    assert decode_reply(READ_2, b"\x00\x01\xff" + answer) == Registers((1, 2), noise=3)


MALFORMED = {
    "crc of an answer": (_framed(bytes([1, 3, 4, 0, 1, 0, 2]))[:-1] + b"\x00", "crc"),
    "crc of an exception": (_framed(bytes([1, 0x83, 2]))[:-1] + b"\x00", "crc"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_bad_crc_is_a_crc_error_at_once(name: str) -> None:
    data, kind = MALFORMED[name]
    with pytest.raises(ModbusFrameError) as caught:
        decode_reply(READ_2, data)
    assert caught.value.kind == kind


SILENCE = {
    "another unit's answer": _framed(bytes([2, 3, 4, 0, 1, 0, 2])),
    "a wrong byte count": _framed(bytes([1, 3, 2, 0, 1])),
    "another function": _framed(bytes([1, 4, 4, 0, 1, 0, 2])),
    "plain noise": bytes(range(0xF0, 0xFF)),
}


@pytest.mark.parametrize("name", list(SILENCE))
def test_bytes_that_are_no_answer_wait_then_are_malformed(name: str) -> None:
    data = SILENCE[name]
    assert decode_reply(READ_2, data) is None
    error = silence_error(READ_2, data)
    assert error is not None and error.kind == "malformed"


def test_nothing_at_all_is_a_timeout_not_a_malformed_answer() -> None:
    assert silence_error(READ_2, b"") is None


@pytest.mark.parametrize(
    ("unit", "address", "count"), [(0, 0, 1), (248, 0, 1), (1, 0, 0), (1, 0, 126), (1, 65535, 2)]
)
def test_a_request_out_of_the_protocol_is_refused(unit: int, address: int, count: int) -> None:
    with pytest.raises(ValueError):
        ReadRequest(unit, "holding", address, count)
    assert MAX_REGISTERS == 125


# -- profiles -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(PROFILES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_profile_loads(path: Path) -> None:
    assert load_profile(PROFILES, path.stem).registers
    assert re.fullmatch(PROFILE_NAME, path.stem)


def test_the_generic_profiles_cover_counter_air_and_presence() -> None:
    meanings = {p.stem: load_profile(PROFILES, p.stem).meanings for p in PROFILES.glob("*.yaml")}
    assert meanings["people_counter"] == {"people_in", "people_out"}
    assert meanings["air_sensor"] == {"temperature_c", "humidity_pct", "co2_ppm"}
    assert meanings["presence_sensor"] == {"presence"}


def _spec(**fields: Any) -> RegisterSpec:
    return RegisterSpec.model_validate({"meaning": "co2_ppm", "address": 0, **fields})


@pytest.mark.parametrize(
    ("fields", "words", "value"),
    [
        ({}, [812], 812),
        ({"type": "int16", "scale": 0.1}, [0xFFDD], -3.5),
        ({"type": "uint32"}, [0x0001, 0x0002], 65538),
        ({"type": "uint32", "word_order": "little"}, [0x0002, 0x0001], 65538),
        ({"type": "int32"}, [0xFFFF, 0xFFFE], -2),
        ({"scale": 0.5, "offset": -40}, [100], 10.0),
    ],
)
def test_a_register_value_decodes_as_its_spec_says(
    fields: dict[str, Any], words: list[int], value: float
) -> None:
    assert decode_value(_spec(**fields), words) == pytest.approx(value)


BAD_PROFILES = {
    "unknown meaning": ("registers: [{meaning: noise_db, address: 0}]", "meaning"),
    "unknown key": ("registers: [{meaning: co2_ppm, address: 0, adress: 1}]", "adress"),
    "32 bits past the end": (
        "registers: [{meaning: co2_ppm, address: 65535, type: uint32}]",
        "runs past 65535",
    ),
    "negative address": ("registers: [{meaning: co2_ppm, address: -1}]", "address"),
    "signed counter": (
        "registers: [{meaning: people_in, address: 0, type: int16}, "
        "{meaning: people_out, address: 1}]",
        "is a counter",
    ),
    "scaled counter": (
        "registers: [{meaning: people_in, address: 0, scale: 0.1}, "
        "{meaning: people_out, address: 1}]",
        "is a counter",
    ),
    "in without out": ("registers: [{meaning: people_in, address: 0}]", "both people_in"),
    "meaning twice": (
        "registers: [{meaning: co2_ppm, address: 0}, {meaning: co2_ppm, address: 1}]",
        "repeated: co2_ppm",
    ),
    "overlap": (
        "registers: [{meaning: co2_ppm, address: 0, type: uint32}, "
        "{meaning: temperature_c, address: 1}]",
        "overlap",
    ),
    "zero scale": ("registers: [{meaning: co2_ppm, address: 0, scale: 0}]", "scale 0"),
    "no registers": ("registers: []", "registers"),
    "bad word order": (
        "registers: [{meaning: co2_ppm, address: 0, type: uint32, word_order: middle}]",
        "word_order",
    ),
}


@pytest.mark.parametrize("name", list(BAD_PROFILES))
def test_a_bad_profile_is_refused_naming_the_key(name: str, tmp_path: Path) -> None:
    body, expected = BAD_PROFILES[name]
    (tmp_path / "bad.yaml").write_text(f"description: bad\n{body}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_profile(tmp_path, "bad")
    assert str(tmp_path / "bad.yaml") in str(caught.value)
    assert expected in str(caught.value)


def test_neighbouring_registers_are_read_in_one_request_distant_ones_apart() -> None:
    profile = ModbusProfile.model_validate(
        {
            "description": "mixed",
            "registers": [
                {"meaning": "humidity_pct", "table": "input", "address": 0},
                {"meaning": "temperature_c", "table": "input", "address": 1},
                {"meaning": "co2_ppm", "table": "input", "address": 200},
                {"meaning": "presence", "table": "holding", "address": 5},
            ],
        }
    )
    reads = plan_reads(profile.registers)
    assert [(r.table, r.address, r.count) for r in reads] == [
        ("holding", 5, 1),
        ("input", 0, 2),
        ("input", 200, 1),
    ]


# -- the site config ------------------------------------------------------------------------


def test_the_example_site_config_loads() -> None:
    config = load_gateway_config(ROOT / "config" / "gateway-modbus.yaml")
    assert config.modbus is not None
    port = config.modbus.ports[0]
    assert [d.profile for d in port.devices] == ["people_counter", "air_sensor"]
    assert config.modbus.profile("air_sensor").meanings == {
        "temperature_c",
        "humidity_pct",
        "co2_ppm",
    }


def test_qihe_gateway_check_accepts_the_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qihe_cli.main", "gateway", "check", "--config",
         "config/gateway-modbus.yaml"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def _site(**modbus: Any) -> dict[str, Any]:
    port = {
        "name": "rs485-1",
        "path": "/dev/ttyUSB0",
        "devices": [{"unit": 1, "profile": "people_counter", "sensor": "entrance"}],
    }
    return {
        "site": "qibin-dongfang",
        "gateway": "gw1",
        "broker": {"host": "127.0.0.1"},
        "modbus": {"profile_dir": str(PROFILES), "ports": [port], **modbus},
    }


def _port(**fields: Any) -> dict[str, Any]:
    port: dict[str, Any] = _site()["modbus"]["ports"][0]
    return {**port, **fields}


BAD_CONFIGS = {
    "missing profile": (
        {"ports": [_port(devices=[{"unit": 1, "profile": "nope", "sensor": "x"}])]},
        "nope.yaml",
    ),
    "unit 0": (
        {"ports": [_port(devices=[{"unit": 0, "profile": "people_counter", "sensor": "x"}])]},
        "unit",
    ),
    "unit twice": (
        {
            "ports": [
                _port(
                    devices=[
                        {"unit": 1, "profile": "people_counter", "sensor": "a"},
                        {"unit": 1, "profile": "air_sensor", "sensor": "b"},
                    ]
                )
            ]
        },
        "unique",
    ),
    "sensor twice": (
        {"ports": [_port(), _port(name="rs485-2", path="/dev/ttyUSB1")]},
        "sensors must be unique",
    ),
    "path twice": (
        {
            "ports": [
                _port(),
                _port(
                    name="rs485-2", devices=[{"unit": 1, "profile": "air_sensor", "sensor": "b"}]
                ),
            ]
        },
        "port paths must be unique",
    ),
    "bad parity": ({"ports": [_port(parity="X")]}, "parity"),
    "timeout too long": ({"ports": [_port(timeout=30)]}, "timeout"),
    "no devices": ({"ports": [_port(devices=[])]}, "devices"),
    "profile name with a path": (
        {"ports": [_port(devices=[{"unit": 1, "profile": "../secrets", "sensor": "x"}])]},
        "profile",
    ),
    "unknown key": ({"ports": [_port(baud=9600)]}, "baud"),
    "zero interval": (
        {
            "ports": [
                _port(
                    devices=[{"unit": 1, "profile": "people_counter", "sensor": "x", "interval": 0}]
                )
            ]
        },
        "positive",
    ),
    "bad presence_as": (
        {
            "ports": [
                _port(
                    devices=[
                        {
                            "unit": 1,
                            "profile": "presence_sensor",
                            "sensor": "x",
                            "presence_as": "door",
                        }
                    ]
                )
            ]
        },
        "presence_as",
    ),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_a_bad_modbus_config_is_refused_with_a_clear_message(name: str, tmp_path: Path) -> None:
    modbus, expected = BAD_CONFIGS[name]
    site = _site(**modbus)
    path = tmp_path / "gateway.yaml"
    path.write_text(json.dumps(site), encoding="utf-8")  # JSON is YAML
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)
    message = str(caught.value)
    assert expected in message
    assert "Traceback" not in message


def test_a_port_cannot_be_both_a_board_and_a_modbus_bus() -> None:
    site = _site()
    site["serial"] = [{"path": "/dev/ttyUSB0", "device": "board-a"}]
    with pytest.raises(ValueError, match="both serial and modbus"):
        GatewayConfig.model_validate(site)


def test_modbus_alone_is_a_source() -> None:
    config = GatewayConfig.model_validate(_site())
    assert isinstance(config.modbus, ModbusConfig)


# -- counter totals -------------------------------------------------------------------------


def test_a_reset_adds_what_was_counted_before_it() -> None:
    track = CounterTrack(bits=16)
    assert track.update(100) == (100, None)
    assert track.update(7) == (107, "reset")
    assert track.update(9) == (109, None)


def test_a_wrap_adds_the_top_of_the_register() -> None:
    track = CounterTrack(bits=16)
    track.update(65_530)
    assert track.update(4) == (65_540, "wrap")


def test_a_fall_from_below_the_wrap_window_is_a_reset() -> None:
    track = CounterTrack(bits=16)
    track.update(65_536 - WRAP_WINDOW - 1)
    assert track.update(3)[1] == "reset"


def test_32_bit_counters_wrap_at_their_own_top() -> None:
    track = CounterTrack(bits=32)
    track.update(2**32 - 2)
    assert track.update(1) == (2**32 + 1, "wrap")


def test_the_bases_survive_a_restart_through_the_file(tmp_path: Path) -> None:
    track = CounterTrack(bits=16)
    track.update(100)
    track.update(5)
    path = tmp_path / "counters.json"
    save_tracks(path, {"rs485-1/entrance/in": track.to_json()})
    again = restore(CounterTrack(bits=16), load_tracks(path)["rs485-1/entrance/in"])
    assert again.update(6) == (106, None)


@pytest.mark.parametrize("text", ["not json", '{"a": 5}', "[1, 2]", '{"a": ["x", 1]}'])
def test_a_damaged_bases_file_is_ignored_with_a_warning(
    text: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "counters.json"
    path.write_text(text, encoding="utf-8")
    assert load_tracks(path) == {}  # the totals start again from the registers
    assert text == '{"a": 5}' or "damaged" in caplog.text


def test_a_saved_base_out_of_range_is_not_restored() -> None:
    track = restore(CounterTrack(bits=16), [5, 70_000])
    assert (track.base, track.last) == (0, None)


# -- the docs' examples -----------------------------------------------------------------------


def _modbus_yaml_blocks() -> list[str]:
    text = (ROOT / "docs" / "sensors.md").read_text(encoding="utf-8")
    section = text[text.index("## Modbus RTU") : text.index("## Zigbee")]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.S)


def test_the_docs_profile_example_is_a_valid_profile() -> None:
    profile = ModbusProfile.model_validate(yaml.safe_load(_modbus_yaml_blocks()[0]))
    assert profile.meanings == {"co2_ppm", "temperature_c", "humidity_pct"}


def test_the_docs_config_example_is_a_valid_modbus_section() -> None:
    section = yaml.safe_load(_modbus_yaml_blocks()[1])["modbus"]
    section["profile_dir"] = str(PROFILES)
    config = ModbusConfig.model_validate(section)
    assert [d.sensor for d in config.ports[0].devices] == ["entrance", "study-room", "desk-7"]
