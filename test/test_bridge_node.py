# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The bridge node against the simulator: real websockets, real rclpy and DDS."""

import threading

from helpers import start_bridge
import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import UInt8MultiArray
from visualization_msgs.msg import MarkerArray

from sensr_bridge.convert import cloud
from sensr_bridge.nodes.bridge import BridgeNode
from sensr_bridge.sensr import protocol
from sensr_bridge.sim.config import SimulatorConfig
from sensr_bridge.sim.server import Simulator


class Collector:
    """Subscriber node that keeps raw messages per topic and signals counts."""

    def __init__(self, context, topics, reliable=True):
        self.node = rclpy.create_node('collector', context=context)
        self.msgs = {t: [] for t, _ in topics}
        self.cond = threading.Condition()
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        for topic, cls in topics:
            self.node.create_subscription(cls, topic, lambda m, t=topic: self._got(t, m), qos,
                                          raw=True)

    def _got(self, topic, data):
        with self.cond:
            self.msgs[topic].append(data)
            self.cond.notify_all()

    def wait(self, topic, n, timeout=30.0):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.msgs[topic]) >= n, timeout)


def expected_points(sim, seq):
    """Build, with protobuf and numpy only, the cloud the bridge must publish for frame seq."""
    pr = protocol.PointResult.FromString(sim.expected_point_result(seq))
    total = sum(len(c.points) // 12 for c in pr.points)
    out = np.zeros(total, cloud.XYZI_TYPE.numpy_dtype())
    row = 0
    for c in pr.points:
        n = len(c.points) // 12
        part = out[row:row + n]
        xyz = np.frombuffer(c.points, '<f4').reshape(n, 3)
        part['x'], part['y'], part['z'] = xyz.T
        part['intensity'] = np.frombuffer(c.intensities, '<f4')
        part['type'] = c.type
        row += n
    return out


@pytest.mark.parametrize('workers', [0, 1])
def test_every_cloud_published_bit_exact(ros, workers):
    context, executor = ros
    config = SimulatorConfig(output_port=0, point_port=0, rate_hz=10.0, max_frames=12,
                             start_after_clients=2)
    with Simulator(config) as sim:
        collector = Collector(context, [('/sensr/points', PointCloud2),
                                        ('/sensr/objects/markers', MarkerArray)])
        executor.add_node(collector.node)
        node = start_bridge(context, executor, sim, decode_workers=workers)
        node.trigger_configure()
        node.trigger_activate()
        assert collector.wait('/sensr/points', 12), collector.msgs['/sensr/points'].__len__()
        clouds = collector.msgs['/sensr/points']
        for seq, data in enumerate(clouds):
            got = cloud.points_of(data, cloud.XYZI_TYPE)
            assert got.tobytes() == expected_points(sim, seq).tobytes(), f'frame {seq} differs'
        msg = deserialize_message(clouds[0], PointCloud2)
        assert msg.header.frame_id == 'sensr'
        assert msg.width == 921_512
        assert [f.name for f in msg.fields] == ['x', 'y', 'z', 'intensity', 'type']
        assert node.counters.get('points_published') == 12
        assert collector.wait('/sensr/objects/markers', 5)
        node.trigger_deactivate()
        node.trigger_shutdown()


def test_markers_place_boxes_at_sensr_geometry(ros):
    context, executor = ros
    config = SimulatorConfig(output_port=0, point_port=None, rate_hz=20.0, max_frames=3,
                             start_after_clients=1, objects=5)
    with Simulator(config) as sim:
        collector = Collector(context, [('/sensr/objects/markers', MarkerArray),
                                        ('/sensr/output_raw', UInt8MultiArray)])
        executor.add_node(collector.node)
        node = BridgeNode(namespace='sensr', context=context, parameter_overrides=[
            Parameter('output_port', value=sim.output_port), Parameter('point_port', value=0),
            Parameter('autostart', value=False)])
        executor.add_node(node)
        node.trigger_configure()
        node.trigger_activate()
        assert collector.wait('/sensr/output_raw', 1)
        assert collector.wait('/sensr/objects/markers', 1)
        raw = deserialize_message(collector.msgs['/sensr/output_raw'][0], UInt8MultiArray)
        out = protocol.OutputMessage.FromString(bytes(raw.data))
        markers = deserialize_message(collector.msgs['/sensr/objects/markers'][0], MarkerArray)
        boxes = {m.id: m for m in markers.markers if m.ns == 'sensr/boxes'}
        assert out.stream.objects
        for obj in out.stream.objects:
            box = boxes[obj.id]
            assert box.pose.position.z == pytest.approx(obj.bbox.position.z + obj.bbox.size.z / 2,
                                                        abs=1e-5)
            assert box.pose.position.x == pytest.approx(obj.bbox.position.x, abs=1e-5)
            yaw = 2 * np.arctan2(box.pose.orientation.z, box.pose.orientation.w)
            assert np.cos(yaw - obj.bbox.yaw) == pytest.approx(1.0, abs=1e-5)
            assert box.scale.z == pytest.approx(obj.bbox.size.z, abs=1e-5)
        node.trigger_shutdown()


def test_configure_fails_with_clear_message(ros):
    context, executor = ros
    node = BridgeNode(namespace='sensr', context=context, parameter_overrides=[
        Parameter('qos_reliability', value='sometimes'), Parameter('autostart', value=False)])
    node.trigger_configure()
    assert node._state_machine.current_state[1] == 'unconfigured'
    node.destroy_node()
