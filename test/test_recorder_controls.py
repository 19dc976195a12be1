# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Recording controls of the recorder node, with real rclpy, DDS and bags on disk.

Intervals and empty clouds (the main bag keeps fewer messages, the rest is counted as
skipped, not lost); the pause, resume, split and snapshot services; event clips.
"""

import json
import threading

from bag_helpers import POINTS, bag_info_count, chunk_compressions, play_and_count
from diagnostic_msgs.msg import DiagnosticArray
from helpers import (
    HAVE_ROSBAG2_PY,
    NEEDS_INSTALLED_PACKAGE,
    NEEDS_ROS2_CLI,
    NEEDS_ROSBAG2_PY,
    ROS_STACK_REQUIRED,
    LogSpy,
    received,
    recorder_node,
    start_bridge,
    wait_until,
    written,
)
import pytest
import rclpy
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import String
from std_srvs.srv import Trigger
import yaml

from sensr_bridge.convert import cdr

S = 1_000_000_000
SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
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


def test_intervals_and_empty_clouds_are_skipped_not_lost(ros, tmp_path):
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


def test_compression_parameter(ros, tmp_path):
    node, publisher = start(ros, tmp_path, storage='mcap', compression='lz4')
    publisher.send(node, 3, points=50_000)
    assert node.trigger_deactivate() == SUCCESS
    assert 'lz4' in chunk_compressions(tmp_path / 'bag' / 'bag_0.mcap')
    assert bag_counts(tmp_path / 'bag') == {'/sensr/points': 3, '/sensr/chatter': 3}
    # sqlite3 has no chunks to compress: configure says so and fails.
    other = recorder_node(*ros, tmp_path, name='other', compression='zstd')
    assert other.trigger_configure() == FAILURE
    assert not (tmp_path / 'other').exists()
    # With clips only, configure checks the options the clip bags will have.
    clips_only = recorder_node(*ros, tmp_path, name='third', compression='zstd',
                               clip_mode='only')
    assert clips_only.trigger_configure() == FAILURE


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


def test_pause_resume_and_diagnostics(ros, tmp_path):
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
def test_split_under_load_loses_nothing(ros, tmp_path, kind):
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


# --- event clips --------------------------------------------------------------------------

# Simulator of the make_sim fixture: small clouds at 20 Hz, zone events only on demand.
SMALL = {'output_port': 0, 'point_port': 0, 'rate_hz': 20.0, 'points': 2_000, 'objects': 3,
         'object_points': 5, 'event_interval_s': None, 'custom_interval_s': None}
BEFORE_S, AFTER_S = 1.0, 2.0


def bag_messages(path):
    with Reader(path) as reader:
        return [(c.topic, t, bytes(d)) for c, t, d in reader.messages()]


def entry_times(messages, zone):
    """Receive times of the events messages holding an ENTRY into ``zone``."""
    return [t for topic, t, data in messages if topic == '/sensr/events' and any(
        e['type'] == 'ENTRY' and e['id'] == zone
        for e in json.loads(cdr.read_string(data))['zone'])]


def test_clip_around_a_simulator_zone_event(ros, tmp_path, make_sim):
    context, executor = ros
    sim = make_sim()
    node = recorder_node(context, executor, tmp_path, stats_file=str(tmp_path / 'stats.json'),
                         topic_regex='^/sensr/(points|events)$', clip_mode='with_bag',
                         clip_before=BEFORE_S, clip_after=AFTER_S, clip_events=['ENTRY@3'])
    bridge = start_bridge(context, executor, sim)
    assert node.trigger_configure() == SUCCESS
    assert bridge.trigger_configure() == SUCCESS
    assert node.trigger_activate() == SUCCESS
    assert wait_until(lambda: {'/sensr/points', '/sensr/events'} <= node._subs.keys())
    assert bridge.trigger_activate() == SUCCESS

    def clouds():
        return received(node, '/sensr/points')

    def events_received():
        return received(node, '/sensr/events')

    def clouds_pass(n):
        first = clouds()
        assert wait_until(lambda: clouds() >= first + n, timeout=30)

    clouds_pass(1)  # the bridge is connected: events reach it
    # Events no rule matches start nothing.
    assert sim.send_zone_event(1, 'ENTRY') == 1
    assert sim.send_zone_event(3, 'EXIT') == 1
    assert wait_until(lambda: events_received() == 2, timeout=30)
    clouds_pass(2 * 20 * BEFORE_S)  # they leave the ring, which then holds its whole window
    assert node.clip_stats().started == 0
    # ENTRY into zone 3, and another while the clip is open: one clip.
    sim.send_zone_event(3, 'ENTRY')
    assert wait_until(lambda: events_received() == 3, timeout=30)
    assert wait_until(lambda: node.clip_stats().recording)
    clouds_pass(2)
    sim.send_zone_event(3, 'ENTRY', object_id=2)
    assert wait_until(lambda: events_received() == 4, timeout=30)
    assert wait_until(lambda: len(node.clips_written) == 1, timeout=30)
    clouds_pass(10)  # the main bag goes on past the clip's end
    assert bridge.trigger_deactivate() == SUCCESS
    assert node.trigger_deactivate() == SUCCESS

    main = bag_messages(tmp_path / 'bag')
    clip_path = tmp_path / 'bag_clip_001'
    clip = bag_messages(clip_path)
    first, second = entry_times(main, 3)
    start, end = first - round(BEFORE_S * 1e9), second + round(AFTER_S * 1e9)
    # The clip is exactly the main bag's messages from 1 s before the first event to 2 s
    # after the second: the same receive times, the same bytes.
    window = [m for m in main if start <= m[1] <= end]
    assert [(m[0], m[1]) for m in clip] == [(m[0], m[1]) for m in window]
    assert clip == window
    before = [m for m in clip if m[0] == '/sensr/points' and m[1] < first]
    after = [m for m in clip if m[0] == '/sensr/points' and m[1] > second]
    # 20 Hz: about 20 before and 40 after; a loaded machine delivers late, in bursts.
    assert before and after, (len(before), len(after))
    assert entry_times(clip, 3) == [first, second]
    assert len([m for m in clip if m[0] == '/sensr/events']) == 2  # not the EXIT or zone 1
    assert len([m for m in main if m[0] == '/sensr/events']) == 4
    info = yaml.safe_load((clip_path / 'metadata.yaml').read_text())
    assert info['rosbag2_bagfile_information']['custom_data']['clip_reason'] == 'ENTRY@3'
    assert not (tmp_path / 'bag_clip_002').exists()
    stats = json.loads((tmp_path / 'stats.json').read_text())['clips']
    assert stats['stats']['started'] == 1
    assert [c['reasons'] for c in stats['written']] == [['ENTRY@3', 'ENTRY@3']]
    assert stats['written'][0]['messages'] == len(clip)
    assert stats['written'][0]['dropped'] == 0


def snapshot_clip(env, tmp_path, **params):
    """Clips only: 5 clouds, ~/snapshot, 3 clouds; return the recorder and the clip path."""
    node, publisher = start(env, tmp_path, clip_mode='only', clip_before=60.0,
                            clip_after=0.5, **params)
    services = Services(*env)

    def send(count):
        # No main bag counts what arrives: the ring does (it holds 60 s, so everything).
        for _ in range(count):
            publisher.publish()
            assert wait_until(lambda: node.clip_stats().ring_messages == 2 * publisher.sent)

    send(5)
    reply = services.call('snapshot')
    assert reply.success, reply.message
    send(3)
    assert wait_until(lambda: len(node.clips_written) == 1, timeout=30)
    assert node.trigger_deactivate() == SUCCESS
    assert reply.message == str(tmp_path / 'bag_clip_001')
    return node, tmp_path / 'bag_clip_001', services


def test_clips_only_and_snapshot(ros, tmp_path):
    node, clip, services = snapshot_clip(ros, tmp_path, storage='mcap', compression='zstd')
    assert not (tmp_path / 'bag').exists()  # clips only: no main bag
    with Reader(clip) as reader:
        conns = [c for c in reader.connections if c.topic == '/sensr/points']
        numbers = [cdr.header_stamp_ns(raw) // S for _, _, raw in reader.messages(conns)]
    # Everything before the snapshot (the ring holds 60 s) and what came within 0.5 s.
    assert numbers[:5] == [0, 1, 2, 3, 4]
    assert numbers == list(range(len(numbers)))
    assert 'zstd' in chunk_compressions(clip / 'bag_clip_001_0.mcap')
    stats = json.loads((tmp_path / 'stats.json').read_text())
    assert stats['bag'] is None and stats['queue'] is None
    assert stats['clips']['written'][0]['reasons'] == ['snapshot']
    # Closed: the services say so; a recorder without clips says why.
    assert not services.call('snapshot').success
    assert not services.call('split').success


def test_snapshot_without_clips_says_why(ros, tmp_path):
    node, _ = start(ros, tmp_path)
    reply = Services(*ros).call('snapshot')
    assert (reply.success, reply.message) == (False, 'clips are off (clip_mode off)')
    assert node.trigger_deactivate() == SUCCESS


@NEEDS_ROS2_CLI
@NEEDS_INSTALLED_PACKAGE
@pytest.mark.parametrize('backend', ['python', 'rosbag2_py'])
def test_ros2_bag_info_and_play_read_a_clip(ros, tmp_path, counter, backend):
    if backend == 'rosbag2_py' and not HAVE_ROSBAG2_PY and not ROS_STACK_REQUIRED:
        pytest.skip('rosbag2_py is not installed')
    _, clip, _ = snapshot_clip(ros, tmp_path, writer_backend=backend)
    count, _ = bag_info_count(clip, POINTS)
    assert count >= 5
    played, out = play_and_count(clip, count, counter)
    assert played == count, out


def test_bad_event_messages_are_logged_once_and_counted(ros, tmp_path):
    context, executor = ros
    node = recorder_node(context, executor, tmp_path, topic_regex='^/sensr/events$',
                         clip_mode='with_bag', clip_before=0.0, clip_after=0.0,
                         diagnostics_period=0.05)
    node.log = LogSpy(node.get_logger())
    node.get_logger = lambda: node.log
    diagnostics = Diagnostics(context, executor)
    talker = rclpy.create_node('events_talker', context=context)
    events = talker.create_publisher(String, '/sensr/events', RELIABLE)
    executor.add_node(talker)
    assert node.trigger_configure() == SUCCESS
    assert node.trigger_activate() == SUCCESS
    assert wait_until(lambda: events.get_subscription_count() == 1)
    good = json.dumps({'zone': [{'id': 2, 'type': 'EXIT'}], 'losing': []})
    for text in ('not json', '[1]', '{"zone": [{"id": "two", "type": "EXIT"}]}', good):
        events.publish(String(data=text))
    assert wait_until(lambda: received(node, '/sensr/events') == 4)
    assert wait_until(lambda: diagnostics.value('sensr_recorder: clips', 'bad_events') == '3')
    assert diagnostics.value('sensr_recorder: clips', 'started') == '1'  # the good one
    assert node.log.count('warning', 'not zone-event JSON') == 1
    assert node.trigger_deactivate() == SUCCESS
    assert bag_counts(tmp_path / 'bag') == {'/sensr/events': 4}
    assert bag_counts(tmp_path / 'bag_clip_001') == {'/sensr/events': 1}
