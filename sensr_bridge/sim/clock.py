# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The simulator's frame clock: a frame every period, handed to every client of each port."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from sensr_bridge.sim import websocket
from sensr_bridge.sim.config import OUTPUT, POINT

if TYPE_CHECKING:
    from collections.abc import Callable

    from sensr_bridge.sim.config import SimulatorConfig
    from sensr_bridge.sim.connection import Client
    from sensr_bridge.sim.frames import Frames


class FrameClock:
    """Produces the frames on a fixed grid in a thread of its own and logs their send time.

    Attributes:
        halt: Set to end the run: no frame is produced after it.
        finished: Set once the run ended (duration, ``max_frames``, :attr:`halt`).
        frames: Frames produced so far (whether or not anyone was connected).
        missed: Ticks skipped because the clock fell more than a period behind.
        last: Sequence number and send time of the latest frame (0 and the construction
            time before the first).

    Args:
        config: The simulator's settings (rate, limits, intervals, start condition).
        frames: The frames' content.
        targets: Returns the clients a port's frame goes to now, given the port's role and
            the monotonic time (none while the port stalls).
        await_clients: Blocks until ``start_after_clients`` clients are connected or the
            run ends.
        notify: Called after each frame.

    """

    def __init__(self, config: SimulatorConfig, frames: Frames,
                 targets: Callable[[str, float], list[Client]],
                 await_clients: Callable[[], None], notify: Callable[[], None]) -> None:
        self._cfg = config
        self._frames = frames
        self._targets = targets
        self._await_clients = await_clients
        self._notify = notify
        self.halt = threading.Event()
        self.finished = threading.Event()
        self.frames = 0
        self.missed = 0
        self.last = (0, time.time_ns())
        self._log_lock = threading.Lock()
        self._sent_log: dict[int, int] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start producing frames."""
        self._thread = threading.Thread(target=self._run, name='sim-clock', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the run and wait for the clock thread."""
        self.halt.set()
        if self._thread is not None:
            self._thread.join()

    def sent_log(self) -> dict[int, int]:
        """Return a copy of the send log: frame sequence number to ``time.time_ns()``."""
        with self._log_lock:
            return dict(self._sent_log)

    def sent_ns(self, seq: int) -> int:
        """Return when frame ``seq`` was sent; KeyError when it is not in the log."""
        with self._log_lock:
            return self._sent_log[seq]

    def _run(self) -> None:
        cfg = self._cfg
        try:
            if cfg.start_after_clients:
                self._await_clients()
            period = 1.0 / cfg.rate_hz
            start = time.monotonic()
            tick = 0
            while not self.halt.is_set():
                if cfg.max_frames is not None and self.frames >= cfg.max_frames:
                    return
                if cfg.duration_s is not None and tick * period >= cfg.duration_s:
                    return
                # Scheduled on a fixed grid from the start, so the rate does not drift.
                delay = start + tick * period - time.monotonic()
                if delay < -period:
                    # Too far behind to catch up without a burst: skip the missed ticks.
                    missed = int(-delay / period)
                    tick += missed
                    self.missed += missed
                    continue
                if delay > 0 and self.halt.wait(delay):
                    return
                self._tick(self.frames)
                self.frames += 1
                self._notify()
                tick += 1
        finally:
            self.finished.set()

    def _tick(self, seq: int) -> None:
        cfg = self._cfg
        now_ns = time.time_ns()
        with self._log_lock:
            self._sent_log[seq] = now_ns
            if len(self._sent_log) > cfg.sent_log_size:
                del self._sent_log[next(iter(self._sent_log))]
        self.last = (seq, now_ns)
        now = time.monotonic()
        clients = self._targets(POINT, now)
        if clients:
            item = websocket.message(websocket.OP_BINARY, *self._frames.point_parts(seq),
                                     frame=True)
            for client in clients:
                client.enqueue(item)
        clients = self._targets(OUTPUT, now)
        if clients:
            items = [websocket.message(websocket.OP_BINARY,
                                       self._frames.stream_message(seq, now_ns), frame=True)]
            if cfg.every(seq, cfg.event_interval_s) and cfg.objects:
                items.append(websocket.message(websocket.OP_BINARY,
                                               self._frames.event_message(seq, now_ns)))
            if cfg.every(seq, cfg.custom_interval_s):
                items.append(websocket.message(websocket.OP_BINARY,
                                               self._frames.custom_message(seq, now_ns)))
            for client in clients:
                for item in items:
                    client.enqueue(item)
