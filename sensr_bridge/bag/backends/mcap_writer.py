# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""A pure-Python rosbag2 mcap writer (:class:`~sensr_bridge.bag.backends.mcap_file.McapFile`).

The file has the layout rosbags writes (and reads back), with rosbag2's file name
(``<bag>_0.mcap``), channel metadata (``offered_qos_profiles``, ``topic_type_hash``) and
``rosbag2`` metadata record; metadata.yaml is written as for sqlite3 bags.

Limits, stated rather than worked around:

- Split on request only (``split()``: ``<bag>_1.mcap`` and on, each a complete file):
  ``max_bagfile_size`` or ``max_bagfile_duration`` other than 0 raise ``ConfigError``;
  use the rosbag2_py backend (``create_writer(options, backend='rosbag2_py')``) for those.
- No presets or storage config: those are options of rosbag2's mcap plugin. Chunk
  compression (``compression``: zstd or lz4) is ours.
- Not crash-safe: each batch is in the file when ``write_batch`` returns, but the
  summary and metadata.yaml are written only in ``close()``; a process killed before
  leaves an mcap without summary that needs ``mcap recover``. Use the sqlite3 writer
  when crash safety matters.
- Batches are not atomic: a batch that fails part-way (full disk) may leave its first
  messages in the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensr_bridge.bag.backends.mcap_file import McapFile
from sensr_bridge.bag.base import BagWriter, Message, TopicInfo, create_bag_dir
from sensr_bridge.bag.fileio import bag_error
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
        self._closed_files: list[FileRecord] = []
        self._channels: dict[str, int] = {}
        self._records: dict[str, TopicRecord] = {}
        self._distro = ros_distro()

    def _fail(self, err: Exception, what: str) -> BagError:
        return bag_error(f'{what} {self.options.path}: {err}', err)

    def _open(self) -> None:
        create_bag_dir(self.options.path)
        self._open_file()

    def _open_file(self) -> None:
        """Start the next storage file, with every topic created so far."""
        path = self.options.path
        compression = '' if self.options.compression == 'none' else self.options.compression
        try:
            self._file = McapFile(path / f'{path.name}_{len(self._closed_files)}.mcap',
                                  LIBRARY, compression)
        except OSError as err:
            raise self._fail(err, 'cannot create bag') from err
        self._add_file(self._file.path.name)
        for record in self._records.values():
            self._add_channel(record)

    def _create_topic(self, topic: TopicInfo) -> None:
        definition = type_definition(topic.type)
        if definition is None:
            msg = (f'cannot record {topic.name}: type {topic.type} is unknown to the rosbags '
                   f'typestore, and mcap needs its definition')
            raise ConfigError(msg)
        qos = serialize_qos(topic.offered_qos, self.options.metadata_version)
        record = TopicRecord(topic.name, topic.type, topic.serialization_format, qos,
                             definition.type_hash, 0)
        if self._file is not None:
            self._add_channel(record)
        self._records[topic.name] = record

    def _add_channel(self, record: TopicRecord) -> None:
        definition = type_definition(record.type)
        self._file.add_schema(record.type, definition.encoding, definition.text)
        self._channels[record.name] = self._file.add_channel(
            record.name, record.type, record.serialization_format,
            {'offered_qos_profiles': record.offered_qos_profiles,
             'topic_type_hash': record.type_description_hash})

    def _write_batch(self, messages: Sequence[Message]) -> None:
        if self._file is None:
            self._open_file()
        try:
            for topic, stamp, data in messages:
                self._file.write(self._channels[topic], stamp, data)
            self._file.flush()
        except OSError as err:
            raise self._fail(err, 'cannot write to') from err

    def _info(self, files: list[FileRecord]) -> dict[str, object]:
        return build_metadata(
            version=self.options.metadata_version, storage_id='mcap',
            topics=with_counts(self._records.values(), self.stats), files=files,
            custom_data=self.options.custom_data, distro=self._distro)

    def _finish_file(self) -> None:
        """Close the current file, with the bag's metadata so far in it."""
        file, self._file = self._file, None
        count = file.message_count
        current = FileRecord(file.path.name, file.start_ns if count else None,
                             file.end_ns if count else None, count)
        try:
            file.close(dump_yaml(self._info([*self._closed_files, current])))
        except OSError as err:
            raise self._fail(err, 'cannot finish') from err
        self._closed_files.append(current)

    def _split(self) -> None:
        # The next batch opens the next file: a split with nothing after it adds none.
        if self._file is not None and self._file.message_count:
            self._finish_file()

    def _close(self) -> None:
        if self._file is not None:
            self._finish_file()
        write_metadata_file(self.options.path, self._info(self._closed_files))
