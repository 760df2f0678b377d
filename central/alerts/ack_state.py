"""The alert engine's state file: operators' acknowledgements and silences, across restarts.

``{state_dir}/operator-decisions.json``, written whole and atomically (a temporary file in the
same folder, flushed to disk, then renamed over the old one), so a crash leaves the old file
or the new one, never half of either. Read once at start. A file that cannot be read is set
aside as ``….bad`` with one ERROR line and the engine starts without decisions: silences that
are lost mean alerts that are sent, never alerts that are hidden.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from central.alerts.acks import StoredAck
from qihe.configtypes import StrictModel
from qihe.contract import AlertSilence

__all__ = ["DecisionsFile", "StateFileError", "StoredDecisions"]

log = logging.getLogger(__name__)

FILE_NAME = "operator-decisions.json"


class StateFileError(OSError):
    """The state file could not be written (the folder is missing, read-only or full)."""


class _Document(StrictModel):
    schema_version: Literal[1] = 1
    acks: tuple[StoredAck, ...] = ()
    silences: tuple[AlertSilence, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredDecisions:
    acks: tuple[StoredAck, ...] = ()
    silences: tuple[AlertSilence, ...] = field(default=())


class DecisionsFile:
    """Blocking file I/O: call it off the event loop (``asyncio.to_thread``)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME

    def load(self) -> StoredDecisions:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return StoredDecisions()
        try:
            document = _Document.model_validate_json(text)
        except ValidationError as exc:
            bad = self.path.with_suffix(".json.bad")
            os.replace(self.path, bad)
            log.error(
                "alerts: 状态文件无法读取，已移至 %s，确认和静默从空开始 "
                "state file %s unreadable (%s), set aside as %s; starting without acks and "
                "silences",
                bad,
                self.path,
                exc.errors(include_url=False)[0]["msg"],
                bad,
            )
            return StoredDecisions()
        return StoredDecisions(document.acks, document.silences)

    def save(self, decisions: StoredDecisions) -> None:
        document = _Document(acks=decisions.acks, silences=decisions.silences)
        body = json.dumps(json.loads(document.model_dump_json()), ensure_ascii=False, indent=1)
        folder = self.path.parent
        temporary = folder / f".{FILE_NAME}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as out:
                out.write(body + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
            directory = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise StateFileError(f"cannot write the alert state file {self.path}: {exc}") from exc
