# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Bad frames the simulator injects between the regular ones (``Simulator.inject``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from sensr_bridge.sensr import protocol, wire
from sensr_bridge.sim import websocket
from sensr_bridge.sim.config import OUTPUT, POINT
from sensr_bridge.sim.frames import bytes_field, uid_field, varint_field
from sensr_bridge.sim.scene import LABEL_MISC, LIDARS, SITE_HALF_M, TRACKING, set_vector

if TYPE_CHECKING:
    from sensr_bridge.sim.config import SimulatorConfig
    from sensr_bridge.sim.frames import Frames

INJECT_KINDS = (
    'random_bytes', 'truncated', 'wrong_type', 'text', 'empty', 'mismatch', 'not_multiple',
    'oversized', 'unknown_fields', 'drop_midframe',
)
"""Bad frames ``Simulator.inject`` can send."""

_INJECT_POINTS = 1000
_INJECT_OBJECT_POINTS = 100
_UNKNOWN_FIELD = 999
_UNKNOWN_BYTES_FIELD = 1000
_FUTURE_ENUM = 42
_FUTURE_CLOUD_TYPE = 7
_FUTURE_TRACKING_STATUS = 9


class BadFrames:
    """Builds the bad frames of each :data:`INJECT_KINDS` kind, deterministic for a seed.

    Args:
        config: The simulator's settings.
        frames: The regular frames, some kinds are made of.

    """

    def __init__(self, config: SimulatorConfig, frames: Frames) -> None:
        self._cfg = config
        self._frames = frames
        self._injections = 0

    def item(self, role: str, kind: str, size: int, seq: int, now_ns: int) -> websocket.Out:
        """Return one bad frame for a port.

        Args:
            role: The port's role, ``'output'`` or ``'point'``.
            kind: One of :data:`INJECT_KINDS`.
            size: Payload size of ``oversized`` frames, bytes.
            seq: The current frame, which some kinds cut or extend.
            now_ns: Its send time.

        Returns:
            The frame to queue; ``drop_midframe`` is half a frame, then the cut.

        """
        if kind == 'drop_midframe':
            parts = self._frame_parts(role, seq, now_ns)
            head = websocket.header(websocket.OP_BINARY, sum(len(p) for p in parts))
            return websocket.Out(websocket.CUT, (head, parts[0][:len(parts[0]) // 2]))
        rng = np.random.default_rng([self._cfg.seed, 3, self._injections])
        self._injections += 1
        opcode = websocket.OP_TEXT if kind == 'text' else websocket.OP_BINARY
        return websocket.message(opcode, *self._parts(role, kind, size, seq, now_ns, rng))

    def _frame_parts(self, role: str, seq: int, now_ns: int) -> tuple[bytes | memoryview, ...]:
        """Return the payload pieces of the regular frame ``seq`` of a port."""
        if role == POINT:
            return self._frames.point_parts(seq)
        return (memoryview(self._frames.stream_message(seq, now_ns)),)

    def _parts(self, role: str, kind: str, size: int, seq: int, now_ns: int,
               rng: np.random.Generator) -> tuple[bytes | memoryview, ...]:
        parts: tuple[bytes | memoryview, ...]
        if kind == 'random_bytes':
            data = bytearray(rng.bytes(1024))
            data[0] |= 0x07  # wire type 7 does not exist: the bytes never parse
            parts = (bytes(data),)
        elif kind == 'text':
            parts = (b'{"error": "text frame from the SENSR simulator"}',)
        elif kind == 'empty':
            parts = ()
        elif kind == 'wrong_type':
            parts = ((self._frames.point_parts(seq)[0],) if role == OUTPUT
                     else (self._frames.stream_message(seq, now_ns),))
        elif kind == 'truncated':
            frame = self._frame_parts(role, seq, now_ns)
            parts = (_truncate(frame[0] if len(frame[0]) else frame[-1]),)
        elif kind == 'unknown_fields':
            parts = self._unknown_fields_parts(role, seq, now_ns, rng)
        else:  # oversized, mismatch, not_multiple: one cloud or object with bad sizes
            if kind == 'oversized':
                n_points = max(1, size // 16)
            else:
                n_points = _INJECT_POINTS if role == POINT else _INJECT_OBJECT_POINTS
            points_bytes = n_points * 12 + (5 if kind == 'not_multiple' else 0)
            intensities_bytes = (n_points - (kind == 'mismatch')) * 4
            parts = (self._bad_points_message(role, kind, rng, points_bytes, intensities_bytes),)
        return parts

    def _bad_points_message(self, role: str, kind: str, rng: np.random.Generator,
                            points_bytes: int, intensities_bytes: int) -> bytes:
        """Return a message whose one cloud (or object) has the given payload sizes."""
        points = _float_bytes(rng, points_bytes)
        intensities = _float_bytes(rng, intensities_bytes)
        if role == POINT:
            result = protocol.PointResult(uid=f'sim:inject:{kind}')
            result.points.add(type=protocol.CLOUD_RAW, id=LIDARS[0], points=points,
                              intensities=intensities)
            return result.SerializeToString()
        message = protocol.OutputMessage()
        message.timestamp.FromNanoseconds(time.time_ns())
        message.stream.has_objects = True
        obj = message.stream.objects.add(id=int(len(self._frames.scene.ids) + 1),
                                         label=LABEL_MISC, confidence=0.5,
                                         tracking_status=TRACKING)
        set_vector(obj.bbox.size, 1.0, 1.0, 1.0)
        obj.points = points
        obj.intensities = intensities
        return message.SerializeToString()

    def _unknown_fields_parts(self, role: str, seq: int, now_ns: int,
                              rng: np.random.Generator) -> tuple[bytes | memoryview, ...]:
        unknown = (varint_field(_UNKNOWN_FIELD, _FUTURE_ENUM)
                   + bytes_field(_UNKNOWN_BYTES_FIELD, b'field of a future SENSR'))
        if role == POINT:
            future_cloud = protocol.PointResult()
            future_cloud.points.add(type=_FUTURE_CLOUD_TYPE, id='future_sensor',
                                    points=_float_bytes(rng, 10 * 12),
                                    intensities=_float_bytes(rng, 10 * 4))
            return (self._frames.point_parts(seq)[0], future_cloud.SerializeToString(), unknown,
                    uid_field('sim:inject:unknown_fields'))
        obj = protocol.Object(id=int(len(self._frames.scene.ids) + 2), label=_FUTURE_ENUM,
                              tracking_status=_FUTURE_TRACKING_STATUS, confidence=0.5)
        set_vector(obj.bbox.size, 1.0, 1.0, 1.0)
        # Fields merge on concatenation: this adds one object and unknown fields to stream.
        stream_extra = bytes_field(3, bytes_field(1, obj.SerializeToString() + unknown)
                                   + unknown)
        return self._frames.stream_message(seq, now_ns), stream_extra, unknown


def _float_bytes(rng: np.random.Generator, n_bytes: int) -> bytes:
    """Return ``n_bytes`` of little-endian float32 values (a partial float at the end)."""
    count = -(-n_bytes // 4)
    # A repeated block: oversized frames of 80 MB need no 80 MB of random numbers.
    block = rng.uniform(-SITE_HALF_M, SITE_HALF_M, min(count, 4096)).astype('<f4')
    return np.resize(block, count).tobytes()[:n_bytes]


def _truncate(data: bytes | memoryview) -> memoryview:
    """Cut a serialized message in the middle of its largest field, so it cannot parse."""
    view = memoryview(data).cast('B')
    fields = list(wire.iter_fields(view, 0, len(view)))
    _, _, start, end = max(fields, key=lambda f: f[3] - f[2])
    return view[:start + (end - start) // 2]
