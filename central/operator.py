"""Who an operator tool acts as: the name logged with a command, a pushed config, an
acknowledgement or a silence (self-declared: the broker's operator role is the authority)."""

from __future__ import annotations

import getpass
import re

from qihe.configfile import ConfigError
from qihe.contract import ID_PATTERN

__all__ = ["operator_name"]

_ID = re.compile(ID_PATTERN)


def operator_name(given: str | None, *fallbacks: str | None) -> str:
    """``given`` (``--by``) when set, else the first valid id of ``fallbacks`` (the config's
    operator, the MQTT user), else the login name when it is a valid id, else ``operator``.
    Raise :class:`ConfigError` for a ``given`` that is not an id."""
    if given is not None:
        if not _ID.fullmatch(given):
            raise ConfigError(
                f"--by {given!r}: 应为形如 ops-zhang 的标识 expected an id like ops-zhang"
            )
        return given
    for name in (*fallbacks, _login()):
        if name and _ID.fullmatch(name):
            return name
    return "operator"


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container without a passwd entry)
        return None
