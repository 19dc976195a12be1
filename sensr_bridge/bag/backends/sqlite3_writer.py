# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""A pure-Python rosbag2 sqlite3 writer, file-compatible with rosbag2 on Jazzy and newer.

Each ``.db3`` file has rosbag2's schema version 4 (``SqliteStorage::initialize``:
tables ``schema``, ``metadata``, ``topics`` with ``type_description_hash``,
``message_definitions``, ``messages`` and the index ``timestamp_idx``, created with
rosbag2's exact statements). Like rosbag2, the serialized bag metadata is inserted in
the ``metadata`` table when a file is opened and again when it is closed, and files
are named ``<uri>/<basename(uri)>_<i>.db3``.

Differences from rosbag2, all deliberate:

- One explicit ``BEGIN ... COMMIT`` per ``write_batch``: a batch is durable against a
  process crash as a whole, and a full disk rolls back exactly that batch.
- Pragmas come from ``pragmas.resolve_pragmas``: the default preset is chosen by
  measurement (see ``pragmas.PRESETS``), applied in a safe order and read back.
- A file is split before a batch that would push it past ``max_bagfile_size``
  (estimated as payload plus one page; rosbag2 splits after the file has passed it),
  so files stay within about a page of the limit unless a single batch is larger.
- When a file is closed its journal mode is set back to DELETE, which removes any
  ``-journal``/``-wal`` side file, so the ``.db3`` alone is the complete database
  (readers such as rosbags open it immutable and would ignore a WAL).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from typing import TYPE_CHECKING

from sensr_bridge.bag.backends.pragmas import (
    Pragma,
    apply_pragmas,
    order_pragmas,
    pragma_value,
    resolve_pragmas,
)
from sensr_bridge.bag.base import BagWriter, Message, TopicInfo, create_bag_dir
from sensr_bridge.bag.fileio import bag_error, is_storage_full, start_writeback
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
    from pathlib import Path

    from sensr_bridge.bag.base import StorageOptions

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
# rosbag2's MIN_SPLIT_FILE_SIZE, for its 4 KiB pages.
MIN_SPLIT_FILE_SIZE = 86016
# An empty bag file has one page per table and index plus page 1; one more holds data.
_MIN_SPLIT_PAGES = 8
_SQLITE_DEFAULT_PAGE_SIZE = 4096
# rosbag2 SqliteStorage::initialize, statement for statement.
SCHEMA_STATEMENTS = (
    'CREATE TABLE schema(schema_version INTEGER PRIMARY KEY,ros_distro TEXT NOT NULL);',
    'CREATE TABLE metadata(id INTEGER PRIMARY KEY,metadata_version INTEGER NOT NULL,'
    'metadata TEXT NOT NULL);',
    'CREATE TABLE topics(id INTEGER PRIMARY KEY,name TEXT NOT NULL,type TEXT NOT NULL,'
    'serialization_format TEXT NOT NULL,offered_qos_profiles TEXT NOT NULL,'
    'type_description_hash TEXT NOT NULL);',
    'CREATE TABLE message_definitions(id INTEGER PRIMARY KEY,topic_type TEXT NOT NULL,'
    'encoding TEXT NOT NULL,encoded_message_definition TEXT NOT NULL,'
    'type_description_hash TEXT NOT NULL);',
    'CREATE TABLE messages(id INTEGER PRIMARY KEY,topic_id INTEGER NOT NULL,'
    'timestamp INTEGER NOT NULL, data BLOB NOT NULL);',
    'CREATE INDEX timestamp_idx ON messages (timestamp ASC);',
)
_INSERT_MESSAGE = 'INSERT INTO messages (timestamp, topic_id, data) VALUES (?, ?, ?);'


def storage_error(err: Exception, what: str) -> BagError:
    """Translate a sqlite3 or OS error into this package's errors.

    Args:
        err: The error.
        what: What failed, e.g. 'writing bag file x.db3'.

    Returns:
        StorageFullError for a full device, else BagError.

    """
    cause = 'storage full' if is_storage_full(err) else 'sqlite3 error'
    return bag_error(f'{cause} while {what}: {err}', err)


class _Db3File:
    """One open ``.db3`` file of a bag, with what was committed to it."""

    def __init__(self, path: Path, pragmas: list[Pragma], distro: str) -> None:
        self.path = path
        self.topic_ids: dict[str, int] = {}
        self.defined_types: set[str] = set()
        self.start_ns: int | None = None
        self.end_ns: int | None = None
        self.message_count = 0
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as err:
            raise storage_error(err, f'creating {path}') from err
        # sqlite3 does not expose its descriptor; the advice applies to the file.
        self._fd = os.open(path, os.O_RDONLY)
        try:
            apply_pragmas(self.conn, pragmas)
            self.conn.execute('BEGIN')
            for statement in SCHEMA_STATEMENTS:
                self.conn.execute(statement)
            self.conn.execute('INSERT INTO schema (schema_version, ros_distro) VALUES (?, ?)',
                              (SCHEMA_VERSION, distro))
            self.conn.execute('COMMIT')
            self.page_size = self.conn.execute('PRAGMA page_size').fetchone()[0]
            self.size = self._page_count() * self.page_size
        except ConfigError:
            self.discard()
            raise
        except sqlite3.Error as err:
            self.discard()
            raise storage_error(err, f'creating {path}') from err

    def discard(self) -> None:
        """Close and delete a file that could not be set up, so no broken file is left."""
        self.conn.close()
        os.close(self._fd)
        for suffix in ('', '-journal', '-wal', '-shm'):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    def _page_count(self) -> int:
        return self.conn.execute('PRAGMA page_count').fetchone()[0]

    def add_topic(self, record: TopicRecord) -> None:
        """Insert a topic row, and its type's definition row if the type is new here."""
        definition = type_definition(record.type)
        try:
            if definition is not None and record.type not in self.defined_types:
                self.conn.execute(
                    'INSERT INTO message_definitions (topic_type, encoding, '
                    'encoded_message_definition, type_description_hash) VALUES (?, ?, ?, ?)',
                    (definition.type, definition.encoding, definition.text,
                     definition.type_hash))
                self.defined_types.add(record.type)
            cursor = self.conn.execute(
                'INSERT INTO topics (name, type, serialization_format, offered_qos_profiles, '
                'type_description_hash) VALUES (?, ?, ?, ?, ?)',
                (record.name, record.type, record.serialization_format,
                 record.offered_qos_profiles, record.type_description_hash))
        except sqlite3.Error as err:
            raise storage_error(err, f'adding topic {record.name} to {self.path}') from err
        self.topic_ids[record.name] = cursor.lastrowid

    def write(self, messages: Sequence[Message]) -> None:
        """Insert a batch in one transaction; roll it back on any error."""
        rows = [(stamp, self.topic_ids[topic], data) for topic, stamp, data in messages]
        try:
            self.conn.execute('BEGIN')
            self.conn.executemany(_INSERT_MESSAGE, rows)
            self.conn.execute('COMMIT')
        except sqlite3.Error as err:
            if self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute('ROLLBACK')
            raise storage_error(err, f'writing {self.path}; the batch was rolled back, '
                                     f'the file keeps every earlier batch') from err
        start_writeback(self._fd)
        self.size = self._page_count() * self.page_size
        stamps = [stamp for _, stamp, _ in messages]
        self.start_ns = min(stamps) if self.start_ns is None else min(self.start_ns, *stamps)
        self.end_ns = max(stamps) if self.end_ns is None else max(self.end_ns, *stamps)
        self.message_count += len(messages)

    def insert_metadata(self, version: int, text: str) -> None:
        """Insert the serialized bag metadata, as rosbag2's ``update_metadata`` does."""
        try:
            self.conn.execute('INSERT INTO metadata (metadata_version, metadata) VALUES (?, ?)',
                              (version, text))
        except sqlite3.Error as err:
            raise storage_error(err, f'writing metadata to {self.path}') from err

    def record(self) -> FileRecord:
        """What this file holds, for metadata.yaml."""
        return FileRecord(self.path.name, self.start_ns, self.end_ns, self.message_count)

    def close(self) -> None:
        """Leave a self-contained database file and close it."""
        try:
            self.conn.execute('PRAGMA journal_mode = DELETE').fetchall()
        except sqlite3.Error as err:
            # The data is committed; readers that recover journals still see all of it.
            _log.warning('could not remove the journal of %s: %s', self.path, err)
        self.conn.close()
        os.close(self._fd)


class Sqlite3Writer(BagWriter):
    """Writes rosbag2 sqlite3 bags without ROS.

    Args:
        options: Where and how to write; ``storage_id`` must be 'sqlite3'.
        pragmas: Exact pragmas to apply instead of those of ``storage_preset_profile``
            and ``storage_config_uri`` (for benchmarks and tests).

    Raises:
        ConfigError: Wrong storage id, unknown preset, bad storage config file, or a split
            size smaller than rosbag2's minimum or than 8 database pages (an empty bag
            file is 7).

    """

    def __init__(self, options: StorageOptions, *, pragmas: list[Pragma] | None = None) -> None:
        super().__init__(options)
        if options.storage_id != 'sqlite3':
            msg = f'Sqlite3Writer writes sqlite3 bags, not {options.storage_id!r}'
            raise ConfigError(msg)
        self.pragmas = (order_pragmas(pragmas) if pragmas is not None else
                        resolve_pragmas(options.storage_preset_profile,
                                        options.storage_config_uri))
        self._page_size = int(pragma_value(self.pragmas, 'page_size')
                              or _SQLITE_DEFAULT_PAGE_SIZE)
        min_split = max(MIN_SPLIT_FILE_SIZE, _MIN_SPLIT_PAGES * self._page_size)
        if 0 < options.max_bagfile_size < min_split:
            msg = (f'max_bagfile_size {options.max_bagfile_size} is below the minimum of '
                   f'{min_split} bytes for sqlite3 with {self._page_size}-byte pages '
                   f'(0 disables splitting)')
            raise ConfigError(msg)
        self._distro = ros_distro()
        self._file: _Db3File | None = None
        self._closed_files: list[FileRecord] = []
        self._records: dict[str, TopicRecord] = {}

    def _open(self) -> None:
        create_bag_dir(self.options.path)
        self._open_file()

    def _open_file(self) -> None:
        index = len(self._closed_files)
        path = self.options.path / f'{self.options.path.name}_{index}.db3'
        self._file = _Db3File(path, self.pragmas, self._distro)
        try:
            for record in self._records.values():
                self._file.add_topic(record)
            self._file.insert_metadata(self.options.metadata_version, self._metadata_text())
        except BagError:
            current, self._file = self._file, None
            current.discard()
            raise
        self._add_file(path.name)

    def _create_topic(self, topic: TopicInfo) -> None:
        definition = type_definition(topic.type)
        record = TopicRecord(
            name=topic.name,
            type=topic.type,
            serialization_format=topic.serialization_format,
            offered_qos_profiles=serialize_qos(topic.offered_qos,
                                               self.options.metadata_version),
            type_description_hash=definition.type_hash if definition else '',
            message_count=0,
        )
        if self._file is None:
            self._open_file()
        self._file.add_topic(record)
        self._records[topic.name] = record

    def _write_batch(self, messages: Sequence[Message]) -> None:
        if self._file is not None and self._must_split(messages):
            self._close_file()
        if self._file is None:
            self._open_file()
        self._file.write(messages)

    def _must_split(self, messages: Sequence[Message]) -> bool:
        current = self._file
        if current is None or not current.message_count:
            return False
        max_size = self.options.max_bagfile_size
        # Growth estimate: the payload plus one page for b-tree and page-rounding overhead.
        growth = sum(len(data) for _, _, data in messages) + current.page_size
        if max_size and current.size + growth > max_size:
            return True
        max_duration_ns = self.options.max_bagfile_duration * 1_000_000_000
        newest = max(stamp for _, stamp, _ in messages)
        return bool(max_duration_ns) and newest - current.start_ns > max_duration_ns

    def _split(self) -> None:
        if self._file is not None and self._file.message_count:
            self._close_file()

    def _close_file(self) -> None:
        current, self._file = self._file, None
        try:
            current.insert_metadata(self.options.metadata_version,
                                    self._metadata_text(current.record()))
        except BagError as err:
            # The metadata table is informational; reindex rebuilds it from messages.
            _log.warning('%s', err)
        finally:
            self._closed_files.append(current.record())
            current.close()

    def _files(self, current: FileRecord | None = None) -> list[FileRecord]:
        if current is None and self._file is not None:
            current = self._file.record()
        return self._closed_files + ([current] if current else [])

    def _info(self, current: FileRecord | None = None) -> dict[str, object]:
        return build_metadata(version=self.options.metadata_version, storage_id='sqlite3',
                              topics=with_counts(self._records.values(), self.stats),
                              files=self._files(current),
                              custom_data=self.options.custom_data, distro=self._distro)

    def _metadata_text(self, current: FileRecord | None = None) -> str:
        return dump_yaml(self._info(current))

    def _close(self) -> None:
        if self._file is not None:
            self._close_file()
        write_metadata_file(self.options.path, self._info())
