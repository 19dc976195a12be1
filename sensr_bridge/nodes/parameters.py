# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Declaring a node's parameters: descriptors, ranges, and one clear line for a wrong value.

rclpy checks a parameter given on the command line (``-p output_port:=abc``) against the
type of its default when it is declared, and raises ``InvalidParameterTypeException``
out of the node's constructor: a 23-line traceback that names neither the value nor
what was expected in plain words. :func:`declare_parameters` declares a node's
``PARAMETERS`` table (read-only unless listed as writable, with the ranges of
:data:`RANGES`) and turns a wrong type or an out-of-range value into a
:class:`ParameterError`, one line naming the parameter, the expected type and the value;
:func:`sensr_bridge.nodes.runtime.run_nodes` logs that line and exits with code 1.

``sensr_version:=3.0`` is a number to the ROS argument parser; the versions SENSR has
are accepted as numbers too (:data:`NUMERIC_ALIASES`). Likewise ``stall_timeout:=5`` is
an integer to it: a whole number is accepted where a float is expected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.parameter import Parameter

from sensr_bridge.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from rclpy.node import Node

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
PORT_MAX = 65535
DAY_S = 86400.0

RANGES: dict[str, tuple[float, float]] = {
    # bridge
    'output_port': (0, PORT_MAX),
    'point_port': (0, PORT_MAX),
    'qos_depth': (1, INT32_MAX),
    'decode_workers': (0, 1024),
    'max_pending_frames': (1, INT32_MAX),
    'max_frame_bytes': (1024, INT64_MAX),
    'output_queue_size': (1, INT32_MAX),
    'max_reconnects': (0, INT64_MAX),
    'ping_interval': (0.0, DAY_S),
    'ping_timeout': (0.0, DAY_S),
    'stall_timeout': (0.0, DAY_S),
    'reconnect_backoff_initial': (0.01, DAY_S),
    'reconnect_backoff_max': (0.01, DAY_S),
    # recorder
    'max_bagfile_size': (0, INT64_MAX),
    'max_bagfile_duration': (0, INT64_MAX),
    'metadata_version': (8, 9),
    'discovery_period': (0.01, DAY_S),
    'subscription_depth': (1, INT32_MAX),
    'max_queue_bytes': (1, INT64_MAX),
    'batch_max_messages': (1, INT32_MAX),
    'batch_max_bytes': (1, INT64_MAX),
    'batch_min_bytes': (1, INT64_MAX),
    'batch_max_delay': (0.0, DAY_S),
    'clip_before': (0.0, DAY_S),
    'clip_after': (0.0, DAY_S),
    'clip_buffer_bytes': (1, INT64_MAX),
    # both
    'diagnostics_period': (0.01, DAY_S),
    'stats_log_period': (0.0, DAY_S),
    'drain_timeout': (0.0, DAY_S),
}
"""Inclusive bounds of the numeric parameters of both nodes, by name."""

NUMERIC_ALIASES: dict[str, dict[float, str]] = {
    'sensr_version': {3.0: '3.0', 3.1: '3.1'},
}
"""String parameters that also accept these numbers (``-p sensr_version:=3.0``)."""

_TYPE_NAMES = {
    Parameter.Type.BOOL: 'a boolean (true or false)',
    Parameter.Type.INTEGER: 'an integer',
    Parameter.Type.DOUBLE: 'a number with a decimal point',
    Parameter.Type.STRING: 'a string',
    Parameter.Type.BYTE_ARRAY: 'a list of bytes',
    Parameter.Type.BOOL_ARRAY: 'a list of booleans',
    Parameter.Type.INTEGER_ARRAY: 'a list of integers',
    Parameter.Type.DOUBLE_ARRAY: 'a list of numbers',
    Parameter.Type.STRING_ARRAY: 'a list of strings',
}


class ParameterError(ConfigError):
    """A parameter was given a value of the wrong type or out of its range.

    Attributes:
        parameter: The parameter's name.
        logger_name: Name of the logger of the node that declared it.

    """

    def __init__(self, message: str, parameter: str, logger_name: str) -> None:
        """Initialize with the one-line message, the parameter and the node's logger."""
        super().__init__(message)
        self.parameter = parameter
        self.logger_name = logger_name


def descriptor(name: str, default: Any, description: str, *,
               read_only: bool = True) -> ParameterDescriptor:
    """Return the descriptor of a parameter: description, read-only flag and range.

    Args:
        name: Parameter name (its range is looked up in :data:`RANGES`).
        default: Default value; its type is the parameter's type.
        description: What the parameter does.
        read_only: Whether it may not be changed after start.

    Returns:
        The descriptor.

    """
    result = ParameterDescriptor(description=description, read_only=read_only)
    bounds = RANGES.get(name)
    if bounds is not None:
        low, high = bounds
        if isinstance(default, bool):
            pass
        elif isinstance(default, int):
            result.integer_range = [IntegerRange(from_value=int(low), to_value=int(high))]
        elif isinstance(default, float):
            result.floating_point_range = [FloatingPointRange(from_value=float(low),
                                                              to_value=float(high))]
    return result


def declare_parameters(node: Node, table: Sequence[tuple[str, Any, str]], *,
                       writable: Collection[str] = ()) -> None:
    """Declare every ``(name, default, description)`` of ``table`` on ``node``.

    Args:
        node: The node, inside its constructor.
        table: The node's parameters.
        writable: Names of the parameters that may be changed while the node runs; the
            others are read-only.

    Raises:
        ParameterError: A value given for a parameter (command line, parameter file or
            overrides) has the wrong type or is out of range. The node is destroyed.

    """
    for name, default, description in table:
        desc = descriptor(name, default, description, read_only=name not in writable)
        try:
            node.declare_parameter(name, default, desc)
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            error: Exception = exc
            given = _given_value(node, name)
            accepted = _coerced(name, default, given)
            if accepted is not None:
                try:
                    node.declare_parameter(name, accepted, desc, ignore_override=True)
                    continue
                except InvalidParameterValueException as out_of_range:
                    given, error = accepted, out_of_range
            message = _explain(name, default, given, error)
            logger = node.get_logger().name
            node.destroy_node()
            raise ParameterError(message, name, logger) from None


def _given_value(node: Node, name: str) -> Any:
    """Return the value the node was given for ``name`` (declared, read, undeclared)."""
    node.declare_parameter(name, None, ParameterDescriptor(dynamic_typing=True))
    try:
        return node.get_parameter(name).value
    finally:
        node.undeclare_parameter(name)


def _coerced(name: str, default: Any, value: Any) -> str | float | None:
    """Return what a number given for ``name`` stands for, or None if nothing.

    The string of :data:`NUMERIC_ALIASES`, or the float of an integer given where a float
    is expected.
    """
    if type(value) is int and type(default) is float:
        return float(value)
    if type(value) is not float:
        return None
    return NUMERIC_ALIASES.get(name, {}).get(value)


def _explain(name: str, default: Any, given: Any, exc: Exception) -> str:
    """Say in one line what is wrong with ``given``: its type or its range."""
    expected = Parameter.Type.from_parameter_value(default)
    got = Parameter.Type.from_parameter_value(given)
    if got != expected:
        also = ''
        if name in NUMERIC_ALIASES:
            also = ' (or one of the numbers ' + ', '.join(
                repr(v) for v in NUMERIC_ALIASES[name]) + ')'
        return (f'parameter {name}: expected {_TYPE_NAMES.get(expected, expected.name)}'
                f'{also}, got {given!r} ({_TYPE_NAMES.get(got, got.name)})')
    if name not in RANGES:
        return f'parameter {name}: {given!r} was rejected: {exc}'
    low, high = RANGES[name]
    bounds = f'>= {low!r}' if high in (INT32_MAX, INT64_MAX) else f'{low!r}..{high!r}'
    return f'parameter {name}: {given!r} is out of range (expected {bounds})'
