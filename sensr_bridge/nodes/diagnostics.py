# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""``/diagnostics`` messages, built the same way by both nodes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR


def status(name: str, hardware_id: str, level: bytes, message: str,
           values: Mapping[str, Any] | None = None) -> DiagnosticStatus:
    """Return one status; each value is shown as ``str(value)``, in the mapping's order."""
    return DiagnosticStatus(level=level, name=name, hardware_id=hardware_id, message=message,
                            values=[KeyValue(key=key, value=str(value))
                                    for key, value in (values or {}).items()])


def array(stamp: Time, statuses: Iterable[DiagnosticStatus]) -> DiagnosticArray:
    """Return the ``DiagnosticArray`` of ``statuses`` stamped ``stamp``."""
    message = DiagnosticArray(status=list(statuses))
    message.header.stamp = stamp
    return message
