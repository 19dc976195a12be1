# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""record.launch.py on launch_testing: simulator -> bridge -> recorder, every cloud in the bag.

Three recordings run at once, in one launch (one start and one stop instead of three:
the suite's time), each in a namespace of its own with its own simulator, ports and
output_dir: separate processes with mcap, composed with sqlite3 and composed with mcap.
(Separate processes with sqlite3 run with the real ``ros2 launch`` and Ctrl+C in
test_ros2_launch.py.) The active test waits until every bridge connected to its
simulator and lets them record for RECORD_S; launch_testing then shuts the launch down
as launch does on an event: SIGINT to every process. After that: every process exited
0 in time, nothing failed or escalated, none is left; each pipeline started in order
(the bag misses nothing at the start); the real ``ros2 bag info`` counts as many clouds
as the bridge published, and ``ros2 bag play`` delivers every one of them.

Needs launch_testing (its pytest plugin runs this module), the ros2 CLI and sensr_bridge
built and sourced; skipped without them, never under SENSR_ROS_STACK=required.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import tempfile
import unittest

import bag_helpers
from bag_helpers import (
    RECORD_S,
    SIM_POINTS,
    LaunchWatch,
    assert_recorded_every_cloud,
    assert_start_order,
    counting,
)
from helpers import NEEDS_INSTALLED_PACKAGE, NEEDS_LAUNCH, NEEDS_ROS2_CLI, free_ports, require
import pytest
import yaml

from sensr_bridge.launching import plans

launch_testing = require('launch_testing', NEEDS_LAUNCH)


@dataclass(frozen=True)
class Pipeline:
    """One record.launch.py in the launch: its namespace, its arguments, where it writes."""

    namespace: str
    composed: str
    storage: str
    root: Path
    ports: tuple[str, str]

    @property
    def topic(self):
        return f'/{self.namespace}/points'

    @property
    def stats(self):
        return self.root / 'bridge_stats.json'

    @property
    def bags(self):
        return self.root / 'bags'

    def arguments(self):
        """The launch arguments (writes the params file that sets the bridge's stats_file)."""
        self.root.mkdir()
        params = self.root / 'params.yaml'
        params.write_text(yaml.safe_dump({f'/{self.namespace}/{plans.BRIDGE_NAME}': {
            'ros__parameters': {'stats_file': str(self.stats)}}}))
        output_port, point_port = self.ports
        return {'simulate': 'true', 'sim_points': SIM_POINTS, 'namespace': self.namespace,
                'output_port': output_port, 'point_port': point_port,
                'output_dir': str(self.bags), 'storage': self.storage,
                'composed': self.composed, 'params_file': str(params)}

    def connected(self):
        """The bridge's line once it connected to its simulator's point stream."""
        return f'points: connected to ws://127.0.0.1:{self.ports[1]}'

    def output(self, lines):
        """The lines of this pipeline's nodes (their loggers are named by the namespace)."""
        return '\n'.join(line for line in lines if f'[{self.namespace}.' in line)


@pytest.mark.launch_test
@NEEDS_ROS2_CLI
@NEEDS_INSTALLED_PACKAGE
def generate_test_description():
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import GroupAction, IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch_testing.actions import ReadyToTest

    from launch import LaunchDescription

    record = Path(get_package_share_directory(plans.PACKAGE)) / 'launch' / 'record.launch.py'
    tmp = tempfile.TemporaryDirectory(prefix='sensr_launch_record_')
    ports = free_ports(6)
    pipelines = [Pipeline(namespace, composed, storage, Path(tmp.name) / namespace,
                          (ports[2 * i], ports[2 * i + 1]))
                 for i, (namespace, composed, storage) in enumerate([
                     ('separate_mcap', 'false', 'mcap'),
                     ('composed_sqlite3', 'true', 'sqlite3'),
                     ('composed_mcap', 'true', 'mcap')])]
    watch = LaunchWatch()
    # Scoped groups: each include's launch arguments stay its own.
    includes = [GroupAction([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(record)),
        launch_arguments=pipeline.arguments().items())]) for pipeline in pipelines]
    return (LaunchDescription([*watch.actions(), ReadyToTest(), *includes]),
            {'watch': watch, 'pipelines': pipelines, 'tmp': tmp})


class TestRecording(unittest.TestCase):

    @classmethod
    def setUpClass(cls, watch):
        watch.testing()

    def test_every_pipeline_records(self, watch, pipelines):
        for pipeline in pipelines:
            watch.wait_line(pipeline.connected())
        watch.run_for(RECORD_S)


@launch_testing.post_shutdown_test()
class TestRecorded(bag_helpers.AfterLaunch):

    def test_stopped_cleanly(self, watch, proc_info):
        watch.assert_stopped_cleanly(proc_info)

    def test_started_in_order(self, watch, pipelines):
        for pipeline in pipelines:
            assert_start_order(pipeline.output(watch.lines), pipeline.topic)

    def test_every_cloud_recorded_and_played(self, pipelines):
        with counting() as counter:
            for pipeline in pipelines:
                assert_recorded_every_cloud(pipeline.stats, pipeline.bags, pipeline.storage,
                                            counter, pipeline.topic)
