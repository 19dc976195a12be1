# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""``--baselines``: the same clouds written raw to disk and inserted into plain sqlite3.

Measured in the same invocation as the runs, with the pragmas of the run's preset, so the
recorder's disk throughput can be compared with what the disk and sqlite3 give alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import shutil
from typing import Any

from sensr_bridge.bench.report import Run

# Clouds written by each baseline case: the run's recorded clouds, within these bounds
# (the upper one keeps a soak's baselines to about a minute each).
MIN_BASELINE_CLOUDS, MAX_BASELINE_CLOUDS = 60, 600

# The bench_storage pragma set equal to each recorder preset ('' is the default).
BASELINE_SETS = {'': 'TRUNCATE/OFF/64K', 'crash_safe': 'TRUNCATE/OFF/64K',
                 'durable': 'TRUNCATE/FULL/64K', 'resilient': 'WAL/NORMAL',
                 'rosbag2_default': 'MEMORY/OFF'}


def baselines(args: argparse.Namespace, root: Path, count: int) -> list[dict[str, Any]]:
    """Raw disk (fsync'd) and sqlite3 INSERT with the same pragmas, ``count`` clouds.

    As many clouds as the run recorded: 60 would fit in the page cache and measure memory
    speed, where a recording of several GB is paced by the disk.
    """
    # Here, not at the top: the child processes, which import the CLI, write no bag.
    from sensr_bridge.bench.storage import run_benchmark

    scratch = root / 'baselines'
    scratch.mkdir()
    try:
        return run_benchmark(scratch, count=count, batch=1, repeat=1,
                             sets=[BASELINE_SETS.get(args.preset, 'TRUNCATE/OFF/64K')])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def versus_baselines(runs: list[Run], rows: list[dict[str, Any]]) -> dict[str, float]:
    """Disk bytes/s of the fastest lossless run against the plain sqlite3 baseline.

    Both of the baseline's rates are compared: "accepted" (until the last INSERT returns,
    as the same pragmas promise nothing more) and "durable" (fsync included).
    """
    lossless = [r for r in runs if r.result['lossless']
                and r.result.get('bytes_to_disk_mb_per_s')]
    plain = next((r for r in rows if r['kind'] == 'plain sqlite'), None)
    if not lossless or plain is None:
        return {}
    ours = max(r.result['bytes_to_disk_mb_per_s'] for r in lossless)
    accepted = plain['accepted_msg_per_s'] * plain['message_bytes'] / 1e6
    return {'lossless_disk_mb_per_s': ours,
            'plain_sqlite_accepted_mb_per_s': round(accepted, 1),
            'plain_sqlite_durable_mb_per_s': round(plain['durable_mb_per_s'], 1),
            'accepted_over_ours': round(accepted / ours, 2),
            'durable_over_ours': round(plain['durable_mb_per_s'] / ours, 2)}
