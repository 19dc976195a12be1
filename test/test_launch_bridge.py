# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""bridge.launch.py on launch_testing: the default (rviz auto) where rviz2 may be missing.

The simulator and the bridge start; a subscriber in this process receives clouds; the
launch is shut down as launch does on an event (SIGINT to every process). After that:
every process exited 0 in time, nothing failed or escalated, none is left, and where
rviz2 is not installed launch said so in one line naming the package to install.

Needs launch_testing (its pytest plugin runs this module) and sensr_bridge built and
sourced; skipped without them, never under SENSR_ROS_STACK=required.
"""

from __future__ import annotations

import unittest

import bag_helpers
from bag_helpers import POINTS, SIM_POINTS, START_TIMEOUT_S, LaunchWatch, counting
from helpers import NEEDS_INSTALLED_PACKAGE, NEEDS_LAUNCH, free_ports, require
import pytest

from sensr_bridge.launching import plans

launch_testing = require('launch_testing', NEEDS_LAUNCH)


@pytest.mark.launch_test
@NEEDS_INSTALLED_PACKAGE
def generate_test_description():
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch_ros.substitutions import FindPackageShare
    from launch_testing.actions import ReadyToTest

    from launch import LaunchDescription

    have_rviz = plans.rviz_installed()
    output_port, point_port = free_ports(2)
    arguments = {'simulate': 'true', 'sim_points': SIM_POINTS, 'output_port': output_port,
                 'point_port': point_port,
                 **({'rviz': 'false'} if have_rviz else {})}  # no window in a test
    watch = LaunchWatch()
    bridge = IncludeLaunchDescription(
        PythonLaunchDescriptionSource([FindPackageShare(plans.PACKAGE),
                                       '/launch/bridge.launch.py']),
        launch_arguments=arguments.items())
    return (LaunchDescription([*watch.actions(), ReadyToTest(), bridge]),
            {'watch': watch, 'have_rviz': have_rviz})


class TestPublishing(unittest.TestCase):

    @classmethod
    def setUpClass(cls, watch):
        watch.testing()

    def test_clouds_arrive(self, watch):
        with counting() as counter:
            sub = counter(POINTS)
            watch.wait_for(lambda: sub.count >= 10, START_TIMEOUT_S, '10 clouds')


@launch_testing.post_shutdown_test()
class TestStopped(bag_helpers.AfterLaunch):

    def test_stopped_cleanly(self, watch, proc_info):
        watch.assert_stopped_cleanly(proc_info)

    def test_rviz_missing_said_once(self, watch, have_rviz):
        if have_rviz:
            self.skipTest('rviz2 is installed here')
        notes = [line for line in watch.lines if 'RViz not started' in line]
        assert len(notes) == 1, watch.output
        assert 'rviz2 is not installed' in notes[0] and 'rviz2' in notes[0].split('install')[-1]
