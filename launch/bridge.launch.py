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

from launch.actions import OpaqueFunction
from launch_ros.actions import Node

from launch import LaunchDescription
from sensr_bridge import launch_actions, launch_support


def generate_launch_description():
    return LaunchDescription([*launch_actions.declare_arguments(launch_support.BRIDGE_ARGUMENTS),
                              OpaqueFunction(function=start)])


def start(context):
    plan = launch_support.bridge_plan(context.launch_configurations)
    # Before any process starts: launch leaves running what it started before a failure.
    launch_support.check_installed(plan)
    errors = launch_support.ProcessErrors()
    actions = launch_actions.first_actions(plan)
    if plan.simulator is not None:
        actions += launch_actions.process(plan.simulator, plan, errors)
    bridge = Node(**launch_actions.node_arguments(plan.bridge, plan, errors))
    actions += [launch_actions.capture(bridge, plan.bridge.name, errors), bridge]
    return actions + launch_actions.rviz(plan)
