# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Fuzzing of everything that reads bytes from SENSR, with hypothesis.

Targets: the protobuf wire scanner (:func:`sensr_bridge.sensr.wire.scan_point_result`),
:func:`sensr_bridge.sensr.points.plan_frame` with :func:`~sensr_bridge.sensr.points.fill_points`,
:func:`sensr_bridge.sensr.protocol.parse_output` and the websocket
:class:`~sensr_bridge.sensr.framing.FrameReader`. Inputs are random bytes, valid messages built
from random content, and valid frames (a simulator frame, a SENSR-like OutputMessage)
mutated by bit flips, byte changes, cuts, insertions, duplications and splices.

Properties: nothing but the package's errors is ever raised (``DecodeError`` for
frames; ``ProtocolError`` / ``ConnectionClosed`` for the websocket reader), the scanner
accepts exactly what protobuf accepts and finds the same content, and valid frames
decode to the points protobuf parses.

Every test runs ``SENSR_FUZZ_EXAMPLES`` examples (default 300; about 10 s in all), the
same ones on every run (see ``test/conftest.py``). A campaign with new random examples,
e.g. 20,000 per test (several minutes)::

    SENSR_FUZZ_RANDOM=1 SENSR_FUZZ_EXAMPLES=20000 .venv-kilted/bin/python -m pytest -q \\
        -p no:cacheprovider test/test_fuzz.py
"""

from __future__ import annotations

import os
import socket
import struct

from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError as PbDecodeError
from helpers import assert_same_as_protobuf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from sensr_bridge.convert import cloud
from sensr_bridge.errors import DecodeError
from sensr_bridge.sensr import points, protocol, wire
from sensr_bridge.sensr.framing import ConnectionClosed, FrameReader, ProtocolError
from sensr_bridge.sim.config import SimulatorConfig
from sensr_bridge.sim.server import Simulator

EXAMPLES = int(os.environ.get('SENSR_FUZZ_EXAMPLES', '300'))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
RUNS: dict[str, int] = {}


@pytest.fixture(scope='module', autouse=True)
def print_runs():
    yield
    print(f'\n[fuzz] examples run per test (SENSR_FUZZ_EXAMPLES={EXAMPLES}): {RUNS}')


def ran(name):
    RUNS[name] = RUNS.get(name, 0) + 1


def _seed_frames():
    """A small simulator frame and a SENSR-like OutputMessage, serialized."""
    sim = Simulator(SimulatorConfig(output_port=0, point_port=0, points=60, objects=2,
                                    object_points=4, frames_precomputed=1))
    point = sim.expected_point_result(7)
    out = protocol.OutputMessage()
    out.timestamp.FromNanoseconds(1_700_000_000_123_456_789)
    stream = out.stream
    stream.has_objects = True
    for i in range(2):
        obj = stream.objects.add(id=i + 1, label=i + 1, confidence=0.9, tracking_status=1)
        obj.bbox.position.x, obj.bbox.size.z, obj.bbox.yaw = 1.5 * i, 1.7, 0.3
        obj.points = np.arange(12, dtype='<f4').tobytes()
        obj.intensities = np.arange(4, dtype='<f4').tobytes()
        obj.history.states.add().position.x = 1.0
        obj.zone_ids.extend([1, 2])
    zone = stream.zones.add(id=1, name='entrance', type=1)
    zone.pbox.points.add(x=1.0, y=2.0)
    stream.has_zones = True
    stream.health.master = 1
    out.event.losing.add(id=3)
    out.custom.bg_learning_progress = 0.5
    return point, out.SerializeToString()


POINT_SEED, OUTPUT_SEED = _seed_frames()


# --- strategies ---------------------------------------------------------------------------

_cloud_type = st.one_of(st.sampled_from([0, 1, 2, 3, 7, 255]),
                        st.integers(-(2**31), 2**31 - 1))


@st.composite
def point_results(draw):
    """Valid PointResults: random clouds, sizes valid or not, optional uid."""
    message = protocol.PointResult(uid=draw(st.text(max_size=12)))
    for _ in range(draw(st.integers(0, 4))):
        n = draw(st.integers(0, 16))
        points = draw(st.one_of(
            st.binary(min_size=12 * n, max_size=12 * n),
            st.binary(max_size=200)))
        intensities = draw(st.one_of(
            st.binary(min_size=4 * n, max_size=4 * n), st.just(b''), st.binary(max_size=70)))
        message.points.add(type=draw(_cloud_type), id=draw(st.text(max_size=6)),
                           points=points, intensities=intensities)
    return message.SerializeToString()


@st.composite
def mutated(draw, seeds):
    """A valid frame changed by a few random edits."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            data += draw(st.binary(min_size=1, max_size=16))
            continue
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(['flip', 'byte', 'cut', 'delete', 'insert', 'dup', 'splice',
                                   'varint', 'widen', 'nest']))
        if op == 'flip':
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == 'byte':
            data[pos] = draw(st.sampled_from([0x00, 0x07, 0x08, 0x0A, 0x7F, 0x80, 0xFF]))
        elif op == 'cut':
            del data[pos:]
        elif op == 'delete':
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == 'insert':
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == 'dup':
            end = min(len(data), pos + draw(st.integers(1, 64)))
            data[end:end] = data[pos:end]
        elif op == 'splice':
            other = draw(st.sampled_from(seeds))
            cut = draw(st.integers(0, len(other)))
            data = data[:pos] + bytearray(other[cut:])
        elif op == 'varint':  # a varint-looking run: long or overflowing varints and tags
            data[pos:pos] = bytes([0xFF] * draw(st.integers(1, 11))) + bytes(
                [draw(st.integers(0, 0x7F))])
        elif op == 'widen':  # re-encode a field's tag and length non-minimally (1-7 bytes)
            data = widen(data, draw(st.integers(0, 99)), draw(st.integers(1, 7)),
                         draw(st.integers(1, 7)))
        else:  # unknown groups nested around the protobuf depth limit, at the front
            depth = draw(st.sampled_from([1, 2, 64, 98, 99, 100, 101]))
            data[0:0] = b'\x3b' * depth + b'\x3c' * depth  # field 7, START/END_GROUP
    return bytes(data)


def varint(value, width=1):
    """Encode a varint in at least ``width`` bytes (non-minimal when wider)."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value or len(out) + 1 < width:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def widen(data, index, tag_width, len_width):
    """Re-encode the tag (and length) of the ``index``-th top-level field, if it parses."""
    buf = memoryview(bytes(data))
    try:
        fields = list(wire.iter_fields(buf, 0, len(buf)))
    except DecodeError:
        return data
    if not fields:
        return data
    number, wire_type, value, after = fields[index % len(fields)]
    start = 0 if index % len(fields) == 0 else fields[index % len(fields) - 1][3]
    head = varint(number << 3 | wire_type, tag_width)
    if wire_type == wire.LENGTH_DELIMITED:  # value: the payload, after the length
        head += varint(after - value, len_width)
    return bytearray(buf[:start]) + head + bytearray(buf[value:])


frames = st.one_of(st.binary(max_size=512), point_results(),
                   mutated([POINT_SEED, OUTPUT_SEED]))
output_frames = st.one_of(st.binary(max_size=512), mutated([OUTPUT_SEED, POINT_SEED]))
options = st.builds(
    points.CloudOptions, st.sampled_from([points.MERGED, points.PER_TYPE]), st.booleans(),
    st.sets(st.sampled_from([1, 2, 3, 7])).map(frozenset))


# --- reference behaviour from protobuf ------------------------------------------------------


def attempt(function, *args):
    """Call ``function``; return ``(result, None)`` or ``(None, DecodeError)``."""
    try:
        return function(*args), None
    except DecodeError as exc:
        return None, exc


def pb_point_result(data):
    try:
        return protocol.PointResult.FromString(data)
    except PbDecodeError:
        return None


def expected_plan_error(message, data, opts):
    """The error plan_frame must raise for a frame protobuf parses, or None."""
    if not data:
        return 'empty'
    unknown = len(unknown_fields.UnknownFieldSet(message))
    if unknown and not any(c.points for c in message.points):
        return 'wrong_message'
    for c in message.points:
        if opts.types and c.type not in opts.types:
            continue
        n, rest = divmod(len(c.points), 12)
        if rest:
            return 'bad_point_length'
        if c.intensities and len(c.intensities) != 4 * n:
            return 'intensity_mismatch'
    return None


def expected_points(message, opts):
    """Packed points per output cloud, built from protobuf's parse with numpy."""
    layout = opts.layout
    per_key: dict[str, list[np.ndarray]] = {}
    for c in message.points:
        if opts.types and c.type not in opts.types:
            continue
        n = len(c.points) // 12
        part = np.zeros(n, layout.numpy_dtype())
        xyz = np.frombuffer(c.points, '<f4').reshape(n, 3)
        part['x'], part['y'], part['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        if c.intensities:
            part['intensity'] = np.frombuffer(c.intensities, '<f4')
        if layout is cloud.XYZI_TYPE:
            part['type'] = c.type & 0xFF
        key = 'merged' if opts.mode == points.MERGED else points.CLOUD_KEYS.get(
            c.type, f'type_{c.type}')
        per_key.setdefault(key, []).append(part.view(np.uint8).reshape(-1))
    if opts.mode == points.MERGED:
        per_key.setdefault('merged', [])
    return {key: b''.join(p.tobytes() for p in parts) for key, parts in per_key.items()}


# --- properties -----------------------------------------------------------------------------


@FUZZ
@given(frames)
def test_scanner_agrees_with_protobuf(data):
    ran('scanner_agrees_with_protobuf')
    assert_same_as_protobuf(data)


@FUZZ
@given(frames, options)
def test_plan_and_fill_match_protobuf(data, opts):
    ran('plan_and_fill_match_protobuf')
    message = pb_point_result(data)
    plan, error = attempt(points.plan_frame, data, opts)
    if error is not None:
        if message is None:
            assert error.kind in ('malformed', 'empty')
        else:
            assert error.kind == expected_plan_error(message, data, opts), error
        return
    assert message is not None
    assert expected_plan_error(message, data, opts) is None
    out = bytearray(plan.nbytes)
    points.fill_points(data, plan, opts, memoryview(out))
    step = opts.layout.point_step
    got = {s.key: bytes(out[s.offset:s.offset + s.width * step]) for s in plan.segments}
    assert got == expected_points(message, opts)


@FUZZ
@given(output_frames)
def test_parse_output_raises_only_decode_error(data):
    ran('parse_output_raises_only_decode_error')
    try:
        want = protocol.OutputMessage.FromString(data)
    except PbDecodeError:
        want = None
    got, error = attempt(protocol.parse_output, data)
    if error is not None:
        if want is None:
            assert error.kind in ('malformed', 'empty')
        else:
            # Parsed by protobuf, but nothing an OutputMessage carries (or empty).
            assert error.kind in ('wrong_message', 'empty'), error
            assert not any(want.HasField(f) for f in ('stream', 'event', 'custom'))
        return
    assert got == want
    assert set(protocol.output_warnings(data, got)) <= {'unknown_fields', 'unknown_enum'}


def test_valid_seed_frames_decode_like_protobuf():
    """The unmutated seeds decode, and identically to protobuf (no fuzzing luck needed)."""
    opts = points.CloudOptions()
    plan = points.plan_frame(POINT_SEED, opts)
    out = bytearray(plan.nbytes)
    points.fill_points(POINT_SEED, plan, opts, memoryview(out))
    message = protocol.PointResult.FromString(POINT_SEED)
    assert bytes(out) == expected_points(message, opts)['merged']
    assert plan.segments[0].width == 60
    assert protocol.parse_output(OUTPUT_SEED) == protocol.OutputMessage.FromString(OUTPUT_SEED)


# --- websocket frames -----------------------------------------------------------------------


def ws_frame(opcode, payload, *, fin=True, length=None):
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack('!BB', first, n)
    elif n < 65536:
        head = struct.pack('!BBH', first, 126, n)
    else:
        head = struct.pack('!BBQ', first, 127, n)
    return head + payload


@st.composite
def ws_streams(draw):
    """Byte streams of plausible and broken websocket frames from a server."""
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(['frame', 'random', 'lie']))
        opcode = draw(st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB]))
        payload = draw(st.binary(max_size=300))
        if kind == 'frame':
            parts.append(ws_frame(opcode, payload, fin=draw(st.booleans())))
        elif kind == 'lie':  # a header whose length does not match what follows
            parts.append(ws_frame(opcode, payload, length=draw(st.sampled_from(
                [0, 1, 125, 126, 65535, 65536, 2**40, 2**63 - 1]))))
        else:
            parts.append(payload)
    return b''.join(parts)


@FUZZ
@given(ws_streams())
def test_frame_reader_raises_only_protocol_errors(stream):
    ran('frame_reader_raises_only_protocol_errors')
    server, client = socket.socketpair()
    try:
        server.sendall(stream)
        server.close()
        reader = FrameReader(client, 1024, lambda _op, _payload: None)
        assert isinstance(read_to_end(reader, len(stream) + 1), (ProtocolError, ConnectionClosed))
    finally:
        client.close()


def read_to_end(reader, limit):
    """Read messages until an exception, which is returned; check each message."""
    for _ in range(limit):  # every read consumes bytes or raises
        try:
            frame = reader.read()
        except Exception as exc:
            return exc
        assert frame.opcode in (0x1, 0x2)
        assert frame.data is None or len(frame.data) == frame.size <= 1024
    return None
