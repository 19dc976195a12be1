# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The bag-writer interface shared by every storage backend.

A writer takes batches of already serialized (CDR) messages, each a tuple of topic
name, receive timestamp in nanoseconds and the bytes. A batch is the unit of
durability: the sqlite3 writer commits it as one transaction, and a bag is only
split between two batches (by its size or duration limits, or by ``split()``), so a
split never loses or tears a batch.

Writers are safe to call from several threads: calls are serialized by a lock,
and ``stats`` can be read while a batch is being written.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
import os
from pathlib import Path
import threading
import time
from typing import TYPE_CHECKING

from sensr_bridge.bag.fileio import bag_error
from sensr_bridge.errors import BagError, BagExistsError, ConfigError
from sensr_bridge.nodes.stats import LatencyStats, LatencyWindow

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from typing_extensions import Self

Message = tuple[str, int, bytes]
"""A message to write: topic name, receive timestamp (ns), serialized CDR bytes."""


RELIABILITIES = ('reliable', 'best_effort')
DURABILITIES = ('volatile', 'transient_local')
HISTORIES = ('keep_last', 'keep_all')
STORAGE_IDS = ('sqlite3', 'mcap')
COMPRESSIONS = ('none', 'zstd', 'lz4')
METADATA_VERSIONS = (8, 9)


@dataclass(frozen=True)
class QosDesc:
    """The QoS offered by a publisher of a topic, as recorded in the bag.

    Attributes:
        reliability: 'reliable' or 'best_effort'.
        durability: 'volatile' or 'transient_local'.
        history: 'keep_last' or 'keep_all'.
        depth: History depth (0 when unknown or keep_all).

    Raises:
        ConfigError: A field has a value outside the listed ones.

    """

    reliability: str = 'reliable'
    durability: str = 'volatile'
    history: str = 'keep_last'
    depth: int = 10

    def __post_init__(self) -> None:
        """Validate the fields."""
        for name, value, allowed in (
            ('reliability', self.reliability, RELIABILITIES),
            ('durability', self.durability, DURABILITIES),
            ('history', self.history, HISTORIES),
        ):
            if value not in allowed:
                msg = f'QoS {name} must be one of {allowed}, not {value!r}'
                raise ConfigError(msg)
        if self.depth < 0:
            msg = f'QoS depth must be >= 0, not {self.depth}'
            raise ConfigError(msg)


@dataclass(frozen=True)
class TopicInfo:
    """A topic to record.

    Attributes:
        name: Topic name, e.g. '/sensr/points'.
        type: ROS 2 message type, e.g. 'sensor_msgs/msg/PointCloud2'.
        serialization_format: Serialization of the message bytes.
        offered_qos: The QoS offered by the topic's publishers.

    """

    name: str
    type: str
    serialization_format: str = 'cdr'
    offered_qos: tuple[QosDesc, ...] | list[QosDesc] = ()


@dataclass
class StorageOptions:
    """Where and how to write a bag, with the meaning of rosbag2's StorageOptions.

    Attributes:
        uri: Bag directory; it must not exist and is created by ``open()``.
        storage_id: 'sqlite3' or 'mcap'.
        max_bagfile_size: Split when a file would grow beyond this many bytes (0: never).
        max_bagfile_duration: Split when a file would span more than this many seconds
            (0: never).
        storage_preset_profile: sqlite3 pragma preset: '' or 'none' (the default preset),
            'crash_safe', 'durable', 'resilient' or 'rosbag2_default' (see ``pragmas.PRESETS``).
        storage_config_uri: rosbag2 storage config YAML (``write: pragmas: [...]``) or ''.
        metadata_version: metadata.yaml version: 9 (Jazzy and newer) or 8 (readable by
            Humble).
        custom_data: String pairs stored in the bag metadata.
        compression: mcap chunk compression: 'none', 'zstd' or 'lz4' (mcap only).

    Raises:
        ConfigError: A field has an invalid value.

    """

    uri: str | os.PathLike[str]
    storage_id: str = 'sqlite3'
    max_bagfile_size: int = 0
    max_bagfile_duration: int = 0
    storage_preset_profile: str = ''
    storage_config_uri: str = ''
    metadata_version: int = 9
    custom_data: dict[str, str] = field(default_factory=dict)
    compression: str = 'none'

    def __post_init__(self) -> None:
        """Validate the fields."""
        if self.storage_id not in STORAGE_IDS:
            msg = f'storage_id must be one of {STORAGE_IDS}, not {self.storage_id!r}'
            raise ConfigError(msg)
        if self.compression not in COMPRESSIONS:
            msg = f'compression must be one of {COMPRESSIONS}, not {self.compression!r}'
            raise ConfigError(msg)
        if self.compression != 'none' and self.storage_id != 'mcap':
            msg = (f'compression {self.compression!r} needs storage mcap (chunk compression); '
                   f'{self.storage_id} bags are written uncompressed')
            raise ConfigError(msg)
        if self.metadata_version not in METADATA_VERSIONS:
            msg = (f'metadata_version must be one of {METADATA_VERSIONS}, '
                   f'not {self.metadata_version!r}')
            raise ConfigError(msg)
        if self.max_bagfile_size < 0 or self.max_bagfile_duration < 0:
            msg = 'max_bagfile_size and max_bagfile_duration must be >= 0'
            raise ConfigError(msg)
        if not all(isinstance(k, str) and isinstance(v, str)
                   for k, v in self.custom_data.items()):
            msg = 'custom_data keys and values must be strings'
            raise ConfigError(msg)

    @property
    def path(self) -> Path:
        """The bag directory as a Path."""
        return Path(self.uri)


@dataclass
class TopicStats:
    """Messages and payload bytes written on one topic."""

    messages: int = 0
    bytes: int = 0


@dataclass
class BagStats:
    """What a writer has written so far.

    Attributes:
        topics: Per topic name, messages and payload bytes written.
        files: Storage file names relative to the bag directory.
        start_ns: Earliest message timestamp, or None before the first message.
        end_ns: Latest message timestamp, or None before the first message.
        write_latency: Duration of ``write_batch`` calls.

    """

    topics: dict[str, TopicStats] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    start_ns: int | None = None
    end_ns: int | None = None
    write_latency: LatencyStats = field(default_factory=LatencyStats)

    @property
    def messages(self) -> int:
        """Messages written on all topics."""
        return sum(t.messages for t in self.topics.values())

    @property
    def total_bytes(self) -> int:
        """Payload bytes written on all topics."""
        return sum(t.bytes for t in self.topics.values())


class BagWriter(abc.ABC):
    """Base class of the bag writers.

    Subclasses implement ``_open``, ``_create_topic``, ``_write_batch`` and ``_close``;
    this class checks the call order, serializes calls and keeps the statistics.

    Args:
        options: Where and how to write.

    """

    def __init__(self, options: StorageOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._state = 'new'
        self._topics: dict[str, TopicInfo] = {}
        self._stats = BagStats()
        self._latency = LatencyWindow()

    def open(self) -> None:
        """Create the bag directory and the first storage file.

        Raises:
            BagExistsError: The bag directory already exists.
            BagError: The writer was already opened, or the bag cannot be created.

        """
        with self._lock:
            if self._state != 'new':
                msg = f'bag writer for {self.options.uri} was already opened'
                raise BagError(msg)
            self._open()
            self._state = 'open'

    def create_topic(self, topic: TopicInfo) -> None:
        """Register a topic; creating the same topic again is a no-op.

        Args:
            topic: The topic.

        Raises:
            BagError: The writer is not open, or the topic exists with another type or
                serialization format.

        """
        with self._lock:
            self._require_open()
            known = self._topics.get(topic.name)
            if known is not None:
                if (known.type, known.serialization_format) != (
                        topic.type, topic.serialization_format):
                    msg = (f'topic {topic.name} already exists with type {known.type} '
                           f'({known.serialization_format}), cannot add it as {topic.type} '
                           f'({topic.serialization_format})')
                    raise BagError(msg)
                return
            self._create_topic(topic)
            self._topics[topic.name] = topic
            with self._stats_lock:
                self._stats.topics[topic.name] = TopicStats()

    def write_batch(self, messages: Sequence[Message]) -> None:
        """Write a batch of messages as one unit.

        Args:
            messages: (topic name, receive timestamp ns, CDR bytes) tuples.

        Raises:
            BagError: The writer is not open or a topic was not created.
            StorageFullError: The device is full; the batch was not written.

        """
        if not messages:
            return
        with self._lock:
            self._require_open()
            unknown = {topic for topic, _, _ in messages} - self._topics.keys()
            if unknown:
                msg = f'topics not created before writing: {sorted(unknown)}'
                raise BagError(msg)
            start = time.perf_counter()
            self._write_batch(messages)
            elapsed = time.perf_counter() - start
            with self._stats_lock:
                self._latency.add(elapsed)
                stats = self._stats
                for topic, stamp, data in messages:
                    entry = stats.topics[topic]
                    entry.messages += 1
                    entry.bytes += len(data)
                    stats.start_ns = stamp if stats.start_ns is None else min(
                        stats.start_ns, stamp)
                    stats.end_ns = stamp if stats.end_ns is None else max(stats.end_ns, stamp)

    can_split = True
    """Whether :meth:`split` is supported (rosbag2_py's writer binds it from Jazzy on)."""

    def split(self) -> None:
        """Finish the current storage file; the next batch starts a new one.

        Nothing happens when the current file holds no message yet.

        Raises:
            BagError: The writer is not open or cannot split, or the split failed.

        """
        with self._lock:
            self._require_open()
            if not self.can_split:
                msg = (f'bag writer for {self.options.uri} has no split on request '
                       '(rosbag2_py before Jazzy)')
                raise BagError(msg)
            self._split()

    def close(self) -> BagStats:
        """Finish the bag and write metadata.yaml; later calls return the same stats.

        Returns:
            The final statistics.

        Raises:
            BagError: The bag could not be finalized (the storage files stay readable).

        """
        with self._lock:
            if self._state != 'closed':
                try:
                    if self._state == 'open':
                        self._close()
                finally:
                    self._state = 'closed'
            return self.stats

    @property
    def stats(self) -> BagStats:
        """A snapshot of the statistics."""
        with self._stats_lock:
            return replace(
                self._stats,
                topics={k: replace(v) for k, v in self._stats.topics.items()},
                files=list(self._stats.files),
                write_latency=self._latency.summary(),
            )

    @property
    def topics(self) -> dict[str, TopicInfo]:
        """The topics created so far, by name."""
        with self._lock:
            return dict(self._topics)

    def _add_file(self, name: str) -> None:
        """Record a storage file name (relative to the bag directory) in the stats."""
        with self._stats_lock:
            self._stats.files.append(name)

    def _require_open(self) -> None:
        if self._state != 'open':
            msg = f'bag writer for {self.options.uri} is {self._state}, not open'
            raise BagError(msg)

    def __enter__(self) -> Self:
        """Open the writer."""
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close the writer, also when the block raised."""
        self.close()

    @abc.abstractmethod
    def _open(self) -> None:
        """Create the bag directory and storage."""

    @abc.abstractmethod
    def _create_topic(self, topic: TopicInfo) -> None:
        """Register a new topic in the storage."""

    @abc.abstractmethod
    def _write_batch(self, messages: Sequence[Message]) -> None:
        """Write a non-empty batch whose topics all exist."""

    @abc.abstractmethod
    def _split(self) -> None:
        """Finish the current storage file if it holds a message."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Finalize the storage and write metadata.yaml."""


def check_new_bag_dir(path: Path) -> None:
    """Check that a bag directory can be created at ``path``.

    Args:
        path: The bag directory.

    Raises:
        BagExistsError: ``path`` exists.
        BagError: The parent directory is missing or not writable.

    """
    if path.exists() or path.is_symlink():
        msg = f'bag directory {path} already exists; choose another output or remove it'
        raise BagExistsError(msg)
    parent = path.absolute().parent
    if not parent.is_dir():
        msg = f'cannot create bag {path}: parent directory {parent} does not exist'
        raise BagError(msg)
    if not os.access(parent, os.W_OK | os.X_OK):
        msg = f'cannot create bag {path}: parent directory {parent} is not writable'
        raise BagError(msg)


def create_bag_dir(path: Path) -> None:
    """Create a new bag directory (mode 0o755, less the umask).

    Args:
        path: The bag directory.

    Raises:
        BagExistsError: ``path`` exists.
        StorageFullError: The device is full.
        BagError: The parent directory is missing or not writable, or mkdir failed.

    """
    check_new_bag_dir(path)
    try:
        path.mkdir(mode=0o755)
    except OSError as err:
        msg = f'cannot create bag directory {path}: {err}'
        raise bag_error(msg, err) from err
