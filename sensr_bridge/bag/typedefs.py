# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Message definitions and RIHS01 type hashes from the rosbags typestore.

Bags store, per message type, the full ``.msg`` definition text (with its
dependencies) and the RIHS01 type-description hash, as rosbag2 does on Jazzy and
newer. Both come from ``rosbags`` (the same calls as its ``Writer.add_connection``),
whose latest typestore holds the standard ROS 2 interfaces.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools

from rosbags.typesys import Stores, TypesysError, get_typestore
from rosbags.typesys.store import Typestore

# rosbags' marker for definitions it renders in IDL instead of .msg syntax.
_IDL_MARKER = '=' * 80 + '\nIDL: '


@dataclass(frozen=True)
class TypeDefinition:
    """How a message type is described in a bag.

    Attributes:
        type: Message type, e.g. 'sensor_msgs/msg/PointCloud2'.
        encoding: 'ros2msg' or 'ros2idl'.
        text: The concatenated definition of the type and its dependencies.
        type_hash: The RIHS01 hash, e.g. 'RIHS01_9198...'.

    """

    type: str
    encoding: str
    text: str
    type_hash: str


@functools.lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The typestore of the newest ROS 2 distro known to rosbags (built once).

    Returns:
        The typestore.

    """
    return get_typestore(Stores.LATEST)


@functools.lru_cache(maxsize=256)
def type_definition(msgtype: str) -> TypeDefinition | None:
    """Look up the definition and hash of a message type.

    Args:
        msgtype: e.g. 'sensor_msgs/msg/PointCloud2'.

    Returns:
        The definition, or None if the typestore does not know the type.

    """
    store = typestore()
    try:
        text, _ = store.generate_msgdef(msgtype, ros_version=2)
        type_hash = store.hash_rihs01(msgtype)
    except (TypesysError, KeyError):
        return None
    encoding = 'ros2idl' if text.startswith(_IDL_MARKER) else 'ros2msg'
    return TypeDefinition(msgtype, encoding, text, type_hash)
