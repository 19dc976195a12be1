# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Message definitions and RIHS01 type hashes from the rosbags typestore.

Bags store, per message type, the full ``.msg`` definition text (with its
dependencies) and the RIHS01 type-description hash, as rosbag2 does on Jazzy and
newer. Both come from ``rosbags`` (the same calls as its ``Writer.add_connection``),
whose latest typestore holds the standard ROS 2 interfaces. A type it lacks (e.g.
``vision_msgs/msg/Detection3DArray`` of the bridge's ``objects``) is added from the
``.msg`` files of the installed packages (``share/<package>/msg`` under
``AMENT_PREFIX_PATH``), with the types it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import os
from pathlib import Path
from typing import Any

from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore
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
    if msgtype not in store.fielddefs and not register_installed(msgtype):
        return None
    try:
        text, _ = store.generate_msgdef(msgtype, ros_version=2)
        type_hash = store.hash_rihs01(msgtype)
    except (TypesysError, KeyError):
        return None
    encoding = 'ros2idl' if text.startswith(_IDL_MARKER) else 'ros2msg'
    return TypeDefinition(msgtype, encoding, text, type_hash)


def installed_msg(msgtype: str) -> str | None:
    """Return the ``.msg`` text of a type from the installed packages, or None.

    Args:
        msgtype: e.g. 'vision_msgs/msg/Detection3D'.

    Returns:
        The text of ``share/<package>/msg/<Type>.msg`` of the first prefix of
        ``AMENT_PREFIX_PATH`` that has it.

    """
    package, kind, name = (msgtype.split('/') + ['', '', ''])[:3]
    if kind != 'msg' or not package or not name:
        return None
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        path = Path(prefix, 'share', package, 'msg', f'{name}.msg')
        if prefix and path.is_file():
            return path.read_text(encoding='utf-8')
    return None


def _type_names(desc: Any) -> list[str]:
    """Return the message types a rosbags field description refers to."""
    kind, detail = desc
    if kind.name == 'NAME':
        return [detail]
    if kind.name in ('ARRAY', 'SEQUENCE'):
        return _type_names(detail[0])
    return []


def register_installed(msgtype: str) -> bool:
    """Add a type, and every type it uses, from the installed ``.msg`` files to the typestore.

    Args:
        msgtype: e.g. 'vision_msgs/msg/Detection3DArray'.

    Returns:
        Whether the type is in the typestore now (False: a ``.msg`` file was not found or
        did not parse; nothing was added).

    """
    store = typestore()
    found: dict[str, Any] = {}
    pending = [msgtype]
    while pending:
        name = pending.pop()
        if name in store.fielddefs or name in found:
            continue
        text = installed_msg(name)
        if text is None:
            return False
        try:
            types = get_types_from_msg(text, name)
        except TypesysError:
            return False
        found.update(types)
        for _, desc in types[name][1]:
            pending.extend(_type_names(desc))
    store.register(found)
    return True
