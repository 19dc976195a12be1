# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The SENSR simulator: websocket servers on loopback that serve tests, demo and benchmark."""
