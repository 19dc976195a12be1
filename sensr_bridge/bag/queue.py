# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""A bounded queue and a writer thread that hands messages to a bag writer in batches.

The recorder's subscription callback only calls ``put``, which never blocks on I/O:
it appends the message to a queue bounded in bytes, or drops a message when the
bound would be exceeded (the new one or the oldest ones, per policy) and counts the
drop. A dedicated thread takes batches off the queue (up to ``batch_max_messages``
messages or ``batch_max_bytes`` bytes) and calls ``writer.write_batch``. A batch is
written as soon as ``batch_min_bytes`` are queued (one cloud is enough: its
transaction costs little beside its bytes, and waiting would only add latency), and
otherwise no later than ``batch_max_delay_s`` after the oldest queued message arrived,
so small messages share transactions. While a batch is being written the next one
fills up, so batches grow with the load.

If the writer fails (``StorageFullError``, or any other error), the thread stops
writing: the failed batch, everything queued and every later message are counted as
dropped with reason 'storage_full' or 'write_error', ``on_error`` is called once (or,
without one, the error is logged through :mod:`logging`), and ``close()`` still closes
the writer so the bag holds everything committed.

``split()`` splits the bag between the messages queued before the call and those after:
the writer thread writes what was queued, calls the writer's ``split``, and goes on.

Messages the recorder leaves out on purpose (an interval, a pause) are counted with
``skip``: received and skipped per reason, never dropped.

Drop reasons: 'queue_full' (byte bound), 'too_large' (a message larger than the
bound), 'unknown_topic' (``create_topic`` not called), 'closed' (``put`` after
``close``), 'close_timeout' (still queued when ``close``'s timeout expired),
'storage_full' and 'write_error'.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
import logging
import threading
import time
from typing import TYPE_CHECKING, Literal, NamedTuple

from sensr_bridge.errors import BagError, ConfigError, StorageFullError
from sensr_bridge.nodes.stats import LatencyStats, LatencyWindow

if TYPE_CHECKING:
    from collections.abc import Callable

    from sensr_bridge.bag.base import BagStats, BagWriter, TopicInfo

DropPolicy = Literal['drop_newest', 'drop_oldest']

_log = logging.getLogger(__name__)


class _Item(NamedTuple):
    topic: str
    stamp: int
    data: bytes
    queued_at: float
    seq: int  # position among the messages queued, for split()


_SPLIT: list[_Item] = []
"""What the writer thread is handed when a split is due instead of a batch."""


@dataclass
class TopicQueueStats:
    """Counters of one topic.

    Attributes:
        received_messages: Messages passed to ``put``.
        received_bytes: Their payload bytes.
        written_messages: Messages the writer has written.
        written_bytes: Their payload bytes.
        dropped: Dropped messages per reason.
        dropped_bytes: Payload bytes dropped.
        skipped: Messages left out on purpose (``skip``), per reason: not a loss.

    """

    received_messages: int = 0
    received_bytes: int = 0
    written_messages: int = 0
    written_bytes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_bytes: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_messages(self) -> int:
        """Dropped messages for all reasons."""
        return sum(self.dropped.values())

    @property
    def skipped_messages(self) -> int:
        """Skipped messages for all reasons."""
        return sum(self.skipped.values())


@dataclass
class QueueStats:
    """A snapshot of a ``BatchingWriter``.

    Attributes:
        topics: Counters per topic name.
        queue_messages: Messages waiting in the queue.
        queue_bytes: Their payload bytes.
        peak_queue_bytes: Highest ``queue_bytes`` seen.
        batches: Batches written.
        splits: Splits done on request (``split``).
        write_latency: Duration of ``write_batch`` calls (p50, p99 and max).
        commit_latency: From a message's receive timestamp to its batch committed.
        stamp_latency: From a message's own header stamp (``stamp_of``) to committed.
        error: Description of the writer failure that stopped writing, if any.

    """

    topics: dict[str, TopicQueueStats] = field(default_factory=dict)
    queue_messages: int = 0
    queue_bytes: int = 0
    peak_queue_bytes: int = 0
    batches: int = 0
    splits: int = 0
    write_latency: LatencyStats = field(default_factory=LatencyStats)
    commit_latency: LatencyStats = field(default_factory=LatencyStats)
    stamp_latency: LatencyStats = field(default_factory=LatencyStats)
    error: str | None = None

    @property
    def dropped(self) -> dict[str, int]:
        """Dropped messages per reason, all topics together."""
        total: dict[str, int] = {}
        for topic in self.topics.values():
            for reason, count in topic.dropped.items():
                total[reason] = total.get(reason, 0) + count
        return total


class BatchingWriter:
    """Feeds a bag writer from a bounded queue on a dedicated thread.

    Args:
        writer: An open bag writer; this object closes it in ``close``.
        max_queue_bytes: Bound on the payload bytes waiting in the queue (the batch being
            written, at most ``batch_max_bytes`` or one message, comes on top).
        batch_max_messages: Most messages per batch.
        batch_max_bytes: Most payload bytes per batch (a single larger message still
            forms a batch of its own).
        batch_min_bytes: Queued bytes that make a batch due at once, without waiting
            for ``batch_max_delay_s`` (capped at ``batch_max_bytes``).
        batch_max_delay_s: Longest time a message waits for its batch to fill.
        drop_policy: 'drop_newest' refuses the new message when the queue is full;
            'drop_oldest' drops queued messages until the new one fits: the oldest one
            at least as large as the new message, else the largest (clouds go before
            small messages).
        on_error: Called once, on the writer thread, with the error that stopped writing.
        stamp_of: Returns the header stamp (ns) of a message on a topic, or None; feeds
            ``stamp_latency``, the end-to-end latency of stamped messages.

    Raises:
        ConfigError: A bound is not positive or the policy is unknown.

    """

    def __init__(self, writer: BagWriter, *, max_queue_bytes: int = 512 * 2**20,
                 batch_max_messages: int = 8, batch_max_bytes: int = 64 * 2**20,
                 batch_min_bytes: int = 4 * 2**20, batch_max_delay_s: float = 0.1,
                 drop_policy: DropPolicy = 'drop_oldest',
                 on_error: Callable[[Exception], None] | None = None,
                 stamp_of: Callable[[str, bytes], int | None] | None = None) -> None:
        if min(max_queue_bytes, batch_max_messages, batch_max_bytes, batch_min_bytes) <= 0 or (
                batch_max_delay_s < 0):
            msg = ('max_queue_bytes, batch_max_messages, batch_max_bytes and batch_min_bytes '
                   'must be > 0 and batch_max_delay_s >= 0')
            raise ConfigError(msg)
        if drop_policy not in ('drop_newest', 'drop_oldest'):
            msg = f"drop_policy must be 'drop_newest' or 'drop_oldest', not {drop_policy!r}"
            raise ConfigError(msg)
        self._writer = writer
        self._max_queue_bytes = max_queue_bytes
        self._batch_max_messages = batch_max_messages
        self._batch_max_bytes = batch_max_bytes
        self._batch_due_bytes = min(batch_min_bytes, batch_max_bytes)
        self._batch_max_delay_s = batch_max_delay_s
        self._drop_policy = drop_policy
        self._on_error = on_error
        self._cond = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._seq = 0
        self._splits: deque[int] = deque()  # seq of the first message after each split
        self._known_topics = set(writer.topics)
        self._stats = QueueStats(topics={name: TopicQueueStats() for name in writer.topics})
        self._latency = LatencyWindow()
        self._commit_latency = LatencyWindow()
        self._stamp_latency = LatencyWindow()
        self._stamp_of = stamp_of
        self._failure: str | None = None
        self._closing = False
        self._abandon = False
        self._thread: threading.Thread | None = None
        self._final: BagStats | None = None

    def create_topic(self, topic: TopicInfo) -> None:
        """Create a topic on the writer and accept messages for it.

        Args:
            topic: The topic.

        """
        self._writer.create_topic(topic)
        with self._cond:
            self._known_topics.add(topic.name)
            self._stats.topics.setdefault(topic.name, TopicQueueStats())

    def start(self) -> None:
        """Start the writer thread.

        Raises:
            BagError: Already started.

        """
        with self._cond:
            if self._thread is not None:
                msg = 'BatchingWriter already started'
                raise BagError(msg)
            # A daemon thread does not keep a process alive that forgot close(); the
            # crash-safe sqlite3 presets roll an interrupted batch back on next open.
            self._thread = threading.Thread(target=self._run, name='bag-writer', daemon=True)
            self._thread.start()

    def put(self, topic: str, t_ns: int, data: bytes) -> bool:
        """Queue a message for writing; never blocks on I/O.

        Args:
            topic: Topic name (created with ``create_topic`` or on the writer before).
            t_ns: Receive timestamp in nanoseconds.
            data: Serialized message.

        Returns:
            True if the message was queued, False if it was dropped (and counted).

        """
        size = len(data)
        with self._cond:
            entry = self._topic_stats(topic)
            entry.received_messages += 1
            entry.received_bytes += size
            reason = self._refusal(topic, size)
            if reason:
                self._count_drop(topic, size, reason)
                return False
            while self._stats.queue_bytes + size > self._max_queue_bytes:
                old = self._evict(size)
                self._stats.queue_bytes -= len(old.data)
                self._count_drop(old.topic, len(old.data), 'queue_full')
            self._queue.append(_Item(topic, t_ns, data, time.monotonic(), self._seq))
            self._seq += 1
            self._stats.queue_bytes += size
            self._stats.peak_queue_bytes = max(self._stats.peak_queue_bytes,
                                               self._stats.queue_bytes)
            self._cond.notify_all()
            return True

    def skip(self, topic: str, size: int, reason: str) -> None:
        """Count a message received but left out on purpose (an interval, pause, ...).

        Args:
            topic: Topic name.
            size: Its payload bytes (counted as received).
            reason: Why it was left out.

        """
        with self._cond:
            entry = self._topic_stats(topic)
            entry.received_messages += 1
            entry.received_bytes += size
            entry.skipped[reason] = entry.skipped.get(reason, 0) + 1

    def split(self) -> None:
        """Split the bag after the messages queued so far; returns at once.

        The writer thread writes what is queued now into the current file, then starts a
        new one; messages ``put`` after this call go to the new file. No message is lost
        or written twice across the split.

        Raises:
            BagError: Writing has stopped (a failed write), the writer is closing, or it
                cannot split (checked here: a split failing on the writer thread would
                stop writing).

        """
        if not self._writer.can_split:
            msg = 'cannot split: this writer has no split on request (rosbag2_py before Jazzy)'
            raise BagError(msg)
        with self._cond:
            if self._failure or self._closing:
                msg = f'cannot split: writing has {"stopped" if self._failure else "ended"}'
                raise BagError(msg)
            self._splits.append(self._seq)
            self._cond.notify_all()

    def _evict(self, size: int) -> _Item:
        """Remove the oldest queued message at least ``size`` bytes long, else the largest.

        A cloud arriving to a full queue then costs an older cloud, never the events,
        health or objects queued among them. Called with the lock held.
        """
        victim = 0
        for index, item in enumerate(self._queue):
            if len(item.data) >= size:
                victim = index
                break
            if len(item.data) > len(self._queue[victim].data):
                victim = index
        item = self._queue[victim]
        del self._queue[victim]
        return item

    def _refusal(self, topic: str, size: int) -> str | None:
        """Why a new message must be dropped, or None. Called with the lock held."""
        if self._failure:
            return self._failure
        if self._closing:
            return 'closed'
        if topic not in self._known_topics:
            return 'unknown_topic'
        if size > self._max_queue_bytes:
            return 'too_large'
        if (self._drop_policy == 'drop_newest'
                and self._stats.queue_bytes + size > self._max_queue_bytes):
            return 'queue_full'
        return None

    def stats(self) -> QueueStats:
        """A snapshot of the counters.

        Returns:
            The counters, queue depth and write latency.

        """
        with self._cond:
            return replace(
                self._stats,
                topics={name: replace(t, dropped=dict(t.dropped), skipped=dict(t.skipped))
                        for name, t in self._stats.topics.items()},
                queue_messages=len(self._queue),
                write_latency=self._latency.summary(),
                commit_latency=self._commit_latency.summary(),
                stamp_latency=self._stamp_latency.summary(),
            )

    def close(self, timeout: float | None = None) -> BagStats:
        """Write everything queued, then close the bag writer; later calls return the same.

        Args:
            timeout: Seconds to wait for the queue to drain (None: no limit). Messages
                still queued then are dropped ('close_timeout'); the batch being written
                is always finished, so the bag stays valid.

        Returns:
            The bag writer's final statistics.

        """
        with self._cond:
            if self._final is not None:
                return self._final
            self._closing = True
            self._cond.notify_all()
        if self._thread is None:
            self.start()
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._cond:
                self._abandon = True
                self._cond.notify_all()
            self._thread.join()
        self._final = self._writer.close()
        return self._final

    def _topic_stats(self, topic: str) -> TopicQueueStats:
        entry = self._stats.topics.get(topic)
        if entry is None:
            entry = self._stats.topics[topic] = TopicQueueStats()
        return entry

    def _count_drop(self, topic: str, size: int, reason: str) -> None:
        entry = self._topic_stats(topic)
        entry.dropped[reason] = entry.dropped.get(reason, 0) + 1
        entry.dropped_bytes += size

    def _drop_queue(self, reason: str) -> None:
        """Drop everything queued. Called with the lock held."""
        for item in self._queue:
            self._count_drop(item.topic, len(item.data), reason)
        self._queue.clear()
        self._stats.queue_bytes = 0

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
            if batch is None:
                return
            if batch is _SPLIT:
                self._split()
            else:
                self._write(batch)

    def _next_batch(self) -> list[_Item] | None:
        """Wait for a batch to be due and take it off the queue. Called with the lock held.

        Returns:
            The batch, :data:`_SPLIT` when a split is due before the next message, or
            None when closing and nothing is left.

        """
        while True:
            if self._abandon:
                self._drop_queue('close_timeout')
            if self._splits and (not self._queue or self._queue[0].seq >= self._splits[0]):
                self._splits.popleft()
                return _SPLIT
            if not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
                continue
            if (self._closing or self._splits or len(self._queue) >= self._batch_max_messages
                    or self._stats.queue_bytes >= self._batch_due_bytes):
                break
            remaining = self._queue[0].queued_at + self._batch_max_delay_s - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        batch = [self._queue.popleft()]
        size = len(batch[0].data)
        end = self._splits[0] if self._splits else None
        while (self._queue and len(batch) < self._batch_max_messages
               and size + len(self._queue[0].data) <= self._batch_max_bytes
               and (end is None or self._queue[0].seq < end)):
            batch.append(self._queue.popleft())
            size += len(batch[-1].data)
        self._stats.queue_bytes -= size
        return batch

    def _write(self, batch: list[_Item]) -> None:
        start = time.perf_counter()
        try:
            self._writer.write_batch([(i.topic, i.stamp, i.data) for i in batch])
        except Exception as err:
            self._fail(batch, err)
            return
        elapsed = time.perf_counter() - start
        self._record_latency(batch)
        with self._cond:
            self._latency.add(elapsed)
            self._stats.batches += 1
            for item in batch:
                entry = self._topic_stats(item.topic)
                entry.written_messages += 1
                entry.written_bytes += len(item.data)

    def _split(self) -> None:
        try:
            self._writer.split()
        except Exception as err:
            self._fail([], err)
            return
        with self._cond:
            self._stats.splits += 1

    def _record_latency(self, batch: list[_Item]) -> None:
        committed = time.time_ns()
        for item in batch:
            self._commit_latency.add((committed - item.stamp) / 1e9)
            stamp = self._stamp_of(item.topic, item.data) if self._stamp_of else None
            if stamp:
                self._stamp_latency.add((committed - stamp) / 1e9)

    def _fail(self, batch: list[_Item], err: Exception) -> None:
        reason = 'storage_full' if isinstance(err, StorageFullError) else 'write_error'
        if self._on_error is None:
            # With on_error the owner reports it (the recorder, through its ROS logger):
            # logging it here too printed it twice, once as a bare stderr line.
            _log.error('bag writing stopped: %s', err)
        with self._cond:
            self._failure = reason
            self._splits.clear()  # nothing more is written, so nothing more is split
            self._stats.error = f'{type(err).__name__}: {err}'
            for item in batch:
                self._count_drop(item.topic, len(item.data), reason)
            self._drop_queue(reason)
        if self._on_error is not None:
            try:
                self._on_error(err)
            except Exception:
                _log.exception('on_error callback failed')
