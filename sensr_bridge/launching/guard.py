# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""What keeps a launch from leaving processes behind or failing without a reason.

:func:`orphan_guard` starts every process of a launch so that it stops when the launch
process dies; :class:`RecorderWait` tells ``record.launch.py`` when to activate the
bridge; :class:`ProcessErrors` and the failure lines name the node and its error when a
transition fails or a process exits with an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import os
import re
import signal
import sys

from sensr_bridge.launching.programs import (
    BRIDGE_EXECUTABLE,
    PACKAGE,
    RECORDER_EXECUTABLE,
    SIMULATOR_MODULE,
)
from sensr_bridge.nodes import composed

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
         [['-m', SIMULATOR_MODULE], ['-m', composed.MODULE]])
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
