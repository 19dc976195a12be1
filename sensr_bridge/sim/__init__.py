# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The SENSR simulator: websocket servers on loopback that serve tests, demo and benchmark.

- :mod:`~sensr_bridge.sim.server`: :class:`~sensr_bridge.sim.server.Simulator`, the
  public face, and its serving part;
- :mod:`~sensr_bridge.sim.config`: :class:`~sensr_bridge.sim.config.SimulatorConfig` and
  the statistics;
- :mod:`~sensr_bridge.sim.connection`: served ports and their clients' threads;
- :mod:`~sensr_bridge.sim.websocket`: RFC 6455 handshake, frame headers, close codes;
- :mod:`~sensr_bridge.sim.scene`, :mod:`~sensr_bridge.sim.frames`: the synthetic site and
  the messages made of it; :mod:`~sensr_bridge.sim.clock`: the frame clock;
- :mod:`~sensr_bridge.sim.injection`: bad frames; :mod:`~sensr_bridge.sim.faults`: the
  command line's scheduled faults;
- :mod:`~sensr_bridge.sim.cli`: the command line (``simulator``, ``python -m sensr_bridge.sim``).
"""
