# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Recording controls of the recorder node, with real rclpy, DDS and bags on disk.

Intervals and empty clouds (the main bag keeps fewer messages, the rest is counted as
skipped, not lost); the pause, resume, split and snapshot services; event clips.
"""

import json
import threading

from diagnostic_msgs.msg import DiagnosticArray
from helpers import NEEDS_ROSBAG2_PY, wait_until
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import String
from std_srvs.srv import Trigger
from test_bag_compression import chunk_compressions
from test_lifecycle import (
    FAILURE,
    SUCCESS,
    received,
    recorder_node,
    ros,  # noqa: F401  (fixture: a context and a spinning executor)
    written,
)
import yaml

from sensr_bridge import cdr

S = 1_000_000_000
RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


class Publisher:
    """Publishes clouds on /sensr/points and strings on /sensr/chatter."""

    def __init__(self, context, executor):
        self.node = rclpy.create_node('controls_publisher', context=context)
        self.clouds = self.node.create_publisher(PointCloud2, '/sensr/points', RELIABLE)
        self.chatter = self.node.create_publisher(String, '/sensr/chatter', RELIABLE)
        self.sent = 0
        executor.add_node(self.node)

    def matched(self):
        return (self.clouds.get_subscription_count() == 1
                and self.chatter.get_subscription_count() == 1)

    def publish(self, points=10):
        """Publish a cloud whose stamp (seconds) is its number, and a string."""
        msg = PointCloud2(height=1, width=points, point_step=4, row_step=4 * points,
                          data=bytes(4 * points))
        msg.header.frame_id = 'sensr'
        msg.header.stamp.sec = self.sent
        self.clouds.publish(msg)
        self.chatter.publish(String(data=f'message {self.sent}'))
        self.sent += 1

    def send(self, recorder, count, *, points=10):
        """Publish ``count`` clouds (and strings), each taken by the recorder before the next."""
        for _ in range(count):
            first = received(recorder, '/sensr/points')
            self.publish(points)
            assert wait_until(lambda f=first: received(recorder, '/sensr/points') > f)


class Diagnostics:
    """Keeps the last /diagnostics status of each name."""

    def __init__(self, context, executor):
        self.node = rclpy.create_node('controls_diagnostics', context=context)
        self.last = {}
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._got, 10)
        executor.add_node(self.node)

    def _got(self, msg):
        for status in msg.status:
            self.last[status.name] = {kv.key: kv.value for kv in status.values}

    def value(self, name, key):
        return self.last.get(name, {}).get(key)


def bag_counts(path):
    with Reader(path) as reader:
        return {c.topic: c.msgcount for c in reader.connections}


def bag_stamps(path, topic):
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [t for _, t, _ in reader.messages(connections=conns)]


def start(env, tmp_path, **params):
    context, executor = env
    publisher = Publisher(context, executor)
    node = recorder_node(context, executor, tmp_path, stats_file=str(tmp_path / 'stats.json'),
                         topic_regex='^/sensr/(points|chatter)$', **params)
    assert node.trigger_configure() == SUCCESS
    assert node.trigger_activate() == SUCCESS
    assert wait_until(publisher.matched)
    return node, publisher


def test_intervals_and_empty_clouds_are_skipped_not_lost(ros, tmp_path):  # noqa: F811
    # An interval far longer than the test: every cloud after the first of its slot is
    # skipped (a slot boundary inside the test keeps a second one, checked below).
    node, publisher = start(ros, tmp_path, topic_intervals=['/points$=1000.0'],
                            skip_empty_clouds=True)
    publisher.send(node, 4, points=0)
    publisher.send(node, 12)
    assert node.trigger_deactivate() == SUCCESS

    counts = bag_counts(tmp_path / 'bag')
    assert counts['/sensr/chatter'] == 16  # no rule for it: every message
    stamps = bag_stamps(tmp_path / 'bag', '/sensr/points')
    kept = len(stamps)
    assert kept in (1, 2)
    assert len({t // (1000 * S) for t in stamps}) == kept
    stats = json.loads((tmp_path / 'stats.json').read_text())
    points = stats['queue']['topics']['/sensr/points']
    assert points['received_messages'] == 16
    assert points['written_messages'] == kept
    assert points['skipped'] == {'empty': 4, 'interval': 12 - kept}
    assert points['dropped'] == {}
    assert stats['lost']['/sensr/points']['lost'] == 0
    assert stats['queue']['topics']['/sensr/chatter']['skipped'] == {}


def test_compression_parameter(ros, tmp_path):  # noqa: F811
    node, publisher = start(ros, tmp_path, storage='mcap', compression='lz4')
    publisher.send(node, 3, points=50_000)
    assert node.trigger_deactivate() == SUCCESS
    assert 'lz4' in chunk_compressions(tmp_path / 'bag' / 'bag_0.mcap')
    assert bag_counts(tmp_path / 'bag') == {'/sensr/points': 3, '/sensr/chatter': 3}
    # sqlite3 has no chunks to compress: configure says so and fails.
    other = recorder_node(*ros, tmp_path, name='other', compression='zstd')
    assert other.trigger_configure() == FAILURE
    assert not (tmp_path / 'other').exists()


class Services:
    """Calls the recorder's Trigger services."""

    def __init__(self, context, executor):
        self.node = rclpy.create_node('controls_client', context=context)
        self.clients = {}
        executor.add_node(self.node)

    def call(self, name):
        client = self.clients.get(name)
        if client is None:
            client = self.clients[name] = self.node.create_client(
                Trigger, f'/sensr/sensr_recorder/{name}')
            assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(Trigger.Request())
        assert wait_until(future.done, timeout=20)
        return future.result()


def test_pause_resume_and_diagnostics(ros, tmp_path):  # noqa: F811
    node, publisher = start(ros, tmp_path, diagnostics_period=0.05)
    services = Services(*ros)
    diagnostics = Diagnostics(*ros)
    writer_status = 'sensr_recorder: writer'

    publisher.send(node, 3)
    assert wait_until(lambda: diagnostics.value(writer_status, 'state') == 'recording')
    reply = services.call('pause')
    assert (reply.success, reply.message) == (True, 'paused')
    assert services.call('pause').message == 'already paused'
    assert wait_until(lambda: diagnostics.value(writer_status, 'state') == 'paused')
    publisher.send(node, 4)
    status = 'sensr_recorder: /sensr/points'
    assert wait_until(lambda: diagnostics.value(status, 'skipped_paused') == '4')
    assert diagnostics.value(status, 'dropped') == '0'
    assert services.call('resume').success
    assert wait_until(lambda: diagnostics.value(writer_status, 'state') == 'recording')
    publisher.send(node, 2)
    assert wait_until(lambda: written(node, '/sensr/points') == 5)
    assert node.trigger_deactivate() == SUCCESS

    with Reader(tmp_path / 'bag') as reader:
        conns = [c for c in reader.connections if c.topic == '/sensr/points']
        numbers = [cdr.header_stamp_ns(raw) // S for _, _, raw in reader.messages(conns)]
    assert numbers == [0, 1, 2, 7, 8]
    stats = json.loads((tmp_path / 'stats.json').read_text())
    assert stats['queue']['topics']['/sensr/chatter']['skipped'] == {'paused': 4}
    # A closed bag: the services say so instead of pretending.
    for name in ('pause', 'resume', 'split'):
        reply = services.call(name)
        assert not reply.success
        assert 'not recording' in reply.message
    assert node.trigger_activate() == FAILURE


SPLIT_UNDER_LOAD = [
    pytest.param(('python', 'sqlite3'), id='python-sqlite3'),
    pytest.param(('python', 'mcap'), id='python-mcap'),
    pytest.param(('rosbag2_py', 'mcap'), id='rosbag2_py-mcap', marks=NEEDS_ROSBAG2_PY),
]


@pytest.mark.parametrize('kind', SPLIT_UNDER_LOAD)
def test_split_under_load_loses_nothing(ros, tmp_path, kind):  # noqa: F811
    """~/split five times while 400 clouds of 100 KB stream in: every one in the bag once."""
    backend, storage = kind
    node, publisher = start(ros, tmp_path, writer_backend=backend, storage=storage)
    services = Services(*ros)
    total, splits = 400, 5
    done = threading.Event()

    def stream():
        try:
            for _ in range(total):
                # Stay within the subscription's depth (50): publishing is not throttled
                # by anything else, so the recorder is kept busy throughout.
                wait_until(lambda: publisher.sent - received(node, '/sensr/points') < 40)
                publisher.publish(points=25_000)
        finally:
            done.set()

    thread = threading.Thread(target=stream)
    thread.start()
    replies = []
    for k in range(1, splits + 1):
        assert wait_until(lambda k=k: received(node, '/sensr/points') >= k * total // 7,
                          timeout=60)
        replies.append(services.call('split'))
    assert done.wait(120)
    thread.join()
    assert all(r.success for r in replies), replies
    assert wait_until(lambda: received(node, '/sensr/points') == total, timeout=30)
    assert node.trigger_deactivate() == SUCCESS

    bag = tmp_path / 'bag'
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic == '/sensr/points']
        numbers = [cdr.header_stamp_ns(raw) // S for _, _, raw in reader.messages(conns)]
    assert numbers == list(range(total))
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    counts = [f['message_count'] for f in info['files']]
    assert len(counts) == splits + 1
    assert all(counts), counts
    assert sum(counts) == 2 * total
    stats = json.loads((tmp_path / 'stats.json').read_text())
    assert stats['queue']['splits'] == splits
    for topic in ('/sensr/points', '/sensr/chatter'):
        assert stats['queue']['topics'][topic]['dropped'] == {}
        assert stats['lost'][topic]['lost'] == 0
