# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""A writer on ROS 2's own ``rosbag2_py.SequentialWriter`` (Humble, Jazzy, Kilted).

Written against the documented bindings of each distro:

- ``storage_id`` is always passed: an empty id means sqlite3 on Humble but mcap on
  Jazzy and newer.
- ``TopicMetadata`` is built with keyword arguments. Jazzy and newer take
  ``id`` and a list of ``rosbag2_py.QoS``; Humble takes no ``id`` and the QoS as a
  YAML string. The API is detected by ``hasattr(TopicMetadata, 'id')``.
- ``custom_data`` exists on Jazzy and newer only; asking for it on Humble raises
  ``ConfigError``.
- ``close()`` is used when bound (Jazzy, Humble >= 0.15.14); otherwise the writer is
  deleted, since its destructor closes the bag.
- ``max_cache_size`` is 0: this package batches in its own queue thread and counts its
  own drops, while rosbag2's cache drops silently when full. Each message is then
  committed on its own by rosbag2, so a batch is not one transaction here.
- For sqlite3 the pragmas resolved by ``pragmas.resolve_pragmas`` are written to a
  temporary storage config file and passed with preset 'none' (config entries win
  over rosbag2's defaults), so both sqlite3 writers apply the same pragmas.
- rosbag2 writes its own metadata version (9 on Jazzy and newer, 5 on Humble); asking
  for version 8 on Jazzy or newer raises ``ConfigError`` (use the python backend).
- rosbag2 swallows sqlite write errors on its uncached path (the message is lost and
  logged at debug level), so a full disk cannot always be reported here.
"""

from __future__ import annotations

import gc
import os
import tempfile
from typing import TYPE_CHECKING, Any

import yaml

from sensr_bridge.bag.base import BagWriter, Message, TopicInfo, check_new_bag_dir
from sensr_bridge.bag.metadata import METADATA_FILE, serialize_qos
from sensr_bridge.bag.pragmas import resolve_pragmas, write_storage_config
from sensr_bridge.bag.typedefs import type_definition
from sensr_bridge.errors import BagError, ConfigError, StorageFullError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sensr_bridge.bag.base import QosDesc, StorageOptions

_FULL_MARKERS = ('disk is full', 'No space left')


class Rosbag2PyWriter(BagWriter):
    """Writes bags with rosbag2_py.

    Args:
        options: Where and how to write.

    Raises:
        ConfigError: rosbag2_py cannot be imported, or the options need a newer rosbag2.

    """

    def __init__(self, options: StorageOptions) -> None:
        super().__init__(options)
        try:
            import rosbag2_py
        except ImportError as err:
            msg = (f'backend rosbag2_py requested but "import rosbag2_py" failed ({err}); '
                   f'source a ROS 2 installation or use backend="python"')
            raise ConfigError(msg) from err
        self._rb: Any = rosbag2_py
        self._typed_topics = hasattr(rosbag2_py.TopicMetadata, 'id')
        self._qos_class = getattr(rosbag2_py, 'QoS', None) or getattr(
            getattr(rosbag2_py, '_storage', None), 'QoS', None)
        if self._typed_topics and options.metadata_version == 8:
            msg = ('rosbag2_py on this distro writes metadata version 9; use backend="python" '
                   'for version 8 bags that Humble can read')
            raise ConfigError(msg)
        if options.custom_data and not hasattr(rosbag2_py.StorageOptions, 'custom_data'):
            msg = 'custom_data needs rosbag2_py from Jazzy or newer'
            raise ConfigError(msg)
        self.pragmas = (resolve_pragmas(options.storage_preset_profile,
                                        options.storage_config_uri)
                        if options.storage_id == 'sqlite3' else [])
        self._config_file = ''
        self._writer: Any = None

    def _open(self) -> None:
        options = self.options
        check_new_bag_dir(options.path)
        preset, config_uri = options.storage_preset_profile, options.storage_config_uri
        if self.pragmas:
            handle, self._config_file = tempfile.mkstemp(prefix='sensr_bridge_sqlite3_',
                                                         suffix='.yaml')
            os.close(handle)
            write_storage_config(self._config_file, self.pragmas)
            preset, config_uri = 'none', self._config_file
        kwargs: dict[str, Any] = {
            'uri': str(options.path),
            'storage_id': options.storage_id,
            'max_bagfile_size': options.max_bagfile_size,
            'max_bagfile_duration': options.max_bagfile_duration,
            'max_cache_size': 0,
            'storage_preset_profile': preset,
            'storage_config_uri': config_uri,
        }
        if options.custom_data:
            kwargs['custom_data'] = dict(options.custom_data)
        writer = self._rb.SequentialWriter()
        try:
            writer.open(self._rb.StorageOptions(**kwargs), self._rb.ConverterOptions('', ''))
        except RuntimeError as err:
            self._remove_config_file()
            raise self._error(err, 'cannot create bag') from err
        self._writer = writer

    def _qos(self, qos: QosDesc) -> object:
        # The builder methods may return copies, so keep their results.
        # Jazzy and newer bind the class as rosbag2_py._storage.QoS; only some versions
        # re-export it. A KEEP_LAST depth of 0 makes rclcpp warn, so it is at least 1.
        depth = max(qos.depth, 1)
        profile = self._qos_class(depth)
        profile = profile.keep_all() if qos.history == 'keep_all' else profile.keep_last(depth)
        profile = profile.reliable() if qos.reliability == 'reliable' else profile.best_effort()
        return (profile.transient_local() if qos.durability == 'transient_local'
                else profile.durability_volatile())

    def _create_topic(self, topic: TopicInfo) -> None:
        kwargs: dict[str, Any] = {
            'name': topic.name,
            'type': topic.type,
            'serialization_format': topic.serialization_format,
        }
        if self._typed_topics:
            definition = type_definition(topic.type)
            kwargs['id'] = 0  # rosbag2 assigns the real id, as in the Jazzy tutorial
            kwargs['offered_qos_profiles'] = [self._qos(q) for q in topic.offered_qos]
            kwargs['type_description_hash'] = definition.type_hash if definition else ''
        else:
            kwargs['offered_qos_profiles'] = serialize_qos(topic.offered_qos, 8)
        try:
            self._writer.create_topic(self._rb.TopicMetadata(**kwargs))
        except RuntimeError as err:
            raise self._error(err, f'cannot add topic {topic.name} to') from err

    def _write_batch(self, messages: Sequence[Message]) -> None:
        try:
            for topic, stamp, data in messages:
                # pybind converts only bytes to the std::string parameter.
                self._writer.write(topic, data if isinstance(data, bytes) else bytes(data),
                                   stamp)
        except RuntimeError as err:
            raise self._error(err, 'cannot write to') from err

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        try:
            if hasattr(writer, 'close'):
                writer.close()
            else:
                del writer
                gc.collect()
        except RuntimeError as err:
            raise self._error(err, 'cannot finish') from err
        finally:
            self._remove_config_file()
        metadata = self.options.path / METADATA_FILE
        try:
            info = yaml.safe_load(metadata.read_text(encoding='utf-8'))
        except (OSError, yaml.YAMLError) as err:
            msg = f'rosbag2_py closed {self.options.path} but {metadata} is unreadable: {err}'
            raise BagError(msg) from err
        for name in info['rosbag2_bagfile_information']['relative_file_paths']:
            self._add_file(os.path.basename(name))

    def _remove_config_file(self) -> None:
        if self._config_file:
            os.unlink(self._config_file)
            self._config_file = ''

    def _error(self, err: Exception, what: str) -> BagError:
        msg = f'{what} {self.options.path}: {err}'
        if any(marker in str(err) for marker in _FULL_MARKERS):
            return StorageFullError(msg)
        return BagError(msg)
