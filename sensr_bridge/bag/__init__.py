# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Bag writing without rclpy.

rosbag2-compatible sqlite3 and mcap writers, a batching writer thread, and the
``bag_info`` / ``bag_reindex`` commands.

Start with ``create_writer(StorageOptions(uri=...))`` and ``BatchingWriter``.
"""

from __future__ import annotations

from sensr_bridge.bag.base import (
    BagStats,
    BagWriter,
    QosDesc,
    StorageOptions,
    TopicInfo,
)
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.bag.queue import BatchingWriter, QueueStats

__all__ = [
    'BagStats',
    'BagWriter',
    'BatchingWriter',
    'QosDesc',
    'QueueStats',
    'StorageOptions',
    'TopicInfo',
    'create_writer',
]
