# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The base class of this package's nodes: no exception of a callback vanishes.

rclpy turns an exception raised in a lifecycle transition callback into an ERROR
result without a word (``LifecycleNode.__execute_callback``: "TODO: log sth here"), so
a recorder whose activation failed just fell back to unconfigured, and launch reported
only "Failed to make transition". An exception in a timer or subscription callback
ends up in the executor's future, from where it kills the spinning thread.

:class:`GuardedLifecycleNode` wraps every transition callback a subclass defines
(``on_configure`` ... ``on_error``) and every callback it hands to ``create_timer``,
``create_subscription`` and ``create_service``: an exception is logged in one line
with its message (the traceback at debug level), counted in ``callback_errors`` by
callback name, and for a transition answered with ERROR, as rclpy would have.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
import functools
import traceback
from typing import TYPE_CHECKING, Any, TypeVar

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn

from sensr_bridge.nodes import declaration, diagnostics

if TYPE_CHECKING:
    from sensr_bridge.nodes.params import Param

TRANSITION_CALLBACKS = ('on_configure', 'on_activate', 'on_deactivate', 'on_cleanup',
                        'on_shutdown', 'on_error')

_F = TypeVar('_F', bound=Callable[..., Any])


def _guard_transition(name: str, method: Callable[..., TransitionCallbackReturn]
                      ) -> Callable[..., TransitionCallbackReturn]:
    @functools.wraps(method)
    def guarded(self: GuardedLifecycleNode, state: State) -> TransitionCallbackReturn:
        try:
            return method(self, state)
        except Exception as exc:
            self.callback_failed(name, exc)
            return TransitionCallbackReturn.ERROR

    return guarded


class GuardedLifecycleNode(LifecycleNode):
    """A LifecycleNode whose callbacks log and count their exceptions.

    Attributes:
        callback_errors: Exceptions caught, by callback name ('on_activate',
            'timer _publish_diagnostics', ...).

    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap the transition callbacks the subclass defines."""
        super().__init_subclass__(**kwargs)
        for name in TRANSITION_CALLBACKS:
            method = cls.__dict__.get(name)
            if method is not None:
                setattr(cls, name, _guard_transition(name, method))

    def __init__(self, node_name: str, parameter_table: Sequence[Param],
                 **kwargs: Any) -> None:
        """Create the node (``LifecycleNode`` arguments) and declare its parameters.

        Args:
            node_name: Node name.
            parameter_table: The node's parameters (:mod:`sensr_bridge.nodes.params`).
            **kwargs: ``LifecycleNode`` arguments.

        Raises:
            ParameterError: A parameter has the wrong type or is out of range; the node
                is destroyed first, so it leaves nothing in the ROS graph.

        """
        self.callback_errors: Counter[str] = Counter()
        super().__init__(node_name, **kwargs)
        try:
            declaration.declare_parameters(self, parameter_table)
        except BaseException:
            self.destroy_node()
            raise

    def destroy_node(self) -> None:
        """Destroy the node and its lifecycle state machine.

        rclpy's ``LifecycleNode.destroy_node`` leaves the state machine, which keeps the
        node and its ``change_state`` service in the ROS graph until the Python object is
        collected, even past the context's shutdown. A later ``ros2 launch`` in the same
        ROS domain then sent its transition requests to that ghost too and waited for an
        answer that never came (CI: every separate-process start stalled).
        """
        super().destroy_node()
        machine = getattr(self, '_state_machine', None)
        if machine is not None and hasattr(machine, 'destroy_when_not_in_use'):
            machine.destroy_when_not_in_use()

    def callback_failed(self, name: str, exc: BaseException) -> None:
        """Log and count an exception of the callback ``name``.

        Args:
            name: The callback, as it is counted and logged.
            exc: What it raised.

        """
        self.callback_errors[name] += 1
        logger = self.get_logger()
        logger.error(f'{name} failed: {type(exc).__name__}: {exc}')
        logger.debug(''.join(traceback.format_exception(exc)))

    def callbacks_status(self, hardware_id: str) -> DiagnosticStatus:
        """Return the ``/diagnostics`` status of the exceptions caught (ERROR when any)."""
        errors = sum(self.callback_errors.values())
        return diagnostics.status(
            f'{self.get_name()}: callbacks', hardware_id,
            diagnostics.ERROR if errors else diagnostics.OK,
            f'{errors} callback exceptions' if errors else 'ok',
            dict(sorted(self.callback_errors.items())))

    def guard(self, name: str, callback: _F, *, result_arg: int | None = None) -> _F:
        """Return ``callback`` wrapped so that its exceptions are logged and counted.

        The wrapper keeps the signature (rclpy inspects it to pass message or timer
        info). When the callback raised, it returns None, or its positional argument
        ``result_arg`` (a service's response, which must always be sent).
        """
        @functools.wraps(callback)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except Exception as exc:
                self.callback_failed(name, exc)
                return None if result_arg is None else args[result_arg]

        return guarded  # type: ignore[return-value]

    def create_timer(self, timer_period_sec: float, callback: Callable[..., Any],
                     *args: Any, **kwargs: Any) -> Any:
        """Create a timer whose callback is guarded (see :meth:`guard`)."""
        name = f'timer {getattr(callback, "__name__", callback)}'
        return super().create_timer(timer_period_sec, self.guard(name, callback),
                                    *args, **kwargs)

    def create_subscription(self, msg_type: Any, topic: str, callback: Callable[..., Any],
                            *args: Any, **kwargs: Any) -> Any:
        """Create a subscription whose callback is guarded (see :meth:`guard`)."""
        return super().create_subscription(
            msg_type, topic, self.guard(f'subscription {topic}', callback), *args, **kwargs)

    def create_service(self, srv_type: Any, srv_name: str, callback: Callable[..., Any],
                       *args: Any, **kwargs: Any) -> Any:
        """Create a service whose callback is guarded (see :meth:`guard`)."""
        return super().create_service(
            srv_type, srv_name, self.guard(f'service {srv_name}', callback, result_arg=1),
            *args, **kwargs)
