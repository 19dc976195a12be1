# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""What the recorder reports: its summary line, its ``/diagnostics`` statuses, DDS losses.

No rclpy: built from the writer queue's statistics and the loss counters; the node hands
in its logger.
"""

from __future__ import annotations

from pathlib import Path
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus

from sensr_bridge.bag.queue import QueueStats, TopicQueueStats
from sensr_bridge.nodes import diagnostics
from sensr_bridge.nodes.stats import LossCounter, LossStats

LOSS_LOG_PERIOD = 5.0
"""Seconds between log lines about messages lost in DDS, per topic."""


def summary_line(bag_path: Path | None, stats: QueueStats, lost: int, *,
                 final: bool = False) -> str:
    """Return a one-line summary of received / written / dropped messages."""
    topics = stats.topics.values()
    received = sum(t.received_messages for t in topics)
    written = sum(t.written_messages for t in topics)
    dropped = sum(t.dropped_messages for t in topics)
    skipped = sum(t.skipped_messages for t in topics)
    mb = sum(t.written_bytes for t in topics) / 1e6
    head = 'bag closed' if final else 'recording'
    return (f'{head}: {bag_path}: received {received}, written {written} '
            f'({mb:.1f} MB), skipped {skipped}, dropped {dropped} {stats.dropped or ""}, '
            f'lost in DDS {lost}, queue '
            f'{stats.queue_messages} msgs / {stats.queue_bytes / 1e6:.1f} MB, write p99 '
            f'{stats.write_latency.p99_s * 1e3:.1f} ms, stamp->commit p99 '
            f'{stats.stamp_latency.p99_s * 1e3:.1f} ms'
            + (f', writing stopped: {stats.error}' if stats.error else ''))


def bag_statuses(node_name: str, bag_path: Path | None, stats: QueueStats,
                 losses: dict[str, LossStats], state: str) -> list[DiagnosticStatus]:
    """Return the main bag's statuses: one per topic, and the writer's."""
    statuses = []
    hardware_id = str(bag_path)
    for name in sorted(stats.topics.keys() | losses.keys()):
        t = stats.topics.get(name, TopicQueueStats())
        loss = losses.get(name, LossStats())
        values = {'received': t.received_messages, 'written': t.written_messages,
                  'dropped': t.dropped_messages, 'received_bytes': t.received_bytes,
                  'written_bytes': t.written_bytes, 'skipped': t.skipped_messages,
                  **{f'skipped_{k}': v for k, v in t.skipped.items()},
                  **{f'dropped_{k}': v for k, v in t.dropped.items()},
                  'lost': loss.lost, 'lost_dds': loss.lost_dds,
                  'lost_sequence_gap': loss.lost_sequence_gap}
        statuses.append(diagnostics.status(
            f'{node_name}: {name}', hardware_id,
            diagnostics.WARN if t.dropped_messages or loss.lost else diagnostics.OK,
            f'{t.dropped_messages} dropped, {loss.lost} lost in DDS', values))
    values = {'state': state, 'splits': stats.splits,
              'queue_messages': stats.queue_messages, 'queue_bytes': stats.queue_bytes,
              'peak_queue_bytes': stats.peak_queue_bytes, 'batches': stats.batches,
              'write_p50_ms': round(stats.write_latency.p50_s * 1e3, 2),
              'write_p99_ms': round(stats.write_latency.p99_s * 1e3, 2),
              'write_max_ms': round(stats.write_latency.max_s * 1e3, 2),
              'commit_latency_p99_ms': round(stats.commit_latency.p99_s * 1e3, 2),
              'stamp_to_commit_p50_ms': round(stats.stamp_latency.p50_s * 1e3, 2),
              'stamp_to_commit_p99_ms': round(stats.stamp_latency.p99_s * 1e3, 2),
              'stamp_to_commit_max_ms': round(stats.stamp_latency.max_s * 1e3, 2)}
    statuses.append(diagnostics.status(
        f'{node_name}: writer', hardware_id,
        diagnostics.ERROR if stats.error else diagnostics.OK, stats.error or state, values))
    return statuses


class LossLog:
    """Messages lost in DDS per topic, counted and logged at most every LOSS_LOG_PERIOD.

    A counter outlives a re-subscription of its topic; :meth:`reset` starts the next bag's.
    """

    def __init__(self, logger: Any) -> None:
        """Start with no topic."""
        self._logger = logger
        self._counters: dict[str, LossCounter] = {}
        self._logged: dict[str, float] = {}
        self._pending: set[str] = set()

    def counter(self, topic: str) -> LossCounter:
        """Return the topic's counter, created on first use."""
        return self._counters.setdefault(topic, LossCounter())

    def stats(self) -> dict[str, LossStats]:
        """Return the losses so far per topic."""
        return {name: counter.snapshot() for name, counter in list(self._counters.items())}

    def reset(self) -> dict[str, LossStats]:
        """Return the losses so far and start counting from zero."""
        final = self.stats()
        self._counters = {}
        self._logged.clear()
        self._pending.clear()
        return final

    def seen(self, topic: str) -> None:
        """Log a topic's loss now, or once LOSS_LOG_PERIOD has passed since its last line."""
        if time.monotonic() - self._logged.get(topic, -LOSS_LOG_PERIOD) >= LOSS_LOG_PERIOD:
            self._log(topic)
        else:
            self._pending.add(topic)

    def flush(self) -> None:
        """Log the losses held back whose topic's period has passed."""
        now = time.monotonic()
        for topic in list(self._pending):  # list(): the callbacks add to it meanwhile
            if now - self._logged.get(topic, -LOSS_LOG_PERIOD) >= LOSS_LOG_PERIOD:
                self._log(topic)

    def _log(self, topic: str) -> None:
        self._logged[topic] = time.monotonic()
        self._pending.discard(topic)
        counter = self._counters.get(topic)
        if counter is None:
            return
        s = counter.snapshot()
        self._logger.warning(
            f'{topic}: {s.lost} messages lost in DDS before the recorder took them so far '
            f'(sequence gaps {s.lost_sequence_gap}, DDS message-lost events {s.lost_dds}); '
            'a larger subscription_depth holds more while the recorder is behind')
