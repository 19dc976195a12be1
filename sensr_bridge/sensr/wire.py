# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""A minimal protobuf wire-format reader for the hot path of the point stream.

A SENSR ``PointResult`` is a few length-delimited fields around megabytes of packed
floats. Parsing it with protobuf copies every ``points`` and ``intensities`` field
into new ``bytes``; this reader only walks the field headers and returns the offsets
of the payloads inside the received buffer, so the clouds can be read with
``numpy.frombuffer`` without any copy. It follows protobuf's parsing rules
(last value wins for singular fields, unknown fields skipped, groups skipped, UTF-8
checked in strings) and is tested against the protobuf library on generated and
random inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sensr_bridge.errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Iterator

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
START_GROUP = 3
END_GROUP = 4
FIXED32 = 5

# protobuf (upb) allows 100 levels of nesting, messages and groups together.
_MAX_DEPTH = 100
# upb reads tags and lengths as 32-bit varints: at most five bytes, even non-minimal ones.
_MAX_HEADER_BYTES = 5


def _malformed(message: str) -> DecodeError:
    return DecodeError('malformed', message)


def read_varint(buf: memoryview, pos: int, end: int, max_bytes: int = 10) -> tuple[int, int]:
    """Read a base-128 varint.

    Args:
        buf: The buffer.
        pos: Offset of the varint.
        end: Offset the varint must end before.
        max_bytes: Longest encoding accepted: 10 for values, 5 for tags and lengths
            (as protobuf).

    Returns:
        The value as an unsigned 64-bit integer and the offset after it.

    Raises:
        DecodeError: On truncation or a varint longer than ``max_bytes``.

    """
    result = 0
    shift = 0
    while True:
        if pos >= end:
            msg = 'truncated varint'
            raise _malformed(msg)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 7 * max_bytes:
            msg = f'varint longer than {max_bytes} bytes'
            raise _malformed(msg)


def _skip_value(buf: memoryview, pos: int, end: int, number: int, wire_type: int,
                depth: int) -> int:
    """Return the offset after a value of the given wire type."""
    if wire_type == VARINT:
        return read_varint(buf, pos, end)[1]
    if wire_type == FIXED64:
        pos += 8
    elif wire_type == FIXED32:
        pos += 4
    elif wire_type == LENGTH_DELIMITED:
        length, pos = read_varint(buf, pos, end, _MAX_HEADER_BYTES)
        pos += length
    elif wire_type == START_GROUP:
        if depth >= _MAX_DEPTH:
            msg = 'groups nested too deeply'
            raise _malformed(msg)
        for inner_number, inner_type, _, after in iter_fields(buf, pos, end, depth + 1,
                                                              group=number):
            if inner_type == END_GROUP and inner_number == number:
                return after
        msg = f'group {number} is not closed'
        raise _malformed(msg)
    else:
        msg = f'invalid wire type {wire_type}'
        raise _malformed(msg)
    if pos > end:
        msg = 'field runs past the end of its message'
        raise _malformed(msg)
    return pos


def iter_fields(buf: memoryview, pos: int, end: int, depth: int = 0,
                group: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """Iterate over the fields of one message.

    Args:
        buf: The buffer.
        pos: Offset of the first field.
        end: Offset where the message ends.
        depth: Nesting depth of the message (submessages and groups): 0 for a top-level
            message, 1 for a field of it, and so on.
        group: Number of the enclosing group, ``None`` at message level (internal).

    Yields:
        ``(field_number, wire_type, value_offset, next_offset)``. For a
        length-delimited field ``value_offset`` is the start of its payload; an
        END_GROUP tag is yielded only inside a group.

    Raises:
        DecodeError: On any malformed input.

    """
    while pos < end:
        tag, value_pos = read_varint(buf, pos, end, _MAX_HEADER_BYTES)
        number = tag >> 3
        wire_type = tag & 7
        # upb checks field numbers only at message level: inside an unknown group it
        # skips any tag that fits 32 bits, field 0 included, until the END_GROUP tag.
        if (number == 0 and group is None) or number > 0x1FFFFFFF:
            msg = f'invalid field number {number}'
            raise _malformed(msg)
        if wire_type == END_GROUP:
            if group != number:
                msg = f'unexpected end of group {number}'
                raise _malformed(msg)
            yield number, wire_type, value_pos, value_pos
            return
        if wire_type == LENGTH_DELIMITED:
            length, start = read_varint(buf, value_pos, end, _MAX_HEADER_BYTES)
            after = start + length
            if after > end:
                msg = 'length-delimited field runs past the end of its message'
                raise _malformed(msg)
            yield number, wire_type, start, after
            pos = after
            continue
        after = _skip_value(buf, value_pos, end, number, wire_type, depth)
        yield number, wire_type, value_pos, after
        pos = after
    if group is not None:
        msg = f'group {group} is not closed'
        raise _malformed(msg)


def _decode_str(buf: memoryview, start: int, end: int, what: str) -> str:
    try:
        return str(buf[start:end], 'utf-8')
    except UnicodeDecodeError as exc:
        msg = f'{what} is not valid UTF-8'
        raise _malformed(msg) from exc


def _to_int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


@dataclass
class CloudView:
    """One ``PointResult.PointCloud`` located inside a received buffer.

    Attributes:
        type: ``PointCloud.Type`` number (unknown numbers are kept).
        id: The cloud's ``id`` string.
        points: ``(offset, length)`` of the packed x,y,z float32 bytes.
        intensities: ``(offset, length)`` of the packed float32 intensities.
        unknown_fields: Number of fields this schema does not know.

    """

    type: int = 0
    id: str = ''
    points: tuple[int, int] = (0, 0)
    intensities: tuple[int, int] = (0, 0)
    unknown_fields: int = 0


@dataclass
class PointResultView:
    """A ``PointResult`` located inside a received buffer.

    Attributes:
        clouds: The clouds, in wire order.
        uid: The ``uid`` string.
        unknown_fields: Number of top-level fields this schema does not know.

    """

    clouds: list[CloudView] = field(default_factory=list)
    uid: str = ''
    unknown_fields: int = 0


def _scan_cloud(buf: memoryview, start: int, end: int) -> CloudView:
    cloud = CloudView()
    for number, wire_type, value, after in iter_fields(buf, start, end, depth=1):
        if number == 1 and wire_type == VARINT:
            cloud.type = _to_int32(read_varint(buf, value, after)[0])
        elif number == 2 and wire_type == LENGTH_DELIMITED:
            cloud.id = _decode_str(buf, value, after, 'PointCloud.id')
        elif number == 3 and wire_type == LENGTH_DELIMITED:
            cloud.points = (value, after - value)
        elif number == 4 and wire_type == LENGTH_DELIMITED:
            cloud.intensities = (value, after - value)
        else:
            cloud.unknown_fields += 1
    return cloud


def scan_point_result(data: bytes | bytearray | memoryview) -> PointResultView:
    """Locate the clouds of a serialized ``PointResult`` without copying them.

    Args:
        data: One whole binary websocket message from the point port (5051).

    Returns:
        The clouds' offsets into ``data``.

    Raises:
        DecodeError: ``malformed`` for bytes protobuf would reject.

    """
    buf = memoryview(data).cast('B') if not isinstance(data, memoryview) else data
    result = PointResultView()
    for number, wire_type, value, after in iter_fields(buf, 0, len(buf)):
        if number == 1 and wire_type == LENGTH_DELIMITED:
            result.clouds.append(_scan_cloud(buf, value, after))
        elif number == 201 and wire_type == LENGTH_DELIMITED:
            result.uid = _decode_str(buf, value, after, 'PointResult.uid')
        else:
            result.unknown_fields += 1
    return result


def count_unknown_fields(data: bytes | memoryview, known: dict[int, int]) -> int:
    """Count the top-level fields of a message that are not in ``known``.

    Args:
        data: A serialized message.
        known: Field number to expected wire type.

    Returns:
        How many fields have an unknown number or an unexpected wire type.

    Raises:
        DecodeError: ``malformed`` for bytes protobuf would reject.

    """
    buf = memoryview(data).cast('B') if not isinstance(data, memoryview) else data
    return sum(1 for number, wire_type, _, _ in iter_fields(buf, 0, len(buf))
               if known.get(number) != wire_type)
