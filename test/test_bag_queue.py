# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""BatchingWriter: batching, bounded queue with drop policies, draining, full disk."""

from __future__ import annotations

from pathlib import Path
import threading
import time

import pytest
from rosbags.rosbag2 import Reader
import yaml

from sensr_bridge.bag import queue as queue_module
from sensr_bridge.bag.backends.sqlite3_writer import Sqlite3Writer
from sensr_bridge.bag.base import StorageOptions, TopicInfo
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.bag.queue import BatchingWriter
from sensr_bridge.errors import BagError, ConfigError, StorageFullError

TOPIC = TopicInfo('/t', 'std_msgs/msg/UInt32')
OTHER = TopicInfo('/u', 'std_msgs/msg/UInt32')


class RecordingWriter(Sqlite3Writer):
    """A real sqlite3 writer that also reports its batches, to synchronise on them.

    ``entered`` is set when a batch starts; if ``gate`` is given, the batch then waits
    for it.
    """

    def __init__(self, options: StorageOptions, gate: threading.Event | None = None) -> None:
        super().__init__(options)
        self.batches: list[list[tuple[str, int, bytes]]] = []
        self.cond = threading.Condition()
        self.entered = threading.Event()
        self.gate = gate

    def _write_batch(self, messages) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait()
        super()._write_batch(messages)
        with self.cond:
            self.batches.append(list(messages))
            self.cond.notify_all()

    def wait_batches(self, count: int) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.batches) >= count, timeout=10)


def open_writer(uri: Path, gate: threading.Event | None = None) -> RecordingWriter:
    writer = RecordingWriter(StorageOptions(uri), gate)
    writer.open()
    writer.create_topic(TOPIC)
    return writer


def message(i: int, size: int = 8) -> bytes:
    return i.to_bytes(4, 'little') * (size // 4)


def read_stamps(uri: Path) -> list[int]:
    with Reader(uri) as reader:
        return [stamp for _, stamp, _ in reader.messages()]


def test_batches_by_count(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / 'bag')
    queue = BatchingWriter(writer, batch_max_messages=3, batch_max_delay_s=60)
    for i in range(9):
        assert queue.put(TOPIC.name, i, message(i))
    queue.start()
    assert writer.wait_batches(3)
    queue.close()
    assert [len(b) for b in writer.batches] == [3, 3, 3]
    assert read_stamps(tmp_path / 'bag') == list(range(9))


def test_batches_by_bytes(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / 'bag')
    queue = BatchingWriter(writer, batch_max_messages=100, batch_max_bytes=1000,
                           batch_max_delay_s=60)
    for i in range(6):
        queue.put(TOPIC.name, i, message(i, 400))
    queue.start()
    assert writer.wait_batches(2)  # the last 800 bytes wait for more data or close()
    stats = queue.close()
    assert [len(b) for b in writer.batches] == [2, 2, 2]
    assert stats.messages == 6


def test_batches_by_time(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / 'bag')
    queue = BatchingWriter(writer, batch_max_messages=100, batch_max_delay_s=0.05)
    queue.start()
    start = time.monotonic()
    queue.put(TOPIC.name, 1, message(1))
    assert writer.wait_batches(1)
    assert time.monotonic() - start >= 0.045
    assert queue.stats().topics[TOPIC.name].written_messages == 1
    queue.close()


def test_full_queue_drops_older_clouds_before_small_messages(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / 'bag')
    queue = BatchingWriter(writer, max_queue_bytes=1000)
    sizes = {1: 400, 2: 8, 3: 400, 4: 8, 5: 100}  # stamp: size; 916 bytes queued
    for stamp, size in sizes.items():
        assert queue.put(TOPIC.name, stamp, message(stamp, size))
    assert queue.put(TOPIC.name, 6, message(6, 400))  # one 400-byte message must go
    assert queue.put(TOPIC.name, 7, message(7, 600))  # none that large: the largest go
    stats = queue.close()
    assert queue.stats().topics[TOPIC.name].dropped == {'queue_full': 3}
    assert stats.topics[TOPIC.name].messages == 4
    # 1 went for 6; for 7 the largest, oldest first: 3, then 6. The small ones stay.
    assert read_stamps(tmp_path / 'bag') == [2, 4, 5, 7]


def test_batch_min_bytes_writes_without_waiting(tmp_path: Path) -> None:
    """Small messages wait for the delay (an hour here); enough queued bytes do not."""
    writer = open_writer(tmp_path / 'bag')
    queue = BatchingWriter(writer, batch_max_messages=100, batch_min_bytes=1000,
                           batch_max_delay_s=3600)
    queue.start()
    queue.put(TOPIC.name, 1, message(1, 400))
    queue.put(TOPIC.name, 2, message(2, 400))
    assert not writer.entered.is_set()
    queue.put(TOPIC.name, 3, message(3, 400))
    assert writer.wait_batches(1)
    assert [len(b) for b in writer.batches] == [3]
    queue.close()


@pytest.mark.parametrize(('policy', 'accepted', 'kept'), [
    ('drop_newest', [True, True, True, False, False], [0, 1, 2]),
    ('drop_oldest', [True] * 5, [2, 3, 4]),
])
def test_bounded_queue_drops_per_policy(tmp_path: Path, policy: str, accepted: list[bool],
                                        kept: list[int]) -> None:
    writer = open_writer(tmp_path / 'bag')
    queue = BatchingWriter(writer, max_queue_bytes=1000, drop_policy=policy)
    assert [queue.put(TOPIC.name, i, message(i, 300)) for i in range(5)] == accepted
    assert queue.put(TOPIC.name, 9, message(9, 1200)) is False
    stats = queue.stats()
    assert (stats.queue_messages, stats.queue_bytes, stats.peak_queue_bytes) == (3, 900, 900)
    topic = stats.topics[TOPIC.name]
    assert topic.dropped == {'queue_full': 2, 'too_large': 1}
    assert (topic.received_messages, topic.dropped_bytes) == (6, 1800)
    queue.close()
    assert read_stamps(tmp_path / 'bag') == kept


def test_close_drains_everything_and_counts(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / 'bag')
    queue = BatchingWriter(writer, batch_max_messages=4, batch_max_delay_s=60)
    queue.create_topic(OTHER)
    queue.start()
    for i in range(50):
        assert queue.put((TOPIC, OTHER)[i % 2].name, i, message(i, 100))
    bag = queue.close()
    assert queue.close() is bag
    assert read_stamps(tmp_path / 'bag') == list(range(50))
    stats = queue.stats()
    assert {n: (t.written_messages, t.written_bytes, t.dropped_messages)
            for n, t in stats.topics.items()} == {TOPIC.name: (25, 2500, 0),
                                                  OTHER.name: (25, 2500, 0)}
    assert (stats.queue_messages, stats.queue_bytes) == (0, 0)
    latency = stats.write_latency
    assert latency.count == stats.batches == len(writer.batches)
    assert 0 < latency.p50_s <= latency.p99_s <= latency.max_s
    assert queue.put(TOPIC.name, 99, message(99)) is False
    assert queue.put('/never', 99, message(99)) is False
    assert queue.stats().dropped == {'closed': 2}


def test_unknown_topic_is_dropped_not_fatal(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / 'bag')
    queue = BatchingWriter(writer)
    queue.start()
    assert queue.put('/never', 1, message(1)) is False
    assert queue.put(TOPIC.name, 2, message(2)) is True
    queue.close()
    assert read_stamps(tmp_path / 'bag') == [2]
    assert queue.stats().dropped == {'unknown_topic': 1}


def test_close_timeout_drops_the_rest_but_finishes_the_batch(tmp_path: Path) -> None:
    gate = threading.Event()
    writer = open_writer(tmp_path / 'bag', gate)
    queue = BatchingWriter(writer, batch_max_messages=1)
    queue.start()
    for i in range(3):
        queue.put(TOPIC.name, i, message(i))
    assert writer.entered.wait(10)
    opener = threading.Timer(1.0, gate.set)
    opener.start()
    queue.close(timeout=0.05)
    opener.join()
    assert read_stamps(tmp_path / 'bag') == [0]
    assert queue.stats().dropped == {'close_timeout': 2}


def test_storage_full_stops_writing_and_closes_valid(small_fs: Path) -> None:
    uri = small_fs / 'bag'
    writer = open_writer(uri)
    errors: list[Exception] = []
    failed = threading.Event()

    def on_error(err: Exception) -> None:
        errors.append(err)
        with writer.cond:
            failed.set()
            writer.cond.notify_all()

    queue = BatchingWriter(writer, batch_max_messages=1, on_error=on_error)
    queue.start()
    for i in range(100):
        queue.put(TOPIC.name, i, message(i, 200_000))
        with writer.cond:
            writer.cond.wait_for(lambda i=i: len(writer.batches) > i or failed.is_set(),
                                 timeout=10)
        if failed.is_set():
            break
    assert failed.is_set()
    assert queue.put(TOPIC.name, 1000, message(1000)) is False
    bag = queue.close()
    assert len(errors) == 1
    assert isinstance(errors[0], StorageFullError)
    stats = queue.stats()
    assert stats.error.startswith('StorageFullError')
    assert stats.dropped == {'storage_full': 2}
    written = stats.topics[TOPIC.name].written_messages
    assert written == bag.messages == len(writer.batches) > 0
    assert read_stamps(uri) == list(range(written))


class FullWriter(RecordingWriter):
    """Fails its first batch as a full disk does."""

    def _write_batch(self, messages) -> None:
        raise StorageFullError('storage full while writing (test)')


class LogSpy:
    """Stands in for the queue module's logger: records each call.

    Not caplog: with launch_testing's pytest plugin loaded (the ROS 2 stack), loggers
    created afterwards do not propagate to the root logger caplog listens on.
    """

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def error(self, msg: str, *args: object) -> None:
        self.lines.append(('ERROR', msg % args))

    def exception(self, msg: str, *args: object) -> None:
        self.lines.append(('EXCEPTION', msg % args))


@pytest.mark.parametrize('with_callback', [True, False])
def test_write_failure_is_reported_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        with_callback: bool) -> None:
    """on_error reports it (the recorder, through its ROS logger); else logging does, once."""
    writer = FullWriter(StorageOptions(tmp_path / 'bag'))
    writer.open()
    writer.create_topic(TOPIC)
    errors: list[Exception] = []
    failed = threading.Event()

    def on_error(err: Exception) -> None:
        errors.append(err)
        failed.set()

    log = LogSpy()
    monkeypatch.setattr(queue_module, '_log', log)
    queue = BatchingWriter(writer, batch_max_messages=1,
                           on_error=on_error if with_callback else None)
    queue.start()
    queue.put(TOPIC.name, 0, message(0))
    if with_callback:
        assert failed.wait(10)
    queue.close()  # joins the writer thread: its log record, if any, is in by now
    assert queue.stats().error.startswith('StorageFullError')
    if with_callback:
        assert len(errors) == 1
        assert log.lines == []
    else:
        assert log.lines == [('ERROR', 'bag writing stopped: storage full while writing (test)')]


def test_invalid_settings(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / 'bag')
    with pytest.raises(ConfigError, match='drop_policy'):
        BatchingWriter(writer, drop_policy='drop_random')
    with pytest.raises(ConfigError, match='must be > 0'):
        BatchingWriter(writer, max_queue_bytes=0)
    writer.close()


def test_skipped_messages_are_received_and_counted_apart_from_drops(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / 'bag')
    queue = BatchingWriter(writer)
    queue.start()
    queue.put(TOPIC.name, 1, message(1))
    queue.skip(TOPIC.name, 8, 'interval')
    queue.skip(TOPIC.name, 8, 'interval')
    queue.skip(TOPIC.name, 0, 'empty')
    queue.close()
    topic = queue.stats().topics[TOPIC.name]
    assert (topic.received_messages, topic.received_bytes) == (4, 24)
    assert topic.skipped == {'interval': 2, 'empty': 1}
    assert topic.skipped_messages == 3
    assert (topic.written_messages, topic.dropped_messages) == (1, 0)
    assert read_stamps(tmp_path / 'bag') == [1]


@pytest.mark.parametrize('storage_id', ['sqlite3', 'mcap'])
def test_split_between_messages_queued_before_and_after(tmp_path: Path, storage_id: str) -> None:
    writer = create_writer(StorageOptions(tmp_path / 'bag', storage_id=storage_id), 'python')
    writer.open()
    writer.create_topic(TOPIC)
    # A long delay: nothing is written before a split or close makes the queue due.
    queue = BatchingWriter(writer, batch_max_messages=100, batch_max_delay_s=60)
    for i in range(3):
        queue.put(TOPIC.name, i, message(i))
    queue.split()
    queue.split()  # nothing between two splits: no empty file
    for i in range(3, 8):
        queue.put(TOPIC.name, i, message(i))
    queue.start()
    queue.split()
    queue.put(TOPIC.name, 8, message(8))
    queue.close()
    info = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    assert [f['message_count'] for f in info['rosbag2_bagfile_information']['files']] == [
        3, 5, 1]
    assert read_stamps(tmp_path / 'bag') == list(range(9))
    assert queue.stats().splits == 3
    with pytest.raises(BagError, match='cannot split'):
        queue.split()


def test_split_refused_at_once_by_a_writer_that_cannot(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / 'bag')
    writer.can_split = False  # as rosbag2_py's writer on Humble
    queue = BatchingWriter(writer)
    queue.start()
    with pytest.raises(BagError, match='no split on request'):
        queue.split()
    with pytest.raises(BagError, match='no split on request'):
        writer.split()
    assert queue.put(TOPIC.name, 1, message(1))
    assert queue.close().messages == 1  # writing goes on
    assert queue.stats().error is None
