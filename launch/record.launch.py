# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Bridge + recorder: ros2 launch sensr_bridge record.launch.py [simulate:=true] [rviz:=true].

Arguments (``ros2 launch sensr_bridge record.launch.py -s`` lists them): host, output_port,
point_port, output_dir, storage (sqlite3|mcap), storage_preset, storage_config_file,
max_bagfile_duration, max_bagfile_size, compression, topic_intervals, skip_empty_clouds,
clip_mode, clip_before, clip_after, clip_events, clip_buffer_bytes, params_file,
namespace, simulate, sim_points, sim_rate, composed, rviz (true, false, auto).

Everything is computed by :mod:`sensr_bridge.launching.plans` and the modules next to it
(tested without launch);
this file maps its plan onto launch actions. Separate processes are started as lifecycle
nodes and brought up in order by ChangeState events on OnStateTransition: recorder
configured, bridge configured, recorder active, then, once the launch's ROS graph shows
the recorder subscribed to the bridge's topics, bridge active, so the bag misses nothing
at the start. composed:=true runs both nodes in one process instead.
A failed transition, or a process exiting with an error, stops the launch with one line
naming the node and its error, and a non-zero exit (raising is the only way launch has
to fail a run). Every process starts under the plan's orphan guard.
Only APIs present with the same signature in Humble, Jazzy and Kilted are used
(LifecycleNode always gets a namespace; no ``autostart`` argument, which Humble lacks).
"""

import time

from launch.actions import EmitEvent, LogInfo, OpaqueFunction, RegisterEventHandler, TimerAction
from launch.events import matches_action
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.ros_adapters import get_ros_node
from lifecycle_msgs.msg import Transition

from launch import LaunchDescription
from sensr_bridge.launching import actions, arguments, guard, plans

TRANSITIONS = {'configure': Transition.TRANSITION_CONFIGURE,
               'activate': Transition.TRANSITION_ACTIVATE}


def generate_launch_description():
    return LaunchDescription([*actions.declare_arguments(arguments.RECORD_ARGUMENTS),
                              OpaqueFunction(function=start)])


def change_state(node, transition):
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                       transition_id=TRANSITIONS[transition]))


def failed(context, name, start_state, goal_state, errors):
    raise RuntimeError(guard.lifecycle_failure(name, start_state, goal_state,
                                               errors.last(name)))


def graph_topics(query, name, namespace):
    try:
        return [topic for topic, _ in query(name, namespace)]
    except RuntimeError:  # NodeNameNonExistentError: not in the graph yet
        return []


def when_recorded(context, wait, namespace, request):
    """Emit ``request`` once the recorder subscribed to the bridge's topics (RecorderWait)."""
    node = get_ros_node(context)
    verdict = wait.update(
        time.monotonic(),
        graph_topics(node.get_publisher_names_and_types_by_node,
                     plans.BRIDGE_NAME, namespace),
        graph_topics(node.get_subscriber_names_and_types_by_node,
                     plans.RECORDER_NAME, namespace))
    if verdict is None:
        return [TimerAction(period=guard.RECORDER_WAIT_POLL_S, actions=[
            OpaqueFunction(function=when_recorded, args=[wait, namespace, request])])]
    return [LogInfo(msg=verdict), request] if verdict else [request]


def when_heard(context, topics, deadline, requests):
    """Emit ``requests`` once the launch's graph shows a publisher on every one of ``topics``.

    launch learns of a transition only from the node's ``transition_event`` topic, which
    keeps nothing for late subscribers: a transition that ended before launch's own
    subscription had matched was never seen, and the start chain stalled (CI: the bridge
    was never configured). So the first transition is requested only once launch hears
    both nodes' ``transition_event`` publishers (at most until ``deadline``).
    """
    node = get_ros_node(context)
    unheard = [topic for topic in topics if not node.count_publishers(topic)]
    if not unheard:
        return requests
    if time.monotonic() < deadline:
        return [TimerAction(period=guard.RECORDER_WAIT_POLL_S, actions=[
            OpaqueFunction(function=when_heard, args=[topics, deadline, requests])])]
    return [LogInfo(msg=guard.unheard_note(unheard)), *requests]


def start(context):
    plan = plans.record_plan(context.launch_configurations)
    # Before any process starts: launch leaves running what it started before a failure.
    plans.check_installed(plan)
    errors = guard.ProcessErrors()
    entities = actions.first_actions(plan)
    if plan.simulator is not None:
        entities += actions.process(plan.simulator, plan, errors)
    if plan.composed is not None:
        entities += actions.process(plan.composed, plan, errors)
    else:
        specs = {'bridge': plan.bridge, 'recorder': plan.recorder}
        nodes = {key: LifecycleNode(**actions.node_arguments(spec, plan, errors))
                 for key, spec in specs.items()}
        for key, node in nodes.items():
            entities += [actions.capture(node, specs[key].name, errors), node]
        for key, start_state, goal_state in plans.LIFECYCLE_FAILURES:
            entities.append(RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=nodes[key], start_state=start_state,
                goal_state=goal_state, entities=[OpaqueFunction(function=failed, args=[
                    specs[key].name, start_state, goal_state, errors])])))
        for step in plan.lifecycle:
            if step.after is not None:
                after_node, start_state, goal_state = step.after
                request = change_state(nodes[step.node], step.transition)
                if step.wait_for_recorder:
                    request = OpaqueFunction(function=when_recorded, args=[
                        guard.RecorderWait(plan.namespace), '/' + plan.namespace,
                        request])
                entities.append(RegisterEventHandler(OnStateTransition(
                    target_lifecycle_node=nodes[after_node], start_state=start_state,
                    goal_state=goal_state, entities=[request])))
        # Every handler is registered before the event that starts the chain.
        events = [f'/{plan.namespace}/{spec.name}/transition_event' for spec in specs.values()]
        entities.append(OpaqueFunction(function=when_heard, args=[
            events, time.monotonic() + guard.TRANSITION_EVENTS_WAIT_S,
            [change_state(nodes[step.node], step.transition)
             for step in plan.lifecycle if step.after is None]]))
    return entities + actions.rviz(plan)
