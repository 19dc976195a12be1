# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""``python -m sensr_bridge.sim``: the simulator, signals handled before its imports."""

from sensr_bridge.process.shutdown import simulator

raise SystemExit(simulator())
