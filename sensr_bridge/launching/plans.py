# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""What the launch files compute, as plain data: testable without ``launch`` installed.

``launch/record.launch.py`` and ``launch/bridge.launch.py`` declare the arguments listed
here, hand their values to :func:`record_plan` or :func:`bridge_plan` (inside an
``OpaqueFunction``, once the values are known) and turn the returned :class:`Plan` into
launch and launch_ros actions one to one. Every check, default and command line is made
here.

Parameters, lowest precedence first: the nodes' built-in defaults (documented in
``config/bridge.yaml`` and ``config/recorder.yaml``), then ``params_file`` (given to
every node), then the launch arguments that are set (an empty argument sets nothing).

Lifecycle (separate processes): the recorder is configured first (it opens the bag),
then the bridge (it creates its publishers), then the recorder is activated (it
subscribes to what the bridge publishes), and only once the recorder has subscribed to
the bridge's topics (:class:`RecorderWait`) is the bridge activated (it connects to
SENSR), so the bag starts with the first frame. A failed configure or activate stops
the launch with the node's error in one line and a non-zero exit; so does a process of
the launch that exits with an error. Shutdown needs no transitions: SIGINT/SIGTERM make
each process drain and close (:mod:`sensr_bridge.nodes.runtime`).

No launch path leaves a process behind: everything that can fail (arguments, files,
executables, RViz) is checked before the first process starts (:func:`check_installed`),
and every process starts under :func:`orphan_guard`, which hands it SIGTERM should the
launch process die without stopping it (an exception inside launch, SIGTERM or SIGKILL
of ``ros2 launch``).

RViz (``rviz:=auto``, the default of ``bridge.launch.py``) starts only where rviz2 is
installed; ``rviz:=true`` without rviz2 fails before anything starts.

``python -m sensr_bridge.launching.plans`` is the process of ``composed:=true``: both
nodes in one process, with the same node classes and :func:`sensr_bridge.nodes.runtime.run_nodes`
as the ``bridge_node`` and ``recorder_node`` executables.
"""

from __future__ import annotations

if __name__ == '__main__':  # python -m: signals handled before the imports below
    from sensr_bridge.process.shutdown import composed

    raise SystemExit(composed())

import argparse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
import json
import math
import os
from pathlib import Path
import re
import shutil
import signal
import sys
from typing import Any

from sensr_bridge.bag.base import COMPRESSIONS
from sensr_bridge.bag.clips import CLIP_MODES, parse_event_rules
from sensr_bridge.bag.filters import parse_intervals
from sensr_bridge.errors import ConfigError
from sensr_bridge.process import environment, paths
from sensr_bridge.sensr import protocol

PACKAGE = 'sensr_bridge'
BRIDGE_EXECUTABLE = 'bridge_node'
RECORDER_EXECUTABLE = 'recorder_node'
BRIDGE_NAME = 'sensr_bridge'
"""Node name of the bridge (its default in :class:`~sensr_bridge.nodes.bridge.BridgeNode`)."""
RECORDER_NAME = 'sensr_recorder'
"""Node name of the recorder (its default in :class:`~sensr_bridge.nodes.recorder.RecorderNode`)."""
DEFAULT_NAMESPACE = 'sensr'
RVIZ_CONFIG = 'sensr.rviz'
RVIZ_PACKAGE = 'rviz2'
RVIZ_EXECUTABLE = 'rviz2'

# launch sends SIGINT, then SIGTERM after sigterm_timeout, then SIGKILL after a further
# sigkill_timeout (5 s by default). The nodes treat SIGTERM like SIGINT, so only SIGKILL
# cuts their drain short. The recorder needs its drain_timeout (3 s) for the publishers
# to finish plus the time to write what its queue holds (up to max_queue_bytes, 1 GiB,
# at a few hundred MB/s) and close the bag.
RECORDER_SIGTERM_TIMEOUT_S = 30
BRIDGE_SIGTERM_TIMEOUT_S = 10
"""The bridge's drain_timeout is 1.5 s: it stops taking frames and publishes what it has."""
SIMULATOR_SIGTERM_TIMEOUT_S = 10

_TRUE = ('true', '1')
_FALSE = ('false', '0')
_NAMESPACE = re.compile(r'^[A-Za-z][A-Za-z0-9_]*(?:/[A-Za-z][A-Za-z0-9_]*)*$')


@dataclass(frozen=True)
class Argument:
    """One launch argument.

    Attributes:
        name: Argument name (``name:=value`` on the command line).
        default: Default value; '' for node parameters means "not set".
        description: Shown by ``ros2 launch -s``.
        choices: Allowed values (empty: any).

    """

    name: str
    default: str
    description: str
    choices: tuple[str, ...] = ()


_COMMON = (
    Argument('host', '', 'SENSR master host name or address (unset: params_file, else '
             '127.0.0.1; always 127.0.0.1 with simulate:=true)'),
    Argument('output_port', '', f'SENSR output port, OutputMessage; 0 = off (unset: '
             f'params_file, else {protocol.OUTPUT_PORT})'),
    Argument('point_port', '', f'SENSR point-cloud port, PointResult; 0 = off (unset: '
             f'params_file, else {protocol.POINT_PORT})'),
    Argument('params_file', '', 'ROS parameter YAML given to every node (see '
             'config/bridge.yaml, config/recorder.yaml); launch arguments that are set win'),
    Argument('namespace', DEFAULT_NAMESPACE, 'namespace of the nodes and their topics'),
    Argument('simulate', 'false', 'start the built-in SENSR simulator on loopback and '
             'connect to it'),
    Argument('sim_points', '921512', 'simulator: points per frame'),
    Argument('sim_rate', '10.0', 'simulator: frames per second'),
)

_RVIZ_HELP = ('start RViz with config/sensr.rviz: true, false, or auto (where rviz2 is '
              'installed; true without rviz2 fails before anything starts)')

RECORD_ARGUMENTS: tuple[Argument, ...] = (
    *_COMMON,
    Argument('output_dir', '', 'directory in which bags are created (unset: params_file, '
             'else bags)'),
    Argument('storage', '', 'bag storage (unset: params_file, else sqlite3)',
             ('', 'sqlite3', 'mcap')),
    Argument('storage_preset', '', "sqlite3 pragma preset, e.g. 'durable' (unset: "
             'params_file, else the default preset)'),
    Argument('storage_config_file', '', 'rosbag2 storage config YAML (write: pragmas: '
             '[...]), e.g. config/storage_durable.yaml (unset: params_file, else none)'),
    Argument('max_bagfile_duration', '', 'split the bag every N seconds; 0 = never (unset: '
             'params_file, else 0)'),
    Argument('max_bagfile_size', '', 'split the bag at N bytes per file; 0 = never (unset: '
             'params_file, else 0)'),
    Argument('compression', '', 'mcap chunk compression (unset: params_file, else none)',
             ('', 'none', 'zstd', 'lz4')),
    Argument('topic_intervals', '', "keep at most one message per interval on matching "
             "topics: space-separated REGEX=SECONDS, e.g. '/points$=1.0' (unset: params_file, "
             'else every message)'),
    Argument('skip_empty_clouds', '', 'leave clouds without points out of the bag: true or '
             'false (unset: params_file, else false)'),
    Argument('clip_mode', '', 'event clips: off, with_bag (clip bags next to the main bag) or '
             'only (no main bag) (unset: params_file, else off)', ('', *CLIP_MODES)),
    Argument('clip_before', '', 'seconds a clip holds before its event (unset: params_file, '
             'else 10)'),
    Argument('clip_after', '', 'seconds a clip records after its event (unset: params_file, '
             'else 10)'),
    Argument('clip_events', '', "zone events that start a clip: space-separated TYPE, "
             "TYPE@ZONE_ID, * or *@ZONE_ID, e.g. 'ENTRY@3 LOITERING' (unset: params_file, "
             'else *)'),
    Argument('clip_buffer_bytes', '', 'bound on the ring buffer of clips, bytes (unset: '
             'params_file, else 2 GiB)'),
    Argument('composed', 'false', 'bridge and recorder in one process (no lifecycle '
             'events: the process configures and activates them in order)'),
    Argument('rviz', 'false', _RVIZ_HELP),
)
"""Arguments of ``record.launch.py``."""

BRIDGE_ARGUMENTS: tuple[Argument, ...] = (
    *_COMMON,
    Argument('rviz', 'auto', _RVIZ_HELP),
)
"""Arguments of ``bridge.launch.py``."""


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
        guard: Command prefix of every process (:func:`orphan_guard`).

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


def _value(values: Mapping[str, str], name: str, arguments: Sequence[Argument]) -> str:
    default = next(a.default for a in arguments if a.name == name)
    return str(values.get(name, default)).strip()


def parse_flag(text: str, name: str) -> bool:
    """Read a boolean launch argument the way launch's ``IfCondition`` does.

    Args:
        text: The value: true, false, 1 or 0, in any case.
        name: Argument name, for the error message.

    Returns:
        The boolean.

    Raises:
        ConfigError: Any other value.

    """
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    msg = f'launch argument {name} must be true or false, not {text!r}'
    raise ConfigError(msg)


def _int(text: str, name: str, low: int, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f'{low}..{high}' if high is not None else f'>= {low}'
        msg = f'launch argument {name} must be an integer {bound}, not {text!r}'
        raise ConfigError(msg)
    return value


def _float(text: str, name: str, *, zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with ``zero``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not ((value >= 0 if zero else value > 0) and math.isfinite(value)):
        kind = 'a number >= 0' if zero else 'a positive number'
        msg = f'launch argument {name} must be {kind}, not {text!r}'
        raise ConfigError(msg)
    return value


def _file(text: str, name: str) -> str:
    path = Path(text).expanduser()
    if not path.is_file():
        msg = f'launch argument {name}: no such file {text!r}'
        raise ConfigError(msg)
    return str(path.resolve())


def _namespace(text: str) -> str:
    namespace = text.strip('/')
    if not _NAMESPACE.match(namespace):
        msg = f'launch argument namespace must be a ROS namespace like "sensr", not {text!r}'
        raise ConfigError(msg)
    return namespace


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
        return _value(values, name, arguments)

    namespace = _namespace(get('namespace'))
    params_file = _file(get('params_file'), 'params_file') if get('params_file') else None
    bridge: dict[str, Any] = {}
    ports = {}
    for name in ('output_port', 'point_port'):
        if get(name):
            ports[name] = bridge[name] = _int(get(name), name, 0, 65535)
    notes = []
    simulator = None
    if parse_flag(get('simulate'), 'simulate'):
        if get('host') and get('host') != '127.0.0.1':
            notes.append(f'simulate:=true: host {get("host")} ignored, the simulator '
                         'listens on 127.0.0.1')
        bridge['host'] = '127.0.0.1'
        # The simulator and the bridge must agree on the ports: both get them explicitly.
        output_port = bridge['output_port'] = ports.get('output_port', protocol.OUTPUT_PORT)
        point_port = bridge['point_port'] = ports.get('point_port', protocol.POINT_PORT)
        if not output_port and not point_port:
            msg = 'simulate:=true needs output_port or point_port to be non-zero'
            raise ConfigError(msg)
        cmd = [python, '-m', 'sensr_bridge.sim',
               '--points', str(_int(get('sim_points'), 'sim_points', 0)),
               '--rate', repr(_float(get('sim_rate'), 'sim_rate'))]
        cmd += ['--output-port', str(output_port)] if output_port else ['--no-output']
        cmd += ['--point-port', str(point_port)] if point_port else ['--no-points']
        simulator = Process('sensr_simulator', tuple(cmd), SIMULATOR_SIGTERM_TIMEOUT_S)
    elif get('host'):
        bridge['host'] = get('host')
    return _Common(namespace, params_file, bridge, simulator, tuple(notes))


def _recorder_overrides(values: Mapping[str, str], namespace: str) -> dict[str, Any]:
    def get(name: str) -> str:
        return _value(values, name, RECORD_ARGUMENTS)

    recorder: dict[str, Any] = {}
    if get('output_dir'):
        recorder['output_dir'] = get('output_dir')
    for name, choices in (('storage', ('sqlite3', 'mcap')), ('compression', COMPRESSIONS),
                          ('clip_mode', CLIP_MODES)):
        if get(name):
            if get(name) not in choices:
                msg = (f'launch argument {name} must be one of {", ".join(choices)}, '
                       f'not {get(name)!r}')
                raise ConfigError(msg)
            recorder[name] = get(name)
    if get('storage_preset'):
        recorder['storage_preset'] = get('storage_preset')
    if get('storage_config_file'):
        recorder['storage_config_file'] = _file(get('storage_config_file'),
                                                'storage_config_file')
    for name in ('max_bagfile_duration', 'max_bagfile_size'):
        if get(name):
            recorder[name] = _int(get(name), name, 0)
    if get('topic_intervals'):
        entries = get('topic_intervals').split()
        parse_intervals(entries, 'launch argument topic_intervals')
        recorder['topic_intervals'] = entries
    if get('skip_empty_clouds'):
        recorder['skip_empty_clouds'] = parse_flag(get('skip_empty_clouds'), 'skip_empty_clouds')
    for name in ('clip_before', 'clip_after'):
        if get(name):
            recorder[name] = _float(get(name), name, zero=True)
    if get('clip_events'):
        entries = get('clip_events').split()
        parse_event_rules(entries, name='launch argument clip_events')
        recorder['clip_events'] = entries
    if get('clip_buffer_bytes'):
        recorder['clip_buffer_bytes'] = _int(get('clip_buffer_bytes'), 'clip_buffer_bytes', 1)
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
    text = _value(values, 'rviz', arguments)
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


# Run by the orphan guard before it becomes the real process (execvp keeps the PID, the
# parent-death signal and the signal mask): PR_SET_PDEATHSIG (1) makes the kernel send
# SIGTERM when the launch process dies; had it died already before prctl, the process
# does not start. SIGINT and SIGTERM are blocked first thing (_signal runs no Python code
# before), and nothing starts once one came. The package's own programs (_HELD: they
# take both over at their first line, sensr_bridge.process.shutdown) start with them still
# blocked: a Ctrl+C while their interpreter and console script start (up to 0.5 s under
# a launch's load, colcon's script looking its entry point up) waits for their handler
# instead of raising KeyboardInterrupt in an import. Anything else (rviz2, a
# launch-prefix) starts with them unblocked.
_HELD = ([f'{PACKAGE}/{BRIDGE_EXECUTABLE}', f'{PACKAGE}/{RECORDER_EXECUTABLE}'],
         [['-m', 'sensr_bridge.sim'], ['-m', 'sensr_bridge.launching.plans']])
_GUARD_CODE = ('import _signal\n'
               '_signal.pthread_sigmask(_signal.SIG_BLOCK, (_signal.SIGINT, _signal.SIGTERM))\n'
               'import ctypes, os, signal, sys\n'
               'ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n'
               'if os.getppid() != int(sys.argv[1]):\n'
               '    sys.exit("the launch process is gone: not starting " + sys.argv[2])\n'
               'held = {signal.SIGINT, signal.SIGTERM}\n'
               'if signal.sigpending() & held:\n'
               '    sys.exit(0)\n'
               'cmd = sys.argv[2:]\n'
               f'programs, modules = {_HELD!r}\n'
               'ours = "/".join(cmd[0].split("/")[-2:]) in programs or cmd[1:3] in modules\n'
               'if not ours:\n'
               '    for sig in held:\n'
               '        signal.signal(sig, signal.SIG_DFL)\n'
               '    signal.pthread_sigmask(signal.SIG_UNBLOCK, held)\n'
               'os.execvp(cmd[0], cmd)')


def orphan_guard(parent: int | None = None, python: str = sys.executable) -> tuple[str, ...]:
    """Command prefix that stops a process when its launch process dies.

    launch stops its processes on every path it controls, but not when it dies itself
    or gives up: an exception inside launch while starting actions leaves the processes
    already started running (ros2/launch: their futures are lost), and SIGTERM or
    SIGKILL of ``ros2 launch`` ends launch without stopping them (ros2/launch#666). An
    orphaned lifecycle node then answers the next launch's transition requests under
    the same name. Under this prefix the kernel sends such a process SIGTERM (which the
    nodes of this package, like SIGINT, answer with a clean drain and exit) as soon as
    the launch process is gone. A SIGINT or SIGTERM while the guard runs stops the start
    (exit 0); the package's own programs start with both still blocked and take one
    that comes before their handler is in place. Linux only (``prctl``); elsewhere no
    prefix.

    Args:
        parent: PID of the launch process (default: this process, which runs launch).
        python: Interpreter running the prefix.

    Returns:
        The prefix: ``python -I -S -c CODE PARENT`` followed by the command.

    """
    if not sys.platform.startswith('linux'):
        return ()
    return (python, '-I', '-S', '-c', _GUARD_CODE, str(os.getpid() if parent is None else parent))


RECORDER_WAIT_QUIET_S = 1.0
"""Seconds without a new subscription after which the recorder counts as subscribed."""
RECORDER_WAIT_TIMEOUT_S = 15.0
"""Longest wait for the recorder's subscriptions before the bridge is activated anyway."""
RECORDER_WAIT_POLL_S = 0.1
"""Seconds between two looks at the ROS graph while waiting."""

TRANSITION_EVENTS_WAIT_S = 30.0
"""Longest wait for launch to hear the nodes' transition events before the first request."""


class RecorderWait:
    """When to activate the bridge: once the recorder subscribed to what it publishes.

    The recorder subscribes, when activated and then every ``discovery_period``, to the
    topics its ROS graph shows. Between two processes that have just started, DDS
    discovery takes a second or two, so a bridge activated as soon as the recorder is
    active publishes its first clouds before the recorder has subscribed (measured with
    ``record.launch.py simulate:=true``: 17 of the first 48 clouds missing from the
    bag). The launch file feeds this, every :data:`RECORDER_WAIT_POLL_S`, with the
    topics the launch process's graph shows the bridge publishing and the recorder
    subscribed to. Ready when the recorder subscribed to every topic of the bridge in
    the namespace, or to some of them (``topics``/``topic_regex`` may exclude the rest)
    with no new one for :data:`RECORDER_WAIT_QUIET_S`; after
    :data:`RECORDER_WAIT_TIMEOUT_S` the bridge is activated anyway, with a note.
    """

    def __init__(self, namespace: str, *, quiet_s: float = RECORDER_WAIT_QUIET_S,
                 timeout_s: float = RECORDER_WAIT_TIMEOUT_S) -> None:
        """Wait for the subscriptions in ``namespace`` (without slashes)."""
        self._prefix = f'/{namespace.strip("/")}/'
        self._quiet_s = quiet_s
        self._timeout_s = timeout_s
        self._start: float | None = None
        self._changed = 0.0
        self._taken: set[str] = set()

    def _data(self, topics: Iterable[str]) -> set[str]:
        # Lifecycle transition events are not data (the recorder leaves them out too).
        return {t for t in topics
                if t.startswith(self._prefix) and not t.endswith('/transition_event')}

    def update(self, now: float, bridge_topics: Iterable[str],
               recorder_topics: Iterable[str]) -> str | None:
        """Look at the graph once.

        Args:
            now: Monotonic time, seconds.
            bridge_topics: Topics the bridge publishes.
            recorder_topics: Topics the recorder subscribed to.

        Returns:
            None: keep waiting; '': activate the bridge; other text: activate the
            bridge, logging the text (the wait timed out).

        """
        if self._start is None:
            self._start = self._changed = now
        offered = self._data(bridge_topics)
        taken = self._data(recorder_topics) & offered
        if taken != self._taken:
            self._taken, self._changed = taken, now
        if offered and taken == offered:
            return ''
        if taken and now - self._changed >= self._quiet_s:
            return ''
        if now - self._start >= self._timeout_s:
            missing = ', '.join(sorted(offered - taken)) or "the bridge's topics"
            return (f'the recorder has not subscribed to {missing} within '
                    f'{self._timeout_s:g} s: activating the bridge anyway (what it '
                    'publishes before the recorder subscribes is not recorded)')
        return None


_ROS_LOG_LINE = re.compile(r'\[(DEBUG|INFO|WARN|ERROR|FATAL)\] \[[^\]]*\] \[[^\]]*\]: (.*)')


class ProcessErrors:
    """The last error each process printed: the reason named when it stops the launch.

    The launch files feed it the output of their processes; a failed transition or an
    exit with an error is then reported in one line that says why, instead of a bare
    "shutting down" after the node's own log.
    """

    def __init__(self) -> None:
        """Start with no errors."""
        self._logged: dict[str, str] = {}
        self._stderr: dict[str, str] = {}

    def feed(self, name: str, data: bytes | str, *, stderr: bool = False) -> None:
        """Take output of process ``name``: its last ERROR/FATAL log line is kept.

        Other lines on stderr that are not ROS log lines (a Python traceback's last
        line, say) are kept as the fallback.
        """
        text = data.decode(errors='replace') if isinstance(data, bytes) else data
        for raw in text.splitlines():
            line = raw.strip()
            match = _ROS_LOG_LINE.search(line)
            if match is not None:
                if match.group(1) in ('ERROR', 'FATAL'):
                    self._logged[name] = match.group(2).strip()
            elif stderr and line:
                self._stderr[name] = line

    def last(self, name: str) -> str | None:
        """The last error of process ``name`` (None: it printed none)."""
        return self._logged.get(name) or self._stderr.get(name)


_FAILED_TRANSITIONS = {
    ('configuring', 'unconfigured'): 'failed to configure',
    ('configuring', 'errorprocessing'): 'raised an error while configuring',
    ('activating', 'inactive'): 'failed to activate',
    ('activating', 'errorprocessing'): 'raised an error while activating',
}


def unheard_note(topics: Sequence[str]) -> str:
    """Return the note logged when launch starts the chain without hearing ``topics``."""
    return (f'launch did not hear {", ".join(topics)} in {TRANSITION_EVENTS_WAIT_S:g} s; '
            'requesting the first transition anyway (the start may stall if it misses '
            'the transition)')


def lifecycle_failure(name: str, start_state: str, goal_state: str,
                      error: str | None) -> str:
    """The line that stops the launch when a node failed a transition.

    Args:
        name: Node name.
        start_state: ``start_state`` label of the TransitionEvent.
        goal_state: ``goal_state`` label of the TransitionEvent.
        error: The node's last error line (:class:`ProcessErrors`), if any.

    Returns:
        One line: which node, which transition, and why.

    """
    what = _FAILED_TRANSITIONS.get((start_state, goal_state),
                                   f'went from {start_state} to {goal_state}')
    return f'{name} {what}: {error or "see its log above"}; stopping the launch'


def exit_is_failure(returncode: int | None, *, shutting_down: bool) -> bool:
    """Tell whether a process's exit code is an error that must fail the launch.

    0 never is. While the launch shuts down, death by the SIGINT or SIGTERM it sent is
    not either (a process still starting has no handler for them yet); SIGKILL, sent
    when a process outlived its ``sigterm_timeout``, is.
    """
    if returncode == 0:
        return False
    return not (shutting_down and returncode in (-signal.SIGINT, -signal.SIGTERM))


def exit_failure(name: str, returncode: int | None, error: str | None) -> str:
    """The line that stops the launch when one of its processes exited with an error."""
    return (f'{name} exited with code {returncode}: {error or "see its log above"}; '
            'stopping the launch')


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
    if parse_flag(_value(values, 'composed', RECORD_ARGUMENTS), 'composed'):
        cmd = [python, '-m', 'sensr_bridge.launching.plans', '--namespace', common.namespace]
        for role, overrides in (('bridge', common.bridge), ('recorder', recorder)):
            for name, value in {**overrides, 'autostart': True}.items():
                cmd += [f'--{role}', f'{name}={json.dumps(value)}']
        if common.params_file:
            cmd += ['--ros-args', '--params-file', common.params_file]
        composed = Process('sensr_record', tuple(cmd), RECORDER_SIGTERM_TIMEOUT_S)
        return Plan(common.namespace, dds, simulator=common.simulator,
                    composed=composed, rviz_config=rviz_config, notes=notes,
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

    The bridge is a plain node that configures and activates itself.

    Args:
        values: Launch argument values by name (missing ones take their default).
        python: Interpreter of the simulator process.
        have_rviz: Whether rviz2 is installed (None: :func:`rviz_installed`, asked
            only when RViz is wanted).

    Returns:
        What to start.

    Raises:
        ConfigError: An argument has an invalid value or names a missing file, or
            rviz:=true without rviz2.

    """
    common = _common(values, BRIDGE_ARGUMENTS, python)
    bridge = RosNode(BRIDGE_EXECUTABLE, BRIDGE_NAME,
                     _parameters(common.params_file, {**common.bridge, 'autostart': True}),
                     BRIDGE_SIGTERM_TIMEOUT_S)
    rviz_config, rviz_notes = _rviz(values, BRIDGE_ARGUMENTS, have_rviz)
    return Plan(common.namespace, environment.dds_environment(), simulator=common.simulator,
                bridge=bridge, rviz_config=rviz_config, notes=common.notes + rviz_notes,
                guard=orphan_guard())


def _assignment(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition('=')
    try:
        if not sep or not name:
            raise ValueError(text)
        return name, json.loads(value)
    except ValueError as exc:
        msg = f'expected NAME=JSON, not {text!r}'
        raise argparse.ArgumentTypeError(msg) from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m sensr_bridge.launching.plans',
        description='Bridge and recorder nodes in one process (record.launch.py '
                    'composed:=true). ROS arguments (--params-file ...) follow --ros-args.')
    parser.add_argument('--namespace', default=DEFAULT_NAMESPACE, help='node namespace')
    parser.add_argument('--bridge', type=_assignment, action='append', default=[],
                        metavar='NAME=JSON', help='bridge parameter override (repeatable)')
    parser.add_argument('--recorder', type=_assignment, action='append', default=[],
                        metavar='NAME=JSON', help='recorder parameter override (repeatable)')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the bridge and the recorder in one process until SIGINT/SIGTERM.

    Overrides win over ``--ros-args`` parameters (params files), which win over the
    nodes' defaults. Nodes start with ``autostart`` unless overridden: configure both,
    then activate the recorder, then the bridge.

    Args:
        argv: Command line (default: ``sys.argv[1:]``).

    Returns:
        Process exit code (see :func:`sensr_bridge.nodes.runtime.run_nodes`).

    """
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    args = _parser().parse_args(argv[:split])

    from rclpy.parameter import Parameter

    from sensr_bridge.nodes.bridge import BridgeNode
    from sensr_bridge.nodes.recorder import RecorderNode
    from sensr_bridge.nodes.runtime import run_nodes

    bridge = [Parameter(name, value=value) for name, value in args.bridge]
    recorder = [Parameter(name, value=value) for name, value in args.recorder]
    return run_nodes(
        [('recorder', lambda: RecorderNode(RECORDER_NAME, namespace=args.namespace,
                                           parameter_overrides=recorder)),
         ('bridge', lambda: BridgeNode(BRIDGE_NAME, namespace=args.namespace,
                                       parameter_overrides=bridge))],
        ['sensr_record', *argv[split:]])
