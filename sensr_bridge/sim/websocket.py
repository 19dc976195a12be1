# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The simulator's RFC 6455 server side on plain sockets: handshake, frames, close codes.

No permessage-deflate and no subprotocol, as in SENSR. Outgoing frames are
:class:`Out` items: the header and the payload pieces, written back to back with
``sendmsg`` (:func:`sendmsg_all`) straight from the precomputed buffers, never joined.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from typing import TYPE_CHECKING

from sensr_bridge.errors import SimulatorError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    import socket

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_CLIENT_OPCODES = frozenset((OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))
_WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

MAX_REQUEST_BYTES = 16384
"""Longest opening handshake request accepted."""
# SENSR never reads what clients send; cap it so a client cannot make us buffer much.
_MAX_CLIENT_PAYLOAD = 1 << 20

# Kinds of outgoing frames, i.e. what the sender does after writing one.
MESSAGE = 0
"""A data message: counted as sent, then the next item."""
PONG = 1
"""A pong: counted, then the next item."""
CLOSE = 2
"""A close frame: the sender waits for the client's answer, then ends."""
CUT = 3
"""Part of a frame: the sender ends, the connection is dropped mid-frame."""

_HTTP_REASONS = {400: 'Bad Request', 404: 'Not Found', 426: 'Upgrade Required'}


class HandshakeError(SimulatorError):
    """An opening handshake the server refuses, with the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class ProtocolError(SimulatorError):
    """A client frame that breaks RFC 6455, with the close code to answer."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class Out:
    """One outgoing websocket frame: buffers written back to back and what follows them.

    Attributes:
        kind: :data:`MESSAGE`, :data:`PONG`, :data:`CLOSE` or :data:`CUT`.
        buffers: Header and payload pieces.
        nbytes: Their total length.
        frame: Whether it is a regular frame of the clock (counted in ``frames_sent``).

    """

    __slots__ = ('buffers', 'frame', 'kind', 'nbytes')

    def __init__(self, kind: int, buffers: tuple[bytes | memoryview, ...], *,
                 frame: bool = False) -> None:
        self.kind = kind
        self.buffers = buffers
        self.nbytes = sum(len(b) for b in buffers)
        self.frame = frame


def header(opcode: int, length: int) -> bytes:
    """Return the header of a final, unmasked server frame."""
    first = 0x80 | opcode
    if length < 126:
        return struct.pack('!BB', first, length)
    if length < 65536:
        return struct.pack('!BBH', first, 126, length)
    return struct.pack('!BBQ', first, 127, length)


def message(opcode: int, *parts: bytes | memoryview, frame: bool = False) -> Out:
    """Return a data message of ``parts`` (one websocket frame, their concatenation)."""
    return Out(MESSAGE, (header(opcode, sum(len(p) for p in parts)), *parts), frame=frame)


def pong(payload: bytes) -> Out:
    """Return the pong answering a ping with ``payload``."""
    return Out(PONG, (header(OP_PONG, len(payload)), payload))


def close_frame(code: int | None, reason: str = '') -> Out:
    """Return a close frame with ``code`` and ``reason`` (None: an empty close frame)."""
    payload = b'' if code is None else struct.pack('!H', code) + reason.encode()[:123]
    return Out(CLOSE, (header(OP_CLOSE, len(payload)), payload))


def _valid_close_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1011 or 3000 <= code <= 4999


def close_reply_code(payload: bytes) -> int | None:
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


def handshake_key(request: bytes) -> str:
    """Validate an opening handshake and return its Sec-WebSocket-Key.

    Args:
        request: The request line and headers, without the blank line that ends them.

    Returns:
        The key, for :func:`handshake_response`.

    Raises:
        HandshakeError: With the HTTP status to answer.

    """
    lines = request.decode('latin-1').split('\r\n')
    parts = lines[0].split(' ')
    if len(parts) != 3 or parts[0] != 'GET' or parts[2] != 'HTTP/1.1':
        msg = 'not an HTTP/1.1 GET request'
        raise HandshakeError(400, msg)
    path = parts[1].split('?', 1)[0]
    if path != '/':
        msg = f'SENSR serves path / only, not {path}'
        raise HandshakeError(404, msg)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(':')
        if not sep:
            msg = f'malformed header line {line!r}'
            raise HandshakeError(400, msg)
        key = name.strip().lower()
        headers[key] = f'{headers[key]}, {value.strip()}' if key in headers else value.strip()
    connection = {token.strip().lower() for token in headers.get('connection', '').split(',')}
    if headers.get('upgrade', '').lower() != 'websocket' or 'upgrade' not in connection:
        msg = 'not a websocket upgrade request'
        raise HandshakeError(400, msg)
    if headers.get('sec-websocket-version') != '13':
        msg = 'only websocket version 13 is supported'
        raise HandshakeError(426, msg)
    key = headers.get('sec-websocket-key', '')
    try:
        nonce = base64.b64decode(key, validate=True)
    except binascii.Error:
        nonce = b''
    if len(nonce) != 16:
        msg = 'invalid Sec-WebSocket-Key'
        raise HandshakeError(400, msg)
    return key


def handshake_response(key: str) -> bytes:
    """Return the 101 answer to a handshake with Sec-WebSocket-Key ``key``."""
    digest = hashlib.sha1((key + _WS_GUID).encode(), usedforsecurity=False).digest()
    # No Sec-WebSocket-Extensions: permessage-deflate is never negotiated, as in SENSR.
    return ('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
            f'Sec-WebSocket-Accept: {base64.b64encode(digest).decode()}\r\n\r\n').encode()


def http_error(status: int, text: str) -> bytes:
    """Return the HTTP answer to a refused handshake (:class:`HandshakeError`)."""
    body = f'{text}\n'.encode()
    extra = 'Sec-WebSocket-Version: 13\r\n' if status == 426 else ''
    return (f'HTTP/1.1 {status} {_HTTP_REASONS[status]}\r\nContent-Type: text/plain\r\n'
            f'Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n').encode() + body


def read_frame(recv_exact: Callable[[int], bytes]) -> tuple[int, bytes]:
    """Read one client frame; control payloads are unmasked, data payloads are not.

    Args:
        recv_exact: Returns exactly that many bytes of the connection.

    Returns:
        The opcode and the payload.

    Raises:
        ProtocolError: The frame breaks RFC 6455 or is too large.

    """
    first, second = recv_exact(2)
    opcode = first & 0x0F
    length = second & 0x7F
    if first & 0x70 or opcode not in _CLIENT_OPCODES:
        msg = 'reserved bits or opcode used'
        raise ProtocolError(1002, msg)
    if not second & 0x80:
        msg = 'client frames must be masked'
        raise ProtocolError(1002, msg)
    if length == 126:
        (length,) = struct.unpack('!H', recv_exact(2))
    elif length == 127:
        (length,) = struct.unpack('!Q', recv_exact(8))
    if opcode >= OP_CLOSE and (not first & 0x80 or length > 125):
        msg = 'invalid control frame'
        raise ProtocolError(1002, msg)
    if length > _MAX_CLIENT_PAYLOAD:
        msg = 'message too big'
        raise ProtocolError(1009, msg)
    mask = recv_exact(4)
    payload = recv_exact(length)
    if opcode >= OP_CLOSE:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return opcode, payload


def sendmsg_all(sock: socket.socket, buffers: Sequence[bytes | memoryview]) -> None:
    """Write buffers back to back with scatter writes, without joining them."""
    views = [memoryview(b).cast('B') for b in buffers if len(b)]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if sent:
            views[0] = views[0][sent:]
