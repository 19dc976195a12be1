# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The figures of a run: latency percentiles, CPU per message and RSS over the run."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sensr_bridge.bench.processes import Child


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max in milliseconds (zeros when empty)."""
    if not values:
        return {'p50_ms': 0.0, 'p99_ms': 0.0, 'max_ms': 0.0}
    data = sorted(values)
    q = statistics.quantiles(data, n=100, method='inclusive') if len(data) > 1 else data * 99
    return {'p50_ms': round(q[49] * 1e3, 2), 'p99_ms': round(q[98] * 1e3, 2),
            'max_ms': round(data[-1] * 1e3, 2)}


def ms(latency: dict[str, float]) -> dict[str, float]:
    """A latency summary in seconds (``*_s`` keys) in milliseconds (``*_ms``)."""
    return {f'{k[:-2]}_ms': round(v * 1e3, 2) for k, v in latency.items() if k.endswith('_s')}


def per_frame(samples: list[dict[str, Any]], name: str, counter: str,
              end: tuple[float | None, int] | None = None) -> float:
    """CPU milliseconds of a process per message counted by ``counter``, over the run.

    From the first sample that counted a message to the last, or to ``end``: (CPU
    seconds, messages) at the process's exit, which includes its final flush and close.
    """
    live = [s for s in samples if s.get(f'{name}_cpu_s') and s.get(counter)]
    if end is not None and end[0] is not None:
        live.append({f'{name}_cpu_s': end[0], counter: end[1]})
    if len(live) < 2 or live[-1][counter] == live[0][counter]:
        return 0.0
    cpu = live[-1][f'{name}_cpu_s'] - live[0][f'{name}_cpu_s']
    return round(cpu / (live[-1][counter] - live[0][counter]) * 1e3, 2)


def rss_summary(samples: list[dict[str, Any]], children: list[Child]) -> dict[str, Any]:
    """Per process: RSS after warm-up, at the end, peak, steady, and growth after warm-up.

    Warm-up is the first fifth of the samples (at least two). Steady is the median
    after warm-up; the rate is the least-squares slope over every sample after warm-up:
    a recorder's RSS swings by its queued clouds, and two end points would report those
    swings as growth or shrinkage. ``shm_end_mb`` is the DDS shared memory in the RSS at
    the end (see :meth:`~sensr_bridge.bench.processes.Child.resources`).
    """
    out = {}
    for child in children:
        series = [(s['t'], s[f'{child.name}_rss_mb']) for s in samples
                  if s.get(f'{child.name}_rss_mb')]
        if len(series) < 4:
            continue
        first = min(len(series) - 2, max(2, len(series) // 5))
        warm, end = series[first], series[-1]
        t, rss = np.array(series[first:]).T
        growth = float(np.polyfit(t, rss, 1)[0])
        out[child.name] = {'warm_mb': warm[1], 'end_mb': end[1],
                           'peak_mb': max(v for _, v in series),
                           'steady_mb': round(float(np.median(rss)), 1),
                           'growth_mb_per_s': round(growth, 4),
                           'shm_end_mb': next(
                               (s[f'{child.name}_shm_mb'] for s in reversed(samples)
                                if s.get(f'{child.name}_rss_mb')), 0.0)}
    return out
