"""Errors of the wire contract."""

from __future__ import annotations

__all__ = ["ContractError", "PayloadError", "TopicError"]


class ContractError(Exception):
    """Base of wire-contract errors."""


class PayloadError(ContractError, ValueError):
    """A payload is not valid JSON of the expected model.

    ``key`` names the kind of problem without any value from the payload (the field and the
    error type, ``seat.occupied: bool_type``), so refusals can be counted per kind of problem.
    """

    def __init__(self, reason: str, key: str | None = None) -> None:
        super().__init__(reason)
        self.key = reason if key is None else key


class TopicError(ContractError, ValueError):
    """A topic is not part of the qihe topic tree, or an id cannot be put into one."""
