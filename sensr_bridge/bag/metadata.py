# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""rosbag2 bag metadata: QoS serialization and metadata.yaml, versions 8 and 9.

The layout follows rosbag2's ``yaml.hpp``/``qos.cpp`` encoders: the same keys in the
same order. Version 9 (Jazzy and newer) stores ``offered_qos_profiles`` as a list
with string enums; version 8 (readable by Humble) as a YAML string with integer
enums. The sqlite3 ``topics`` table holds the same QoS serialization as a string in
both versions, which is why topics are carried here in that serialized form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sensr_bridge.bag.fileio import bag_error
from sensr_bridge.process import paths

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from sensr_bridge.bag.base import BagStats, QosDesc

METADATA_FILE = 'metadata.yaml'
FILE_MODE = 0o644
"""Mode of every bag file before the umask, as SQLite creates its files."""
INT64_MAX = 2**63 - 1
# RMW_DURATION_INFINITE, what publishers report for unset deadline/lifespan/lease.
_INFINITE = {'sec': 9223372036, 'nsec': 854775807}
# rmw enum values used by metadata version 8.
_V8_ENUMS = {
    'keep_last': 1, 'keep_all': 2,
    'reliable': 1, 'best_effort': 2,
    'transient_local': 1, 'volatile': 2,
    'automatic': 1,
}


@dataclass(frozen=True)
class TopicRecord:
    """A topic as stored in a bag.

    Attributes:
        name: Topic name.
        type: Message type.
        serialization_format: Serialization format, normally 'cdr'.
        offered_qos_profiles: QoS serialized as in the sqlite3 ``topics`` table.
        type_description_hash: RIHS01 hash of the type, or ''.
        message_count: Messages recorded.

    """

    name: str
    type: str
    serialization_format: str
    offered_qos_profiles: str
    type_description_hash: str
    message_count: int


@dataclass(frozen=True)
class FileRecord:
    """One storage file of a bag.

    Attributes:
        path: File name relative to the bag directory.
        start_ns: Earliest timestamp in the file, None if it holds no message.
        end_ns: Latest timestamp in the file, None if it holds no message.
        message_count: Messages in the file.

    """

    path: str
    start_ns: int | None
    end_ns: int | None
    message_count: int


def ros_distro() -> str:
    """The distro name stored in bags (metadata.yaml, sqlite3 ``schema`` table), as rosbag2.

    ``ROS_DISTRO``, else the distro of the installed rclpy (read from its package
    metadata: the writers do not import rclpy), else ''. The recorder's own name belongs
    in ``custom_data``, not here.

    Returns:
        The name, e.g. 'jazzy'.

    """
    return paths.ros_distro()


def serialize_qos(qos: Sequence[QosDesc], version: int) -> str:
    """Serialize offered QoS profiles as rosbag2 stores them in the sqlite3 topics table.

    Args:
        qos: The profiles.
        version: Metadata version, 8 (integer enums) or 9 (string enums).

    Returns:
        The YAML text ('' for no profile in version 8, like rosbag2's empty default).

    """
    def enum(value: str) -> str | int:
        return _V8_ENUMS[value] if version < 9 else value

    profiles = [
        {
            'history': enum(q.history),
            'depth': q.depth,
            'reliability': enum(q.reliability),
            'durability': enum(q.durability),
            'deadline': dict(_INFINITE),
            'lifespan': dict(_INFINITE),
            'liveliness': enum('automatic'),
            'liveliness_lease_duration': dict(_INFINITE),
            'avoid_ros_namespace_conventions': False,
        }
        for q in qos
    ]
    if not profiles and version < 9:
        return ''
    return dump_yaml(profiles).strip()


def qos_for_metadata(serialized: str, version: int) -> list[Any] | str:
    """Convert serialized QoS to the form metadata.yaml uses for ``version``.

    Args:
        serialized: QoS as stored in the topics table.
        version: Metadata version.

    Returns:
        A list of profile mappings (version 9) or the string itself (version 8).

    """
    if version < 9:
        return serialized
    return (yaml.safe_load(serialized) or []) if serialized else []


def with_counts(records: Iterable[TopicRecord], stats: BagStats) -> list[TopicRecord]:
    """Return the topic records with the message counts written so far."""
    return [replace(r, message_count=stats.topics[r.name].messages) for r in records]


def build_metadata(*, version: int, storage_id: str, topics: Sequence[TopicRecord],
                   files: Sequence[FileRecord], custom_data: Mapping[str, str],
                   distro: str) -> dict[str, Any]:
    """Build the ``rosbag2_bagfile_information`` mapping.

    Args:
        version: Metadata version (8 or 9).
        storage_id: 'sqlite3' or 'mcap'.
        topics: All topics, with their message counts.
        files: All storage files, in order.
        custom_data: User key/value pairs.
        distro: Value of ``ros_distro``.

    Returns:
        The mapping, keys in rosbag2's order. An empty bag starts at INT64_MAX with
        duration 0, as rosbag2 writes it.

    """
    starts = [f.start_ns for f in files if f.start_ns is not None]
    ends = [f.end_ns for f in files if f.end_ns is not None]
    start = min(starts, default=INT64_MAX)
    duration = max(ends) - start if ends else 0
    return {
        'version': version,
        'storage_identifier': storage_id,
        'duration': {'nanoseconds': duration},
        'starting_time': {'nanoseconds_since_epoch': start},
        'message_count': sum(f.message_count for f in files),
        'topics_with_message_count': [
            {
                'topic_metadata': {
                    'name': t.name,
                    'type': t.type,
                    'serialization_format': t.serialization_format,
                    'offered_qos_profiles': qos_for_metadata(t.offered_qos_profiles, version),
                    'type_description_hash': t.type_description_hash,
                },
                'message_count': t.message_count,
            }
            for t in topics
        ],
        'compression_format': '',
        'compression_mode': '',
        'relative_file_paths': [f.path for f in files],
        'files': [
            {
                'path': f.path,
                'starting_time': {
                    'nanoseconds_since_epoch': INT64_MAX if f.start_ns is None else f.start_ns,
                },
                'duration': {
                    'nanoseconds': 0 if f.start_ns is None or f.end_ns is None
                    else f.end_ns - f.start_ns,
                },
                'message_count': f.message_count,
            }
            for f in files
        ],
        'custom_data': dict(custom_data) or None,
        'ros_distro': distro,
    }


class _Dumper(yaml.SafeDumper):
    """Indents block sequences under their key, as yaml-cpp (rosbag2) does."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump_yaml(data: object) -> str:
    """Dump ``data`` as block-style YAML with keys in insertion order.

    Args:
        data: Plain data.

    Returns:
        The YAML text.

    """
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True)


def write_metadata_file(bag_dir: Path, info: Mapping[str, Any]) -> Path:
    """Write ``metadata.yaml`` atomically (temporary file, fsync, rename).

    Args:
        bag_dir: The bag directory.
        info: The ``rosbag2_bagfile_information`` mapping.

    Returns:
        The path written.

    Raises:
        StorageFullError: The device is full.
        BagError: Any other write error.

    """
    path = bag_dir / METADATA_FILE
    tmp = path.with_name(METADATA_FILE + '.tmp')
    text = dump_yaml({'rosbag2_bagfile_information': dict(info)})
    try:
        # Not open('w'), whose 0o666 makes the file world-writable under umask 0.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with open(fd, 'w', encoding='utf-8') as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        msg = (f'could not write {path}: {err}; the storage files are still readable, '
               f'run "bag_reindex {bag_dir}" once the problem is fixed')
        raise bag_error(msg, err) from err
    return path
