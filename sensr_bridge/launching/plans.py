# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""What the launch files compute, as plain data: testable without ``launch`` installed.

``launch/record.launch.py`` and ``launch/bridge.launch.py`` declare the arguments of
:mod:`sensr_bridge.launching.arguments`, hand their values to :func:`record_plan` or
:func:`bridge_plan` (inside an ``OpaqueFunction``, once the values are known) and turn the
returned :class:`Plan` into launch and launch_ros actions one to one. Every check,
default and command line is made here.

Parameters, lowest precedence first: the nodes' built-in defaults (documented in
``config/bridge.yaml`` and ``config/recorder.yaml``), then ``params_file`` (given to
every node), then the launch arguments that are set (an empty argument sets nothing).

Lifecycle (separate processes): the recorder is configured first (it opens the bag),
then the bridge (it creates its publishers), then the recorder is activated (it
subscribes to what the bridge publishes), and only once the recorder has subscribed to
the bridge's topics (:class:`~sensr_bridge.launching.guard.RecorderWait`) is the bridge
activated (it connects to SENSR), so the bag starts with the first frame. A failed
configure or activate stops the launch with the node's error in one line and a non-zero
exit; so does a process of the launch that exits with an error. Shutdown needs no
transitions: SIGINT/SIGTERM make each process drain and close
(:mod:`sensr_bridge.nodes.runtime`).

No launch path leaves a process behind: everything that can fail (arguments, files,
executables, RViz) is checked before the first process starts (:func:`check_installed`),
and every process starts under :func:`~sensr_bridge.launching.guard.orphan_guard`, which
hands it SIGTERM should the launch process die without stopping it (an exception inside
launch, SIGTERM or SIGKILL of ``ros2 launch``).

RViz (``rviz:=auto``, the default of ``bridge.launch.py``) starts only where rviz2 is
installed; ``rviz:=true`` without rviz2 fails before anything starts.

The orphan guard, the wait for the recorder and the failure lines are in
:mod:`sensr_bridge.launching.guard`; ``composed:=true`` runs
:mod:`sensr_bridge.nodes.composed`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
import os
from pathlib import Path
import re
import shutil
import sys
from typing import Any

from sensr_bridge.errors import ConfigError
from sensr_bridge.launching.arguments import (
    BRIDGE_ARGUMENTS,
    RECORD_ARGUMENTS,
    Argument,
    node_overrides,
    parse_file,
    parse_flag,
    parse_float,
    parse_int,
    parse_namespace,
    value,
)
from sensr_bridge.launching.guard import orphan_guard
from sensr_bridge.launching.programs import (
    BRIDGE_EXECUTABLE,
    PACKAGE,
    RECORDER_EXECUTABLE,
    RVIZ_EXECUTABLE,
    RVIZ_PACKAGE,
    SIMULATOR_MODULE,
)
from sensr_bridge.nodes import composed
from sensr_bridge.nodes.params import (
    BRIDGE,
    BRIDGE_NAME,
    DEFAULT_NAMESPACE,
    RECORDER,
    RECORDER_NAME,
    defaults,
)
from sensr_bridge.process import environment, paths

RVIZ_CONFIG = 'sensr.rviz'

# launch sends SIGINT, then SIGTERM after sigterm_timeout, then SIGKILL after a further
# sigkill_timeout (5 s by default). The nodes treat SIGTERM like SIGINT, so only SIGKILL
# cuts their drain short. The recorder needs its drain_timeout (3 s) for the publishers
# to finish plus the time to write what its queue holds (up to max_queue_bytes, 1 GiB,
# at a few hundred MB/s) and close the bag.
RECORDER_SIGTERM_TIMEOUT_S = 30
BRIDGE_SIGTERM_TIMEOUT_S = 10
"""The bridge's drain_timeout is 1.5 s: it stops taking frames and publishes what it has."""
SIMULATOR_SIGTERM_TIMEOUT_S = 10


@dataclass(frozen=True)
class Process:
    """A plain process to start (``ExecuteProcess``).

    Attributes:
        name: Process name in the launch log.
        cmd: The command line.
        sigterm_timeout: Seconds from SIGINT to SIGTERM at shutdown.

    """

    name: str
    cmd: tuple[str, ...]
    sigterm_timeout: int


@dataclass(frozen=True)
class RosNode:
    """A ROS node executable of this package to start (``Node`` or ``LifecycleNode``).

    Attributes:
        executable: Console script of this package.
        name: Node name.
        parameters: Parameter files (paths) and, last, a dict of overrides.
        sigterm_timeout: Seconds from SIGINT to SIGTERM at shutdown.
        environment: Variables of this process that differ from the plan's.

    """

    executable: str
    name: str
    parameters: tuple[str | dict[str, Any], ...]
    sigterm_timeout: int
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One lifecycle transition request of the separate-process start.

    Attributes:
        node: 'bridge' or 'recorder': whose transition is requested.
        transition: 'configure' or 'activate'.
        after: ``(node, start_state, goal_state)`` of the state transition that triggers
            the request (labels as in ``lifecycle_msgs/TransitionEvent``); None: at start.
        wait_for_recorder: Request it only once the recorder has subscribed to the
            bridge's topics (:class:`RecorderWait`), not at once.

    """

    node: str
    transition: str
    after: tuple[str, str, str] | None
    wait_for_recorder: bool = False


LIFECYCLE_STEPS: tuple[Step, ...] = (
    Step('recorder', 'configure', None),
    Step('bridge', 'configure', ('recorder', 'configuring', 'inactive')),
    Step('recorder', 'activate', ('bridge', 'configuring', 'inactive')),
    Step('bridge', 'activate', ('recorder', 'activating', 'active'), wait_for_recorder=True),
)
"""The start order: recorder configured, bridge configured, recorder active (and subscribed
to the bridge's topics), bridge active."""

LIFECYCLE_FAILURES: tuple[tuple[str, str, str], ...] = tuple(
    (node, start, goal) for node in ('recorder', 'bridge')
    for start, goal in (('configuring', 'unconfigured'), ('configuring', 'errorprocessing'),
                        ('activating', 'inactive'), ('activating', 'errorprocessing')))
"""``(node, start_state, goal_state)`` of a failed configure or activate: shut down."""


@dataclass(frozen=True)
class Plan:
    """Everything a launch file starts.

    Attributes:
        namespace: Namespace of the nodes.
        environment: Environment variables to set first (the large-data DDS profile).
        simulator: The simulator process (simulate:=true), else None.
        bridge: The bridge node (separate processes), else None.
        recorder: The recorder node (separate processes), else None.
        composed: Bridge and recorder in one process (composed:=true), else None.
        lifecycle: Transition requests driving ``bridge`` and ``recorder`` (lifecycle
            nodes); empty when the nodes start themselves.
        rviz_config: RViz config file (rviz:=true, or auto with rviz2 installed), else None.
        notes: Lines to log at the start.
        guard: Command prefix of every process
            (:func:`~sensr_bridge.launching.guard.orphan_guard`).

    """

    namespace: str
    environment: dict[str, str]
    simulator: Process | None = None
    bridge: RosNode | None = None
    recorder: RosNode | None = None
    composed: Process | None = None
    lifecycle: tuple[Step, ...] = ()
    rviz_config: str | None = None
    notes: tuple[str, ...] = ()
    guard: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Common:
    namespace: str
    params_file: str | None
    bridge: dict[str, Any]
    simulator: Process | None
    notes: tuple[str, ...]


def _common(values: Mapping[str, str], arguments: Sequence[Argument],
            python: str) -> _Common:
    """Read the arguments both launch files have; the bridge's parameter overrides."""
    def get(name: str) -> str:
        return value(values, name, arguments)

    namespace = parse_namespace(get('namespace'))
    params_file = parse_file(get('params_file'), 'params_file') if get('params_file') else None
    bridge = node_overrides(values, BRIDGE, arguments)
    notes = []
    simulator = None
    if parse_flag(get('simulate'), 'simulate'):
        if bridge.get('host', '127.0.0.1') != '127.0.0.1':
            notes.append(f'simulate:=true: host {bridge["host"]} ignored, the simulator '
                         'listens on 127.0.0.1')
        bridge['host'] = '127.0.0.1'
        # The simulator and the bridge must agree on the ports: both get them explicitly.
        default = defaults(BRIDGE)
        output_port = bridge.setdefault('output_port', default['output_port'])
        point_port = bridge.setdefault('point_port', default['point_port'])
        if not output_port and not point_port:
            msg = 'simulate:=true needs output_port or point_port to be non-zero'
            raise ConfigError(msg)
        cmd = [python, '-m', SIMULATOR_MODULE,
               '--points', str(parse_int(get('sim_points'), 'sim_points', 0)),
               '--rate', repr(parse_float(get('sim_rate'), 'sim_rate', 0.0, above=True))]
        cmd += ['--output-port', str(output_port)] if output_port else ['--no-output']
        cmd += ['--point-port', str(point_port)] if point_port else ['--no-points']
        simulator = Process('sensr_simulator', tuple(cmd), SIMULATOR_SIGTERM_TIMEOUT_S)
    return _Common(namespace, params_file, bridge, simulator, tuple(notes))


def _recorder_overrides(values: Mapping[str, str], namespace: str) -> dict[str, Any]:
    recorder = node_overrides(values, RECORDER, RECORD_ARGUMENTS)
    if namespace != DEFAULT_NAMESPACE:
        # The recorder's default topic_regex is ^/sensr/: follow the namespace.
        recorder['topic_regex'] = f'^/{re.escape(namespace)}/'
    return recorder


def _parameters(params_file: str | None, overrides: dict[str, Any]) -> tuple[Any, ...]:
    return ((params_file,) if params_file else ()) + (overrides,)


def find_executable(package: str, executable: str) -> str | None:
    """Locate an executable of a package the way launch_ros's ``Node`` does.

    Args:
        package: Package name, looked up in the ament index (``AMENT_PREFIX_PATH``).
        executable: Executable in the package's ``lib/<package>`` directory.

    Returns:
        Its path, or None when the package or the executable is not installed.

    """
    try:
        from ament_index_python.packages import get_package_prefix
    except ImportError:  # no ament index: launch_ros would not find it either
        return None
    try:
        prefix = get_package_prefix(package)
    except (LookupError, ValueError, OSError):  # not found; OSError: no AMENT_PREFIX_PATH
        return None
    return shutil.which(executable, path=str(Path(prefix) / 'lib' / package))


def rviz_installed() -> bool:
    """Tell whether RViz can be started (``rviz2`` of package rviz2 in the ament index)."""
    return find_executable(RVIZ_PACKAGE, RVIZ_EXECUTABLE) is not None


_RVIZ_MISSING = f"rviz2 is not installed (no package '{RVIZ_PACKAGE}' with an executable " \
                f"'{RVIZ_EXECUTABLE}' in the ament index)"


def _rviz_package() -> str:
    return f"ros-{os.environ.get('ROS_DISTRO') or '<distro>'}-rviz2"


def _rviz(values: Mapping[str, str], arguments: Sequence[Argument],
          installed: bool | None) -> tuple[str | None, tuple[str, ...]]:
    """Decide on RViz: its config file (None: not started) and the notes to log.

    Raises:
        ConfigError: rviz:=true without rviz2, or a value other than true, false, auto.

    """
    text = value(values, 'rviz', arguments)
    wanted = None
    if text.lower() != 'auto':
        try:
            wanted = parse_flag(text, 'rviz')
        except ConfigError:
            msg = f'launch argument rviz must be true, false or auto, not {text!r}'
            raise ConfigError(msg) from None
    if wanted is False:
        return None, ()
    if installed is None:
        installed = rviz_installed()
    if installed:
        return str(paths.config_dir() / RVIZ_CONFIG), ()
    if wanted:
        msg = (f'rviz:=true, but {_RVIZ_MISSING}: install {_rviz_package()} or launch with '
               'rviz:=false; nothing was started')
        raise ConfigError(msg)
    return None, (f'RViz not started: {_RVIZ_MISSING}; install {_rviz_package()} to view the '
                  'topics (rviz:=false skips RViz without this note)',)


def check_installed(plan: Plan, find: Callable[[str, str], str | None] = find_executable,
                    ) -> None:
    """Check that every executable the plan starts through the ament index is installed.

    launch_ros looks executables up only when it starts a node; one that is missing
    then makes launch fail after the nodes before it have started, and launch leaves
    those running. The launch files call this before returning any action.

    Args:
        plan: What the launch file is about to start.
        find: Executable lookup (:func:`find_executable`).

    Raises:
        ConfigError: Naming each missing executable.

    """
    wanted = [(PACKAGE, node.executable) for node in (plan.bridge, plan.recorder)
              if node is not None]
    if plan.rviz_config is not None:
        wanted.append((RVIZ_PACKAGE, RVIZ_EXECUTABLE))
    missing = [f'{package}/{executable}' for package, executable in wanted
               if find(package, executable) is None]
    if missing:
        msg = (f"not installed: {', '.join(missing)} (launch_ros finds executables through "
               'the ament index: build the workspace with colcon and source its '
               'install/setup.bash); nothing was started')
        raise ConfigError(msg)


def record_plan(values: Mapping[str, str], *, python: str = sys.executable,
                have_rviz: bool | None = None) -> Plan:
    """Plan ``record.launch.py``: bridge and recorder (+ simulator, RViz).

    Args:
        values: Launch argument values by name (missing ones take their default).
        python: Interpreter of the simulator and composed processes.
        have_rviz: Whether rviz2 is installed (None: :func:`rviz_installed`, asked
            only when RViz is wanted).

    Returns:
        What to start.

    Raises:
        ConfigError: An argument has an invalid value or names a missing file, or
            rviz:=true without rviz2.

    """
    common = _common(values, RECORD_ARGUMENTS, python)
    recorder = _recorder_overrides(values, common.namespace)
    dds = environment.dds_environment()
    rviz_config, rviz_notes = _rviz(values, RECORD_ARGUMENTS, have_rviz)
    notes = common.notes + rviz_notes
    if parse_flag(value(values, 'composed', RECORD_ARGUMENTS), 'composed'):
        cmd = composed.command(python, common.namespace, {**common.bridge, 'autostart': True},
                               {**recorder, 'autostart': True}, common.params_file)
        process = Process('sensr_record', cmd, RECORDER_SIGTERM_TIMEOUT_S)
        return Plan(common.namespace, dds, simulator=common.simulator,
                    composed=process, rviz_config=rviz_config, notes=notes,
                    guard=orphan_guard())
    # The launch file drives the transitions: the nodes must not start themselves.
    bridge = RosNode(BRIDGE_EXECUTABLE, BRIDGE_NAME,
                     _parameters(common.params_file, {**common.bridge, 'autostart': False}),
                     BRIDGE_SIGTERM_TIMEOUT_S)
    recorder_node = RosNode(RECORDER_EXECUTABLE, RECORDER_NAME,
                            _parameters(common.params_file, {**recorder, 'autostart': False}),
                            RECORDER_SIGTERM_TIMEOUT_S,
                            environment.dds_environment(publishes_clouds=False))
    return Plan(common.namespace, dds, simulator=common.simulator, bridge=bridge,
                recorder=recorder_node, lifecycle=LIFECYCLE_STEPS, rviz_config=rviz_config,
                notes=notes, guard=orphan_guard())


def bridge_plan(values: Mapping[str, str], *, python: str = sys.executable,
                have_rviz: bool | None = None) -> Plan:
    """Plan ``bridge.launch.py``: the bridge alone (+ simulator, RViz where installed).

    The bridge is a plain node that configures and activates itself. Arguments, result
    and errors as for :func:`record_plan`.
    """
    common = _common(values, BRIDGE_ARGUMENTS, python)
    bridge = RosNode(BRIDGE_EXECUTABLE, BRIDGE_NAME,
                     _parameters(common.params_file, {**common.bridge, 'autostart': True}),
                     BRIDGE_SIGTERM_TIMEOUT_S)
    rviz_config, rviz_notes = _rviz(values, BRIDGE_ARGUMENTS, have_rviz)
    return Plan(common.namespace, environment.dds_environment(), simulator=common.simulator,
                bridge=bridge, rviz_config=rviz_config, notes=common.notes + rviz_notes,
                guard=orphan_guard())
