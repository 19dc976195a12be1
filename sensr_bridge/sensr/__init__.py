# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The SENSR side: websocket client and frame reader, wire format, protobuf schema, decoding."""
