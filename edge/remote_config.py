"""Pushed gateway configs: checking one, and keeping them on the SD card (docs/remote-config.md).

A pushed config is checked with the models of ``qihe gateway check`` (:func:`check_document`),
after two refusals of its own: it must carry no secret values (they stay in the site's
environment file and are referenced as ``${QIHE_...}``), and it must not move the gateway
(site, gateway, topic prefix) or its outbox (``state_dir``, ``outbox.path``): readings kept
there would be left behind.

:class:`ConfigStore` keeps, under ``{state_dir}/remote-config/``, the pushed config that last
reached the broker (``last-good.yaml``), the one on trial (``trial.yaml``) and a small state
file (``state.json``): the push last answered, the report the status shows, whether a trial
is under way, and the hash of the local config file the pushed one replaces. Every write is
atomic (a temporary file, fsync, rename), so a power cut leaves the old file or the new one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from edge.config import GatewayConfig
from edge.errors import EdgeError
from qihe.configfile import format_validation_error, secret_keys, substitute_env
from qihe.contract import ConfigReport

__all__ = [
    "SOFTWARE_VERSION",
    "ConfigStore",
    "RemoteConfigError",
    "StoredState",
    "Trial",
    "check_document",
    "file_digest",
    "one_line",
]

log = logging.getLogger(__name__)

#: The longest error a status carries (the contract's one-line text).
_MAX_ERROR = 300
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$")
#: Keys a push may not change: where the gateway is, and where its outbox lives.
_FIXED = (
    ("site",),
    ("gateway",),
    ("broker", "topic_prefix"),
    ("state_dir",),
    ("outbox", "path"),
)


def _software_version() -> str | None:
    try:
        version = metadata.version("qihe-edge")
    except metadata.PackageNotFoundError:
        return None
    return version if _VERSION.fullmatch(version) else None


#: The gateway software's version (``qihe-edge`` as installed), for the status.
SOFTWARE_VERSION = _software_version()


class RemoteConfigError(EdgeError, ValueError):
    """A pushed config that cannot be applied; the message is one line for an operator."""


def one_line(text: str, limit: int = _MAX_ERROR) -> str:
    """``text`` as one bounded line: line breaks become ``; ``, control characters go."""
    flat = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    flat = "".join(ch for ch in flat if ch.isprintable()) or "?"
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class _References(Mapping[str, str]):
    """An environment in which every ``${VAR}`` stays as written (checking away from the site)."""

    def __getitem__(self, name: str) -> str:
        return f"${{{name}}}"

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def check_document(
    document: object,
    *,
    environ: Mapping[str, str] | None,
    running: GatewayConfig | None = None,
) -> GatewayConfig:
    """Validate a pushed config document as the gateway will run it.

    ``environ`` fills its ``${VAR}`` references (the site's environment); ``None`` keeps them
    as written, for a check away from the site (a reference in a field that is not text then
    fails, naming it). ``running``: the gateway's present config, which the push may not move.
    Raise :class:`RemoteConfigError` with one line naming what is wrong.
    """
    if not isinstance(document, Mapping):
        raise RemoteConfigError("配置无效 invalid config: expected a mapping of settings")
    secrets = secret_keys(document)
    if secrets:
        raise RemoteConfigError(
            f"推送的配置不能含有密钥 a pushed config carries no secrets: {', '.join(secrets)}"
            " (write ${QIHE_...} and keep the value in the site's environment file)"
        )
    try:
        substituted = substitute_env(document, _References() if environ is None else environ)
    except ValueError as exc:
        raise RemoteConfigError(one_line(f"配置无效 invalid config: {exc}")) from None
    try:
        config = GatewayConfig.model_validate(substituted)
    except ValidationError as exc:
        # One problem a line, indented, past a title line: one line of them here.
        problems = [line.strip() for line in format_validation_error(exc, "").splitlines()[1:]]
        raise RemoteConfigError(
            one_line(f"配置无效 invalid config: {'; '.join(problems)}")
        ) from None
    if running is not None:
        for path in _FIXED:
            before, after = _dig(running, path), _dig(config, path)
            if before != after:
                raise RemoteConfigError(
                    f"不能远程更改 cannot be changed remotely: {'.'.join(path)}"
                    f" ({before} → {after})"
                )
    return config


def _dig(config: BaseModel, path: tuple[str, ...]) -> object:
    value: Any = config
    for name in path:
        value = getattr(value, name)
    return value


def file_digest(data: bytes) -> str:
    """SHA-256 (hex) of a file's bytes: whether the local config file changed."""
    return hashlib.sha256(data).hexdigest()


class Trial(BaseModel):
    """A pushed config on trial: applied, not yet seen to reach the broker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    push: str
    hash: str


class StoredState(BaseModel):
    """What ``state.json`` keeps across restarts."""

    model_config = ConfigDict(extra="forbid")

    #: SHA-256 of the local config file when ``last-good.yaml`` was written: if the file has
    #: changed since (edited at the site), the local file wins.
    base: str | None = None
    #: The id of the last push answered (a retained push comes again at every connection).
    handled: str | None = None
    trial: Trial | None = None
    report: ConfigReport | None = None


class ConfigStore:
    """The files of pushed configs under ``{state_dir}/remote-config/``. Blocking: call from
    a worker thread (``asyncio.to_thread``)."""

    LAST_GOOD = "last-good.yaml"
    TRIAL = "trial.yaml"
    STATE = "state.json"

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "remote-config"

    def load_state(self) -> StoredState:
        """The stored state; a fresh one if there is none or it cannot be read (logged)."""
        path = self.folder / self.STATE
        try:
            return StoredState.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return StoredState()
        except (OSError, ValidationError) as exc:
            log.warning(
                "无法读取远程配置状态 cannot read the remote config state %s: %s; starting afresh",
                path,
                one_line(str(exc), 200),
            )
            return StoredState()

    def save_state(self, state: StoredState) -> None:
        self._write(self.STATE, state.model_dump_json(exclude_none=True).encode())

    def read_document(self, name: str) -> dict[str, Any] | None:
        """A stored config document, or None if there is none or it cannot be read (logged)."""
        path = self.folder / name
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            log.warning("无法读取 cannot read %s: %s", path, one_line(str(exc), 200))
            return None
        return document if isinstance(document, dict) else None

    def write_document(self, name: str, document: Mapping[str, Any]) -> None:
        text = yaml.safe_dump(dict(document), allow_unicode=True, sort_keys=False)
        self._write(name, text.encode())

    def promote_trial(self) -> None:
        """The config on trial reached the broker: it is the last good one now."""
        os.replace(self.folder / self.TRIAL, self.folder / self.LAST_GOOD)
        self._sync_folder()

    def remove(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)

    def _write(self, name: str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o640)
            os.replace(tmp, self.folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._sync_folder()

    def _sync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
