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
import random
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from rosbags.rosbag2 import Reader

from sensr_bridge.bag.backends.mcap_writer import McapWriter
from sensr_bridge.bag.backends.pragmas import (
    Pragma,
    apply_pragmas,
    parse_storage_config,
    write_storage_config,
)
from sensr_bridge.bag.backends.sqlite3_writer import Sqlite3Writer
from sensr_bridge.bag.base import COMPRESSIONS, StorageOptions, TopicInfo
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.bag.reindex import reindex
from sensr_bridge.bag.typedefs import typestore

if TYPE_CHECKING:
    from sensr_bridge.bag.base import BagWriter
    from sensr_bridge.sim.server import Simulator

SENSR_POINTS = 921_512
CLOUD_TOPIC = '/sensr/points'
CLOUD_TYPE = 'sensor_msgs/msg/PointCloud2'

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


def pointcloud2_cdr(points: int, stamp_ns: int = 0, seed: int = 0) -> bytes:
    """Serialize a PointCloud2 with x, y, z, intensity float32 fields using rosbags.

    Args:
        points: Number of points (one row).
        stamp_ns: Header stamp in nanoseconds.
        seed: Seed of the random coordinates.

    Returns:
        The CDR bytes.

    """
    store = typestore()
    cloud = store.types[CLOUD_TYPE]
    field = store.types['sensor_msgs/msg/PointField']
    header = store.types['std_msgs/msg/Header']
    stamp = store.types['builtin_interfaces/msg/Time']
    data = np.random.default_rng(seed).random((points, 4), dtype=np.float32)
    msg = cloud(
        header=header(stamp=stamp(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                      frame_id='sensr'),
        height=1, width=points,
        fields=[field(name=name, offset=4 * i, datatype=field.FLOAT32, count=1)
                for i, name in enumerate(('x', 'y', 'z', 'intensity'))],
        is_bigendian=False, point_step=16, row_step=16 * points,
        data=data.view(np.uint8).reshape(-1), is_dense=True,
    )
    return bytes(store.serialize_cdr(msg, CLOUD_TYPE))


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


def simulator_clouds(points: int, frames: int) -> list[bytes]:
    """The clouds the bridge publishes for the simulator's first ``frames`` frames."""
    from sensr_bridge.sim.config import SimulatorConfig
    from sensr_bridge.sim.server import Simulator

    return decoded_clouds(Simulator(SimulatorConfig(points=points, frames_precomputed=frames)))


def decoded_clouds(sim: Simulator) -> list[bytes]:
    """Decode every precomputed frame of ``sim`` as the bridge does (default parameters)."""
    from sensr_bridge.sensr import decode

    decoder = decode.InlineDecoder(decode.CloudOptions(decode.MERGED, True, frozenset()),
                                   'sensr', lambda _r: None)
    try:
        return [bytes(decoder.decode(slot, sim.expected_point_result(slot), 0, 0).clouds[0][1])
                for slot in range(sim.config.frames_precomputed)]
    finally:
        decoder.close(1.0)


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


def crash_child(uri: Path, config: Path, batches: int, batch: int, points: int) -> None:
    """Write batches, printing 'begin i' before and 'committed i' after each (crash mode).

    Message j of batch i has timestamp ``i * batch + j`` and the payload of
    ``pointcloud2_cdr(points, seed=i)``. After the last batch the child waits for
    standard input to close before closing the bag, so a kill sent during or after the
    last batch never finds a finished bag.

    Args:
        uri: Bag directory to create.
        config: Storage config file with the exact pragmas to apply.
        batches: Batches to write.
        batch: Messages per batch.
        points: Points per cloud.

    """
    writer = Sqlite3Writer(StorageOptions(uri), pragmas=parse_storage_config(config))
    writer.open()
    writer.create_topic(TopicInfo(CLOUD_TOPIC, CLOUD_TYPE))
    print('ready', flush=True)
    for index in range(batches):
        cloud = pointcloud2_cdr(points, seed=index)
        print(f'begin {index}', flush=True)
        writer.write_batch([(CLOUD_TOPIC, index * batch + j, cloud) for j in range(batch)])
        print(f'committed {index}', flush=True)
    sys.stdin.read()
    writer.close()


def check_crashed_bag(uri: Path, committed: int, batch: int, points: int) -> dict[str, Any]:
    """Recover a bag whose writer was killed during batch ``committed`` and check it.

    Args:
        uri: The bag directory.
        committed: Number of batches the writer reported committed.
        batch: Messages per batch.
        points: Points per cloud (to rebuild the expected payloads).

    Returns:
        reindex_ok, quick_check_ok, committed_present (every reported batch there with
        exact payloads), killed_batch_messages (messages of the killed batch present: 0
        if rolled back, ``batch`` if it committed before the kill landed), torn (a
        partial killed batch, or any unexpected message or payload), and error (text,
        or None).

    """
    result: dict[str, Any] = {'reindex_ok': False, 'quick_check_ok': False,
                              'committed_present': False, 'killed_batch_messages': 0,
                              'torn': False, 'error': None}
    try:
        reindex(uri)
        result['reindex_ok'] = True
        result['quick_check_ok'] = all(_quick_check(db3) for db3 in uri.glob('*.db3'))
        payloads = {i: pointcloud2_cdr(points, seed=i) for i in range(committed + 1)}
        present: set[int] = set()
        with Reader(uri) as reader:
            for _, stamp, data in reader.messages():
                index = stamp // batch
                if index > committed or data != payloads[index] or stamp in present:
                    result['torn'] = True
                present.add(stamp)
        result['committed_present'] = set(range(committed * batch)) <= present
        result['killed_batch_messages'] = len(present - set(range(committed * batch)))
        result['torn'] |= result['killed_batch_messages'] not in (0, batch)
    except Exception as err:  # a torn bag may break reindex or the reader in any way
        result['error'] = f'{type(err).__name__}: {err}'
    return result


def _quick_check(db3: Path) -> bool:
    conn = sqlite3.connect(db3)
    try:
        return conn.execute('PRAGMA quick_check').fetchone()[0] == 'ok'
    finally:
        conn.close()


def run_crash(root: Path, sets: dict[str, list[Pragma]], *, runs: int, batch: int,
              points: int, seed: int = 0) -> list[dict[str, Any]]:
    """SIGKILL a child writer mid-batch ``runs`` times per pragma set and check the bags.

    Args:
        root: Scratch directory.
        sets: Pragma sets by name, e.g. from ``PRAGMA_SETS``.
        runs: Kills per set.
        batch: Messages per batch.
        points: Points per cloud.
        seed: Seed of the kill timing.

    Returns:
        One row per set with counts over its runs.

    """
    rng = random.Random(seed)
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get('PYTHONPATH', '')])}
    rows = []
    for name, pragmas in sets.items():
        config = root / 'pragmas.yaml'
        write_storage_config(config, pragmas)
        row = {'case': name, 'runs': runs, 'killed': 0, 'reindex_ok': 0,
               'quick_check_ok': 0, 'committed_present': 0, 'killed_batch_kept': 0,
               'torn': 0, 'clean': 0, 'silent_loss': 0, 'errors': []}
        for _ in range(runs):
            uri = root / 'crash'
            target = rng.randint(1, 3)
            # The child writes batches 0..target and waits: the kill lands in batch
            # target or just after it, never in a later one.
            child = subprocess.Popen(
                [sys.executable, '-m', 'sensr_bridge.bench.storage', '--child', str(uri),
                 '--child-config', str(config), '--batch', str(batch),
                 '--points', str(points), '--count', str(target + 1)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            committed, began, batch_s = 0, 0.0, 0.0
            for line in child.stdout:
                if line.startswith('begin'):
                    began = time.perf_counter()
                if line.startswith('committed'):
                    committed += 1
                    batch_s = time.perf_counter() - began
                if line.strip() == f'begin {target}':
                    # Land anywhere inside this batch, timed by the previous one.
                    time.sleep(rng.uniform(0.0, batch_s))
                    child.send_signal(signal.SIGKILL)
                    break
            child.wait()
            child.stdin.close()
            child.stdout.close()
            row['killed'] += int(child.returncode == -signal.SIGKILL)
            checked = check_crashed_bag(uri, committed, batch, points)
            for key in ('reindex_ok', 'quick_check_ok', 'committed_present', 'torn'):
                row[key] += int(checked[key])
            row['killed_batch_kept'] += int(checked['killed_batch_messages'] == batch)
            detected = checked['error'] or not checked['quick_check_ok']
            intact = checked['committed_present'] and not checked['torn']
            row['clean'] += int(intact and not detected)
            row['silent_loss'] += int(not intact and not detected)
            if checked['error']:
                row['errors'].append(checked['error'])
            shutil.rmtree(uri)
        rows.append(row)
        print(f'  {name}: {row}', file=sys.stderr)
    return rows


def format_crash_table(rows: list[dict[str, Any]]) -> str:
    """Format crash rows as a text table.

    Args:
        rows: From ``run_crash``.

    Returns:
        The table and a note on what was not tested.

    """
    lines = [f'{"case":<22} {"runs":>4} {"killed":>6} {"reindex":>7} {"check":>5} '
             f'{"kept":>4} {"late":>4} {"torn":>4} {"clean":>5} {"silent":>6}']
    lines += [f'{r["case"]:<22} {r["runs"]:4d} {r["killed"]:6d} '
              f'{r["reindex_ok"]:7d} {r["quick_check_ok"]:5d} {r["committed_present"]:4d} '
              f'{r["killed_batch_kept"]:4d} {r["torn"]:4d} {r["clean"]:5d} '
              f'{r["silent_loss"]:6d}' for r in rows]
    lines.append('reindex: bag recovered; check: PRAGMA quick_check ok; kept: every batch '
                 'reported committed present bit-exact;')
    lines.append('late: the killed batch had committed before the kill landed; torn: part of '
                 'a batch or a wrong payload visible;')
    lines.append('clean: recovered, checked, kept, not torn; silent: data lost or torn '
                 'without any error or failed check.')
    lines.append('Only process crashes (SIGKILL) are tested; power loss cannot be.')
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
