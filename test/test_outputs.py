# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""JSON of zones, events and health: every field printed, zeros included."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import UInt8MultiArray

from sensr_bridge.convert import output_frame, outputs
from sensr_bridge.errors import DecodeError
from sensr_bridge.sensr import protocol


def test_zones_json_prints_zero_coordinates_and_ids():
    zone = protocol.ZoneConfig(id=0, name='')
    for x, y in ((0.0, 0.0), (5.0, 0.0), (5.0, 5.0)):
        point = zone.pbox.points.add()
        point.x, point.y = x, y
    zone.pbox.max_z = 2.0
    # Before: [{"pbox":{"max_z":2.0,"points":[{},{"x":5.0},{"x":5.0,"y":5.0}]}}]
    assert json.loads(outputs.zones_json([zone])) == [{
        'id': 0, 'name': '', 'type': protocol.enum_name(
            protocol.ZoneConfig.DESCRIPTOR.fields_by_name['type'].enum_type, 0),
        'pbox': {'points': [{'x': 0.0, 'y': 0.0}, {'x': 5.0, 'y': 0.0},
                            {'x': 5.0, 'y': 5.0}], 'min_z': 0.0, 'max_z': 2.0}}]


def test_event_json_prints_every_field():
    message = protocol.OutputMessage()
    event = message.event.zone.add()
    event.id = 0
    event.object.id = 0
    event.object.position.x = 3.0
    losing = message.event.losing.add()
    losing.position.y = 0.0
    data = json.loads(outputs.to_json(message.event, stamp_ns=7))
    assert data['stamp_ns'] == 7
    zone = data['zone'][0]
    assert (zone['id'], zone['type']) == (0, 'NONE')
    assert zone['object']['id'] == 0
    assert zone['object']['position'] == {'x': 3.0, 'y': 0.0, 'z': 0.0}
    assert zone['object']['heading'] == 0.0
    assert data['losing'][0]['id'] == 0
    assert data['losing'][0]['heading'] == 0.0
    assert data['online_recalibration'] == []
    assert 'timestamp' not in zone  # a sub-message that is not set stays out


# --- one OutputMessage to ROS messages, without a node (output_frame) ------------------

ALL = frozenset({'output_raw', 'markers', 'object_points', 'objects_json', 'zones',
                 'zone_markers', 'health', 'events', 'custom'})


def options(**overrides):
    return output_frame.OutputOptions(**{
        'frame_id': 'site', 'stamp_from_sensr': True,
        'version': protocol.SensrVersion('3.1'), **overrides})


def stream_frame():
    """An OutputMessage with two objects (one with points), a zone and health."""
    message = protocol.OutputMessage()
    message.timestamp.FromNanoseconds(1_700_000_000_123_456_789)
    stream = message.stream
    stream.has_objects = True
    for object_id in (4, 9):
        obj = stream.objects.add()
        obj.id = object_id
        obj.bbox.size.x = obj.bbox.size.y = obj.bbox.size.z = 1.0
    stream.objects[0].points = np.zeros(6, '<f4').tobytes()  # two points
    stream.objects[0].intensities = np.ones(2, '<f4').tobytes()
    zone = stream.zones.add()
    zone.id = 3
    stream.has_zones = True
    stream.health.master = protocol.HEALTH_OUTPUT_BUFFER_OVERFLOW
    return message.SerializeToString()


def test_a_stream_frame_becomes_every_wanted_message_in_order():
    frame = stream_frame()
    done = output_frame.convert(frame, 5, options(), ALL)
    assert [key for key, _ in done.messages] == [
        'output_raw', 'markers', 'object_points', 'objects_json', 'zones', 'zone_markers',
        'health']
    messages = dict(done.messages)
    raw = deserialize_message(messages['output_raw'], UInt8MultiArray)
    assert bytes(raw.data) == frame
    assert raw.layout.dim[0].label == 'sensr_proto.OutputMessage'
    points = deserialize_message(messages['object_points'], PointCloud2)
    assert (points.width, points.header.frame_id) == (2, 'site')
    # SENSR's timestamp, not the receive time, stamps the messages.
    assert (points.header.stamp.sec, points.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    rows = json.loads(messages['objects_json'].data)
    assert [o['id'] for o in rows['objects']] == [4, 9]
    assert json.loads(messages['zones'].data)[0]['id'] == 3
    assert done.counts == {'objects_published': 2}
    assert [(h.master, origin) for h, origin in done.health] == [
        (protocol.HEALTH_OUTPUT_BUFFER_OVERFLOW, 'stream')]
    assert not done.errors and not done.warnings


def test_only_the_wanted_publishers_get_messages_and_the_receive_time_stamps():
    done = output_frame.convert(stream_frame(), 5, options(stamp_from_sensr=False),
                                {'zones', 'object_points'})
    assert [key for key, _ in done.messages] == ['object_points', 'zones']
    points = deserialize_message(dict(done.messages)['object_points'], PointCloud2)
    assert (points.header.stamp.sec, points.header.stamp.nanosec) == (0, 5)
    assert done.counts == {}  # objects/json not wanted: no objects counted as published


def test_objects_with_mismatched_points_are_an_error_and_the_frame_still_converts():
    message = protocol.OutputMessage.FromString(stream_frame())
    message.stream.objects[1].points = b'\0' * 13  # not whole points
    done = output_frame.convert(message.SerializeToString(), 5, options(), ALL)
    assert [e.kind for e in done.errors] == ['object_points_mismatch']
    assert 'objects_json' in dict(done.messages)


def test_events_are_published_and_counted():
    message = protocol.OutputMessage()
    message.event.zone.add().id = 2
    done = output_frame.convert(message.SerializeToString(), 5, options(), ALL)
    assert [key for key, _ in done.messages] == ['output_raw', 'events']
    assert json.loads(dict(done.messages)['events'].data)['zone'][0]['id'] == 2
    assert done.counts == {'events_published': 1}


def test_a_frame_that_is_no_output_message_raises_decode_error():
    with pytest.raises(DecodeError):
        output_frame.convert(b'\xff\xff\xff', 5, options(), ALL)
