# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Thread-safe counters, rates and latency percentiles for diagnostics and logs."""

from __future__ import annotations

from collections import Counter, deque
import threading
import time


class LatencyWindow:
    """Percentiles over the most recent samples (bounded memory)."""

    def __init__(self, size: int = 2048) -> None:
        """Keep at most ``size`` samples."""
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.max = 0.0

    def add(self, seconds: float) -> None:
        """Record one sample, in seconds."""
        with self._lock:
            self._samples.append(seconds)
            self.max = max(self.max, seconds)

    def percentile(self, q: float) -> float:
        """Return the ``q`` quantile (0..1) of the window, 0.0 when empty."""
        with self._lock:
            data = sorted(self._samples)
        if not data:
            return 0.0
        return data[min(len(data) - 1, int(q * len(data)))]


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
