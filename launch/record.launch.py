# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Bridge + recorder: ros2 launch sensr_bridge record.launch.py [simulate:=true] [rviz:=true].

Lifecycle order: both nodes are configured; once the recorder is active (subscribed to the
bridge's publishers) the bridge is activated, so the bag misses nothing at the start.
Shutdown needs no launch transitions: each process drains and closes on SIGINT/SIGTERM
(sensr_bridge.runtime); the recorder gets a long sigterm_timeout for its drain.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition, UnlessCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from launch import LaunchDescription

ARGS = {
    'host': ('127.0.0.1', 'SENSR master host'),
    'output_port': ('5050', 'SENSR output port'),
    'point_port': ('5051', 'SENSR point-cloud port'),
    'output_dir': ('bags', 'directory for bags'),
    'storage': ('sqlite3', 'sqlite3 or mcap'),
    'max_bagfile_duration': ('0', 'split every N seconds (0 = never)'),
    'max_bagfile_size': ('0', 'split at N bytes (0 = never)'),
    'simulate': ('false', 'start the built-in SENSR simulator on loopback'),
    'rviz': ('false', 'start RViz with the sensr_bridge config'),
    'composed': ('false', 'bridge and recorder in one process (MultiThreadedExecutor)'),
    'namespace': ('sensr', 'namespace of nodes and topics'),
}


def generate_launch_description():
    share = get_package_share_directory('sensr_bridge')
    profile = os.path.join(share, 'config', 'fastdds_large_data.xml')
    cfg = {name: LaunchConfiguration(name) for name in ARGS}
    composed = IfCondition(cfg['composed'])
    separate = UnlessCondition(cfg['composed'])
    bridge = LifecycleNode(
        package='sensr_bridge', executable='bridge_node', name='sensr_bridge',
        namespace=cfg['namespace'], output='screen', condition=separate,
        parameters=[os.path.join(share, 'config', 'bridge.yaml'),
                    {'host': cfg['host'], 'output_port': cfg['output_port'],
                     'point_port': cfg['point_port'], 'autostart': False}],
        sigterm_timeout='10')
    recorder = LifecycleNode(
        package='sensr_bridge', executable='recorder_node', name='sensr_recorder',
        namespace=cfg['namespace'], output='screen', condition=separate,
        parameters=[os.path.join(share, 'config', 'recorder.yaml'),
                    {'output_dir': cfg['output_dir'], 'storage': cfg['storage'],
                     'max_bagfile_duration': cfg['max_bagfile_duration'],
                     'max_bagfile_size': cfg['max_bagfile_size'], 'autostart': False}],
        sigterm_timeout='30')

    def change(node, transition):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                           transition_id=transition))

    return LaunchDescription([
        *[DeclareLaunchArgument(name, default_value=default, description=text)
          for name, (default, text) in ARGS.items()],
        SetEnvironmentVariable('FASTRTPS_DEFAULT_PROFILES_FILE', profile),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', profile),
        ExecuteProcess(cmd=['ros2', 'run', 'sensr_bridge', 'simulator', '--output-port',
                            cfg['output_port'], '--point-port', cfg['point_port']],
                       output='screen', condition=IfCondition(cfg['simulate'])),
        bridge, recorder,
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=recorder, goal_state='inactive',
            entities=[change(bridge, Transition.TRANSITION_CONFIGURE)])),
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=bridge, goal_state='inactive',
            entities=[change(recorder, Transition.TRANSITION_ACTIVATE)])),
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=recorder, goal_state='active',
            entities=[change(bridge, Transition.TRANSITION_ACTIVATE)])),
        change(recorder, Transition.TRANSITION_CONFIGURE),
        ExecuteProcess(cmd=['ros2', 'run', 'sensr_bridge', 'record', '--host', cfg['host'],
                            '--output-port', cfg['output_port'], '--point-port',
                            cfg['point_port'], '--output-dir', cfg['output_dir'],
                            '--storage', cfg['storage']],
                       output='screen', condition=composed, sigterm_timeout='30'),
        Node(package='rviz2', executable='rviz2', output='screen',
             arguments=['-d', os.path.join(share, 'config', 'sensr.rviz')],
             condition=IfCondition(cfg['rviz'])),
    ])
