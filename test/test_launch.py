# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The launch files, their helper module and the config files they point to.

- :mod:`sensr_bridge.launching.plans`, which computes everything the launch files start,
  is tested directly (no launch needed), and its composed process runs for real against
  the simulator;
- the launch files are loaded with the real launch and launch_ros: their arguments, the
  actions their plan maps onto, and their lifecycle handlers, driven with real
  ``StateTransition`` events carrying the state labels rclpy publishes (checked against
  a real rclpy lifecycle node below);
- record.launch.py runs through the real ``LaunchService``; the launch_testing modules
  (``test_launch_record.py``, ``test_launch_bridge.py``, ``test_launch_failures.py``) run
  both launch files against the simulator, and ``test_ros2_launch.py`` runs the user's
  ``ros2 launch`` command and stops it as Ctrl+C does.
"""

from __future__ import annotations

import ast
from collections import deque
import importlib.util
import os
from pathlib import Path
import signal
import sqlite3
import subprocess
import sys
import threading

from helpers import NEEDS_LAUNCH, wait_until
from lifecycle_msgs.msg import Transition
import pytest
import yaml

from sensr_bridge.bag.backends import pragmas
from sensr_bridge.bag.info import summarize
from sensr_bridge.errors import ConfigError
from sensr_bridge.launching import guard, plans
from sensr_bridge.nodes import composed as composed_process
from sensr_bridge.nodes.params import BRIDGE, RECORDER
from sensr_bridge.process import environment
from sensr_bridge.sensr import protocol

ROOT = Path(__file__).resolve().parent.parent
RECORD_LAUNCH = ROOT / 'launch' / 'record.launch.py'
BRIDGE_LAUNCH = ROOT / 'launch' / 'bridge.launch.py'
CONFIGURE, ACTIVATE = Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE

# TransitionEvent (start_state, goal_state) labels of each transition and outcome, as
# rcl_lifecycle publishes them (checked against rclpy in test_rclpy_transition_labels).
LABELS = {
    ('configure', 'success'): [('unconfigured', 'configuring'), ('configuring', 'inactive')],
    ('configure', 'failure'): [('unconfigured', 'configuring'), ('configuring', 'unconfigured')],
    ('configure', 'error'): [('unconfigured', 'configuring'), ('configuring', 'errorprocessing'),
                             ('errorprocessing', 'unconfigured')],
    ('activate', 'success'): [('inactive', 'activating'), ('activating', 'active')],
    ('activate', 'failure'): [('inactive', 'activating'), ('activating', 'inactive')],
    ('activate', 'error'): [('inactive', 'activating'), ('activating', 'errorprocessing'),
                            ('errorprocessing', 'unconfigured')],
}


# --- the launch files as Python -------------------------------------------------------

@pytest.mark.parametrize('path', [RECORD_LAUNCH, BRIDGE_LAUNCH], ids=lambda p: p.name)
def test_launch_file_compiles(path):
    source = path.read_text(encoding='utf-8')
    compile(source, str(path), 'exec')
    names = {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in names


# --- the launch files with the real launch and launch_ros --------------------------------

def load_launch_file(path):
    spec = importlib.util.spec_from_file_location(path.stem.replace('.', '_'), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def text(context, substitutions):
    """The text of what launch holds as text, a substitution or a list of them."""
    from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions

    return perform_substitutions(context, normalize_to_list_of_substitutions(substitutions))


def declared(module):
    """The DeclareLaunchArgument actions and the OpaqueFunction of a launch description."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    description = module.generate_launch_description()
    entities = description.entities
    arguments = [e for e in entities if isinstance(e, DeclareLaunchArgument)]
    assert isinstance(entities[-1], OpaqueFunction)
    assert len(arguments) == len(entities) - 1
    return arguments, entities[-1]


def start_actions(path, monkeypatch, *, have_rviz=False, **values):
    """What a launch file's OpaqueFunction returns for these argument values."""
    import launch

    monkeypatch.setattr(plans, 'rviz_installed', lambda: have_rviz)
    monkeypatch.setattr(plans, 'check_installed', lambda plan: None)
    module = load_launch_file(path)
    arguments, function = declared(module)
    context = launch.LaunchContext()
    for argument in arguments:
        context.launch_configurations[argument.name] = text(context, argument.default_value)
    unknown = set(values) - set(context.launch_configurations)
    assert not unknown, f'undeclared launch arguments {unknown}'
    context.launch_configurations.update(values)
    return module, context, function.execute(context)


def of_type(actions, cls):
    return [a for a in actions if type(a) is cls]


def executable(context, node):
    return text(context, node.node_executable)


@NEEDS_LAUNCH
@pytest.mark.parametrize(('path', 'arguments'), [
    (RECORD_LAUNCH, plans.RECORD_ARGUMENTS),
    (BRIDGE_LAUNCH, plans.BRIDGE_ARGUMENTS)], ids=['record', 'bridge'])
def test_launch_arguments(path, arguments):
    import launch

    declared_arguments, _ = declared(load_launch_file(path))
    context = launch.LaunchContext()
    assert [(a.name, text(context, a.default_value)) for a in declared_arguments] == \
        [(a.name, a.default) for a in arguments]
    # launch appends "Valid choices are: ..." to the description of an argument with choices
    assert all(d.description.startswith(a.description)
               for d, a in zip(declared_arguments, arguments, strict=True))
    names = [a.name for a in declared_arguments]
    assert len(names) == len(set(names))
    assert set(names) >= {'host', 'output_port', 'point_port', 'params_file', 'simulate',
                          'rviz', 'namespace'}
    assert all(a.description for a in declared_arguments)
    if path == RECORD_LAUNCH:
        assert set(names) >= {'output_dir', 'storage', 'max_bagfile_duration',
                              'max_bagfile_size', 'storage_config_file', 'composed'}
        storage = next(a for a in declared_arguments if a.name == 'storage')
        assert set(storage.choices) == {'', 'sqlite3', 'mcap'}


@NEEDS_LAUNCH
def test_record_launch_separate_processes(monkeypatch, tmp_path):
    from launch.actions import ExecuteProcess, RegisterEventHandler, SetEnvironmentVariable
    from launch_ros.actions import LifecycleNode, Node

    params = tmp_path / 'params.yaml'
    params.write_text('/**:\n  ros__parameters:\n    cloud_mode: per_type\n')
    _, context, actions = start_actions(RECORD_LAUNCH, monkeypatch, params_file=str(params),
                                        output_dir='out', storage='mcap')
    env = {text(context, a.name): text(context, a.value)
           for a in of_type(actions, SetEnvironmentVariable)}
    assert env == environment.dds_environment()
    assert all(Path(v).is_file() for v in env.values())
    nodes = of_type(actions, LifecycleNode)
    extra = [{text(context, k): text(context, v)
              for k, v in n.process_description.additional_env or []} for n in nodes]
    assert extra == [{}, environment.dds_environment(publishes_clouds=False)]  # bridge, recorder
    first_process = min(actions.index(n) for n in nodes)
    assert max(actions.index(a) for a in of_type(actions, SetEnvironmentVariable)) < \
        first_process
    assert not of_type(actions, ExecuteProcess) and not of_type(actions, Node)
    assert [executable(context, n) for n in nodes] == ['bridge_node', 'recorder_node']
    assert all(text(context, n.node_package) == 'sensr_bridge' for n in nodes)
    bridge, recorder = nodes
    assert float(text(context, recorder.sigterm_timeout)) > \
        float(text(context, bridge.sigterm_timeout))
    if guard.orphan_guard():  # Linux: every process under the guard
        for node in nodes:
            prefix = text(context, node.process_description.prefix)
            assert prefix.startswith(' '.join(guard.orphan_guard()[:4])), prefix
    # Every handler is registered before the action that starts the chain.
    handlers = of_type(actions, RegisterEventHandler)
    from launch.actions import OpaqueFunction

    starts = of_type(actions, OpaqueFunction)
    assert len(starts) == 1
    assert all(actions.index(r) < actions.index(starts[0]) for r in handlers)


class FakeGraph:
    """What launch's ROS node sees.

    The nodes' ``transition_event`` publishers appear after ``events_lag`` looks at them,
    the recorder's subscriptions after ``lag`` looks at the bridge's publishers.
    """

    def __init__(self, lag, events_lag=0):
        self.looks = 0
        self.lag = lag
        self.event_looks = 0
        self.events_lag = events_lag
        self.topics = [(f'/sensr/{t}', ['type']) for t in ('points', 'output_raw', 'events')]

    def count_publishers(self, topic):
        assert topic in {f'/sensr/{name}/transition_event' for name in (
            plans.BRIDGE_NAME, plans.RECORDER_NAME)}, topic
        self.event_looks += 1
        return int(self.event_looks > self.events_lag)

    def get_publisher_names_and_types_by_node(self, name, namespace):
        assert (name, namespace) == (plans.BRIDGE_NAME, '/sensr')
        self.looks += 1
        return [*self.topics, ('/sensr/sensr_bridge/transition_event', ['t']),
                ('/diagnostics', ['d'])]

    def get_subscriber_names_and_types_by_node(self, name, namespace):
        assert (name, namespace) == (plans.RECORDER_NAME, '/sensr')
        if self.looks <= self.lag:
            raise RuntimeError('node not in the graph yet')  # NodeNameNonExistentError is one
        return self.topics


def play_lifecycle(module, context, actions, outcomes=None, graph=None):
    """Play launch's event loop over the lifecycle actions, the nodes answering per LABELS.

    The real handlers of the launch file get real ``StateTransition`` events; what they
    return is executed as launch would (EmitEvent queued, OpaqueFunction run, TimerAction
    fired at once).

    Returns:
        The transition requests in order, as (node, transition, states of both nodes
        when requested), the lines logged, and the error that stopped the launch (None).

    """
    from launch.actions import (
        EmitEvent,
        LogInfo,
        OpaqueFunction,
        RegisterEventHandler,
        TimerAction,
    )
    from launch_ros.actions import LifecycleNode
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState, StateTransition
    from lifecycle_msgs.msg import State, TransitionEvent

    outcomes = outcomes or {}
    module.get_ros_node = lambda _context: graph or FakeGraph(lag=0)
    nodes = {executable(context, n): n for n in of_type(actions, LifecycleNode)}
    handlers = [r.event_handler for r in of_type(actions, RegisterEventHandler)
                if isinstance(r.event_handler, OnStateTransition)]
    state = dict.fromkeys(nodes, 'unconfigured')
    requests, logged = [], []
    # The chain starts with the top-level requests, or the action that emits them.
    pending = deque(of_type(actions, EmitEvent) + of_type(actions, OpaqueFunction))
    while pending:
        entity = pending.popleft()
        if isinstance(entity, TimerAction):
            pending.extend(entity.actions)
        elif isinstance(entity, LogInfo):
            logged.append(text(context, entity.msg))
        elif isinstance(entity, OpaqueFunction):
            try:
                pending.extend(entity.execute(context) or [])
            except RuntimeError as exc:  # launch: "Caught exception in launch", shutdown
                return requests, logged, str(exc)
        elif isinstance(entity.event, ChangeState):
            name = next(n for n, node in nodes.items()
                        if entity.event.lifecycle_node_matcher(node))
            transition = {CONFIGURE: 'configure', ACTIVATE: 'activate'}[
                entity.event.transition_id]
            requests.append((name, transition, dict(state)))
            outcome = outcomes.get((name, transition), 'success')
            for start, goal in LABELS[transition, outcome]:
                state[name] = goal
                event = StateTransition(action=nodes[name], msg=TransitionEvent(
                    start_state=State(label=start), goal_state=State(label=goal)))
                for handler in handlers:
                    if handler.matches(event):
                        pending.extend(handler.handle(event, context))
        else:
            pytest.fail(f'unexpected {entity!r}')
    return requests, logged, None


@NEEDS_LAUNCH
def test_record_launch_activates_the_bridge_last(monkeypatch):
    """recorder configured, bridge configured, recorder active and subscribed, bridge active."""
    module, context, actions = start_actions(RECORD_LAUNCH, monkeypatch)
    graph = FakeGraph(lag=3)
    requests, logged, error = play_lifecycle(module, context, actions, graph=graph)
    assert error is None and not logged
    assert [(n, t) for n, t, _ in requests] == [
        ('recorder_node', 'configure'), ('bridge_node', 'configure'),
        ('recorder_node', 'activate'), ('bridge_node', 'activate')]
    assert requests[-1][2]['recorder_node'] == 'active'
    assert graph.looks == 4  # it waited for the recorder's subscriptions


@NEEDS_LAUNCH
def test_record_launch_requests_once_it_hears_the_transition_events(monkeypatch):
    """No request before launch's graph shows both nodes' transition_event publishers.

    launch sees a transition only on that topic, which keeps nothing for late joiners.
    """
    module, context, actions = start_actions(RECORD_LAUNCH, monkeypatch)
    graph = FakeGraph(lag=0, events_lag=5)
    requests, logged, error = play_lifecycle(module, context, actions, graph=graph)
    assert error is None and not logged
    assert len(requests) == 4
    assert graph.event_looks >= 7  # waited: 5 looks unheard, then both heard


@NEEDS_LAUNCH
def test_record_launch_requests_anyway_after_the_wait_with_a_note(monkeypatch):
    monkeypatch.setattr(guard, 'TRANSITION_EVENTS_WAIT_S', 0.0)
    module, context, actions = start_actions(RECORD_LAUNCH, monkeypatch)
    graph = FakeGraph(lag=0, events_lag=10**6)
    requests, logged, error = play_lifecycle(module, context, actions, graph=graph)
    assert error is None and len(requests) == 4
    assert logged == [guard.unheard_note([
        f'/sensr/{plans.BRIDGE_NAME}/transition_event',
        f'/sensr/{plans.RECORDER_NAME}/transition_event'])]


@NEEDS_LAUNCH
@pytest.mark.parametrize(('failing', 'outcome'), [
    (('recorder_node', 'configure'), 'failure'), (('recorder_node', 'configure'), 'error'),
    (('bridge_node', 'configure'), 'failure'), (('recorder_node', 'activate'), 'failure'),
    (('bridge_node', 'activate'), 'failure'), (('bridge_node', 'activate'), 'error')])
def test_record_launch_stops_when_a_transition_fails(monkeypatch, failing, outcome):
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessIO
    from launch.events.process import ProcessStderr
    from launch_ros.actions import LifecycleNode

    module, context, actions = start_actions(RECORD_LAUNCH, monkeypatch)
    # The node's own error line, as launch hands its output to the launch file.
    node = next(n for n in of_type(actions, LifecycleNode) if executable(context, n) ==
                failing[0])
    line = b'[ERROR] [1796545192.85] [sensr.x]: configuration rejected: the reason\n'
    event = ProcessStderr(text=line, action=node, name='x', cmd=['x'], cwd=None,
                          env=None, pid=1)
    io = [r.event_handler for r in of_type(actions, RegisterEventHandler)
          if isinstance(r.event_handler, OnProcessIO) and r.event_handler.matches(event)]
    assert len(io) == 1
    assert io[0].handle(event, context) is None
    requests, _, error = play_lifecycle(module, context, actions, {failing: outcome})
    assert [(n, t) for n, t, _ in requests][-1] == failing
    name = {'recorder_node': 'sensr_recorder', 'bridge_node': 'sensr_bridge'}[failing[0]]
    assert error.startswith(f'{name} ') and 'configuration rejected: the reason' in error
    assert failing[1][:-1] in error  # configur(e|ing), activat(e|ing)


@NEEDS_LAUNCH
def test_record_launch_simulate_composed_rviz(monkeypatch):
    from launch.actions import ExecuteProcess, LogInfo, RegisterEventHandler
    from launch_ros.actions import LifecycleNode, Node
    from launch_ros.event_handlers import OnStateTransition

    _, context, actions = start_actions(RECORD_LAUNCH, monkeypatch, have_rviz=True,
                                        simulate='true', composed='True', rviz='1',
                                        host='10.0.0.9', sim_points='1000')
    assert not of_type(actions, LifecycleNode)
    assert not [r for r in of_type(actions, RegisterEventHandler)
                if isinstance(r.event_handler, OnStateTransition)]
    processes = {text(context, p.process_description.name): p
                 for p in of_type(actions, ExecuteProcess)}
    skip = len(guard.orphan_guard())
    sim, composed = (
        [text(context, part) for part in processes[name].process_description.cmd]
        for name in ('sensr_simulator', 'sensr_record'))
    assert sim[skip + 1:skip + 3] == ['-m', 'sensr_bridge.sim']
    assert composed[skip + 1:skip + 3] == ['-m', 'sensr_bridge.nodes.composed']
    assert sim[sim.index('--points') + 1] == '1000'
    assert 'host="127.0.0.1"' in composed
    assert any('10.0.0.9' in text(context, log.msg) for log in of_type(actions, LogInfo))
    (rviz,) = of_type(actions, Node)
    assert executable(context, rviz) == 'rviz2'
    arguments = [text(context, part) for part in rviz.process_description.cmd[1:3]]
    assert arguments[0] == '-d' and Path(arguments[1]).is_file(), arguments


@NEEDS_LAUNCH
@pytest.mark.parametrize('have_rviz', [True, False], ids=['rviz2', 'no-rviz2'])
def test_bridge_launch(monkeypatch, tmp_path, have_rviz):
    from launch.actions import ExecuteProcess, LogInfo, SetEnvironmentVariable
    from launch_ros.actions import Node

    params = tmp_path / 'p.yaml'
    params.write_text('/**:\n  ros__parameters:\n    frame_id: lidar\n')
    _, context, actions = start_actions(BRIDGE_LAUNCH, monkeypatch, have_rviz=have_rviz,
                                        host='sensr-master', params_file=str(params),
                                        output_port='0')
    nodes = of_type(actions, Node)
    assert [executable(context, n) for n in nodes] == \
        (['bridge_node', 'rviz2'] if have_rviz else ['bridge_node'])
    assert not of_type(actions, ExecuteProcess)  # no simulator
    assert len(of_type(actions, SetEnvironmentVariable)) == len(environment.dds_environment())
    notes = [text(context, log.msg) for log in of_type(actions, LogInfo)]
    assert len(notes) == (0 if have_rviz else 1)
    assert all(note.startswith('RViz not started: rviz2 is not installed') for note in notes)


# --- state labels of a real rclpy lifecycle node ---------------------------------------

def test_rclpy_transition_labels():
    """The labels the handlers match on are those rclpy's lifecycle nodes publish."""
    from lifecycle_msgs.msg import TransitionEvent
    import rclpy
    from rclpy.event_handler import SubscriptionEventCallbacks
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import LifecycleNode as RclpyLifecycleNode
    from rclpy.lifecycle import TransitionCallbackReturn

    outcome = {}

    class ScriptedNode(RclpyLifecycleNode):
        def on_configure(self, state):
            if outcome.get('configure') == 'error':
                return TransitionCallbackReturn.ERROR
            return (TransitionCallbackReturn.FAILURE if outcome.get('configure') == 'failure'
                    else TransitionCallbackReturn.SUCCESS)

        def on_activate(self, state):
            return {'failure': TransitionCallbackReturn.FAILURE,
                    'error': TransitionCallbackReturn.ERROR}.get(
                        outcome.get('activate'), TransitionCallbackReturn.SUCCESS)

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    events, cond, matched = [], threading.Condition(), threading.Event()
    try:
        node = ScriptedNode('labels', namespace='launch_test', context=context)
        listener = rclpy.create_node('listener', context=context)

        def got(msg):
            with cond:
                events.append((msg.start_state.label, msg.goal_state.label))
                cond.notify_all()

        listener.create_subscription(
            TransitionEvent, '/launch_test/labels/transition_event', got, 50,
            event_callbacks=SubscriptionEventCallbacks(
                matched=lambda info: info.current_count and matched.set()))
        executor.add_node(node)
        executor.add_node(listener)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        assert matched.wait(10), 'transition_event subscription never matched'

        def run(transition, result, count):
            """Trigger a transition; return the ``count`` events it published."""
            outcome.clear()
            outcome[transition] = result
            with cond:
                start = len(events)
            getattr(node, f'trigger_{transition}')()
            with cond:
                assert cond.wait_for(lambda: len(events) >= start + count, 10)
                return events[start:]

        for result in ('failure', 'error', 'success'):
            assert run('configure', result, len(LABELS['configure', result])) == \
                LABELS['configure', result]
        assert run('activate', 'success', 2) == LABELS['activate', 'success']
        assert run('deactivate', 'success', 2) == [('active', 'deactivating'),
                                                   ('deactivating', 'inactive')]
        assert run('activate', 'failure', 2) == LABELS['activate', 'failure']
        assert run('activate', 'error', 3) == LABELS['activate', 'error']
    finally:
        executor.shutdown()
        rclpy.try_shutdown(context=context)
    # Every pattern the launch file reacts to occurs in a real sequence.
    seen = {pair for sequence in LABELS.values() for pair in sequence}
    patterns = [s.after[1:] for s in plans.LIFECYCLE_STEPS if s.after]
    patterns += [f[1:] for f in plans.LIFECYCLE_FAILURES]
    assert set(patterns) <= seen


# --- plans --------------------------------------------------------------------

def test_defaults_plan():
    plan = plans.record_plan({})
    assert plan.simulator is None and plan.composed is None and plan.rviz_config is None
    assert plan.bridge.parameters == ({'autostart': False},)
    assert plan.recorder.parameters == ({'autostart': False},)
    assert plan.lifecycle == plans.LIFECYCLE_STEPS
    assert plan.environment == environment.dds_environment()
    assert plan.guard == guard.orphan_guard()
    assert plans.bridge_plan({}, have_rviz=False).bridge.parameters == \
        ({'autostart': True},)
    # The recorder publishes no clouds: the small-segment profile (test_environment).
    assert plan.bridge.environment == {}
    assert plan.recorder.environment == environment.dds_environment(publishes_clouds=False)


@pytest.mark.parametrize(('values', 'message'), [
    ({'storage': 'rosbag'}, 'storage'), ({'max_bagfile_size': '-1'}, 'max_bagfile_size'),
    ({'max_bagfile_duration': '1.5'}, 'max_bagfile_duration'), ({'output_port': '70000'},
                                                                'output_port'),
    ({'simulate': 'yes'}, 'simulate'), ({'composed': ''}, 'composed'),
    ({'params_file': '/nonexistent/p.yaml'}, 'params_file'),
    ({'storage_config_file': 'missing.yaml'}, 'storage_config_file'),
    ({'namespace': '1sensr'}, 'namespace'), ({'namespace': ''}, 'namespace'),
    ({'simulate': 'true', 'output_port': '0', 'point_port': '0'}, 'non-zero'),
    ({'simulate': 'true', 'sim_rate': '0'}, 'sim_rate'),
    ({'simulate': 'true', 'sim_points': 'many'}, 'sim_points'),
    ({'topic_intervals': '/points'}, 'topic_intervals'),
    ({'topic_intervals': '/points=1 ([=2'}, 'topic_intervals'),
    ({'skip_empty_clouds': 'yes'}, 'skip_empty_clouds'),
    ({'compression': 'gzip'}, 'compression'),
    ({'clip_mode': 'on'}, 'clip_mode'), ({'clip_before': '-1'}, 'clip_before'),
    ({'clip_after': 'soon'}, 'clip_after'), ({'clip_events': 'ENTRY@x'}, 'clip_events'),
    ({'clip_events': 'ENTER'}, 'clip_events'), ({'clip_buffer_bytes': '0'}, 'clip_buffer_bytes'),
])
def test_invalid_arguments(values, message):
    with pytest.raises(ConfigError, match=message):
        plans.record_plan(values)


@pytest.mark.parametrize(('text', 'expected'), [('true', True), ('True', True), ('1', True),
                                                ('FALSE', False), ('0', False)])
def test_flags_like_if_condition(text, expected):
    assert plans.parse_flag(text, 'x') is expected


def test_simulate_plan():
    plan = plans.record_plan({'simulate': 'true', 'point_port': '6001',
                                       'output_port': '0', 'sim_rate': '5'}, python='py')
    assert plan.simulator.cmd == ('py', '-m', 'sensr_bridge.sim', '--points', '921512',
                                  '--rate', '5.0', '--no-output', '--point-port', '6001')
    assert plan.bridge.parameters == ({'output_port': 0, 'point_port': 6001,
                                       'host': '127.0.0.1', 'autostart': False},)
    default_ports = plans.record_plan({'simulate': 'true'}, python='py')
    assert default_ports.bridge.parameters[-1]['output_port'] == protocol.OUTPUT_PORT
    assert default_ports.bridge.parameters[-1]['point_port'] == protocol.POINT_PORT
    assert default_ports.simulator.cmd[-4:] == ('--output-port', str(protocol.OUTPUT_PORT),
                                                '--point-port', str(protocol.POINT_PORT))


def test_composed_plan_round_trips_through_its_parser(tmp_path):
    params = tmp_path / 'p.yaml'
    params.write_text('/**:\n  ros__parameters: {}\n')
    config = ROOT / 'config' / 'storage_resilient.yaml'
    plan = plans.record_plan(
        {'composed': 'true', 'host': 'h', 'output_port': '1', 'output_dir': 'o d',
         'storage_config_file': str(config), 'max_bagfile_size': '1000', 'params_file':
         str(params), 'namespace': '/robot/lidar/'}, python='py')
    assert plan.bridge is None and plan.recorder is None and not plan.lifecycle
    cmd = list(plan.composed.cmd)
    assert cmd[:3] == ['py', '-m', 'sensr_bridge.nodes.composed']
    split = cmd.index('--ros-args')
    assert cmd[split:] == ['--ros-args', '--params-file', str(params)]
    args = composed_process.parser().parse_args(cmd[3:split])
    assert args.namespace == 'robot/lidar'
    assert dict(args.bridge) == {'host': 'h', 'output_port': 1, 'autostart': True}
    assert dict(args.recorder) == {
        'output_dir': 'o d', 'storage_config_file': str(config), 'max_bagfile_size': 1000,
        'topic_regex': '^/robot/lidar/', 'autostart': True}


def test_overrides_are_node_parameters_of_the_declared_type():
    everything = {a.name: '1' for a in plans.RECORD_ARGUMENTS}
    everything.update(host='h', output_dir='d', storage='mcap', storage_preset='resilient',
                      storage_config_file=str(ROOT / 'config' / 'storage_default.yaml'),
                      params_file='', namespace='other', rviz='false', composed='false',
                      simulate='false', topic_intervals='/points$=1.0 ^/sensr/objects=0.5',
                      compression='zstd', clip_mode='with_bag', clip_events='ENTRY@3 *',
                      clip_before='0')
    plan = plans.record_plan(everything)
    for node, declared in ((plan.bridge, BRIDGE), (plan.recorder, RECORDER)):
        types_ = {param.name: type(param.default) for param in declared}
        overrides = node.parameters[-1]
        assert {name: type(value) for name, value in overrides.items()} == \
            {name: types_[name] for name in overrides}
    assert set(plan.recorder.parameters[-1]) >= {'output_dir', 'storage', 'storage_preset',
                                                 'storage_config_file', 'max_bagfile_duration',
                                                 'max_bagfile_size', 'topic_regex',
                                                 'topic_intervals', 'skip_empty_clouds',
                                                 'compression', 'clip_mode', 'clip_before',
                                                 'clip_after', 'clip_events',
                                                 'clip_buffer_bytes'}
    assert plan.recorder.parameters[-1]['clip_events'] == ['ENTRY@3', '*']
    assert plan.recorder.parameters[-1]['topic_intervals'] == ['/points$=1.0',
                                                               '^/sensr/objects=0.5']


def test_sigterm_timeouts_cover_the_drains():
    def drain(declared):
        return {param.name: param.default for param in declared}['drain_timeout']

    assert plans.RECORDER_SIGTERM_TIMEOUT_S >= 5 * drain(RECORDER)
    assert plans.BRIDGE_SIGTERM_TIMEOUT_S >= 5 * drain(BRIDGE)


@pytest.mark.parametrize(('value', 'have', 'started', 'noted'), [
    ('auto', True, True, False), ('auto', False, False, True), ('AUTO', False, False, True),
    ('true', True, True, False), ('1', True, True, False), ('false', True, False, False),
    ('false', False, False, False)])
def test_rviz_where_installed(value, have, started, noted):
    for plan_of in (plans.bridge_plan, plans.record_plan):
        plan = plan_of({'rviz': value}, have_rviz=have)
        assert (plan.rviz_config is not None) is started
        if started:
            assert Path(plan.rviz_config).is_file()
        notes = [note for note in plan.notes if 'RViz' in note]
        assert len(notes) == int(noted), notes
        if noted:
            assert 'rviz2 is not installed' in notes[0] and '-rviz2' in notes[0]


def test_rviz_defaults(monkeypatch):
    """bridge.launch.py starts RViz where rviz2 is installed; record.launch.py does not."""
    assert {a.name: a.default for a in plans.BRIDGE_ARGUMENTS}['rviz'] == 'auto'
    assert {a.name: a.default for a in plans.RECORD_ARGUMENTS}['rviz'] == 'false'
    monkeypatch.setattr(plans, 'rviz_installed', lambda: True)
    assert plans.bridge_plan({}).rviz_config is not None
    monkeypatch.setattr(plans, 'rviz_installed', lambda: False)
    assert plans.bridge_plan({}).rviz_config is None
    monkeypatch.setattr(plans, 'rviz_installed', lambda: pytest.fail('asked'))
    assert plans.record_plan({}).rviz_config is None


@pytest.mark.parametrize('plan_of', [plans.bridge_plan, plans.record_plan])
def test_rviz_true_without_rviz2_fails_before_anything_starts(plan_of):
    with pytest.raises(ConfigError, match=r'rviz:=true, but rviz2 is not installed .* install '
                                          r'ros-\S+-rviz2 or launch with rviz:=false'):
        plan_of({'rviz': 'true'}, have_rviz=False)
    with pytest.raises(ConfigError, match='rviz must be true, false or auto'):
        plan_of({'rviz': 'maybe'}, have_rviz=True)


def test_rviz_installed_looks_in_the_ament_index(tmp_path, monkeypatch):
    """What launch_ros needs to start rviz2: the package in the index and lib/rviz2/rviz2."""
    pytest.importorskip('ament_index_python')
    prefix = tmp_path / 'prefix'
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    assert not plans.rviz_installed()
    (index / 'rviz2').write_text('')
    assert not plans.rviz_installed()  # the package without its executable
    program = prefix / 'lib' / 'rviz2' / 'rviz2'
    program.parent.mkdir(parents=True)
    program.write_text('#!/bin/sh\n')
    program.chmod(0o755)
    assert plans.rviz_installed()
    assert plans.find_executable('rviz2', 'rviz2') == str(program)
    monkeypatch.delenv('AMENT_PREFIX_PATH')
    assert not plans.rviz_installed()


def test_check_installed_names_what_is_missing():
    plan = plans.record_plan({'rviz': 'true'}, have_rviz=True)
    looked_up = []

    def find(package, executable):
        looked_up.append((package, executable))
        return '/bin/x' if executable == 'recorder_node' else None

    with pytest.raises(ConfigError, match=r'not installed: sensr_bridge/bridge_node, '
                                          r'rviz2/rviz2 .*colcon.*nothing was started'):
        plans.check_installed(plan, find=find)
    assert set(looked_up) == {('sensr_bridge', 'bridge_node'), ('sensr_bridge', 'recorder_node'),
                              ('rviz2', 'rviz2')}
    plans.check_installed(plan, find=lambda package, executable: '/bin/x')
    # The simulator and the composed process are `python -m`: nothing to look up.
    composed = plans.record_plan({'composed': 'true', 'simulate': 'true'})
    plans.check_installed(composed, find=lambda package, executable: None)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='prctl is Linux only')
def test_orphan_guard_stops_a_process_whose_launch_died(tmp_path):
    """A process under the guard gets SIGTERM once the process that started it is gone."""
    import psutil

    marker = tmp_path / 'child'
    child = ('import pathlib, signal, sys, time\n'
             'path = pathlib.Path(sys.argv[1])\n'
             'signal.signal(signal.SIGTERM, lambda *_: (path.write_text("SIGTERM"), sys.exit(0)))\n'
             'path.write_text("started")\n'
             'time.sleep(60)\n')
    # The "launch": starts the child under the guard, exits without stopping it.
    launcher = ('import pathlib, subprocess, sys, time\n'
                'from sensr_bridge.launching import guard\n'
                'child = subprocess.Popen([*guard.orphan_guard(), sys.executable,'
                ' "-c", sys.argv[1], sys.argv[2]])\n'
                'print(child.pid, flush=True)\n'
                'end = time.monotonic() + 30\n'
                'while not pathlib.Path(sys.argv[2]).exists() and time.monotonic() < end:\n'
                '    time.sleep(0.02)\n')
    result = subprocess.run([sys.executable, '-c', launcher, child, str(marker)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    pid = int(result.stdout.split()[0])

    def gone():
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    assert wait_until(gone, 10), 'the orphan kept running'
    assert marker.read_text() == 'SIGTERM'
    # Its launch process already gone before it started: it does not start at all.
    late = subprocess.run([*guard.orphan_guard(parent=1), sys.executable, '-c',
                           'print("started")'], capture_output=True, text=True, timeout=60,
                          check=False)
    assert late.returncode != 0 and not late.stdout, late
    assert 'the launch process is gone' in late.stderr


def test_recorder_wait_until_every_topic_is_subscribed():
    wait = guard.RecorderWait('sensr')
    bridge = ['/sensr/points', '/sensr/events', '/sensr/sensr_bridge/transition_event',
              '/diagnostics', '/rosout', '/parameter_events']
    assert wait.update(0.0, [], []) is None  # the bridge not in the graph yet
    assert wait.update(0.1, bridge, []) is None
    assert wait.update(0.2, bridge, ['/sensr/events', '/rosout']) is None
    assert wait.update(5.0, bridge, ['/sensr/events', '/sensr/points']) == ''


def test_recorder_wait_for_a_recorder_of_some_topics():
    """topics/topic_regex may leave some out: ready once no new one came for quiet_s."""
    wait = guard.RecorderWait('robot/lidar', quiet_s=1.0)
    bridge = ['/robot/lidar/points', '/robot/lidar/events']
    assert wait.update(0.0, bridge, ['/robot/lidar/points']) is None
    assert wait.update(0.9, bridge, ['/robot/lidar/points']) is None
    assert wait.update(1.0, bridge, ['/robot/lidar/points']) == ''


def test_recorder_wait_times_out_with_a_note():
    wait = guard.RecorderWait('sensr', timeout_s=15.0)
    bridge = ['/sensr/points', '/sensr/events']
    assert wait.update(0.0, bridge, []) is None
    assert wait.update(14.9, bridge, []) is None
    note = wait.update(15.0, bridge, [])
    assert '/sensr/events, /sensr/points within 15 s' in note
    assert 'activating the bridge anyway' in note


def test_process_errors_keep_the_last_error():
    errors = guard.ProcessErrors()
    assert errors.last('recorder') is None
    errors.feed('recorder', b'[INFO] [1796545192.8] [sensr.sensr_recorder]: recording to x\n'
                b'[ERROR] [1796545192.9] [sensr.sensr_recorder]: configuration rejected: '
                b'output_dir x cannot be created: File exists\n', stderr=True)
    errors.feed('recorder', '[WARN] [1796545193.0] [sensr.sensr_recorder]: later\n', stderr=True)
    assert errors.last('recorder') == \
        'configuration rejected: output_dir x cannot be created: File exists'
    errors.feed('sim', 'ready output_port=1 point_port=2\n')
    assert errors.last('sim') is None  # stdout that is not an error
    errors.feed('sim', 'Traceback (most recent call last):\n  File "x"\n'
                'OSError: [Errno 98] Address already in use\n', stderr=True)
    assert errors.last('sim') == 'OSError: [Errno 98] Address already in use'


def test_failure_lines():
    assert guard.lifecycle_failure('sensr_recorder', 'configuring', 'unconfigured',
                                            'why') == \
        'sensr_recorder failed to configure: why; stopping the launch'
    line = guard.lifecycle_failure('sensr_bridge', 'activating', 'errorprocessing',
                                            None)
    assert line.startswith('sensr_bridge raised an error while activating: see its log')
    assert guard.exit_failure('sensr_record', 1, 'boom') == \
        'sensr_record exited with code 1: boom; stopping the launch'
    failure = guard.exit_is_failure
    assert not failure(0, shutting_down=False)
    assert failure(1, shutting_down=True)
    assert failure(-signal.SIGINT, shutting_down=False)
    assert not failure(-signal.SIGINT, shutting_down=True)  # still starting when stopped
    assert not failure(-signal.SIGTERM, shutting_down=True)
    assert failure(-signal.SIGKILL, shutting_down=True)  # outlived its sigterm_timeout


# --- config files ------------------------------------------------------------------------

@pytest.mark.parametrize(('name', 'preset'), [('storage_default.yaml', pragmas.DEFAULT_PRESET),
                                              ('storage_durable.yaml', 'durable'),
                                              ('storage_resilient.yaml', 'resilient')])
def test_storage_config_files_are_the_presets(name, preset, tmp_path):
    path = ROOT / 'config' / name
    assert pragmas.parse_storage_config(path) == list(pragmas.PRESETS[preset])
    assert pragmas.resolve_pragmas(preset, path) == pragmas.resolve_pragmas(preset)
    for other in pragmas.preset_names():  # the file wins over any preset for what it sets
        assert set(pragmas.PRESETS[preset]) <= set(pragmas.resolve_pragmas(other, path))
    # What rosbag2 itself reads: write.pragmas, a list of strings.
    assert all(isinstance(e, str) for e in yaml.safe_load(path.read_text())['write']['pragmas'])
    conn = sqlite3.connect(tmp_path / 'bag.db3')
    try:
        pragmas.apply_pragmas(conn, pragmas.resolve_pragmas('', path))
        journal = conn.execute('PRAGMA journal_mode').fetchone()[0]
    finally:
        conn.close()
    assert journal.lower() == pragmas.pragma_value(list(pragmas.PRESETS[preset]),
                                                   'journal_mode').lower()


# --- the composed process, for real ----------------------------------------------------

class PipelineWatcher:
    """Follows the bridge's pipeline counters on /diagnostics (from another process)."""

    def __init__(self, context):
        from diagnostic_msgs.msg import DiagnosticArray
        import rclpy

        self.node = rclpy.create_node('launch_test_watcher', context=context)
        self.published = 0
        self.cond = threading.Condition()
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._got, 10)

    def _got(self, array):
        for status in array.status:
            if status.name.endswith(': pipeline'):
                values = {kv.key: kv.value for kv in status.values}
                with self.cond:
                    # Counters appear once they are first incremented.
                    self.published = max(self.published, int(values.get('points_published', 0)))
                    self.cond.notify_all()

    def wait_published(self, n, timeout=60.0):
        with self.cond:
            return self.cond.wait_for(lambda: self.published >= n, timeout)


def test_composed_process_records_every_frame(tmp_path):
    """Params file, overrides and start order of ``python -m sensr_bridge.nodes.composed``.

    The simulator starts its frame clock only once the bridge is connected, i.e. active;
    every frame must be in the bag, so the recorder was subscribed before that.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from sensr_bridge.sim.config import SimulatorConfig
    from sensr_bridge.sim.server import Simulator

    frames = 12
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'cloud_mode': 'per_type', 'bag_name': 'from_params', 'output_dir': '/nonexistent',
        'stats_log_period': 0.0, 'publish_markers': False, 'diagnostics_period': 0.2,
        # Under load (2 shared cores) the decoder may fall behind: it must not drop here.
        'max_pending_frames': 4 * frames}}}))
    sim = Simulator(SimulatorConfig(output_port=0, point_port=0, points=3000, rate_hz=10,
                                    max_frames=frames, start_after_clients=2,
                                    zones_interval_s=None, health_interval_s=None,
                                    event_interval_s=None, custom_interval_s=None))
    sim.start()
    plan = plans.record_plan({
        'composed': 'true', 'host': '127.0.0.1', 'output_port': str(sim.output_port),
        'point_port': str(sim.point_port), 'output_dir': str(tmp_path / 'bags'),
        'params_file': str(params), 'namespace': 'composed_test'})
    context = rclpy.Context()
    rclpy.init(context=context)
    watcher = PipelineWatcher(context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(watcher.node)
    threading.Thread(target=executor.spin, daemon=True).start()
    log = tmp_path / 'composed.log'
    with log.open('w') as sink:
        proc = subprocess.Popen(list(plan.composed.cmd), stdout=sink, stderr=subprocess.STDOUT,
                                env={**os.environ, **plan.environment})
    try:
        assert sim.wait(60), 'the simulator did not send its frames'
        published = watcher.wait_published(frames)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        executor.shutdown()
        rclpy.try_shutdown(context=context)
        sim.stop()
    out = log.read_text()
    assert published, (watcher.published, out[-3000:])
    assert proc.returncode == 0, out
    assert 'Traceback' not in out, out
    bags = list((tmp_path / 'bags').glob('from_params/metadata.yaml'))
    assert len(bags) == 1, out
    counts = {t.name: t.count for t in summarize(bags[0].parent).topics}
    topics = [f'/composed_test/points/{k}' for k in ('ground', 'background', 'raw')]
    assert {t: counts.get(t) for t in topics} == dict.fromkeys(topics, frames), out[-3000:]
    assert '/composed_test/points' not in counts
