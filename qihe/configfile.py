"""Load a YAML config file into a pydantic model, with one clear line per problem.

A bad config must be refused at start with a message naming the file, the key
and what is wrong, never a traceback (:class:`ConfigError` carries that text).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["ConfigError", "format_validation_error", "load_config_file"]

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file is missing, unreadable, not YAML, or does not validate."""


#: Keys whose values are never echoed back in an error (they are, or may be, secrets).
_SECRET_KEYS = ("password", "token", "secret", "key")


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


def load_config_file(path: str | Path, model: type[M]) -> M:
    """Read ``path`` as YAML and validate it as ``model``; raise :class:`ConfigError`."""
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
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
