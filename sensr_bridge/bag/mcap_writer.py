# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""A pure-Python rosbag2 mcap writer (:class:`~sensr_bridge.bag.mcap_file.McapFile`).

The file has the layout rosbags writes (and reads back), with rosbag2's file name
(``<bag>_0.mcap``), channel metadata (``offered_qos_profiles``, ``topic_type_hash``) and
``rosbag2`` metadata record; metadata.yaml is written as for sqlite3 bags.

Limits, stated rather than worked around:

- No splitting: ``max_bagfile_size`` or ``max_bagfile_duration`` other than 0 raise
  ``ConfigError``; use the rosbag2_py backend
  (``create_writer(options, backend='rosbag2_py')``) to split mcap bags.
- No presets or storage config: those are options of rosbag2's mcap plugin.
- Not crash-safe: each batch is in the file when ``write_batch`` returns, but the
  summary and metadata.yaml are written only in ``close()``; a process killed before
  leaves an mcap without summary that needs ``mcap recover``. Use the sqlite3 writer
  when crash safety matters.
- Batches are not atomic: a batch that fails part-way (full disk) may leave its first
  messages in the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensr_bridge.bag.base import BagWriter, Message, TopicInfo, create_bag_dir
from sensr_bridge.bag.fileio import bag_error
from sensr_bridge.bag.mcap_file import McapFile
from sensr_bridge.bag.metadata import (
    FileRecord,
    TopicRecord,
    build_metadata,
    dump_yaml,
    ros_distro,
    serialize_qos,
    with_counts,
    write_metadata_file,
)
from sensr_bridge.bag.typedefs import type_definition
from sensr_bridge.errors import BagError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sensr_bridge.bag.base import StorageOptions

LIBRARY = 'sensr_bridge'


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
            msg = ('splitting mcap bags (max_bagfile_size, max_bagfile_duration) needs the '
                   'rosbag2_py backend; the python mcap writer writes one file per bag')
            raise ConfigError(msg)
        if options.storage_preset_profile not in ('', 'none') or options.storage_config_uri:
            msg = ('mcap storage presets and config files (storage_preset, storage_config_file) '
                   'need the rosbag2_py backend; the python mcap writer has none')
            raise ConfigError(msg)
        self._file: McapFile | None = None
        self._channels: dict[str, int] = {}
        self._records: dict[str, TopicRecord] = {}
        self._distro = ros_distro()

    def _fail(self, err: Exception, what: str) -> BagError:
        return bag_error(f'{what} {self.options.path}: {err}', err)

    def _open(self) -> None:
        path = self.options.path
        create_bag_dir(path)
        try:
            self._file = McapFile(path / f'{path.name}_0.mcap', LIBRARY)
        except OSError as err:
            raise self._fail(err, 'cannot create bag') from err
        self._add_file(self._file.path.name)

    def _create_topic(self, topic: TopicInfo) -> None:
        definition = type_definition(topic.type)
        if definition is None:
            msg = (f'cannot record {topic.name}: type {topic.type} is unknown to the rosbags '
                   f'typestore, and mcap needs its definition')
            raise ConfigError(msg)
        qos = serialize_qos(topic.offered_qos, self.options.metadata_version)
        self._file.add_schema(topic.type, definition.encoding, definition.text)
        self._channels[topic.name] = self._file.add_channel(
            topic.name, topic.type, topic.serialization_format,
            {'offered_qos_profiles': qos, 'topic_type_hash': definition.type_hash})
        self._records[topic.name] = TopicRecord(topic.name, topic.type,
                                                topic.serialization_format, qos,
                                                definition.type_hash, 0)

    def _write_batch(self, messages: Sequence[Message]) -> None:
        try:
            for topic, stamp, data in messages:
                self._file.write(self._channels[topic], stamp, data)
            self._file.flush()
        except OSError as err:
            raise self._fail(err, 'cannot write to') from err

    def _info(self) -> dict[str, object]:
        file = self._file
        count = file.message_count
        return build_metadata(
            version=self.options.metadata_version, storage_id='mcap',
            topics=with_counts(self._records.values(), self.stats),
            files=[FileRecord(file.path.name, file.start_ns if count else None,
                              file.end_ns if count else None, count)],
            custom_data=self.options.custom_data, distro=self._distro)

    def _close(self) -> None:
        info = self._info()
        try:
            self._file.close(dump_yaml(info))
        except OSError as err:
            raise self._fail(err, 'cannot finish') from err
        write_metadata_file(self.options.path, info)
