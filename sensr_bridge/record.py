# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The main job in one command: (simulator ->) bridge -> recorder -> a bag, then its summary.

Runs the bridge and recorder nodes composed in one process (MultiThreadedExecutor) with
the same node classes and shutdown code as the launch files, without needing a ROS 2
install: ``python -m sensr_bridge.record --simulate --duration 20``. With ``--simulate``
the SENSR simulator runs as a separate process on loopback. Prints progress every second
and the bag summary at the end. ROS parameters can be given after ``--ros-args``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from sensr_bridge import paths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add('--simulate', action='store_true', help='start the built-in SENSR simulator')
    add('--host', default='127.0.0.1', help='SENSR master (ignored with --simulate)')
    add('--output-port', type=int, default=5050, help='SENSR output port')
    add('--point-port', type=int, default=5051, help='SENSR point-cloud port')
    add('--duration', type=float, help='record this many seconds (default: until Ctrl+C)')
    add('--rate', type=float, default=10.0, help='simulator frames per second')
    add('--points', type=int, default=921_512, help='simulator points per frame')
    add('--output-dir', default='bags', help='directory for the bag')
    add('--bag-name', default='sensr_%Y%m%d_%H%M%S', help='bag name (strftime fields)')
    add('--storage', choices=('sqlite3', 'mcap'), default='sqlite3')
    add('--writer-backend', choices=('auto', 'rosbag2_py', 'python'), default='auto')
    add('--storage-preset', default='',
        help="sqlite3 pragma preset: '' (crash_safe), 'durable' (fsync per batch), 'resilient'")
    add('--split-duration', type=int, default=0, help='split the bag every N seconds (0: off)')
    add('--split-size', type=int, default=0, help='split the bag at N bytes per file (0: off)')
    add('--decode-workers', type=int, default=0, help='decode processes (0 = in-process)')
    add('--stats-dir', default='',
        help='write bridge_stats.json and recorder_stats.json here at the end')
    add('--quiet', action='store_true', help='no progress lines')
    return parser


_SIMULATOR_CHILD = ('import sys; from sensr_bridge.record import simulator_child; '
                    'sys.exit(simulator_child())')


def simulator_child(argv: list[str] | None = None) -> int:
    """Run the simulator as a child that ends when this process dies, even by SIGKILL.

    Args:
        argv: The parent's process id, then the simulator's arguments
            (default: ``sys.argv[1:]``).

    Returns:
        The simulator's exit status (0 at once if the parent is already gone).

    """
    argv = sys.argv[1:] if argv is None else argv
    parent, sim_args = int(argv[0]), argv[1:]
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        # PR_SET_PDEATHSIG. SIGKILL, not SIGTERM: nothing is left to flush for a dead
        # parent, and the simulator's own signal handler can deadlock when signals nest.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:
        return 0
    from sensr_bridge.simulator import main as simulator_main

    return simulator_main(sim_args)


def _start_simulator(args: argparse.Namespace) -> tuple[subprocess.Popen[str], int, int]:
    cmd = [sys.executable, '-c', _SIMULATOR_CHILD, str(os.getpid()), '--output-port', '0',
           '--point-port', '0', '--rate', str(args.rate), '--points', str(args.points)]
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
    argv = sys.argv[1:] if argv is None else argv
    ros_args = argv[argv.index('--ros-args'):] if '--ros-args' in argv else []
    args = _parser().parse_args(argv[:len(argv) - len(ros_args)] if ros_args else argv)
    # Must be in the environment before rclpy creates the DDS participant.
    os.environ.update(paths.dds_environment())

    from rclpy.parameter import Parameter

    from sensr_bridge.bag.info import format_summary, summarize
    from sensr_bridge.bridge_node import BridgeNode
    from sensr_bridge.recorder_node import RecorderNode
    from sensr_bridge.runtime import run_nodes

    sim = None
    host, out_port, pt_port = args.host, args.output_port, args.point_port
    if args.simulate:
        sim, out_port, pt_port = _start_simulator(args)
        host = '127.0.0.1'
        print(f'simulator: {args.points} points at {args.rate} Hz on ports {out_port}/{pt_port}',
              flush=True)
    bridge_params = [Parameter('host', value=host), Parameter('output_port', value=out_port),
                     Parameter('point_port', value=pt_port),
                     Parameter('decode_workers', value=args.decode_workers)]
    recorder_params = [Parameter('storage_preset', value=args.storage_preset),
                       Parameter('max_bagfile_duration', value=args.split_duration),
                       Parameter('max_bagfile_size', value=args.split_size)]
    if args.stats_dir:
        stats_dir = Path(args.stats_dir)
        bridge_params.append(Parameter('stats_file', value=str(stats_dir / 'bridge_stats.json')))
        recorder_params.append(Parameter('stats_file',
                                         value=str(stats_dir / 'recorder_stats.json')))
    recorder_params += [Parameter('output_dir', value=args.output_dir),
                       Parameter('bag_name', value=args.bag_name),
                       Parameter('storage', value=args.storage),
                       Parameter('writer_backend', value=args.writer_backend)]
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
                                               parameter_overrides=recorder_params)),
             ('bridge', lambda: BridgeNode(namespace='sensr', parameter_overrides=bridge_params))],
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
    bags = sorted(Path(args.output_dir).glob('*/metadata.yaml'), key=lambda p: p.stat().st_mtime)
    if code == 0 and bags:
        print(format_summary(summarize(bags[-1].parent)), flush=True)
    return code


if __name__ == '__main__':
    raise SystemExit(main())
