# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The e2e mode: simulator -> bridge -> recorder -> a verified bag.

Bridge and recorder run as separate processes, or ``--composed`` in one ``record``
process. The bag is verified split by split as the splits close (``--soak`` deletes each
verified split).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import re
import shutil
import sys
import threading

from sensr_bridge.bench.bridge import bridge_params, run_sim, simulator
from sensr_bridge.bench.clouds import CLOUD_TOPIC, Expected, match_sends
from sensr_bridge.bench.figures import ms, per_frame, percentiles, rss_summary
from sensr_bridge.bench.processes import Child, Monitor, child_env, free_port, ros_args, settle
from sensr_bridge.bench.recorder import writer_backend
from sensr_bridge.bench.report import Run
from sensr_bridge.bench.verify import SplitVerifier
from sensr_bridge.sim.server import Simulator


def run_e2e(args: argparse.Namespace, rate: float, run_dir: Path) -> Run:
    """Simulator -> bridge -> recorder (separate processes or composed) -> verified bag."""
    ports = (free_port(), free_port())
    bridge_stats, rec_stats = run_dir / 'bridge_stats.json', run_dir / 'recorder_stats.json'
    bag_dir = run_dir / 'bag'
    sim = simulator(args, rate, ports)
    expected = Expected.of(sim)
    rec_params = {'output_dir': run_dir, 'bag_name': 'bag', 'storage': args.storage,
                  'writer_backend': args.writer_backend,
                  'storage_preset': args.preset, 'stats_file': rec_stats,
                  'compression': args.compression,
                  'stats_log_period': 0.0, 'max_bagfile_duration': int(args.split)}
    if args.composed:
        cmd = [sys.executable, '-m', 'sensr_bridge.cli.record', '--host', '127.0.0.1',
               '--output-port', str(ports[0]), '--point-port', str(ports[1]),
               '--output-dir', str(run_dir), '--bag-name', 'bag', '--storage', args.storage,
               '--writer-backend', args.writer_backend, '--compression', args.compression,
               '--decode-workers', str(args.workers), '--split-duration', str(int(args.split)),
               '--stats-dir', str(run_dir)]
        if args.preset:
            cmd += ['--storage-preset', args.preset]
        children = [Child('record', cmd, run_dir)]
    else:
        recorder = Child('recorder', [sys.executable, '-m', 'sensr_bridge.nodes.recorder',
                                      *ros_args(rec_params)], run_dir,
                         child_env(publishes_clouds=False))
        bridge = Child('bridge', [sys.executable, '-m', 'sensr_bridge.nodes.bridge',
                                  *ros_args(bridge_params(args, ports, bridge_stats))],
                       run_dir)
        children = [bridge, recorder]
    verifier = SplitVerifier(bag_dir, expected, delete=args.soak and not args.keep)
    try:
        # The simulator starts only once the recorder records the bridge's topics, so the
        # bag can hold every frame (the bridge reconnects until the simulator listens).
        for topic in (CLOUD_TOPIC, '/sensr/output_raw'):
            children[-1].wait_line(f'recording {topic} ', 60)
        monitor = Monitor(children, lambda: {
            'sent': sim.stats().ports['point'].frames_sent,
            'sim_dropped': sim.stats().ports['point'].frames_dropped,
            **(_record_progress(children[0]) if args.composed else {}),
            'verified_clouds': verifier.totals.get(CLOUD_TOPIC, 0)}, args.quiet)
        _run_sim_with(sim, args, children, verifier)
        settle(lambda: _dir_size(bag_dir))
        monitor.stop()
    finally:
        codes = {c.name: c.interrupt(60) for c in children}
        sim_stats = sim.stats()
        sent_log = sim.sent_log()
        sim.stop()
    verifier.finish()
    bstats = json.loads(bridge_stats.read_text()) if bridge_stats.exists() else {}
    rstats = json.loads(rec_stats.read_text()) if rec_stats.exists() else {}
    counts = bstats.get('counters', {})
    queue = rstats.get('queue', {})
    pairs = match_sends(verifier.records, sent_log, expected)
    transit = [(recv - sent_log[seq]) / 1e9 for seq, recv in pairs]
    point = sim_stats.ports['point']
    published = {CLOUD_TOPIC: counts.get('points_published', 0),
                 '/sensr/output_raw': counts.get('output_published', 0)}
    run = Run('e2e', rate, run_dir, samples=monitor.samples)
    run.result = {
        'rate_hz': rate, 'points': args.points, 'duration_s': args.duration,
        'composed': args.composed, 'storage': args.storage, 'preset': args.preset or 'default',
        'compression': args.compression,
        'writer_backend': writer_backend(args.writer_backend),
        'decode_workers': args.workers, 'sent': point.frames_sent,
        'sim_dropped': point.frames_dropped, 'received': counts.get('points_received', 0),
        'published': published, 'in_bag': verifier.totals, 'splits': verifier.splits,
        'bridge_drops': {k: v for k, v in counts.items() if 'dropped' in k or '_bad_' in k},
        'recorder_dropped': {k: v.get('dropped', {}) for k, v in
                             queue.get('topics', {}).items() if v.get('dropped')},
        'latency_send_to_bridge_stamp': percentiles(transit),
        'latency_stamp_to_commit': ms(queue.get('stamp_latency', {})),
        'bit_exact_checked': verifier.checked, 'bit_exact_failed': verifier.failed,
        'bytes_to_disk_mb_per_s': round(verifier.bytes / 1e6 / max(args.duration, 1e-9), 1),
        'exit_codes': codes, 'exit_seconds': {c.name: c.exit_seconds for c in children},
        'tracebacks': sum(c.traceback_lines() for c in children),
        'cpu_ms_per_frame': {c.name: per_frame(monitor.samples, c.name, 'sent')
                             for c in children},
        'rss_mb': rss_summary(monitor.samples, children),
    }
    sent = point.frames_sent
    run.result['lossless'] = (
        sent > 0 and point.frames_dropped == 0 and published[CLOUD_TOPIC] == sent
        and all(verifier.totals.get(t, 0) == n for t, n in published.items())
        and verifier.failed == 0)
    if not args.keep:
        shutil.rmtree(bag_dir, ignore_errors=True)
    return run


_RECORD_PROGRESS = re.compile(r'clouds received (\d+) published (\d+) \| output published '
                              r'\d+ \| bag written (\d+) dropped (\d+)')


def _record_progress(child: Child) -> dict[str, int]:
    """The pipeline counts of ``record``'s last progress line (one a second).

    So the first seconds of a composed run show where frames went: sent by the
    simulator, received and published by the bridge, written to the bag.
    """
    last = child.last_match(_RECORD_PROGRESS)
    if last is None:
        return {'received': 0, 'published': 0, 'bag_written': 0, 'bag_dropped': 0}
    received, published, written, dropped = map(int, last.groups())
    return {'received': received, 'published': published, 'bag_written': written,
            'bag_dropped': dropped}


def _run_sim_with(sim: Simulator, args: argparse.Namespace, children: list[Child],
                  verifier: SplitVerifier) -> None:
    stop = threading.Event()

    def verify_loop() -> None:
        while not stop.wait(1.0):
            verifier.poll()

    thread = threading.Thread(target=verify_loop, daemon=True)
    thread.start()
    try:
        run_sim(sim, args, children)
    finally:
        stop.set()
        thread.join()


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob('*') if p.is_file()) if path.exists() else 0
