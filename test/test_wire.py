# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The zero-copy PointResult scanner (wire.py) against protobuf's own parser.

Messages are generated with hypothesis straight at the wire level: clouds with any
type number (known, unknown, negative, wider than 32 bits), ids, point and intensity
payloads; singular fields repeated (the last one wins), fields in any order, unknown
fields of every wire type (groups nested), known field numbers with a wrong wire type
(a packed-style length-delimited ``type``, a varint ``points``, ...), non-minimal
varints. Whatever protobuf parses, the scanner must find the same values, and its
offsets must select exactly the bytes protobuf returns; whatever protobuf rejects, the
scanner must reject. The same holds for truncated and corrupted messages and random
bytes. PointResult has no repeated scalar field, so packed versus unpacked matters only
as a wrong wire type (a packed-style ``type`` is an unknown field to both).
"""

from __future__ import annotations

from dataclasses import dataclass
import itertools

from google.protobuf.message import DecodeError as PbDecodeError
from helpers import assert_same_as_protobuf, parse_or_none, unknown_count
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from sensr_bridge.errors import DecodeError
from sensr_bridge.sensr import protocol, wire
from sensr_bridge.sim.config import SimulatorConfig
from sensr_bridge.sim.server import Simulator

VARINT, FIXED64, LEN, START, END, FIXED32 = (wire.VARINT, wire.FIXED64, wire.LENGTH_DELIMITED,
                                             wire.START_GROUP, wire.END_GROUP, wire.FIXED32)
CLOUD_FIELDS = {1: VARINT, 2: LEN, 3: LEN, 4: LEN}
RESULT_FIELDS = {1: LEN, 201: LEN}
Timestamp = protocol.message_class('google.protobuf.Timestamp')
MAX_FIELD = (1 << 29) - 1


def varint(value: int, width: int = 0) -> bytes:
    """Encode ``value`` (taken modulo 2**64) in at least ``width`` bytes (non-minimal)."""
    value &= (1 << 64) - 1
    digits = []
    while True:
        digits.append(value & 0x7F)
        value >>= 7
        if not value:
            break
    digits += [0] * (width - len(digits))
    return bytes([d | 0x80 for d in digits[:-1]] + [digits[-1]])


@dataclass(frozen=True)
class Field:
    """One generated field: enough to encode it and to know where its value lies."""

    number: int
    wire_type: int
    value: bytes  # the encoded value; for LEN the payload, for groups the inner fields
    tag_width: int = 0
    len_width: int = 0

    def head(self) -> bytes:
        tag = varint(self.number << 3 | self.wire_type, self.tag_width)
        return tag + varint(len(self.value), self.len_width) if self.wire_type == LEN else tag

    def encode(self) -> bytes:
        tail = varint(self.number << 3 | END) if self.wire_type == START else b''
        return self.head() + self.value + tail


def encode(fields: list[Field]) -> bytes:
    return b''.join(f.encode() for f in fields)


header_width = st.integers(0, 5)  # protobuf (upb) rejects tags and lengths over 5 bytes


@st.composite
def unknown_field(draw, known: dict[int, int], depth: int = 0) -> Field:
    """A field the schema does not know: a new number, or a known one, wrong wire type."""
    wire_type = draw(st.sampled_from([VARINT, FIXED64, LEN, FIXED32]
                                     + ([START] if depth < 3 else [])))
    mistyped = sorted(n for n, t in known.items() if t != wire_type)
    if mistyped and draw(st.booleans()):
        number = draw(st.sampled_from(mistyped))
    else:
        number = draw(st.one_of(st.integers(1, 300), st.just(MAX_FIELD))
                      .filter(lambda n: n not in known))
    if wire_type == VARINT:
        value = varint(draw(st.integers(0, (1 << 64) - 1)), draw(st.integers(0, 10)))
    elif wire_type == FIXED64:
        value = draw(st.binary(min_size=8, max_size=8))
    elif wire_type == FIXED32:
        value = draw(st.binary(min_size=4, max_size=4))
    elif wire_type == LEN:
        value = draw(st.binary(max_size=24))
    else:  # a group: any fields inside, all unknown to protobuf
        value = encode(draw(st.lists(unknown_field({}, depth + 1), max_size=3)))
    return Field(number, wire_type, value, draw(header_width), draw(header_width))


def length_delimited(number: int, payload: st.SearchStrategy[bytes]) -> st.SearchStrategy:
    return st.builds(Field, st.just(number), st.just(LEN), payload, header_width, header_width)


text_or_bytes = st.one_of(st.text(max_size=12).map(str.encode), st.binary(max_size=12))
type_values = st.one_of(st.sampled_from([0, 1, 2, 3]), st.integers(-(1 << 31), (1 << 31) - 1),
                        st.integers(0, (1 << 64) - 1))
type_field = st.builds(lambda v, w, t: Field(1, VARINT, varint(v, w), t), type_values,
                       st.integers(0, 10), header_width)


@st.composite
def cloud_fields(draw) -> list[Field]:
    fields = [
        *draw(st.lists(type_field, max_size=2)),
        *draw(st.lists(length_delimited(2, text_or_bytes), max_size=2)),
        *draw(st.lists(length_delimited(3, st.binary(max_size=48)), max_size=2)),
        *draw(st.lists(length_delimited(4, st.binary(max_size=32)), max_size=2)),
        *draw(st.lists(unknown_field(CLOUD_FIELDS), max_size=3)),
    ]
    return draw(st.permutations(fields))


@st.composite
def point_results(draw) -> tuple[bytes, list[Field]]:
    clouds = draw(st.lists(cloud_fields(), max_size=4))
    fields = [
        *[Field(1, LEN, encode(c), draw(header_width), draw(header_width)) for c in clouds],
        *draw(st.lists(length_delimited(201, text_or_bytes), max_size=2)),
        *draw(st.lists(unknown_field(RESULT_FIELDS), max_size=3)),
    ]
    fields = interleave(draw, fields, len(clouds))
    return encode(fields), fields


def interleave(draw, fields: list[Field], n_clouds: int) -> list[Field]:
    """Shuffle fields, the first ``n_clouds`` (a repeated field) keeping their order."""
    clouds = fields[:n_clouds]
    others = draw(st.permutations(fields[n_clouds:]))
    slots = draw(st.permutations([True] * len(clouds) + [False] * len(others)))
    cloud_iter, other_iter = iter(clouds), iter(others)
    return [next(cloud_iter) if is_cloud else next(other_iter) for is_cloud in slots]


@settings(max_examples=300, deadline=None)
@given(point_results())
def test_scanner_matches_protobuf(generated):
    data, _ = generated
    assert_same_as_protobuf(data)


@settings(max_examples=100, deadline=None)
@given(point_results(), st.binary(max_size=5))
def test_offsets_are_relative_to_any_buffer_type(generated, prefix):
    data, _ = generated
    reference = parse_or_none(protocol.PointResult, data)
    for buffer in (bytearray(data), memoryview(data), memoryview(prefix + data)[len(prefix):]):
        try:
            view = wire.scan_point_result(buffer)
        except DecodeError:
            assert reference is None
            continue
        for found, cloud in zip(view.clouds, reference.points, strict=True):
            offset, length = found.points
            assert bytes(buffer[offset:offset + length]) == cloud.points


@settings(max_examples=200, deadline=None)
@given(point_results(), st.data())
def test_truncated_messages_agree_with_protobuf(generated, data):
    message, _ = generated
    cut = data.draw(st.integers(0, len(message)))
    assert_same_as_protobuf(message[:cut])


@settings(max_examples=300, deadline=None)
@given(point_results(), st.data())
def test_corrupted_messages_agree_with_protobuf(generated, data):
    message, _ = generated
    corrupt = bytearray(message)
    for _ in range(data.draw(st.integers(1, 3)) if message else 0):
        corrupt[data.draw(st.integers(0, len(message) - 1))] = data.draw(st.integers(0, 255))
    assert_same_as_protobuf(bytes(corrupt))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=48))
def test_random_bytes_agree_with_protobuf(data):
    assert_same_as_protobuf(data)


@settings(max_examples=150, deadline=None)
@given(point_results())
def test_iter_fields_walks_every_field(generated):
    data, fields = generated
    buf = memoryview(data)
    previous = 0
    seen = list(wire.iter_fields(buf, 0, len(buf)))
    assert len(seen) == len(fields)
    for (number, wire_type, value, after), field in zip(seen, fields, strict=True):
        assert (number, wire_type) == (field.number, field.wire_type)
        assert data[previous:value] == field.head()
        if wire_type == START:  # the value runs through the end-group tag
            assert data[value:after] == field.value + varint(number << 3 | END)
        else:
            assert data[value:after] == field.value
        previous = after
    assert previous == len(data)


@st.composite
def timestamps(draw) -> bytes:
    fields = [
        *draw(st.lists(st.builds(lambda v, w: Field(1, VARINT, varint(v, w)),
                                 st.integers(-(1 << 63), (1 << 63) - 1), st.integers(0, 10)),
                       max_size=2)),
        *draw(st.lists(st.builds(lambda v: Field(2, VARINT, varint(v)),
                                 st.integers(-(1 << 31), (1 << 31) - 1)), max_size=2)),
        *draw(st.lists(unknown_field({1: VARINT, 2: VARINT}), max_size=4)),
    ]
    return encode(draw(st.permutations(fields)))


@settings(max_examples=300, deadline=None)
@given(timestamps())
def test_count_unknown_fields_matches_protobuf(data):
    expected = Timestamp.FromString(data)
    assert wire.count_unknown_fields(data, {1: VARINT, 2: VARINT}) == unknown_count(expected)
    assert wire.count_unknown_fields(memoryview(data), {1: VARINT, 2: VARINT}) == \
        unknown_count(expected)


@settings(max_examples=100, deadline=None)
@given(point_results())
def test_count_unknown_fields_of_a_point_result(generated):
    data, _ = generated
    expected = parse_or_none(protocol.PointResult, data)
    try:
        count = wire.count_unknown_fields(data, RESULT_FIELDS)
    except DecodeError:
        assert expected is None
        return
    if expected is not None:  # a cloud or uid protobuf rejects fails only the full parse
        assert count == unknown_count(expected)


def test_simulator_frames():
    sim = Simulator(SimulatorConfig(output_port=0, point_port=0, points=3000, objects=2,
                                    object_points=4, frames_precomputed=3))
    for seq in range(4):
        frame = sim.expected_point_result(seq)
        assert_same_as_protobuf(frame)
        view = wire.scan_point_result(frame)
        assert view.uid == f'sim:{seq}'
        assert sum(c.points[1] for c in view.clouds) == 3000 * 12
        assert {c.type for c in view.clouds} == {protocol.CLOUD_GROUND, protocol.CLOUD_BACKGROUND,
                                                 protocol.CLOUD_RAW}


def test_packed_style_type_is_unknown_to_both():
    """A singular enum sent length-delimited (as if packed) is an unknown field."""
    cloud = Field(1, LEN, varint(2) + varint(3)).encode() + Field(1, VARINT, varint(1)).encode()
    data = Field(1, LEN, cloud).encode()
    assert_same_as_protobuf(data)
    view = wire.scan_point_result(data)
    assert (view.clouds[0].type, view.clouds[0].unknown_fields) == (1, 1)


def test_last_value_wins_for_singular_fields():
    cloud = b''.join(Field(n, t, v).encode() for n, t, v in [
        (3, LEN, b'first-points'), (1, VARINT, varint(2)), (2, LEN, b'a'), (3, LEN, b'xyz'),
        (1, VARINT, varint(-5)), (2, LEN, b'lidar_1')])
    data = Field(201, LEN, b'old').encode() + Field(1, LEN, cloud).encode() + \
        Field(201, LEN, b'new').encode()
    assert_same_as_protobuf(data)
    view = wire.scan_point_result(data)
    found = view.clouds[0]
    assert (view.uid, found.type, found.id) == ('new', -5, 'lidar_1')
    assert data[found.points[0]:sum(found.points)] == b'xyz'


def group(number: int, depth: int) -> bytes:
    inner = b''
    for _ in range(depth):
        inner = varint(number << 3 | START) + inner + varint(number << 3 | END)
    return inner


MALFORMED = {
    'truncated tag': b'\x80',
    'truncated length': Field(201, LEN, b'abc').encode()[:2],
    'length past the end': Field(201, LEN, b'abc').encode()[:-1],
    'field number 0': varint(0 << 3 | VARINT) + b'\x01',
    'field number 2**29': varint(1 << 29 << 3 | VARINT) + b'\x01',
    'wire type 6': varint(5 << 3 | 6),
    'wire type 7': varint(5 << 3 | 7),
    'end group at top level': varint(5 << 3 | END),
    'unclosed group': varint(5 << 3 | START) + Field(6, VARINT, b'\x01').encode(),
    'mismatched end group': varint(5 << 3 | START) + varint(6 << 3 | END),
    'varint of 11 bytes': varint(5 << 3 | VARINT) + b'\x80' * 10 + b'\x00',
    'truncated fixed64': varint(5 << 3 | FIXED64) + bytes(7),
    'truncated fixed32': varint(5 << 3 | FIXED32) + bytes(3),
    'uid not UTF-8': Field(201, LEN, b'\xff\xfe').encode(),
    'cloud id not UTF-8': Field(1, LEN, Field(2, LEN, b'\xc3(').encode()).encode(),
    'cloud runs past its end': Field(1, LEN, Field(3, LEN, b'abcd').encode()[:-1]).encode(),
}


@pytest.mark.parametrize('name', list(MALFORMED))
def test_malformed_rejected_like_protobuf(name):
    data = MALFORMED[name]
    with pytest.raises(PbDecodeError):
        protocol.PointResult.FromString(data)
    with pytest.raises(DecodeError) as caught:
        wire.scan_point_result(data)
    assert caught.value.kind == 'malformed'


def test_headers_up_to_five_bytes_accepted_like_protobuf():
    for tag_width, len_width in itertools.product(range(1, 6), repeat=2):
        data = Field(201, LEN, b'id', tag_width, len_width).encode()
        assert protocol.PointResult.FromString(data).uid == 'id'
        assert wire.scan_point_result(data).uid == 'id'


@pytest.mark.parametrize('widths', [(6, 1), (10, 1), (1, 6), (1, 10)])
def test_headers_over_five_bytes_rejected_like_protobuf(widths):
    data = Field(201, LEN, b'id', *widths).encode()
    with pytest.raises(PbDecodeError):
        protocol.PointResult.FromString(data)
    with pytest.raises(DecodeError):
        wire.scan_point_result(data)


@pytest.mark.parametrize('depth', [63, 64, 65, 98, 99, 100, 101, 102])
def test_group_nesting_limit_like_protobuf(depth):
    """Groups count towards protobuf's nesting limit, the cloud level included."""
    top = group(7, depth)
    in_cloud = Field(1, LEN, group(7, depth)).encode()
    for data in (top, in_cloud):
        assert_same_as_protobuf(data)
    # The limit is reached in the range tested, at both levels.
    if depth == 64:
        assert wire.scan_point_result(top).unknown_fields == 1
        assert wire.scan_point_result(in_cloud).clouds[0].unknown_fields == 1
    if depth == 102:
        for data in (top, in_cloud):
            with pytest.raises(PbDecodeError):
                protocol.PointResult.FromString(data)


def wrap_in_group(number: int, body: bytes) -> bytes:
    return varint(number << 3 | START) + body + varint(number << 3 | END)


@pytest.mark.parametrize('data', [
    # upb checks field numbers only at message level: inside an unknown group any tag
    # that fits 32 bits is skipped, field 0 included.
    wrap_in_group(5, b'\x00\x01'),
    wrap_in_group(5, b'\x01' + bytes(8)),
    wrap_in_group(5, b'\x02\x01x'),
    wrap_in_group(5, b'\x05' + bytes(4)),
    wrap_in_group(5, wrap_in_group(0, b'\x00\x01')),
    wrap_in_group(5, varint(0x1FFFFFFF << 3) + b'\x01'),
    Field(1, LEN, wrap_in_group(9, b'\x00\x01')).encode(),
    # Rejected by both.
    b'\x00\x01',
    wrap_in_group(0, b''),
    wrap_in_group(5, b'\x04'),
    wrap_in_group(5, b'\x06'),
    wrap_in_group(5, b'\xf8\xff\xff\xff\x7f\x01'),
    wrap_in_group(5, b'\x03\x01'),
    varint(5 << 3 | START) + b'\x03\x04',
], ids=lambda data: data.hex())
def test_field_numbers_inside_groups_checked_like_protobuf(data):
    assert_same_as_protobuf(data)
