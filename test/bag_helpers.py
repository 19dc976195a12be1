# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Bag helpers of the tests: reference messages and QoS for rosbags, mcap chunk records,
and the real ``ros2 bag info`` / ``ros2 bag play`` with a subscriber that counts."""

from __future__ import annotations

import os
from pathlib import Path
import re
import signal
import struct
import subprocess
import threading

from helpers import wait_until
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

from sensr_bridge.bag.base import QosDesc, TopicInfo
from sensr_bridge.bag.typedefs import typestore
from sensr_bridge.launching import plans
from sensr_bridge.process import environment

_INFINITE = QosTime(9223372036, 854775807)


def rosbags_qos(qos: QosDesc) -> Qos:
    """The rosbags ``Qos`` of a QoS description (infinite times, automatic liveliness)."""
    return Qos(
        QosHistory[qos.history.upper()], qos.depth,
        QosReliability[qos.reliability.upper()], QosDurability[qos.durability.upper()],
        _INFINITE, _INFINITE, QosLiveliness.AUTOMATIC, _INFINITE, False,
    )


COUNTER = TopicInfo('/sensr/counter', 'std_msgs/msg/UInt32')


def string_cdr(text: str) -> bytes:
    """A std_msgs/String in CDR, serialized by rosbags."""
    store = typestore()
    msg = store.types['std_msgs/msg/String'](data=text)
    return bytes(store.serialize_cdr(msg, 'std_msgs/msg/String'))


def uint32_cdr(value: int) -> bytes:
    """A std_msgs/UInt32 in CDR, serialized by rosbags."""
    store = typestore()
    msg = store.types['std_msgs/msg/UInt32'](data=value)
    return bytes(store.serialize_cdr(msg, 'std_msgs/msg/UInt32'))


def chunk_compressions(path: Path) -> list[str]:
    """The compression named by every chunk record of an mcap file, in file order."""
    data = path.read_bytes()
    names, offset = [], 8  # after the magic
    while offset + 9 <= len(data):
        opcode, length = struct.unpack_from('<BQ', data, offset)
        if opcode == 0x02:  # footer
            break
        if opcode == 0x06:  # chunk: start, end, uncompressed size, crc, compression
            (size,) = struct.unpack_from('<I', data, offset + 9 + 28)
            names.append(data[offset + 9 + 32:offset + 9 + 32 + size].decode())
        offset += 9 + length
    return names


# --- ros2 bag info / play, and a subscriber that counts what play delivers ---------------

POINTS = f'/{plans.DEFAULT_NAMESPACE}/points'


class CloudCounter:
    """A reliable KEEP_ALL PointCloud2 subscriber in this process (rclpy)."""

    def __init__(self, topic):
        import rclpy
        from rclpy.event_handler import SubscriptionEventCallbacks
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import PointCloud2

        # conftest put the large-data profile into the environment before rclpy loaded:
        # with Fast DDS defaults clouds from another process do not arrive.
        assert all(os.environ.get(k) == v for k, v in environment.dds_environment().items())
        self.count = 0
        self.cond = threading.Condition()
        self.matched = threading.Event()
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('launch_test_counter', context=self.context)
        self.node.create_subscription(
            PointCloud2, topic, self._got,
            QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE),
            raw=True, event_callbacks=SubscriptionEventCallbacks(
                matched=lambda info: info.current_count and self.matched.set()))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def _spin(self):
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.1)

    def _got(self, _data):
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait_count(self, count, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= count, timeout)

    def call(self, service_type, name, timeout=30.0, attempts=6):
        """Call an idempotent service (empty request) until it answers (bounded).

        A request sent right after ``wait_for_service`` can go unanswered: the server's
        reply writer may not have matched this client's reader yet (CI: the player's
        ``resume`` never answered in 30 s). So the request is sent again.
        """
        client = self.node.create_client(service_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f'no service {name}'
        for _ in range(attempts):
            future = client.call_async(service_type.Request())
            if wait_until(future.done, timeout / attempts, 0.02):
                return future.result()
            client.remove_pending_request(future)
        raise AssertionError(f'{name} did not answer {attempts} requests in {timeout} s')

    def close(self):
        import rclpy

        self._stop.set()
        self._spinner.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def bag_info_count(bag, topic):
    """Messages of ``topic`` in ``bag`` as the real ``ros2 bag info`` prints them."""
    info = subprocess.run(['ros2', 'bag', 'info', str(bag)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert info.returncode == 0, info.stdout + info.stderr
    match = re.search(rf'Topic: {re.escape(topic)} \| Type: [^|]+\| Count: (\d+)', info.stdout)
    assert match, info.stdout
    return int(match.group(1)), info.stdout


def play_and_count(bag, expected, counter):
    """``ros2 bag play`` the clouds of ``bag`` to a subscriber; return what it received.

    The player starts paused and is resumed only once the subscriber matched its
    publisher (its recorded QoS is reliable and volatile: what it publishes before the
    match is not delivered), and waits for every cloud to be acknowledged before it exits.
    """
    sub = counter(POINTS)
    from rosbag2_interfaces.srv import Resume

    play = subprocess.Popen(
        ['ros2', 'bag', 'play', '--start-paused', '--disable-keyboard-controls', '--topics',
         POINTS, '--rate', '4', '--wait-for-all-acked', '10000', str(bag)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, **environment.dds_environment()})
    try:
        assert sub.matched.wait(60), 'the player never matched the subscriber'
        sub.call(Resume, '/rosbag2_player/resume')
        out, _ = play.communicate(timeout=120)
    finally:
        if play.poll() is None:
            os.killpg(play.pid, signal.SIGKILL)
            play.wait()
    assert play.returncode == 0, out
    sub.wait_count(expected, 10)  # the last acknowledged clouds may still be in the executor
    return sub.count, out
