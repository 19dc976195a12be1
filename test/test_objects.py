# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Objects as data: rows, objects/json and Detection3DArray, alone and from a real bridge."""

import json
import math
import threading

from geometry_msgs.msg import Pose, PoseWithCovariance, Vector3
from helpers import HAVE_VISION_MSGS, NEEDS_VISION_MSGS, LogSpy
import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header, String

from sensr_bridge.convert import objects
from sensr_bridge.nodes.bridge import BridgeNode
from sensr_bridge.sensr import protocol
from sensr_bridge.sim.config import SimulatorConfig
from sensr_bridge.sim.frames import Frames
from sensr_bridge.sim.server import Simulator

SMALL = {'output_port': 0, 'point_port': None, 'rate_hz': 20.0, 'points': 0, 'objects': 12,
         'object_points': 10, 'frames_precomputed': 4, 'start_after_clients': 1,
         'event_interval_s': 0.1, 'custom_interval_s': 0.1}
FRAMES = 6
TIMEOUT = 20.0
ROW_KEYS = {'id', 'source', 'label', 'label_id', 'probability', 'tracking_status',
            'tracking_status_id', 'tracking_reliable', 'is_static', 'centre', 'size', 'yaw',
            'yaw_rate', 'velocity', 'zone_ids', 'history', 'prediction'}


def same32(a, b):
    """Equal as float32 (rows carry SENSR's float32 values as short decimals)."""
    return np.float32(a) == np.float32(b)


def xyz_same32(d, v):
    return same32(d['x'], v.x) and same32(d['y'], v.y) and same32(d['z'], v.z)


def assert_row_is_object(row, obj, source='objects'):
    """Compare one row with the protobuf object field by field."""
    assert set(row) == ROW_KEYS
    assert row['id'] == obj.id
    assert row['source'] == source
    assert row['label'] == protocol.enum_name(protocol.LABEL_TYPE, obj.label)
    assert row['label_id'] == obj.label
    assert same32(row['probability'], obj.confidence)
    assert row['tracking_status'] == protocol.enum_name(protocol.TRACKING_STATUS,
                                                        obj.tracking_status)
    assert row['tracking_status_id'] == obj.tracking_status
    assert row['tracking_reliable'] is (row['tracking_status'] == 'TRACKING')
    assert row['is_static'] is obj.is_static
    box = obj.bbox
    centre = row['centre']
    assert same32(centre['x'], box.position.x) and same32(centre['y'], box.position.y)
    # SENSR's z is the bottom of the box.
    assert same32(centre['z'], box.position.z + box.size.z / 2)
    assert xyz_same32(row['size'], box.size)
    assert same32(row['yaw'], box.yaw) and same32(row['yaw_rate'], obj.yaw_rate)
    assert xyz_same32(row['velocity'], obj.velocity)
    assert row['zone_ids'] == list(obj.zone_ids)
    states = obj.history.states
    assert len(row['history']) == len(states)
    for point, state in zip(row['history'], states, strict=True):
        assert xyz_same32(point, state.position)
        assert point['stamp_ns'] == protocol.timestamp_ns(state.timestamp)
    positions = obj.prediction.positions
    assert len(row['prediction']) == len(positions)
    for point, position in zip(row['prediction'], positions, strict=True):
        assert xyz_same32(point, position)


def make_object(object_id=7, **fields):
    obj = protocol.Object(id=object_id, label=2, confidence=0.83, tracking_status=3,
                          yaw_rate=0.25, zone_ids=[1, 3])
    obj.bbox.position.x, obj.bbox.position.y, obj.bbox.position.z = 1.5, -2.25, 0.5
    obj.bbox.size.x, obj.bbox.size.y, obj.bbox.size.z = 0.6, 0.7, 1.8
    obj.bbox.yaw = 0.5
    obj.velocity.x, obj.velocity.y = 1.25, -0.5
    for k in range(3):
        state = obj.history.states.add()
        state.position.x, state.position.y = 1.0 + k, 2.0
        state.timestamp.FromNanoseconds(1_700_000_000_000_000_000 + k)
        position = obj.prediction.positions.add()
        position.x, position.y = 3.0 + k, 4.0
    for name, value in fields.items():
        setattr(obj, name, value)
    return obj


# --- rows --------------------------------------------------------------------------------


def test_row_carries_every_field_of_the_object():
    obj = make_object()
    row = objects.object_row(obj)
    assert_row_is_object(row, obj)
    assert row['centre'] == {'x': 1.5, 'y': -2.25, 'z': 1.4}
    assert row['label'] == 'LABEL_PEDESTRIAN' and row['probability'] == 0.83
    assert row['yaw_rate'] == 0.25 and row['zone_ids'] == [1, 3]
    assert row['history'][0] == {'x': 1.0, 'y': 2.0, 'z': 0.0,
                                 'stamp_ns': 1_700_000_000_000_000_000}
    assert 'history' not in objects.object_row(obj, detail=False)


def test_zero_and_empty_fields_are_printed():
    obj = protocol.Object()
    obj.bbox.SetInParent()  # a box at the origin with no size: valid, all zeros
    frame = objects.ObjectFrame(rows=[objects.object_row(obj)])
    data = json.loads(objects.frame_json(frame, 0, 'sensr'))
    assert data['skipped'] == {'missing_bbox': 0, 'bad_bbox': 0, 'non_finite': 0}
    row = data['objects'][0]
    assert set(row) == ROW_KEYS
    assert row == {
        'id': 0, 'source': 'objects', 'label': 'LABEL_NONE', 'label_id': 0,
        'probability': 0.0, 'tracking_status': 'NONE', 'tracking_status_id': 0,
        'tracking_reliable': False, 'is_static': False,
        'centre': {'x': 0.0, 'y': 0.0, 'z': 0.0}, 'size': {'x': 0.0, 'y': 0.0, 'z': 0.0},
        'yaw': 0.0, 'yaw_rate': 0.0, 'velocity': {'x': 0.0, 'y': 0.0, 'z': 0.0},
        'zone_ids': [], 'history': [], 'prediction': []}


def test_labels_and_statuses_newer_than_the_schema_keep_their_number():
    row = objects.object_row(make_object(label=42, tracking_status=9))
    assert (row['label'], row['label_id']) == ('UNKNOWN_42', 42)
    assert (row['tracking_status'], row['tracking_status_id']) == ('UNKNOWN_9', 9)
    assert row['tracking_reliable'] is False


def bad_objects():
    """One object per way of being malformed, by the reason it is counted under."""
    no_box = protocol.Object(id=901, label=1, confidence=0.5)
    nan_size = make_object(902)
    nan_size.bbox.size.y = math.nan
    negative = make_object(903)
    negative.bbox.size.z = -1.0
    inf_position = make_object(904)
    inf_position.bbox.position.x = math.inf
    inf_velocity = make_object(905)
    inf_velocity.velocity.z = -math.inf
    nan_probability = make_object(906, confidence=math.nan)
    nan_history = make_object(907)
    nan_history.history.states[1].position.y = math.nan
    nan_prediction = make_object(908)
    nan_prediction.prediction.positions[2].x = math.inf
    return {'missing_bbox': [no_box], 'bad_bbox': [nan_size, negative, inf_position],
            'non_finite': [inf_velocity, nan_probability, nan_history, nan_prediction]}


def test_malformed_objects_are_skipped_and_counted_by_reason():
    stream = protocol.OutputMessage().stream
    good = [make_object(1), make_object(2)]
    stream.objects.append(good[0])
    for objs in bad_objects().values():
        stream.objects.extend(objs)
    stream.objects.append(good[1])
    static = make_object(3)
    stream.static_objects.extend([static, protocol.Object(id=904)])
    frame = objects.frame_rows(stream)
    assert [r['id'] for r in frame.rows] == [1, 2, 3]
    assert_row_is_object(frame.rows[2], static, 'static_objects')
    assert frame.skipped == {'missing_bbox': 2, 'bad_bbox': 3, 'non_finite': 4}
    assert 'object 901 has no bounding box' in frame.first_error['missing_bbox']
    assert '902' in frame.first_error['bad_bbox']
    text = objects.frame_json(frame, 5, 'site')
    data = json.loads(text)  # strict JSON: no NaN or Infinity got through
    assert 'NaN' not in text and 'Infinity' not in text
    assert data['skipped'] == {'missing_bbox': 2, 'bad_bbox': 3, 'non_finite': 4}
    assert (data['stamp_ns'], data['frame_id']) == (5, 'site')
    # Without detail, history and prediction are neither read nor checked.
    lean = objects.frame_rows(stream, detail=False)
    assert [r['id'] for r in lean.rows] == [1, 907, 908, 2, 3]


def shortest32(value):
    """The shortest decimal of a float32, by numpy."""
    return float(np.format_float_positional(np.float32(value), unique=True))


@pytest.mark.parametrize('value', [0.83, 1.9, -21.450617, 1e-7, 3.4028235e38, 123456.79, 0.1,
                                   -0.009932127, 7.0, 1 / 3, -0.0])
def test_f32_is_the_shortest_decimal_of_the_float32(value):
    single = float(np.float32(value))
    assert objects.f32(single) == shortest32(single)
    assert np.float32(objects.f32(single)) == np.float32(single)


def test_f32_matches_numpy_on_random_values():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.uniform(-100, 100, 3000), rng.normal(0, 1e-3, 1000),
                             rng.uniform(-1e6, 1e6, 1000)]).astype(np.float32)
    assert [objects.f32(float(v)) for v in values] == [shortest32(v) for v in values]
    # A computed value beyond float32 (the centre of a huge box) is kept as it is.
    assert objects.f32(1e300) == 1e300


# --- Detection3DArray --------------------------------------------------------------------


class FakeVisionMsgs:
    """The three vision_msgs classes, with the fields of vision_msgs 4.x (ros2 branch)."""

    class ObjectHypothesis:
        def __init__(self):
            self.class_id, self.score = '', 0.0

    class ObjectHypothesisWithPose:
        def __init__(self):
            self.hypothesis = FakeVisionMsgs.ObjectHypothesis()
            self.pose = PoseWithCovariance()

    class BoundingBox3D:
        def __init__(self):
            self.center, self.size = Pose(), Vector3()

    class Detection3D:
        def __init__(self):
            self.header, self.results, self.id = Header(), [], ''
            self.bbox = FakeVisionMsgs.BoundingBox3D()

    class Detection3DArray:
        def __init__(self):
            self.header, self.detections = Header(), []


def assert_detection_is_row(det, row, stamp_ns, frame_id):
    assert (det.header.stamp.sec * 10**9 + det.header.stamp.nanosec) == stamp_ns
    assert det.header.frame_id == frame_id
    assert det.id == str(row['id'])
    centre = det.bbox.center.position
    assert (centre.x, centre.y, centre.z) == (row['centre']['x'], row['centre']['y'],
                                              row['centre']['z'])
    q = det.bbox.center.orientation
    assert (q.x, q.y) == (0.0, 0.0)
    assert 2 * math.atan2(q.z, q.w) == pytest.approx(row['yaw'], abs=1e-12)
    size = det.bbox.size
    assert (size.x, size.y, size.z) == (row['size']['x'], row['size']['y'], row['size']['z'])
    (result,) = det.results
    assert result.hypothesis.class_id == row['label']
    assert result.hypothesis.score == row['probability']
    assert result.pose.pose == det.bbox.center
    assert list(result.pose.covariance) == [0.0] * 36


@pytest.mark.parametrize('real', [pytest.param(True, marks=NEEDS_VISION_MSGS), False],
                         ids=['vision_msgs', 'stand_in'])
def test_detection_array_from_rows(real):
    msgs = objects.vision_msgs() if real else FakeVisionMsgs
    rows = [objects.object_row(make_object(i, label=i % 4)) for i in (3, 1, 12)]
    stamp = 1_700_000_000_123_456_789
    array = objects.detection_array(rows, stamp, 'sensr', msgs)
    assert array.header.frame_id == 'sensr'
    assert len(array.detections) == 3
    for det, row in zip(array.detections, rows, strict=True):
        assert_detection_is_row(det, row, stamp, 'sensr')
    if real:
        again = deserialize_message(serialize_message(array), type(array))
        assert again == array
        assert objects.detection_array([], stamp, 'sensr', msgs).detections == []


def test_vision_msgs_module_is_found_where_installed():
    assert (objects.vision_msgs() is not None) == HAVE_VISION_MSGS


# --- a real bridge against the simulator -------------------------------------------------


class Collector:
    """Keeps every message of some topics (deserialized) and signals counts."""

    def __init__(self, context, topics):
        self.node = rclpy.create_node('objects_collector', context=context)
        self.msgs = {t: [] for t, _ in topics}
        self.cond = threading.Condition()
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        for topic, cls in topics:
            self.node.create_subscription(cls, topic, lambda m, t=topic: self._got(t, m), qos)

    def _got(self, topic, msg):
        with self.cond:
            self.msgs[topic].append(msg)
            self.cond.notify_all()

    def wait(self, topic, n, timeout=TIMEOUT):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.msgs[topic]) >= n, timeout)


def run_bridge(ros, sim, topics, **params):
    """Start a bridge against ``sim`` and a collector of ``topics``; return both, active."""
    context, executor = ros
    collector = Collector(context, topics)
    executor.add_node(collector.node)
    overrides = [Parameter('output_port', value=sim.output_port),
                 Parameter('point_port', value=0), Parameter('autostart', value=False),
                 Parameter('stats_log_period', value=0.0)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = BridgeNode(namespace='sensr', context=context, parameter_overrides=overrides)
    node.log = LogSpy(node.get_logger())
    node.get_logger = lambda: node.log
    executor.add_node(node)
    node.trigger_configure()
    node.trigger_activate()
    return node, collector


def sent_frames(sim):
    """Map each sent frame's stamp (its OutputMessage.timestamp) to its OutputMessage."""
    return {stamp: protocol.OutputMessage.FromString(sim.expected_output_message(seq))
            for seq, stamp in sim.sent_log().items()}


def test_objects_json_carries_every_object_the_simulator_sent(ros, make_sim):
    sim = make_sim(max_frames=FRAMES)
    node, collector = run_bridge(ros, sim, [('/sensr/objects/json', String)])
    assert collector.wait('/sensr/objects/json', FRAMES), len(collector.msgs['/sensr/objects/json'])
    # The event and custom messages in between carry no objects and give no message.
    assert sim.wait(TIMEOUT)
    node.trigger_deactivate()
    assert len(collector.msgs['/sensr/objects/json']) == FRAMES
    sent = sent_frames(sim)
    assert len(sent) == FRAMES
    for msg in collector.msgs['/sensr/objects/json']:
        data = json.loads(msg.data)
        assert data['frame_id'] == 'sensr'
        assert data['skipped'] == {'missing_bbox': 0, 'bad_bbox': 0, 'non_finite': 0}
        expected = sent[data['stamp_ns']].stream.objects
        assert len(data['objects']) == len(expected) == SMALL['objects']
        for row, obj in zip(data['objects'], expected, strict=True):
            assert_row_is_object(row, obj)
    rows = [row for m in collector.msgs['/sensr/objects/json'] for row in json.loads(m.data)[
        'objects']]
    # The simulator's scene: moving and parked (MISC) objects, two tracking statuses.
    assert {r['is_static'] for r in rows} == {True, False}
    assert {r['tracking_status'] for r in rows} == {'TRACKING', 'VALIDATING'}
    assert any(r['velocity'] == {'x': 0.0, 'y': 0.0, 'z': 0.0} for r in rows)
    assert node.counters.get('objects_published') == FRAMES * SMALL['objects']
    assert not [k for k in node.counters.snapshot() if '_bad_' in k]
    said = [text for level, text in node.log.lines if 'vision_msgs is not installed' in text]
    assert len(said) == (0 if HAVE_VISION_MSGS else 1)
    topics = dict(node.get_topic_names_and_types())
    assert ('/sensr/objects' in topics) == HAVE_VISION_MSGS
    node.trigger_shutdown()


@NEEDS_VISION_MSGS
def test_objects_topic_is_a_detection3d_array_of_the_sent_objects(ros, make_sim):
    from vision_msgs.msg import Detection3DArray

    sim = make_sim(max_frames=FRAMES)
    node, collector = run_bridge(ros, sim, [('/sensr/objects', Detection3DArray),
                                            ('/sensr/objects/json', String)])
    assert collector.wait('/sensr/objects', FRAMES)
    assert collector.wait('/sensr/objects/json', FRAMES)
    sent = sent_frames(sim)
    rows = {json.loads(m.data)['stamp_ns']: json.loads(m.data)['objects']
            for m in collector.msgs['/sensr/objects/json']}
    for array in collector.msgs['/sensr/objects']:
        stamp = array.header.stamp.sec * 10**9 + array.header.stamp.nanosec
        assert array.header.frame_id == 'sensr'
        expected = sent[stamp].stream.objects
        assert len(array.detections) == len(expected) == SMALL['objects']
        for det, obj, row in zip(array.detections, expected, rows[stamp], strict=True):
            assert_detection_is_row(det, row, stamp, 'sensr')
            assert det.id == str(obj.id)
            assert same32(det.bbox.center.position.x, obj.bbox.position.x)
            assert same32(det.bbox.center.position.z, obj.bbox.position.z + obj.bbox.size.z / 2)
            assert same32(det.bbox.size.y, obj.bbox.size.y)
            assert same32(det.results[0].hypothesis.score, obj.confidence)
    node.trigger_shutdown()


def test_publish_objects_false_publishes_neither(ros, make_sim):
    sim = make_sim(max_frames=2)
    node, collector = run_bridge(ros, sim, [('/sensr/objects/markers', _marker_type())],
                                 publish_objects=False)
    assert collector.wait('/sensr/objects/markers', 2)
    # This node's own publishers (the graph may still show those of an earlier test's
    # bridge, and may not list all of this node's yet).
    names = {pub.topic_name for pub in node.publishers}
    assert '/sensr/objects/markers' in names
    assert '/sensr/objects/json' not in names and '/sensr/objects' not in names
    assert node.counters.get('objects_published') == 0
    node.trigger_shutdown()


def _marker_type():
    from visualization_msgs.msg import MarkerArray

    return MarkerArray


BAD_STREAM = protocol.OutputMessage()
BAD_STREAM.stream.objects.extend([o for objs in bad_objects().values() for o in objs])
BAD_COUNTS = {reason: len(objs) for reason, objs in bad_objects().items()}


def test_malformed_objects_are_counted_and_the_rest_still_published(ros, monkeypatch):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    # Every frame's stream gains the malformed objects (serialized messages concatenated merge).
    plain = Frames.stream_message
    monkeypatch.setattr(Frames, 'stream_message', lambda self, seq, now_ns: (
        plain(self, seq, now_ns) + BAD_STREAM.SerializeToString()))
    config = SimulatorConfig(**{**SMALL, 'max_frames': FRAMES})
    with Simulator(config) as sim:
        node, collector = run_bridge(ros, sim, [('/sensr/objects/json', String),
                                                ('/diagnostics', DiagnosticArray)],
                                     diagnostics_period=0.1)
        assert collector.wait('/sensr/objects/json', FRAMES)
        sent = sent_frames(sim)
        for msg in collector.msgs['/sensr/objects/json']:
            data = json.loads(msg.data)
            assert data['skipped'] == BAD_COUNTS
            expected = [o for o in sent[data['stamp_ns']].stream.objects if o.id < 900]
            assert len(data['objects']) == len(expected) == SMALL['objects']
            for row, obj in zip(data['objects'], expected, strict=True):
                assert_row_is_object(row, obj)
        counts = node.counters.snapshot()
        for reason, n in BAD_COUNTS.items():
            assert counts[f'output_bad_object_{reason}'] == FRAMES * n, counts
        assert 'output_bad_conversion_failed' not in counts
        assert counts['output_published'] == counts['output_received']
        # Reported in /diagnostics with the other decode problems (WARN).

        def reported(array):
            return any(s.name.endswith('pipeline') and s.level == DiagnosticStatus.WARN and any(
                kv.key == 'output_bad_object_missing_bbox' and int(kv.value) > 0
                for kv in s.values) for s in array.status)

        with collector.cond:
            assert collector.cond.wait_for(lambda: any(
                reported(a) for a in collector.msgs['/diagnostics']), TIMEOUT)
        warned = [t for lv, t in node.log.lines if lv == 'warning' and 'object(s) skipped' in t]
        assert 1 <= len(warned) <= 3, warned  # throttled: once per reason
        node.trigger_shutdown()
