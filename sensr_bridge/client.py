# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Websocket client for one SENSR port: connect, receive, keep alive, reconnect forever.

websocket-client performs the opening handshake (ws:// or wss:// with a CA file) and
sends pings, pongs and close frames. Incoming frames are read by :class:`FrameReader`,
a small RFC 6455 reader that knows each payload's length from its header before reading
it, so oversized frames are skipped without being buffered, and reads payloads with
``recv_into`` straight into one buffer instead of joining 16 KiB chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import enum
import logging
import socket
import ssl
import struct
import threading
import time

import websocket

from sensr_bridge.errors import ConfigError, SensrBridgeError

_LOG = logging.getLogger(__name__)

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_INTERNAL_ERROR = 1011
OVERFLOW_REASON = 'Writing buffer is full'


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


class State(str, enum.Enum):
    """Connection state of a port."""

    DISCONNECTED = 'disconnected'
    CONNECTING = 'connecting'
    CONNECTED = 'connected'
    STOPPED = 'stopped'


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
    """Reads complete messages from a connected websocket socket (server side unmasked)."""

    def __init__(self, sock: socket.socket, max_size: int,
                 on_control: Callable[[int, bytes], None]) -> None:
        """Wrap a connected socket.

        Args:
            sock: The socket, after the handshake.
            max_size: Larger messages are read and discarded, and reported with
                ``data=None``.
            on_control: Called with (opcode, payload) for ping and pong frames.

        """
        self._sock = sock
        self._max = max_size
        self._on_control = on_control
        self._head = bytearray(14)
        self._skip = bytearray(1 << 20)

    def _read_into(self, view: memoryview) -> None:
        pos = 0
        while pos < len(view):
            n = self._sock.recv_into(view[pos:])
            if n == 0:
                raise ConnectionClosed(None, '')
            pos += n

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
            self._read_into(view[:chunk])
            length -= chunk

    def read(self) -> Frame:
        """Return the next data message, answering control frames on the way.

        Raises:
            ConnectionClosed: On a close frame or end of stream.
            ProtocolError: On a protocol violation.
            OSError: On socket errors and timeouts.

        """
        parts: list[bytearray] = []
        size = 0
        opcode = None
        oversized = False
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
            size += length
            if oversized or size > self._max:
                oversized = True
                parts.clear()
                self._discard(length)
            else:
                buf = bytearray(length)
                self._read_into(memoryview(buf))
                parts.append(buf)
            if fin:
                break
        if oversized:
            return Frame(opcode, None, size)
        data = parts[0] if len(parts) == 1 else bytearray(b''.join(parts))
        return Frame(opcode, data, size)


@dataclass
class ClientOptions:
    """Connection settings of one port.

    Attributes:
        url: ``ws://host:port`` or ``wss://host:port``.
        ca_file: CA certificate to verify a wss:// server ('' = system CAs).
        check_hostname: Verify the server name against its certificate.
        connect_timeout: Seconds allowed for TCP connect plus handshake.
        stall_timeout: Seconds without any byte from the server before it is
            considered dead and the connection is dropped.
        ping_interval: Seconds between keep-alive pings (0 = none).
        ping_timeout: Seconds to wait for a pong before the connection is dropped.
        backoff_initial: First reconnect delay, seconds.
        backoff_max: Cap of the exponential reconnect delay, seconds.
        max_reconnects: Give up after this many failed attempts in a row (0 = never).
        max_frame_bytes: Larger messages are discarded and counted.

    """

    url: str
    ca_file: str = ''
    check_hostname: bool = True
    connect_timeout: float = 3.0
    stall_timeout: float = 5.0
    ping_interval: float = 2.0
    ping_timeout: float = 3.0
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    max_reconnects: int = 0
    max_frame_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        """Validate the settings."""
        if not self.url.startswith(('ws://', 'wss://')):
            msg = f'SENSR url must start with ws:// or wss://, got {self.url!r}'
            raise ConfigError(msg)
        if self.ping_interval and self.ping_timeout <= 0:
            msg = 'ping_timeout must be > 0 when pings are enabled'
            raise ConfigError(msg)


@dataclass
class ClientStats:
    """Counters of one port (read them under :attr:`SensrClient.lock`)."""

    state: State = State.DISCONNECTED
    frames: int = 0
    bytes: int = 0
    connects: int = 0
    disconnects: int = 0
    failed_attempts: int = 0
    oversized: int = 0
    text_frames: int = 0
    overflow_closes: int = 0
    last_error: str = ''
    last_frame_ns: int = 0
    connected_since_ns: int = 0
    down_since_ns: int = 0
    outage_s_total: float = 0.0
    close_codes: dict[int, int] = field(default_factory=dict)


FrameCallback = Callable[[bytearray, int], None]
"""Receives each binary message and its receive time (wall clock ns)."""


class SensrClient:
    """Receives one SENSR port on a thread and reconnects forever.

    Binary messages go to ``on_frame`` on the receiving thread, which must not block.
    Text and oversized messages are counted and skipped. Keep-alive pings are sent from
    the receiving thread between frames and from a timer while a large frame is read.
    """

    def __init__(self, name: str, options: ClientOptions, on_frame: FrameCallback,
                 on_event: Callable[[str, str], None] | None = None) -> None:
        """Create the client; :meth:`start` connects.

        Args:
            name: Port name used in logs and diagnostics (e.g. ``points``).
            options: Connection settings.
            on_frame: Receives ``(payload, recv_time_ns)`` for each binary message.
            on_event: Receives ``(level, text)`` for state changes and errors
                ('info', 'warn', 'error').

        """
        self.name = name
        self.options = options
        self.stats = ClientStats()
        self.lock = threading.Lock()
        self._on_frame = on_frame
        self._on_event = on_event or (lambda _level, _text: None)
        self._stop = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self._last_pong = 0.0
        self._last_ping = 0.0
        self._thread = threading.Thread(target=self._run, name=f'sensr-{name}', daemon=True)
        self._keeper: threading.Thread | None = None

    def start(self) -> None:
        """Start receiving (returns at once)."""
        self._thread.start()
        if self.options.ping_interval:
            self._keeper = threading.Thread(target=self._keep_alive, daemon=True,
                                            name=f'sensr-{self.name}-ping')
            self._keeper.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop taking frames and close the connection.

        Args:
            timeout: Seconds to wait for the receiving thread.

        """
        self._stop.set()
        self._drop_socket()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._keeper is not None:
            self._keeper.join(timeout)
        with self.lock:
            self.stats.state = State.STOPPED

    @property
    def connected(self) -> bool:
        """Whether the port is connected now."""
        return self.stats.state is State.CONNECTED

    def _set_state(self, state: State) -> None:
        now = time.time_ns()
        with self.lock:
            prev = self.stats.state
            self.stats.state = state
            if state is State.CONNECTED:
                self.stats.connects += 1
                self.stats.failed_attempts = 0
                self.stats.connected_since_ns = now
                if self.stats.down_since_ns:
                    self.stats.outage_s_total += (now - self.stats.down_since_ns) / 1e9
                self.stats.down_since_ns = 0
            elif prev is State.CONNECTED:
                self.stats.disconnects += 1
                self.stats.down_since_ns = now

    def _connect(self) -> websocket.WebSocket:
        sslopt: dict[str, object] = {}
        if self.options.url.startswith('wss://'):
            sslopt = {'cert_reqs': ssl.CERT_REQUIRED, 'check_hostname': self.options.check_hostname}
            if self.options.ca_file:
                sslopt['ca_certs'] = self.options.ca_file
        ws = websocket.WebSocket(sslopt=sslopt, enable_multithread=True,
                                 skip_utf8_validation=True)
        # SENSR does not negotiate permessage-deflate; no subprotocol, path '/'.
        ws.connect(self.options.url, timeout=self.options.connect_timeout,
                   suppress_origin=True)
        ws.settimeout(self.options.stall_timeout)
        return ws

    def _run(self) -> None:
        delay = self.options.backoff_initial
        while not self._stop.is_set():
            self._set_state(State.CONNECTING)
            try:
                ws = self._connect()
            except (OSError, websocket.WebSocketException, ssl.SSLError) as exc:
                self._note_failure(f'connect to {self.options.url} failed: {exc}')
                if self._give_up():
                    return
                self._stop.wait(delay)
                delay = min(delay * 2, self.options.backoff_max)
                continue
            delay = self.options.backoff_initial
            self._ws = ws
            self._last_pong = self._last_ping = time.monotonic()
            self._set_state(State.CONNECTED)
            self._on_event('info', f'{self.name}: connected to {self.options.url}')
            try:
                self._receive(ws)
            except ConnectionClosed as exc:
                self._closed(exc)
            except (OSError, ProtocolError, websocket.WebSocketException) as exc:
                if not self._stop.is_set():
                    self._note_failure(f'connection lost: {exc or type(exc).__name__}')
            finally:
                self._drop_socket()
                self._set_state(State.DISCONNECTED)

    def _give_up(self) -> bool:
        limit = self.options.max_reconnects
        if limit and self.stats.failed_attempts >= limit:
            self._on_event('error', f'{self.name}: giving up after {limit} failed attempts')
            return True
        return False

    def _note_failure(self, text: str) -> None:
        with self.lock:
            self.stats.failed_attempts += 1
            self.stats.last_error = text
            attempts = self.stats.failed_attempts
        # Throttle: the first failure, then every 10th, is worth a line.
        if attempts == 1 or attempts % 10 == 0:
            self._on_event('warn', f'{self.name}: {text} (attempt {attempts})')

    def _closed(self, exc: ConnectionClosed) -> None:
        with self.lock:
            if exc.code is not None:
                self.stats.close_codes[exc.code] = self.stats.close_codes.get(exc.code, 0) + 1
            overflow = exc.code == CLOSE_INTERNAL_ERROR and OVERFLOW_REASON in exc.reason
            if overflow:
                self.stats.overflow_closes += 1
            self.stats.last_error = str(exc)
        if overflow:
            self._on_event('error', f'{self.name}: SENSR dropped us because its output buffer '
                           f'is full ({exc.reason!r}): the bridge is not keeping up')
        elif not self._stop.is_set():
            self._on_event('warn', f'{self.name}: {exc}')

    def _receive(self, ws: websocket.WebSocket) -> None:
        reader = FrameReader(ws.sock, self.options.max_frame_bytes, self._control)
        while not self._stop.is_set():
            frame = reader.read()
            now = time.time_ns()
            with self.lock:
                self.stats.last_frame_ns = now
                if frame.data is None:
                    self.stats.oversized += 1
                elif frame.opcode == OP_TEXT:
                    self.stats.text_frames += 1
                else:
                    self.stats.frames += 1
                    self.stats.bytes += frame.size
            if frame.data is None:
                self._on_event('warn', f'{self.name}: skipped a message of {frame.size} bytes '
                               f'(over max_frame_bytes {self.options.max_frame_bytes})')
            elif frame.opcode == OP_TEXT:
                self._on_event('warn', f'{self.name}: skipped a text message of {frame.size} '
                               'bytes (SENSR sends binary protobuf)')
            else:
                self._on_frame(frame.data, now)

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self._send(lambda ws: ws.pong(payload))
        elif opcode == OP_PONG:
            self._last_pong = time.monotonic()

    def _send(self, action: Callable[[websocket.WebSocket], None]) -> None:
        ws = self._ws
        if ws is None:
            return
        try:
            action(ws)
        except (OSError, websocket.WebSocketException) as exc:
            _LOG.debug('%s: send failed: %s', self.name, exc)
            self._drop_socket()

    def _keep_alive(self) -> None:
        interval = self.options.ping_interval
        while not self._stop.wait(min(interval, self.options.ping_timeout) / 2):
            if self.stats.state is not State.CONNECTED:
                continue
            now = time.monotonic()
            if self._last_ping > self._last_pong and now - self._last_ping > \
                    self.options.ping_timeout:
                self._note_failure(f'no pong within {self.options.ping_timeout:.1f} s '
                                   '(half-open connection?)')
                self._drop_socket()
            elif now - self._last_ping >= interval and self._last_pong >= self._last_ping:
                self._last_ping = now
                self._send(lambda ws: ws.ping(b'sensr_bridge'))

    def _drop_socket(self) -> None:
        # shutdown() wakes a recv_into blocked in the receiving thread.
        ws, self._ws = self._ws, None
        if ws is None or ws.sock is None:
            return
        try:
            ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            ws.sock.close()
        except OSError:
            pass
