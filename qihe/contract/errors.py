"""Errors of the wire contract."""

from __future__ import annotations

__all__ = ["ContractError", "PayloadError", "TopicError"]


class ContractError(Exception):
    """Base of wire-contract errors."""


class PayloadError(ContractError, ValueError):
    """A payload is not valid JSON of the expected model."""


class TopicError(ContractError, ValueError):
    """A topic is not part of the qihe topic tree, or an id cannot be put into one."""
