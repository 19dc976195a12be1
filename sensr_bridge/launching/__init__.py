# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""What the launch files start, computed without launch (plan), and the launch actions."""
