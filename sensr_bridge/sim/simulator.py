# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""A SENSR simulator: the two websocket streams of a SENSR master, on loopback.

The simulator serves ``sensr_proto.OutputMessage`` on the output port (5050) and
``sensr_proto.PointResult`` on the point port (5051) the way SENSR does: one serialized
message per binary websocket message, request path ``/``, nothing expected from the
client. Every connected client gets every frame at a steady rate. The content is a
synthetic site (ground, walls, buildings, moving objects, zones) that is deterministic
for a seed, and faults can be injected while it runs.

Frame ``seq`` carries precomputed frame ``seq % frames_precomputed``. Its PointResult
is the precomputed serialization followed by a separately encoded ``uid`` field
(``sim:<seq>``): protobuf merges concatenated messages, so nothing is re-serialized or
copied per send and :meth:`Simulator.expected_point_result` rebuilds any frame bit for
bit. The frame's OutputMessage is built per frame; its ``timestamp`` and
``stream.first_cloud_arrival_timestamp`` are the frame's send time, recorded in
:meth:`Simulator.sent_log`.

The websocket server is a small RFC 6455 server on plain sockets (no permessage-deflate,
no subprotocol): one reader and one sender thread per client, frames written with
``sendmsg`` straight from the precomputed buffers.

Example::

    with Simulator(SimulatorConfig(output_port=0, point_port=0)) as sim:
        ws = websocket.create_connection(sim.url('point'))
        result = protocol.PointResult.FromString(ws.recv())

Command line (``simulator`` console script or ``python -m sensr_bridge.sim``)::

    simulator --output-port 0 --point-port 0 --rate 30 --duration 60 --fault 10:drop
"""

from __future__ import annotations

import argparse
import base64
import binascii
from collections import deque
import contextlib
from dataclasses import dataclass
import hashlib
import ipaddress
import math
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from sensr_bridge.errors import ConfigError, SimulatorError
from sensr_bridge.process import shutdown
from sensr_bridge.sensr import protocol, wire

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

    from google.protobuf.message import Message

OUTPUT = 'output'
"""Role name of the output port (OutputMessage, 5050)."""
POINT = 'point'
"""Role name of the point port (PointResult, 5051)."""

OVERFLOW_ACTIONS = ('both', 'event', 'close', 'drop')
"""What a client's overflowing send backlog triggers; see :class:`SimulatorConfig`."""

INJECT_KINDS = (
    'random_bytes', 'truncated', 'wrong_type', 'text', 'empty', 'mismatch', 'not_multiple',
    'oversized', 'unknown_fields', 'drop_midframe',
)
"""Bad frames :meth:`Simulator.inject` can send."""

OVERFLOW_CLOSE_CODE = 1011
OVERFLOW_CLOSE_REASON = 'Writing buffer is full'

_OP_CONT = 0x0
_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8
_OP_PING = 0x9
_OP_PONG = 0xA
_CLIENT_OPCODES = frozenset((_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG))
_WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

_HANDSHAKE_TIMEOUT_S = 5.0
_CLOSE_TIMEOUT_S = 2.0
_JOIN_TIMEOUT_S = 5.0
_ACCEPT_RETRY_S = 0.1
_MAX_REQUEST_BYTES = 16384
# SENSR never reads what clients send; cap it so a client cannot make us buffer much.
_MAX_CLIENT_PAYLOAD = 1 << 20

# Kinds of outgoing frames, i.e. what the sender does after writing one.
_MESSAGE = 0
_PONG = 1
_CLOSE = 2
_CUT = 3

_SITE_HALF_M = 40.0
_WALL_HEIGHT_M = 4.0
_BUILDINGS = 6
_HISTORY_STATES = 10
_HISTORY_STEP_S = 0.1
_PREDICTION_STATES = 10
_PREDICTION_STEP_S = 0.3
_REACHABLE_T_S = 1.0
_ALGO_NODE = 'algo_0'
_LIDARS = ('lidar_0', 'lidar_1')
_INJECT_POINTS = 1000
_INJECT_OBJECT_POINTS = 100
_UNKNOWN_FIELD = 999
_UNKNOWN_BYTES_FIELD = 1000
_FUTURE_ENUM = 42
_FUTURE_CLOUD_TYPE = 7
_FUTURE_TRACKING_STATUS = 9

_LABEL_CAR = protocol.LABEL_TYPE.values_by_name['LABEL_CAR'].number
_LABEL_PEDESTRIAN = protocol.LABEL_TYPE.values_by_name['LABEL_PEDESTRIAN'].number
_LABEL_CYCLIST = protocol.LABEL_TYPE.values_by_name['LABEL_CYCLIST'].number
_LABEL_MISC = protocol.LABEL_TYPE.values_by_name['LABEL_MISC'].number
_LABEL_CYCLE = (
    _LABEL_CAR, _LABEL_PEDESTRIAN, _LABEL_CAR, _LABEL_CYCLIST, _LABEL_PEDESTRIAN, _LABEL_MISC,
)
# (length, width, height) in metres and nominal speed in m/s per label.
_LABEL_SIZE = {
    _LABEL_CAR: (4.5, 1.9, 1.6),
    _LABEL_PEDESTRIAN: (0.6, 0.6, 1.75),
    _LABEL_CYCLIST: (1.8, 0.7, 1.7),
    _LABEL_MISC: (1.0, 1.0, 1.0),
}
_LABEL_SPEED = {_LABEL_CAR: 8.0, _LABEL_PEDESTRIAN: 1.4, _LABEL_CYCLIST: 4.5, _LABEL_MISC: 0.0}
_TRACKING = protocol.TRACKING_STATUS.values_by_name['TRACKING'].number
_VALIDATING = protocol.TRACKING_STATUS.values_by_name['VALIDATING'].number
_ZONE_EVENT_TYPES = tuple(
    v.number for v in protocol.ZONE_EVENT_TYPE.values if v.name != 'NONE')
_ZONE_EVENT = protocol.ZONE_TYPE.values_by_name['ZONE_TYPE_EVENT'].number
_ZONE_EXCLUSION = protocol.ZONE_TYPE.values_by_name['ZONE_TYPE_EXCLUSION'].number
# (id, name, type, x_min, x_max, y_min, y_max): axis-aligned so membership is cheap.
_ZONES = (
    (1, 'entrance', _ZONE_EVENT, -20.0, -5.0, -10.0, 10.0),
    (2, 'restricted', _ZONE_EXCLUSION, 10.0, 25.0, 5.0, 20.0),
    (3, 'loading_bay', _ZONE_EVENT, 5.0, 20.0, -25.0, -10.0),
)
_ZONE_MAX_Z_M = 3.0


@dataclass
class SimulatorConfig:
    """Settings of a :class:`Simulator`.

    Attributes:
        host: Loopback address to bind (``127.0.0.0/8``, ``::1`` or ``localhost``).
        output_port: Output (OutputMessage) port; 0 picks a free port; None: not served.
        point_port: Point (PointResult) port; 0 picks a free port; None: not served.
        rate_hz: Frames per second; each frame is one PointResult and one OutputMessage.
        points: Points per PointResult, split 20 % GROUND, 30 % BACKGROUND and 50 % RAW
            (two RAW clouds, ids ``lidar_0`` and ``lidar_1``).
        objects: Tracked objects per frame.
        object_points: Points (and intensities) per object.
        seed: Seed of all generated content.
        frames_precomputed: Distinct frames, precomputed at construction and cycled.
        duration_s: End the run after this many seconds of frames (None: run on).
        max_frames: End the run after this many frames (None: run on).
        start_after_clients: Start the frame clock only once this many clients (over
            both ports) are connected; 0 starts it at :meth:`Simulator.start`.
        zones_interval_s: Period of ``stream.zones`` (None: never).
        health_interval_s: Period of ``stream.health`` (None: never).
        event_interval_s: Period of a separate OutputMessage with zone and losing events.
        custom_interval_s: Period of a separate OutputMessage with ``custom``.
        tls_cert: PEM certificate chain; serves ``wss://`` when set.
        tls_key: PEM private key (None: the key is in ``tls_cert``).
        max_queue_frames: Per-client backlog of frames waiting to be sent beyond which
            the client overflows (None: unbounded).
        overflow_action: On overflow, like SENSR: ``event`` drops the backlog and sends an
            OutputMessage with ``event.health.master=OUTPUT_BUFFER_OVERFLOW`` (output port
            only); ``close`` drops the backlog and closes with 1011 "Writing buffer is
            full"; ``both`` does the event, then the close; ``drop`` silently drops the
            oldest frames.
        send_buffer_bytes: SO_SNDBUF of client sockets (None: the system's default).
        sent_log_size: Frames whose send time is kept in :meth:`Simulator.sent_log`.

    """

    host: str = '127.0.0.1'
    output_port: int | None = protocol.OUTPUT_PORT
    point_port: int | None = protocol.POINT_PORT
    rate_hz: float = 10.0
    points: int = 921_512
    objects: int = 20
    object_points: int = 200
    seed: int = 0
    frames_precomputed: int = 8
    duration_s: float | None = None
    max_frames: int | None = None
    start_after_clients: int = 0
    zones_interval_s: float | None = 10.0
    health_interval_s: float | None = 1.0
    event_interval_s: float | None = 3.0
    custom_interval_s: float | None = 5.0
    tls_cert: str | None = None
    tls_key: str | None = None
    max_queue_frames: int | None = 10
    overflow_action: str = 'both'
    send_buffer_bytes: int | None = None
    sent_log_size: int = 200_000

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every setting.

        Raises:
            ConfigError: On the first invalid setting, including a non-loopback host.

        """
        _check_loopback(self.host)
        for name in ('output_port', 'point_port'):
            port = getattr(self, name)
            if port is not None and not 0 <= port <= 65535:
                msg = f'{name} must be 0..65535 or None, not {port}'
                raise ConfigError(msg)
        if self.output_port is None and self.point_port is None:
            msg = 'at least one of output_port and point_port must be served'
            raise ConfigError(msg)
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            msg = f'rate_hz must be a positive number, not {self.rate_hz}'
            raise ConfigError(msg)
        for name in ('points', 'objects', 'object_points', 'seed', 'start_after_clients'):
            if getattr(self, name) < 0:
                msg = f'{name} must be >= 0, not {getattr(self, name)}'
                raise ConfigError(msg)
        for name in ('frames_precomputed', 'sent_log_size', 'max_queue_frames',
                     'send_buffer_bytes', 'max_frames'):
            value = getattr(self, name)
            if value is not None and value < 1:
                msg = f'{name} must be >= 1, not {value}'
                raise ConfigError(msg)
        for name in ('duration_s', 'zones_interval_s', 'health_interval_s', 'event_interval_s',
                     'custom_interval_s'):
            value = getattr(self, name)
            if value is not None and not value > 0:
                msg = f'{name} must be > 0 or None, not {value}'
                raise ConfigError(msg)
        if self.overflow_action not in OVERFLOW_ACTIONS:
            msg = f'overflow_action must be one of {OVERFLOW_ACTIONS}, not {self.overflow_action!r}'
            raise ConfigError(msg)
        if self.tls_key is not None and self.tls_cert is None:
            msg = 'tls_key needs tls_cert'
            raise ConfigError(msg)


@dataclass(frozen=True)
class PortStats:
    """Counters of one port since the simulator was created.

    Attributes:
        port: The port listened on (None before :meth:`Simulator.start`).
        listening: Whether the port accepts connections now.
        clients: Clients connected now (websocket handshake done).
        accepted: Clients that completed the handshake.
        rejected: Of those, clients closed at once, without data (:meth:`Simulator.reject`).
        handshake_failures: Connections that failed the TLS or websocket handshake.
        frames_sent: Regular frames written completely (all clients).
        messages_sent: Websocket data messages written completely, including events,
            custom messages, overflow events and injected frames.
        bytes_sent: Bytes written, websocket headers included.
        frames_dropped: Frame deliveries skipped because of a stall or an overflow.
        overflows: Overflow events (a client's backlog exceeded ``max_queue_frames``).
        injected: Injected frames queued (all clients).
        pings: Pings received.
        pongs: Pongs sent.

    """

    port: int | None
    listening: bool
    clients: int
    accepted: int
    rejected: int
    handshake_failures: int
    frames_sent: int
    messages_sent: int
    bytes_sent: int
    frames_dropped: int
    overflows: int
    injected: int
    pings: int
    pongs: int


_COUNTERS = (
    'accepted', 'rejected', 'handshake_failures', 'frames_sent', 'messages_sent', 'bytes_sent',
    'frames_dropped', 'overflows', 'injected', 'pings', 'pongs',
)


@dataclass(frozen=True)
class SimulatorStats:
    """A snapshot of the simulator's counters.

    Attributes:
        frames: Frames produced by the clock (whether or not anyone was connected).
        missed_ticks: Clock ticks skipped because the clock fell more than a period behind.
        ports: Counters per served port role (``'output'``, ``'point'``).

    """

    frames: int
    missed_ticks: int
    ports: dict[str, PortStats]


def _check_loopback(host: str) -> None:
    if host == 'localhost':
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        msg = (f'host {host!r} is not an IP address or "localhost"; '
               'the SENSR simulator binds loopback addresses only')
        raise ConfigError(msg) from exc
    if not address.is_loopback:
        msg = (f'refusing to bind {host}: the SENSR simulator serves loopback addresses only '
               '(127.0.0.0/8, ::1, localhost)')
        raise ConfigError(msg)


# --- protobuf and websocket encoding --------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3 | wire.VARINT) + _varint(value)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire.LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _uid_field(uid: str) -> bytes:
    """Encode ``PointResult.uid`` (field 201) exactly as protobuf serializes it."""
    return _bytes_field(201, uid.encode())


def _ws_header(opcode: int, length: int) -> bytes:
    """Return the header of a final, unmasked server frame."""
    first = 0x80 | opcode
    if length < 126:
        return struct.pack('!BB', first, length)
    if length < 65536:
        return struct.pack('!BBH', first, 126, length)
    return struct.pack('!BBQ', first, 127, length)


def _accept_value(key: str) -> str:
    digest = hashlib.sha1((key + _WS_GUID).encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


def _close_payload(code: int | None, reason: str = '') -> bytes:
    if code is None:
        return b''
    return struct.pack('!H', code) + reason.encode()[:123]


def _valid_close_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1011 or 3000 <= code <= 4999


def _close_reply_code(payload: bytes) -> int | None:
    """Return the status code to echo for a client's close frame (RFC 6455 5.5.1)."""
    if not payload:
        return None
    if len(payload) == 1:
        return 1002
    (code,) = struct.unpack('!H', payload[:2])
    if not _valid_close_code(code):
        return 1002
    try:
        payload[2:].decode()
    except UnicodeDecodeError:
        return 1007
    return code


class _HandshakeError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class _ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


_HTTP_REASONS = {400: 'Bad Request', 404: 'Not Found', 426: 'Upgrade Required'}


def _handshake_key(request: bytes) -> str:
    """Validate an opening handshake and return its Sec-WebSocket-Key.

    Raises:
        _HandshakeError: With the HTTP status to answer.

    """
    lines = request.decode('latin-1').split('\r\n')
    parts = lines[0].split(' ')
    if len(parts) != 3 or parts[0] != 'GET' or parts[2] != 'HTTP/1.1':
        msg = 'not an HTTP/1.1 GET request'
        raise _HandshakeError(400, msg)
    path = parts[1].split('?', 1)[0]
    if path != '/':
        msg = f'SENSR serves path / only, not {path}'
        raise _HandshakeError(404, msg)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(':')
        if not sep:
            msg = f'malformed header line {line!r}'
            raise _HandshakeError(400, msg)
        key = name.strip().lower()
        headers[key] = f'{headers[key]}, {value.strip()}' if key in headers else value.strip()
    connection = {token.strip().lower() for token in headers.get('connection', '').split(',')}
    if headers.get('upgrade', '').lower() != 'websocket' or 'upgrade' not in connection:
        msg = 'not a websocket upgrade request'
        raise _HandshakeError(400, msg)
    if headers.get('sec-websocket-version') != '13':
        msg = 'only websocket version 13 is supported'
        raise _HandshakeError(426, msg)
    key = headers.get('sec-websocket-key', '')
    try:
        nonce = base64.b64decode(key, validate=True)
    except binascii.Error:
        nonce = b''
    if len(nonce) != 16:
        msg = 'invalid Sec-WebSocket-Key'
        raise _HandshakeError(400, msg)
    return key


def _http_error(status: int, text: str) -> bytes:
    body = f'{text}\n'.encode()
    extra = 'Sec-WebSocket-Version: 13\r\n' if status == 426 else ''
    return (f'HTTP/1.1 {status} {_HTTP_REASONS[status]}\r\nContent-Type: text/plain\r\n'
            f'Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n').encode() + body


def _sendmsg_all(sock: socket.socket, buffers: Sequence[bytes | memoryview]) -> None:
    """Write buffers back to back with scatter writes, without joining them."""
    views = [memoryview(b).cast('B') for b in buffers if len(b)]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if sent:
            views[0] = views[0][sent:]


# --- synthetic scene -----------------------------------------------------------------------


class _SlotState(NamedTuple):
    """Object kinematics of one precomputed frame."""

    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    zone_ids: list[list[int]]


def _sample_box_surfaces(rng: np.random.Generator, boxes: np.ndarray,
                         counts: np.ndarray) -> np.ndarray:
    """Sample points on the sides and tops of yawed boxes.

    Args:
        rng: Random generator.
        boxes: ``(k, 7)`` rows of centre x, centre y, bottom z, length, width, height, yaw.
        counts: Points to sample per box.

    Returns:
        ``(sum(counts), 3)`` points.

    """
    b = boxes[np.repeat(np.arange(len(boxes)), counts)]
    n = len(b)
    length, width, height = b[:, 3], b[:, 4], b[:, 5]
    # Two faces across x, two across y and the top, weighted by area.
    weights = np.cumsum(np.stack([2 * width * height, 2 * length * height, length * width], 1), 1)
    pick = rng.random(n) * weights[:, 2]
    axis = (pick > weights[:, 0]).astype(np.intp) + (pick > weights[:, 1])
    unit = rng.random((n, 3))
    unit[np.arange(n), axis] = np.where(axis == 2, 1.0, rng.integers(0, 2, n))
    local = (unit - (0.5, 0.5, 0.0)) * b[:, 3:6]
    cos, sin = np.cos(b[:, 6]), np.sin(b[:, 6])
    return np.column_stack([
        b[:, 0] + cos * local[:, 0] - sin * local[:, 1],
        b[:, 1] + sin * local[:, 0] + cos * local[:, 1],
        b[:, 2] + local[:, 2],
    ])


def _box_areas(boxes: np.ndarray) -> np.ndarray:
    length, width, height = boxes[:, 3], boxes[:, 4], boxes[:, 5]
    return 2 * (length + width) * height + length * width


def _set_vector(target: Message, x: float, y: float, z: float = 0.0) -> None:
    target.x, target.y, target.z = float(x), float(y), float(z)


class _Scene:
    """A deterministic synthetic site: ground, walls, buildings and moving objects."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._cfg = config
        rng = np.random.default_rng([config.seed, 0])
        half = _SITE_HALF_M
        walls = np.array([
            [0.0, half, 0.0, 2 * half, 0.3, _WALL_HEIGHT_M, 0.0],
            [0.0, -half, 0.0, 2 * half, 0.3, _WALL_HEIGHT_M, 0.0],
            [half, 0.0, 0.0, 0.3, 2 * half, _WALL_HEIGHT_M, 0.0],
            [-half, 0.0, 0.0, 0.3, 2 * half, _WALL_HEIGHT_M, 0.0],
        ])
        buildings = np.column_stack([
            rng.uniform(-half + 8, half - 8, (_BUILDINGS, 2)),
            np.zeros(_BUILDINGS),
            rng.uniform((4.0, 4.0, 3.0), (12.0, 12.0, 8.0), (_BUILDINGS, 3)),
            rng.uniform(-math.pi, math.pi, _BUILDINGS),
        ])
        self._static = np.concatenate([walls, buildings])
        n = config.objects
        self.ids = np.arange(1, n + 1)
        self.labels = np.array([_LABEL_CYCLE[i % len(_LABEL_CYCLE)] for i in range(n)], int)
        self.sizes = np.array([_LABEL_SIZE[label] for label in self.labels]).reshape(n, 3)
        nominal = np.array([_LABEL_SPEED[label] for label in self.labels])
        self.speed = nominal * rng.uniform(0.7, 1.3, n)
        self.yaw_rate = np.where(nominal > 0, rng.uniform(-0.1, 0.1, n), 0.0)
        self._x0 = rng.uniform(-0.8 * half, 0.8 * half, n)
        self._y0 = rng.uniform(-0.8 * half, 0.8 * half, n)
        self._heading0 = rng.uniform(-math.pi, math.pi, n)
        self.confidence = rng.uniform(0.6, 0.99, n)
        self.zones = []
        for zone_id, name, zone_type, x_min, x_max, y_min, y_max in _ZONES:
            zone = protocol.ZoneConfig(id=zone_id, name=name, type=zone_type)
            for x, y in ((x_min, y_min), (x_max, y_min), (x_max, y_max), (x_min, y_max)):
                corner = zone.pbox.points.add()
                corner.x, corner.y = x, y
            zone.pbox.max_z = _ZONE_MAX_Z_M
            self.zones.append(zone)

    def poses(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return x, y and yaw of every object at time ``t`` (constant turn rate model)."""
        yaw = self._heading0 + self.yaw_rate * t
        straight = np.abs(self.yaw_rate) < 1e-9
        turn = np.where(straight, 1.0, self.yaw_rate)
        dx = np.where(straight, self.speed * np.cos(self._heading0) * t,
                      self.speed / turn * (np.sin(yaw) - np.sin(self._heading0)))
        dy = np.where(straight, self.speed * np.sin(self._heading0) * t,
                      -self.speed / turn * (np.cos(yaw) - np.cos(self._heading0)))
        half = _SITE_HALF_M
        # Objects leaving the site re-enter on the opposite side.
        x = (self._x0 + dx + half) % (2 * half) - half
        y = (self._y0 + dy + half) % (2 * half) - half
        return x, y, yaw

    def state(self, slot: int) -> _SlotState:
        """Return the kinematics of precomputed frame ``slot``."""
        x, y, yaw = self.poses(slot / self._cfg.rate_hz)
        zone_ids = [
            [z[0] for z in _ZONES if z[3] <= xi <= z[4] and z[5] <= yi <= z[6]]
            for xi, yi in zip(x, y, strict=True)
        ]
        return _SlotState(x, y, yaw, self.speed * np.cos(yaw), self.speed * np.sin(yaw), zone_ids)

    def _object_boxes(self, state: _SlotState) -> np.ndarray:
        n = len(state.x)
        return np.column_stack([state.x, state.y, np.zeros(n), self.sizes, state.yaw])

    def _surfaces(self, rng: np.random.Generator, boxes: np.ndarray, n: int,
                  intensity: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        areas = _box_areas(boxes)
        xyz = _sample_box_surfaces(rng, boxes, rng.multinomial(n, areas / areas.sum()))
        return xyz, rng.uniform(*intensity, n)

    def _ground(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        xy = rng.uniform(-_SITE_HALF_M, _SITE_HALF_M, (n, 2))
        return np.column_stack([xy, rng.normal(0.0, 0.02, n)]), rng.uniform(10.0, 40.0, n)

    def _raw(self, rng: np.random.Generator, n: int,
             objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points as one lidar sees them: ground, background and objects, with noise."""
        n_ground = n * 45 // 100
        n_objects = n * 15 // 100 if len(objects) else 0
        parts = [
            self._ground(rng, n_ground),
            self._surfaces(rng, self._static, n - n_ground - n_objects, (30.0, 120.0)),
        ]
        if n_objects:
            parts.append(self._surfaces(rng, objects, n_objects, (60.0, 255.0)))
        xyz = np.concatenate([p[0] for p in parts])
        return xyz + rng.normal(0.0, 0.01, xyz.shape), np.concatenate([p[1] for p in parts])

    def point_body(self, slot: int, state: _SlotState) -> bytes:
        """Return the serialized PointResult of precomputed frame ``slot``, without uid."""
        cfg = self._cfg
        rng = np.random.default_rng([cfg.seed, 1, slot])
        n_ground = cfg.points * 20 // 100
        n_background = cfg.points * 30 // 100
        n_raw = cfg.points - n_ground - n_background
        clouds = [
            (protocol.CLOUD_GROUND, _ALGO_NODE, *self._ground(rng, n_ground)),
            (protocol.CLOUD_BACKGROUND, _ALGO_NODE,
             *self._surfaces(rng, self._static, n_background, (30.0, 120.0))),
        ]
        objects = self._object_boxes(state)
        for index, lidar in enumerate(_LIDARS):
            n = n_raw // 2 + (n_raw % 2 if index else 0)
            clouds.append((protocol.CLOUD_RAW, lidar, *self._raw(rng, n, objects)))
        result = protocol.PointResult()
        for cloud_type, cloud_id, xyz, intensities in clouds:
            if len(xyz):
                cloud = result.points.add(type=cloud_type, id=cloud_id)
                cloud.points = xyz.astype('<f4').tobytes()
                cloud.intensities = intensities.astype('<f4').tobytes()
        return result.SerializeToString()

    def stream_template(self, slot: int, state: _SlotState) -> bytes:
        """Return the OutputMessage of frame ``slot`` without its per-send timestamps."""
        cfg = self._cfg
        rng = np.random.default_rng([cfg.seed, 2, slot])
        t = slot / cfg.rate_hz
        history = [self.poses(t - k * _HISTORY_STEP_S) for k in range(_HISTORY_STATES, 0, -1)]
        future = [self.poses(t + k * _PREDICTION_STEP_S) for k in range(1, _PREDICTION_STATES + 1)]
        reach = self.poses(t + _REACHABLE_T_S)
        boxes = self._object_boxes(state)
        message = protocol.OutputMessage()
        stream = message.stream
        stream.has_objects = True
        for i in range(len(self.ids)):
            obj = stream.objects.add(
                id=int(self.ids[i]), label=int(self.labels[i]),
                confidence=float(self.confidence[i]),
                tracking_status=_VALIDATING if i % 7 == 6 else _TRACKING,
                yaw_rate=float(self.yaw_rate[i]), is_static=bool(self.speed[i] == 0),
                zone_ids=state.zone_ids[i])
            _set_vector(obj.bbox.position, state.x[i], state.y[i])
            _set_vector(obj.bbox.size, *self.sizes[i])
            obj.bbox.yaw = float(state.yaw[i])
            _set_vector(obj.velocity, state.vx[i], state.vy[i])
            for hx, hy, _ in history:
                _set_vector(obj.history.states.add().position, hx[i], hy[i])
            for px, py, _ in future:
                _set_vector(obj.prediction.positions.add(), px[i], py[i])
            reachable = obj.prediction.reachable_set.add(t_offset=_REACHABLE_T_S)
            spread = 0.5 + 0.25 * self.speed[i]
            for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                corner = reachable.space.points.add()
                corner.x = float(reach[0][i] + dx * spread)
                corner.y = float(reach[1][i] + dy * spread)
            reachable.space.max_z = float(self.sizes[i][2])
            xyz, intensities = self._surfaces(rng, boxes[i:i + 1], cfg.object_points,
                                              (60.0, 255.0))
            obj.points = xyz.astype('<f4').tobytes()
            obj.intensities = intensities.astype('<f4').tobytes()
        return message.SerializeToString()


# --- connections ---------------------------------------------------------------------------


class _Out:
    """One outgoing websocket frame: buffers written back to back and what follows them."""

    __slots__ = ('buffers', 'frame', 'kind', 'nbytes')

    def __init__(self, kind: int, buffers: tuple[bytes | memoryview, ...], *,
                 frame: bool = False) -> None:
        self.kind = kind
        self.buffers = buffers
        self.nbytes = sum(len(b) for b in buffers)
        self.frame = frame


def _message(opcode: int, *parts: bytes | memoryview, frame: bool = False) -> _Out:
    header = _ws_header(opcode, sum(len(p) for p in parts))
    return _Out(_MESSAGE, (header, *parts), frame=frame)


class _Port:
    """One served port: its listener, its clients and its counters."""

    def __init__(self, role: str, requested: int, notify: Callable[[], None]) -> None:
        self.role = role
        self.requested = requested
        self.port: int | None = None
        self.clients: set[_Client] = set()  # guarded by the simulator's condition
        self.stall_until = 0.0
        self.reject: tuple[int, str] | None = None
        self._notify = notify
        self._lock = threading.Lock()
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        return self._listener is not None

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                self._counters[name] += value
        self._notify()

    def count_sent(self, item: _Out) -> None:
        with self._lock:
            self._counters['bytes_sent'] += item.nbytes
            if item.kind == _MESSAGE:
                self._counters['messages_sent'] += 1
                self._counters['frames_sent'] += item.frame
            elif item.kind == _PONG:
                self._counters['pongs'] += 1
        self._notify()

    def snapshot(self, clients: int) -> PortStats:
        with self._lock:
            return PortStats(port=self.port, listening=self.listening, clients=clients,
                             **self._counters)

    def listen(self, family: socket.AddressFamily, address: str,
               on_accept: Callable[[_Port, socket.socket], None]) -> None:
        port = self.requested if self.port is None else self.port
        listener = socket.socket(family, socket.SOCK_STREAM)
        # A restart must rebind the port while old connections sit in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((address, port))
            listener.listen(64)
        except OSError as exc:
            listener.close()
            msg = f'cannot listen on {address} port {port} ({self.role} port): {exc}'
            raise SimulatorError(msg) from exc
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._wake = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop, args=(on_accept,),
                                        name=f'sim-{self.role}-accept', daemon=True)
        self._thread.start()

    def close_listener(self) -> None:
        if self._listener is None or self._wake is None or self._thread is None:
            return
        self._wake[1].send(b'x')
        self._thread.join()
        self._listener.close()
        for end in self._wake:
            end.close()
        self._listener = self._wake = self._thread = None

    def _accept_loop(self, on_accept: Callable[[_Port, socket.socket], None]) -> None:
        assert self._listener is not None
        assert self._wake is not None
        listener, wake = self._listener, self._wake[0]
        while True:
            readable, _, _ = select.select([listener, wake], [], [])
            if wake in readable:
                return
            try:
                conn, _ = listener.accept()
            except OSError:
                # A peer that gave up before accept, or out of descriptors: back off briefly
                # (still wakeable) instead of spinning.
                if select.select([wake], [], [], _ACCEPT_RETRY_S)[0]:
                    return
                continue
            on_accept(self, conn)


class _Client:
    """One websocket client: a reader thread (handshake, pings, close) and a sender thread."""

    def __init__(self, sim: Simulator, port: _Port, sock: socket.socket) -> None:
        self.port = port
        self._sim = sim
        self._sock = sock
        self._cond = threading.Condition()
        self._data: deque[_Out] = deque()
        self._control: deque[_Out] = deque()
        self._closing = False
        self._aborted = False
        self._reader_done = threading.Event()
        self._rbuf = bytearray()
        self.thread = threading.Thread(target=self._run, name=f'sim-{port.role}-client',
                                       daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name=f'sim-{port.role}-send',
                                        daemon=True)

    # Called by other threads.

    def enqueue(self, item: _Out, *, overflow_check: bool = True) -> bool:
        with self._cond:
            if self._closing or self._aborted:
                return False
            self._data.append(item)
            limit = self._sim.config.max_queue_frames
            if overflow_check and limit is not None and len(self._data) > limit:
                self._overflow(limit)
            self._cond.notify()
        return True

    def close(self, code: int | None, reason: str = '', *, flush: bool = False) -> None:
        with self._cond:
            self._queue_close(code, reason, flush=flush)
            self._cond.notify()

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify()
        self._shutdown()

    # Internals.

    def _overflow(self, limit: int) -> None:
        action = self._sim.config.overflow_action
        if action == 'drop':
            dropped = len(self._data) - limit
            for _ in range(dropped):
                self._data.popleft()
        else:
            dropped = len(self._data)
            self._data.clear()
            if action in ('event', 'both') and self.port.role == OUTPUT:
                self._data.append(self._sim._overflow_item())
            if action in ('close', 'both'):
                self._queue_close(OVERFLOW_CLOSE_CODE, OVERFLOW_CLOSE_REASON, flush=True)
        self.port.add(overflows=1, frames_dropped=dropped)

    def _queue_close(self, code: int | None, reason: str, *, flush: bool) -> None:
        if self._closing or self._aborted:
            return
        self._closing = True
        payload = _close_payload(code, reason)
        item = _Out(_CLOSE, (_ws_header(_OP_CLOSE, len(payload)), payload))
        if flush:
            self._data.append(item)
        else:
            self._data.clear()
            self._control.append(item)

    def _shutdown(self) -> None:
        # socket.socket.shutdown also for TLS sockets: SSLSocket.shutdown would drop its
        # TLS state under the feet of the other thread.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def _run(self) -> None:
        registered = False
        try:
            self._handshake()
            reject = self.port.reject
            if reject is not None:
                # Queued before registering: no frame can get in before the close.
                self.close(*reject)
                self.port.add(rejected=1)
            registered = self._sim._register(self)
            if registered:
                self._sender.start()
                self._read_loop()
        except _ProtocolError as exc:
            self.close(exc.code, str(exc))
        except _HandshakeError as exc:
            self.port.add(handshake_failures=1)
            with contextlib.suppress(OSError):
                self._sock.sendall(_http_error(exc.status, str(exc)))
        except (OSError, EOFError):
            if not registered:
                self.port.add(handshake_failures=1)
        finally:
            self._finish(sender_started=registered)
            self._sim._forget(self)

    def _finish(self, *, sender_started: bool) -> None:
        self._reader_done.set()
        with self._cond:
            # A queued close (reply or overflow) is still worth sending; data is not.
            if not self._closing:
                self._aborted = True
            self._cond.notify()
        if sender_started:
            self._sender.join(_CLOSE_TIMEOUT_S)
        self._shutdown()
        if sender_started:
            self._sender.join(_JOIN_TIMEOUT_S)
        self._sock.close()

    def _handshake(self) -> None:
        self._sock.settimeout(_HANDSHAKE_TIMEOUT_S)
        if self._sim.config.send_buffer_bytes is not None:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                  self._sim.config.send_buffer_bytes)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = self._sim._tls
        if tls is not None:
            wrapped = tls.wrap_socket(self._sock, server_side=True,
                                      do_handshake_on_connect=False)
            with self._cond:
                self._sock = wrapped
            wrapped.do_handshake()
        while (end := self._rbuf.find(b'\r\n\r\n')) < 0:
            if len(self._rbuf) > _MAX_REQUEST_BYTES:
                msg = 'request headers too long'
                raise _HandshakeError(400, msg)
            self._fill()
        key = _handshake_key(bytes(self._rbuf[:end]))
        del self._rbuf[:end + 4]
        # No Sec-WebSocket-Extensions: permessage-deflate is never negotiated, as in SENSR.
        self._sock.sendall(
            ('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
             f'Sec-WebSocket-Accept: {_accept_value(key)}\r\n\r\n').encode())
        self._sock.settimeout(None)

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise EOFError
        self._rbuf += chunk

    def _recv_exact(self, n: int) -> bytes:
        while len(self._rbuf) < n:
            self._fill()
        data = bytes(self._rbuf[:n])
        del self._rbuf[:n]
        return data

    def _read_frame(self) -> tuple[int, bytes]:
        """Read one client frame; control payloads are unmasked, data payloads are not."""
        first, second = self._recv_exact(2)
        opcode = first & 0x0F
        length = second & 0x7F
        if first & 0x70 or opcode not in _CLIENT_OPCODES:
            msg = 'reserved bits or opcode used'
            raise _ProtocolError(1002, msg)
        if not second & 0x80:
            msg = 'client frames must be masked'
            raise _ProtocolError(1002, msg)
        if length == 126:
            (length,) = struct.unpack('!H', self._recv_exact(2))
        elif length == 127:
            (length,) = struct.unpack('!Q', self._recv_exact(8))
        if opcode >= _OP_CLOSE and (not first & 0x80 or length > 125):
            msg = 'invalid control frame'
            raise _ProtocolError(1002, msg)
        if length > _MAX_CLIENT_PAYLOAD:
            msg = 'message too big'
            raise _ProtocolError(1009, msg)
        mask = self._recv_exact(4)
        payload = self._recv_exact(length)
        if opcode >= _OP_CLOSE:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return opcode, payload

    def _read_loop(self) -> None:
        while True:
            opcode, payload = self._read_frame()
            if opcode == _OP_PING:
                self.port.add(pings=1)
                if not self._sim._ignore_pings:
                    with self._cond:
                        self._control.append(
                            _Out(_PONG, (_ws_header(_OP_PONG, len(payload)), payload)))
                        self._cond.notify()
            elif opcode == _OP_CLOSE:
                # Echo the code; a no-op when we started the closing handshake ourselves.
                self.close(_close_reply_code(payload))
                return
            # SENSR ignores anything else a client sends (data frames, unsolicited pongs).

    def _write(self, buffers: tuple[bytes | memoryview, ...]) -> None:
        if isinstance(self._sock, ssl.SSLSocket):
            for buffer in buffers:
                self._sock.sendall(buffer)
        else:
            _sendmsg_all(self._sock, buffers)

    def _send_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not (self._control or self._data or self._aborted):
                        self._cond.wait()
                    if self._aborted:
                        return
                    item = self._control.popleft() if self._control else self._data.popleft()
                self._write(item.buffers)
                self.port.count_sent(item)
                if item.kind == _CLOSE:
                    # Let the client answer before closing TCP (the server closes first).
                    self._reader_done.wait(_CLOSE_TIMEOUT_S)
                    return
                if item.kind == _CUT:
                    return
        except OSError:
            return
        finally:
            self._shutdown()


# --- the simulator -------------------------------------------------------------------------


class Simulator:
    """A SENSR master on loopback: output and point websocket streams with fault injection.

    Thread-safe: the fault-injection methods may be called from any thread while it runs.

    Attributes:
        config: The settings.

    Args:
        config: Settings (default: :class:`SimulatorConfig` defaults).

    Raises:
        ConfigError: On invalid settings or an unreadable TLS certificate or key.

    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.config.validate()
        cfg = self.config
        self._tls = self._load_tls()
        scene = _Scene(cfg)
        self._scene = scene
        self._states = [scene.state(slot) for slot in range(cfg.frames_precomputed)]
        self._bodies = [memoryview(scene.point_body(slot, state))
                        for slot, state in enumerate(self._states)]
        self._templates = [scene.stream_template(slot, state)
                           for slot, state in enumerate(self._states)]
        node = protocol.SystemHealth.Node(status=protocol.NODE_STATUS.values_by_name['OK'].number)
        for lidar in _LIDARS:
            node.sensors[lidar] = protocol.SENSOR_STATUS.values_by_name['SENSOR_ALIVE'].number
        self._health = protocol.SystemHealth(master=protocol.HEALTH_STATUS.values_by_name['OK']
                                             .number)
        self._health.nodes[_ALGO_NODE].CopyFrom(node)
        self._cond = threading.Condition()
        self._ports = {role: _Port(role, requested, self._notify) for role, requested in
                       ((OUTPUT, cfg.output_port), (POINT, cfg.point_port))
                       if requested is not None}
        self._connections: set[_Client] = set()
        self._state = 'new'
        self._halt = threading.Event()
        self._finished = threading.Event()
        self._clock: threading.Thread | None = None
        self._log_lock = threading.Lock()
        self._sent_log: dict[int, int] = {}
        self._frames = 0
        self._missed = 0
        self._last = (0, 0, time.time_ns())
        self._injections = 0
        self._ignore_pings = False

    def _load_tls(self) -> ssl.SSLContext | None:
        cfg = self.config
        if cfg.tls_cert is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        except (OSError, ssl.SSLError) as exc:
            msg = f'cannot load TLS certificate {cfg.tls_cert} / key {cfg.tls_key}: {exc}'
            raise ConfigError(msg) from exc
        return context

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Listen on the configured ports and start the frame clock; returns at once.

        Raises:
            SimulatorError: When started twice or a port cannot be bound.

        """
        with self._cond:
            if self._state != 'new':
                msg = f'the simulator can be started once (it is {self._state})'
                raise SimulatorError(msg)
            self._state = 'running'
        family, address = self._bind_address()
        try:
            for port in self._ports.values():
                port.listen(family, address, self._on_accept)
        except SimulatorError:
            self.stop()
            raise
        self._clock = threading.Thread(target=self._run_clock, name='sim-clock', daemon=True)
        self._clock.start()

    def stop(self, flush_s: float = 0.0) -> None:
        """Stop the clock, close the listeners and all connections, join all threads.

        Idempotent.

        Args:
            flush_s: When > 0, first let clients receive their queued frames and a close
                frame (1001) for up to this many seconds.

        """
        with self._cond:
            if self._state == 'stopped':
                return
            self._state = 'stopped'
            self._cond.notify_all()
        self._halt.set()
        if self._clock is not None:
            self._clock.join()
        for port in self._ports.values():
            port.close_listener()
        if flush_s > 0:
            with self._cond:
                clients = list(self._connections)
            for client in clients:
                client.close(1001, 'SENSR simulator stopping', flush=True)
            with self._cond:
                self._cond.wait_for(lambda: not self._connections, flush_s)
        with self._cond:
            clients = list(self._connections)
        for client in clients:
            client.abort()
        for client in clients:
            client.thread.join(_JOIN_TIMEOUT_S)
        self._finished.set()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def finish(self) -> None:
        """End the run early: the clock stops producing frames (connections stay open)."""
        self._halt.set()
        with self._cond:
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end (duration, max_frames, :meth:`finish` or :meth:`stop`).

        Args:
            timeout: Seconds to wait at most (None: no limit).

        Returns:
            Whether the run has ended.

        """
        return self._finished.wait(timeout)

    def wait_for_clients(self, n: int, timeout: float | None = None,
                         port: str | int | None = None, *, at_most: bool = False) -> bool:
        """Wait until at least (or at most) ``n`` clients are connected (handshake done).

        Args:
            n: Number of clients.
            timeout: Seconds to wait at most (None: no limit).
            port: Count the clients of this port only (role name or port number);
                None: of all ports.
            at_most: Wait for ``n`` or fewer clients instead, e.g. until clients left.

        Returns:
            Whether the condition holds.

        """
        roles = self._roles(port)

        def reached() -> bool:
            count = sum(len(self._ports[r].clients) for r in roles)
            return count <= n if at_most else count >= n

        with self._cond:
            return self._cond.wait_for(reached, timeout)

    def wait_for_stats(self, predicate: Callable[[SimulatorStats], bool],
                       timeout: float | None = None) -> bool:
        """Wait until the counters satisfy a condition; re-checked whenever one changes.

        Args:
            predicate: Called with a :meth:`stats` snapshot.
            timeout: Seconds to wait at most (None: no limit).

        Returns:
            Whether the predicate became true.

        """
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.stats()), timeout)

    # --- information -------------------------------------------------------------------

    @property
    def output_port(self) -> int | None:
        """The output port number (None when not served or not started)."""
        port = self._ports.get(OUTPUT)
        return None if port is None else port.port

    @property
    def point_port(self) -> int | None:
        """The point port number (None when not served or not started)."""
        port = self._ports.get(POINT)
        return None if port is None else port.port

    def url(self, port: str | int) -> str:
        """Return the websocket URL of a port, e.g. ``ws://127.0.0.1:5050/``.

        Args:
            port: Role name (``'output'``, ``'point'``) or port number.

        Returns:
            The URL (``wss://`` with TLS).

        """
        (role,) = self._roles(port)
        host = self.config.host
        host = f'[{host}]' if ':' in host else host
        scheme = 'ws' if self._tls is None else 'wss'
        return f'{scheme}://{host}:{self._ports[role].port}/'

    def stats(self) -> SimulatorStats:
        """Return a snapshot of all counters.

        Returns:
            Frames produced and the counters of each served port.

        """
        with self._cond:
            clients = {role: len(port.clients) for role, port in self._ports.items()}
        return SimulatorStats(
            frames=self._frames, missed_ticks=self._missed,
            ports={role: port.snapshot(clients[role]) for role, port in self._ports.items()})

    def sent_log(self) -> dict[int, int]:
        """Return a copy of the send log: when each frame's send started.

        The time is taken when the frame is handed to every client's sender (a client
        still busy with earlier frames starts later). It is also the frame's
        ``OutputMessage.timestamp`` and ``stream.first_cloud_arrival_timestamp``, so a
        receiver can map an OutputMessage to its frame number. Only the last
        ``sent_log_size`` frames are kept.

        Returns:
            Frame sequence number to wall-clock nanoseconds (``time.time_ns()``).

        """
        with self._log_lock:
            return dict(self._sent_log)

    def expected_point_result(self, seq: int) -> bytes:
        """Return the exact bytes of the PointResult of frame ``seq`` (uid ``sim:<seq>``).

        Args:
            seq: Frame sequence number, from 0.

        Returns:
            The serialized PointResult, byte-identical to what clients receive.

        """
        body = self._bodies[seq % self.config.frames_precomputed]
        return body.tobytes() + _uid_field(f'sim:{seq}')

    def expected_output_message(self, seq: int) -> bytes:
        """Return the exact bytes of the OutputMessage with the stream of frame ``seq``.

        The frame's objects, zones and health, stamped with its send time; the separate
        event and custom messages are not included.

        Args:
            seq: Frame sequence number, from 0; it must be in :meth:`sent_log`.

        Returns:
            The serialized OutputMessage, byte-identical to what clients received.

        Raises:
            KeyError: The frame was not sent, or is no longer in the send log.

        """
        with self._log_lock:
            sent_ns = self._sent_log[seq]
        return self._stream_message(seq, seq % self.config.frames_precomputed, sent_ns)

    # --- fault injection ---------------------------------------------------------------

    def drop_connections(self, port: str | int | None = None) -> int:
        """Close client connections abruptly, without a close frame (TCP FIN).

        Args:
            port: Role name or port number; None: all ports.

        Returns:
            Number of connections dropped; they are gone when this returns.

        """
        roles = self._roles(port)
        with self._cond:
            victims = [c for c in self._connections if c.port.role in roles]
        for client in victims:
            client.abort()
        for client in victims:
            client.thread.join(_JOIN_TIMEOUT_S)
        return len(victims)

    def take_down(self, port: str | int | None = None) -> None:
        """Stop listening and drop the clients, as if SENSR went down.

        Args:
            port: Role name or port number; None: all ports.

        """
        for role in self._roles(port):
            self._ports[role].close_listener()
        self.drop_connections(port)

    def bring_up(self, port: str | int | None = None) -> None:
        """Listen again on the same port numbers after :meth:`take_down`.

        Args:
            port: Role name or port number; None: all ports.

        Raises:
            SimulatorError: When not running or a port cannot be bound again.

        """
        roles = self._roles(port)
        with self._cond:
            if self._state != 'running':
                msg = f'cannot bring ports up: the simulator is {self._state}'
                raise SimulatorError(msg)
        family, address = self._bind_address()
        for role in roles:
            if not self._ports[role].listening:
                self._ports[role].listen(family, address, self._on_accept)

    def restart(self, port: str | int | None = None, down_s: float = 1.0) -> None:
        """Take ports down, wait, and bring them up again; blocks for ``down_s``.

        The frame clock keeps running meanwhile, so frame numbers go on increasing.

        Args:
            port: Role name or port number; None: all ports.
            down_s: Seconds without a listener.

        Raises:
            SimulatorError: When a port cannot be bound again.

        """
        self.take_down(port)
        if not self._halt.wait(down_s):
            self.bring_up(port)

    def reject(self, port: str | int | None = None, code: int | None = 1000,
               reason: str = 'SENSR simulator rejects clients') -> None:
        """Accept new clients, then close them at once with ``code``, before any frame.

        As a proxy, a SENSR that refuses another client, or one shutting down does: the
        websocket handshake succeeds and a normal close follows. Connected clients are
        left alone.

        Args:
            port: Role name or port number; None: all ports.
            code: Close status code (1000: normal closure); None turns rejecting off.
            reason: Close reason text.

        """
        for role in self._roles(port):
            self._ports[role].reject = None if code is None else (code, reason)

    def stall(self, port: str | int | None, seconds: float | None) -> None:
        """Stop sending frames on a port while keeping the connections open.

        Frames due meanwhile are skipped (counted in ``frames_dropped``).

        Args:
            port: Role name or port number; None: all ports.
            seconds: Stall length; None: until the next call; <= 0: resume now.

        """
        until = math.inf if seconds is None else time.monotonic() + seconds
        for role in self._roles(port):
            self._ports[role].stall_until = until

    def ignore_pings(self, ignore: bool = True) -> None:
        """Stop (or resume) answering client pings.

        Args:
            ignore: True to ignore pings, False to answer them again.

        """
        self._ignore_pings = ignore

    def inject(self, port: str | int | None, kind: str, count: int = 1,
               size: int = 80_000_000) -> int:
        """Queue bad frames to every client of a port, between the regular frames.

        Kinds: ``random_bytes`` (never valid protobuf), ``truncated`` (the current frame
        cut inside its largest field), ``wrong_type`` (a PointResult without uid on the
        output port, an OutputMessage on the point port), ``text`` (a text frame),
        ``empty`` (a zero-length binary frame), ``mismatch`` (a cloud or object whose
        points and intensities counts differ), ``not_multiple`` (points not a multiple of
        12 bytes), ``oversized`` (a valid message of about ``size`` bytes),
        ``unknown_fields`` (the current frame plus unknown fields and future enum
        values), ``drop_midframe`` (half of the current frame, then the connection is
        dropped). Injected PointResults carry uid ``sim:inject:<kind>``.

        Args:
            port: Role name or port number; None: all ports.
            kind: One of :data:`INJECT_KINDS`.
            count: Bad frames per client.
            size: Payload size of ``oversized`` frames, bytes.

        Returns:
            Number of frames queued (over all clients).

        Raises:
            ConfigError: On an unknown kind.

        """
        if kind not in INJECT_KINDS:
            msg = f'unknown injection kind {kind!r}; expected one of {INJECT_KINDS}'
            raise ConfigError(msg)
        queued = 0
        for role in self._roles(port):
            target = self._ports[role]
            with self._cond:
                clients = list(target.clients)
            queued_here = 0
            for _ in range(count):
                item = self._fault_item(role, kind, size)
                for client in clients:
                    queued_here += client.enqueue(item, overflow_check=False)
            target.add(injected=queued_here)
            queued += queued_here
        return queued

    def send_zone_event(self, zone_id: int, event_type: str = 'ENTRY',
                        object_id: int = 1) -> int:
        """Send an OutputMessage with one zone event now, to every output-port client.

        As SENSR sends its events: a message of its own between the frames, stamped with
        the time it is sent. Tests trigger on it what SENSR's zone events trigger.

        Args:
            zone_id: Zone id.
            event_type: A ``ZoneEvent.Type`` name: ENTRY, EXIT, LOITERING, EXCEEDS_SPEED.
            object_id: Id of the object the event is about.

        Returns:
            Number of clients it was queued to.

        Raises:
            ConfigError: An unknown event type, or no output port served.

        """
        if event_type not in protocol.ZONE_EVENT_TYPE.values_by_name:
            msg = f'unknown zone event type {event_type!r}'
            raise ConfigError(msg)
        message = protocol.OutputMessage()
        message.timestamp.FromNanoseconds(time.time_ns())
        event = message.event.zone.add(
            id=zone_id, type=protocol.ZONE_EVENT_TYPE.values_by_name[event_type].number)
        event.timestamp.CopyFrom(message.timestamp)
        event.object.id = object_id
        item = _message(_OP_BINARY, message.SerializeToString())
        port = self._ports[self._roles(OUTPUT)[0]]
        with self._cond:
            clients = list(port.clients)
        queued = sum(client.enqueue(item, overflow_check=False) for client in clients)
        port.add(injected=queued)
        return queued

    # --- internals ---------------------------------------------------------------------

    def _register(self, client: _Client) -> bool:
        """Record a client whose handshake completed; False when it must go away."""
        with self._cond:
            if self._state != 'running' or not client.port.listening:
                return False
            client.port.clients.add(client)
            client.port.add(accepted=1)
            self._cond.notify_all()
            return True

    def _forget(self, client: _Client) -> None:
        """Remove a finished client."""
        with self._cond:
            client.port.clients.discard(client)
            self._connections.discard(client)
            self._cond.notify_all()

    def _overflow_item(self) -> _Out:
        """Return the OutputMessage SENSR sends to a client whose buffer overflowed."""
        message = protocol.OutputMessage()
        message.timestamp.FromNanoseconds(time.time_ns())
        message.event.health.master = protocol.HEALTH_OUTPUT_BUFFER_OVERFLOW
        return _message(_OP_BINARY, message.SerializeToString())

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _on_accept(self, port: _Port, conn: socket.socket) -> None:
        client = _Client(self, port, conn)
        with self._cond:
            if self._state != 'running':
                conn.close()
                return
            self._connections.add(client)
        client.thread.start()

    def _bind_address(self) -> tuple[socket.AddressFamily, str]:
        try:
            infos = socket.getaddrinfo(self.config.host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            msg = f'cannot resolve {self.config.host}: {exc}'
            raise SimulatorError(msg) from exc
        family, _, _, _, sockaddr = infos[0]
        _check_loopback(str(sockaddr[0]))
        return family, str(sockaddr[0])

    def _roles(self, port: str | int | None) -> tuple[str, ...]:
        if port is None:
            return tuple(self._ports)
        if isinstance(port, str) and port in self._ports:
            return (port,)
        if isinstance(port, int):
            for role, served in self._ports.items():
                if port == served.port:
                    return (role,)
            defaults = {protocol.OUTPUT_PORT: OUTPUT, protocol.POINT_PORT: POINT}
            if defaults.get(port) in self._ports:
                return (defaults[port],)
        msg = f'port {port!r} is not served (served: {", ".join(self._ports)})'
        raise ConfigError(msg)

    # --- frame production --------------------------------------------------------------

    def _run_clock(self) -> None:
        cfg = self.config
        try:
            if cfg.start_after_clients:
                with self._cond:
                    self._cond.wait_for(lambda: self._halt.is_set() or sum(
                        len(p.clients) for p in self._ports.values()) >= cfg.start_after_clients)
            period = 1.0 / cfg.rate_hz
            start = time.monotonic()
            tick = 0
            while not self._halt.is_set():
                if cfg.max_frames is not None and self._frames >= cfg.max_frames:
                    return
                if cfg.duration_s is not None and tick * period >= cfg.duration_s:
                    return
                # Scheduled on a fixed grid from the start, so the rate does not drift.
                delay = start + tick * period - time.monotonic()
                if delay < -period:
                    # Too far behind to catch up without a burst: skip the missed ticks.
                    missed = int(-delay / period)
                    tick += missed
                    self._missed += missed
                    continue
                if delay > 0 and self._halt.wait(delay):
                    return
                self._tick(self._frames)
                self._frames += 1
                self._notify()
                tick += 1
        finally:
            self._finished.set()

    def _every(self, seq: int, interval_s: float | None) -> bool:
        if interval_s is None:
            return False
        return seq % max(1, round(interval_s * self.config.rate_hz)) == 0

    def _targets(self, role: str, now: float) -> list[_Client]:
        port = self._ports.get(role)
        if port is None:
            return []
        with self._cond:
            clients = list(port.clients)
        if clients and port.stall_until > now:
            port.add(frames_dropped=len(clients))
            return []
        return clients

    def _tick(self, seq: int) -> None:
        cfg = self.config
        slot = seq % cfg.frames_precomputed
        now_ns = time.time_ns()
        with self._log_lock:
            self._sent_log[seq] = now_ns
            if len(self._sent_log) > cfg.sent_log_size:
                del self._sent_log[next(iter(self._sent_log))]
        self._last = (seq, slot, now_ns)
        now = time.monotonic()
        clients = self._targets(POINT, now)
        if clients:
            item = _message(_OP_BINARY, self._bodies[slot], _uid_field(f'sim:{seq}'), frame=True)
            for client in clients:
                client.enqueue(item)
        clients = self._targets(OUTPUT, now)
        if clients:
            items = [_message(_OP_BINARY, self._stream_message(seq, slot, now_ns), frame=True)]
            if self._every(seq, cfg.event_interval_s) and cfg.objects:
                items.append(_message(_OP_BINARY, self._event_message(seq, slot, now_ns)))
            if self._every(seq, cfg.custom_interval_s):
                items.append(_message(_OP_BINARY, self._custom_message(seq, now_ns)))
            for client in clients:
                for item in items:
                    client.enqueue(item)

    def _stream_message(self, seq: int, slot: int, now_ns: int) -> bytes:
        message = protocol.OutputMessage.FromString(self._templates[slot])
        message.timestamp.FromNanoseconds(now_ns)
        stream = message.stream
        stream.first_cloud_arrival_timestamp.FromNanoseconds(now_ns)
        step_ns = round(_HISTORY_STEP_S * 1e9)
        for obj in stream.objects:
            obj.last_observed_timestamp.FromNanoseconds(now_ns)
            states = obj.history.states
            for index, state in enumerate(states):
                state.timestamp.FromNanoseconds(now_ns - (len(states) - index) * step_ns)
        if self._every(seq, self.config.zones_interval_s):
            stream.zones.extend(self._scene.zones)
            stream.has_zones = True
        if self._every(seq, self.config.health_interval_s):
            stream.health.CopyFrom(self._health)
        return message.SerializeToString()

    def _event_message(self, seq: int, slot: int, now_ns: int) -> bytes:
        state = self._states[slot]
        ids = self._scene.ids
        message = protocol.OutputMessage()
        message.timestamp.FromNanoseconds(now_ns)
        event_number = seq // max(1, round(self.config.event_interval_s * self.config.rate_hz))
        for i, zone_ids in enumerate(state.zone_ids):
            for zone_id in zone_ids:
                zone_event = message.event.zone.add(
                    id=zone_id, type=_ZONE_EVENT_TYPES[event_number % len(_ZONE_EVENT_TYPES)])
                zone_event.timestamp.FromNanoseconds(now_ns)
                zone_event.object.id = int(ids[i])
                _set_vector(zone_event.object.position, state.x[i], state.y[i])
                zone_event.object.heading = float(state.yaw[i])
                _set_vector(zone_event.object.velocity, state.vx[i], state.vy[i])
        lost = event_number % len(ids)
        losing = message.event.losing.add(id=int(ids[lost]), heading=float(state.yaw[lost]))
        losing.timestamp.FromNanoseconds(now_ns)
        _set_vector(losing.position, state.x[lost], state.y[lost])
        return message.SerializeToString()

    def _custom_message(self, seq: int, now_ns: int) -> bytes:
        message = protocol.OutputMessage()
        message.timestamp.FromNanoseconds(now_ns)
        # Background learning as SENSR reports it after a start: complete within a minute.
        message.custom.bg_learning_progress = min(1.0, seq / (60.0 * self.config.rate_hz))
        return message.SerializeToString()

    # --- injected frames ---------------------------------------------------------------

    def _fault_item(self, role: str, kind: str, size: int) -> _Out:
        seq, slot, now_ns = self._last
        if kind == 'drop_midframe':
            parts = self._frame_parts(role, seq, slot, now_ns)
            header = _ws_header(_OP_BINARY, sum(len(p) for p in parts))
            return _Out(_CUT, (header, parts[0][:len(parts[0]) // 2]))
        rng = np.random.default_rng([self.config.seed, 3, self._injections])
        self._injections += 1
        opcode = _OP_TEXT if kind == 'text' else _OP_BINARY
        return _message(opcode, *self._fault_parts(role, kind, size, rng))

    def _frame_parts(self, role: str, seq: int, slot: int,
                     now_ns: int) -> tuple[bytes | memoryview, ...]:
        """Return the payload pieces of the regular frame ``seq`` of a port."""
        if role == POINT:
            return self._bodies[slot], _uid_field(f'sim:{seq}')
        return (memoryview(self._stream_message(seq, slot, now_ns)),)

    def _fault_parts(self, role: str, kind: str, size: int,
                     rng: np.random.Generator) -> tuple[bytes | memoryview, ...]:
        seq, slot, now_ns = self._last
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
            parts = ((self._bodies[slot],) if role == OUTPUT
                     else (self._stream_message(seq, slot, now_ns),))
        elif kind == 'truncated':
            frame = self._frame_parts(role, seq, slot, now_ns)
            parts = (_truncate(frame[0] if len(frame[0]) else frame[-1]),)
        elif kind == 'unknown_fields':
            parts = self._unknown_fields_parts(role, seq, slot, now_ns, rng)
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
            result.points.add(type=protocol.CLOUD_RAW, id=_LIDARS[0], points=points,
                              intensities=intensities)
            return result.SerializeToString()
        message = protocol.OutputMessage()
        message.timestamp.FromNanoseconds(time.time_ns())
        message.stream.has_objects = True
        obj = message.stream.objects.add(id=int(len(self._scene.ids) + 1), label=_LABEL_MISC,
                                         confidence=0.5, tracking_status=_TRACKING)
        _set_vector(obj.bbox.size, 1.0, 1.0, 1.0)
        obj.points = points
        obj.intensities = intensities
        return message.SerializeToString()

    def _unknown_fields_parts(self, role: str, seq: int, slot: int, now_ns: int,
                              rng: np.random.Generator) -> tuple[bytes | memoryview, ...]:
        unknown = (_varint_field(_UNKNOWN_FIELD, _FUTURE_ENUM)
                   + _bytes_field(_UNKNOWN_BYTES_FIELD, b'field of a future SENSR'))
        if role == POINT:
            future_cloud = protocol.PointResult()
            future_cloud.points.add(type=_FUTURE_CLOUD_TYPE, id='future_sensor',
                                    points=_float_bytes(rng, 10 * 12),
                                    intensities=_float_bytes(rng, 10 * 4))
            return (self._bodies[slot], future_cloud.SerializeToString(), unknown,
                    _uid_field('sim:inject:unknown_fields'))
        obj = protocol.Object(id=int(len(self._scene.ids) + 2), label=_FUTURE_ENUM,
                              tracking_status=_FUTURE_TRACKING_STATUS, confidence=0.5)
        _set_vector(obj.bbox.size, 1.0, 1.0, 1.0)
        # Fields merge on concatenation: this adds one object and unknown fields to stream.
        stream_extra = _bytes_field(3, _bytes_field(1, obj.SerializeToString() + unknown)
                                    + unknown)
        return self._stream_message(seq, slot, now_ns), stream_extra, unknown


def _float_bytes(rng: np.random.Generator, n_bytes: int) -> bytes:
    """Return ``n_bytes`` of little-endian float32 values (a partial float at the end)."""
    count = -(-n_bytes // 4)
    # A repeated block: oversized frames of 80 MB need no 80 MB of random numbers.
    block = rng.uniform(-_SITE_HALF_M, _SITE_HALF_M, min(count, 4096)).astype('<f4')
    return np.resize(block, count).tobytes()[:n_bytes]


def _truncate(data: bytes | memoryview) -> memoryview:
    """Cut a serialized message in the middle of its largest field, so it cannot parse."""
    view = memoryview(data).cast('B')
    fields = list(wire.iter_fields(view, 0, len(view)))
    _, _, start, end = max(fields, key=lambda f: f[3] - f[2])
    return view[:start + (end - start) // 2]


# --- command line --------------------------------------------------------------------------


class _Fault(NamedTuple):
    at_s: float
    action: str
    args: tuple[str, ...]


_FAULT_ACTIONS = {
    'drop': (0, 1), 'restart': (0, 2), 'stall': (2, 2), 'ignore-pings': (0, 1),
    'inject': (2, 3), 'reject': (0, 2),
}


def _port_arg(text: str) -> str | int | None:
    if text == 'all':
        return None
    if text.isdigit():
        return int(text)
    if text in (OUTPUT, POINT):
        return text
    msg = f'port must be output, point, all or a number, not {text!r}'
    raise ConfigError(msg)


def _parse_fault(spec: str) -> _Fault:
    """Parse ``TIME:ACTION[:ARG...]`` (see the ``--fault`` help)."""
    at, _, rest = spec.partition(':')
    action, *args = rest.split(':')
    try:
        at_s = float(at)
    except ValueError:
        at_s = -1.0
    if at_s < 0 or action not in _FAULT_ACTIONS:
        msg = (f'invalid fault {spec!r}: expected TIME:ACTION[:ARG...] with ACTION in '
               f'{", ".join(_FAULT_ACTIONS)}')
        raise ConfigError(msg)
    low, high = _FAULT_ACTIONS[action]
    if not low <= len(args) <= high:
        msg = f'invalid fault {spec!r}: {action} takes {low} to {high} arguments'
        raise ConfigError(msg)
    if args and action != 'ignore-pings':
        _port_arg(args[0])
    try:
        if action == 'restart' and len(args) == 2:
            float(args[1])
        if action == 'stall':
            float(args[1])
        if action == 'inject' and len(args) == 3:
            int(args[2])
        if action == 'reject' and len(args) == 2 and args[1] != 'off':
            int(args[1])
    except ValueError as exc:
        msg = f'invalid fault {spec!r}: {exc}'
        raise ConfigError(msg) from exc
    if action == 'inject' and args[1] not in INJECT_KINDS:
        msg = f'invalid fault {spec!r}: kind must be one of {", ".join(INJECT_KINDS)}'
        raise ConfigError(msg)
    if action == 'ignore-pings' and args and args[0] not in ('on', 'off'):
        msg = f'invalid fault {spec!r}: ignore-pings takes on or off'
        raise ConfigError(msg)
    return _Fault(at_s, action, tuple(args))


def _apply_fault(sim: Simulator, fault: _Fault) -> None:
    args = fault.args
    port = _port_arg(args[0]) if args and fault.action != 'ignore-pings' else None
    if fault.action == 'drop':
        sim.drop_connections(port)
    elif fault.action == 'restart':
        sim.restart(port, float(args[1]) if len(args) == 2 else 1.0)
    elif fault.action == 'stall':
        sim.stall(port, float(args[1]))
    elif fault.action == 'ignore-pings':
        sim.ignore_pings(not args or args[0] == 'on')
    elif fault.action == 'reject':
        code = args[1] if len(args) == 2 else '1000'
        sim.reject(port, None if code == 'off' else int(code))
    else:
        sim.inject(port, args[1], int(args[2]) if len(args) == 3 else 1)


def _optional_interval(text: str) -> float | None:
    value = float(text)
    return value if value > 0 else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='simulator',
        description='SENSR simulator: serves OutputMessage and PointResult websocket streams '
                    'on loopback. Prints "ready output_port=N point_port=M" once listening.')
    add = parser.add_argument
    add('--host', default='127.0.0.1', help='loopback address to bind (default %(default)s)')
    add('--output-port', type=int, default=protocol.OUTPUT_PORT,
        help='output port, 0 = any free port (default %(default)s)')
    add('--point-port', type=int, default=protocol.POINT_PORT,
        help='point port, 0 = any free port (default %(default)s)')
    add('--no-output', action='store_true', help='do not serve the output port')
    add('--no-points', action='store_true', help='do not serve the point port')
    add('--rate', type=float, default=10.0, help='frames per second (default %(default)s)')
    add('--points', type=int, default=921_512, help='points per PointResult (default %(default)s)')
    add('--objects', type=int, default=20, help='objects per frame (default %(default)s)')
    add('--object-points', type=int, default=200, help='points per object (default %(default)s)')
    add('--seed', type=int, default=0, help='content seed (default %(default)s)')
    add('--frames-precomputed', type=int, default=8,
        help='distinct precomputed frames (default %(default)s)')
    add('--duration', type=float, help='stop after this many seconds of frames')
    add('--max-frames', type=int, help='stop after this many frames')
    add('--wait-clients', type=int, default=0,
        help='start the frame clock once this many clients are connected')
    add('--zones-interval', type=_optional_interval, default=10.0,
        help='seconds between stream.zones, 0 = never (default %(default)s)')
    add('--health-interval', type=_optional_interval, default=1.0,
        help='seconds between stream.health, 0 = never (default %(default)s)')
    add('--event-interval', type=_optional_interval, default=3.0,
        help='seconds between event messages, 0 = never (default %(default)s)')
    add('--custom-interval', type=_optional_interval, default=5.0,
        help='seconds between custom messages, 0 = never (default %(default)s)')
    add('--tls-cert', help='PEM certificate chain: serve wss://')
    add('--tls-key', help='PEM private key of --tls-cert')
    add('--max-queue-frames', type=int, default=10,
        help='per-client backlog that counts as overflow, 0 = unbounded (default %(default)s)')
    add('--overflow', choices=OVERFLOW_ACTIONS, default='both',
        help='what an overflow triggers (default %(default)s)')
    add('--send-buffer', type=int, help='SO_SNDBUF of client sockets, bytes')
    add('--ignore-pings', action='store_true', help='never answer pings')
    add('--flush', type=float, default=2.0,
        help='seconds to let clients drain and close at the end (default %(default)s)')
    add('--fault', action='append', default=[], metavar='TIME:ACTION[:ARG...]',
        help='fault at TIME seconds after start; repeatable. PORT is output, point, all or a '
             'number. Actions: drop[:PORT], restart[:PORT[:DOWN_S]], stall:PORT:SECONDS, '
             'ignore-pings[:on|off], reject[:PORT[:CODE|off]] (accept, then close at once '
             'with CODE, default 1000), inject:PORT:KIND[:COUNT] with KIND in '
             f'{", ".join(INJECT_KINDS)}')
    return parser


def _config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        host=args.host,
        output_port=None if args.no_output else args.output_port,
        point_port=None if args.no_points else args.point_port,
        rate_hz=args.rate, points=args.points, objects=args.objects,
        object_points=args.object_points, seed=args.seed,
        frames_precomputed=args.frames_precomputed, duration_s=args.duration,
        max_frames=args.max_frames, start_after_clients=args.wait_clients,
        zones_interval_s=args.zones_interval, health_interval_s=args.health_interval,
        event_interval_s=args.event_interval, custom_interval_s=args.custom_interval,
        tls_cert=args.tls_cert, tls_key=args.tls_key,
        max_queue_frames=args.max_queue_frames or None, overflow_action=args.overflow,
        send_buffer_bytes=args.send_buffer)


def _summary(stats: SimulatorStats, elapsed_s: float) -> str:
    parts = [f'done frames={stats.frames} missed_ticks={stats.missed_ticks}',
             f'elapsed_s={elapsed_s:.1f}']
    for role, port in stats.ports.items():
        parts.append(f'{role}: accepted={port.accepted} frames_sent={port.frames_sent} '
                     f'messages_sent={port.messages_sent} bytes_sent={port.bytes_sent} '
                     f'dropped={port.frames_dropped} overflows={port.overflows}')
    return ' '.join(parts)


def _wait_run(sim: Simulator, deadline: float) -> bool:
    """Wait for the run to end or a monotonic deadline; True when the run ended.

    Waits in slices (:data:`sensr_bridge.process.shutdown.SIGNAL_POLL_S`), so a signal taken by
    another thread still reaches its handler.
    """
    while (left := deadline - time.monotonic()) > 0:
        if sim.wait(min(left, shutdown.SIGNAL_POLL_S)):
            return True
    return sim.wait(0)


def _serve(sim: Simulator, faults: list[_Fault], flush_s: float) -> int:
    try:
        sim.start()
    except SimulatorError as exc:
        print(f'simulator: {exc}', file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        print(f'ready output_port={sim.output_port} point_port={sim.point_port}', flush=True)
        for fault in faults:
            if _wait_run(sim, started + fault.at_s):
                break
            _apply_fault(sim, fault)
        _wait_run(sim, math.inf)
    finally:
        sim.stop(flush_s=flush_s)
    print(_summary(sim.stats(), time.monotonic() - started), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until the duration or frame limit, SIGINT or SIGTERM.

    Prints ``ready output_port=N point_port=M`` once listening (``None`` for a port not
    served) and a one-line summary at the end.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        0 after a clean run, 1 when the simulator cannot start.

    """
    parser = _parser()
    args = parser.parse_args(argv)
    # The simulator program's request (process.shutdown): signals since its first instant.
    request = shutdown.installed()
    if request is not None and request.event.is_set():
        return 0
    try:
        config = _config_from_args(args)
        faults = sorted((_parse_fault(spec) for spec in args.fault), key=lambda f: f.at_s)
        sim = Simulator(config)
    except ConfigError as exc:
        parser.error(str(exc))
    sim.ignore_pings(args.ignore_pings)

    handlers = {}
    if request is None:  # called from code: SIGINT/SIGTERM finish the run while it lasts
        request = shutdown.ShutdownRequest()
        if threading.current_thread() is threading.main_thread():
            handlers = request.install()
    request.add_callback(sim.finish)
    try:
        if request.event.is_set():
            return 0  # asked to stop while the frames were precomputed: nothing served
        return _serve(sim, faults, args.flush)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
