# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""``python -m sensr_bridge.bench``: :func:`sensr_bridge.bench.cli.main`."""

from sensr_bridge.bench.cli import main

raise SystemExit(main())
