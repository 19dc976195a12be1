# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Launch actions both launch files use: a plans.Plan in launch terms.

Imported only by ``launch/*.launch.py`` (it needs ``launch`` and ``launch_ros``);
everything they decide is in :mod:`sensr_bridge.launching.plans` (and the modules it
uses), which needs neither.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import shlex
from typing import Any

from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    LogInfo,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.event_handlers import OnProcessIO
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from sensr_bridge.launching import arguments, guard, plans, programs


def declare_arguments(declared: Sequence[arguments.Argument]) -> list[Any]:
    """Return a ``DeclareLaunchArgument`` per argument (``ros2 launch -s`` lists them)."""
    return [DeclareLaunchArgument(arg.name, default_value=arg.default,
                                  description=arg.description,
                                  **({'choices': list(arg.choices)} if arg.choices else {}))
            for arg in declared]


def first_actions(plan: plans.Plan) -> list[Any]:
    """Return the environment (the DDS profile) and the notes to log, before any process."""
    actions: list[Any] = [SetEnvironmentVariable(name, value)
                          for name, value in plan.environment.items()]
    return actions + [LogInfo(msg=note) for note in plan.notes]


def node_prefix(plan: plans.Plan) -> list[Any] | None:
    """Return the prefix of a node: the orphan guard, then ros2 launch's --launch-prefix."""
    # A prefix given here replaces ros2 launch's --launch-prefix: keep it after the guard.
    if not plan.guard:
        return None
    return [shlex.join(plan.guard), ' ', LaunchConfiguration('launch-prefix', default='')]


def on_exit(name: str, errors: guard.ProcessErrors) -> Callable[..., None]:
    """Stop the launch, with an error line, when a process exits with an error."""
    def exited(event: Any, context: Any) -> None:
        if guard.exit_is_failure(event.returncode, shutting_down=context.is_shutdown):
            raise RuntimeError(guard.exit_failure(name, event.returncode, errors.last(name)))
    return exited


def capture(action: Any, name: str, errors: guard.ProcessErrors) -> Any:
    """Feed a process's output to ``errors`` (its last error line names a failure)."""
    return RegisterEventHandler(OnProcessIO(
        target_action=action, on_stdout=lambda event: errors.feed(name, event.text),
        on_stderr=lambda event: errors.feed(name, event.text, stderr=True)))


def process(spec: plans.Process, plan: plans.Plan,
            errors: guard.ProcessErrors) -> list[Any]:
    """Return a plain process (simulator, composed nodes) under the guard, and its capture."""
    action = ExecuteProcess(cmd=[*plan.guard, *spec.cmd], name=spec.name, output='screen',
                            sigterm_timeout=str(spec.sigterm_timeout),
                            on_exit=on_exit(spec.name, errors))
    return [capture(action, spec.name, errors), action]


def node_arguments(spec: plans.RosNode, plan: plans.Plan,
                   errors: guard.ProcessErrors) -> dict[str, Any]:
    """Return the keyword arguments of ``Node`` or ``LifecycleNode`` for a node of the plan."""
    return {'package': programs.PACKAGE, 'executable': spec.executable,
            'exec_name': spec.executable, 'name': spec.name, 'namespace': plan.namespace,
            'output': 'screen', 'parameters': list(spec.parameters),
            'prefix': node_prefix(plan), 'sigterm_timeout': str(spec.sigterm_timeout),
            'on_exit': on_exit(spec.name, errors),
            'additional_env': dict(spec.environment) or None}


def rviz(plan: plans.Plan) -> list[Any]:
    """Return RViz with the package's config when the plan has it, else nothing."""
    if plan.rviz_config is None:
        return []
    return [Node(package=programs.RVIZ_PACKAGE, executable=programs.RVIZ_EXECUTABLE,
                 name='rviz2', exec_name=programs.RVIZ_EXECUTABLE,
                 arguments=['-d', plan.rviz_config], output='screen',
                 prefix=node_prefix(plan))]
