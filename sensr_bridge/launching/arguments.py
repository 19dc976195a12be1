# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The launch files' arguments and the checks of their values.

A node parameter with ``launch`` in its table (:mod:`sensr_bridge.nodes.params`) is an
argument of the same name, default '' ("not set": the node's default, or params_file's
value, stays), with the parameter's choices; :func:`node_overrides` turns the arguments
that are set into parameter values of the parameter's type, checked against its range,
choices and list syntax. The arguments of the launch alone (namespace, simulate, ...)
are declared here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
import math
from pathlib import Path
import re
from typing import Any

from sensr_bridge.errors import ConfigError
from sensr_bridge.nodes.params import (
    BRIDGE,
    DEFAULT_NAMESPACE,
    INT32_MAX,
    INT64_MAX,
    RECORDER,
    Param,
    quoted_choices,
)

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


def parameter_arguments(table: Iterable[Param]) -> tuple[Argument, ...]:
    """Return the launch arguments of a node's parameters (those with ``launch``)."""
    arguments = []
    for param in table:
        if not param.launch:
            continue
        listed = ', space-separated' if isinstance(param.default, list) else ''
        description = (f'{param.short_help} (unset: params_file, else '
                       f'{param.default_text}{listed})')
        arguments.append(Argument(param.name, '', description,
                                  ('', *param.choices) if param.choices else ()))
    return tuple(arguments)


_LAUNCH = (
    Argument('params_file', '', 'ROS parameter YAML given to every node (see '
             'config/bridge.yaml, config/recorder.yaml); launch arguments that are set win'),
    Argument('namespace', DEFAULT_NAMESPACE, 'namespace of the nodes and their topics'),
    Argument('simulate', 'false', 'start the built-in SENSR simulator on loopback and '
             'connect to it (host 127.0.0.1, whatever host says)'),
    Argument('sim_points', '921512', 'simulator: points per frame'),
    Argument('sim_rate', '10.0', 'simulator: frames per second'),
)

_RVIZ_HELP = ('start RViz with config/sensr.rviz: true, false, or auto (where rviz2 is '
              'installed; true without rviz2 fails before anything starts)')

RECORD_ARGUMENTS: tuple[Argument, ...] = (
    *parameter_arguments(BRIDGE),
    *_LAUNCH,
    *parameter_arguments(RECORDER),
    Argument('composed', 'false', 'bridge and recorder in one process (no lifecycle '
             'events: the process configures and activates them in order)'),
    Argument('rviz', 'false', _RVIZ_HELP),
)
"""Arguments of ``record.launch.py``."""

BRIDGE_ARGUMENTS: tuple[Argument, ...] = (
    *parameter_arguments(BRIDGE),
    *_LAUNCH,
    Argument('rviz', 'auto', _RVIZ_HELP),
)
"""Arguments of ``bridge.launch.py``."""


def value(values: Mapping[str, str], name: str, arguments: Sequence[Argument]) -> str:
    """Return the value of argument ``name``: given, else its default; stripped."""
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


def _bounds(low: float, high: float) -> str:
    return f'>= {low!r}' if high in (INT32_MAX, INT64_MAX, math.inf) else f'{low!r}..{high!r}'


def parse_int(text: str, name: str, low: float, high: float = math.inf) -> int:
    """Read an integer launch argument in ``low..high``.

    Raises:
        ConfigError: Not an integer, or out of range.

    """
    try:
        number = int(text)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        msg = f'launch argument {name} must be an integer {_bounds(low, high)}, not {text!r}'
        raise ConfigError(msg)
    return number


def parse_float(text: str, name: str, low: float, high: float = math.inf, *,
                above: bool = False) -> float:
    """Read a finite number launch argument in ``low..high`` (``> low`` with ``above``).

    Raises:
        ConfigError: Not a number, not finite, or out of range.

    """
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and (number > low if above else number >= low)
            and number <= high):
        bounds = f'> {low!r}' if above else _bounds(low, high)
        msg = f'launch argument {name} must be a number {bounds}, not {text!r}'
        raise ConfigError(msg)
    return number


def parse_file(text: str, name: str) -> str:
    """Return the absolute path of the existing file ``text`` names.

    Raises:
        ConfigError: No such file.

    """
    path = Path(text).expanduser()
    if not path.is_file():
        msg = f'launch argument {name}: no such file {text!r}'
        raise ConfigError(msg)
    return str(path.resolve())


def parse_namespace(text: str) -> str:
    """Return the namespace ``text`` names, without leading or trailing slashes.

    Raises:
        ConfigError: Not a ROS namespace.

    """
    namespace = text.strip('/')
    if not _NAMESPACE.match(namespace):
        msg = f'launch argument namespace must be a ROS namespace like "sensr", not {text!r}'
        raise ConfigError(msg)
    return namespace


def _parameter_value(param: Param, text: str) -> Any:
    """The parameter value of a launch argument's text (not empty), checked."""
    name, default = param.name, param.default
    low, high = param.range or (-math.inf, math.inf)
    if isinstance(default, bool):
        return parse_flag(text, name)
    if isinstance(default, int):
        return parse_int(text, name, low, high)
    if isinstance(default, float):
        return parse_float(text, name, low, high)
    if isinstance(default, list):
        entries = text.split()
        if param.check is not None:
            param.check(entries, f'launch argument {name}')
        return entries
    if param.choices and text not in param.choices:
        msg = f'launch argument {name} must be {quoted_choices(param.choices)}, not {text!r}'
        raise ConfigError(msg)
    return parse_file(text, name) if param.path else text


def node_overrides(values: Mapping[str, str], table: Iterable[Param],
                   arguments: Sequence[Argument]) -> dict[str, Any]:
    """Return the parameter overrides of a node: its launch arguments that are set.

    Args:
        values: Launch argument values by name (missing ones take their default).
        table: The node's parameters.
        arguments: The launch file's arguments.

    Returns:
        Parameter values by name, of the parameters' types.

    Raises:
        ConfigError: A value is not of the parameter's type, out of its range, not one
            of its choices, or names a missing file.

    """
    overrides = {}
    for param in table:
        text = value(values, param.name, arguments) if param.launch else ''
        if text:
            overrides[param.name] = _parameter_value(param, text)
    return overrides
