# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Lifecycle transitions of the bridge and recorder nodes, in-process with their own Context.

Every transition is triggered directly (as a lifecycle manager would through the
change_state service) and checked against the state machine and against what the node
really does: publishers and SENSR connections for the bridge, subscriptions and the bag
on disk for the recorder. Failing configurations must end in FAILURE with a clear log
line, leave the node unconfigured and raise nothing. Bag permissions are checked here too.
"""

import os
from pathlib import Path
import stat
import subprocess
import threading
import time

from diagnostic_msgs.msg import DiagnosticStatus
from helpers import received, recorder_node, start_bridge, wait_until, written
import psutil
import pytest
import rclpy
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import String

from sensr_bridge.bag import base as bag
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.nodes.bridge import BridgeNode
from sensr_bridge.nodes.declaration import ParameterError
from sensr_bridge.nodes.lifecycle import GuardedLifecycleNode
from sensr_bridge.nodes.recorder import RecorderNode

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
# Simulator settings of the make_sim fixture (conftest).
SMALL = {'output_port': 0, 'point_port': 0, 'rate_hz': 20.0, 'points': 20_000}
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


def state(node):
    return node._state_machine.current_state[1]


class Collector:
    """Counts the clouds arriving on /sensr/points."""

    def __init__(self, context, executor):
        self.node = rclpy.create_node('lifecycle_collector', context=context)
        self.count = 0
        self.cond = threading.Condition()
        self.node.create_subscription(PointCloud2, '/sensr/points', self._got,
                                      QoSProfile(depth=50,
                                                 reliability=ReliabilityPolicy.RELIABLE),
                                      raw=True)
        executor.add_node(self.node)

    def _got(self, _data):
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait(self, n, timeout=20.0):
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= n, timeout)

    def publishers(self):
        return self.node.count_publishers('/sensr/points')


def decode_workers_of(parent):
    return [p for p in parent.children(recursive=True)
            if 'multiprocessing' in ' '.join(p.cmdline()) and 'spawn_main' in ' '.join(
                p.cmdline())]


# --- bridge ---------------------------------------------------------------------------------


def test_bridge_full_lifecycle(ros, make_sim):
    """configure, activate, deactivate, cleanup, configure again, activate, shutdown."""
    context, executor = ros
    sim = make_sim()
    collector = Collector(context, executor)
    node = start_bridge(context, executor, sim)
    assert state(node) == 'unconfigured'
    assert collector.publishers() == 0

    # configure: publishers exist, nothing is connected yet.
    assert node.trigger_configure() == SUCCESS
    assert state(node) == 'inactive'
    assert wait_until(lambda: collector.publishers() == 1)
    assert sim.stats().ports['point'].accepted == 0

    # activate: connects, clouds flow.
    assert node.trigger_activate() == SUCCESS
    assert state(node) == 'active'
    assert collector.wait(5)

    # deactivate: disconnects, every cloud already received is published and delivered.
    assert node.trigger_deactivate() == SUCCESS
    assert state(node) == 'inactive'
    assert sim.wait_for_clients(0, timeout=5, at_most=True)
    counts = node.counters.snapshot()
    assert counts['points_published'] == counts['points_received'] >= 5
    assert collector.wait(counts['points_published'])
    frames = sim.stats().frames
    assert sim.wait_for_stats(lambda s: s.frames >= frames + 3, timeout=5)
    assert node.counters.get('points_received') == counts['points_received']
    assert wait_until(lambda: collector.publishers() == 1)  # publishers stay while inactive

    # cleanup: publishers released.
    assert node.trigger_cleanup() == SUCCESS
    assert state(node) == 'unconfigured'
    assert wait_until(lambda: collector.publishers() == 0)

    # configure again works, and clouds flow again.
    before = collector.count
    assert node.trigger_configure() == SUCCESS
    assert state(node) == 'inactive'
    assert node.trigger_activate() == SUCCESS
    assert collector.wait(before + 3)

    # shutdown from active: publishes what it has, releases everything.
    assert node.trigger_shutdown() == SUCCESS
    assert state(node) == 'finalized'
    counts = node.counters.snapshot()
    assert counts['points_published'] == counts['points_received']
    assert collector.wait(counts['points_published'])
    assert wait_until(lambda: collector.publishers() == 0)
    assert sim.wait_for_clients(0, timeout=5, at_most=True)
    alive = [t.name for t in threading.enumerate() if t.name.startswith('sensr-')]
    assert not alive, alive


def test_bridge_reactivate_after_deactivate(ros, make_sim):
    """inactive -> active again (without cleanup) must bring the clouds back."""
    context, executor = ros
    sim = make_sim()
    collector = Collector(context, executor)
    node = start_bridge(context, executor, sim)
    assert node.trigger_configure() == SUCCESS
    assert node.trigger_activate() == SUCCESS
    assert collector.wait(3)
    assert node.trigger_deactivate() == SUCCESS
    published = node.counters.get('points_published')
    assert node.trigger_activate() == SUCCESS
    assert state(node) == 'active'
    assert wait_until(lambda: node.counters.get('points_published') >= published + 3), (
        node.counters.snapshot())
    assert collector.wait(published + 3)
    assert node.trigger_shutdown() == SUCCESS


def test_bridge_cleanup_from_inactive_stops_decode_workers(ros, make_sim):
    """configure -> cleanup with decode_workers=1 must not leave the worker process behind."""
    context, executor = ros
    me = psutil.Process()
    sim = make_sim()
    node = start_bridge(context, executor, sim, decode_workers=1)
    assert node.trigger_configure() == SUCCESS
    workers = decode_workers_of(me)
    assert len(workers) == 1, me.children(recursive=True)
    assert node.trigger_cleanup() == SUCCESS
    assert state(node) == 'unconfigured'
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive, alive
    alive_threads = [t.name for t in threading.enumerate() if t.name.startswith('sensr-')]
    assert not alive_threads, alive_threads
    node.trigger_shutdown()


@pytest.mark.parametrize(('params', 'message'), [
    ({'stamp_source': 'gps'}, "stamp_source must be 'sensr' or 'receive', not 'gps'"),
    ({'output_port': 0, 'point_port': 0}, 'output_port and point_port are both 0'),
    ({'cloud_mode': 'sideways'}, "cloud_mode must be 'merged' or 'per_type', not 'sideways'"),
    # Passed configure before, then failed every connect ("hostname is invalid") forever.
    ({'host': ''}, "host '' is empty"),
    ({'host': '  '}, "host '  ' is empty"),
    ({'host': 'sensr master'}, "host 'sensr master' is not a host name or address"),
])
def test_bridge_configure_failure(ros, capfd, params, message):
    context, executor = ros
    overrides = [Parameter('autostart', value=False)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = BridgeNode(namespace='sensr', context=context, parameter_overrides=overrides)
    executor.add_node(node)
    assert node.trigger_configure() == FAILURE
    assert state(node) == 'unconfigured'
    err = capfd.readouterr().err
    assert 'configuration rejected' in err and message in err, err
    assert 'Traceback' not in err
    assert '/sensr/points' not in {p.topic_name for p in node.publishers}
    assert node.trigger_shutdown() == SUCCESS
    assert state(node) == 'finalized'


# --- recorder -------------------------------------------------------------------------------


class Talker:
    """Publishes numbered strings on /sensr/chatter."""

    def __init__(self, context, executor):
        self.node = rclpy.create_node('lifecycle_talker', context=context)
        self.pub = self.node.create_publisher(String, '/sensr/chatter', 100)
        self.sent = []
        executor.add_node(self.node)

    def send(self, n, recorder):
        """Publish n messages in bursts of 5, each taken by the recorder before the next.

        The recorder's subscriptions keep the last ``subscription_depth`` messages, so a
        burst longer than that which the executor has not drained yet would lose the
        oldest inside DDS; the test stays well within it.
        """
        first = received(recorder)
        for i in range(n):
            text = f'message {len(self.sent)}'
            self.pub.publish(String(data=text))
            self.sent.append(text)
            if (i + 1) % 5 == 0 or i == n - 1:
                assert wait_until(lambda count=first + i + 1: received(recorder) >= count)

    def subscribers(self):
        return self.pub.get_subscription_count()


def bag_strings(path):
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic == '/sensr/chatter']
        return [TYPESTORE.deserialize_cdr(raw, c.msgtype).data
                for c, _, raw in reader.messages(connections=conns)]


def test_recorder_full_lifecycle(ros, tmp_path):
    """configure, activate, deactivate (bag complete), cleanup, configure again, shutdown."""
    context, executor = ros
    talker = Talker(context, executor)
    node = recorder_node(context, executor, tmp_path)
    first = tmp_path / 'bag'

    # configure: the bag exists, nothing is subscribed yet.
    assert node.trigger_configure() == SUCCESS
    assert state(node) == 'inactive'
    assert node.bag_path == first
    assert list(first.glob('*.db3'))
    assert not (first / 'metadata.yaml').exists()
    assert talker.subscribers() == 0

    # activate: subscribes, records.
    assert node.trigger_activate() == SUCCESS
    assert state(node) == 'active'
    assert wait_until(lambda: talker.subscribers() == 1)
    talker.send(20, node)
    assert wait_until(lambda: written(node) == 20), node.queue_stats()

    # deactivate: drains, commits and closes the bag; it is complete and readable.
    assert node.trigger_deactivate() == SUCCESS
    assert state(node) == 'inactive'
    assert (first / 'metadata.yaml').exists()
    assert bag_strings(first) == talker.sent
    assert node.final_stats.topics['/sensr/chatter'].messages == 20
    assert wait_until(lambda: talker.subscribers() == 0)

    # activate again without a new bag is refused (the bag is closed), state unchanged.
    assert node.trigger_activate() == FAILURE
    assert state(node) == 'inactive'

    # cleanup, then configure again: the same fixed bag name now exists and is refused...
    assert node.trigger_cleanup() == SUCCESS
    assert state(node) == 'unconfigured'
    assert node.trigger_configure() == FAILURE
    assert state(node) == 'unconfigured'
    assert bag_strings(first) == talker.sent  # untouched

    # ... and works once the path is free.
    first.rename(tmp_path / 'first')
    assert node.trigger_configure() == SUCCESS
    assert node.trigger_activate() == SUCCESS
    assert wait_until(lambda: talker.subscribers() == 1)
    talker.send(5, node)
    assert wait_until(lambda: written(node) == 5), node.queue_stats()

    # shutdown from active: the talker is still there, so the bounded drain wait applies.
    t0 = time.monotonic()
    assert node.trigger_shutdown() == SUCCESS
    assert time.monotonic() - t0 < 2.0
    assert state(node) == 'finalized'
    assert bag_strings(first) == talker.sent[20:]
    assert bag_strings(tmp_path / 'first') == talker.sent[:20]


def test_recorder_shutdown_from_unconfigured_and_inactive(ros, tmp_path):
    context, executor = ros
    idle = recorder_node(context, executor, tmp_path, name='never')
    assert idle.trigger_shutdown() == SUCCESS
    assert state(idle) == 'finalized'
    assert not (tmp_path / 'never').exists()

    configured = recorder_node(context, executor, tmp_path, name='configured')
    assert configured.trigger_configure() == SUCCESS
    assert configured.trigger_shutdown() == SUCCESS
    assert state(configured) == 'finalized'
    with Reader(tmp_path / 'configured') as reader:  # an empty, valid bag
        assert reader.message_count == 0


def _read_only_dir(tmp_path):
    target = tmp_path / 'ro'
    target.mkdir()
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs', str(target)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f'cannot mount a read-only tmpfs: {done.stderr.decode().strip()}')
    return target


@pytest.mark.parametrize('case', ['bad_policy', 'bad_storage', 'bad_regex', 'existing_bag',
                                  'parent_is_file', 'read_only'])
def test_recorder_configure_failure(ros, tmp_path, capfd, case):
    context, executor = ros
    out_dir = tmp_path / 'out'
    params = {}
    if case == 'bad_policy':
        params, message = ({'drop_policy': 'sometimes'},
                           "drop_policy must be 'drop_oldest' or 'drop_newest', not 'sometimes'")
    elif case == 'bad_storage':
        params, message = {'storage': 'tape'}, "storage must be 'sqlite3' or 'mcap', not 'tape'"
    elif case == 'bad_regex':
        # Said only "unterminated character set at position 1" before: no parameter, no value.
        params, message = ({'topic_regex': '(['}, "topic_regex '([' is not a valid regular "
                           'expression: unterminated character set at position 1')
    elif case == 'existing_bag':
        (out_dir / 'bag').mkdir(parents=True)
        (out_dir / 'bag' / 'keep.txt').write_text('precious')
        message = f'bag directory {out_dir / "bag"} already exists'
    elif case == 'parent_is_file':
        (tmp_path / 'file').write_text('not a directory')
        out_dir = tmp_path / 'file' / 'out'
        message = f'output_dir {out_dir} cannot be created: Not a directory'
    else:
        out_dir = _read_only_dir(tmp_path)
        message = f'output_dir {out_dir} is not writable'
    try:
        node = recorder_node(context, executor, out_dir, **params)
        assert node.trigger_configure() == FAILURE
        assert state(node) == 'unconfigured'
        err = capfd.readouterr().err
        assert 'configuration rejected' in err and message in err, err
        assert 'Traceback' not in err
        if case == 'existing_bag':
            assert sorted(p.name for p in (out_dir / 'bag').iterdir()) == ['keep.txt']
        elif case != 'read_only':
            assert not (out_dir / 'bag').exists()  # nothing left behind
        assert node.trigger_shutdown() == SUCCESS
        assert state(node) == 'finalized'
    finally:
        if case == 'read_only':
            subprocess.run(['umount', str(out_dir)], check=False)


# --- bag permissions ------------------------------------------------------------------------


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
@pytest.mark.parametrize('umask', [0o022, 0o027, 0o000])
def test_bag_permissions(tmp_path, storage, umask):
    """Directory 0o755 and files 0o644, less the umask; never group/world-writable."""
    old = os.umask(umask)
    try:
        path = tmp_path / 'bag'
        writer = create_writer(bag.StorageOptions(uri=path, storage_id=storage), 'python')
        with writer:
            writer.create_topic(bag.TopicInfo('/sensr/chatter', 'std_msgs/msg/String'))
            writer.write_batch([('/sensr/chatter', 1, b'\x00\x01\x00\x00\x02\x00\x00\x00a\x00')])
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [path, *path.iterdir()]}
    assert modes[path.name] == 0o755 & ~umask, {k: oct(v) for k, v in modes.items()}
    files = {k: v for k, v in modes.items() if k != path.name}
    assert 'metadata.yaml' in files and len(files) >= 2, files
    for name, mode in files.items():
        assert mode == 0o644 & ~umask, (name, oct(mode))
    assert all(not mode & (stat.S_IWGRP | stat.S_IWOTH) for mode in modes.values())


def test_recorder_bag_permissions(ros, tmp_path):
    """The recorder node itself leaves 0o755/0o644 under the usual umask (0o022)."""
    context, executor = ros
    old = os.umask(0o022)
    try:
        node = recorder_node(context, executor, tmp_path / 'nested' / 'out')
        assert node.trigger_configure() == SUCCESS
        assert node.trigger_shutdown() == SUCCESS
    finally:
        os.umask(old)
    bag_dir = tmp_path / 'nested' / 'out' / 'bag'
    for path in [tmp_path / 'nested', tmp_path / 'nested' / 'out', bag_dir]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, path
    files = list(bag_dir.iterdir())
    assert {p.name for p in files} >= {'metadata.yaml', 'bag_0.db3'}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert Path(bag_dir / 'metadata.yaml').read_text().startswith('rosbag2_bagfile_information')


# --- exceptions in callbacks ----------------------------------------------------------------

class Faulty(GuardedLifecycleNode):
    """Raises in on_activate and in a timer; another timer keeps ticking."""

    def __init__(self, context):
        super().__init__('faulty', (), context=context)
        self.ticks = threading.Semaphore(0)

    def on_configure(self, state):
        self.create_timer(0.01, self._boom)
        self.create_timer(0.01, self.ticks.release)
        return SUCCESS

    def on_activate(self, state):
        raise RuntimeError('cannot open the widget')

    def _boom(self):
        raise ValueError('bad frame')


def test_callback_exceptions_are_logged_counted_and_survived(ros, capfd):
    context, executor = ros
    node = Faulty(context)
    executor.add_node(node)
    assert node.trigger_configure() == SUCCESS
    assert wait_until(lambda: node.callback_errors['timer _boom'] >= 3)
    # The executor still runs the node's other callbacks.
    assert node.ticks.acquire(timeout=5)
    assert node.trigger_activate() == TransitionCallbackReturn.ERROR
    assert state(node) == 'unconfigured'
    assert node.callback_errors['on_activate'] == 1
    status = node.callbacks_status('hw')
    assert status.level == DiagnosticStatus.ERROR
    assert {v.key for v in status.values} >= {'on_activate', 'timer _boom'}
    err = capfd.readouterr().err
    assert err.count('on_activate failed: RuntimeError: cannot open the widget') == 1
    assert 'timer _boom failed: ValueError: bad frame' in err
    assert 'Traceback' not in err  # at debug level only


def test_spinning_survives_an_unguarded_callback(ros, capfd):
    context, executor = ros
    node = rclpy.create_node('plain', context=context)
    ticks = threading.Semaphore(0)

    def boom():
        raise KeyError('gone')

    node.create_timer(0.01, boom)
    node.create_timer(0.01, ticks.release)
    executor.add_node(node)
    err = []
    assert wait_until(lambda: err.append(capfd.readouterr().err) or (
        "executor callback failed: KeyError: 'gone'" in ''.join(err)))
    assert ticks.acquire(timeout=5)


# --- nothing left in the ROS graph ---------------------------------------------------------

NODE_CLASSES = [BridgeNode, RecorderNode]


@pytest.fixture
def graph():
    """A node in a context of its own that looks at the ROS graph."""
    context = rclpy.Context()
    rclpy.init(context=context)
    probe = rclpy.create_node('graph_probe', context=context)
    yield lambda: set(probe.get_node_names_and_namespaces())
    probe.destroy_node()
    rclpy.try_shutdown(context=context)


@pytest.mark.parametrize('node_class', NODE_CLASSES, ids=lambda c: c.__name__)
def test_a_destroyed_node_leaves_the_graph(graph, node_class):
    """rclpy's LifecycleNode.destroy_node kept the node (and its change_state service)
    in the graph: a later ros2 launch asked that ghost for transitions and stalled."""
    context = rclpy.Context()
    rclpy.init(context=context)
    name = f'ghost_{node_class.__name__.lower()}'
    node = node_class(name, namespace='ghosts', context=context)
    assert wait_until(lambda: (name, '/ghosts') in graph(), 20), 'never in the graph'
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    assert wait_until(lambda: (name, '/ghosts') not in graph(), 20), 'still in the graph'


@pytest.mark.parametrize('node_class', NODE_CLASSES, ids=lambda c: c.__name__)
def test_a_node_whose_parameters_are_rejected_leaves_the_graph(graph, node_class):
    context = rclpy.Context()
    rclpy.init(context=context)
    name = f'rejected_{node_class.__name__.lower()}'
    with pytest.raises(ParameterError):
        node_class(name, namespace='ghosts', context=context,
                   parameter_overrides=[Parameter('stats_log_period', value='often')])
    seen = wait_until(lambda: (name, '/ghosts') in graph(), 5)
    rclpy.try_shutdown(context=context)
    assert not seen, 'a node that was never made is in the graph'
