# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Point frames to packed cloud points: plan a frame, then fill a buffer with numpy.

A frame from the point port is located with :func:`sensr_bridge.sensr.wire.scan_point_result`
(no copy) and validated (:func:`plan_frame`); its x/y/z/intensity arrays are then
interleaved into the point layout of the output cloud (:func:`fill_points`), with no
per-point Python. The decoders (:mod:`sensr_bridge.sensr.decode`) run both, inline or in
worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sensr_bridge.convert import cloud
from sensr_bridge.errors import ConfigError, DecodeError
from sensr_bridge.sensr import protocol, wire

CLOUD_KEYS = {protocol.CLOUD_GROUND: 'ground', protocol.CLOUD_BACKGROUND: 'background',
              protocol.CLOUD_RAW: 'raw'}
"""Topic suffix of each SENSR cloud type when clouds are published per type."""

MERGED = 'merged'
PER_TYPE = 'per_type'


@dataclass(frozen=True)
class CloudOptions:
    """How point frames become clouds.

    Attributes:
        mode: ``merged`` (one cloud per frame) or ``per_type`` (one per SENSR cloud type).
        type_field: Add the per-point ``type`` field to merged clouds.
        types: SENSR cloud types to keep (empty = all).

    """

    mode: str = MERGED
    type_field: bool = True
    types: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        """Validate the mode."""
        if self.mode not in (MERGED, PER_TYPE):
            msg = f"cloud_mode must be '{MERGED}' or '{PER_TYPE}', not {self.mode!r}"
            raise ConfigError(msg)

    @property
    def layout(self) -> cloud.CloudLayout:
        """Point layout of the published clouds."""
        return cloud.XYZI_TYPE if self.mode == MERGED and self.type_field else cloud.XYZI


@dataclass
class Segment:
    """One output cloud of a frame: which key, and where its points are in the result buffer."""

    key: str
    offset: int
    width: int


@dataclass
class Plan:
    """What a frame decodes to, computed before any point is copied."""

    segments: list[Segment]
    clouds: list[wire.CloudView]
    nbytes: int
    warnings: list[str] = field(default_factory=list)


def plan_frame(frame: bytes | bytearray | memoryview, options: CloudOptions) -> Plan:
    """Locate and validate the clouds of a point frame.

    Args:
        frame: One whole message from the point port.
        options: Cloud options.

    Returns:
        The plan: output segments and the clouds to copy.

    Raises:
        DecodeError: ``empty``, ``malformed``, ``wrong_message``, ``bad_point_length``
            or ``intensity_mismatch``.

    """
    if len(frame) == 0:
        msg = 'empty frame on the point port'
        raise DecodeError('empty', msg)
    view = wire.scan_point_result(frame)
    if view.unknown_fields and not any(c.points[1] for c in view.clouds):
        msg = (f'frame of {len(frame)} bytes is not a PointResult '
               f'({view.unknown_fields} unknown fields; an OutputMessage on 5051?)')
        raise DecodeError('wrong_message', msg)
    warnings = []
    clouds = []
    for c in view.clouds:
        if options.types and c.type not in options.types:
            continue
        npts, rest = divmod(c.points[1], 12)
        if rest:
            msg = f'cloud {c.type} has {c.points[1]} point bytes, not a multiple of 12'
            raise DecodeError('bad_point_length', msg)
        if c.intensities[1] and c.intensities[1] != 4 * npts:
            msg = (f'cloud {c.type} has {npts} points but {c.intensities[1]} intensity bytes '
                   f'(expected {4 * npts})')
            raise DecodeError('intensity_mismatch', msg)
        if c.type not in CLOUD_KEYS:
            warnings.append('unknown_cloud_type')
        if npts and not c.intensities[1]:
            warnings.append('missing_intensities')
        clouds.append(c)
    step = options.layout.point_step
    segments: list[Segment] = []
    if options.mode == MERGED:
        segments.append(Segment('merged', 0, sum(c.points[1] // 12 for c in clouds)))
    else:
        by_key: dict[str, int] = {}
        for c in clouds:
            key = CLOUD_KEYS.get(c.type, f'type_{c.type}')
            by_key[key] = by_key.get(key, 0) + c.points[1] // 12
        offset = 0
        for key, width in by_key.items():
            segments.append(Segment(key, offset, width))
            offset += width * step
    nbytes = sum(s.width for s in segments) * step
    return Plan(segments, clouds, nbytes, warnings)


def fill_points(frame: bytes | bytearray | memoryview, plan: Plan, options: CloudOptions,
                out: memoryview) -> None:
    """Write the points of a planned frame into ``out`` (``plan.nbytes`` bytes).

    Padding bytes of the layout are written as zeros, so the output is deterministic.

    Args:
        frame: The frame the plan was made from.
        plan: The plan.
        options: Cloud options.
        out: Destination buffer, at least ``plan.nbytes`` long.

    """
    layout = options.layout
    points = np.frombuffer(out, dtype=_fill_dtype(layout), count=plan.nbytes // layout.point_step)
    with_type = layout is cloud.XYZI_TYPE
    cursor = {s.key: s.offset // layout.point_step for s in plan.segments}
    for c in plan.clouds:
        key = 'merged' if options.mode == MERGED else CLOUD_KEYS.get(c.type, f'type_{c.type}')
        n = c.points[1] // 12
        start = cursor[key]
        cursor[key] = start + n
        dst = points[start:start + n]
        dst['xyz'] = np.frombuffer(frame, dtype='V12', count=n, offset=c.points[0])
        if c.intensities[1]:
            dst['intensity'] = np.frombuffer(frame, dtype='<f4', count=n, offset=c.intensities[0])
        else:
            dst['intensity'] = 0.0
        if with_type:
            # One little-endian u32 write sets the type byte and zeroes the 3 padding bytes.
            dst['tail'] = c.type & 0xFF


def _fill_dtype(layout: cloud.CloudLayout) -> np.dtype:
    """Structured view of a point: xyz as one 12-byte item (a single strided move)."""
    names, formats, offsets = ['xyz', 'intensity'], ['V12', '<f4'], [0, 12]
    if layout is cloud.XYZI_TYPE:
        names.append('tail')
        formats.append('<u4')
        offsets.append(16)
    elif layout is not cloud.XYZI:
        msg = 'PointResult clouds are packed as XYZI or XYZI_TYPE'
        raise ConfigError(msg)
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets,
                     'itemsize': layout.point_step})
