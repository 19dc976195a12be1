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
from typing import TYPE_CHECKING, Any

from sensr_bridge.process import shutdown

if TYPE_CHECKING:
    from sensr_bridge.nodes.params import Param


def _node_option(param: Param) -> tuple[str, dict[str, Any]]:
    """The option of ``param``: its name and ``add_argument`` keywords.

    Node options default to SUPPRESS so that only options given on the command line
    override the node: parameters from ``--ros-args --params-file`` would lose to
    constructor overrides otherwise.
    """
    kwargs: dict[str, Any] = {'dest': param.name, 'default': argparse.SUPPRESS}
    repeatable = isinstance(param.default, list)
    if isinstance(param.default, bool):
        kwargs['action'] = argparse.BooleanOptionalAction
    elif param.choices:
        kwargs.update(type=str, choices=param.choices)
    else:
        kwargs.update(type=type(param.default[0] if repeatable else param.default),
                      metavar=param.metavar or param.option.lstrip('-').replace('-', '_').upper())
    if repeatable:
        kwargs['action'] = 'append'
    more = ', repeatable' if repeatable else ''
    # argparse formats help with %: the strftime fields of bag_name's default.
    kwargs['help'] = (f'{param.short_help} (node; default {param.default_text}{more})'
                      ).replace('%', '%%')
    return param.option, kwargs


def _parser() -> argparse.ArgumentParser:
    from sensr_bridge.nodes.params import TABLES

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog='Options marked (node) set the node parameter of the same meaning '
               '(config/bridge.yaml, config/recorder.yaml); given, they override '
               'parameters from --ros-args.')
    add = parser.add_argument
    add('--simulate', action='store_true',
        help='start the built-in SENSR simulator (sets host and ports)')
    add('--duration', type=float, help='record this many seconds (default: until Ctrl+C)')
    add('--rate', type=float, default=10.0, help='simulator frames per second')
    add('--points', type=int, default=921_512, help='simulator points per frame')
    for table in TABLES.values():
        for param in table:
            if param.option:
                option, kwargs = _node_option(param)
                add(option, **kwargs)
    add('--stats-dir', default='',
        help='write bridge_stats.json and recorder_stats.json here at the end')
    add('--quiet', action='store_true', help='no progress lines')
    return parser


def node_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The parameter overrides of each node: only what the command line set.

    Args:
        args: Parsed options (``--simulate`` has already set host and ports).

    Returns:
        Parameter values by name, per node ('bridge', 'recorder').

    """
    from sensr_bridge.nodes.params import TABLES

    overrides = {node: {param.name: getattr(args, param.name) for param in table
                        if param.option and hasattr(args, param.name)}
                 for node, table in TABLES.items()}
    if args.stats_dir:
        for node, values in overrides.items():
            values['stats_file'] = str(Path(args.stats_dir) / f'{node}_stats.json')
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
    from sensr_bridge.nodes.composed import run_composed
    from sensr_bridge.nodes.params import DEFAULT_NAMESPACE

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
        code = run_composed(DEFAULT_NAMESPACE, overrides['bridge'], overrides['recorder'],
                            ros_args, duration=args.duration, on_progress=progress,
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
