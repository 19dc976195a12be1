# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The process environment: which DDS profile variable the distro reads, and a quiet start."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest
import rclpy

from sensr_bridge.process import environment, paths

PROFILE = str(paths.config_dir() / environment.DDS_PROFILE)
PROFILE_SEGMENT_BYTES = 268_435_456
"""segment_size of config/fastdds_large_data.xml: a participant that read it maps this."""


@pytest.mark.parametrize(('distro', 'variable'), [
    ('humble', 'FASTRTPS_DEFAULT_PROFILES_FILE'), ('jazzy', 'FASTRTPS_DEFAULT_PROFILES_FILE'),
    ('kilted', 'FASTDDS_DEFAULT_PROFILES_FILE'), ('rolling', 'FASTDDS_DEFAULT_PROFILES_FILE'),
])
def test_only_the_variable_the_distro_reads(monkeypatch, distro, variable):
    monkeypatch.setenv('ROS_DISTRO', distro)
    for name in environment.DDS_PROFILE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert environment.dds_environment() == {variable: PROFILE}
    # A profile the user gave, in either variable, is kept.
    other = next(n for n in environment.DDS_PROFILE_VARIABLES if n != variable)
    monkeypatch.setenv(other, '/etc/my_profile.xml')
    assert environment.dds_environment() == {variable: '/etc/my_profile.xml'}


def test_a_process_that_only_receives_clouds_gets_the_small_segment(monkeypatch):
    for name in environment.DDS_PROFILE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (variable, receive), = environment.dds_environment(publishes_clouds=False).items()
    assert Path(receive) == paths.config_dir() / environment.DDS_RECEIVE_PROFILE
    # Our own large profile in the environment (set for every process by a launch file,
    # or exported for RViz) stands for "the package's profiles": its sibling is used.
    monkeypatch.setenv(variable, PROFILE)
    assert environment.dds_environment(publishes_clouds=False) == {variable: receive}
    monkeypatch.setenv(variable, receive)
    assert environment.dds_environment() == {variable: PROFILE}
    monkeypatch.setenv(variable, '/etc/my_profile.xml')
    assert environment.dds_environment(publishes_clouds=False) == {variable: '/etc/my_profile.xml'}


def test_distro_of_the_rclpy_in_use(monkeypatch):
    monkeypatch.delenv('ROS_DISTRO', raising=False)
    # Kilted's rclpy is the first with ``with rclpy.init()``.
    expected = 'kilted' if hasattr(rclpy, 'InitContextManager') else 'jazzy'
    assert paths.ros_distro() == expected


NODE = """
import os, rclpy
before = set(os.listdir('/dev/shm'))
rclpy.init()
node = rclpy.create_node('quiet_start')
print(max([os.path.getsize('/dev/shm/' + name)
           for name in set(os.listdir('/dev/shm')) - before], default=0))
node.destroy_node()
rclpy.shutdown()
"""


def test_a_node_reads_the_profile_and_starts_without_a_warning():
    env = {k: v for k, v in os.environ.items() if k not in environment.DDS_PROFILE_VARIABLES}
    env.update(environment.dds_environment())
    done = subprocess.run([sys.executable, '-c', NODE], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    # Jazzy's rcl warns about ROS_LOCALHOST_ONLY (set by conftest); profile warnings come
    # from rmw_fastrtps.
    warnings = [line for line in done.stderr.splitlines()
                if 'WARN' in line and '[rcl]' not in line]
    assert warnings == []
    assert int(done.stdout) >= PROFILE_SEGMENT_BYTES, 'the large-data profile was not read'
    assert Path(PROFILE).is_file()


RECEIVER = """
import os, sys, threading, rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
before = set(os.listdir('/dev/shm'))
rclpy.init()
node = rclpy.create_node('cloud_receiver')
print(max([os.path.getsize('/dev/shm/' + name)
           for name in set(os.listdir('/dev/shm')) - before], default=0), flush=True)
got, done = [], threading.Event()
def take(data):
    got.append(len(data))
    if len(got) == int(sys.argv[1]):
        done.set()
node.create_subscription(PointCloud2, '/sensr/points', take, QoSProfile(
    history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE), raw=True)
threading.Thread(target=rclpy.spin, args=(node,), daemon=True).start()
done.wait(120)
print(len(got), min(got, default=0), flush=True)
"""


def test_the_receive_profile_takes_every_cloud_from_a_large_data_publisher():
    """Recorder-like process on the 4 MiB profile, bench publisher on the large one."""
    count = 30
    env = {k: v for k, v in os.environ.items() if k not in environment.DDS_PROFILE_VARIABLES}
    receiver = subprocess.Popen(
        [sys.executable, '-c', RECEIVER, str(count)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**env, **environment.dds_environment(
            publishes_clouds=False)})
    try:
        assert receiver.stdout is not None
        segment = int(receiver.stdout.readline())
        publisher = subprocess.run(
            [sys.executable, '-m', 'sensr_bridge.bench', '_publish', '--rate', '20',
             '--count', str(count)], env={**env, **environment.dds_environment()},
            capture_output=True, text=True, timeout=120, check=True)
        out, err = receiver.communicate(timeout=120)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    assert '"event": "done"' in publisher.stdout, publisher.stdout + publisher.stderr
    received, smallest = map(int, out.split())
    assert received == count, err
    assert smallest > 14_000_000  # whole SENSR-sized clouds (921,512 points)
    assert 0 < segment < PROFILE_SEGMENT_BYTES // 32, segment
    assert not [line for line in err.splitlines() if 'WARN' in line and '[rcl]' not in line]
