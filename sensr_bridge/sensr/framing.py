# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Reading websocket messages (RFC 6455, server to client: unmasked) from a socket.

:class:`FrameReader` knows each payload's length from its header before reading it, so
oversized frames are skipped without being buffered, and it reads payloads with
``recv_into`` straight into one buffer instead of joining 16 KiB chunks. Control frames
(ping, pong) go to a callback; a close frame ends the stream with
:class:`ConnectionClosed`. The connection itself (handshake, TLS, keep-alive,
reconnects) is :mod:`sensr_bridge.sensr.client`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import socket
import struct
import time

from sensr_bridge.errors import SensrBridgeError

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_INTERNAL_ERROR = 1011
OVERFLOW_REASON = 'Writing buffer is full'
DEFAULT_TICK_S = 0.5
"""Longest a read waits before ``on_tick`` runs (the client's longest tick)."""


class ProtocolError(SensrBridgeError):
    """The server broke the websocket protocol; the connection is dropped."""


class ConnectionClosed(SensrBridgeError):
    """The server closed the connection (close frame or end of stream).

    Attributes:
        code: Close status code, or None when the stream just ended.
        reason: Close reason text.

    """

    def __init__(self, code: int | None, reason: str) -> None:
        """Initialize with the close code and reason."""
        super().__init__(f'closed by server (code {code}): {reason}' if code
                         else 'connection ended without a close frame')
        self.code = code
        self.reason = reason


@dataclass
class Frame:
    """One complete websocket message.

    Attributes:
        opcode: ``OP_BINARY`` or ``OP_TEXT``.
        data: The payload (None when it was skipped for being oversized).
        size: Payload size in bytes.

    """

    opcode: int
    data: bytearray | None
    size: int


class FrameReader:
    """Reads complete messages from a connected websocket socket (server side unmasked).

    Attributes:
        in_message: Whether part of a data message has been read and the rest has not
            (a connection lost now loses that message).
        received: Payload bytes of the current data message read so far.
        last_data: ``time.monotonic()`` of the last payload bytes of a data message.

    """

    def __init__(self, sock: socket.socket, max_size: int,
                 on_control: Callable[[int, bytes], None],
                 on_tick: Callable[[], None] | None = None, tick: float = DEFAULT_TICK_S) -> None:
        """Wrap a connected socket.

        Args:
            sock: The socket, after the handshake. With ``on_tick``, its timeout should
                be at most ``tick``.
            max_size: Larger messages are read and discarded, and reported with
                ``data=None``.
            on_control: Called with (opcode, payload) for ping and pong frames.
            on_tick: Called at least every ``tick`` seconds while reading (on socket
                timeouts and between reads); may raise to abort the read. Without it,
                socket timeouts propagate.
            tick: Seconds between ``on_tick`` calls.

        """
        self._sock = sock
        self._max = max_size
        self._on_control = on_control
        self._on_tick = on_tick
        self._tick = tick
        self._next_tick = time.monotonic() + tick
        self._head = bytearray(14)
        self._skip = bytearray(1 << 20)
        self.in_message = False
        self.received = 0
        self.last_data = time.monotonic()

    def _read_into(self, view: memoryview, *, data: bool = False) -> None:
        pos = 0
        while pos < len(view):
            try:
                n = self._sock.recv_into(view[pos:])
            except TimeoutError:
                if self._on_tick is None:
                    raise
                n = -1
            if n == 0:
                raise ConnectionClosed(None, '')
            now = time.monotonic()
            if n > 0:
                pos += n
                if data:
                    self.received += n
                    self.last_data = now
            if self._on_tick is not None and now >= self._next_tick:
                self._next_tick = now + self._tick
                self._on_tick()

    def _read_header(self) -> tuple[bool, int, int]:
        head = memoryview(self._head)
        self._read_into(head[:2])
        b0, b1 = head[0], head[1]
        if b0 & 0x70:
            msg = 'reserved bits set (no extension was negotiated)'
            raise ProtocolError(msg)
        if b1 & 0x80:
            msg = 'server frames must not be masked'
            raise ProtocolError(msg)
        length = b1 & 0x7F
        if length == 126:
            self._read_into(head[2:4])
            length = struct.unpack_from('>H', head, 2)[0]
        elif length == 127:
            self._read_into(head[2:10])
            length = struct.unpack_from('>Q', head, 2)[0]
        return bool(b0 & 0x80), b0 & 0x0F, length

    def _discard(self, length: int) -> None:
        view = memoryview(self._skip)
        while length:
            chunk = min(length, len(view))
            self._read_into(view[:chunk], data=True)
            length -= chunk

    def read(self) -> Frame:
        """Return the next data message, answering control frames on the way.

        Raises:
            ConnectionClosed: On a close frame or end of stream.
            ProtocolError: On a protocol violation.
            OSError: On socket errors (and timeouts when there is no ``on_tick``).

        """
        parts: list[bytearray] = []
        size = 0
        opcode = None
        oversized = False
        self.in_message = False
        self.received = 0
        while True:
            fin, op, length = self._read_header()
            if op >= 0x8:
                if not fin or length > 125:
                    msg = 'invalid control frame'
                    raise ProtocolError(msg)
                payload = bytearray(length)
                self._read_into(memoryview(payload))
                if op == OP_CLOSE:
                    code = struct.unpack_from('>H', payload)[0] if length >= 2 else None
                    raise ConnectionClosed(code, payload[2:].decode(errors='replace'))
                self._on_control(op, bytes(payload))
                continue
            if op == OP_CONT:
                if opcode is None:
                    msg = 'continuation frame without a message'
                    raise ProtocolError(msg)
            elif op in (OP_TEXT, OP_BINARY):
                if opcode is not None:
                    msg = 'new message before the previous one finished'
                    raise ProtocolError(msg)
                opcode = op
            else:
                msg = f'unknown opcode {op}'
                raise ProtocolError(msg)
            self.in_message = True
            self.last_data = time.monotonic()
            size += length
            if oversized or size > self._max:
                oversized = True
                parts.clear()
                self._discard(length)
            else:
                buf = bytearray(length)
                self._read_into(memoryview(buf), data=True)
                parts.append(buf)
            if fin:
                break
        self.in_message = False
        if oversized:
            return Frame(opcode, None, size)
        data = parts[0] if len(parts) == 1 else bytearray(b''.join(parts))
        return Frame(opcode, data, size)
