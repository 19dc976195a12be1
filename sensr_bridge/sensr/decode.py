# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Decoding of SENSR point frames into PointCloud2 messages, inline or in a process pool.

Each frame is planned and filled by :mod:`sensr_bridge.sensr.points` into a buffer of
packed points; :func:`sensr_bridge.convert.cloud.serialize_cloud` turns it into the
message with one copy.

Two decoders share one interface (:class:`FrameDecoder`): :class:`InlineDecoder` decodes
on a thread of this process; :class:`PoolDecoder` decodes in worker processes, passing
frames and results through shared-memory slots so megabyte frames are never pickled.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
import itertools
import logging
import multiprocessing
from multiprocessing import shared_memory
import os
import queue
import signal
import threading
from typing import TYPE_CHECKING, Any

from sensr_bridge.convert import cloud
from sensr_bridge.errors import ConfigError, DecodeError
from sensr_bridge.sensr.points import CloudOptions, Plan, fill_points, plan_frame

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess

_LOG = logging.getLogger(__name__)

@dataclass
class DecodedFrame:
    """A decoded point frame, ready to publish.

    Attributes:
        seq: Sequence number given at submission.
        recv_ns: Receive time of the frame (wall clock, ns).
        clouds: ``(key, serialized PointCloud2)`` per output cloud.
        error: The decode error, when the frame was rejected.
        warnings: Non-fatal findings (counter keys).
        frame_bytes: Size of the received frame.

    """

    seq: int
    recv_ns: int
    clouds: list[tuple[str, bytes]]
    error: DecodeError | None = None
    warnings: list[str] = field(default_factory=list)
    frame_bytes: int = 0


ResultCallback = Callable[[DecodedFrame], None]


class FrameDecoder:
    """Interface of the point-frame decoders.

    Frames are submitted from the receiving thread; results are delivered to
    ``on_result`` in submission order, on a thread of the decoder.
    """

    def submit(self, frame: bytes | bytearray, recv_ns: int, stamp_ns: int) -> bool:
        """Queue a frame; never blocks.

        Args:
            frame: The received frame.
            recv_ns: Receive time, wall clock ns.
            stamp_ns: Header stamp to give the clouds.

        Returns:
            False when the frame was dropped because the decoder is full.

        """
        raise NotImplementedError

    def close(self, timeout: float | None = None) -> bool:
        """Finish every queued frame, deliver the results, and stop.

        Args:
            timeout: Seconds to wait for the queued frames, None for no limit.

        Returns:
            True when everything queued was delivered.

        """
        raise NotImplementedError

    @property
    def pending(self) -> int:
        """Number of frames submitted and not yet delivered."""
        raise NotImplementedError


def _serialize(plan: Plan, options: CloudOptions, frame_id: str, stamp_ns: int,
               points: memoryview) -> list[tuple[str, bytes]]:
    step = options.layout.point_step
    return [(s.key, cloud.serialize_cloud(stamp_ns, frame_id, options.layout,
                                          points[s.offset:s.offset + s.width * step]))
            for s in plan.segments]


class InlineDecoder(FrameDecoder):
    """Decode on one thread of this process (``decode_workers: 0``)."""

    def __init__(self, options: CloudOptions, frame_id: str, on_result: ResultCallback,
                 max_pending: int = 4) -> None:
        """Start the decoding thread.

        Args:
            options: Cloud options.
            frame_id: Frame id of the clouds.
            on_result: Receives each decoded frame, in order.
            max_pending: Frames that may wait; more are dropped by :meth:`submit`.

        """
        self._options = options
        self._frame_id = frame_id
        self._on_result = on_result
        self._queue: queue.Queue[tuple[int, bytes | bytearray, int, int] | None] = queue.Queue(
            max_pending)
        self._seq = itertools.count()
        self._scratch = bytearray()
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name='sensr-decode', daemon=True)
        self._thread.start()

    def submit(self, frame: bytes | bytearray, recv_ns: int, stamp_ns: int) -> bool:
        """See :meth:`FrameDecoder.submit`."""
        with self._lock:
            if self._queue.full():
                return False
            self._queue.put_nowait((next(self._seq), frame, recv_ns, stamp_ns))
            self._pending += 1
            return True

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            seq, frame, recv_ns, stamp_ns = item
            try:
                result = self.decode(seq, frame, recv_ns, stamp_ns)
            except Exception as exc:
                # Never let one frame end the decoding thread (every later frame would be
                # dropped as "decoder full"): report it as a bad frame.
                _LOG.exception('decoding frame %d failed', seq)
                result = DecodedFrame(seq, recv_ns, [], DecodeError('decode_failed', repr(exc)),
                                      frame_bytes=len(frame))
            try:
                self._on_result(result)
            except Exception:
                _LOG.exception('result callback failed for frame %d', seq)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._idle.notify_all()

    def decode(self, seq: int, frame: bytes | bytearray, recv_ns: int,
               stamp_ns: int) -> DecodedFrame:
        """Decode one frame synchronously (also used by tests and the benchmark)."""
        try:
            plan = plan_frame(frame, self._options)
        except DecodeError as exc:
            return DecodedFrame(seq, recv_ns, [], exc, frame_bytes=len(frame))
        if len(self._scratch) < plan.nbytes:
            self._scratch = bytearray(plan.nbytes)
        out = memoryview(self._scratch)
        fill_points(frame, plan, self._options, out)
        clouds = _serialize(plan, self._options, self._frame_id, stamp_ns, out)
        return DecodedFrame(seq, recv_ns, clouds, None, plan.warnings, len(frame))

    @property
    def pending(self) -> int:
        """See :meth:`FrameDecoder.pending`."""
        return self._pending

    def close(self, timeout: float | None = None) -> bool:
        """See :meth:`FrameDecoder.close`."""
        with self._lock:
            done = self._idle.wait_for(lambda: self._pending == 0, timeout)
        self._queue.put(None)
        self._thread.join(timeout)
        return done


# --- process pool ----------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _worker_main(options: CloudOptions, in_names: list[str], out_names: list[str],
                 tasks: Any, results: Any, parent_pid: int) -> None:
    """Decode frames from shared-memory slots until told to stop."""
    _die_with_parent()
    # Ctrl+C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.getppid() != parent_pid:
        return
    ins = [shared_memory.SharedMemory(name=n) for n in in_names]
    outs = [shared_memory.SharedMemory(name=n) for n in out_names]
    try:
        while (task := tasks.get()) is not None:
            slot, seq, length = task
            frame = ins[slot].buf[:length]
            try:
                plan = plan_frame(frame, options)
                if plan.nbytes > outs[slot].size:
                    msg = f'frame decodes to {plan.nbytes} bytes, over the slot size'
                    raise DecodeError('oversized', msg)
                fill_points(frame, plan, options, outs[slot].buf)
                results.put((slot, seq, [(s.key, s.offset, s.width) for s in plan.segments],
                             plan.warnings, None))
            except DecodeError as exc:
                results.put((slot, seq, [], [], (exc.kind, str(exc))))
            except Exception as exc:
                # The slot must come back and the frame be counted, whatever happened.
                results.put((slot, seq, [], [], ('decode_failed', repr(exc))))
            del frame
    finally:
        for shm in ins + outs:
            shm.close()


class PoolDecoder(FrameDecoder):
    """Decode in worker processes (``decode_workers: N > 0``).

    Each in-flight frame owns a pair of shared-memory slots: the receiving thread copies
    the frame into the input slot, a worker writes the packed points into the output
    slot, and the result thread serializes the message from there. Only slot numbers
    and small metadata cross the process boundary. Workers are started with ``spawn``
    (never ``fork`` after ``rclpy.init``), ignore SIGINT/SIGTERM so in-flight frames
    finish, and die with their parent (``PR_SET_PDEATHSIG``).
    """

    def __init__(self, options: CloudOptions, frame_id: str, on_result: ResultCallback, *,
                 workers: int, max_frame_bytes: int, max_pending: int | None = None) -> None:
        """Start the workers.

        Args:
            options: Cloud options.
            frame_id: Frame id of the clouds.
            on_result: Receives each decoded frame, in submission order.
            workers: Number of worker processes (> 0).
            max_frame_bytes: Largest frame accepted (size of an input slot).
            max_pending: Frames in flight at most (slots); default ``2 * workers + 1``.

        """
        if workers <= 0:
            msg = 'PoolDecoder needs at least one worker'
            raise ConfigError(msg)
        self._options = options
        self._frame_id = frame_id
        self._on_result = on_result
        nslots = max_pending or 2 * workers + 1
        out_size = -(-max_frame_bytes * options.layout.point_step // 12)
        self._ins = [shared_memory.SharedMemory(create=True, size=max_frame_bytes)
                     for _ in range(nslots)]
        self._outs = [shared_memory.SharedMemory(create=True, size=out_size)
                      for _ in range(nslots)]
        self._free = list(range(nslots))
        self._meta: dict[int, tuple[int, int, int]] = {}
        self._ready: dict[int, tuple[Any, ...]] = {}
        self._next_seq = 0
        self._next_deliver = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        ctx = multiprocessing.get_context('spawn')
        self._tasks = ctx.Queue()
        self._results = ctx.Queue()
        self._procs: list[SpawnProcess] = [
            ctx.Process(target=_worker_main, name=f'sensr-decode-{i}', daemon=True,
                        args=(options, [s.name for s in self._ins], [s.name for s in self._outs],
                              self._tasks, self._results, os.getpid()))
            for i in range(workers)]
        for p in self._procs:
            p.start()
        # Workers ignore SIGTERM, so multiprocessing's exit handler (terminate, then join)
        # would wait forever for a pool nobody closed; this runs before it.
        atexit.register(self._kill_workers)
        self._collector = threading.Thread(target=self._collect, name='sensr-decode-results',
                                           daemon=True)
        self._collector.start()

    def _kill_workers(self) -> None:
        for p in self._procs:
            if p.is_alive():
                p.kill()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers."""
        return [p.pid for p in self._procs if p.pid is not None]

    @property
    def pending(self) -> int:
        """See :meth:`FrameDecoder.pending`."""
        return len(self._meta)

    def submit(self, frame: bytes | bytearray, recv_ns: int, stamp_ns: int) -> bool:
        """See :meth:`FrameDecoder.submit`. Frames over ``max_frame_bytes`` are rejected."""
        with self._lock:
            if not self._free:
                return False
            seq = self._next_seq
            self._next_seq += 1
            if len(frame) > self._ins[0].size:
                # Goes through the result queue so it is delivered in order and counted.
                msg = f'frame of {len(frame)} bytes is over max_frame_bytes {self._ins[0].size}'
                self._meta[seq] = (-1, recv_ns, stamp_ns)
                self._results.put((-1, seq, [], [], ('oversized', msg)))
                return True
            slot = self._free.pop()
            self._meta[seq] = (slot, recv_ns, stamp_ns)
        self._ins[slot].buf[:len(frame)] = frame
        self._tasks.put((slot, seq, len(frame)))
        return True

    def _collect(self) -> None:
        while (item := self._results.get()) is not None:
            with self._lock:
                self._ready[item[1]] = item
                due = []
                while self._next_deliver in self._ready:
                    due.append(self._ready.pop(self._next_deliver))
                    self._next_deliver += 1
            for entry in due:
                self._deliver(*entry)

    def _deliver(self, slot: int, seq: int, segments: list[tuple[str, int, int]],
                 warnings: list[str], error: tuple[str, str] | None) -> None:
        _, recv_ns, stamp_ns = self._meta[seq]
        if error is not None:
            result = DecodedFrame(seq, recv_ns, [], DecodeError(*error))
        else:
            step = self._options.layout.point_step
            out = self._outs[slot].buf
            clouds = [(key, cloud.serialize_cloud(stamp_ns, self._frame_id, self._options.layout,
                                                  out[offset:offset + width * step]))
                      for key, offset, width in segments]
            result = DecodedFrame(seq, recv_ns, clouds, None, warnings)
        with self._lock:
            if slot >= 0:
                self._free.append(slot)
        try:
            self._on_result(result)
        except Exception:
            _LOG.exception('result callback failed for frame %d', seq)
        with self._lock:
            del self._meta[seq]
            self._idle.notify_all()

    def close(self, timeout: float | None = None) -> bool:
        """See :meth:`FrameDecoder.close`. Also stops the workers and frees shared memory."""
        atexit.unregister(self._kill_workers)
        with self._lock:
            done = self._idle.wait_for(lambda: not self._meta, timeout)
        for _ in self._procs:
            self._tasks.put(None)
        for p in self._procs:
            p.join(timeout=2.0)
            if p.is_alive():
                p.kill()
                p.join()
        self._results.put(None)
        self._collector.join()
        for q in (self._tasks, self._results):
            q.close()
            q.join_thread()
        for shm in self._ins + self._outs:
            shm.close()
            shm.unlink()
        return done


def create_decoder(options: CloudOptions, frame_id: str, on_result: ResultCallback, *,
                   workers: int, max_frame_bytes: int, max_pending: int) -> FrameDecoder:
    """Create the inline decoder (``workers == 0``) or the process pool.

    Args:
        options: Cloud options.
        frame_id: Frame id of the clouds.
        on_result: Receives each decoded frame, in order.
        workers: Worker processes; 0 decodes inline on a thread.
        max_frame_bytes: Largest frame accepted.
        max_pending: Frames that may wait for decoding; more are dropped.

    Returns:
        The decoder.

    """
    if workers < 0:
        msg = f'decode_workers must be >= 0, not {workers}'
        raise ConfigError(msg)
    if workers == 0:
        return InlineDecoder(options, frame_id, on_result, max_pending)
    return PoolDecoder(options, frame_id, on_result, workers=workers,
                       max_frame_bytes=max_frame_bytes, max_pending=max(max_pending, workers))
