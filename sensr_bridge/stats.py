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
