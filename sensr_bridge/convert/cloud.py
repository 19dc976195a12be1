# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Hand-built CDR serialization of ``sensor_msgs/msg/PointCloud2``.

rclpy can publish an already serialized message (``Publisher.publish(bytes)``). Building
the CDR ourselves lets the point data be written once, straight from the SENSR frame
into its final place, instead of numpy array -> ``array.array`` -> C message -> CDR.
The layout follows XCDR1 little-endian (encapsulation ``00 01 00 00``), with alignment
counted from the end of the encapsulation header; tests compare it byte for byte with
``rclpy.serialization.serialize_message``.
"""

from __future__ import annotations

from dataclasses import dataclass
import struct
import sys

import numpy as np

from sensr_bridge.convert.cdr import CdrWriter

# sensor_msgs/msg/PointField datatype constants.
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)

_NUMPY_TYPES = {INT8: 'i1', UINT8: 'u1', INT16: '<i2', UINT16: '<u2', INT32: '<i4',
                UINT32: '<u4', FLOAT32: '<f4', FLOAT64: '<f8'}

if sys.byteorder != 'little':  # pragma: no cover
    msg = 'sensr_bridge writes little-endian CDR and needs a little-endian host'
    raise ImportError(msg)


@dataclass(frozen=True)
class Field:
    """One ``sensor_msgs/msg/PointField``."""

    name: str
    offset: int
    datatype: int
    count: int = 1


@dataclass(frozen=True)
class CloudLayout:
    """The per-point layout of a cloud.

    Attributes:
        fields: The point fields, in offset order.
        point_step: Bytes per point (fields plus padding).

    """

    fields: tuple[Field, ...]
    point_step: int

    def numpy_dtype(self) -> np.dtype:
        """Return the structured dtype of one point (padding included)."""
        return np.dtype({'names': [f.name for f in self.fields],
                         'formats': [_NUMPY_TYPES[f.datatype] for f in self.fields],
                         'offsets': [f.offset for f in self.fields],
                         'itemsize': self.point_step})


XYZI = CloudLayout((Field('x', 0, FLOAT32), Field('y', 4, FLOAT32), Field('z', 8, FLOAT32),
                    Field('intensity', 12, FLOAT32)), 16)
"""x, y, z, intensity as float32: 16 bytes per point."""

XYZI_TYPE = CloudLayout(XYZI.fields + (Field('type', 16, UINT8),), 20)
"""XYZI plus the SENSR cloud type (``PointCloud.Type``) as uint8; 3 bytes of zero padding
keep every point 4-byte aligned."""

XYZI_OBJECT = CloudLayout(XYZI.fields + (Field('object_id', 16, INT32), Field('label', 20, UINT8)),
                          24)
"""XYZI plus the SENSR object id (int32) and label (``LabelType``, uint8)."""


def cloud_prefix(stamp_ns: int, frame_id: str, width: int, layout: CloudLayout) -> bytes:
    """Return the serialized PointCloud2 up to and including the data length.

    Args:
        stamp_ns: Header stamp, nanoseconds since the epoch.
        frame_id: Header frame id.
        width: Number of points (the cloud is unorganized: height 1).
        layout: The point layout.

    Returns:
        The bytes that precede the point data; the message is
        ``prefix + data + bytes([is_dense])``.

    """
    w = CdrWriter()
    w.header(stamp_ns, frame_id)
    w.u32(1)  # height
    w.u32(width)
    w.u32(len(layout.fields))
    for f in layout.fields:
        w.string(f.name)
        w.u32(f.offset)
        w.u8(f.datatype)
        w.u32(f.count)
    w.u8(0)  # is_bigendian
    w.u32(layout.point_step)
    w.u32(layout.point_step * width)  # row_step
    w.u32(layout.point_step * width)  # data length
    return bytes(w.buf)


def serialize_cloud(stamp_ns: int, frame_id: str, layout: CloudLayout,
                    data: bytes | bytearray | memoryview | np.ndarray, *,
                    is_dense: bool = True) -> bytes:
    """Serialize a complete PointCloud2 with a single copy of the point data.

    Args:
        stamp_ns: Header stamp, nanoseconds since the epoch.
        frame_id: Header frame id.
        layout: The point layout.
        data: The packed points, ``width * layout.point_step`` bytes.
        is_dense: Whether the cloud has no invalid points.

    Returns:
        The CDR bytes, ready for ``Publisher.publish``.

    """
    view = memoryview(data).cast('B')
    width, rest = divmod(len(view), layout.point_step)
    if rest:
        msg = f'{len(view)} bytes of point data is not a multiple of point_step {layout.point_step}'
        raise ValueError(msg)
    prefix = cloud_prefix(stamp_ns, frame_id, width, layout)
    # join copies each part once, straight into the final bytes object.
    return b''.join((prefix, view, b'\x01' if is_dense else b'\x00'))


def points_of(serialized: bytes | memoryview, layout: CloudLayout) -> np.ndarray:
    """Return a zero-copy structured view of the points of a serialized cloud.

    Only valid for clouds produced by :func:`serialize_cloud` with ``layout``.

    Args:
        serialized: A serialized PointCloud2.
        layout: The layout it was built with.

    Returns:
        A structured array of the points, one element per point.

    """
    view = memoryview(serialized).cast('B')
    # The data length field is the last u32 of the prefix, which ends 4-aligned.
    head = _find_data_offset(view, layout)
    length = struct.unpack_from('<I', view, head - 4)[0]
    return np.frombuffer(view, dtype=layout.numpy_dtype(), count=length // layout.point_step,
                         offset=head)


def _find_data_offset(view: memoryview, layout: CloudLayout) -> int:
    frame_len = struct.unpack_from('<I', view, 12)[0]
    # prefix without the header string is fixed once the frame_id length is known.
    frame_id = bytes(view[16:16 + frame_len - 1]).decode()
    return len(cloud_prefix(0, frame_id, 0, layout))
