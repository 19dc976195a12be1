# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The bridge mode, and the simulator -> bridge half it shares with the e2e mode.

SENSR simulator (this process) -> ``bridge_node`` (a process) -> a raw subscriber (a
process, reliable or best-effort like RViz, or none).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import Any
import zlib

from sensr_bridge.bench.clouds import CLOUD_TOPIC, ID_WINDOW, Expected, match_sends
from sensr_bridge.bench.figures import per_frame, percentiles, rss_summary
from sensr_bridge.bench.processes import Child, Monitor, free_port, ros_args, settle
from sensr_bridge.bench.report import Run
from sensr_bridge.sim.config import SimulatorConfig
from sensr_bridge.sim.server import Simulator


def simulator(args: argparse.Namespace, rate: float, ports: tuple[int, int]) -> Simulator:
    """The run's simulator on ``ports`` (output, point); it starts once two clients connect."""
    return Simulator(SimulatorConfig(
        output_port=ports[0], point_port=ports[1], rate_hz=rate, points=args.points,
        objects=args.objects, duration_s=args.duration, start_after_clients=2,
        max_queue_frames=args.sim_queue))


def bridge_params(args: argparse.Namespace, ports: tuple[int, int], stats: Path) -> dict:
    """The bridge node's parameters for the simulator on ``ports``, ``--bridge-param`` last."""
    extra = dict(item.split('=', 1) for item in args.bridge_param)
    return {'host': '127.0.0.1', 'output_port': ports[0], 'point_port': ports[1],
            'decode_workers': args.workers, 'stats_file': stats, 'stats_log_period': 0.0,
            **extra}


def run_sim(sim: Simulator, args: argparse.Namespace, children: list[Child]) -> None:
    """Run the simulator to its end, then wait until every frame left its socket."""
    sim.start()
    if not sim.wait_for_clients(2, timeout=30):
        msg = 'the bridge did not connect to the simulator within 30 s'
        raise RuntimeError(msg)
    while not sim.wait(0.5):
        for child in children:
            if child.popen.poll() is not None:
                msg = f'{child.name} exited early (code {child.popen.poll()}); see {child.log}'
                raise RuntimeError(msg)

    def flushed(stats: Any) -> bool:
        point = stats.ports['point']
        return point.clients == 0 or point.frames_sent + point.frames_dropped >= stats.frames

    sim.wait_for_stats(flushed, timeout=10)


def run_bridge(args: argparse.Namespace, rate: float, run_dir: Path) -> Run:
    """Simulator -> bridge process -> raw subscriber process."""
    ports = (free_port(), free_port())
    stats_file = run_dir / 'bridge_stats.json'
    listen_out = run_dir / 'listener.json'
    samples = run_dir / 'samples'
    samples.mkdir()
    sim = simulator(args, rate, ports)
    expected = Expected.of(sim)
    subscribe = args.subscriber_qos != 'none'
    children = []
    if subscribe:
        listener = Child('listener', [
            sys.executable, '-m', 'sensr_bridge.bench', '_listen', '--topic', CLOUD_TOPIC,
            '--reliability', args.subscriber_qos, '--out', str(listen_out), '--samples',
            str(samples), '--sample-every', str(max(1, int(rate * args.duration) // 4))],
            run_dir)
        listener.wait_event('started', 30)
        children.append(listener)
    bridge = Child('bridge', [sys.executable, '-m', 'sensr_bridge.nodes.bridge',
                              *ros_args(bridge_params(args, ports, stats_file))], run_dir)
    children.insert(0, bridge)

    def delivered() -> int:
        return children[-1].events.get('progress', {}).get('received', 0) if subscribe else 0

    try:
        if subscribe:
            children[-1].wait_event('matched', 30)
        monitor = Monitor(children, lambda: {'sent': sim.stats().ports['point'].frames_sent,
                                             'delivered': delivered()}, args.quiet)
        run_sim(sim, args, children)
        if subscribe:
            settle(delivered)
        monitor.stop()
    finally:
        codes = {c.name: c.interrupt() for c in children}
        sim_stats = sim.stats()
        sent_log = sim.sent_log()
        sim.stop()
    bridge_stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    records = json.loads(listen_out.read_text())['records'] if listen_out.exists() else []
    counts = bridge_stats.get('counters', {})
    pairs = match_sends(records, sent_log, expected)
    latency = [(recv - sent_log[seq]) / 1e9 for seq, recv in pairs]
    checked = bad = 0
    for path in sorted(samples.glob('*.cdr')):
        data = path.read_bytes()
        slot = expected.ids.get(zlib.crc32(data[ID_WINDOW]))
        checked += 1
        bad += slot is None or not expected.same(slot, data)
    point = sim_stats.ports['point']
    run = Run('bridge', rate, run_dir, samples=monitor.samples)
    run.result = {
        'rate_hz': rate, 'points': args.points, 'duration_s': args.duration,
        'decode_workers': args.workers, 'subscriber_qos': args.subscriber_qos,
        'sent': point.frames_sent, 'sim_dropped': point.frames_dropped,
        'sim_missed_ticks': sim_stats.missed_ticks,
        'received': counts.get('points_received', 0),
        'published': counts.get('points_published', 0),
        'delivered': len(records),
        'bridge_drops': {k: v for k, v in counts.items() if 'dropped' in k or '_bad_' in k},
        'latency_send_to_subscriber': percentiles(latency), 'latency_matched': len(pairs),
        'bridge_publish_latency': bridge_stats.get('publish_latency', {}),
        'bit_exact_checked': checked, 'bit_exact_failed': bad,
        'exit_codes': codes, 'exit_seconds': {c.name: c.exit_seconds for c in children},
        'tracebacks': sum(c.traceback_lines() for c in children),
        'bridge_cpu_ms_per_frame': per_frame(monitor.samples, 'bridge', 'sent'),
        'rss_mb': rss_summary(monitor.samples, children),
    }
    sent = run.result['sent']
    run.result['lossless'] = (sent > 0 and run.result['sim_dropped'] == 0
                              and run.result['published'] == sent and bad == 0
                              and (run.result['delivered'] == sent or not subscribe))
    return run
