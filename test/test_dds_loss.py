# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Messages lost in DDS are counted: below the recorder's subscriptions, at the bridge's publishers.

Each loss is provoked for real, with a publisher in another process:

- the recorder's executor is held while a publisher sends faster than its KEEP_LAST
  history holds: DDS overwrites what was not taken. Fast DDS (3.2 Kilted, 2.14 Jazzy)
  raises no message-lost event for that; the publication sequence numbers show it, so
  published == written + lost exactly;
- the recorder's whole process is stopped while a reliable publisher with depth 1 sends:
  the shared-memory port overflows, the writer has dropped what was not delivered, and
  DDS reports it lost; the sequence numbers see the same samples, and they are counted
  once (published == written + lost again);
- a reliable subscriber meets the bridge's best-effort publisher: counted and logged.

The recorder's counts are checked in /diagnostics, the log (/rosout) and the stats file.
"""

import json
import os
from pathlib import Path
import signal
import subprocess
import threading

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from helpers import PY, Proc
import pytest
from rcl_interfaces.msg import Log
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2

from sensr_bridge.nodes.bridge import BridgeNode
from sensr_bridge.nodes.recorder import RecorderNode
from sensr_bridge.nodes.stats import LossCounter
from sensr_bridge.process import environment

# A publisher process: 'publish N [noack]' sends N messages at once, then (reliable)
# waits until every subscription acknowledged them. Answers each command with a line.
PUBLISHER = r"""
import sys, threading
import rclpy
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import UInt8MultiArray
try:
    from rclpy.event_handler import PublisherEventCallbacks
except ImportError:
    from rclpy.qos_event import PublisherEventCallbacks

topic, reliability, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
rclpy.init()
node = rclpy.create_node('loss_publisher')
matched = threading.Event()
qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                 reliability=ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                 else ReliabilityPolicy.BEST_EFFORT)
pub = node.create_publisher(UInt8MultiArray, topic, qos, event_callbacks=PublisherEventCallbacks(
    matched=lambda info: info.current_count and matched.set()))
executor = SingleThreadedExecutor()
executor.add_node(node)
threading.Thread(target=executor.spin, daemon=True).start()
msg = UInt8MultiArray(data=bytes(size))
print('ready', flush=True)
matched.wait()
print('matched', flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == 'publish':
        for _ in range(int(args[0])):
            pub.publish(msg)
        acked = 'noack' in args or pub.wait_for_all_acked(Duration(seconds=20))
        print(f'published {args[0]} acked={acked}', flush=True)
executor.shutdown()
rclpy.try_shutdown()
"""


class Observer:
    """Keeps the last /diagnostics status per name and every /rosout line."""

    def __init__(self, context):
        self.node = rclpy.create_node('loss_observer', context=context)
        self.cond = threading.Condition()
        self.status = {}
        self.logs = []
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._diagnostics, 50)
        self.node.create_subscription(Log, '/rosout', self._log, QoSProfile(
            depth=1000, reliability=ReliabilityPolicy.RELIABLE))

    def _diagnostics(self, msg):
        with self.cond:
            for status in msg.status:
                self.status[status.name] = status
            self.cond.notify_all()

    def _log(self, msg):
        with self.cond:
            self.logs.append(msg)
            self.cond.notify_all()

    def wait(self, predicate, timeout=30.0):
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def values(self, name):
        status = self.status.get(name)
        return {} if status is None else {kv.key: kv.value for kv in status.values}

    def topic_counts(self, name):
        values = self.values(name)
        return {key: int(values.get(key, 0)) for key in ('received', 'written', 'lost')}


class Spinner:
    """Spins an executor on a thread; ``hold`` returns once no callback can run."""

    def __init__(self, executor):
        self.executor = executor
        self._run = threading.Event()
        self._run.set()
        self._held = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._stop.is_set():
            if not self._run.is_set():
                self._held.set()
                self._run.wait(0.1)
                continue
            self.executor.spin_once(timeout_sec=0.05)

    def hold(self):
        self._held.clear()
        self._run.clear()
        assert self._held.wait(5.0)

    def release(self):
        self._run.set()

    def stop(self):
        self._stop.set()
        self._run.set()
        self.thread.join(5.0)


@pytest.fixture
def observed():
    """(context, observer): an Observer whose executor the test can hold (``Spinner``)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    observer = Observer(context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(observer.node)
    spinner = Spinner(executor)
    yield context, observer
    spinner.stop()
    executor.shutdown(timeout_sec=2)
    rclpy.try_shutdown(context=context)


def test_loss_counter_counts_gaps_per_publisher_and_each_loss_once():
    loss = LossCounter()
    assert [loss.sequence(b'a', n) for n in (7, 8, 12)] == [0, 0, 3]  # a late join is no loss
    assert loss.sequence(b'b', 1) == 0 and loss.sequence(b'b', 3) == 1
    assert loss.sequence(b'a', 10) == 0  # older (reordered): nothing lost, nothing undone
    loss.message_lost(3)  # the same three samples, also reported by DDS
    s = loss.snapshot()
    assert (s.lost, s.lost_dds, s.lost_sequence_gap, s.publishers) == (4, 3, 4, 2)
    loss.message_lost(2)  # lost where no later message shows a gap
    assert loss.snapshot().lost == 5


def test_loss_counter_trusts_unnamed_publishers_only_alone():
    """Jazzy's MessageInfo has no publisher GID: gaps count while one publisher is matched."""
    loss = LossCounter()
    assert loss.sequence(None, 1) == 0 and loss.sequence(None, 9) == 0  # none matched yet
    loss.publishers_matched(1)
    assert [loss.sequence(None, n) for n in (20, 21, 25)] == [0, 0, 3]
    loss.publishers_matched(2)  # two interleaved sequences: nothing can be told
    assert loss.sequence(None, 1) == 0 and loss.sequence(None, 90) == 0
    loss.publishers_matched(1)  # the one left starts over
    assert [loss.sequence(None, n) for n in (40, 42)] == [0, 1]
    assert loss.snapshot().lost_sequence_gap == 4


def recorder_params(tmp_path, topic, **extra):
    return {'output_dir': str(tmp_path), 'bag_name': 'bag', 'writer_backend': 'python',
            'topics': [topic], 'subscription_depth': 5, 'discovery_period': 0.1,
            'diagnostics_period': 0.2, 'stats_log_period': 0.0,
            'stats_file': str(tmp_path / 'stats.json'), **extra}


def check_stats_file(path, topic, published):
    stats = json.loads(Path(path).read_text())
    written = stats['bag_stats']['topics'][topic]['messages']
    lost = stats['lost'][topic]
    assert stats['queue']['topics'][topic]['dropped'] == {}
    assert written + lost['lost'] == published, (written, lost)
    return written, lost


def test_recorder_counts_what_its_starved_history_overwrote(observed, tmp_path):
    context, observer = observed
    topic = '/sensr/loss_history'
    # The test's own ROS domain: the recorder and the observer run in this process.
    publisher = Proc('publisher', [PY, '-c', PUBLISHER, topic, 'reliable', '1000'],
                     env=dict(os.environ), stdin=subprocess.PIPE)
    params = recorder_params(tmp_path, topic, autostart=False)
    recorder = RecorderNode(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(recorder)
    spinner = Spinner(executor)
    status = f'{recorder.get_name()}: {topic}'
    try:
        publisher.wait_line('ready')
        recorder.trigger_configure()
        recorder.trigger_activate()
        publisher.wait_line('matched')
        publisher.ask('publish 5', 'published 5 acked=True')
        assert observer.wait(lambda: observer.topic_counts(status)['written'] == 5)
        # Starved: nothing is taken while 100 more arrive into a history of 5.
        spinner.hold()
        publisher.ask('publish 100', 'published 100 acked=True')  # all in the recorder's history
        spinner.release()
        # The 5 left in the history are taken before more come (or they would be lost too).
        assert observer.wait(lambda: sum(observer.topic_counts(status)[k]
                                         for k in ('written', 'lost')) == 105), \
            observer.values(status)
        publisher.ask('publish 5', 'published 5 acked=True')
        assert observer.wait(lambda: sum(observer.topic_counts(status)[k]
                                         for k in ('written', 'lost')) == 110), \
            observer.values(status)
        diag = observer.status[status]
        values = observer.values(status)
        assert diag.level == DiagnosticStatus.WARN
        assert int(values['lost']) == int(values['lost_sequence_gap']) == 95, values
        assert int(values['lost_dds']) <= 95
        assert observer.wait(lambda: any(
            topic in log.msg and '95 messages lost' in log.msg and log.level == Log.WARN
            for log in observer.logs)), [log.msg for log in observer.logs]
        recorder.trigger_deactivate()
        written, lost = check_stats_file(params['stats_file'], topic, 110)
        assert (written, lost['lost'], lost['lost_sequence_gap']) == (15, 95, 95)
        assert recorder.final_loss[topic].lost == 95
    finally:
        spinner.stop()
        publisher.kill_tree()
        recorder.trigger_shutdown()
        executor.shutdown(timeout_sec=2)
        recorder.destroy_node()


def test_recorder_counts_lost_in_transport_once(observed, tmp_path):
    """DDS message-lost events and sequence gaps see the same samples: counted once."""
    context, observer = observed
    topic = '/sensr/loss_transport'
    # Fast DDS defaults (no large-data profile): a shared-memory port of 512 slots, which a
    # stopped reader lets overflow.
    env = {k: v for k, v in os.environ.items() if k not in environment.DDS_PROFILE_VARIABLES}
    publisher = Proc('publisher', [PY, '-c', PUBLISHER, topic, 'reliable', '10000'], env=env,
                     stdin=subprocess.PIPE)
    params = recorder_params(tmp_path, topic)
    recorder = Proc('recorder', [PY, '-m', 'sensr_bridge.nodes.recorder', '--ros-args', *[
        arg for k, v in params.items() for arg in (
            '-p', f'{k}:={json.dumps(v) if isinstance(v, list) else v}')]],
        env={**env, 'PYTHONUNBUFFERED': '1'})
    status = f'sensr_recorder: {topic}'
    try:
        publisher.wait_line('matched')
        publisher.ask('publish 5', 'published 5 acked=True')
        assert observer.wait(lambda: observer.topic_counts(status)['written'] == 5), \
            recorder.output[-3000:]
        os.kill(recorder.popen.pid, signal.SIGSTOP)
        try:
            publisher.ask('publish 1500 noack', 'published 1500')
        finally:
            os.kill(recorder.popen.pid, signal.SIGCONT)
        publisher.ask('publish 5', 'published 5 acked=True')
        assert observer.wait(lambda: sum(observer.topic_counts(status)[k]
                                         for k in ('written', 'lost')) == 1510), \
            observer.values(status)
        values = observer.values(status)
        assert int(values['lost_dds']) > 0, values
        assert int(values['lost']) == int(values['lost_sequence_gap']), values
        recorder.popen.send_signal(signal.SIGINT)
        assert recorder.wait_exit(30) == 0
        written, lost = check_stats_file(params['stats_file'], topic, 1510)
        assert lost['lost_dds'] > 0
        # Both saw the port's overflow; added up, they would exceed what was sent.
        assert written + lost['lost_dds'] + lost['lost_sequence_gap'] > 1510
    finally:
        publisher.kill_tree()
        recorder.kill_tree()


def test_bridge_counts_and_logs_a_subscriber_with_incompatible_qos(observed):
    context, observer = observed
    bridge = BridgeNode(namespace='sensr', context=context, parameter_overrides=[
        Parameter('qos_reliability', value='best_effort'), Parameter('autostart', value=False),
        Parameter('diagnostics_period', value=0.2), Parameter('stats_log_period', value=0.0)])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(bridge)
    spinner = Spinner(executor)
    listener = rclpy.create_node('reliable_listener', context=context)
    status = f'{bridge.get_name()}: publishers'
    try:
        bridge.trigger_configure()
        listener.create_subscription(PointCloud2, '/sensr/points', lambda _msg: None,
                                     QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        assert observer.wait(lambda: int(observer.values(status).get(
            '/sensr/points incompatible_qos', 0)) == 1), observer.values(status)
        values = observer.values(status)
        assert observer.status[status].level == DiagnosticStatus.WARN
        assert values['/sensr/points last_incompatible_policy'] == 'RELIABILITY'
        assert values['/sensr/objects/markers incompatible_qos'] == '0'
        assert observer.wait(lambda: any(
            '/sensr/points' in log.msg and 'RELIABILITY' in log.msg and log.level == Log.WARN
            for log in observer.logs)), [log.msg for log in observer.logs]
        assert bridge.publisher_events()['/sensr/points']['incompatible_qos'] == 1
    finally:
        spinner.stop()
        bridge.trigger_shutdown()
        executor.shutdown(timeout_sec=2)
        listener.destroy_node()
        bridge.destroy_node()
