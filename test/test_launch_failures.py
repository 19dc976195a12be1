# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""A launch that cannot do its job stops by itself, with one line saying why, on launch_testing.

- record.launch.py with an output_dir that is a file: the recorder fails to configure;
  the launch stops at once (a failed transition), names the node and its error in one
  line, and leaves no process;
- bridge.launch.py with rviz:=true where rviz2 is not installed: it fails before any
  process starts, with one error line.

The launch stops with the error ``ros2 launch`` reports with exit code 1 ("Caught
exception in launch", the reason of its shutdown); nothing else failed, nothing was
escalated. The active test only waits (bounded) for the launch to stop by itself.

Needs launch_testing (its pytest plugin runs this module) and sensr_bridge built and
sourced; skipped without them, never under SENSR_ROS_STACK=required.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import tempfile
import unittest

import bag_helpers
from bag_helpers import SIM_POINTS, START_TIMEOUT_S, LaunchWatch
from helpers import NEEDS_INSTALLED_PACKAGE, NEEDS_LAUNCH, free_ports, require
import pytest

from sensr_bridge.launching import plans

launch_testing = require('launch_testing', NEEDS_LAUNCH)


@dataclass(frozen=True)
class Failure:
    """A launch that fails: what it is started with, and its one line."""

    name: str
    launch_file: str
    arguments: tuple[str, ...]  # name:=value; {file} is a file where a directory belongs
    selects: tuple[str, ...]  # the one line is the only one with all of these
    says: tuple[str, ...]  # and it says all of these
    starts_processes: bool

    def __str__(self):
        return self.name


FAILURES = [
    Failure('recorder_cannot_configure', 'record.launch.py',
            ('simulate:=true', f'sim_points:={SIM_POINTS}', 'output_dir:={file}'),
            ('[launch]', 'sensr_recorder failed to configure'), ('{file}', 'File exists'),
            starts_processes=True),
    Failure('rviz_true_without_rviz2', 'bridge.launch.py', ('simulate:=true', 'rviz:=true'),
            ('[ERROR]',), ('rviz:=true, but rviz2 is not installed',), starts_processes=False),
]


@pytest.mark.launch_test
@NEEDS_INSTALLED_PACKAGE
@launch_testing.parametrize('failure', FAILURES)
def generate_test_description(failure):
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch_ros.substitutions import FindPackageShare
    from launch_testing.actions import ReadyToTest

    from launch import LaunchDescription

    if failure.launch_file == 'bridge.launch.py' and plans.rviz_installed():
        raise unittest.SkipTest('rviz2 is installed here: rviz:=true would start it')
    tmp = tempfile.TemporaryDirectory(prefix='sensr_launch_failure_')
    not_a_dir = Path(tmp.name) / 'file'
    not_a_dir.write_text('')
    output_port, point_port = free_ports(2)
    arguments = dict(argument.format(file=not_a_dir).split(':=', 1) for argument in (
        *failure.arguments, f'output_port:={output_port}', f'point_port:={point_port}'))
    watch = LaunchWatch()
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource([FindPackageShare(plans.PACKAGE),
                                       f'/launch/{failure.launch_file}']),
        launch_arguments=arguments.items())
    # ReadyToTest first: the rviz failure comes while the include is visited.
    return (LaunchDescription([*watch.actions(), ReadyToTest(), include]),
            {'watch': watch, 'tmp': tmp, 'not_a_dir': not_a_dir})


class TestStopsByItself(unittest.TestCase):

    @classmethod
    def setUpClass(cls, watch):
        watch.testing()

    def test_stops(self, watch):
        assert watch.stopped.wait(START_TIMEOUT_S), f'still running:\n{watch.tail()}'


@launch_testing.post_shutdown_test()
class TestStopped(bag_helpers.AfterLaunch):

    def test_one_line_says_why(self, watch, failure, not_a_dir):
        reasons = [line for line in watch.lines if all(part in line for part in failure.selects)]
        assert len(reasons) == 1, watch.output
        for part in failure.says:
            assert part.format(file=not_a_dir) in reasons[0], reasons

    def test_stopped_with_an_error(self, watch):
        # The reason LaunchService gives when it returns 1, the exit code of ros2 launch.
        assert watch.shutdown_reason.startswith('Caught exception in launch'), \
            watch.shutdown_reason
        assert watch.output.count('Caught exception') == 1, watch.output  # nothing else failed
        assert 'escalating to' not in watch.output, watch.output

    def test_nothing_left(self, watch, failure):
        if not failure.starts_processes:
            assert not watch.processes.pids, watch.output
            assert 'process started' not in watch.output, watch.output
        assert not watch.processes.left_behind(), watch.output
