"""A gateway config pushed over MQTT (``docs/mqtt.md``, "Remote configuration").

An operator publishes a :class:`ConfigPush` retained at QoS 1 on
``{prefix}/v1/{site}/{gateway}/config``: the whole gateway config document as a JSON object,
with an id, who pushed it and when. The gateway validates the document with the models of
``qihe gateway check``, applies it, and answers in its retained status (``config``, a
:class:`~qihe.contract.payloads.ConfigReport`). A pushed document carries no secret values:
secrets stay in the site's environment file, referenced as ``${QIHE_MQTT_PASSWORD}``.

:func:`config_hash` is the one definition of a config's hash, used by the gateway (its
status) and by ``qihe gateway push-config`` (waiting for that hash): SHA-256 of the document
as canonical JSON (keys sorted, no whitespace), secret values written in it replaced by a
mark, so a hash never depends on, or tells anything of, a secret.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from qihe.contract.errors import PayloadError
from qihe.contract.payloads import Ident, UtcDatetime, _refusal, _WireModel

__all__ = [
    "MAX_PUSH_BYTES",
    "ConfigPush",
    "config_hash",
    "parse_config_push",
    "short_hash",
]

#: The largest push a gateway reads (a site's config is a few kilobytes).
MAX_PUSH_BYTES = 64 * 1024

#: What a secret value becomes in the hashed form of a document.
_SECRET_MARK = "<secret>"


class ConfigPush(_WireModel):
    """One config pushed to one gateway; the gateway is also the topic's levels."""

    id: Ident
    site: Ident
    gateway: Ident
    issued_at: UtcDatetime
    by: Ident
    #: The gateway config document (what ``qihe gateway check`` reads from YAML), as JSON.
    config: dict[str, Any]


def parse_config_push(payload: bytes | str) -> ConfigPush:
    """Validate a config push; raise :class:`PayloadError` naming what is wrong (a payload
    over :data:`MAX_PUSH_BYTES` is refused before it is parsed)."""
    size = len(payload.encode() if isinstance(payload, str) else payload)
    if size > MAX_PUSH_BYTES:
        raise PayloadError(
            f"payload: {size} bytes, over the {MAX_PUSH_BYTES} a config push may have",
            key="payload: too large",
        )
    try:
        return ConfigPush.model_validate_json(payload)
    except ValidationError as exc:
        raise _refusal(exc) from exc


def config_hash(document: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a config document in canonical JSON, its secret values masked."""
    # Here, not at the top: the contract is imported by light processes (the bench's
    # generators) that must not load the YAML machinery of the config files.
    from qihe.configfile import secret_keys

    secrets = set(secret_keys(document))
    canonical = json.dumps(
        _masked(document, secrets, ""),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,  # a YAML date or the like: hashed as written
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def short_hash(full: str) -> str:
    """The first 12 hex digits, as a status shows a config's hash."""
    return full[:12]


def _masked(value: object, secrets: set[str], where: str) -> object:
    """``value`` with the secrets :func:`secret_keys` found (by the same dotted keys) masked."""
    if isinstance(value, Mapping):
        items = {str(key): (f"{where}.{key}" if where else str(key), v) for key, v in value.items()}
        return {
            key: _SECRET_MARK if path in secrets else _masked(v, secrets, path)
            for key, (path, v) in items.items()
        }
    if isinstance(value, list):  # an item is never a secret by name; its mappings may hold one
        return [
            _masked(v, secrets, f"{where}.{i}" if where else str(i)) for i, v in enumerate(value)
        ]
    return value
