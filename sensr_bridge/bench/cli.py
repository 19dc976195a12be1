# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""End-to-end benchmark: simulator -> bridge -> subscriber or recorder, in real processes.

Modes (``python -m sensr_bridge.bench MODE ...``; ``--help`` on each):

``bridge``
    SENSR simulator (this process) -> ``bridge_node`` (a process) -> a raw subscriber (a
    process, reliable or best-effort like RViz). Counts clouds sent / received / published
    / delivered, latency from the simulator's send time to the subscriber, and checks
    sample clouds bit-exact against what the simulator sent.
``recorder``
    A publisher process of 14.7 MB PointCloud2 messages (RELIABLE, depth 10) ->
    ``recorder_node`` (a process, ``--writer-backend`` python or rosbag2_py), or
    ``ros2 bag record`` where installed (``--recorder ros2bag``). Lossless when the bag
    holds every message published. ``--matrix`` runs every combination of ``--recorders``,
    ``--storages`` and ``--rates`` and prints one markdown table of them.
``e2e``
    Simulator -> bridge -> recorder as separate processes, or ``--composed`` (both nodes
    in one ``record`` process). Verifies the bag: counts per topic equal to what was
    published and a sample of clouds bit-exact. ``--soak`` splits the bag every
    ``--split`` seconds, verifies each closed split, deletes it (``--keep`` to keep)
    and keeps running totals, so long runs do not fill the disk.

``--writer-backend`` (e2e, recorder) is the recorder node's ``writer_backend``, ``--compression``
(e2e, recorder) its mcap chunk ``compression``.
``--ramp RATE,RATE,...`` (bridge, e2e, recorder) runs each rate for ``--duration`` and
reports the highest rate with zero loss. ``--baselines`` (e2e, recorder) measures, in the
same run, the same bytes written raw to disk and inserted into sqlite3 with the same
pragmas. Every run prints a progress line each second, a table at the end, and saves
``result.json`` and ``plot.png`` (throughput per stage and RSS over time, drops marked)
in ``--out``. RSS and CPU time are sampled for every process and its children. The
processes of one invocation share a ROS domain of their own (random, unless
``ROS_DOMAIN_ID`` is set).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path
import random
import shutil
import sys
import tempfile
from typing import Any

from sensr_bridge.bag.base import COMPRESSIONS
from sensr_bridge.bench.baselines import (
    MAX_BASELINE_CLOUDS,
    MIN_BASELINE_CLOUDS,
    baselines,
    versus_baselines,
)
from sensr_bridge.bench.bridge import run_bridge
from sensr_bridge.bench.children import CHILD_ROLES, listen_main, publish_main
from sensr_bridge.bench.clouds import CLOUD_TOPIC, SENSR_POINTS
from sensr_bridge.bench.e2e import run_e2e
from sensr_bridge.bench.processes import cpu_hogs
from sensr_bridge.bench.recorder import run_recorder
from sensr_bridge.bench.report import Run, markdown_table, matrix_rows, plot, summary_rows
from sensr_bridge.process import environment, shm

STORAGES = ('sqlite3', 'mcap')
WRITER_BACKENDS = ('auto', 'python', 'rosbag2_py')
RECORDERS = (*WRITER_BACKENDS, 'ros2bag')
"""``--recorders`` values: our recorder_node with that writer backend, or ros2 bag record."""

RUNNERS = {'bridge': run_bridge, 'recorder': run_recorder, 'e2e': run_e2e}
"""The modes that run the benchmark (the child roles aside), by name."""


def _listing(convert: Any, choices: tuple[str, ...] = ()) -> Any:
    """An argparse type: a comma-separated list of ``convert``ed values (of ``choices``)."""
    def parse(text: str) -> list[Any]:
        try:
            items = [convert(item) for item in text.split(',') if item.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        bad = [item for item in items if choices and item not in choices]
        if not items or bad:
            msg = f'{text!r}: expected a comma-separated list' + (
                f" of {', '.join(choices)}" if choices else '')
            raise argparse.ArgumentTypeError(msg)
        return items
    return parse


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject option combinations that mean nothing (exits with a usage error)."""
    axes = [f'--{name}' for name in ('rates', 'storages', 'recorders')
            if getattr(args, name, None)]
    if axes and not args.matrix:
        parser.error(f"{', '.join(axes)} need --matrix")
    if args.matrix and (args.mode != 'recorder' or args.ramp):
        parser.error('--matrix is for the recorder mode, without --ramp')
    if args.recorder == 'ros2bag' and args.mode != 'recorder':
        parser.error('--recorder ros2bag is for the recorder mode')


def _steps(args: argparse.Namespace) -> list[tuple[str, argparse.Namespace, float]]:
    """The runs to make, in order: (label, arguments of the run, rate).

    A ramp or single run: each rate with ``args``. A matrix: every storage, rate and
    recorder, recorders innermost so that those compared run one after another.
    """
    if not args.matrix:
        return [('', args, rate) for rate in args.ramp or [args.rate]]
    recorders = args.recorders or [
        'ros2bag' if args.recorder == 'ros2bag' else args.writer_backend]
    steps = []
    for storage, rate, recorder in itertools.product(
            args.storages or [args.storage], args.rates or [args.rate], recorders):
        ours = recorder != 'ros2bag'
        variant = argparse.Namespace(**{
            **vars(args), 'storage': storage, 'recorder': 'ours' if ours else 'ros2bag',
            'writer_backend': recorder if ours else args.writer_backend})
        steps.append((f'{recorder} {storage}', variant, rate))
    return steps


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='mode', required=True)
    for mode in RUNNERS:
        p = sub.add_parser(mode)
        add = p.add_argument
        add('--rate', type=float, default=10.0, help='frames (messages) per second')
        add('--ramp', type=_listing(float),
            help='comma-separated rates: the highest lossless one is reported')
        add('--duration', type=float, default=20.0, help='seconds of frames per run')
        add('--points', type=int, default=SENSR_POINTS, help='points per cloud')
        add('--objects', type=int, default=20, help='objects per OutputMessage')
        add('--workers', type=int, default=0, help='bridge decode_workers')
        add('--storage', choices=STORAGES, default='sqlite3')
        add('--preset', default='', help='sqlite3 pragma preset (default: the recorder default)')
        add('--compression', choices=COMPRESSIONS, default='none',
            help='e2e, recorder: mcap chunk compression of our recorder (with --storage mcap)')
        add('--subscriber-qos', choices=('reliable', 'best_effort', 'none'), default='reliable',
            help="bridge: QoS of the subscriber process; 'none': no subscriber")
        add('--recorder', choices=('ours', 'ros2bag'), default='ours',
            help="recorder: our recorder_node, or 'ros2bag': ros2 bag record, its defaults")
        add('--writer-backend', choices=WRITER_BACKENDS, default='auto',
            help="e2e, recorder: the recorder node's writer_backend")
        add('--matrix', action='store_true',
            help='recorder: run every recorder x storage x rate, print one markdown table')
        add('--rates', type=_listing(float), help='--matrix: comma-separated (default: --rate)')
        add('--storages', type=_listing(str, STORAGES),
            help='--matrix: comma-separated (default: --storage)')
        add('--recorders', type=_listing(str, RECORDERS),
            help='--matrix: comma-separated, each ours with that writer backend (auto, python, '
                 'rosbag2_py) or ros2bag (default: --recorder and --writer-backend)')
        add('--composed', action='store_true', help='e2e: bridge and recorder in one process')
        add('--soak', action='store_true', help='e2e: verify and delete splits as they close')
        add('--split', type=float, default=0, help='e2e: split the bag every N seconds')
        add('--keep', action='store_true', help='keep bags and splits')
        add('--baselines', action='store_true', help='also measure raw disk and sqlite3')
        add('--bridge-param', action='append', default=[], metavar='NAME=VALUE',
            help='extra bridge parameter (separate processes only)')
        add('--sim-queue', type=int, default=10,
            help='simulator per-client backlog (frames) before it overflows like SENSR')
        add('--cpu-hog', type=int, default=0, metavar='N',
            help='keep N cores busy with spinning processes during each run (a loaded host)')
        add('--out', default='', help='result directory (default: a new temporary one)')
        add('--quiet', action='store_true', help='no progress lines')
    for role in ('_listen', '_publish'):
        p = sub.add_parser(role)
        p.set_defaults(role=role[1:])
        p.add_argument('--topic', default=CLOUD_TOPIC)
        p.add_argument('--reliability', default='reliable')
        p.add_argument('--out', default='')
        p.add_argument('--samples', default='')
        p.add_argument('--sample-every', type=int, default=100)
        p.add_argument('--rate', type=float, default=10.0)
        p.add_argument('--count', type=int, default=100)
        p.add_argument('--points', type=int, default=SENSR_POINTS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark.

    Returns:
        0 when the last run, one step of a ramp, or every run of a matrix was lossless.

    """
    parser = _parser()
    args = parser.parse_args(argv)
    if argv is None:
        # As the nodes do: the benchmark reads 18 MB clouds back, and its subscriber and
        # publisher processes take them from DDS.
        environment.prepare(CHILD_ROLES.get(args.mode, 'receiver'))
    if args.mode == '_listen':
        return listen_main(args)
    if args.mode == '_publish':
        return publish_main(args)
    _check(parser, args)
    # A domain of its own: a process elsewhere on this host publishing /sensr/points in
    # the same domain (another benchmark, a test) would be recorded and counted too.
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 200)))
    if args.mode == 'e2e' and args.soak and not args.split:
        args.split = 30.0
    root = Path(args.out or tempfile.mkdtemp(prefix=f'sensr_bench_{args.mode}_'))
    root.mkdir(parents=True, exist_ok=True)
    # Segments of dead participants hold RAM that page cache and queues would use.
    removed = shm.remove_stale_segments()
    if removed:
        print(f'removed stale DDS shared memory: {shm.describe(removed)}', flush=True)
    runs: list[Run] = []
    for i, (label, run_args, rate) in enumerate(_steps(args)):
        run_dir = root / f"run{i}_{label.replace(' ', '_') + '_' if label else ''}{rate:g}hz"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir()
        if i:
            os.sync()  # the previous run's writeback is not this run's to pay
        print(f"== {args.mode} {label + ' ' if label else ''}at {rate:g} Hz for "
              f'{args.duration:g} s -> {run_dir}', flush=True)
        with cpu_hogs(args.cpu_hog):
            run = RUNNERS[args.mode](run_args, rate, run_dir)
        run.result['cpu_hog'] = args.cpu_hog
        run.label = label
        runs.append(run)
        for name, value in summary_rows(run):
            print(f'  {name:<30} {value}', flush=True)
        if args.ramp and not run.result['lossless']:
            break
    result: dict[str, Any] = {'mode': args.mode, 'argv': sys.argv[1:] if argv is None else argv,
                              'machine': {'cpus': os.cpu_count(),
                                          'python': sys.version.split()[0],
                                          'ros_domain_id': os.environ['ROS_DOMAIN_ID'],
                                          'stale_shm_removed_mb': round(
                                              sum(s.size for s in removed) / 1e6)},
                              'runs': [{**r.result, 'samples': r.samples} for r in runs]}
    lossless = [r.rate for r in runs if r.result['lossless']]
    if args.matrix:
        result['table'] = matrix_rows(runs)
        table = markdown_table(result['table'])
        (root / 'table.md').write_text(table + '\n')
        print(table, flush=True)
    if args.ramp:
        result['max_lossless_rate_hz'] = max(lossless, default=0.0)
        print(f"max lossless rate: {result['max_lossless_rate_hz']:g} Hz", flush=True)
    if args.baselines:
        recorded = max((r.result.get('in_bag', {}).get(CLOUD_TOPIC, 0) for r in runs
                        if r.result['lossless']), default=0)
        result['baselines'] = baselines(
            args, root, min(max(recorded, MIN_BASELINE_CLOUDS), MAX_BASELINE_CLOUDS))
        for row in result['baselines']:
            print(f"  baseline {row['case']:<16} {row['kind']:<13} "
                  f"{row['accepted_msg_per_s']:6.1f} msg/s accepted, "
                  f"{row['durable_mb_per_s']:5.0f} MB/s durable", flush=True)
        if args.ramp:
            result['versus_baselines'] = versus_baselines(runs, result['baselines'])
            for name, value in result['versus_baselines'].items():
                print(f'  {name:<30} {value}', flush=True)
    (root / 'result.json').write_text(json.dumps(result, indent=1))
    drew = plot(runs, root / 'plot.png')
    print(f"result: {root / 'result.json'}" + (f", plot: {root / 'plot.png'}" if drew else ''),
          flush=True)
    if args.matrix:
        return 0 if len(lossless) == len(runs) else 1
    return 0 if (lossless if args.ramp else runs[-1].result['lossless']) else 1

