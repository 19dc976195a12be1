# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Websocket client for one SENSR port: connect, receive, keep alive, reconnect forever.

websocket-client performs the opening handshake (ws:// or wss:// with a CA file) and
sends pings and pongs. Incoming frames are read by :class:`~sensr_bridge.sensr.framing.FrameReader`
(oversized frames skipped unbuffered, payloads read into one buffer).

Everything that touches the socket runs on the client's one receiving thread: the socket
has a short timeout (a *tick*), and on every tick, and between reads, the client checks
its watchdogs and sends the keep-alive ping. This matters for TLS (an ``SSLSocket`` must
not be read and written from two threads at once) and lets one clock judge both:

* stall: no data message for ``stall_timeout`` seconds (pongs do not count, so a SENSR
  that answers pings but sends nothing is detected);
* half-open connection: no pong ``ping_timeout`` seconds after a ping.

Other threads only ever shut the socket down (under a lock) to wake the receiving thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
import dataclasses
import logging
import socket
import ssl
import threading
import time

import websocket

from sensr_bridge.errors import SensrBridgeError
from sensr_bridge.sensr.connection import ClientOptions, ClientStats, State
from sensr_bridge.sensr.framing import (
    CLOSE_INTERNAL_ERROR,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    OVERFLOW_REASON,
    ConnectionClosed,
    FrameReader,
    ProtocolError,
)

_LOG = logging.getLogger(__name__)

_LOG_BURST = 5
_LOG_WINDOW_S = 10.0


class WatchdogTimeout(SensrBridgeError):
    """A watchdog found the connection dead; the connection is dropped.

    Attributes:
        kind: ``stall`` (no data for ``stall_timeout``) or ``pong`` (no pong within
            ``ping_timeout``).

    """

    def __init__(self, kind: str, message: str) -> None:
        """Initialize with the watchdog kind and a human-readable message."""
        super().__init__(message)
        self.kind = kind


FrameCallback = Callable[[bytearray, int], None]
"""Receives each binary message and its receive time (wall clock ns)."""

SkipCallback = Callable[[str, str], None]
"""Receives ``(kind, text)`` for each message skipped or lost: ``text``, ``oversized``,
``partial`` (connection lost mid-message) or ``callback_failed``."""


class _Throttle:
    """At most ``burst`` lines per key in any ``window`` seconds; the rest are counted."""

    def __init__(self, burst: int = _LOG_BURST, window: float = _LOG_WINDOW_S) -> None:
        self._burst = burst
        self._window = window
        self._sent: dict[str, deque[float]] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> int | None:
        """Return None to suppress a line, else how many lines were suppressed before."""
        now = time.monotonic()
        with self._lock:
            sent = self._sent.setdefault(key, deque())
            while sent and now - sent[0] >= self._window:
                sent.popleft()
            if len(sent) >= self._burst:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            sent.append(now)
            return self._suppressed.pop(key, 0)


class SensrClient:
    """Receives one SENSR port on a thread and reconnects forever.

    Binary messages go to ``on_frame`` on the receiving thread, which must not block.
    Text, oversized and partially received messages are counted and reported to
    ``on_skipped``. Keep-alive pings and the stall and pong watchdogs run on the
    receiving thread too (see the module documentation). Log lines about connection
    losses and skipped messages are throttled.
    """

    def __init__(self, name: str, options: ClientOptions, on_frame: FrameCallback,
                 on_event: Callable[[str, str], None] | None = None,
                 on_skipped: SkipCallback | None = None) -> None:
        """Create the client; :meth:`start` connects.

        Args:
            name: Port name used in logs and diagnostics (e.g. ``points``).
            options: Connection settings.
            on_frame: Receives ``(payload, recv_time_ns)`` for each binary message.
            on_event: Receives ``(level, text)`` for state changes and errors
                ('info', 'warn', 'error').
            on_skipped: Receives ``(kind, text)`` for each message skipped or lost; when
                None, the client logs them itself through ``on_event`` (throttled).

        """
        self.name = name
        self.options = options
        self.stats = ClientStats()
        self.lock = threading.Lock()
        self._on_frame = on_frame
        self._event_sink = on_event or (lambda _level, _text: None)
        self._on_skipped = on_skipped
        self._stop = threading.Event()
        self._sock_lock = threading.Lock()
        self._ws: websocket.WebSocket | None = None
        self._reader: FrameReader | None = None
        self._ping_sent = 0.0
        self._last_ping = 0.0
        self._throttle = _Throttle()
        self._thread = threading.Thread(target=self._run, name=f'sensr-{name}', daemon=True)

    def start(self) -> None:
        """Start receiving (returns at once)."""
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop taking frames and close the connection.

        Args:
            timeout: Seconds to wait for the receiving thread.

        """
        self._stop.set()
        self._abort()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self.lock:
            self.stats.state = State.STOPPED

    def snapshot(self) -> ClientStats:
        """Return a consistent copy of the counters."""
        with self.lock:
            return dataclasses.replace(self.stats, close_codes=dict(self.stats.close_codes))

    @property
    def connected(self) -> bool:
        """Whether the port is connected now."""
        return self.stats.state is State.CONNECTED

    # --- state and reporting ------------------------------------------------------------

    def _set_state(self, state: State) -> float | None:
        """Change state; return the outage length on a reconnect, else None."""
        now = time.time_ns()
        outage = None
        with self.lock:
            prev = self.stats.state
            self.stats.state = state
            if state is State.CONNECTED:
                self.stats.connects += 1
                self.stats.failed_attempts = 0
                self.stats.connected_since_ns = now
                if self.stats.down_since_ns:
                    outage = (now - self.stats.down_since_ns) / 1e9
                    self.stats.outage_s_total += outage
                    self.stats.last_outage_s = outage
                self.stats.down_since_ns = 0
            elif prev is State.CONNECTED:
                self.stats.disconnects += 1
                self.stats.down_since_ns = now
        return outage

    def _on_event(self, level: str, text: str) -> None:
        """Hand a line to ``on_event``; a failing handler must not end the client."""
        try:
            self._event_sink(level, text)
        except Exception:
            _LOG.exception('%s: event handler failed for %r', self.name, text)

    def _event(self, level: str, key: str, text: str) -> None:
        """Report a line, at most a few per key in a window; say how many were dropped."""
        suppressed = self._throttle.admit(key)
        if suppressed is None:
            return
        if suppressed:
            text += f' ({suppressed} similar messages suppressed)'
        self._on_event(level, text)

    def _skipped(self, kind: str, text: str) -> None:
        if self._on_skipped is not None:
            try:
                self._on_skipped(kind, text)
            except Exception:
                _LOG.exception('%s: skip handler failed for %r', self.name, text)
        else:
            self._event('warn', f'skipped_{kind}', f'{self.name}: {text}')

    def _connected(self, outage: float | None) -> None:
        if outage is None:
            self._on_event('info', f'{self.name}: connected to {self.options.url}')
            return
        with self.lock:
            reconnects = self.stats.connects - 1
        self._event('info', 'connected', f'{self.name}: reconnected to {self.options.url} '
                    f'after {outage:.2f} s without connection (reconnect {reconnects}); '
                    'frames SENSR sent meanwhile are lost')

    def _note_failure(self, text: str) -> None:
        with self.lock:
            self.stats.failed_attempts += 1
            self.stats.last_error = text
            attempts = self.stats.failed_attempts
        # Throttle: the first failure, every 10th up to 100, then every 100th.
        if attempts == 1 or attempts % (10 if attempts <= 100 else 100) == 0:
            self._event('warn', 'connect_failed', f'{self.name}: {text} (attempt {attempts})')

    def _lost(self, text: str) -> None:
        with self.lock:
            self.stats.last_error = text
        self._event('warn', 'lost', f'{self.name}: connection lost: {text}')

    def _closed(self, exc: ConnectionClosed) -> None:
        with self.lock:
            if exc.code is not None:
                self.stats.close_codes[exc.code] = self.stats.close_codes.get(exc.code, 0) + 1
            overflow = exc.code == CLOSE_INTERNAL_ERROR and OVERFLOW_REASON in exc.reason
            if overflow:
                self.stats.overflow_closes += 1
            self.stats.last_error = str(exc)
        if overflow:
            self._event('error', 'overflow', f'{self.name}: SENSR dropped us because its '
                        f'output buffer is full ({exc.reason!r}): the bridge is not keeping up')
        else:
            self._event('warn', 'lost', f'{self.name}: {exc}')

    def _connect_error(self, exc: BaseException) -> str:
        url = self.options.url
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (f'TLS certificate of {url} rejected: {exc.verify_message}; check that '
                    f'ca_file ({self.options.ca_file or "system CAs"}) holds the CA that '
                    'signed the SENSR certificate (and tls_check_hostname)')
        if isinstance(exc, ssl.SSLError):
            return f'TLS handshake with {url} failed: {exc}'
        return f'connect to {url} failed: {exc or type(exc).__name__}'

    # --- connection ---------------------------------------------------------------------

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
        ws.settimeout(self.options.tick)
        return ws

    def _abort(self) -> None:
        """Wake the receiving thread by shutting its socket down (any thread)."""
        with self._sock_lock:
            ws = self._ws
            if ws is not None and ws.sock is not None:
                # socket.socket.shutdown, not SSLSocket.shutdown: that would drop the TLS
                # state under the feet of the receiving thread.
                try:
                    socket.socket.shutdown(ws.sock, socket.SHUT_RDWR)
                except OSError:
                    pass

    def _close(self, ws: websocket.WebSocket) -> None:
        """Close the socket (receiving thread only)."""
        with self._sock_lock:
            self._ws = None
            try:
                ws.shutdown()
            except (OSError, websocket.WebSocketException):
                pass

    def _run(self) -> None:
        delay = self.options.backoff_initial
        while not self._stop.is_set():
            self._set_state(State.CONNECTING)
            try:
                ws = self._connect()
            except Exception as exc:
                # Any failure to connect (refused, timeout, TLS, bad handshake) is retried.
                self._note_failure(self._connect_error(exc))
                if self._give_up():
                    self._set_state(State.DISCONNECTED)
                    return
                delay = self._back_off(delay)
                continue
            with self._sock_lock:
                self._ws = ws
            if self._stop.is_set():
                self._close(ws)
                break
            self._ping_sent = 0.0
            self._last_ping = time.monotonic()
            self._connected(self._set_state(State.CONNECTED))
            started, messages = time.monotonic(), self._messages()
            try:
                self._receive(ws)
            except ConnectionClosed as exc:
                if not self._stop.is_set():
                    self._closed(exc)
            except WatchdogTimeout as exc:
                with self.lock:
                    if exc.kind == 'stall':
                        self.stats.stall_timeouts += 1
                    else:
                        self.stats.pong_timeouts += 1
                self._lost(str(exc))
            except (OSError, ProtocolError, websocket.WebSocketException) as exc:
                if not self._stop.is_set():
                    self._lost(str(exc) or type(exc).__name__)
            except Exception as exc:
                # A bug must not end the client: report it and reconnect.
                _LOG.exception('%s: unexpected error while receiving', self.name)
                self._lost(f'unexpected error: {exc!r}')
            finally:
                self._lost_partial()
                self._close(ws)
                self._set_state(State.DISCONNECTED)
            if self._stop.is_set():
                break
            lasted = time.monotonic() - started
            if self._messages() > messages and lasted >= self.options.healthy_after:
                delay = self.options.backoff_initial  # reconnect at once, as after an outage
                continue
            # Closed before any data (a proxy, a SENSR refusing another client or shutting
            # down: often a normal close) or soon after: reconnecting at once made a storm
            # of hundreds of connections a second.
            with self.lock:
                self.stats.unhealthy_connections += 1
                count = self.stats.unhealthy_connections
            what = ('without delivering data' if self._messages() == messages
                    else f'after {lasted:.2f} s')
            self._event('warn', 'unhealthy', f'{self.name}: the connection ended {what}; '
                        f'reconnecting in {delay:.2f} s ({count} such connections so far)')
            delay = self._back_off(delay)

    def _messages(self) -> int:
        """Messages received on this port so far, of any kind."""
        with self.lock:
            return self.stats.frames + self.stats.oversized + self.stats.text_frames

    def _back_off(self, delay: float) -> float:
        """Wait ``delay`` (reported as ``reconnect_delay_s``); return the next delay."""
        with self.lock:
            self.stats.reconnect_delay_s = delay
        self._stop.wait(delay)
        return min(delay * 2, self.options.backoff_max)

    def _give_up(self) -> bool:
        limit = self.options.max_reconnects
        if limit and self.stats.failed_attempts >= limit:
            self._on_event('error', f'{self.name}: giving up after {limit} failed attempts')
            return True
        return False

    # --- receiving (receiving thread) -----------------------------------------------------

    def _receive(self, ws: websocket.WebSocket) -> None:
        reader = FrameReader(ws.sock, self.options.max_frame_bytes, self._control,
                             on_tick=self._watchdog, tick=self.options.tick)
        self._reader = reader
        while not self._stop.is_set():
            frame = reader.read()
            now = time.time_ns()
            with self.lock:
                self.stats.last_frame_ns = now
                self.stats.reconnect_delay_s = 0.0
                if frame.data is None:
                    self.stats.oversized += 1
                elif frame.opcode == OP_TEXT:
                    self.stats.text_frames += 1
                else:
                    self.stats.frames += 1
                    self.stats.bytes += frame.size
            if frame.data is None:
                self._skipped('oversized', f'skipped a message of {frame.size} bytes (over '
                              f'max_frame_bytes {self.options.max_frame_bytes})')
            elif frame.opcode == OP_TEXT:
                self._skipped('text', f'skipped a text message of {frame.size} bytes '
                              '(SENSR sends binary protobuf)')
            else:
                try:
                    self._on_frame(frame.data, now)
                except Exception as exc:
                    with self.lock:
                        self.stats.callback_errors += 1
                    _LOG.debug('%s: frame callback failed', self.name, exc_info=True)
                    self._skipped('callback_failed', f'frame handler failed: {exc!r}')

    def _lost_partial(self) -> None:
        """Count a message cut by the end of the connection."""
        reader, self._reader = self._reader, None
        if reader is None or not reader.in_message or self._stop.is_set():
            return
        with self.lock:
            self.stats.partial_frames += 1
        self._skipped('partial', f'lost a message after {reader.received} bytes: the '
                      'connection ended in its middle')

    def _watchdog(self) -> None:
        """Check the stall and pong deadlines and send the keep-alive ping."""
        ws, reader = self._ws, self._reader
        if self._stop.is_set() or ws is None or reader is None:
            msg = 'stopping'
            raise ConnectionClosed(None, msg)
        opts = self.options
        now = time.monotonic()
        idle = now - reader.last_data
        if opts.stall_timeout and idle > opts.stall_timeout:
            msg = (f'no data for {idle:.2f} s (stall_timeout {opts.stall_timeout:g} s): SENSR '
                   'stalled or the link is down')
            raise WatchdogTimeout('stall', msg)
        if not opts.ping_interval:
            return
        if self._ping_sent and now - self._ping_sent > opts.ping_timeout:
            msg = (f'no pong within {opts.ping_timeout:g} s of a ping (half-open connection '
                   'or SENSR hung)')
            raise WatchdogTimeout('pong', msg)
        if not self._ping_sent and now - self._last_ping >= opts.ping_interval:
            self._ping_sent = self._last_ping = now
            ws.ping(b'sensr_bridge')

    def _control(self, opcode: int, payload: bytes) -> None:
        ws = self._ws
        if opcode == OP_PING and ws is not None:
            ws.pong(payload)
        elif opcode == OP_PONG:
            self._ping_sent = 0.0
