"""Who sends commands, through which broker account, and how long they may take.

The same block serves ``qihe command --config FILE`` (a file of its own) and the live
service's optional ``commands:`` section (the operator page's buttons). Its ``mqtt`` account
must have the broker's ``operator`` role: no other role may publish commands
(``docs/security.md``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from central.broker import MqttConfig
from qihe.configfile import load_config_file
from qihe.configtypes import Duration, Ident, StrictModel
from qihe.contract import MAX_COMMAND_LIFETIME

__all__ = ["CommandConfig", "load_command_config"]


def _within_lifetime(value: timedelta) -> timedelta:
    if value > MAX_COMMAND_LIFETIME:
        raise ValueError("a command lives at most one hour")
    return value


class CommandConfig(StrictModel):
    #: An account with the ``operator`` role (``qihe provision service NAME --role operator``).
    mqtt: MqttConfig = MqttConfig(client_id="qihe-command")
    #: Who the commands are from, in every command (``by``) and log line. ``qihe command``
    #: takes the login name when this is not set; the live service says ``operator``.
    operator: Ident | None = None
    #: How long to wait for the gateway's reply (the board is asked up to three times).
    timeout: Duration = timedelta(seconds=10)
    #: A command not at the gateway within this long is not executed (at most one hour).
    expires: Annotated[Duration, AfterValidator(_within_lifetime)] = timedelta(seconds=30)


def load_command_config(path: str | Path) -> CommandConfig:
    """Load and validate a command config; raise ConfigError with file, key and reason."""
    return load_config_file(path, CommandConfig)
