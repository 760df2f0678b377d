"""Load a YAML config file into a pydantic model, with one clear line per problem.

A bad config must be refused at start with a message naming the file, the key
and what is wrong, never a traceback (:class:`ConfigError` carries that text).

Secrets (``docs/deploy-central.md``, "Secrets"):

- **Environment variables.** ``${VAR}`` or ``${VAR:-default}`` anywhere in a string value is
  replaced from the environment before validation (``:-`` also applies when ``VAR`` is set but
  empty, as in the shell). ``$${`` stands for a literal ``${``; a ``$`` elsewhere is kept as it
  is, so passwords holding ``$`` need no escaping. A variable that is not set and has no
  default is an error naming the variable and the key, never a value. Keys are never
  substituted, and a substituted value is a string (pydantic converts ``"1883"`` for a port).
  By convention the variables are named ``QIHE_<WHAT>``: ``QIHE_MQTT_PASSWORD``,
  ``QIHE_INFLUX_PASSWORD``, ``QIHE_INFLUX_TOKEN``, ``QIHE_OPERATOR_TOKEN``, ``QIHE_WECOM_KEY``,
  ``QIHE_DINGTALK_TOKEN``, ``QIHE_DINGTALK_SECRET``; systemd reads them from
  ``/etc/qihe/secrets.env`` (``EnvironmentFile=``), docker compose from ``env_file``.
- **File permissions.** A file that itself holds a secret — a key named ``password``,
  ``token``, ``secret``, ``key``, ``access_token`` or ending in ``_password``, ``_token``,
  ``_secret``, ``_key``, at any depth, with a non-empty value that is not only ``${VAR}``
  references — must not be readable by everyone: loading it is **refused** (one line, with the
  ``chmod`` that fixes it). Group-readable (``0640``) is fine, so the service's group can read
  it. Setting :data:`ALLOW_READABLE_SECRETS` (``QIHE_ALLOW_READABLE_SECRETS=1``) turns the
  refusal into one logged warning, for a machine where nobody else logs in. Values beginning
  with ``change-me`` are the samples' placeholders, not secrets.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = [
    "ALLOW_READABLE_SECRETS",
    "ConfigError",
    "format_validation_error",
    "load_config_file",
    "secret_keys",
    "substitute_env",
]

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)

#: Set to ``1`` to load a world-readable file holding a secret (with a warning) instead of refusing.
ALLOW_READABLE_SECRETS = "QIHE_ALLOW_READABLE_SECRETS"


class ConfigError(ValueError):
    """A config file is missing, unreadable, not YAML, or does not validate."""


#: Keys whose values are never echoed back in an error (they are, or may be, secrets).
_SECRET_KEYS = ("password", "token", "secret", "key")

#: Key names that hold a secret, for the permission check (exact, or as a ``_suffix``).
_SECRET_NAMES = frozenset({"password", "token", "secret", "key", "access_token"})
_SECRET_SUFFIXES = ("_password", "_token", "_secret", "_key")
_PLACEHOLDER = "change-me"

# ``$${`` (a literal ``${``) or ``${NAME}`` / ``${NAME:-default}``; anything else after ``${``
# is malformed. The default runs to the first ``}`` (no nesting).
_REFERENCE = re.compile(
    r"\$\$\{|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<bad>))"
)


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        secret = any(part in key.lower() for part in _SECRET_KEYS)
        plain = isinstance(value, dict | list) or value is None or secret
        shown = "" if plain else f" (got {value!r})"
        lines.append(f"  {key}: {err['msg']}{shown}")
    return "\n".join(lines)


def _is_secret_name(key: object) -> bool:
    name = str(key).lower()
    return name in _SECRET_NAMES or name.endswith(_SECRET_SUFFIXES)


def _literal_part(value: str) -> str:
    """What of ``value`` is written in the file itself: references removed, defaults kept."""

    def keep(match: re.Match[str]) -> str:
        if match.group("name") is not None:
            return match.group("default") or ""
        return match.group(0)

    return _REFERENCE.sub(keep, value)


def secret_keys(data: object, _where: str = "") -> list[str]:
    """Dotted keys of ``data`` (parsed YAML) that hold a secret written in the file itself."""
    found: list[str] = []
    items: list[tuple[object, object]]
    if isinstance(data, Mapping):
        items = list(data.items())
    elif isinstance(data, list):
        items = list(enumerate(data))
    else:
        return found
    for key, value in items:
        where = f"{_where}.{key}" if _where else str(key)
        if isinstance(value, Mapping | list):
            found += secret_keys(value, where)
        elif _is_secret_name(key) and value is not None and not isinstance(value, bool):
            literal = _literal_part(value).strip() if isinstance(value, str) else str(value)
            if literal and not literal.startswith(_PLACEHOLDER):
                found.append(where)
    return found


def substitute_env(data: object, environ: Mapping[str, str], _where: str = "") -> object:
    """``data`` with ``${VAR}``/``${VAR:-default}`` in its string values replaced.

    Raise :class:`ValueError` naming the key and the variable (never a value) when a
    variable is missing without a default, or a reference is malformed.
    """
    if isinstance(data, Mapping):
        return {
            key: substitute_env(value, environ, f"{_where}.{key}" if _where else str(key))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [
            substitute_env(value, environ, f"{_where}.{index}" if _where else str(index))
            for index, value in enumerate(data)
        ]
    if not isinstance(data, str) or "${" not in data:
        return data
    where = _where or "(top level)"

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group("name")
        if name is None:
            raise ValueError(
                f"{where}: malformed ${{...}} reference: write ${{NAME}} or ${{NAME:-default}}"
                " (NAME of letters, digits and _), or $${ for a literal ${"
            )
        value = environ.get(name, "")
        default = match.group("default")
        if value == "" and default is not None:
            return default
        if name not in environ:
            raise ValueError(
                f"{where}: environment variable {name} is not set"
                f" (set it, or give a default: ${{{name}:-...}})"
            )
        return value

    return _REFERENCE.sub(replace, data)


def _check_permissions(path: Path, data: object, environ: Mapping[str, str]) -> None:
    keys = secret_keys(data)
    if not keys:
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    if not mode & stat.S_IROTH:
        return
    if environ.get(ALLOW_READABLE_SECRETS) == "1":
        log.warning(
            "%s: holds a secret (%s) but is readable by everyone (mode %04o); "
            "loading it because %s=1: chmod 640 %s",
            path,
            ", ".join(keys),
            mode,
            ALLOW_READABLE_SECRETS,
            path,
        )
        return
    raise ConfigError(
        f"{path}: holds a secret but is readable by everyone (mode {mode:04o}): chmod 640 {path}"
    )


def load_config_file(path: str | Path, model: type[M]) -> M:
    """Read ``path`` as YAML and validate it as ``model``; raise :class:`ConfigError`.

    Refuses a world-readable file holding a secret, and substitutes ``${VAR}`` references
    from the environment first (see the module's docstring).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    environ = os.environ
    try:
        substituted = substitute_env(data, environ)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        config = model.model_validate(substituted)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
    # Last, so a file with a mistake names the mistake first; neither message shows a secret.
    _check_permissions(path, data, environ)
    return config
