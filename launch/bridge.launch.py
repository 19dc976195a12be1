# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The bridge alone (+ RViz): ros2 launch sensr_bridge bridge.launch.py [rviz:=true].

Arguments (``-s`` lists them): host, output_port, point_port, params_file, namespace,
simulate, sim_points, sim_rate, rviz (default true). The bridge configures and activates
itself (its ``autostart`` parameter). Everything is computed by
:mod:`sensr_bridge.launch_support`; this file maps its plan onto launch actions.
"""

from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    LogInfo,
    OpaqueFunction,
    SetEnvironmentVariable,
)
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


def start(context):
    plan = launch_support.bridge_plan(context.launch_configurations)
    actions = [SetEnvironmentVariable(name, value) for name, value in plan.environment.items()]
    actions += [LogInfo(msg=note) for note in plan.notes]
    if plan.simulator is not None:
        spec = plan.simulator
        actions.append(ExecuteProcess(cmd=list(spec.cmd), name=spec.name, output='screen',
                                      sigterm_timeout=str(spec.sigterm_timeout)))
    bridge = plan.bridge
    actions.append(Node(package=launch_support.PACKAGE, executable=bridge.executable,
                        name=bridge.name, namespace=plan.namespace, output='screen',
                        parameters=list(bridge.parameters),
                        sigterm_timeout=str(bridge.sigterm_timeout)))
    if plan.rviz_config is not None:
        actions.append(Node(package='rviz2', executable='rviz2', name='rviz2',
                            arguments=['-d', plan.rviz_config], output='screen'))
    return actions
