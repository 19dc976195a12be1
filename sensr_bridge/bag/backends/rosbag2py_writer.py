# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""A writer on ROS 2's own ``rosbag2_py.SequentialWriter`` (Humble, Jazzy, Kilted).

The SequentialWriter runs in a process of its own
(:mod:`sensr_bridge.bag.backends.rosbag2py_process`): its ``write`` binding holds the GIL for
the whole C++ write, which in the recorder's process starved the subscription callbacks
(325 of 400 clouds reached the bag at 20 Hz, the rest overwritten in DDS, uncounted).
Each batch is copied once into a memfd shared with that process, which writes it while
this process waits with the GIL released, so the recorder's callbacks keep running.

- The options are checked here, against the rosbag2_py that is importable: ``custom_data``
  needs Jazzy or newer (``ConfigError`` on Humble); rosbag2 writes its own metadata
  version (9 on Jazzy and newer, 5 on Humble), so version 8 on Jazzy or newer is a
  ``ConfigError`` (use the python backend).
- For sqlite3 the pragmas resolved by ``pragmas.resolve_pragmas`` are written to a
  temporary storage config file and passed with preset 'none' (config entries win over
  rosbag2's defaults), so both sqlite3 writers apply the same pragmas.
- mcap ``compression`` (zstd or lz4) becomes the mcap plugin's ``compression`` and
  ``compressionLevel: Fastest`` in a temporary storage config file, over the entries of
  ``storage_config_uri`` if one is given (a storage preset stays in force for the rest).
- rosbag2 commits each message on its own (``max_cache_size`` 0), so a batch is not one
  transaction here; it swallows sqlite write errors on that path (the message is lost
  and logged at debug level), so a full disk cannot always be reported.
"""

from __future__ import annotations

from dataclasses import asdict
from multiprocessing.connection import Connection
import os
from pathlib import Path
import socket
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any

import yaml

import sensr_bridge
from sensr_bridge.bag.backends.pragmas import resolve_pragmas, write_storage_config
from sensr_bridge.bag.base import BagWriter, Message, TopicInfo, check_new_bag_dir
from sensr_bridge.bag.metadata import METADATA_FILE, serialize_qos
from sensr_bridge.bag.typedefs import type_definition
from sensr_bridge.errors import BagError, ConfigError, StorageFullError

if TYPE_CHECKING:
    from collections.abc import Sequence
    import mmap

    from sensr_bridge.bag.base import StorageOptions

INITIAL_SHARED_BYTES = 64 << 20
"""First size of the memfd; it grows to the largest message. Pages are only touched by
the batches written, so its resident size is the largest batch, not this bound."""

PROCESS_EXIT_TIMEOUT_S = 10.0
"""Seconds allowed for the writer process to exit after the bag is closed."""


MCAP_COMPRESSION = {'zstd': 'Zstd', 'lz4': 'Lz4'}
"""The mcap plugin's names of our ``compression`` values."""


def _temporary_config(storage_id: str) -> str:
    handle, path = tempfile.mkstemp(prefix=f'sensr_bridge_{storage_id}_', suffix='.yaml')
    os.close(handle)
    return path


def write_mcap_config(path: str, compression: str, base: str = '') -> None:
    """Write an mcap storage config: ``base``'s entries with chunk compression set.

    Args:
        path: Output file.
        compression: 'zstd' or 'lz4'.
        base: A user's mcap storage config file to start from, or ''.

    Raises:
        ConfigError: ``base`` is unreadable or not a mapping.

    """
    config: Any = {}
    if base:
        try:
            config = yaml.safe_load(Path(base).read_text(encoding='utf-8')) or {}
        except (OSError, yaml.YAMLError) as err:
            msg = f'storage_config_file {base}: {err}'
            raise ConfigError(msg) from err
        if not isinstance(config, dict):
            msg = f'storage_config_file {base} is not a mapping of mcap writer options'
            raise ConfigError(msg)
    config.update(compression=MCAP_COMPRESSION[compression], compressionLevel='Fastest')
    Path(path).write_text(yaml.safe_dump(config), encoding='utf-8')


class Rosbag2PyWriter(BagWriter):
    """Writes bags with rosbag2_py, in a writer process of its own.

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
        self._typed_topics = hasattr(rosbag2_py.TopicMetadata, 'id')
        self.can_split = hasattr(rosbag2_py.SequentialWriter, 'split_bagfile')
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
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._memory_fd = -1
        self._shared: mmap.mmap | None = None
        self._shared_size = 0

    def _open(self) -> None:
        options = self.options
        check_new_bag_dir(options.path)
        preset, config_uri = options.storage_preset_profile, options.storage_config_uri
        if self.pragmas:
            self._config_file = _temporary_config('sqlite3')
            write_storage_config(self._config_file, self.pragmas)
            preset, config_uri = 'none', self._config_file
        elif options.compression != 'none':
            self._config_file = _temporary_config('mcap')
            write_mcap_config(self._config_file, options.compression, config_uri)
            config_uri = self._config_file
        storage: dict[str, Any] = {
            'uri': str(options.path),
            'storage_id': options.storage_id,
            'max_bagfile_size': options.max_bagfile_size,
            'max_bagfile_duration': options.max_bagfile_duration,
            'max_cache_size': 0,
            'storage_preset_profile': preset,
            'storage_config_uri': config_uri,
        }
        if options.custom_data:
            storage['custom_data'] = dict(options.custom_data)
        try:
            self._start_process()
            self._request('open', storage, what='cannot create bag')
        except BagError:
            self._stop_process()
            self._remove_config_file()
            raise

    def _create_topic(self, topic: TopicInfo) -> None:
        kwargs: dict[str, Any] = {
            'name': topic.name,
            'type': topic.type,
            'serialization_format': topic.serialization_format,
        }
        if self._typed_topics:
            definition = type_definition(topic.type)
            kwargs['type_description_hash'] = definition.type_hash if definition else ''
            qos: Any = [asdict(q) for q in topic.offered_qos]
        else:
            qos = serialize_qos(topic.offered_qos, 8)
        self._request('topic', kwargs, qos, what=f'cannot add topic {topic.name} to')

    def _write_batch(self, messages: Sequence[Message]) -> None:
        placed: list[tuple[str, int, int, int]] = []
        offset = 0
        for topic, stamp, data in messages:
            size = len(data)
            if offset + size > self._shared_size and placed:
                self._request('write', placed, what='cannot write to')
                placed, offset = [], 0
            if size > self._shared_size:
                self._map(size)
            self._shared[offset:offset + size] = data
            placed.append((topic, stamp, offset, size))
            offset += size
        self._request('write', placed, what='cannot write to')

    def _split(self) -> None:
        self._request('split', what='cannot split')

    def _close(self) -> None:
        try:
            self._request('close', what='cannot finish')
        finally:
            self._stop_process()
            self._remove_config_file()
        metadata = self.options.path / METADATA_FILE
        try:
            info = yaml.safe_load(metadata.read_text(encoding='utf-8'))
        except (OSError, yaml.YAMLError) as err:
            msg = f'rosbag2_py closed {self.options.path} but {metadata} is unreadable: {err}'
            raise BagError(msg) from err
        for name in info['rosbag2_bagfile_information']['relative_file_paths']:
            self._add_file(os.path.basename(name))

    # --- the writer process -------------------------------------------------------------

    def _start_process(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._memory_fd = os.memfd_create('sensr_bridge_rosbag2py', os.MFD_CLOEXEC)
        # The child imports this very package, wherever it was imported from here.
        env = dict(os.environ)
        package_root = str(Path(sensr_bridge.__file__).resolve().parent.parent)
        env['PYTHONPATH'] = os.pathsep.join(
            p for p in (package_root, env.get('PYTHONPATH', '')) if p)
        try:
            self._process = subprocess.Popen(
                [sys.executable, '-m', 'sensr_bridge.bag.backends.rosbag2py_process',
                 str(theirs.fileno()), str(self._memory_fd)],
                pass_fds=(theirs.fileno(), self._memory_fd), stdin=subprocess.DEVNULL,
                env=env)
        except OSError as err:
            ours.close()
            msg = f'cannot start the rosbag2_py writer process: {err}'
            raise BagError(msg) from err
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._reply('start the writer process for')
        self._map(INITIAL_SHARED_BYTES)

    def _map(self, size: int) -> None:
        import mmap

        size = max(size, 2 * self._shared_size)
        if self._shared is not None:
            self._shared.close()
        os.ftruncate(self._memory_fd, size)
        self._shared = mmap.mmap(self._memory_fd, size)
        self._shared_size = size
        self._request('map', size, what='cannot share memory with the writer process of')

    def _request(self, *request: Any, what: str) -> None:
        try:
            self._conn.send(request)
        except OSError as err:
            raise self._process_gone(what) from err
        self._reply(what)

    def _reply(self, what: str) -> None:
        try:
            reply = self._conn.recv()
        except (EOFError, OSError) as err:
            raise self._process_gone(what) from err
        if reply[0] == 'error':
            _, kind, text = reply
            msg = f'{what} {self.options.path}: {text}'
            raise StorageFullError(msg) if kind == 'full' else BagError(msg)

    def _process_gone(self, what: str) -> BagError:
        code = None
        if self._process is not None:
            # Its end of the socket is closed: it has exited or is exiting.
            try:
                code = self._process.wait(PROCESS_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        msg = (f'{what} {self.options.path}: the rosbag2_py writer process exited '
               f'(code {code})')
        return BagError(msg)

    def _stop_process(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._shared is not None:
            self._shared.close()
            self._shared = None
        if self._memory_fd >= 0:
            os.close(self._memory_fd)
            self._memory_fd = -1
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.wait(PROCESS_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            msg = (f'the rosbag2_py writer process of {self.options.path} did not exit '
                   f'within {PROCESS_EXIT_TIMEOUT_S} s and was killed')
            raise BagError(msg) from None

    def _remove_config_file(self) -> None:
        if self._config_file:
            os.unlink(self._config_file)
            self._config_file = ''
