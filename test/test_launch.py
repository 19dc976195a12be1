# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The launch files, their helper module and the config files they point to.

``launch`` and ``launch_ros`` have no pip wheels, so most of this runs without them:

- the launch files are compiled, then executed against stand-ins of the launch API
  whose signatures are what Humble, Jazzy and Kilted all accept (``LifecycleNode``
  requires ``namespace`` as in Humble and has no ``autostart``, which Humble lacks,
  ...); an import or keyword outside that set fails. The lifecycle handlers they
  register are then driven with the state labels rclpy really publishes (checked
  against a real rclpy lifecycle node below);
- :mod:`sensr_bridge.launch_support`, which computes everything, is tested directly,
  and its composed process runs for real against the simulator;
- where ``launch`` is importable, record.launch.py runs through ``LaunchService``.
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
import types

from lifecycle_msgs.msg import Transition
import pytest
import yaml

from sensr_bridge import launch_support, paths, protocol
from sensr_bridge.bag import pragmas
from sensr_bridge.bag.info import summarize
from sensr_bridge.errors import ConfigError

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


# --- stand-ins of the launch API (the signatures common to Humble, Jazzy, Kilted) ------

class Entity:
    """Keeps the arguments a stand-in was built with."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs


def _substitution(value, what):
    # SomeSubstitutionsType: text, a Path, a substitution or a list of them; not an int.
    assert isinstance(value, (str, Path)), f'{what} must be text, not {value!r}'


class LaunchDescription(Entity):
    def __init__(self, initial_entities=None):
        super().__init__(initial_entities=list(initial_entities or []))


class DeclareLaunchArgument(Entity):
    def __init__(self, name, *, default_value=None, description=None, choices=None):
        if choices is not None:  # launch raises on both
            assert choices, 'empty choices'
            assert default_value in choices, (name, default_value, choices)
        super().__init__(name=name, default_value=default_value, description=description,
                         choices=choices)


class OpaqueFunction(Entity):
    def __init__(self, *, function, args=None, kwargs=None):
        super().__init__(function=function, args=args, kwargs=kwargs)


class SetEnvironmentVariable(Entity):
    def __init__(self, name, value):
        _substitution(name, 'name')
        _substitution(value, 'value')
        super().__init__(name=name, value=value)


class LogInfo(Entity):
    def __init__(self, *, msg):
        super().__init__(msg=msg)


class Shutdown(Entity):
    def __init__(self, *, reason='reason not given'):
        super().__init__(reason=reason)


class EmitEvent(Entity):
    def __init__(self, *, event):
        super().__init__(event=event)


class RegisterEventHandler(Entity):
    def __init__(self, event_handler):
        super().__init__(event_handler=event_handler)


def _process_kwargs(*, cwd=None, env=None, additional_env=None, shell=False,
                    sigterm_timeout='5', sigkill_timeout='5', emulate_tty=False, output='log',
                    respawn=False, respawn_delay=None, on_exit=None):
    for what, value in (('sigterm_timeout', sigterm_timeout), ('sigkill_timeout',
                                                                sigkill_timeout)):
        _substitution(value, what)
        assert float(value) > 0
    assert output in ('log', 'screen', 'both', 'own_log')
    return {'sigterm_timeout': sigterm_timeout, 'output': output}


class ExecuteProcess(Entity):
    def __init__(self, *, cmd, prefix=None, name=None, **kwargs):
        assert cmd and all(isinstance(part, str) for part in cmd), cmd
        super().__init__(cmd=cmd, name=name, **_process_kwargs(**kwargs))


class Node(Entity):
    def __init__(self, *, executable, package=None, name=None, namespace=None,
                 exec_name=None, parameters=None, remappings=None, arguments=None, **kwargs):
        for entry in parameters or []:
            if isinstance(entry, dict):
                assert all(isinstance(k, str) for k in entry)
                assert all(isinstance(v, (bool, int, float, str)) for v in entry.values())
            else:
                _substitution(entry, 'parameter file')
        super().__init__(executable=executable, package=package, name=name,
                         namespace=namespace, parameters=parameters, arguments=arguments,
                         **_process_kwargs(**kwargs))


class LifecycleNode(Node):
    def __init__(self, *, name, namespace, **kwargs):  # Humble requires both
        super().__init__(name=name, namespace=namespace, **kwargs)


def matches_action(target_action):
    return lambda action: action is target_action


class ChangeState(Entity):
    def __init__(self, *, lifecycle_node_matcher, transition_id):
        valid = {getattr(Transition, n) for n in dir(Transition) if n.startswith('TRANSITION_')}
        assert transition_id in valid, transition_id
        super().__init__(lifecycle_node_matcher=lifecycle_node_matcher,
                         transition_id=transition_id)


class OnStateTransition(Entity):
    def __init__(self, *, entities, target_lifecycle_node=None, transition=None,
                 start_state=None, goal_state=None, matcher=None):
        assert isinstance(target_lifecycle_node, (LifecycleNode, type(None)))
        super().__init__(entities=entities, target_lifecycle_node=target_lifecycle_node,
                         start_state=start_state, goal_state=goal_state)

    def matches(self, node, start_state, goal_state):
        """The default matcher of launch_ros's OnStateTransition."""
        k = self.kwargs
        return ((k['target_lifecycle_node'] is None or k['target_lifecycle_node'] is node)
                and (k['start_state'] is None or k['start_state'] == start_state)
                and (k['goal_state'] is None or k['goal_state'] == goal_state))


def _modules():
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    return {
        'launch': module('launch', LaunchDescription=LaunchDescription),
        'launch.actions': module(
            'launch.actions', DeclareLaunchArgument=DeclareLaunchArgument, EmitEvent=EmitEvent,
            ExecuteProcess=ExecuteProcess, LogInfo=LogInfo, OpaqueFunction=OpaqueFunction,
            RegisterEventHandler=RegisterEventHandler, Shutdown=Shutdown,
            SetEnvironmentVariable=SetEnvironmentVariable),
        'launch.events': module('launch.events', matches_action=matches_action),
        'launch_ros': module('launch_ros'),
        'launch_ros.actions': module('launch_ros.actions', LifecycleNode=LifecycleNode,
                                     Node=Node),
        'launch_ros.event_handlers': module('launch_ros.event_handlers',
                                            OnStateTransition=OnStateTransition),
        'launch_ros.events': module('launch_ros.events'),
        'launch_ros.events.lifecycle': module('launch_ros.events.lifecycle',
                                              ChangeState=ChangeState),
    }


@pytest.fixture
def load_launch(monkeypatch):
    """Load a launch file against the stand-ins; return (arguments, actions for values)."""
    for name, module in _modules().items():
        monkeypatch.setitem(sys.modules, name, module)

    def load(path, **values):
        spec = importlib.util.spec_from_file_location(path.stem.replace('.', '_'), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
        entities = description.kwargs['initial_entities']
        arguments = [e for e in entities if isinstance(e, DeclareLaunchArgument)]
        functions = [e for e in entities if isinstance(e, OpaqueFunction)]
        assert len(functions) == 1 and entities[-1] is functions[0]
        configurations = {a.kwargs['name']: a.kwargs['default_value'] for a in arguments}
        unknown = set(values) - set(configurations)
        assert not unknown, f'undeclared launch arguments {unknown}'
        configurations.update(values)
        context = types.SimpleNamespace(launch_configurations=configurations)
        return arguments, functions[0].kwargs['function'](context)

    return load


def of_type(actions, cls):
    return [a for a in actions if type(a) is cls]


def drive_lifecycle(actions, outcomes=None):
    """Play launch's event loop over the lifecycle actions, the nodes answering per LABELS.

    Returns:
        The transition requests in order, as (node name, transition, states of all nodes
        when requested), and the shutdown reasons.

    """
    outcomes = outcomes or {}
    nodes = {n.kwargs['name']: n for n in of_type(actions, LifecycleNode)}
    handlers = [r.kwargs['event_handler'] for r in of_type(actions, RegisterEventHandler)]
    state = dict.fromkeys(nodes, 'unconfigured')
    queue = deque(e.kwargs['event'] for e in of_type(actions, EmitEvent))
    requests, shutdowns = [], []
    while queue:
        event = queue.popleft()
        if isinstance(event, ChangeState):
            for name, node in nodes.items():
                if not event.kwargs['lifecycle_node_matcher'](node):
                    continue
                transition = {CONFIGURE: 'configure', ACTIVATE: 'activate'}[
                    event.kwargs['transition_id']]
                requests.append((name, transition, dict(state)))
                outcome = outcomes.get((name, transition), 'success')
                for start, goal in LABELS[transition, outcome]:
                    state[name] = goal
                    queue.append((node, start, goal))
            continue
        for handler in handlers:
            if handler.matches(*event):
                for entity in handler.kwargs['entities']:
                    if isinstance(entity, EmitEvent):
                        queue.append(entity.kwargs['event'])
                    else:
                        assert isinstance(entity, Shutdown)
                        shutdowns.append(entity.kwargs['reason'])
    return requests, shutdowns


def test_record_launch_arguments(load_launch):
    arguments, _ = load_launch(RECORD_LAUNCH)
    names = [a.kwargs['name'] for a in arguments]
    assert len(names) == len(set(names))
    assert set(names) >= {'host', 'output_port', 'point_port', 'output_dir', 'storage',
                          'max_bagfile_duration', 'max_bagfile_size', 'params_file',
                          'storage_config_file', 'simulate', 'rviz', 'composed', 'namespace'}
    storage = next(a for a in arguments if a.kwargs['name'] == 'storage')
    assert set(storage.kwargs['choices']) == {'', 'sqlite3', 'mcap'}
    assert all(a.kwargs['description'] for a in arguments)


def test_record_launch_separate_processes(load_launch, tmp_path):
    params = tmp_path / 'params.yaml'
    params.write_text('/**:\n  ros__parameters:\n    cloud_mode: per_type\n')
    _, actions = load_launch(RECORD_LAUNCH, params_file=str(params), output_dir='out',
                             storage='mcap', max_bagfile_duration='60')
    env = {a.kwargs['name']: a.kwargs['value'] for a in of_type(actions, SetEnvironmentVariable)}
    assert set(env) == set(paths.dds_environment())
    assert all(Path(v).is_file() for v in env.values())
    first_process = min(i for i, a in enumerate(actions)
                        if isinstance(a, (ExecuteProcess, Node)))
    assert max(i for i, a in enumerate(actions)
               if isinstance(a, SetEnvironmentVariable)) < first_process
    assert not of_type(actions, ExecuteProcess) and not of_type(actions, Node)
    nodes = {n.kwargs['name']: n.kwargs for n in of_type(actions, LifecycleNode)}
    assert set(nodes) == {'sensr_bridge', 'sensr_recorder'}
    bridge, recorder = nodes['sensr_bridge'], nodes['sensr_recorder']
    assert bridge['namespace'] == recorder['namespace'] == 'sensr'
    assert bridge['parameters'] == [str(params), {'autostart': False}]
    assert recorder['parameters'] == [str(params), {
        'output_dir': 'out', 'storage': 'mcap', 'max_bagfile_duration': 60, 'autostart': False}]
    assert float(recorder['sigterm_timeout']) > float(bridge['sigterm_timeout'])


def test_record_launch_brings_recorder_up_before_bridge(load_launch):
    _, actions = load_launch(RECORD_LAUNCH)
    requests, shutdowns = drive_lifecycle(actions)
    assert [(n, t) for n, t, _ in requests] == [
        ('sensr_recorder', 'configure'), ('sensr_bridge', 'configure'),
        ('sensr_recorder', 'activate'), ('sensr_bridge', 'activate')]
    assert requests[-1][2]['sensr_recorder'] == 'active'
    assert not shutdowns
    # Handlers are registered before the event that starts the chain is emitted.
    emit = actions.index(of_type(actions, EmitEvent)[0])
    assert all(actions.index(r) < emit for r in of_type(actions, RegisterEventHandler))


@pytest.mark.parametrize(('failing', 'outcome'), [
    (('sensr_recorder', 'configure'), 'failure'), (('sensr_recorder', 'configure'), 'error'),
    (('sensr_bridge', 'configure'), 'failure'), (('sensr_recorder', 'activate'), 'failure'),
    (('sensr_bridge', 'activate'), 'failure'), (('sensr_bridge', 'activate'), 'error')])
def test_record_launch_shuts_down_when_a_transition_fails(load_launch, failing, outcome):
    _, actions = load_launch(RECORD_LAUNCH)
    requests, shutdowns = drive_lifecycle(actions, {failing: outcome})
    assert [(n, t) for n, t, _ in requests][-1] == failing
    assert len(shutdowns) == 1 and failing[0].split('_')[1] in shutdowns[0]


def test_record_launch_simulate_composed_rviz(load_launch):
    _, actions = load_launch(RECORD_LAUNCH, simulate='true', composed='True', rviz='1',
                             host='10.0.0.9', sim_points='1000')
    assert not of_type(actions, LifecycleNode) and not of_type(actions, RegisterEventHandler)
    processes = {p.kwargs['name']: p.kwargs for p in of_type(actions, ExecuteProcess)}
    sim, composed = processes['sensr_simulator'], processes['sensr_record']
    assert sim['cmd'][1:3] == ['-m', 'sensr_bridge.simulator']
    assert composed['cmd'][1:3] == ['-m', 'sensr_bridge.launch_support']
    assert '--points' in sim['cmd'] and sim['cmd'][sim['cmd'].index('--points') + 1] == '1000'
    assert 'host="127.0.0.1"' in composed['cmd']
    assert any('10.0.0.9' in log.kwargs['msg'] for log in of_type(actions, LogInfo))
    rviz = of_type(actions, Node)[0].kwargs
    assert rviz['package'] == 'rviz2' and Path(rviz['arguments'][1]).is_file()


def test_bridge_launch(load_launch, tmp_path):
    params = tmp_path / 'p.yaml'
    params.write_text('/**:\n  ros__parameters:\n    frame_id: lidar\n')
    arguments, actions = load_launch(BRIDGE_LAUNCH, host='sensr-master', params_file=str(params),
                                     output_port='0')
    assert {a.kwargs['name'] for a in arguments} >= {'host', 'output_port', 'point_port',
                                                     'params_file', 'rviz', 'simulate'}
    bridge, rviz = of_type(actions, Node)
    assert bridge.kwargs['executable'] == 'bridge_node'
    assert bridge.kwargs['namespace'] == 'sensr'
    assert bridge.kwargs['parameters'] == [
        str(params), {'output_port': 0, 'host': 'sensr-master', 'autostart': True}]
    assert rviz.kwargs['executable'] == 'rviz2'  # rviz defaults to true here
    assert len(of_type(actions, SetEnvironmentVariable)) == 2


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
    patterns = [s.after[1:] for s in launch_support.LIFECYCLE_STEPS if s.after]
    patterns += [f[1:] for f in launch_support.LIFECYCLE_FAILURES]
    assert set(patterns) <= seen


# --- launch_support --------------------------------------------------------------------

def test_defaults_plan():
    plan = launch_support.record_plan({})
    assert plan.simulator is None and plan.composed is None and plan.rviz_config is None
    assert plan.bridge.parameters == ({'autostart': False},)
    assert plan.recorder.parameters == ({'autostart': False},)
    assert plan.lifecycle == launch_support.LIFECYCLE_STEPS
    assert plan.environment == paths.dds_environment()
    assert launch_support.bridge_plan({}).bridge.parameters == ({'autostart': True},)


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
])
def test_invalid_arguments(values, message):
    with pytest.raises(ConfigError, match=message):
        launch_support.record_plan(values)


@pytest.mark.parametrize(('text', 'expected'), [('true', True), ('True', True), ('1', True),
                                                ('FALSE', False), ('0', False)])
def test_flags_like_if_condition(text, expected):
    assert launch_support.parse_flag(text, 'x') is expected


def test_simulate_plan():
    plan = launch_support.record_plan({'simulate': 'true', 'point_port': '6001',
                                       'output_port': '0', 'sim_rate': '5'}, python='py')
    assert plan.simulator.cmd == ('py', '-m', 'sensr_bridge.simulator', '--points', '921512',
                                  '--rate', '5.0', '--no-output', '--point-port', '6001')
    assert plan.bridge.parameters == ({'output_port': 0, 'point_port': 6001,
                                       'host': '127.0.0.1', 'autostart': False},)
    default_ports = launch_support.record_plan({'simulate': 'true'}, python='py')
    assert default_ports.bridge.parameters[-1]['output_port'] == protocol.OUTPUT_PORT
    assert default_ports.bridge.parameters[-1]['point_port'] == protocol.POINT_PORT
    assert default_ports.simulator.cmd[-4:] == ('--output-port', str(protocol.OUTPUT_PORT),
                                                '--point-port', str(protocol.POINT_PORT))


def test_composed_plan_round_trips_through_its_parser(tmp_path):
    params = tmp_path / 'p.yaml'
    params.write_text('/**:\n  ros__parameters: {}\n')
    config = ROOT / 'config' / 'storage_resilient.yaml'
    plan = launch_support.record_plan(
        {'composed': 'true', 'host': 'h', 'output_port': '1', 'output_dir': 'o d',
         'storage_config_file': str(config), 'max_bagfile_size': '1000', 'params_file':
         str(params), 'namespace': '/robot/lidar/'}, python='py')
    assert plan.bridge is None and plan.recorder is None and not plan.lifecycle
    cmd = list(plan.composed.cmd)
    assert cmd[:3] == ['py', '-m', 'sensr_bridge.launch_support']
    split = cmd.index('--ros-args')
    assert cmd[split:] == ['--ros-args', '--params-file', str(params)]
    args = launch_support._parser().parse_args(cmd[3:split])
    assert args.namespace == 'robot/lidar'
    assert dict(args.bridge) == {'host': 'h', 'output_port': 1, 'autostart': True}
    assert dict(args.recorder) == {
        'output_dir': 'o d', 'storage_config_file': str(config), 'max_bagfile_size': 1000,
        'topic_regex': '^/robot/lidar/', 'autostart': True}


def test_overrides_are_node_parameters_of_the_declared_type():
    from sensr_bridge.bridge_node import PARAMETERS as BRIDGE
    from sensr_bridge.recorder_node import PARAMETERS as RECORDER

    everything = {a.name: '1' for a in launch_support.RECORD_ARGUMENTS}
    everything.update(host='h', output_dir='d', storage='mcap', storage_preset='resilient',
                      storage_config_file=str(ROOT / 'config' / 'storage_default.yaml'),
                      params_file='', namespace='other', rviz='false', composed='false',
                      simulate='false')
    plan = launch_support.record_plan(everything)
    for node, declared in ((plan.bridge, BRIDGE), (plan.recorder, RECORDER)):
        types_ = {name: type(default) for name, default, _ in declared}
        overrides = node.parameters[-1]
        assert {name: type(value) for name, value in overrides.items()} == \
            {name: types_[name] for name in overrides}
    assert set(plan.recorder.parameters[-1]) >= {'output_dir', 'storage', 'storage_preset',
                                                 'storage_config_file', 'max_bagfile_duration',
                                                 'max_bagfile_size', 'topic_regex'}


def test_sigterm_timeouts_cover_the_drains():
    from sensr_bridge.bridge_node import PARAMETERS as BRIDGE
    from sensr_bridge.recorder_node import PARAMETERS as RECORDER

    def drain(declared):
        return {n: d for n, d, _ in declared}['drain_timeout']

    assert launch_support.RECORDER_SIGTERM_TIMEOUT_S >= 5 * drain(RECORDER)
    assert launch_support.BRIDGE_SIGTERM_TIMEOUT_S >= 5 * drain(BRIDGE)


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
    """Params file, overrides and start order of ``python -m sensr_bridge.launch_support``.

    The simulator starts its frame clock only once the bridge is connected, i.e. active;
    every frame must be in the bag, so the recorder was subscribed before that.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from sensr_bridge.simulator import Simulator, SimulatorConfig

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
    plan = launch_support.record_plan({
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


# --- record.launch.py through launch itself, where launch is installed -------------------

def _launch_modules():
    try:
        import launch_ros  # noqa: F401

        import launch
    except ImportError as exc:
        pytest.skip(f'launch/launch_ros not importable ({exc}); they have no pip wheels: '
                    'run under a sourced ROS 2 install (colcon test)')
    return launch


@pytest.mark.parametrize('composed', ['false', 'true'])
def test_record_launch_with_launch_service(tmp_path, composed):
    launch = _launch_modules()
    if composed == 'false':  # launch_ros finds the node executables through the ament index
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            get_package_share_directory(launch_support.PACKAGE)
        except PackageNotFoundError:
            pytest.skip('sensr_bridge is not installed in a sourced workspace (colcon build)')
    from launch.actions import IncludeLaunchDescription, Shutdown, TimerAction
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    arguments = {'simulate': 'true', 'composed': composed, 'output_dir': str(tmp_path),
                 'sim_points': '20000', 'sim_rate': '10', 'namespace': 'launch_service',
                 'output_port': '15050', 'point_port': '15051'}
    service = launch.LaunchService()
    service.include_launch_description(launch.LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(RECORD_LAUNCH)),
                                 launch_arguments=arguments.items()),
        # Record for a while (launch's own timer), then shut down as Ctrl+C would.
        TimerAction(period=12.0, actions=[Shutdown(reason='test done')]),
    ]))
    assert service.run() == 0
    bags = list(tmp_path.glob('*/metadata.yaml'))
    assert len(bags) == 1
    counts = {t.name: t.count for t in summarize(bags[0].parent).topics}
    assert counts.get('/launch_service/points', 0) > 0, counts
    assert counts.get('/launch_service/output_raw', 0) > 0, counts

