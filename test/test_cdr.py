# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Hand-built CDR (cloud.py, cdr.py) against rclpy's serializer, byte for byte.

rclpy (Fast CDR) leaves alignment padding undefined, so its output is compared with
ours everywhere except at the padding positions. Those positions are not taken from
the code under test: an independent reference encoder below walks the message by
its rosidl field types, applying the XCDR1 alignment rules (each primitive aligned
to its size, counted from the end of the 4-byte encapsulation header; strings are a
uint32 length including the NUL, then the bytes; sequences a uint32 count, then the
elements). Our bytes must equal the reference exactly (zero padding included), and
rclpy's bytes may differ from ours only at the reference's padding positions.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import MultiArrayDimension, UInt8MultiArray

from sensr_bridge.convert import cdr, cloud

LAYOUTS = {'XYZI': cloud.XYZI, 'XYZI_TYPE': cloud.XYZI_TYPE, 'XYZI_OBJECT': cloud.XYZI_OBJECT}

_PRIMITIVES = {
    'boolean': '<?', 'octet': '<B', 'byte': '<B', 'char': '<B', 'uint8': '<B', 'int8': '<b',
    'uint16': '<H', 'int16': '<h', 'uint32': '<I', 'int32': '<i', 'uint64': '<Q',
    'int64': '<q', 'float': '<f', 'double': '<d',
}
_BYTE_TYPES = {'octet', 'byte', 'char', 'uint8', 'int8'}


class ReferenceCdr:
    """Independent XCDR1 little-endian encoder driven by the rosidl field types.

    Attributes:
        buf: The encoded bytes, padding written as zeros.
        padding: Offsets of every alignment padding byte.

    """

    def __init__(self) -> None:
        self.buf = bytearray(b'\x00\x01\x00\x00')
        self.padding: set[int] = set()

    def align(self, size: int) -> None:
        count = -(len(self.buf) - 4) % size
        self.padding.update(range(len(self.buf), len(self.buf) + count))
        self.buf += bytes(count)

    def primitive(self, type_name: str, value: object) -> None:
        fmt = _PRIMITIVES[type_name]
        self.align(struct.calcsize(fmt))
        self.buf += struct.pack(fmt, value)

    def string(self, value: str) -> None:
        raw = value.encode()
        self.primitive('uint32', len(raw) + 1)
        self.buf += raw + b'\x00'

    def value(self, type_name: str, value: object) -> None:
        if type_name.startswith('sequence<'):
            inner = type_name[len('sequence<'):-1].split(',', maxsplit=1)[0].strip()
            self.primitive('uint32', len(value))
            self.elements(inner, value)
        elif type_name.endswith(']'):
            self.elements(type_name[:type_name.index('[')], value)
        elif type_name in _PRIMITIVES:
            self.primitive(type_name, value)
        elif type_name == 'string' or type_name.startswith('string<'):
            self.string(value)
        else:  # nested message: its members in order, no alignment of its own
            self.message(value)

    def elements(self, inner: str, values: object) -> None:
        if inner in _BYTE_TYPES:
            self.buf += bytes(values)
        else:
            for item in values:
                self.value(inner, item)

    def message(self, msg: object) -> None:
        for name, type_name in type(msg).get_fields_and_field_types().items():
            self.value(type_name, getattr(msg, name))


def reference(msg: object) -> ReferenceCdr:
    ref = ReferenceCdr()
    ref.message(msg)
    return ref


def assert_matches_rclpy(ours: bytes, msg: object) -> None:
    """Our bytes equal the reference; rclpy's differ from them only at padding."""
    ref = reference(msg)
    theirs = serialize_message(msg)
    assert len(ours) == len(ref.buf) == len(theirs)
    assert ours == bytes(ref.buf)
    differing = {i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b}
    assert differing <= ref.padding, sorted(differing - ref.padding)
    # Where rclpy happened to write zeros the masked comparison is a plain one.
    masked = bytes(0 if i in ref.padding else b for i, b in enumerate(theirs))
    assert masked == ours


def cloud_message(stamp_ns: int, frame_id: str, layout: cloud.CloudLayout, data: bytes,
                  is_dense: bool) -> PointCloud2:
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    msg = PointCloud2()
    msg.header.stamp.sec = sec
    msg.header.stamp.nanosec = nanosec
    msg.header.frame_id = frame_id
    msg.height = 1
    msg.width = len(data) // layout.point_step
    msg.fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                  for f in layout.fields]
    msg.is_bigendian = False
    msg.point_step = layout.point_step
    msg.row_step = len(data)
    msg.data = data
    msg.is_dense = is_dense
    return msg


def assert_cloud_fields(decoded: PointCloud2, expected: PointCloud2) -> None:
    assert decoded.header.stamp.sec == expected.header.stamp.sec
    assert decoded.header.stamp.nanosec == expected.header.stamp.nanosec
    assert decoded.header.frame_id == expected.header.frame_id
    assert (decoded.height, decoded.width) == (expected.height, expected.width)
    assert [(f.name, f.offset, f.datatype, f.count) for f in decoded.fields] == \
        [(f.name, f.offset, f.datatype, f.count) for f in expected.fields]
    assert decoded.is_bigendian is False
    assert (decoded.point_step, decoded.row_step) == (expected.point_step, expected.row_step)
    assert bytes(decoded.data) == bytes(expected.data)
    assert decoded.is_dense == expected.is_dense


def random_points(layout: cloud.CloudLayout, width: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, width * layout.point_step,
                                                dtype=np.uint8).tobytes()


STAMPS = [0, 1, 1_700_000_000_123_456_789, (2**31 - 1) * 1_000_000_000 + 999_999_999, -1]


@pytest.mark.parametrize('layout_name', list(LAYOUTS))
@pytest.mark.parametrize('width', [0, 1, 3, 7, 33])
@pytest.mark.parametrize('frame_len', range(9))
def test_cloud_matches_rclpy(layout_name, width, frame_len):
    layout = LAYOUTS[layout_name]
    frame_id = 'abcdefgh'[:frame_len]
    data = random_points(layout, width, seed=width * 31 + frame_len)
    stamp = STAMPS[(width + frame_len) % len(STAMPS)]
    is_dense = bool(frame_len % 2)
    ours = cloud.serialize_cloud(stamp, frame_id, layout, data, is_dense=is_dense)
    msg = cloud_message(stamp, frame_id, layout, data, is_dense)
    assert_matches_rclpy(ours, msg)
    assert_cloud_fields(deserialize_message(ours, PointCloud2), msg)


@pytest.mark.parametrize('layout_name', list(LAYOUTS))
def test_points_of_is_a_view_of_the_data(layout_name):
    layout = LAYOUTS[layout_name]
    for frame_len in range(9):
        data = random_points(layout, 5, seed=frame_len)
        ours = cloud.serialize_cloud(7, 'x' * frame_len, layout, data)
        points = cloud.points_of(ours, layout)
        assert not points.flags.owndata
        assert points.tobytes() == data
        expected = np.frombuffer(data, dtype=layout.numpy_dtype())
        for f in layout.fields:  # bitwise: random bytes include NaNs
            assert points[f.name].tobytes() == expected[f.name].tobytes()


def test_cloud_accepts_every_buffer_type():
    layout = cloud.XYZI_TYPE
    data = random_points(layout, 4, seed=1)
    expected = cloud.serialize_cloud(5, 'sensr', layout, data)
    as_array = np.frombuffer(data, dtype=layout.numpy_dtype())
    for buffer in (bytearray(data), memoryview(data), as_array, np.frombuffer(data, '<f4')):
        assert cloud.serialize_cloud(5, 'sensr', layout, buffer) == expected


def test_cloud_rejects_partial_points():
    with pytest.raises(ValueError, match='multiple of point_step'):
        cloud.serialize_cloud(0, 'sensr', cloud.XYZI, bytes(17))


def test_reference_padding_positions_by_hand():
    """The reference encoder's padding for a small cloud, worked out by hand.

    Offsets count from the start of the message (header at 0..3, alignment origin 4).
    """
    layout = cloud.CloudLayout((cloud.Field('x', 0, cloud.FLOAT32),), 4)
    msg = cloud_message(0, 'abc', layout, bytes(4), True)
    ref = reference(msg)
    # 4 sec, 8 nanosec, 12 len, 16 'abc\0', 20 height, 24 width, 28 fields count,
    # 32 len, 36 'x\0', 38-39 pad, 40 offset, 44 datatype, 45-47 pad, 48 count,
    # 52 is_bigendian, 53-55 pad, 56 point_step, 60 row_step, 64 data len, 68 data, 72 dense.
    assert ref.padding == {38, 39, 45, 46, 47, 53, 54, 55}
    assert len(ref.buf) == 73


@settings(max_examples=150, deadline=None)
@given(layout_name=st.sampled_from(list(LAYOUTS)), width=st.integers(0, 40),
       frame_id=st.text(st.characters(blacklist_categories=('Cs',), blacklist_characters='\x00'),
                        max_size=20),
       stamp=st.integers(-(2**31) * 1_000_000_000, (2**31) * 1_000_000_000 - 1),
       is_dense=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_cloud_matches_rclpy_generated(layout_name, width, frame_id, stamp, is_dense, seed):
    layout = LAYOUTS[layout_name]
    data = random_points(layout, width, seed)
    ours = cloud.serialize_cloud(stamp, frame_id, layout, data, is_dense=is_dense)
    msg = cloud_message(stamp, frame_id, layout, data, is_dense)
    assert_matches_rclpy(ours, msg)
    assert_cloud_fields(deserialize_message(ours, PointCloud2), msg)


def multiarray_message(label: str, data: bytes) -> UInt8MultiArray:
    msg = UInt8MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=label, size=len(data), stride=len(data))]
    msg.layout.data_offset = 0
    msg.data = data
    return msg


@pytest.mark.parametrize('label_len', range(9))
@pytest.mark.parametrize('size', [0, 1, 2, 3, 5, 64, 1001])
def test_uint8_multiarray_matches_rclpy(label_len, size):
    label = 'sensr_pr'[:label_len]
    data = np.random.default_rng(size + label_len).integers(0, 256, size, np.uint8).tobytes()
    ours = cdr.serialize_uint8_multiarray(label, data)
    msg = multiarray_message(label, data)
    assert_matches_rclpy(ours, msg)
    decoded = deserialize_message(ours, UInt8MultiArray)
    assert [(d.label, d.size, d.stride) for d in decoded.layout.dim] == [(label, size, size)]
    assert decoded.layout.data_offset == 0
    assert bytes(decoded.data) == data


def test_uint8_multiarray_of_the_output_label():
    data = bytes(range(256)) * 3
    ours = cdr.serialize_uint8_multiarray('sensr_proto.OutputMessage', memoryview(data))
    assert_matches_rclpy(ours, multiarray_message('sensr_proto.OutputMessage', data))


@settings(max_examples=100, deadline=None)
@given(label=st.text(st.characters(blacklist_categories=('Cs',), blacklist_characters='\x00'),
                     max_size=30),
       data=st.binary(max_size=300))
def test_uint8_multiarray_matches_rclpy_generated(label, data):
    ours = cdr.serialize_uint8_multiarray(label, data)
    assert_matches_rclpy(ours, multiarray_message(label, data))
    decoded = deserialize_message(ours, UInt8MultiArray)
    assert decoded.layout.dim[0].label == label
    assert bytes(decoded.data) == data
