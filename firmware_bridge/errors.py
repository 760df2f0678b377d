"""Errors of the firmware bridge: one base, leaves that also inherit the matching builtin."""

from __future__ import annotations

__all__ = [
    "BridgeError",
    "CobsError",
    "CrcError",
    "FrameError",
    "FrameTooLongError",
    "FrameTooShortError",
    "MessageValueError",
    "NoSuchSensorError",
    "PayloadError",
    "SerialLinkError",
    "UnknownTypeError",
    "UnsupportedVersionError",
]


class BridgeError(Exception):
    """Base of every error raised by :mod:`firmware_bridge`."""


class MessageValueError(BridgeError, ValueError):
    """A message field is outside what the protocol can carry."""


class FrameError(BridgeError, ValueError):
    """A frame on the wire could not be decoded. ``kind`` names the cause for counters."""

    kind = "malformed"

    def __init__(self, message: str, *, raw: bytes = b"") -> None:
        super().__init__(message)
        #: The offending bytes as received (COBS-encoded, without the delimiter), for logs.
        self.raw = raw


class CobsError(FrameError):
    kind = "cobs"


class CrcError(FrameError):
    kind = "crc"


class FrameTooShortError(FrameError):
    kind = "too_short"


class FrameTooLongError(FrameError):
    kind = "too_long"


class UnsupportedVersionError(FrameError):
    kind = "version"


class UnknownTypeError(FrameError):
    kind = "unknown_type"


class PayloadError(FrameError):
    kind = "payload"


class NoSuchSensorError(BridgeError, ValueError):
    """An emulated board was asked to act through a sensor it does not have."""


class SerialLinkError(BridgeError, OSError):
    """The serial port could not be opened, or vanished while in use."""
