"""deploy/central: the systemd units, the compose file and the Dockerfile hold together.

No image is built or pulled here (no network for images): the compose file is parsed and every
project path it mounts must exist; the units go through ``systemd-analyze verify``.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CENTRAL = ROOT / "deploy" / "central"
UNITS = {
    "qihe-consumer.service": "consumer run --config /etc/qihe/consumer.yaml",
    "qihe-live.service": "live --config /etc/qihe/live.yaml",
    "qihe-alerts.service": "alerts --config /etc/qihe/alerts.yaml",
}
HARDENING = {
    "User": "qihe",
    "Group": "qihe",
    "Restart": "always",
    "EnvironmentFile": "-/etc/qihe/secrets.env",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "UMask": "0027",
}


def _unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((CENTRAL / name).read_text(encoding="utf-8"))
    return parser


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_runs_the_service_as_qihe_with_hardening_and_secrets_from_the_env_file(
    name: str,
) -> None:
    unit = _unit(name)
    service = dict(unit["Service"])
    assert service["ExecStart"] == f"/opt/qihe/venv/bin/qihe {UNITS[name]}"
    assert {key: service.get(key) for key in HARDENING} == HARDENING
    assert "network-online.target" in unit["Unit"]["After"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize("name", sorted(UNITS))
def test_the_service_commands_exist(name: str) -> None:
    args = UNITS[name].split()
    command = args[: args.index("--config")]
    done = subprocess.run(
        [sys.executable, "-m", "qihe_cli.main", *command, "--help"],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"--config" in done.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path) -> None:
    # verify checks that ExecStart is executable: point it at this checkout's qihe.
    qihe = Path(sys.executable).with_name("qihe")
    assert qihe.exists()
    for name in UNITS:
        text = (CENTRAL / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace("/opt/qihe/venv/bin/qihe", str(qihe)))
    done = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    mine = [line for line in done.stderr.splitlines() if str(tmp_path) in line]
    assert (done.returncode, mine) == (0, [])


# --- docker compose ---------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((CENTRAL / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_has_the_whole_stack() -> None:
    services = _compose()["services"]
    assert set(services) == {
        "mosquitto-init",
        "mosquitto",
        "influxdb",
        "consumer",
        "live",
        "alerts",
        "grafana",
    }
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert services["influxdb"]["image"] == "influxdb:1.8"
    assert services["influxdb"]["environment"]["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    assert "ports" not in services["influxdb"]  # reachable from the stack only
    assert services["grafana"]["image"].startswith("grafana/grafana-oss:")


def test_compose_runs_the_central_services_from_the_dockerfile() -> None:
    services = _compose()["services"]
    for name, args in (("consumer", "consumer run"), ("live", "live"), ("alerts", "alerts")):
        service = services[name]
        build = service["build"]
        dockerfile = (CENTRAL / build["context"] / build["dockerfile"]).resolve()
        assert dockerfile == (CENTRAL / "Dockerfile").resolve()
        assert service["command"][: len(args.split())] == args.split()
        assert service["command"][-2:] == ["--config", f"/etc/qihe/{name}.yaml"]
        assert service["restart"] == "always"
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert service["env_file"] == [{"path": "./secrets.env", "required": True}]
    assert services["live"]["ports"] == ["127.0.0.1:8080:8080"]


def _bind_sources(data: dict[str, Any]) -> list[str]:
    sources = []
    for service in data["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                sources.append(source)
    return sources


def test_compose_mounts_only_paths_that_exist_in_the_project() -> None:
    sources = _bind_sources(_compose())
    assert "../mosquitto" in sources
    assert "../grafana/provisioning" in sources
    assert "../grafana/dashboards" in sources
    missing = [s for s in sources if not (CENTRAL / s).exists()]
    assert missing == []


def test_compose_secrets_file_has_a_template_and_is_not_committed() -> None:
    assert (CENTRAL / "secrets.env.example").is_file()
    assert "secrets.env" in (CENTRAL / ".gitignore").read_text(encoding="utf-8").split()
    template = (CENTRAL / "secrets.env.example").read_text(encoding="utf-8")
    values = re.findall(r"^(\w+)=(.*)$", template, flags=re.MULTILINE)
    assert "QIHE_MQTT_PASSWORD" in dict(values)
    # Only user names in the template, never a password, token or key.
    filled = {k: v for k, v in values if v and re.search("PASSWORD|TOKEN|KEY|SECRET", k)}
    assert filled == {}


def _target(volume: str) -> str:
    parts = volume.split(":")
    return parts[-2] if parts[-1] in ("ro", "rw") else parts[-1]


def test_mosquitto_in_compose_reads_the_projects_config_and_finds_its_files() -> None:
    text = (CENTRAL / "mosquitto-docker.conf").read_text(encoding="utf-8")
    assert "include_dir /mosquitto/config/conf.d" in text.splitlines()
    volumes = _compose()["services"]["mosquitto"]["volumes"]
    assert "../mosquitto:/mosquitto/config/conf.d:ro" in volumes
    mounted = [_target(v) for v in volumes]
    paths = [
        path
        for conf in sorted((ROOT / "deploy" / "mosquitto").glob("*.conf"))
        for path in re.findall(
            r"^(?:password_file|acl_file|persistence_location|cafile|certfile|keyfile)\s+(\S+)",
            conf.read_text(encoding="utf-8"),
            re.MULTILINE,
        )
    ]
    assert "/etc/mosquitto/qihe.passwd" in paths
    for path in paths:
        assert any(path.startswith(m.rstrip("/") + "/") for m in mounted), path


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_installs_the_project_as_a_non_root_user() -> None:
    text = (CENTRAL / "Dockerfile").read_text(encoding="utf-8")
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    assert "COPY pyproject.toml README.md ./" in instructions
    for package in ("qihe", "firmware_bridge", "edge", "central"):
        assert f"COPY {package} ./{package}" in instructions
        assert (ROOT / package / "__init__.py").is_file()
    assert any(line.startswith("RUN pip install . ") for line in instructions)
    users = [line for line in instructions if line.startswith("USER ")]
    assert users == ["USER qihe"]
    assert instructions.index("USER qihe") > max(
        i for i, line in enumerate(instructions) if line.startswith("RUN ")
    )
    assert 'ENTRYPOINT ["qihe"]' in instructions


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (CENTRAL / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    assert lines[lines.index("**") + 1 :][:6] == [
        "!pyproject.toml",
        "!README.md",
        "!qihe",
        "!firmware_bridge",
        "!edge",
        "!central",
    ]


def test_influxdb_conf_turns_auth_on_and_binds_to_localhost() -> None:
    text = (CENTRAL / "influxdb.conf").read_text(encoding="utf-8")
    settings = [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]
    top = settings[: settings.index("[meta]")]
    assert 'bind-address = "127.0.0.1:8088"' in top
    http = settings[settings.index("[http]") :]
    assert 'bind-address = "127.0.0.1:8086"' in http
    assert "auth-enabled = true" in http
    assert "reporting-disabled = true" in settings


def test_the_operator_guide_covers_install_proxy_and_backups() -> None:
    guide = (ROOT / "docs" / "deploy-central.md").read_text(encoding="utf-8")
    for needle in (
        "apt install",
        "qihe provision",
        "proxy_buffering off",
        "influxd backup -portable",
        "influxd restore -portable",
        "/var/lib/mosquitto/mosquitto.db",
        "/etc/qihe",
        "QIHE_ALLOW_READABLE_SECRETS",
        "${QIHE_MQTT_PASSWORD}",
        "chmod 640",
    ):
        assert needle in guide, needle
    for name in (*UNITS, "docker-compose.yml", "influxdb.conf", "secrets.env.example"):
        assert f"deploy/central/{name}" in guide, name
