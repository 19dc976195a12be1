# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The lifecycle nodes (bridge, recorder), how they run, their parameters and diagnostics."""
