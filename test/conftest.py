# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: DDS profile, unique ROS domain per test session."""

import os
import random

from sensr_bridge import paths

# Large clouds need the shared-memory profile; a random domain keeps parallel runs apart.
os.environ.update(paths.dds_environment())
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 200)))
os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')

