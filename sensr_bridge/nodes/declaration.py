# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Declaring a node's parameters: descriptors, ranges, and one clear line for a wrong value.

rclpy checks a parameter given on the command line (``-p output_port:=abc``) against the
type of its default when it is declared, and raises ``InvalidParameterTypeException``
out of the node's constructor: a 23-line traceback that names neither the value nor
what was expected in plain words. :func:`declare_parameters` declares a node's table of
:mod:`sensr_bridge.nodes.params` (read-only unless writable, with their ranges) and turns
a wrong type or an out-of-range value into a :class:`ParameterError`, one line naming
the parameter, the expected type and the value; :func:`sensr_bridge.nodes.runtime.run_nodes`
logs that line and exits with code 1.

``sensr_version:=3.0`` is a number to the ROS argument parser; a string parameter whose
choices read as numbers accepts those numbers too. Likewise ``stall_timeout:=5`` is an
integer to it: a whole number is accepted where a float is expected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.parameter import Parameter

from sensr_bridge.errors import ConfigError
from sensr_bridge.nodes.params import INT32_MAX, INT64_MAX

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rclpy.node import Node

    from sensr_bridge.nodes.params import Param

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


def descriptor(param: Param) -> ParameterDescriptor:
    """Return the descriptor of a parameter: description, read-only flag and range.

    Args:
        param: The parameter.

    Returns:
        The descriptor.

    """
    result = ParameterDescriptor(description=param.description, read_only=not param.writable)
    if param.range is not None:
        low, high = param.range
        if isinstance(param.default, bool):
            pass
        elif isinstance(param.default, int):
            result.integer_range = [IntegerRange(from_value=int(low), to_value=int(high))]
        elif isinstance(param.default, float):
            result.floating_point_range = [FloatingPointRange(from_value=float(low),
                                                              to_value=float(high))]
    return result


def declare_parameters(node: Node, table: Sequence[Param]) -> None:
    """Declare every parameter of ``table`` on ``node``.

    Args:
        node: The node, inside its constructor.
        table: The node's parameters (:mod:`sensr_bridge.nodes.params`).

    Raises:
        ParameterError: A value given for a parameter (command line, parameter file or
            overrides) has the wrong type or is out of range. The node is destroyed.

    """
    for param in table:
        name, default = param.name, param.default
        desc = descriptor(param)
        try:
            node.declare_parameter(name, default, desc)
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            error: Exception = exc
            given = _given_value(node, name)
            accepted = _coerced(param, given)
            if accepted is not None:
                try:
                    node.declare_parameter(name, accepted, desc, ignore_override=True)
                    continue
                except InvalidParameterValueException as out_of_range:
                    given, error = accepted, out_of_range
            message = _explain(param, given, error)
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


def _numeric_choices(param: Param) -> dict[float, str]:
    """The numbers standing for choices that read as numbers (``sensr_version:=3.0``)."""
    numbers = {}
    for choice in param.choices:
        try:
            numbers[float(choice)] = choice
        except ValueError:
            continue
    return numbers


def _coerced(param: Param, value: Any) -> str | float | None:
    """Return what a number given for ``param`` stands for, or None if nothing.

    The choice it reads as, or the float of an integer given where a float is expected.
    """
    if type(value) is int and type(param.default) is float:
        return float(value)
    if type(value) is not float:
        return None
    return _numeric_choices(param).get(value)


def _explain(param: Param, given: Any, exc: Exception) -> str:
    """Say in one line what is wrong with ``given``: its type or its range."""
    name = param.name
    expected = Parameter.Type.from_parameter_value(param.default)
    got = Parameter.Type.from_parameter_value(given)
    if got != expected:
        also = ''
        numbers = _numeric_choices(param)
        if numbers:
            also = ' (or one of the numbers ' + ', '.join(repr(v) for v in numbers) + ')'
        return (f'parameter {name}: expected {_TYPE_NAMES.get(expected, expected.name)}'
                f'{also}, got {given!r} ({_TYPE_NAMES.get(got, got.name)})')
    if param.range is None:
        return f'parameter {name}: {given!r} was rejected: {exc}'
    low, high = param.range
    bounds = f'>= {low!r}' if high in (INT32_MAX, INT64_MAX) else f'{low!r}..{high!r}'
    return f'parameter {name}: {given!r} is out of range (expected {bounds})'
