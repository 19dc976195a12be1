# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Tests of the SENSR simulator over real loopback sockets with websocket-client."""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

from certs import make_certificates
from google.protobuf.message import DecodeError as PbDecodeError
from helpers import wait_until
import numpy as np
import psutil
import pytest
import websocket

from sensr_bridge.errors import ConfigError, DecodeError, SimulatorError
from sensr_bridge.sensr import protocol, wire
from sensr_bridge.sim.config import SimulatorConfig
from sensr_bridge.sim.injection import INJECT_KINDS
from sensr_bridge.sim.server import Simulator

REPO = Path(__file__).resolve().parents[1]
BINARY = websocket.ABNF.OPCODE_BINARY
TEXT = websocket.ABNF.OPCODE_TEXT
CLOSE = websocket.ABNF.OPCODE_CLOSE
PONG = websocket.ABNF.OPCODE_PONG
SMALL = {
    'output_port': 0, 'point_port': 0, 'rate_hz': 50.0, 'points': 20_000, 'objects': 5,
    'object_points': 50, 'frames_precomputed': 4, 'max_queue_frames': None,
}
TIMEOUT = 10.0
MAX_READS = 300


@pytest.fixture(autouse=True)
def no_thread_leaks():
    yield
    leaked = [t.name for t in threading.enumerate() if t.name.startswith('sim-')]
    assert not leaked


@pytest.fixture
def connect():
    sockets = []

    def open_(url, **kwargs):
        ws = websocket.create_connection(url, timeout=TIMEOUT, **kwargs)
        sockets.append(ws)
        return ws

    yield open_
    for ws in sockets:
        ws.shutdown()


def recv(ws):
    opcode, data = ws.recv_data(control_frame=True)
    return opcode, data


def seq_of(data):
    uid = protocol.PointResult.FromString(data).uid
    assert uid.startswith('sim:')
    return int(uid[4:])


def is_regular(role, opcode, data):
    """Tell a regular frame of the simulator from an injected one."""
    if opcode != BINARY:
        return False
    try:
        if role == 'point':
            return protocol.PointResult.FromString(data).uid[4:].isdigit()
        message = protocol.parse_output(data)
    except (PbDecodeError, DecodeError):
        return False
    return message.HasField('stream') and all(
        protocol.enum_name(protocol.LABEL_TYPE, o.label) != 'UNKNOWN_42'
        for o in message.stream.objects)


def read_until(ws, predicate, limit=MAX_READS):
    for _ in range(limit):
        opcode, data = recv(ws)
        if predicate(opcode, data):
            return opcode, data
    pytest.fail(f'no matching frame in {limit} frames')
    return None


def read_close(ws):
    _, data = read_until(ws, lambda opcode, _: opcode == CLOSE)
    return struct.unpack('!H', data[:2])[0], data[2:]


def drain_until_closed(ws):
    for _ in range(MAX_READS):
        try:
            ws.recv()
        except websocket.WebSocketConnectionClosedException:
            return
    pytest.fail(f'connection still open after {MAX_READS} frames')


def floats(data):
    return np.frombuffer(data, '<f4')


# --- handshake and content -------------------------------------------------------------------


def test_frames_parse_and_match_expected(make_sim, connect):
    sim = make_sim()
    ws_point = connect(sim.url('point'))
    ws_output = connect(sim.url('output'))
    assert sim.wait_for_clients(2, TIMEOUT)
    for _ in range(3):
        opcode, data = recv(ws_point)
        assert opcode == BINARY
        seq = seq_of(data)
        assert data == sim.expected_point_result(seq)
        result = protocol.PointResult.FromString(data)
        assert result.SerializeToString() == data  # canonical encoding, uid appended last
        types = [c.type for c in result.points]
        assert types == [protocol.CLOUD_GROUND, protocol.CLOUD_BACKGROUND, protocol.CLOUD_RAW,
                         protocol.CLOUD_RAW]
        assert len({c.id for c in result.points if c.type == protocol.CLOUD_RAW}) == 2
        assert sum(len(c.points) // 12 for c in result.points) == SMALL['points']
        for cloud in result.points:
            assert len(cloud.points) == 3 * len(cloud.intensities)
            xyz = floats(cloud.points).reshape(-1, 3)
            assert np.all(np.abs(xyz[:, :2]) < 41.0)
            if cloud.type == protocol.CLOUD_GROUND:
                assert np.all(np.abs(xyz[:, 2]) < 0.2)
            assert np.all((floats(cloud.intensities) >= 0) & (floats(cloud.intensities) <= 255))
    for _ in range(3):
        opcode, data = recv(ws_output)
        assert opcode == BINARY
        message = protocol.parse_output(data)
        if not message.HasField('stream'):
            continue
        stream = message.stream
        assert stream.has_objects
        assert len(stream.objects) == SMALL['objects']
        sent = protocol.timestamp_ns(stream.first_cloud_arrival_timestamp)
        assert protocol.timestamp_ns(message.timestamp) == sent
        assert sent in sim.sent_log().values()


def test_handshake_accept_and_no_deflate(make_sim):
    sim = make_sim(point_port=None)
    request = (
        'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'
        'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n')
    with socket.create_connection(('127.0.0.1', sim.output_port), timeout=TIMEOUT) as sock:
        sock.sendall(request.encode())
        response = b''
        while b'\r\n\r\n' not in response:
            response += sock.recv(4096)
        head = response.split(b'\r\n\r\n')[0].decode().lower()
        assert head.startswith('http/1.1 101')
        # The example of RFC 6455 section 1.3.
        assert 'sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=' in head
        assert 'sec-websocket-extensions' not in head
        # An unmasked client frame is a protocol error: close 1002.
        sock.sendall(b'\x89\x00')
        buf = response.split(b'\r\n\r\n', 1)[1]
        while True:
            while len(buf) < 10:
                buf += sock.recv(65536)
            assert not buf[1] & 0x80  # server frames are never masked
            length, offset = buf[1] & 0x7F, 2
            if length == 126:
                length, offset = struct.unpack('!H', buf[2:4])[0], 4
            elif length == 127:
                length, offset = struct.unpack('!Q', buf[2:10])[0], 10
            while len(buf) < offset + length:
                buf += sock.recv(65536)
            opcode, payload, buf = buf[0] & 0x0F, buf[offset:offset + length], buf[offset + length:]
            if opcode == CLOSE:
                assert struct.unpack('!H', payload[:2])[0] == 1002
                break
            assert opcode == BINARY


@pytest.mark.parametrize(('request_text', 'status'), [
    ('GET /other HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
     'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n', 404),
    ('GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
     'Sec-WebSocket-Version: 13\r\n\r\n', 400),
    ('GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
     'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n', 426),
    ('POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n', 400),
])
def test_bad_handshakes_are_rejected(make_sim, request_text, status):
    sim = make_sim(output_port=None)
    with socket.create_connection(('127.0.0.1', sim.point_port), timeout=TIMEOUT) as sock:
        sock.sendall(request_text.encode())
        response = b''
        while chunk := sock.recv(4096):
            response += chunk
    assert response.startswith(f'HTTP/1.1 {status} '.encode())
    assert sim.wait_for_stats(lambda s: s.ports['point'].handshake_failures == 1, TIMEOUT)


def test_content_is_realistic(make_sim, connect):
    sim = make_sim(point_port=None, zones_interval_s=0.04, health_interval_s=0.04,
                   event_interval_s=0.04, custom_interval_s=0.04)
    ws = connect(sim.url('output'))
    seen = set()
    for _ in range(40):
        message = protocol.parse_output(recv(ws)[1])
        now = protocol.timestamp_ns(message.timestamp)
        if message.HasField('event'):
            seen.add('event')
            assert message.event.losing
            for zone_event in message.event.zone:
                assert zone_event.id in (1, 2, 3)
        if message.HasField('custom'):
            seen.add('custom')
            assert 0.0 <= message.custom.bg_learning_progress <= 1.0
        if not message.HasField('stream'):
            continue
        stream = message.stream
        if stream.has_zones:
            seen.add('zones')
            assert [z.id for z in stream.zones] == [1, 2, 3]
            assert all(len(z.pbox.points) == 4 and z.pbox.max_z > 0 for z in stream.zones)
        if stream.HasField('health'):
            seen.add('health')
            assert protocol.enum_name(protocol.HEALTH_STATUS, stream.health.master) == 'OK'
        ids = [o.id for o in stream.objects]
        assert len(set(ids)) == len(ids) == SMALL['objects']
        for obj in stream.objects:
            assert not protocol.enum_name(protocol.LABEL_TYPE, obj.label).startswith('UNKNOWN')
            assert 0.5 < obj.confidence < 1.0
            box = obj.bbox
            assert box.position.z == 0.0  # bottom of the box on the ground
            assert min(box.size.x, box.size.y, box.size.z) > 0
            assert abs(box.position.x) <= 40
            assert abs(box.position.y) <= 40
            assert protocol.timestamp_ns(obj.last_observed_timestamp) == now
            stamps = [protocol.timestamp_ns(s.timestamp) for s in obj.history.states]
            assert len(stamps) == 10
            assert stamps == sorted(stamps)
            assert stamps[-1] < now
            assert len(obj.prediction.positions) == 10
            assert set(obj.zone_ids) <= {1, 2, 3}
            xyz = floats(obj.points).reshape(-1, 3)
            assert len(xyz) == len(floats(obj.intensities)) == SMALL['object_points']
            assert np.all(xyz[:, 2] >= -1e-4)
            assert np.all(xyz[:, 2] <= box.size.z + 1e-4)
            reach = np.hypot(box.size.x, box.size.y) / 2 + 1e-3
            assert np.all(np.hypot(xyz[:, 0] - box.position.x, xyz[:, 1] - box.position.y)
                          <= reach)
    assert seen == {'event', 'custom', 'zones', 'health'}


def test_same_seed_same_content(make_sim, connect):
    first = Simulator(SimulatorConfig(**{**SMALL, 'seed': 7}))
    second = Simulator(SimulatorConfig(**{**SMALL, 'seed': 7}))
    other = Simulator(SimulatorConfig(**{**SMALL, 'seed': 8}))
    for seq in range(6):
        assert first.expected_point_result(seq) == second.expected_point_result(seq)
        assert first.expected_point_result(seq) != other.expected_point_result(seq)
    period = SMALL['frames_precomputed']
    assert first.expected_point_result(1)[:-10] == first.expected_point_result(1 + period)[:-10]

    def objects_by_slot(sim):
        ws = connect(sim.url('output'))
        slots = {}
        while len(slots) < period:
            message = protocol.parse_output(recv(ws)[1])
            if not message.HasField('stream'):
                continue
            sent = protocol.timestamp_ns(message.stream.first_cloud_arrival_timestamp)
            seq = {t: s for s, t in sim.sent_log().items()}[sent]
            for obj in message.stream.objects:
                obj.ClearField('last_observed_timestamp')
                for state in obj.history.states:
                    state.ClearField('timestamp')
            slots[seq % period] = [o.SerializeToString() for o in message.stream.objects]
        return slots

    assert objects_by_slot(make_sim(seed=7)) == objects_by_slot(make_sim(seed=7))


def test_rate_is_steady_and_lossless(make_sim, connect):
    sim = make_sim(output_port=None, rate_hz=50.0)
    ws = connect(sim.url('point'))
    seqs = [seq_of(ws.recv())]
    started = time.monotonic()
    seqs += [seq_of(ws.recv()) for _ in range(25)]
    elapsed = time.monotonic() - started
    assert seqs == list(range(seqs[0], seqs[0] + 26))
    assert 0.35 < elapsed < 0.75  # 25 periods of 20 ms
    log = sim.sent_log()
    span_s = (log[seqs[-1]] - log[seqs[0]]) / 1e9
    assert 0.4 < span_s < 0.75


def test_max_frames_duration_and_start_after_clients(make_sim, connect):
    sim = make_sim(max_frames=5, rate_hz=100.0)
    assert sim.wait(TIMEOUT)
    assert sim.stats().frames == 5
    sim = make_sim(duration_s=0.1, rate_hz=50.0)
    assert sim.wait(TIMEOUT)
    assert sim.stats().frames == 5
    sim = make_sim(start_after_clients=1, output_port=None)
    assert not sim.wait_for_stats(lambda s: s.frames > 0, 0.1)
    ws = connect(sim.url('point'))
    assert protocol.PointResult.FromString(ws.recv()).uid == 'sim:0'


# --- websocket control frames ----------------------------------------------------------------


def test_ping_pong_and_ignore_pings(make_sim, connect):
    sim = make_sim(output_port=None)
    ws = connect(sim.url('point'))
    ws.ping(b'hello')
    assert read_until(ws, lambda opcode, _: opcode == PONG)[1] == b'hello'
    sim.ignore_pings()
    ws.ping(b'again')
    for _ in range(10):
        assert recv(ws)[0] == BINARY
    stats = sim.stats().ports['point']
    assert (stats.pings, stats.pongs) == (2, 1)
    sim.ignore_pings(False)
    ws.ping(b'back')
    assert read_until(ws, lambda opcode, _: opcode == PONG)[1] == b'back'


def test_client_close_is_echoed(make_sim, connect):
    sim = make_sim(output_port=None)
    ws = connect(sim.url('point'))
    assert sim.wait_for_clients(1, TIMEOUT)
    ws.send_close(3001, b'bye')
    assert read_close(ws)[0] == 3001
    assert sim.wait_for_clients(0, TIMEOUT, 'point', at_most=True)


# --- overflow --------------------------------------------------------------------------------


def slow_client(connect, url):
    """Connect with a tiny receive buffer and do not read, so the server backlog grows."""
    return connect(url, sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])


def is_overflow_event(opcode, data):
    if opcode != BINARY:
        return False
    message = protocol.OutputMessage.FromString(data)
    return message.event.health.master == protocol.HEALTH_OUTPUT_BUFFER_OVERFLOW


def test_overflow_both_sends_event_then_closes_1011(make_sim, connect):
    sim = make_sim(point_port=None, rate_hz=100.0, max_queue_frames=2, send_buffer_bytes=4096,
                   objects=20, object_points=200)
    ws = slow_client(connect, sim.url('output'))
    assert sim.wait_for_stats(lambda s: s.ports['output'].overflows == 1, TIMEOUT)
    read_until(ws, is_overflow_event)
    assert read_close(ws) == (1011, b'Writing buffer is full')


def test_overflow_close_on_point_port(make_sim, connect):
    sim = make_sim(output_port=None, rate_hz=100.0, max_queue_frames=2, send_buffer_bytes=4096,
                   overflow_action='close')
    ws = slow_client(connect, sim.url('point'))
    assert sim.wait_for_stats(lambda s: s.ports['point'].overflows == 1, TIMEOUT)
    assert read_close(ws) == (1011, b'Writing buffer is full')


def test_overflow_event_keeps_connection(make_sim, connect):
    sim = make_sim(point_port=None, rate_hz=100.0, max_queue_frames=2, send_buffer_bytes=4096,
                   objects=20, object_points=200, overflow_action='event')
    ws = slow_client(connect, sim.url('output'))
    assert sim.wait_for_stats(lambda s: s.ports['output'].overflows >= 1, TIMEOUT)
    read_until(ws, is_overflow_event)
    read_until(ws, lambda opcode, data: is_regular('output', opcode, data))


def test_overflow_drop_skips_frames(make_sim, connect):
    sim = make_sim(output_port=None, rate_hz=100.0, max_queue_frames=2, send_buffer_bytes=4096,
                   overflow_action='drop')
    ws = slow_client(connect, sim.url('point'))
    assert sim.wait_for_stats(lambda s: s.ports['point'].frames_dropped >= 3, TIMEOUT)
    seqs = [seq_of(ws.recv()) for _ in range(15)]
    assert max(b - a for a, b in itertools.pairwise(seqs)) > 1
    assert sim.stats().ports['point'].clients == 1


# --- faults ----------------------------------------------------------------------------------


def test_drop_connections_and_reconnect(make_sim, connect):
    sim = make_sim()
    ws_point = connect(sim.url('point'))
    ws_output = connect(sim.url('output'))
    ws_point.recv()
    assert sim.drop_connections('point') == 1
    drain_until_closed(ws_point)
    assert is_regular('output', *recv(ws_output))
    assert sim.drop_connections() == 1
    drain_until_closed(ws_output)
    ws_point = connect(sim.url('point'))
    assert is_regular('point', *recv(ws_point))
    assert sim.stats().ports['point'].accepted == 2


def test_take_down_bring_up_restart(make_sim, connect):
    sim = make_sim()
    port = sim.point_port
    ws_point = connect(sim.url('point'))
    ws_output = connect(sim.url('output'))
    ws_point.recv()
    sim.take_down('point')
    assert not sim.stats().ports['point'].listening
    drain_until_closed(ws_point)
    with pytest.raises(ConnectionRefusedError):
        websocket.create_connection(sim.url('point'), timeout=TIMEOUT)
    assert is_regular('output', *recv(ws_output))  # the other port is unaffected
    sim.bring_up('point')
    assert sim.point_port == port
    assert is_regular('point', *recv(connect(sim.url('point'))))
    sim.restart(protocol.OUTPUT_PORT, down_s=0.05)
    drain_until_closed(ws_output)
    assert is_regular('output', *recv(connect(sim.url('output'))))


def test_reject_accepts_then_closes_normally_before_any_frame(make_sim, connect):
    sim = make_sim(rate_hz=200.0)
    live = connect(sim.url('point'))
    assert is_regular('point', *recv(live))
    sim.reject('point')
    for _ in range(3):  # the handshake succeeds, a normal close comes first
        assert recv(connect(sim.url('point')))[0] == CLOSE
    assert read_close(connect(sim.url('point'))) == (1000, b'SENSR simulator rejects clients')
    assert is_regular('point', *recv(live))  # connected clients are left alone
    assert is_regular('output', *recv(connect(sim.url('output'))))  # other port untouched
    sim.reject('point', code=None)
    assert is_regular('point', *recv(connect(sim.url('point'))))
    stats = sim.stats().ports
    assert (stats['point'].accepted, stats['point'].rejected) == (6, 4)
    assert stats['output'].rejected == 0


def test_stall_keeps_connection_and_skips_frames(make_sim, connect):
    sim = make_sim(output_port=None)
    ws = connect(sim.url('point'))
    previous = seq_of(ws.recv())
    sim.stall('point', None)
    assert sim.wait_for_stats(lambda s: s.ports['point'].frames_dropped >= 5, TIMEOUT)
    sim.stall('point', 0)
    # Frames sent before the stall may still be in the socket buffers: read up to the gap.
    for _ in range(MAX_READS):
        seq = seq_of(ws.recv())
        if seq - previous >= 5:
            break
        previous = seq
    else:
        pytest.fail('no gap of stalled frames')
    sim.stall('point', 0.1)
    assert sim.wait_for_stats(lambda s: s.ports['point'].frames_dropped >= 7, TIMEOUT)
    assert is_regular('point', *recv(ws))


def injected_predicate(sim, role, kind):
    """Return a function telling the injected frame of a kind from regular ones."""

    def parses(data):
        try:
            if role == 'point':
                protocol.PointResult.FromString(data)
            else:
                protocol.OutputMessage.FromString(data)
        except PbDecodeError:
            return False
        return True

    def clouds_or_objects(data):
        if role == 'point':
            result = protocol.PointResult.FromString(data)
            return result.uid, [(c.points, c.intensities) for c in result.points]
        objects = protocol.parse_output(data).stream.objects
        return 'sim:inject:' + kind, [(o.points, o.intensities) for o in objects
                                      if o.id > SMALL['objects']]

    def check(opcode, data):
        if kind == 'text':
            return opcode == TEXT
        if opcode != BINARY:
            return False
        if kind == 'empty':
            return data == b''
        if kind in ('random_bytes', 'truncated'):
            if parses(data):
                return False
            if kind == 'truncated' and role == 'point':
                last = max(sim.sent_log())
                assert any(sim.expected_point_result(s).startswith(data)
                           for s in range(last - 20, last + 1))
            return len(data) > 0
        if kind == 'wrong_type':
            try:
                if role == 'output':
                    protocol.parse_output(data)
                    return False
                return protocol.OutputMessage.FromString(data).HasField('stream')
            except DecodeError as exc:
                return exc.kind == 'wrong_message'
            except PbDecodeError:
                return False
        if kind == 'unknown_fields':
            if role == 'point':
                result = protocol.PointResult.FromString(data)
                unknown = wire.count_unknown_fields(data, {1: wire.LENGTH_DELIMITED,
                                                           201: wire.LENGTH_DELIMITED})
                return result.uid == 'sim:inject:unknown_fields' and unknown == 2 and any(
                    c.type == 7 for c in result.points)
            return any(o.label == 42 and o.tracking_status == 9
                       for o in protocol.parse_output(data).stream.objects)
        uid, pairs = clouds_or_objects(data)
        if uid != f'sim:inject:{kind}' or not pairs:
            return False
        points, intensities = pairs[0]
        if kind == 'mismatch':
            return len(points) // 12 != len(intensities) // 4 and len(points) % 12 == 0
        if kind == 'not_multiple':
            return len(points) % 12 != 0
        return len(data) >= 3_000_000  # oversized

    return check


@pytest.mark.parametrize('role', ['point', 'output'])
@pytest.mark.parametrize('kind', [k for k in INJECT_KINDS if k != 'drop_midframe'])
def test_inject_between_regular_frames(make_sim, connect, role, kind):
    sim = make_sim()
    ws = connect(sim.url(role))
    read_until(ws, lambda opcode, data: is_regular(role, opcode, data))
    assert sim.inject(role, kind, count=2, size=3_000_000) == 2
    check = injected_predicate(sim, role, kind)
    read_until(ws, check)
    read_until(ws, check)
    read_until(ws, lambda opcode, data: is_regular(role, opcode, data), limit=2)
    assert sim.stats().ports[role].injected == 2


def test_inject_oversized_80_mb(make_sim, connect):
    sim = make_sim(output_port=None)
    ws = connect(sim.url('point'))
    ws.recv()
    sim.inject('point', 'oversized')
    _, data = read_until(ws, lambda opcode, data: not is_regular('point', opcode, data))
    assert len(data) > 80_000_000
    result = protocol.PointResult.FromString(data)
    assert result.uid == 'sim:inject:oversized'
    assert len(result.points[0].points) == 3 * len(result.points[0].intensities)


@pytest.mark.parametrize('role', ['point', 'output'])
def test_inject_drop_midframe(make_sim, connect, role):
    sim = make_sim()
    ws = connect(sim.url(role))
    ws.recv()
    sim.inject(role, 'drop_midframe')
    drain_until_closed(ws)
    assert sim.wait_for_clients(0, TIMEOUT, role, at_most=True)


def test_bad_arguments(make_sim):
    sim = make_sim(output_port=None)
    with pytest.raises(ConfigError, match='unknown injection kind'):
        sim.inject('point', 'nonsense')
    with pytest.raises(ConfigError, match='not served'):
        sim.stall('output', 1.0)
    with pytest.raises(ConfigError, match='not served'):
        sim.drop_connections(1)


# --- configuration and lifecycle -------------------------------------------------------------


@pytest.mark.parametrize('host', ['0.0.0.0', '::', '192.168.1.10', '10.0.0.1', 'example.com'])
def test_non_loopback_hosts_are_refused(host):
    with pytest.raises(ConfigError, match='loopback'):
        SimulatorConfig(host=host)


@pytest.mark.parametrize('host', ['127.0.0.1', '127.0.0.2', '::1', 'localhost'])
def test_loopback_hosts_are_accepted(host):
    assert SimulatorConfig(host=host).host == host


def test_localhost_serves(make_sim, connect):
    sim = make_sim(host='localhost', output_port=None)
    assert is_regular('point', *recv(connect(sim.url('point'))))


@pytest.mark.parametrize('overrides', [
    {'rate_hz': 0}, {'points': -1}, {'frames_precomputed': 0}, {'output_port': 70000},
    {'output_port': None, 'point_port': None}, {'overflow_action': 'explode'},
    {'max_queue_frames': 0}, {'tls_key': 'key.pem'},
])
def test_invalid_config(overrides):
    with pytest.raises(ConfigError):
        SimulatorConfig(**overrides)


def test_lifecycle(make_sim):
    sim = Simulator(SimulatorConfig(**SMALL))
    sim.stop()
    with pytest.raises(SimulatorError):
        sim.start()
    with Simulator(SimulatorConfig(**SMALL)) as running:
        with pytest.raises(SimulatorError):
            running.start()
        taken = running.output_port
        clash = Simulator(SimulatorConfig(**{**SMALL, 'output_port': taken}))
        with pytest.raises(SimulatorError, match='cannot listen'):
            clash.start()
    running.stop()
    assert running.wait(0)


# --- TLS -------------------------------------------------------------------------------------


def test_tls(make_sim, connect, tmp_path):
    ca, other_ca, cert, key = make_certificates(tmp_path)
    sim = make_sim(tls_cert=str(cert), tls_key=str(key))
    assert sim.url('point').startswith('wss://127.0.0.1:')
    ws_point = connect(sim.url('point'), sslopt={'ca_certs': str(ca)})
    _, data = read_until(ws_point, lambda opcode, data: is_regular('point', opcode, data))
    assert data == sim.expected_point_result(seq_of(data))
    ws_output = connect(sim.url('output'), sslopt={'ca_certs': str(ca)})
    assert is_regular('output', *recv(ws_output))
    ws_output.ping(b'tls')
    assert read_until(ws_output, lambda opcode, _: opcode == PONG)[1] == b'tls'
    with pytest.raises(ssl.SSLError):
        websocket.create_connection(sim.url('point'), timeout=TIMEOUT,
                                    sslopt={'ca_certs': str(other_ca)})
    assert sim.wait_for_stats(lambda s: s.ports['point'].handshake_failures == 1, TIMEOUT)
    ws_point.send_close(1000, b'')
    assert read_close(ws_point)[0] == 1000


def test_tls_bad_certificate_path(tmp_path):
    with pytest.raises(ConfigError, match='cannot load TLS certificate'):
        Simulator(SimulatorConfig(**SMALL, tls_cert=str(tmp_path / 'missing.pem')))


# --- command line ----------------------------------------------------------------------------


CLI_ARGS = ('--output-port', '0', '--point-port', '0', '--points', '2000', '--objects', '3',
            '--rate', '50')
CLI_ENV = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [
    str(REPO), os.environ.get('PYTHONPATH')]))}


def run_cli(*args):
    return subprocess.Popen([sys.executable, '-m', 'sensr_bridge.sim', *CLI_ARGS, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=CLI_ENV)


def ready_ports(proc):
    line = proc.stdout.readline()
    assert line.startswith('ready '), line + proc.stderr.read()
    fields = dict(item.split('=') for item in line.split()[1:])
    return fields['output_port'], fields['point_port']


def test_cli_runs_to_max_frames_and_flushes():
    proc = run_cli('--max-frames', '20', '--wait-clients', '1', '--no-output')
    try:
        output_port, point_port = ready_ports(proc)
        assert output_port == 'None'
        ws = websocket.create_connection(f'ws://127.0.0.1:{point_port}/', timeout=TIMEOUT)
        seqs = []
        while (frame := recv(ws))[0] == BINARY:
            seqs.append(seq_of(frame[1]))
        assert struct.unpack('!H', frame[1][:2])[0] == 1001
        assert seqs == list(range(20))
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.startswith('done frames=20 ')


def test_cli_sigterm_and_faults():
    proc = run_cli('--fault', '0:inject:point:text', '--fault', '0:ignore-pings', '--flush',
                   '0.2')
    try:
        _, point_port = ready_ports(proc)
        ws = websocket.create_connection(f'ws://127.0.0.1:{point_port}/', timeout=TIMEOUT)
        ws.recv()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
        ws.shutdown()
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.startswith('done frames=')


def test_cli_rejects_bad_fault():
    proc = run_cli('--fault', 'soon:explode')
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 2
    assert 'invalid fault' in err


# A parent that starts the simulator as its child, as ``record --simulate`` does, says
# which process the child is and waits to be killed.
_PARENT = ('import os, subprocess, sys, time\n'
           "child = subprocess.Popen([sys.executable, '-m', 'sensr_bridge.sim',\n"
           "                          '--exit-with-parent', str(os.getpid()), *sys.argv[1:]])\n"
           "print(f'child {child.pid}', flush=True)\n"
           'time.sleep(120)\n')


def test_cli_exit_with_parent_ends_when_the_parent_is_sigkilled():
    parent = subprocess.Popen([sys.executable, '-c', _PARENT, *CLI_ARGS],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=CLI_ENV)
    child = None
    try:
        lines = [parent.stdout.readline() for _ in range(2)]  # the child's pid, its ready
        assert [line.split()[:1] for line in sorted(lines)] == [['child'], ['ready']], (
            lines, parent.stderr.read() if parent.poll() is not None else '')
        child = psutil.Process(int(sorted(lines)[0].split()[1]))
        parent.kill()
        parent.wait(TIMEOUT)

        def child_gone():
            try:
                return child.status() == psutil.STATUS_ZOMBIE  # not reaped by init yet
            except psutil.NoSuchProcess:
                return True

        assert wait_until(child_gone, TIMEOUT), 'the simulator outlived its parent'
    finally:
        parent.kill()
        if child is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def test_cli_exit_with_parent_exits_at_once_when_the_parent_is_gone():
    proc = run_cli('--exit-with-parent', '1')  # its parent is this test, not process 1
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert (proc.returncode, out, err) == (0, '', '')



def test_send_zone_event_between_frames(make_sim, connect):
    sim = make_sim(event_interval_s=None)
    ws = connect(sim.url('output'))
    read_until(ws, lambda opcode, data: is_regular('output', opcode, data))
    assert sim.send_zone_event(3, 'LOITERING', object_id=7) == 1

    def is_zone_event(opcode, data):
        return opcode == BINARY and bool(protocol.parse_output(data).event.zone)

    _, data = read_until(ws, is_zone_event)
    message = protocol.parse_output(data)
    [event] = message.event.zone
    assert (event.id, protocol.enum_name(protocol.ZONE_EVENT_TYPE, event.type),
            event.object.id) == (3, 'LOITERING', 7)
    assert event.timestamp == message.timestamp
    assert not message.HasField('stream')
    with pytest.raises(ConfigError, match='unknown zone event type'):
        sim.send_zone_event(3, 'TELEPORT')
    no_output = make_sim(output_port=None)
    with pytest.raises(ConfigError, match='not served'):
        no_output.send_zone_event(3)
