# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""SENSR websocket bridge to ROS 2, with a lossless rosbag2 recorder."""
