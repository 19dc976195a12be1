# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Recording controls of the recorder node, with real rclpy, DDS and bags on disk.

Intervals and empty clouds (the main bag keeps fewer messages, the rest is counted as
skipped, not lost); the pause, resume, split and snapshot services; event clips.
"""

import json

from diagnostic_msgs.msg import DiagnosticArray
from helpers import wait_until
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import String
from test_lifecycle import SUCCESS, received, recorder_node

S = 1_000_000_000
RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture
def spinning(ros):
    """The conftest ``ros`` fixture with its executor spinning."""
    context, executor, thread = ros
    thread.start()
    return context, executor


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

    def send(self, recorder, count, *, points=10, chatter=True):
        """Publish ``count`` clouds (and strings), each taken by the recorder before the next."""
        for _ in range(count):
            first = received(recorder, '/sensr/points')
            msg = PointCloud2(height=1, width=points, point_step=4, row_step=4 * points,
                              data=bytes(4 * points))
            msg.header.frame_id = 'sensr'
            msg.header.stamp.sec = self.sent
            self.clouds.publish(msg)
            if chatter:
                self.chatter.publish(String(data=f'message {self.sent}'))
            self.sent += 1
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


def start(spinning, tmp_path, **params):
    context, executor = spinning
    publisher = Publisher(context, executor)
    node = recorder_node(context, executor, tmp_path, stats_file=str(tmp_path / 'stats.json'),
                         topic_regex='^/sensr/(points|chatter)$', **params)
    assert node.trigger_configure() == SUCCESS
    assert node.trigger_activate() == SUCCESS
    assert wait_until(publisher.matched)
    return node, publisher


def test_intervals_and_empty_clouds_are_skipped_not_lost(spinning, tmp_path):
    # An interval far longer than the test: every cloud after the first of its slot is
    # skipped (a slot boundary inside the test keeps a second one, checked below).
    node, publisher = start(spinning, tmp_path, topic_intervals=['/points$=1000.0'],
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
