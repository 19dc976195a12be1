# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Exceptions raised by sensr_bridge."""

from __future__ import annotations


class SensrBridgeError(Exception):
    """Base class of every error raised by sensr_bridge."""


class ConfigError(SensrBridgeError):
    """A parameter or option has an invalid value."""


class DecodeError(SensrBridgeError):
    """A frame received from SENSR cannot be decoded.

    Attributes:
        kind: Short machine-readable reason, used as a counter key.

    """

    def __init__(self, kind: str, message: str) -> None:
        """Initialize with a counter key and a human-readable message."""
        super().__init__(message)
        self.kind = kind


class BagError(SensrBridgeError):
    """A bag cannot be opened, written or closed."""


class BagExistsError(BagError):
    """The output bag already exists and would be overwritten."""


class StorageFullError(BagError):
    """The storage device ran out of space while writing."""


class SimulatorError(SensrBridgeError):
    """The SENSR simulator cannot do what was asked (port in use, started twice, ...)."""
