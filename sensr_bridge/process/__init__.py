# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The process: signals and shutdown, malloc tuning, DDS environment, shared memory."""
