# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Scheduled faults of the simulator's command line: ``--fault TIME:ACTION[:ARG...]``."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from sensr_bridge.errors import ConfigError
from sensr_bridge.sim.config import OUTPUT, POINT
from sensr_bridge.sim.injection import INJECT_KINDS

if TYPE_CHECKING:
    from sensr_bridge.sim.server import Simulator

FAULT_HELP = (
    'fault at TIME seconds after start; repeatable. PORT is output, point, all or a '
    'number. Actions: drop[:PORT], restart[:PORT[:DOWN_S]], stall:PORT:SECONDS, '
    'ignore-pings[:on|off], reject[:PORT[:CODE|off]] (accept, then close at once '
    'with CODE, default 1000), inject:PORT:KIND[:COUNT] with KIND in '
    f'{", ".join(INJECT_KINDS)}')
"""Help text of ``--fault``."""

# Action: (fewest, most) arguments.
_ACTIONS = {
    'drop': (0, 1), 'restart': (0, 2), 'stall': (2, 2), 'ignore-pings': (0, 1),
    'inject': (2, 3), 'reject': (0, 2),
}


class Fault(NamedTuple):
    """A fault the command line applies at a time after the start.

    Attributes:
        at_s: Seconds after the start.
        action: One of drop, restart, stall, ignore-pings, inject, reject.
        args: Its arguments, as given.

    """

    at_s: float
    action: str
    args: tuple[str, ...]


def _port_arg(text: str) -> str | int | None:
    if text == 'all':
        return None
    if text.isdigit():
        return int(text)
    if text in (OUTPUT, POINT):
        return text
    msg = f'port must be output, point, all or a number, not {text!r}'
    raise ConfigError(msg)


def parse_fault(spec: str) -> Fault:
    """Parse ``TIME:ACTION[:ARG...]`` (see :data:`FAULT_HELP`).

    Args:
        spec: The ``--fault`` value.

    Returns:
        The fault.

    Raises:
        ConfigError: An invalid time, action or argument.

    """
    at, _, rest = spec.partition(':')
    action, *args = rest.split(':')
    try:
        at_s = float(at)
    except ValueError:
        at_s = -1.0
    if at_s < 0 or action not in _ACTIONS:
        msg = (f'invalid fault {spec!r}: expected TIME:ACTION[:ARG...] with ACTION in '
               f'{", ".join(_ACTIONS)}')
        raise ConfigError(msg)
    low, high = _ACTIONS[action]
    if not low <= len(args) <= high:
        msg = f'invalid fault {spec!r}: {action} takes {low} to {high} arguments'
        raise ConfigError(msg)
    if args and action != 'ignore-pings':
        _port_arg(args[0])
    try:
        if action == 'restart' and len(args) == 2:
            float(args[1])
        if action == 'stall':
            float(args[1])
        if action == 'inject' and len(args) == 3:
            int(args[2])
        if action == 'reject' and len(args) == 2 and args[1] != 'off':
            int(args[1])
    except ValueError as exc:
        msg = f'invalid fault {spec!r}: {exc}'
        raise ConfigError(msg) from exc
    if action == 'inject' and args[1] not in INJECT_KINDS:
        msg = f'invalid fault {spec!r}: kind must be one of {", ".join(INJECT_KINDS)}'
        raise ConfigError(msg)
    if action == 'ignore-pings' and args and args[0] not in ('on', 'off'):
        msg = f'invalid fault {spec!r}: ignore-pings takes on or off'
        raise ConfigError(msg)
    return Fault(at_s, action, tuple(args))


def apply_fault(sim: Simulator, fault: Fault) -> None:
    """Apply a parsed fault to a running simulator (``restart`` blocks while down)."""
    args = fault.args
    port = _port_arg(args[0]) if args and fault.action != 'ignore-pings' else None
    if fault.action == 'drop':
        sim.drop_connections(port)
    elif fault.action == 'restart':
        sim.restart(port, float(args[1]) if len(args) == 2 else 1.0)
    elif fault.action == 'stall':
        sim.stall(port, float(args[1]))
    elif fault.action == 'ignore-pings':
        sim.ignore_pings(not args or args[0] == 'on')
    elif fault.action == 'reject':
        code = args[1] if len(args) == 2 else '1000'
        sim.reject(port, None if code == 'off' else int(code))
    else:
        sim.inject(port, args[1], int(args[2]) if len(args) == 3 else 1)
