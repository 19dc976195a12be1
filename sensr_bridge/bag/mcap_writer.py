# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""A pure-Python rosbag2 mcap writer, built on ``rosbags.rosbag2.Writer``.

Limits, stated rather than worked around:

- No splitting: rosbags writes one ``.mcap`` per bag, and a bag of several files
  would need rosbag2's own mcap plugin. ``max_bagfile_size`` or
  ``max_bagfile_duration`` other than 0 raise ``ConfigError``; use the rosbag2_py
  backend (``create_writer(options, backend='rosbag2_py')``) to split mcap bags.
- No presets or storage config: those are options of rosbag2's mcap plugin.
- Not crash-safe: rosbags writes the mcap summary and metadata.yaml only in
  ``close()``. A batch is handed to the file when ``write_batch`` returns, but a
  process killed before ``close()`` leaves an mcap without summary that needs
  ``mcap recover``. Use the sqlite3 writer when crash safety matters.
- Batches are not atomic: a batch that fails part-way (full disk) may leave its first
  messages in the file.
- metadata.yaml says ``ros_distro: rosbags``, as rosbags always writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from sensr_bridge.bag.base import BagWriter, Message, TopicInfo, check_new_bag_dir
from sensr_bridge.bag.metadata import is_storage_full, restrict_file_modes
from sensr_bridge.bag.typedefs import type_definition
from sensr_bridge.errors import BagError, ConfigError, StorageFullError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rosbags.interfaces import Connection

    from sensr_bridge.bag.base import QosDesc, StorageOptions

_INFINITE = QosTime(9223372036, 854775807)


def rosbags_qos(qos: QosDesc) -> Qos:
    """Convert a QoS description into a rosbags ``Qos``.

    Args:
        qos: The description.

    Returns:
        The rosbags profile, with infinite deadline/lifespan/lease and automatic
        liveliness.

    """
    return Qos(
        QosHistory[qos.history.upper()], qos.depth,
        QosReliability[qos.reliability.upper()], QosDurability[qos.durability.upper()],
        _INFINITE, _INFINITE, QosLiveliness.AUTOMATIC, _INFINITE, False,
    )


class McapWriter(BagWriter):
    """Writes single-file rosbag2 mcap bags without ROS.

    Args:
        options: Where and how to write; ``storage_id`` must be 'mcap'.

    Raises:
        ConfigError: Wrong storage id, splitting, a preset or a storage config requested.

    """

    def __init__(self, options: StorageOptions) -> None:
        super().__init__(options)
        if options.storage_id != 'mcap':
            msg = f'McapWriter writes mcap bags, not {options.storage_id!r}'
            raise ConfigError(msg)
        if options.max_bagfile_size or options.max_bagfile_duration:
            msg = ('splitting mcap bags needs the rosbag2_py backend; the python mcap '
                   'writer writes one file per bag')
            raise ConfigError(msg)
        if options.storage_preset_profile not in ('', 'none') or options.storage_config_uri:
            msg = ('mcap storage presets and config files need the rosbag2_py backend; '
                   'the python mcap writer has none')
            raise ConfigError(msg)
        self._writer: Writer | None = None
        self._connections: dict[str, Connection] = {}

    def _fail(self, err: Exception, what: str) -> BagError:
        msg = f'{what} {self.options.path}: {err}'
        return StorageFullError(msg) if is_storage_full(err) else BagError(msg)

    def _open(self) -> None:
        path = self.options.path
        check_new_bag_dir(path)
        writer = Writer(path, version=self.options.metadata_version,
                        storage_plugin=StoragePlugin.MCAP)
        for key, value in self.options.custom_data.items():
            writer.set_custom_data(key, value)
        try:
            writer.open()
        except (OSError, WriterError) as err:
            raise self._fail(err, 'cannot create bag') from err
        # rosbags creates its files with 0o666 less the umask; bag files are 0o644.
        restrict_file_modes(path)
        self._writer = writer
        self._add_file(writer.storage.path.name)

    def _create_topic(self, topic: TopicInfo) -> None:
        definition = type_definition(topic.type)
        if definition is None:
            msg = (f'cannot record {topic.name}: type {topic.type} is unknown to the rosbags '
                   f'typestore, and mcap needs its definition')
            raise ConfigError(msg)
        try:
            self._connections[topic.name] = self._writer.add_connection(
                topic.name, topic.type, msgdef=definition.text, rihs01=definition.type_hash,
                serialization_format=topic.serialization_format,
                offered_qos_profiles=[rosbags_qos(q) for q in topic.offered_qos])
        except (OSError, WriterError) as err:
            raise self._fail(err, f'cannot add topic {topic.name} to') from err

    def _write_batch(self, messages: Sequence[Message]) -> None:
        try:
            for topic, stamp, data in messages:
                self._writer.write(self._connections[topic], stamp, data)
        except (OSError, WriterError) as err:
            raise self._fail(err, 'cannot write to') from err

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        try:
            writer.close()
            restrict_file_modes(self.options.path)
        except (OSError, WriterError) as err:
            raise self._fail(err, 'cannot finish') from err
