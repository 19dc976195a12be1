# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The bridge alone (+ RViz): ros2 launch sensr_bridge bridge.launch.py [rviz:=true]."""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description():
    share = get_package_share_directory('sensr_bridge')
    profile = os.path.join(share, 'config', 'fastdds_large_data.xml')
    host = LaunchConfiguration('host')
    rviz = LaunchConfiguration('rviz')
    return LaunchDescription([
        DeclareLaunchArgument('host', default_value='127.0.0.1', description='SENSR master'),
        DeclareLaunchArgument('rviz', default_value='true', description='start RViz'),
        SetEnvironmentVariable('FASTRTPS_DEFAULT_PROFILES_FILE', profile),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', profile),
        Node(package='sensr_bridge', executable='bridge_node', name='sensr_bridge',
             namespace='sensr', output='screen',
             parameters=[os.path.join(share, 'config', 'bridge.yaml'), {'host': host}]),
        Node(package='rviz2', executable='rviz2', output='screen',
             arguments=['-d', os.path.join(share, 'config', 'sensr.rviz')],
             condition=IfCondition(rviz)),
    ])
