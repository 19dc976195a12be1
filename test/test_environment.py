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

from sensr_bridge import paths

PROFILE = str(paths.config_dir() / paths.DDS_PROFILE)
PROFILE_SEGMENT_BYTES = 268_435_456
"""segment_size of config/fastdds_large_data.xml: a participant that read it maps this."""


@pytest.mark.parametrize(('distro', 'variable'), [
    ('humble', 'FASTRTPS_DEFAULT_PROFILES_FILE'), ('jazzy', 'FASTRTPS_DEFAULT_PROFILES_FILE'),
    ('kilted', 'FASTDDS_DEFAULT_PROFILES_FILE'), ('rolling', 'FASTDDS_DEFAULT_PROFILES_FILE'),
])
def test_only_the_variable_the_distro_reads(monkeypatch, distro, variable):
    monkeypatch.setenv('ROS_DISTRO', distro)
    for name in paths.DDS_PROFILE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert paths.dds_environment() == {variable: PROFILE}
    # A profile the user gave, in either variable, is kept.
    other = next(n for n in paths.DDS_PROFILE_VARIABLES if n != variable)
    monkeypatch.setenv(other, '/etc/my_profile.xml')
    assert paths.dds_environment() == {variable: '/etc/my_profile.xml'}


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
    env = {k: v for k, v in os.environ.items() if k not in paths.DDS_PROFILE_VARIABLES}
    env.update(paths.dds_environment())
    done = subprocess.run([sys.executable, '-c', NODE], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    # Jazzy's rcl warns about ROS_LOCALHOST_ONLY (set by conftest); profile warnings come
    # from rmw_fastrtps.
    warnings = [line for line in done.stderr.splitlines()
                if 'WARN' in line and '[rcl]' not in line]
    assert warnings == []
    assert int(done.stdout) >= PROFILE_SEGMENT_BYTES, 'the large-data profile was not read'
    assert Path(PROFILE).is_file()
