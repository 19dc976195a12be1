# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Bridge and recorder in one process: :func:`run_composed`, and the composed launch process.

``record`` (:mod:`sensr_bridge.cli.record`) and ``record.launch.py composed:=true`` run
both nodes the same way: :func:`run_composed`, with the same node classes and
:func:`sensr_bridge.nodes.runtime.run_nodes` as the ``bridge_node`` and ``recorder_node``
executables. ``python -m sensr_bridge.nodes.composed`` is the launch's process: its
command line (:func:`command`) carries the launch arguments that are set as parameter
overrides, ``--bridge NAME=JSON`` and ``--recorder NAME=JSON``.
"""

from __future__ import annotations

if __name__ == '__main__':  # python -m: signals handled before the imports below
    from sensr_bridge.process.shutdown import composed

    raise SystemExit(composed())

import argparse
from collections.abc import Callable, Mapping, Sequence
import json
import sys
from typing import TYPE_CHECKING, Any

from sensr_bridge.nodes.params import BRIDGE_NAME, DEFAULT_NAMESPACE, RECORDER_NAME

if TYPE_CHECKING:
    from rclpy.lifecycle import LifecycleNode

MODULE = 'sensr_bridge.nodes.composed'
"""What ``python -m`` runs as the composed launch process."""


def run_composed(namespace: str, bridge_overrides: Mapping[str, Any],
                 recorder_overrides: Mapping[str, Any], ros_args: Sequence[str], *,
                 duration: float | None = None,
                 on_progress: Callable[[list[LifecycleNode]], None] | None = None,
                 on_started: Callable[[list[LifecycleNode]], None] | None = None) -> int:
    """Run the recorder and the bridge in this process until shutdown is requested.

    Overrides win over ``ros_args`` parameters (params files), which win over the nodes'
    defaults; so only what was given must be passed as an override. The recorder starts
    first, so the bag misses nothing at the start.

    Args:
        namespace: Namespace of both nodes.
        bridge_overrides: Parameters of the bridge, by name.
        recorder_overrides: Parameters of the recorder, by name.
        ros_args: ROS arguments (``--ros-args --params-file ...``), or none.
        duration: Stop after this many seconds (None: until SIGINT/SIGTERM).
        on_progress: Called with ``[recorder, bridge]`` every second.
        on_started: Called with ``[recorder, bridge]`` once both are started.

    Returns:
        Process exit code (see :func:`sensr_bridge.nodes.runtime.run_nodes`).

    """
    from rclpy.parameter import Parameter

    from sensr_bridge.nodes.bridge import BridgeNode
    from sensr_bridge.nodes.recorder import RecorderNode
    from sensr_bridge.nodes.runtime import run_nodes

    bridge = [Parameter(name, value=value) for name, value in bridge_overrides.items()]
    recorder = [Parameter(name, value=value) for name, value in recorder_overrides.items()]
    return run_nodes(
        [('recorder', lambda: RecorderNode(RECORDER_NAME, namespace=namespace,
                                           parameter_overrides=recorder)),
         ('bridge', lambda: BridgeNode(BRIDGE_NAME, namespace=namespace,
                                       parameter_overrides=bridge))],
        ['sensr_record', *ros_args], duration=duration, on_progress=on_progress,
        on_started=on_started)


def command(python: str, namespace: str, bridge_overrides: Mapping[str, Any],
            recorder_overrides: Mapping[str, Any], params_file: str | None) -> tuple[str, ...]:
    """Return the command line of the composed launch process (read by :func:`main`).

    Args:
        python: Interpreter to run it.
        namespace: Namespace of both nodes.
        bridge_overrides: Parameters of the bridge, by name (JSON values).
        recorder_overrides: Parameters of the recorder, by name (JSON values).
        params_file: Parameter YAML given to both nodes, or None.

    Returns:
        The command line.

    """
    cmd = [python, '-m', MODULE, '--namespace', namespace]
    for role, overrides in (('bridge', bridge_overrides), ('recorder', recorder_overrides)):
        for name, value in overrides.items():
            cmd += [f'--{role}', f'{name}={json.dumps(value)}']
    if params_file:
        cmd += ['--ros-args', '--params-file', params_file]
    return tuple(cmd)


def _assignment(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition('=')
    try:
        if not sep or not name:
            raise ValueError(text)
        return name, json.loads(value)
    except ValueError as exc:
        msg = f'expected NAME=JSON, not {text!r}'
        raise argparse.ArgumentTypeError(msg) from exc


def parser() -> argparse.ArgumentParser:
    """Return the parser of the composed launch process's options (before ``--ros-args``)."""
    result = argparse.ArgumentParser(
        prog=f'python -m {MODULE}',
        description='Bridge and recorder nodes in one process (record.launch.py '
                    'composed:=true). ROS arguments (--params-file ...) follow --ros-args.')
    result.add_argument('--namespace', default=DEFAULT_NAMESPACE, help='node namespace')
    result.add_argument('--bridge', type=_assignment, action='append', default=[],
                        metavar='NAME=JSON', help='bridge parameter override (repeatable)')
    result.add_argument('--recorder', type=_assignment, action='append', default=[],
                        metavar='NAME=JSON', help='recorder parameter override (repeatable)')
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the composed launch process until SIGINT/SIGTERM.

    Args:
        argv: Command line (default: ``sys.argv[1:]``), as :func:`command` makes it.

    Returns:
        Process exit code (see :func:`run_composed`).

    """
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    args = parser().parse_args(argv[:split])
    return run_composed(args.namespace, dict(args.bridge), dict(args.recorder), argv[split:])
