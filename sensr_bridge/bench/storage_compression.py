# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The writers' mcap chunk compression on realistic clouds (``bench.storage --compression``).

Ratio, MB/s, CPU per cloud and the clouds per second each writer backend sustains alone.
"""

from __future__ import annotations

import os
from pathlib import Path
import resource
import shutil
import sys
import time
from typing import Any

from sensr_bridge.bag.base import StorageOptions, TopicInfo
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.bench.clouds import CLOUD_TOPIC, CLOUD_TYPE


def _cpu_s() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_compression(root: Path, clouds: list[bytes], count: int, compressions: list[str],
                    backends: list[str]) -> list[dict[str, Any]]:
    """Write ``count`` clouds (cycling through ``clouds``) per compression and backend.

    Args:
        root: Empty scratch directory on the disk to measure.
        clouds: Serialized PointCloud2 messages.
        count: Clouds per run, one per batch.
        compressions: Values of :data:`~sensr_bridge.bag.base.COMPRESSIONS`.
        backends: 'python' and/or 'rosbag2_py'.

    Returns:
        One row per case: ratio, MB/s, CPU ms per cloud, clouds/s.

    """
    rows = []
    payload = sum(len(clouds[i % len(clouds)]) for i in range(count))
    for backend in backends:
        for compression in compressions:
            uri = root / f'{backend}_{compression}'
            os.sync()  # writeback of an earlier run must not slow this one
            writer = create_writer(StorageOptions(uri, storage_id='mcap',
                                                  compression=compression), backend)
            cpu, start = _cpu_s(), time.perf_counter()
            with writer:
                writer.create_topic(TopicInfo(CLOUD_TOPIC, CLOUD_TYPE))
                for i in range(count):
                    writer.write_batch([(CLOUD_TOPIC, i * 100_000_000,
                                         clouds[i % len(clouds)])])
            wall, cpu = time.perf_counter() - start, _cpu_s() - cpu
            stored = sum(p.stat().st_size for p in uri.glob('*.mcap'))
            rows.append({'backend': backend, 'compression': compression, 'clouds': count,
                         'cloud_bytes': payload // count, 'file_bytes': stored,
                         'ratio': payload / stored, 'mb_per_s': payload / 1e6 / wall,
                         'cpu_ms_per_cloud': cpu * 1e3 / count, 'clouds_per_s': count / wall})
            print(f'  {backend:<10} {compression:<5} ratio {rows[-1]["ratio"]:.2f}',
                  file=sys.stderr)
            shutil.rmtree(uri)
    return rows


def format_compression_table(rows: list[dict[str, Any]]) -> str:
    """Format ``run_compression`` rows as a markdown table."""
    lines = ['| writer | compression | ratio | MB/s | CPU ms/cloud | clouds/s alone |',
             '| --- | --- | ---: | ---: | ---: | ---: |']
    lines += [f'| {r["backend"]} | {r["compression"]} | {r["ratio"]:.2f} | '
              f'{r["mb_per_s"]:.0f} | {r["cpu_ms_per_cloud"]:.1f} | {r["clouds_per_s"]:.1f} |'
              for r in rows]
    return '\n'.join(lines)
