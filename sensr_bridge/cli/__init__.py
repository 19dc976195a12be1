# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Command-line programs: ``record`` and ``tracks``."""
