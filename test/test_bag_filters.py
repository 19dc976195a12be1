# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The main bag's message filter: per-topic intervals and empty clouds, without rclpy nodes."""

import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import String

from sensr_bridge.bag.filters import (
    SKIPPED_EMPTY,
    SKIPPED_INTERVAL,
    MessageFilter,
    parse_intervals,
)
from sensr_bridge.convert.cdr import cloud_point_count
from sensr_bridge.errors import ConfigError

CLOUD = 'sensor_msgs/msg/PointCloud2'
S = 1_000_000_000


def cloud(height, width, frame_id='sensr'):
    msg = PointCloud2(height=height, width=width, point_step=1, row_step=width,
                      data=bytes(height * width))
    msg.header.frame_id = frame_id
    return serialize_message(msg)


@pytest.mark.parametrize('frame_id', ['', 'a', 'abc', 'abcd', 'sensr', 'a' * 13])
@pytest.mark.parametrize(('height', 'width'), [(0, 0), (1, 0), (1, 5), (3, 7)])
def test_cloud_point_count_matches_rclpy(frame_id, height, width):
    assert cloud_point_count(cloud(height, width, frame_id)) == height * width


def test_cloud_point_count_of_garbage_is_none():
    assert cloud_point_count(b'') is None
    assert cloud_point_count(b'\x07' * 40) is None
    assert cloud_point_count(cloud(1, 1)[:20]) is None


def test_parse_intervals():
    rules = parse_intervals(['/points$=1.0', '', 'a=b=0.25', 'x=0'])
    assert [(r.pattern.pattern, r.interval_ns) for r in rules] == [
        ('/points$', S), ('a=b', S // 4), ('x', 0)]


@pytest.mark.parametrize('entry', ['/points', '/points=', '/points=-1', '/points=nan',
                                   '/points=inf', '([=1.0'])
def test_parse_intervals_rejects_with_the_entry(entry):
    with pytest.raises(ConfigError, match='topic_intervals entry'):
        parse_intervals([entry])


def test_one_message_per_slot_first_match_wins():
    f = MessageFilter(parse_intervals(['/points$=1.0', '^/sensr/=0.5']), skip_empty_clouds=False)
    for topic in ('/sensr/points', '/sensr/events', '/sensr/chatter'):
        f.add_topic(topic, 'std_msgs/msg/String')
    f.add_topic('/other/points/raw', CLOUD)
    data = b'x'
    # 10 Hz with jitter: the first message of every second is kept, one a second exactly.
    stamps = [10 * S + i * S // 10 + (7_000_000 if i % 2 else -3_000_000) for i in range(1, 40)]
    kept = [t for t in stamps if f.skip_reason('/sensr/points', t, data) is None]
    assert [t // S for t in kept] == [10, 11, 12, 13]
    assert f.skip_reason('/sensr/points', 13 * S + 1, data) == SKIPPED_INTERVAL
    # The second rule for the rest; each topic has its own slots.
    assert f.skip_reason('/sensr/events', 10 * S, data) is None
    assert f.skip_reason('/sensr/events', 10 * S + S // 4, data) == SKIPPED_INTERVAL
    assert f.skip_reason('/sensr/events', 10 * S + S // 2, data) is None
    assert f.skip_reason('/sensr/chatter', 10 * S + S // 4, data) is None
    # A topic no rule matches, and a topic never added, keep every message.
    assert all(f.skip_reason('/other/points/raw', 10 * S, data) is None for _ in range(3))
    assert all(f.skip_reason('/unknown', 10 * S, data) is None for _ in range(3))


def test_empty_clouds_skipped_without_using_the_slot():
    f = MessageFilter(parse_intervals(['points=1.0']), skip_empty_clouds=True)
    f.add_topic('/sensr/points', CLOUD)
    f.add_topic('/sensr/points_json', 'std_msgs/msg/String')
    assert f.skip_reason('/sensr/points', 5 * S, cloud(1, 0)) == SKIPPED_EMPTY
    assert f.skip_reason('/sensr/points', 5 * S + 1, cloud(1, 3)) is None
    assert f.skip_reason('/sensr/points', 5 * S + 2, cloud(1, 3)) == SKIPPED_INTERVAL
    # Only clouds are looked at: an empty string is not an empty cloud.
    assert f.skip_reason('/sensr/points_json', 5 * S, serialize_message(String())) is None
    keep_empty = MessageFilter([], skip_empty_clouds=False)
    keep_empty.add_topic('/sensr/points', CLOUD)
    assert keep_empty.skip_reason('/sensr/points', 5 * S, cloud(0, 0)) is None
