# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The recorder mode: a publisher process of SENSR-sized clouds -> a recorder process.

The recorder is ours (``recorder_node``, ``--writer-backend`` python or rosbag2_py) or,
where installed, ``ros2 bag record`` (``--recorder ros2bag``). Lossless when the bag
holds every message published.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import shutil
import sys

from sensr_bridge.bag.factory import rosbag2_py_available
from sensr_bridge.bench.clouds import CLOUD_TOPIC
from sensr_bridge.bench.figures import per_frame, rss_summary
from sensr_bridge.bench.processes import Child, Monitor, child_env, ros_args
from sensr_bridge.bench.report import Run
from sensr_bridge.bench.verify import bag_counts
from sensr_bridge.process import malloc

ROS2_BAG_RECORD_OPTIONS = ('--disable-keyboard-controls',)
"""What ``ros2 bag record`` is given besides ``-s``, ``-o`` and ``--topics``: keyboard
controls off (they would read the benchmark's terminal; recording is unchanged). The rest
is its default: ``--max-cache-size`` 100 MiB (double-buffered), discovery every 100 ms,
no compression, no storage preset (sqlite3: journal_mode MEMORY, synchronous OFF)."""


def _ros2_bag_record(args: argparse.Namespace, bag_dir: Path) -> tuple[list[str], dict]:
    """The ``ros2 bag record`` command for the cloud topic, and its environment.

    The environment is every child's (the same DDS profile) less the ``MALLOC_*`` values
    of the benchmark's own restart (``malloc.restart_with_tuned_malloc``): ros2 bag record
    runs with glibc's defaults, as it does for a user; our recorder tunes its own.
    """
    cmd = ['ros2', 'bag', 'record', '-s', args.storage, '-o', str(bag_dir),
           '--topics', CLOUD_TOPIC, *ROS2_BAG_RECORD_OPTIONS]
    env = {k: v for k, v in child_env().items() if malloc.ENVIRONMENT.get(k) != v}
    return cmd, env


def writer_backend(requested: str) -> str:
    """The recorder node's backend for ``requested`` ('auto': rosbag2_py when importable)."""
    if requested != 'auto':
        return requested
    return 'rosbag2_py' if rosbag2_py_available() else 'python'


def run_recorder(args: argparse.Namespace, rate: float, run_dir: Path) -> Run:
    """Publisher process -> recorder process (ours, or ``ros2 bag record``).

    The publisher starts publishing once it sees the recorder's subscription (a poll of
    its subscription count, bounded here by 60 s), whichever recorder it is.
    """
    bag_dir = run_dir / 'bag'
    stats_file = run_dir / 'recorder_stats.json'
    count = round(rate * args.duration)
    ros2bag = args.recorder == 'ros2bag'
    if ros2bag:
        cmd, env = _ros2_bag_record(args, bag_dir)
    else:
        params = {'output_dir': run_dir, 'bag_name': 'bag', 'storage': args.storage,
                  'writer_backend': args.writer_backend, 'topics': f'[{CLOUD_TOPIC}]',
                  'stats_file': stats_file, 'storage_preset': args.preset,
                  'compression': args.compression, 'stats_log_period': 0.0}
        cmd = [sys.executable, '-m', 'sensr_bridge.nodes.recorder', *ros_args(params)]
        env = child_env(publishes_clouds=False)
    recorder = Child('recorder', cmd, run_dir, env)
    publisher = Child('publisher', [sys.executable, '-m', 'sensr_bridge.bench', '_publish',
                                    '--rate', str(rate), '--count', str(count), '--points',
                                    str(args.points)], run_dir)
    children = [publisher, recorder]
    try:
        publisher.wait_event('matched', 60)
        monitor = Monitor(children, lambda: {
            'published': publisher.events.get('progress', {}).get('published', 0)}, args.quiet)
        done = publisher.wait_event('done', args.duration * 4 + 60)
        monitor.stop()
    finally:
        publisher.interrupt()
        code = recorder.interrupt(60)
    written = bag_counts(bag_dir).get(CLOUD_TOPIC, 0)
    rec_stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    queue = rec_stats.get('queue', {})
    topic = queue.get('topics', {}).get(CLOUD_TOPIC, {})
    run = Run('recorder', rate, run_dir, samples=monitor.samples)
    published = done.get('published', 0)
    run.result = {
        'rate_hz': rate, 'points': args.points, 'duration_s': args.duration,
        'recorder': args.recorder,
        'writer_backend': None if ros2bag else writer_backend(args.writer_backend),
        'recorder_cmd': ' '.join(cmd) if ros2bag else None, 'storage': args.storage,
        'compression': args.compression,
        'preset': 'ros2 bag record default' if ros2bag else args.preset or 'default',
        'published': published,
        'publisher_late_ticks': done.get('late', 0),
        'recorder_received': topic.get('received_messages'), 'written': written,
        'recorder_dropped': topic.get('dropped', {}),
        'write_latency': queue.get('write_latency', {}),
        'commit_latency': queue.get('commit_latency', {}),
        'stamp_to_commit': queue.get('stamp_latency', {}),
        'exit_code': code, 'exit_seconds': recorder.exit_seconds,
        'tracebacks': recorder.traceback_lines(),
        'recorder_cpu_ms_per_msg': per_frame(monitor.samples, 'recorder', 'published'),
        'recorder_cpu_ms_per_msg_to_exit': per_frame(
            monitor.samples, 'recorder', 'published', (recorder.exit_cpu_s, published)),
        'rss_mb': rss_summary(monitor.samples, children),
        'lossless': published == count and written == published,
    }
    if not args.keep:
        shutil.rmtree(bag_dir, ignore_errors=True)
    return run
