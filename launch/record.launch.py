# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Bridge + recorder: ros2 launch sensr_bridge record.launch.py [simulate:=true] [rviz:=true].

Arguments (``ros2 launch sensr_bridge record.launch.py -s`` lists them): host, output_port,
point_port, output_dir, storage (sqlite3|mcap), storage_preset, storage_config_file,
max_bagfile_duration, max_bagfile_size, params_file, namespace, simulate, sim_points,
sim_rate, composed, rviz.

Everything is computed by :mod:`sensr_bridge.launch_support` (tested without launch);
this file maps its plan onto launch actions. Separate processes are started as lifecycle
nodes and brought up in order by ChangeState events on OnStateTransition: recorder
configured, bridge configured, recorder active, then bridge active, so the bag misses
nothing at the start. composed:=true runs both nodes in one process instead.
Only APIs present with the same signature in Humble, Jazzy and Kilted are used
(LifecycleNode always gets a namespace; no ``autostart`` argument, which Humble lacks).
"""

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
    Shutdown,
)
from launch.events import matches_action
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from launch import LaunchDescription
from sensr_bridge import launch_support

TRANSITIONS = {'configure': Transition.TRANSITION_CONFIGURE,
               'activate': Transition.TRANSITION_ACTIVATE}


def generate_launch_description():
    return LaunchDescription([
        *[DeclareLaunchArgument(arg.name, default_value=arg.default,
                                description=arg.description,
                                **({'choices': list(arg.choices)} if arg.choices else {}))
          for arg in launch_support.RECORD_ARGUMENTS],
        OpaqueFunction(function=start),
    ])


def process(spec):
    return ExecuteProcess(cmd=list(spec.cmd), name=spec.name, output='screen',
                          sigterm_timeout=str(spec.sigterm_timeout))


def lifecycle_node(spec, namespace):
    return LifecycleNode(package=launch_support.PACKAGE, executable=spec.executable,
                         name=spec.name, namespace=namespace, output='screen',
                         parameters=list(spec.parameters),
                         sigterm_timeout=str(spec.sigterm_timeout))


def change_state(node, transition):
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                       transition_id=TRANSITIONS[transition]))


def start(context):
    plan = launch_support.record_plan(context.launch_configurations)
    actions = [SetEnvironmentVariable(name, value) for name, value in plan.environment.items()]
    actions += [LogInfo(msg=note) for note in plan.notes]
    if plan.simulator is not None:
        actions.append(process(plan.simulator))
    if plan.composed is not None:
        actions.append(process(plan.composed))
    else:
        nodes = {'bridge': lifecycle_node(plan.bridge, plan.namespace),
                 'recorder': lifecycle_node(plan.recorder, plan.namespace)}
        actions += nodes.values()
        for node, start_state, goal_state in launch_support.LIFECYCLE_FAILURES:
            reason = f'{node} failed to leave {start_state} (now {goal_state})'
            actions.append(RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=nodes[node], start_state=start_state,
                goal_state=goal_state, entities=[Shutdown(reason=reason)])))
        for step in plan.lifecycle:
            if step.after is not None:
                after_node, start_state, goal_state = step.after
                actions.append(RegisterEventHandler(OnStateTransition(
                    target_lifecycle_node=nodes[after_node], start_state=start_state,
                    goal_state=goal_state,
                    entities=[change_state(nodes[step.node], step.transition)])))
        # Every handler is registered before the event that starts the chain.
        actions += [change_state(nodes[step.node], step.transition)
                    for step in plan.lifecycle if step.after is None]
    if plan.rviz_config is not None:
        actions.append(Node(package='rviz2', executable='rviz2', name='rviz2',
                            arguments=['-d', plan.rviz_config], output='screen'))
    return actions
