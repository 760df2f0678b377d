"""Errors of the gateway: one base, leaves that also inherit the matching builtin."""

from __future__ import annotations

__all__ = ["EdgeError", "GpioError"]


class EdgeError(Exception):
    """Base of the gateway's own errors: expected failures, reported in one line."""


class GpioError(EdgeError, OSError):
    """A configured pin could not be claimed (wrong pin, no GPIO on this machine, pin in use)."""
