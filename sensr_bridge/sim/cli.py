# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The simulator's command line: ``simulator`` console script, ``python -m sensr_bridge.sim``.

Both start in :func:`sensr_bridge.process.shutdown.simulator`, which handles SIGINT and
SIGTERM before this module is imported, then calls :func:`main`::

    simulator --output-port 0 --point-port 0 --rate 30 --duration 60 --fault 10:drop

A program that runs the simulator as its child passes ``--exit-with-parent PID`` (its own
process id), so the simulator ends with it even when it is SIGKILLed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import math
import os
import signal
import sys
import threading
import time

from sensr_bridge.errors import ConfigError, SimulatorError
from sensr_bridge.process import shutdown
from sensr_bridge.sensr import protocol
from sensr_bridge.sim.config import OVERFLOW_ACTIONS, SimulatorConfig, SimulatorStats
from sensr_bridge.sim.faults import FAULT_HELP, Fault, apply_fault, parse_fault
from sensr_bridge.sim.server import Simulator

_PR_SET_PDEATHSIG = 1


def _optional_interval(text: str) -> float | None:
    value = float(text)
    return value if value > 0 else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='simulator',
        description='SENSR simulator: serves OutputMessage and PointResult websocket streams '
                    'on loopback. Prints "ready output_port=N point_port=M" once listening.')
    add = parser.add_argument
    add('--host', default='127.0.0.1', help='loopback address to bind (default %(default)s)')
    add('--output-port', type=int, default=protocol.OUTPUT_PORT,
        help='output port, 0 = any free port (default %(default)s)')
    add('--point-port', type=int, default=protocol.POINT_PORT,
        help='point port, 0 = any free port (default %(default)s)')
    add('--no-output', action='store_true', help='do not serve the output port')
    add('--no-points', action='store_true', help='do not serve the point port')
    add('--rate', type=float, default=10.0, help='frames per second (default %(default)s)')
    add('--points', type=int, default=921_512, help='points per PointResult (default %(default)s)')
    add('--objects', type=int, default=20, help='objects per frame (default %(default)s)')
    add('--object-points', type=int, default=200, help='points per object (default %(default)s)')
    add('--seed', type=int, default=0, help='content seed (default %(default)s)')
    add('--frames-precomputed', type=int, default=8,
        help='distinct precomputed frames (default %(default)s)')
    add('--duration', type=float, help='stop after this many seconds of frames')
    add('--max-frames', type=int, help='stop after this many frames')
    add('--wait-clients', type=int, default=0,
        help='start the frame clock once this many clients are connected')
    add('--zones-interval', type=_optional_interval, default=10.0,
        help='seconds between stream.zones, 0 = never (default %(default)s)')
    add('--health-interval', type=_optional_interval, default=1.0,
        help='seconds between stream.health, 0 = never (default %(default)s)')
    add('--event-interval', type=_optional_interval, default=3.0,
        help='seconds between event messages, 0 = never (default %(default)s)')
    add('--custom-interval', type=_optional_interval, default=5.0,
        help='seconds between custom messages, 0 = never (default %(default)s)')
    add('--tls-cert', help='PEM certificate chain: serve wss://')
    add('--tls-key', help='PEM private key of --tls-cert')
    add('--max-queue-frames', type=int, default=10,
        help='per-client backlog that counts as overflow, 0 = unbounded (default %(default)s)')
    add('--overflow', choices=OVERFLOW_ACTIONS, default='both',
        help='what an overflow triggers (default %(default)s)')
    add('--send-buffer', type=int, help='SO_SNDBUF of client sockets, bytes')
    add('--ignore-pings', action='store_true', help='never answer pings')
    add('--flush', type=float, default=2.0,
        help='seconds to let clients drain and close at the end (default %(default)s)')
    add('--fault', action='append', default=[], metavar='TIME:ACTION[:ARG...]', help=FAULT_HELP)
    add('--exit-with-parent', type=int, metavar='PID',
        help='PID is the parent process: end when it dies, even by SIGKILL (Linux), and '
             'exit 0 at once if it is gone already')
    return parser


def _config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        host=args.host,
        output_port=None if args.no_output else args.output_port,
        point_port=None if args.no_points else args.point_port,
        rate_hz=args.rate, points=args.points, objects=args.objects,
        object_points=args.object_points, seed=args.seed,
        frames_precomputed=args.frames_precomputed, duration_s=args.duration,
        max_frames=args.max_frames, start_after_clients=args.wait_clients,
        zones_interval_s=args.zones_interval, health_interval_s=args.health_interval,
        event_interval_s=args.event_interval, custom_interval_s=args.custom_interval,
        tls_cert=args.tls_cert, tls_key=args.tls_key,
        max_queue_frames=args.max_queue_frames or None, overflow_action=args.overflow,
        send_buffer_bytes=args.send_buffer)


def _exit_with_parent(parent: int) -> bool:
    """Have the kernel end this process when its parent dies (PR_SET_PDEATHSIG).

    SIGKILL, not SIGTERM: nothing is left to flush for a dead parent, and the simulator's
    own signal handler can deadlock when signals nest. Set before the parent is checked,
    so a parent that dies in between is noticed either way.

    Args:
        parent: The process id the parent must have.

    Returns:
        Whether ``parent`` is still this process's parent.

    """
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no prctl
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == parent


def _summary(stats: SimulatorStats, elapsed_s: float) -> str:
    parts = [f'done frames={stats.frames} missed_ticks={stats.missed_ticks}',
             f'elapsed_s={elapsed_s:.1f}']
    for role, port in stats.ports.items():
        parts.append(f'{role}: accepted={port.accepted} frames_sent={port.frames_sent} '
                     f'messages_sent={port.messages_sent} bytes_sent={port.bytes_sent} '
                     f'dropped={port.frames_dropped} overflows={port.overflows}')
    return ' '.join(parts)


def _wait_run(sim: Simulator, deadline: float) -> bool:
    """Wait for the run to end or a monotonic deadline; True when the run ended.

    Waits in slices (:data:`sensr_bridge.process.shutdown.SIGNAL_POLL_S`), so a signal taken by
    another thread still reaches its handler.
    """
    while (left := deadline - time.monotonic()) > 0:
        if sim.wait(min(left, shutdown.SIGNAL_POLL_S)):
            return True
    return sim.wait(0)


def _serve(sim: Simulator, faults: list[Fault], flush_s: float) -> int:
    try:
        sim.start()
    except SimulatorError as exc:
        print(f'simulator: {exc}', file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        print(f'ready output_port={sim.output_port} point_port={sim.point_port}', flush=True)
        for fault in faults:
            if _wait_run(sim, started + fault.at_s):
                break
            apply_fault(sim, fault)
        _wait_run(sim, math.inf)
    finally:
        sim.stop(flush_s=flush_s)
    print(_summary(sim.stats(), time.monotonic() - started), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until the duration or frame limit, SIGINT or SIGTERM.

    Prints ``ready output_port=N point_port=M`` once listening (``None`` for a port not
    served) and a one-line summary at the end.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        0 after a clean run (or at once when ``--exit-with-parent`` names a parent that
        is gone), 1 when the simulator cannot start.

    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.exit_with_parent is not None and not _exit_with_parent(args.exit_with_parent):
        return 0
    # The simulator program's request (process.shutdown): signals since its first instant.
    request = shutdown.installed()
    if request is not None and request.event.is_set():
        return 0
    try:
        config = _config_from_args(args)
        faults = sorted((parse_fault(spec) for spec in args.fault), key=lambda f: f.at_s)
        sim = Simulator(config)
    except ConfigError as exc:
        parser.error(str(exc))
    sim.ignore_pings(args.ignore_pings)

    handlers = {}
    if request is None:  # called from code: SIGINT/SIGTERM finish the run while it lasts
        request = shutdown.ShutdownRequest()
        if threading.current_thread() is threading.main_thread():
            handlers = request.install()
    request.add_callback(sim.finish)
    try:
        if request.event.is_set():
            return 0  # asked to stop while the frames were precomputed: nothing served
        return _serve(sim, faults, args.flush)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
