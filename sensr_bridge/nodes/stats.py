# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Thread-safe counters, rates and latency percentiles for diagnostics and logs."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
import json
import math
import os
from pathlib import Path
import threading
import time
from typing import Any


@dataclass(frozen=True)
class LatencyStats:
    """Latency summary, in seconds.

    Attributes:
        count: Samples since the start.
        mean_s: Mean over all samples.
        max_s: Maximum over all samples.
        p50_s: Median over the last ``window`` samples.
        p99_s: 99th percentile over the last ``window`` samples.

    """

    count: int = 0
    mean_s: float = 0.0
    max_s: float = 0.0
    p50_s: float = 0.0
    p99_s: float = 0.0


class LatencyWindow:
    """Latencies: totals since the start, percentiles over a sliding window (thread-safe)."""

    def __init__(self, window: int = 1000) -> None:
        """Create an empty collector keeping the last ``window`` samples."""
        self._recent: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self._count = 0
        self._total = 0.0
        self._max = 0.0

    def add(self, seconds: float) -> None:
        """Record one latency, in seconds."""
        with self._lock:
            self._recent.append(seconds)
            self._count += 1
            self._total += seconds
            self._max = max(self._max, seconds)

    def summary(self) -> LatencyStats:
        """Summarize the recorded latencies.

        Returns:
            Count, mean and max since the start; p50 and p99 (nearest rank) over the window.

        """
        with self._lock:
            if not self._count:
                return LatencyStats()
            recent = sorted(self._recent)
            count, total, peak = self._count, self._total, self._max

        def rank(q: float) -> float:
            return recent[max(0, math.ceil(q * len(recent)) - 1)]

        return LatencyStats(count, total / count, peak, rank(0.5), rank(0.99))


class Counters:
    """Named monotonically increasing counters with a rate over the last read."""

    def __init__(self) -> None:
        """Start with every counter at zero."""
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._last: Counter[str] = Counter()
        self._last_t = time.monotonic()

    def add(self, key: str, n: int = 1) -> None:
        """Increase counter ``key`` by ``n``."""
        with self._lock:
            self._counts[key] += n

    def get(self, key: str) -> int:
        """Return counter ``key``."""
        with self._lock:
            return self._counts[key]

    def snapshot(self) -> dict[str, int]:
        """Return a copy of every counter."""
        with self._lock:
            return dict(self._counts)

    def rates(self) -> dict[str, float]:
        """Return per-second rates of every counter since the previous call."""
        now = time.monotonic()
        with self._lock:
            dt = max(now - self._last_t, 1e-9)
            rates = {k: (v - self._last[k]) / dt for k, v in self._counts.items()}
            self._last = Counter(self._counts)
            self._last_t = now
        return rates


@dataclass(frozen=True)
class LossStats:
    """Messages of one topic lost in DDS, before a subscription could take them.

    Attributes:
        lost: Messages lost, each counted once: the larger of the two counts below,
            which overlap (see :class:`LossCounter`).
        lost_dds: Reported by the middleware's message-lost event.
        lost_sequence_gap: Publication sequence numbers missing between two messages
            taken from the same publisher.
        publishers: Publishers (GIDs) whose sequence numbers were seen.

    """

    lost: int = 0
    lost_dds: int = 0
    lost_sequence_gap: int = 0
    publishers: int = 0


class LossCounter:
    """Counts the messages of one topic that DDS lost below a subscription (thread-safe).

    Two mechanisms, because each misses a real loss path. Measured with rmw_fastrtps
    (Fast DDS 3.2 on Kilted, 2.14 on Jazzy; test/test_dds_loss.py): the message-lost
    event reports samples that never reached the reader's history (best-effort
    fragments or samples lost in transport; a reliable writer whose KEEP_LAST history
    dropped samples not yet delivered, announced by a GAP), but not the samples the
    reader's own KEEP_LAST history overwrote before the executor took them, the
    recorder's loss when its callbacks are starved. The publication sequence numbers of
    each publisher (rclpy's MessageInfo, Iron and newer) show both kinds, but only
    between two messages taken from that publisher: not before the first one (a late
    join looks the same, so it is never counted), not after the last one, and not at all
    when nothing arrives. A loss between two taken messages is seen by both, and neither
    says which samples it saw, so the two counts cannot be added: ``lost`` is the larger
    one. That never counts a loss twice, and is exact whenever one mechanism saw every
    loss (all of them for an overwritten reader history, measured equal to what the
    publisher sent minus what was taken).

    Sequence numbers are only comparable within one publisher. Kilted's MessageInfo names
    it (``publisher_gid``); Jazzy's does not, so there gaps are counted only while exactly
    one publisher is matched (``publishers_matched``, the subscription's matched event),
    and each change of the publishers starts over from the next message.
    """

    def __init__(self) -> None:
        """Start with nothing lost."""
        self._lock = threading.Lock()
        self._last: dict[bytes | None, int] = {}
        self._single_publisher = False
        self._dds = 0
        self._gap = 0

    def message_lost(self, count: int) -> None:
        """Add ``count`` messages the middleware reported lost (``total_count_change``)."""
        with self._lock:
            self._dds += max(0, count)

    def publishers_matched(self, count: int) -> None:
        """Note the publishers matched now (for messages that do not name theirs)."""
        with self._lock:
            self._single_publisher = count == 1
            self._last.pop(None, None)

    def sequence(self, publisher: bytes | None, number: int) -> int:
        """Note a taken message's publication sequence number.

        Args:
            publisher: The publisher's GID; None when the message info has none.
            number: Its publication sequence number (consecutive per publisher).

        Returns:
            Messages newly found missing before this one (0 in the normal case).

        """
        with self._lock:
            if publisher is None and not self._single_publisher:
                return 0
            last = self._last.get(publisher)
            if last is not None and number <= last:
                return 0  # reordered or repeated: neither loses anything
            self._last[publisher] = number
            if last is None or number == last + 1:
                return 0
            missing = number - last - 1
            self._gap += missing
            return missing

    def snapshot(self) -> LossStats:
        """Return the counts."""
        with self._lock:
            return LossStats(max(self._dds, self._gap), self._dds, self._gap, len(self._last))


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as JSON atomically (a reader never sees half a file).

    Args:
        path: Destination file.
        data: JSON-serializable data.

    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f'.{target.name}.tmp')
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + '\n')
    tmp.replace(target)
