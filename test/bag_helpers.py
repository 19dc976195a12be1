# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Helpers for writing reference bags with rosbags."""

from __future__ import annotations

from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

from sensr_bridge.bag.base import QosDesc

_INFINITE = QosTime(9223372036, 854775807)


def rosbags_qos(qos: QosDesc) -> Qos:
    """The rosbags ``Qos`` of a QoS description (infinite times, automatic liveliness)."""
    return Qos(
        QosHistory[qos.history.upper()], qos.depth,
        QosReliability[qos.reliability.upper()], QosDurability[qos.durability.upper()],
        _INFINITE, _INFINITE, QosLiveliness.AUTOMATIC, _INFINITE, False,
    )
