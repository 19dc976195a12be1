# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""How the recorder subscribes to a topic: message class and a QoS that fits its publishers.

Like ``ros2 bag record``: reliable only when every publisher offers reliable, transient
local only when every publisher is; the publishers' offered QoS goes into the bag's
metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
import importlib
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from sensr_bridge.bag.base import QosDesc

_RELIABILITY = {ReliabilityPolicy.RELIABLE: 'reliable',
                ReliabilityPolicy.BEST_EFFORT: 'best_effort'}
_DURABILITY = {DurabilityPolicy.TRANSIENT_LOCAL: 'transient_local',
               DurabilityPolicy.VOLATILE: 'volatile'}


def message_class(type_name: str) -> type:
    """Import the Python class of a ROS message type such as ``sensor_msgs/msg/PointCloud2``."""
    package, kind, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def publishers_policy(infos: Sequence[Any]) -> tuple[bool, bool]:
    """Return (reliable, transient local) that every publisher of ``infos`` can serve."""
    reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    latched = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    return reliable, latched


def offered_qos(infos: Sequence[Any]) -> list[QosDesc]:
    """Return the publishers' QoS as the bag's metadata lists it."""
    return [QosDesc(reliability=_RELIABILITY.get(i.qos_profile.reliability, 'reliable'),
                    durability=_DURABILITY.get(i.qos_profile.durability, 'volatile'),
                    depth=i.qos_profile.depth) for i in infos]


def subscription_qos(infos: Sequence[Any], depth: int, *, reliable: bool,
                     latched: bool) -> QoSProfile:
    """Return the subscription's QoS: ``depth`` at least, or the deepest publisher's."""
    # A reader's KEEP_LAST history silently overwrites what the executor has not taken
    # yet; 10 (ros2 bag record's default) lost clouds whenever the recorder fell about
    # a second behind on a loaded machine.
    depth = max([depth] + [i.qos_profile.depth for i in infos])
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable
                      else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
                      else DurabilityPolicy.VOLATILE)
