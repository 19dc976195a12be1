# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The programs a launch starts: executables through the ament index, modules with ``python -m``.

The composed process is :data:`sensr_bridge.nodes.composed.MODULE`.
"""

from __future__ import annotations

PACKAGE = 'sensr_bridge'
BRIDGE_EXECUTABLE = 'bridge_node'
RECORDER_EXECUTABLE = 'recorder_node'
SIMULATOR_MODULE = 'sensr_bridge.sim'
RVIZ_PACKAGE = 'rviz2'
RVIZ_EXECUTABLE = 'rviz2'

