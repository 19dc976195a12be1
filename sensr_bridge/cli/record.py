# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The main job in one command: (simulator ->) bridge -> recorder -> a bag, then its summary.

Runs the bridge and recorder nodes composed in one process (MultiThreadedExecutor) with
the same node classes and shutdown code as the launch files, without needing a ROS 2
install: ``python -m sensr_bridge.cli.record --simulate --duration 20``. With ``--simulate``
the SENSR simulator runs as a separate process on loopback. Prints progress every second
and the bag summary at the end. ROS parameters can be given after ``--ros-args``.
"""

from __future__ import annotations

if __name__ == '__main__':  # python -m: signals handled before the imports below
    from sensr_bridge.process.shutdown import record

    raise SystemExit(record())

import argparse
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any

from sensr_bridge.process import shutdown

# Options that set a node parameter: (option, node, parameter). They default to SUPPRESS so
# that only options given on the command line override the node: parameters from
# ``--ros-args --params-file`` would lose to constructor overrides otherwise.
_NODE_OPTIONS = (
    ('host', 'bridge', 'host'),
    ('output_port', 'bridge', 'output_port'),
    ('point_port', 'bridge', 'point_port'),
    ('decode_workers', 'bridge', 'decode_workers'),
    ('output_dir', 'recorder', 'output_dir'),
    ('bag_name', 'recorder', 'bag_name'),
    ('storage', 'recorder', 'storage'),
    ('writer_backend', 'recorder', 'writer_backend'),
    ('storage_preset', 'recorder', 'storage_preset'),
    ('split_duration', 'recorder', 'max_bagfile_duration'),
    ('split_size', 'recorder', 'max_bagfile_size'),
    ('compression', 'recorder', 'compression'),
    ('topic_intervals', 'recorder', 'topic_intervals'),
    ('skip_empty_clouds', 'recorder', 'skip_empty_clouds'),
    ('clip_mode', 'recorder', 'clip_mode'),
    ('clip_before', 'recorder', 'clip_before'),
    ('clip_after', 'recorder', 'clip_after'),
    ('clip_events', 'recorder', 'clip_events'),
    ('clip_buffer_bytes', 'recorder', 'clip_buffer_bytes'),
)


def _parser() -> argparse.ArgumentParser:
    from sensr_bridge.bag.base import COMPRESSIONS
    from sensr_bridge.bag.clips import CLIP_MODES

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog='Options marked (node) default to the node parameter; given, they override '
               'parameters from --ros-args.')
    add = parser.add_argument

    def node_option(*names: str, **kwargs: object) -> None:
        kwargs['help'] = f"{kwargs['help']} (node)"
        add(*names, default=argparse.SUPPRESS, **kwargs)

    add('--simulate', action='store_true', help='start the built-in SENSR simulator')
    node_option('--host', help='SENSR master, default 127.0.0.1 (ignored with --simulate)')
    node_option('--output-port', type=int, help='SENSR output port, default 5050')
    node_option('--point-port', type=int, help='SENSR point-cloud port, default 5051')
    add('--duration', type=float, help='record this many seconds (default: until Ctrl+C)')
    add('--rate', type=float, default=10.0, help='simulator frames per second')
    add('--points', type=int, default=921_512, help='simulator points per frame')
    node_option('--output-dir', help='directory for the bag, default bags')
    node_option('--bag-name', help='bag name (strftime fields), default sensr_%%Y%%m%%d_%%H%%M%%S')
    node_option('--storage', choices=('sqlite3', 'mcap'), help='default sqlite3')
    node_option('--writer-backend', choices=('auto', 'rosbag2_py', 'python'),
                help='default auto')
    node_option('--storage-preset',
                help="sqlite3 pragma preset: '' (crash_safe, the default), 'durable' (fsync "
                     "per batch), 'resilient'")
    node_option('--split-duration', type=int, help='split the bag every N seconds (0: off)')
    node_option('--split-size', type=int, help='split the bag at N bytes per file (0: off)')
    node_option('--compression', choices=COMPRESSIONS,
                help='mcap chunk compression (with --storage mcap), default none')
    node_option('--interval', dest='topic_intervals', action='append', metavar='REGEX=SECONDS',
                help="keep at most one message per SECONDS on topics matching REGEX, e.g. "
                     "'/points$=1.0' (repeatable; first match wins)")
    node_option('--skip-empty-clouds', action='store_true',
                help='leave clouds without points out of the bag')
    node_option('--clip-mode', choices=CLIP_MODES,
                help='event clips: off (default), with_bag, only (no main bag)')
    node_option('--clip-before', type=float, help='seconds a clip holds before its event')
    node_option('--clip-after', type=float, help='seconds a clip records after its event')
    node_option('--clip-event', dest='clip_events', action='append', metavar='TYPE[@ZONE]',
                help='zone event that starts a clip: TYPE, TYPE@ZONE_ID, * or *@ZONE_ID '
                     '(repeatable; default *)')
    node_option('--clip-buffer-bytes', type=int, help='bound on the clips ring buffer, bytes')
    node_option('--decode-workers', type=int, help='decode processes (0 = in-process)')
    add('--stats-dir', default='',
        help='write bridge_stats.json and recorder_stats.json here at the end')
    add('--quiet', action='store_true', help='no progress lines')
    return parser


def node_overrides(args: argparse.Namespace) -> dict[str, list[Any]]:
    """The parameter overrides of each node: only what the command line set.

    Args:
        args: Parsed options (``--simulate`` has already set host and ports).

    Returns:
        Parameters per node name ('bridge', 'recorder').

    """
    from rclpy.parameter import Parameter

    overrides: dict[str, list[Any]] = {'bridge': [], 'recorder': []}
    for option, node, name in _NODE_OPTIONS:
        if hasattr(args, option):
            overrides[node].append(Parameter(name, value=getattr(args, option)))
    if args.stats_dir:
        for node, params in overrides.items():
            params.append(Parameter('stats_file',
                                    value=str(Path(args.stats_dir) / f'{node}_stats.json')))
    return overrides


def _start_simulator(args: argparse.Namespace) -> tuple[subprocess.Popen[str], int, int]:
    # --exit-with-parent: the simulator ends with this process, even when it is SIGKILLed.
    cmd = [sys.executable, '-m', 'sensr_bridge.sim', '--exit-with-parent', str(os.getpid()),
           '--output-port', '0', '--point-port', '0', '--rate', str(args.rate),
           '--points', str(args.points),
           # Frames start once the bridge has both ports: the bag then holds the first
           # frame on, with the zones SENSR sends with it (and then every 10 s only).
           '--wait-clients', '2']
    # Started with SIGINT/SIGTERM blocked: one that comes while it starts waits for its
    # handler (sensr_bridge.process.shutdown), as a Ctrl+C reaches it too.
    with shutdown.held_signals():
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith('ready'):
            fields = dict(item.split('=') for item in line.split()[1:])
            return proc, int(fields['output_port']), int(fields['point_port'])
    msg = f'the simulator exited with code {proc.wait()} before it was ready'
    raise RuntimeError(msg)


def main(argv: list[str] | None = None) -> int:
    """Run simulator (optional), bridge and recorder; print the bag summary."""
    if argv is None:
        argv = sys.argv[1:]
    ros_args = argv[argv.index('--ros-args'):] if '--ros-args' in argv else []
    args = _parser().parse_args(argv[:len(argv) - len(ros_args)] if ros_args else argv)

    from sensr_bridge.bag.info import format_summary, summarize
    from sensr_bridge.nodes.bridge import BridgeNode
    from sensr_bridge.nodes.recorder import RecorderNode
    from sensr_bridge.nodes.runtime import run_nodes

    request = shutdown.installed()
    if request is not None and request.event.is_set():
        return 0  # SIGINT/SIGTERM while starting: nothing started yet
    sim = None
    if args.simulate:
        try:
            sim, args.output_port, args.point_port = _start_simulator(args)
        except RuntimeError:
            if request is not None and request.event.is_set():
                return 0  # the same Ctrl+C stopped the simulator before it was ready
            raise
        args.host = '127.0.0.1'
        print(f'simulator: {args.points} points at {args.rate} Hz on ports '
              f'{args.output_port}/{args.point_port}', flush=True)
    overrides = node_overrides(args)
    started = time.monotonic()
    running: list = []

    def progress(nodes: list) -> None:
        if args.quiet:
            return
        recorder, bridge = nodes
        counts = bridge.counters.snapshot()
        stats = recorder.queue_stats()
        written = sum(t.written_messages for t in stats.topics.values()) if stats else 0
        dropped = sum(t.dropped_messages for t in stats.topics.values()) if stats else 0
        print(f"[{time.monotonic() - started:6.1f} s] clouds received "
              f"{counts.get('points_received', 0)} published {counts.get('points_published', 0)}"
              f" | output published {counts.get('output_published', 0)} | bag written "
              f'{written} dropped {dropped}', flush=True)

    try:
        code = run_nodes(
            [('recorder', lambda: RecorderNode(namespace='sensr',
                                               parameter_overrides=overrides['recorder'])),
             ('bridge', lambda: BridgeNode(namespace='sensr',
                                           parameter_overrides=overrides['bridge']))],
            ['record', *ros_args], duration=args.duration, on_progress=progress,
            on_started=running.extend)
    finally:
        if sim is not None:
            sim.terminate()
            sim.wait(timeout=10)
    if running:
        counts = running[1].counters.snapshot()
        final = running[0].final_stats
        print(f"result: clouds_received={counts.get('points_received', 0)} "
              f"clouds_published={counts.get('points_published', 0)} "
              f"messages_written={final.messages if final else 0}", flush=True)
    bag = running[0].bag_path if running else None
    if code == 0 and bag is not None and (bag / 'metadata.yaml').exists():
        print(format_summary(summarize(bag)), flush=True)
    return code
