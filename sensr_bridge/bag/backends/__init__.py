# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The bag writers: our sqlite3 and mcap writers, and rosbag2_py's in a process of its own."""
