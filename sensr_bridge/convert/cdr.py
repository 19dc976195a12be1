# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Little-endian CDR (XCDR1) writing for the messages the bridge serializes by hand."""

from __future__ import annotations

import struct

ENCAPSULATION = b'\x00\x01\x00\x00'  # CDR_LE


class CdrWriter:
    """Append-only CDR writer; alignment counts from the end of the encapsulation header.

    Padding is written as zeros, so output is deterministic (rclpy leaves it undefined).
    """

    def __init__(self) -> None:
        """Start a message with the CDR_LE encapsulation header."""
        self.buf = bytearray(ENCAPSULATION)

    def align(self, size: int) -> None:
        """Pad to a multiple of ``size``."""
        self.buf += b'\x00' * (-(len(self.buf) - 4) % size)

    def u8(self, value: int) -> None:
        """Append a uint8 (or bool)."""
        self.buf.append(value)

    def u32(self, value: int) -> None:
        """Append a uint32."""
        self.align(4)
        self.buf += struct.pack('<I', value)

    def i32(self, value: int) -> None:
        """Append an int32."""
        self.align(4)
        self.buf += struct.pack('<i', value)

    def string(self, value: str) -> None:
        """Append a string (length with terminator, UTF-8 bytes, NUL)."""
        raw = value.encode()
        self.u32(len(raw) + 1)
        self.buf += raw + b'\x00'

    def header(self, stamp_ns: int, frame_id: str) -> None:
        """Append a ``std_msgs/msg/Header``."""
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        self.i32(sec)
        self.u32(nanosec)
        self.string(frame_id)


def serialize_uint8_multiarray(label: str, data: bytes | memoryview) -> bytes:
    """Serialize a ``std_msgs/msg/UInt8MultiArray`` carrying one opaque byte string.

    Args:
        label: Label of the single dimension (names what the bytes are).
        data: The bytes.

    Returns:
        The CDR bytes.

    """
    w = CdrWriter()
    w.u32(1)  # layout.dim: one dimension
    w.string(label)
    w.u32(len(data))  # size
    w.u32(len(data))  # stride
    w.u32(0)  # layout.data_offset
    w.u32(len(data))
    return b''.join((w.buf, data))


def read_uint8_multiarray(data: bytes | memoryview) -> tuple[list[str], memoryview]:
    """Read a serialized ``std_msgs/msg/UInt8MultiArray`` without copying its bytes.

    Args:
        data: The CDR message (little- or big-endian).

    Returns:
        The labels of its layout's dimensions and its data (a view into ``data``).

    Raises:
        ValueError: The bytes are not a complete UInt8MultiArray.

    """
    buf = memoryview(data).cast('B')
    if len(buf) < 8 or buf[0] != 0 or buf[1] not in (0, 1):
        msg = 'not a CDR message'
        raise ValueError(msg)
    u32 = struct.Struct('<I' if buf[1] == 1 else '>I')
    pos = 4

    def read_u32() -> int:
        nonlocal pos
        pos += -(pos - 4) % 4
        if pos + 4 > len(buf):
            msg = 'UInt8MultiArray truncated'
            raise ValueError(msg)
        (value,) = u32.unpack_from(buf, pos)
        pos += 4
        return value

    labels = []
    for _ in range(read_u32()):
        size = read_u32()
        if not 1 <= size <= len(buf) - pos:
            msg = 'UInt8MultiArray dimension label truncated'
            raise ValueError(msg)
        labels.append(bytes(buf[pos:pos + size - 1]).decode(errors='replace'))
        pos += size
        read_u32()  # size
        read_u32()  # stride
    read_u32()  # data_offset
    size = read_u32()
    if size > len(buf) - pos:
        msg = f'UInt8MultiArray data truncated: {len(buf) - pos} of {size} bytes'
        raise ValueError(msg)
    return labels, buf[pos:pos + size]


def header_stamp_ns(data: bytes | memoryview) -> int | None:
    """Read the ``std_msgs/Header`` stamp that starts a serialized message, in nanoseconds.

    Args:
        data: A CDR message whose first field is a Header (e.g. PointCloud2).

    Returns:
        ``sec * 1e9 + nanosec``, or None if the data is too short or not CDR.

    """
    if len(data) < 12 or data[0] != 0 or data[1] not in (0, 1):
        return None
    sec, nanosec = struct.unpack_from('<iI' if data[1] == 1 else '>iI', data, 4)
    return sec * 1_000_000_000 + nanosec


def cloud_point_count(data: bytes | memoryview) -> int | None:
    """Read ``height * width`` of a serialized ``sensor_msgs/PointCloud2``.

    Only the header and the two dimensions are read: an 18 MB cloud is never copied.

    Args:
        data: A CDR PointCloud2.

    Returns:
        The number of points, or None if the data is too short or not CDR.

    """
    if len(data) < 16 or data[0] != 0 or data[1] not in (0, 1):
        return None
    order = '<' if data[1] == 1 else '>'
    # Encapsulation (4), stamp (8), frame_id: length (4) and text with its NUL.
    (length,) = struct.unpack_from(order + 'I', data, 12)
    offset = 16 + length
    offset += -(offset - 4) % 4  # alignment counts from the end of the encapsulation
    if offset + 8 > len(data):
        return None
    height, width = struct.unpack_from(order + 'II', data, offset)
    return height * width


def read_string(data: bytes | memoryview) -> str:
    """Read the text of a serialized ``std_msgs/String``.

    Args:
        data: The CDR message.

    Returns:
        The text.

    Raises:
        ValueError: Not a little- or big-endian CDR String, or not UTF-8.

    """
    if len(data) < 8 or data[0] != 0 or data[1] not in (0, 1):
        msg = 'not a CDR message'
        raise ValueError(msg)
    (size,) = struct.unpack_from('<I' if data[1] == 1 else '>I', data, 4)
    if size < 1 or 8 + size > len(data) or data[7 + size] != 0:
        msg = f'String length {size} does not fit the {len(data)}-byte message'
        raise ValueError(msg)
    return bytes(data[8:7 + size]).decode()
