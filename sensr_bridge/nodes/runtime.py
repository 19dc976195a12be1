# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Running lifecycle nodes in one process, with a shutdown that loses nothing.

rclpy's own signal handler shuts the context down at once, after which nothing can be
published and ``Context.on_shutdown`` callbacks never run. So rclpy is initialised
without signal handlers, and SIGINT/SIGTERM only set an event (the process-wide
:class:`~sensr_bridge.process.shutdown.ShutdownRequest`, in place from the program's first
instant): the nodes are then shut down in reverse start order (the bridge stops taking
frames and publishes what it has, then the recorder drains, commits and closes its bag),
and only after that is the rclpy context shut down. Used by every entry point:
``bridge_node``, ``recorder_node``, ``record``, and the launch files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import contextlib
import sys
import threading
import time

import rclpy
from rclpy.exceptions import InvalidHandle
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode
from rclpy.logging import get_logger
from rclpy.signals import SignalHandlerOptions

from sensr_bridge.errors import ConfigError
from sensr_bridge.process import malloc, shm
from sensr_bridge.process.shutdown import SIGNAL_POLL_S, ShutdownRequest, installed

NodeSpec = tuple[str, Callable[..., LifecycleNode]]
"""(role, factory) of a node; the factory is called with ``context=`` only."""


def _autostart(nodes: list[LifecycleNode]) -> bool:
    """Configure every self-starting node, then activate them, in order.

    Configuring all first means the bridge's publishers exist when the recorder
    activates and subscribes, so the bag has the first frames too.
    """
    starting = [n for n in nodes
                if n.has_parameter('autostart') and n.get_parameter('autostart').value]
    for node in starting:
        node.trigger_configure()
        if _state(node) != 'inactive':
            node.get_logger().error('configure failed; not starting')
            return False
    for node in starting:
        node.trigger_activate()
        if _state(node) != 'active':
            node.get_logger().error('activate failed; not starting')
            return False
    return True


def _state(node: LifecycleNode) -> str:
    return node._state_machine.current_state[1]


def run_nodes(specs: Sequence[NodeSpec], args: list[str] | None = None, *,
              duration: float | None = None, request: ShutdownRequest | None = None,
              on_started: Callable[[list[LifecycleNode]], None] | None = None,
              on_progress: Callable[[list[LifecycleNode]], None] | None = None,
              progress_period: float = 1.0) -> int:
    """Create, start and run nodes in one process until shutdown is requested.

    Args:
        specs: The nodes, in start order (the recorder before the bridge, so the bag
            misses nothing at the start); they are shut down in reverse order.
        args: Command line (ROS arguments are honoured: ``--ros-args -p ...``).
        duration: Stop after this many seconds (None: until SIGINT/SIGTERM).
        request: Shutdown request to use (otherwise the process-wide one of
            :func:`sensr_bridge.process.shutdown.run`, else a new one), bound to SIGINT/SIGTERM.
        on_started: Called with the nodes once they are started (not when shutdown was
            requested before all of them existed).
        on_progress: Called with the nodes every ``progress_period`` seconds.
        progress_period: Seconds between ``on_progress`` calls.

    Returns:
        Process exit code: 0 on a clean run, 1 if a node failed to start (a
        :class:`~sensr_bridge.errors.ConfigError` raised while creating a node, such as a
        parameter of the wrong type, is logged in one line). 0 at once, without rclpy,
        when shutdown was requested before (a signal while the program started); a node
        not created yet when it comes is not created, nor started.

    """
    argv = sys.argv if args is None else args
    request = request or installed() or ShutdownRequest()
    if threading.current_thread() is threading.main_thread():
        request.install()
    if request.event.is_set():
        return 0
    malloc.keep_freed_buffers()
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    _remove_stale_segments()
    nodes: list[LifecycleNode] = []
    executor = MultiThreadedExecutor()
    stop_spinning = threading.Event()
    spinner = threading.Thread(target=spin_until, args=(executor, stop_spinning),
                               name='executor', daemon=True)
    code = 0
    try:
        for _role, factory in specs:
            if request.event.is_set():
                break
            try:
                node = factory()
            except ConfigError as exc:
                # A parameter of the wrong type or out of range: one line, no traceback.
                get_logger(getattr(exc, 'logger_name', '') or 'sensr_bridge').error(str(exc))
                code = 1
                request.set()
                break
            nodes.append(node)
            executor.add_node(node)
        spinner.start()
        if code == 0 and not request.event.is_set() and not _autostart(nodes):
            code = 1
            request.set()
        if on_started is not None and code == 0 and len(nodes) == len(specs):
            on_started(nodes)
        deadline = None if duration is None else time.monotonic() + duration
        next_progress = time.monotonic() + progress_period
        while not request.event.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            wait = SIGNAL_POLL_S  # never unbounded: see shutdown.SIGNAL_POLL_S
            if deadline is not None:
                wait = min(wait, deadline - now)
            if on_progress is not None:
                wait = min(wait, max(0.0, next_progress - now))
            if request.event.wait(wait) or on_progress is None:
                continue
            if time.monotonic() >= next_progress:
                next_progress += progress_period
                on_progress(nodes)
    finally:
        for node in reversed(nodes):
            with contextlib.suppress(Exception):
                node.trigger_shutdown()
            _log_final_counters(node)
        # The spinner leaves the executor before it and the context are shut down (see
        # spin_until; a wait set built on a shut-down context raises RCLError).
        stop_spinning.set()
        executor.wake()  # not yet shut down, so its guard condition still exists
        if spinner.is_alive():
            spinner.join(timeout=2.0)
        executor.shutdown(timeout_sec=1.0)
        for node in nodes:
            with contextlib.suppress(Exception):
                node.destroy_node()
        rclpy.try_shutdown()
    return code


def _remove_stale_segments() -> None:
    """Free the shared-memory segments of DDS participants whose process died.

    A participant killed with SIGKILL leaves its 268 MB segment in /dev/shm and Fast DDS
    never reclaims it. Only segments whose owner holds no lock and that are older than
    :data:`sensr_bridge.process.shm.MIN_AGE_S` go (``shm_clean``'s test), so live participants,
    this process's own included, are safe.
    """
    removed = shm.remove_stale_segments()
    if removed:
        get_logger('sensr_bridge').info(
            f'freed {shm.describe(removed)} of RAM in {shm.SHM_DIR}: shared-memory segments '
            'of DDS participants whose process died (' + ', '.join(
                s.path.name for s in removed) + ')')


def _log_final_counters(node: LifecycleNode) -> None:
    """Log a node's counters (the bridge's clouds received/published...) once it stopped."""
    counters = getattr(node, 'counters', None)
    if counters is None:
        return
    counts = counters.snapshot()
    node.get_logger().info('final counters: ' + ' '.join(
        f'{key}={counts[key]}' for key in sorted(counts)))


def spin_until(executor: MultiThreadedExecutor, stop: threading.Event) -> None:
    """Spin ``executor`` until ``stop`` is set or its context is shut down.

    Spins in slices of 0.1 s instead of ``executor.spin()``, so that stopping does not
    depend on ``executor.shutdown()`` waking the wait: rclpy destroys the executor's
    guard condition there, and a wait set being built at that moment leaves it out and
    blocks until some other entity wakes it (seconds, or never). Set ``stop``, join the
    spinning thread, then shut the executor down.

    An exception a callback raised (the nodes of this package guard their own, see
    :mod:`sensr_bridge.nodes.lifecycle`) is logged and spinning goes on.

    rclpy also lists a node's waitables (the QoS event handlers of publishers and
    subscriptions) before entering them; an entity destroyed on another thread in
    between (the nodes' transitions run on the main thread) makes the wait-set
    construction raise InvalidHandle. The next wait set no longer holds the destroyed
    entity, so spinning simply goes on.

    Args:
        executor: The executor.
        stop: Set to stop spinning.

    """
    while not stop.is_set() and executor.context.ok():
        try:
            executor.spin_once(timeout_sec=0.1)
        except (ExternalShutdownException, KeyboardInterrupt):
            return
        except InvalidHandle:
            continue
        except Exception as exc:
            # A callback of a node that is not a GuardedLifecycleNode raised: say so and
            # keep spinning (the exception would otherwise end this thread silently).
            get_logger('sensr_bridge').error(
                f'executor callback failed: {type(exc).__name__}: {exc}')
