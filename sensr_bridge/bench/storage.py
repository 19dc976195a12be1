# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Storage benchmark: the bag writers alone, on SENSR-sized PointCloud2 messages.

``python -m sensr_bridge.bench.storage`` writes ``--count`` serialized PointCloud2
messages of 921,512 points (x, y, z, intensity float32: 14.7 MB each) in batches of
``--batch`` through this package's sqlite3 writer for each pragma set, through the
mcap writer, and, as baselines in the same run, as a raw file (write, then fsync) and
as plain sqlite3 INSERTs with the same pragmas. It prints msg/s and MB/s (the median
of ``--repeat`` runs) until the last write returns ("accepted": the rate a recorder
can keep up with), until ``close()`` returns ("write"; our writers' close includes an
fsync of metadata.yaml, which on ext4 also waits for the bag's data) and including an
fsync of the bag files afterwards ("durable"), and saves them as JSON with ``--json``.

``--compression none,zstd,lz4`` instead writes ``--count`` realistic clouds (the
simulator's site, 921,512 points, decoded as the bridge publishes them: 18.4 MB with the
type field) into mcap bags, one cloud per batch as the recorder writes them, with each
chunk compression and each ``--backends`` writer (``python``, ``rosbag2_py``), and prints
the compression ratio, MB/s of cloud data from the first write until ``close()`` returns,
CPU per cloud (this process and the writer process, so rosbag2_py's counts too) and the
clouds per second the writer sustains alone: the highest rate a recorder using it could
record without loss, before DDS and the subscription callbacks take their share.

``--crash`` instead SIGKILLs a child writer in the middle of a batch ``--crash-runs``
times per pragma set, recovers the bag with ``bag_reindex`` and reports whether it
opened, passed ``PRAGMA quick_check``, kept every batch the child reported committed,
and showed no message of the interrupted batch. This tests process crashes only:
power loss and kernel crashes cannot be simulated here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import json
import os
from pathlib import Path
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

from sensr_bridge.bag.backends.mcap_writer import McapWriter
from sensr_bridge.bag.backends.pragmas import Pragma, apply_pragmas
from sensr_bridge.bag.backends.sqlite3_writer import Sqlite3Writer
from sensr_bridge.bag.base import COMPRESSIONS, StorageOptions, TopicInfo
from sensr_bridge.bench.clouds import (
    CLOUD_TOPIC,
    CLOUD_TYPE,
    SENSR_POINTS,
    pointcloud2_cdr,
    simulator_clouds,
)
from sensr_bridge.bench.storage_compression import format_compression_table, run_compression
from sensr_bridge.bench.storage_crash import crash_child, format_crash_table, run_crash

if TYPE_CHECKING:
    from sensr_bridge.bag.base import BagWriter

_PAGE_64K: list[Pragma] = [('page_size', '65536')]
_BIG_CACHE: list[Pragma] = [('cache_size', '-262144')]
PRAGMA_SETS: dict[str, list[Pragma]] = {
    'MEMORY/OFF': [('journal_mode', 'MEMORY'), ('synchronous', 'OFF')],
    'WAL/NORMAL': [('journal_mode', 'WAL'), ('synchronous', 'NORMAL')],
    'WAL/OFF': [('journal_mode', 'WAL'), ('synchronous', 'OFF')],
    'DELETE/OFF': [('journal_mode', 'DELETE'), ('synchronous', 'OFF')],
    'PERSIST/OFF': [('journal_mode', 'PERSIST'), ('synchronous', 'OFF')],
    'TRUNCATE/OFF': [('journal_mode', 'TRUNCATE'), ('synchronous', 'OFF')],
    'DELETE/FULL': [('journal_mode', 'DELETE'), ('synchronous', 'FULL')],
    'TRUNCATE/FULL': [('journal_mode', 'TRUNCATE'), ('synchronous', 'FULL')],
}
# 64 KiB pages: a 14.7 MB blob is 225 overflow pages (one pwrite each) instead of 3600.
PRAGMA_SETS.update({f'{name}/64K': _PAGE_64K + PRAGMA_SETS[name]
                    for name in ('MEMORY/OFF', 'WAL/NORMAL', 'PERSIST/OFF', 'TRUNCATE/OFF',
                                 'TRUNCATE/FULL')})
# A page cache that holds a whole batch defers all writes to COMMIT, which widens the
# window in which a kill interrupts the commit itself (see --crash).
PRAGMA_SETS.update({f'{name}/bigcache': PRAGMA_SETS[name] + _BIG_CACHE
                    for name in ('MEMORY/OFF', 'TRUNCATE/OFF')})


# Each case returns the perf_counter() time at which its last write returned.
Case = Callable[[Path, bytes, int, int], float]


def _write_bag(writer: BagWriter, cloud: bytes, count: int, batch: int) -> float:
    with writer:
        writer.create_topic(TopicInfo(CLOUD_TOPIC, CLOUD_TYPE))
        for first in range(0, count, batch):
            writer.write_batch([(CLOUD_TOPIC, (first + i) * 100_000_000, cloud)
                                for i in range(min(batch, count - first))])
        return time.perf_counter()


def _raw_file(uri: Path, cloud: bytes, count: int, _batch: int) -> float:
    uri.mkdir()
    with (uri / 'raw.bin').open('wb') as stream:
        for _ in range(count):
            stream.write(cloud)
        stream.flush()
        return time.perf_counter()


def _plain_sqlite(pragmas: list[Pragma]) -> Case:
    def run(uri: Path, cloud: bytes, count: int, batch: int) -> float:
        uri.mkdir()
        conn = sqlite3.connect(uri / 'plain.db3', isolation_level=None)
        apply_pragmas(conn, pragmas)
        conn.execute('CREATE TABLE messages(id INTEGER PRIMARY KEY, timestamp INTEGER, '
                     'data BLOB)')
        for first in range(0, count, batch):
            conn.execute('BEGIN')
            conn.executemany('INSERT INTO messages (timestamp, data) VALUES (?, ?)',
                             [(first + i, cloud) for i in range(min(batch, count - first))])
            conn.execute('COMMIT')
        accepted = time.perf_counter()
        conn.close()
        return accepted
    return run


def _fsync_tree(path: Path) -> None:
    for file in sorted(p for p in path.rglob('*') if p.is_file()):
        with file.open('rb') as stream:
            os.fsync(stream.fileno())


def _measure(work: Callable[[Path], float], root: Path, repeat: int) -> dict[str, float]:
    accepts, writes, durables = [], [], []
    for _ in range(repeat):
        uri = root / 'bag'
        os.sync()  # so writeback of an earlier run does not slow this one
        start = time.perf_counter()
        accepted = work(uri)
        written = time.perf_counter()
        _fsync_tree(uri)
        accepts.append(accepted - start)
        writes.append(written - start)
        durables.append(time.perf_counter() - start)
        shutil.rmtree(uri)
    return {'accept_s': statistics.median(accepts), 'write_s': statistics.median(writes),
            'durable_s': statistics.median(durables)}


def run_benchmark(root: Path, count: int, batch: int, repeat: int,
                  sets: list[str]) -> list[dict[str, Any]]:
    """Run the throughput benchmark.

    Args:
        root: Empty scratch directory on the disk to measure.
        count: Messages per run.
        batch: Messages per batch.
        repeat: Runs per case (the median is kept).
        sets: Names from ``PRAGMA_SETS``.

    Returns:
        One row per case: name, kind, seconds and rates.

    """
    cloud = pointcloud2_cdr(SENSR_POINTS)
    cases: list[tuple[str, str, Case]] = [
        ('raw file', 'baseline', _raw_file),
        ('mcap', 'writer', lambda u, c, n, b: _write_bag(
            McapWriter(StorageOptions(u, storage_id='mcap')), c, n, b)),
    ]
    for name in sets:
        pragmas = PRAGMA_SETS[name]
        cases.append((name, 'writer', lambda u, c, n, b, p=pragmas: _write_bag(
            Sqlite3Writer(StorageOptions(u), pragmas=p), c, n, b)))
        cases.append((name, 'plain sqlite', _plain_sqlite(pragmas)))
    rows = []
    total_mb = count * len(cloud) / 1e6
    for name, kind, func in cases:
        times = _measure(lambda uri, f=func: f(uri, cloud, count, batch), root, repeat)
        rows.append({
            'case': name, 'kind': kind, 'messages': count, 'message_bytes': len(cloud),
            **times,
            'accepted_msg_per_s': count / times['accept_s'],
            'msg_per_s': count / times['write_s'],
            'mb_per_s': total_mb / times['write_s'],
            'durable_mb_per_s': total_mb / times['durable_s'],
        })
        print(f'  {name:<22} {kind:<13} {rows[-1]["mb_per_s"]:8.0f} MB/s', file=sys.stderr)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Format benchmark rows as a text table.

    Args:
        rows: From ``run_benchmark``.

    Returns:
        The table.

    """
    lines = [f'{"case":<22} {"kind":<13} {"accepted msg/s":>14} {"msg/s":>7} {"MB/s":>7} '
             f'{"durable MB/s":>13}']
    lines += [f'{r["case"]:<22} {r["kind"]:<13} {r["accepted_msg_per_s"]:14.1f} '
              f'{r["msg_per_s"]:7.1f} {r["mb_per_s"]:7.0f} {r["durable_mb_per_s"]:13.0f}'
              for r in rows]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark or the crash test and print the results.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        Exit status 0.

    """
    parser = argparse.ArgumentParser(prog='bench_storage',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--count', type=int, default=300, help='messages per run')
    parser.add_argument('--batch', type=int, default=1,
                        help='messages per batch (1: the recorder commits each cloud alone)')
    parser.add_argument('--repeat', type=int, default=3, help='runs per case (median)')
    parser.add_argument('--dir', type=Path, default=None,
                        help='scratch directory on the disk to measure (default: a temp dir)')
    parser.add_argument('--sets', default=','.join(PRAGMA_SETS),
                        help=f'comma-separated pragma sets of {list(PRAGMA_SETS)}')
    parser.add_argument('--json', type=Path, default=None, help='also save results here')
    parser.add_argument('--compression', default='',
                        help=f'comma-separated {list(COMPRESSIONS)}: run the compression '
                             'benchmark on simulator clouds instead')
    parser.add_argument('--backends', default='python',
                        help='comma-separated writers for --compression: python, rosbag2_py')
    parser.add_argument('--frames', type=int, default=8,
                        help='distinct simulator clouds for --compression')
    parser.add_argument('--crash', action='store_true', help='run the SIGKILL test instead')
    parser.add_argument('--crash-runs', type=int, default=5, help='kills per pragma set')
    parser.add_argument('--points', type=int, default=SENSR_POINTS,
                        help='points per cloud (crash and compression modes)')
    parser.add_argument('--child', type=Path, help=argparse.SUPPRESS)
    parser.add_argument('--child-config', type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        crash_child(args.child, args.child_config, args.count, args.batch, args.points)
        return 0
    sets = [s for s in args.sets.split(',') if s]
    unknown = set(sets) - PRAGMA_SETS.keys()
    if unknown:
        parser.error(f'unknown pragma sets {sorted(unknown)}')
    compressions = [c for c in args.compression.split(',') if c]
    if set(compressions) - set(COMPRESSIONS):
        parser.error(f'unknown compression in {args.compression!r}; use {COMPRESSIONS}')
    with tempfile.TemporaryDirectory(dir=args.dir, prefix='bench_storage_') as scratch:
        if compressions:
            clouds = simulator_clouds(args.points, args.frames)
            rows = run_compression(Path(scratch), clouds, args.count, compressions,
                                   [b for b in args.backends.split(',') if b])
            print(format_compression_table(rows))
        elif args.crash:
            rows = run_crash(Path(scratch), {name: PRAGMA_SETS[name] for name in sets},
                             runs=args.crash_runs, batch=args.batch, points=args.points)
            print(format_crash_table(rows))
        else:
            rows = run_benchmark(Path(scratch), args.count, args.batch, args.repeat, sets)
            print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding='utf-8')
    return 0


if __name__ == '__main__':
    sys.exit(main())
