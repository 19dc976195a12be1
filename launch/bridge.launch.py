# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The bridge alone (+ RViz): ros2 launch sensr_bridge bridge.launch.py [rviz:=true|false].

Arguments (``-s`` lists them): host, output_port, point_port, params_file, namespace,
simulate, sim_points, sim_rate, rviz (default auto: RViz starts where rviz2 is
installed; rviz:=true without rviz2 fails before anything starts). The bridge configures
and activates itself (its ``autostart`` parameter); a process exiting with an error
stops the launch with one line saying why. Everything is computed by
:mod:`sensr_bridge.launching.plans`; this file maps its plan onto launch actions, every
process under the plan's orphan guard.
"""

from launch.actions import OpaqueFunction
from launch_ros.actions import Node

from launch import LaunchDescription
from sensr_bridge.launching import actions, arguments, guard, plans


def generate_launch_description():
    return LaunchDescription([*actions.declare_arguments(arguments.BRIDGE_ARGUMENTS),
                              OpaqueFunction(function=start)])


def start(context):
    plan = plans.bridge_plan(context.launch_configurations)
    # Before any process starts: launch leaves running what it started before a failure.
    plans.check_installed(plan)
    errors = guard.ProcessErrors()
    entities = actions.first_actions(plan)
    if plan.simulator is not None:
        entities += actions.process(plan.simulator, plan, errors)
    bridge = Node(**actions.node_arguments(plan.bridge, plan, errors))
    entities += [actions.capture(bridge, plan.bridge.name, errors), bridge]
    return entities + actions.rviz(plan)
