# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""SENSR data to ROS 2 messages: pure functions and CDR, no rclpy."""
