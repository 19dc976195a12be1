# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Benchmarks: end to end, bridge, recorder and writers alone (``python -m sensr_bridge.bench``)."""
