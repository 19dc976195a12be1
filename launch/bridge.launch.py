# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The bridge alone (+ RViz): ros2 launch sensr_bridge bridge.launch.py [rviz:=true|false].

Arguments (``-s`` lists them): host, output_port, point_port, params_file, namespace,
simulate, sim_points, sim_rate, rviz (default auto: RViz starts where rviz2 is
installed; rviz:=true without rviz2 fails before anything starts). The bridge configures
and activates itself (its ``autostart`` parameter); a process exiting with an error
stops the launch with one line saying why. Everything is computed by
:mod:`sensr_bridge.launch_support`; this file maps its plan onto launch actions, every
process under the plan's orphan guard.
"""

import shlex

from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.event_handlers import OnProcessIO
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from sensr_bridge import launch_support


def generate_launch_description():
    return LaunchDescription([
        *[DeclareLaunchArgument(arg.name, default_value=arg.default,
                                description=arg.description,
                                **({'choices': list(arg.choices)} if arg.choices else {}))
          for arg in launch_support.BRIDGE_ARGUMENTS],
        OpaqueFunction(function=start),
    ])


def node_prefix(plan):
    # A prefix given here replaces ros2 launch's --launch-prefix: keep it after the guard.
    if not plan.guard:
        return None
    return [shlex.join(plan.guard), ' ', LaunchConfiguration('launch-prefix', default='')]


def on_exit(name, errors):
    """Stop the launch, with an error line, when a process exits with an error."""
    def exited(event, context):
        if launch_support.exit_is_failure(event.returncode, shutting_down=context.is_shutdown):
            raise RuntimeError(launch_support.exit_failure(name, event.returncode,
                                                           errors.last(name)))
    return exited


def capture(action, name, errors):
    return RegisterEventHandler(OnProcessIO(
        target_action=action, on_stdout=lambda event: errors.feed(name, event.text),
        on_stderr=lambda event: errors.feed(name, event.text, stderr=True)))


def start(context):
    plan = launch_support.bridge_plan(context.launch_configurations)
    # Before any process starts: launch leaves running what it started before a failure.
    launch_support.check_installed(plan)
    errors = launch_support.ProcessErrors()
    actions = [SetEnvironmentVariable(name, value) for name, value in plan.environment.items()]
    actions += [LogInfo(msg=note) for note in plan.notes]
    if plan.simulator is not None:
        spec = plan.simulator
        simulator = ExecuteProcess(cmd=[*plan.guard, *spec.cmd], name=spec.name,
                                   output='screen', sigterm_timeout=str(spec.sigterm_timeout),
                                   on_exit=on_exit(spec.name, errors))
        actions += [capture(simulator, spec.name, errors), simulator]
    spec = plan.bridge
    bridge = Node(package=launch_support.PACKAGE, executable=spec.executable,
                  exec_name=spec.executable, name=spec.name, namespace=plan.namespace,
                  output='screen', parameters=list(spec.parameters),
                  prefix=node_prefix(plan), sigterm_timeout=str(spec.sigterm_timeout),
                  on_exit=on_exit(spec.name, errors))
    actions += [capture(bridge, spec.name, errors), bridge]
    if plan.rviz_config is not None:
        actions.append(Node(package=launch_support.RVIZ_PACKAGE,
                            executable=launch_support.RVIZ_EXECUTABLE, name='rviz2',
                            exec_name=launch_support.RVIZ_EXECUTABLE,
                            arguments=['-d', plan.rviz_config], output='screen',
                            prefix=node_prefix(plan)))
    return actions
