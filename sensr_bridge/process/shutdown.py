# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""SIGINT and SIGTERM from a program's first instant: the process-wide shutdown request.

Importing rclpy, numpy and protobuf takes 0.4-2 s, and the node programs then restart
themselves once (:func:`sensr_bridge.process.environment.prepare`). A signal that
came before :func:`sensr_bridge.nodes.runtime.run_nodes` installed its handler met Python's
default one: a ``KeyboardInterrupt`` traceback from the middle of an import and exit code
-2 (SIGTERM: killed on the spot, a bag never closed). So this module imports the
standard library only, and the programs' console scripts (``setup.py``) and their
``python -m sensr_bridge.<module>`` forms start in :func:`run`:

1. :func:`install` routes SIGINT and SIGTERM to the process-wide :class:`ShutdownRequest`,
   which only sets an event (and runs its callbacks);
2. the malloc restart runs with both signals blocked (:func:`held_signals`): the signal
   mask and pending signals survive ``execve``, handlers do not, so a signal that came
   meanwhile waits for the restarted program's :func:`install`;
3. the program's module is imported and its ``main`` runs, each only if no shutdown was
   requested yet: a signal before the nodes exist ends the program with exit code 0
   without creating them. ``run_nodes`` (and the simulator) use the same request, so no
   signal is missed from here on.

What runs before the first line of this module is Python's own start-up and the console
script: a signal there (the first 20-100 ms, up to 0.5 s under load where the script
looks its entry point up in the package metadata, as colcon's do) meets Python's
defaults, except under the launch files' orphan guard
(:func:`sensr_bridge.launching.guard.orphan_guard`), which starts these programs with
both signals blocked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
import importlib
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sensr_bridge.process.environment import Role

SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that request a clean shutdown."""

SIGNAL_POLL_S = 0.2
"""Longest wait of a program's main thread in one call. Python runs signal handlers in
the main thread only, between bytecodes; a signal the kernel hands to another thread
(DDS, BLAS and executor threads do not block signals) does not interrupt a blocking wait,
so a wait without a timeout missed such a Ctrl+C for good."""


class ShutdownRequest:
    """An event set by SIGINT/SIGTERM (or by code), remembering which signal came."""

    def __init__(self) -> None:
        """Create an unset request."""
        self.event = threading.Event()
        self.signal_name = ''
        self._callbacks: list[Callable[[], object]] = []

    def install(self) -> dict[int, Any]:
        """Route SIGINT and SIGTERM to this request and unblock them (main thread only).

        Unblocking delivers a signal held pending by :func:`held_signals` across a restart.

        Returns:
            The previous handlers, by signal number.

        """
        previous = {sig: signal.signal(sig, self._handler) for sig in SIGNALS}
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        return previous

    def _handler(self, signum: int, _frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name
        self.set()

    def set(self) -> None:
        """Request shutdown from code."""
        self.event.set()
        for callback in list(self._callbacks):
            callback()

    def add_callback(self, callback: Callable[[], object]) -> None:
        """Also call ``callback`` when shutdown is requested (in the signal handler).

        A request made before is not replayed: check :attr:`event` after adding.
        """
        self._callbacks.append(callback)


_request: ShutdownRequest | None = None


def installed() -> ShutdownRequest | None:
    """Return the process-wide request once :func:`install` ran, else None."""
    return _request


def install() -> ShutdownRequest:
    """Create the process-wide request (once) and route SIGINT/SIGTERM to it (main thread).

    Returns:
        The process-wide request.

    """
    global _request  # noqa: PLW0603 (one request per process, by design)
    if _request is None:
        _request = ShutdownRequest()
    _request.install()
    return _request


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread while the block runs.

    A signal that comes meanwhile stays pending: delivered when the block ends, or,
    across an ``exec`` or in a child started meanwhile (both inherit the mask), when that
    program's :func:`install` unblocks it. Only for programs that start in :func:`run`.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def run(module: str, role: Role, function: str = 'main') -> int:
    """Run a program of the package with SIGINT/SIGTERM handled from its first instant.

    Args:
        module: The program's module, imported only after the handlers are in place.
        role: What the program does with clouds: its environment
            (:func:`sensr_bridge.process.environment.prepare`, which restarts the
            process once with tuned malloc, except for ``plain``).
        function: Its entry function, called without arguments.

    Returns:
        The function's exit code; 0 when shutdown was requested before it started.

    """
    request = install()
    if not request.event.is_set():
        from sensr_bridge.process import environment

        with held_signals():
            if not request.event.is_set():
                environment.prepare(role)
    if request.event.is_set():
        return 0
    main = getattr(importlib.import_module(module), function)
    if request.event.is_set():
        return 0
    return main()


# Console scripts (setup.py) and what ``python -m sensr_bridge.<module>`` runs.

def bridge_node() -> int:
    """``bridge_node``: :func:`sensr_bridge.nodes.bridge.main`."""
    return run('sensr_bridge.nodes.bridge', 'publisher')


def recorder_node() -> int:
    """``recorder_node``: :func:`sensr_bridge.nodes.recorder.main`."""
    return run('sensr_bridge.nodes.recorder', 'receiver')


def record() -> int:
    """``record``: :func:`sensr_bridge.cli.record.main`."""
    return run('sensr_bridge.cli.record', 'publisher')


def composed() -> int:
    """``record.launch.py composed:=true``: :func:`sensr_bridge.nodes.composed.main`."""
    return run('sensr_bridge.nodes.composed', 'publisher')


def simulator() -> int:
    """``simulator``: :func:`sensr_bridge.sim.cli.main` (environment ``plain``)."""
    return run('sensr_bridge.sim.cli', 'plain')
