# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The simulator's served ports and their clients: listener, reader and sender threads.

A :class:`Port` accepts connections on one port (:class:`Ports`: the served ones); each
becomes a :class:`Client` with a reader thread (handshake, pings, close) and a sender
thread that writes its queued frames. What a client needs of the simulator is in its
:class:`ClientContext`.
"""

from __future__ import annotations

from collections import deque
import contextlib
from dataclasses import dataclass
import select
import socket
import ssl
import threading
from typing import TYPE_CHECKING

from sensr_bridge.errors import ConfigError, SimulatorError
from sensr_bridge.sensr import protocol
from sensr_bridge.sim import websocket
from sensr_bridge.sim.config import COUNTERS, OUTPUT, POINT, PortStats, check_loopback
from sensr_bridge.sim.frames import overflow_event

if TYPE_CHECKING:
    from collections.abc import Callable

    from sensr_bridge.sim.config import SimulatorConfig

OVERFLOW_CLOSE_CODE = 1011
"""Close code of a client whose backlog overflowed, as SENSR's."""
OVERFLOW_CLOSE_REASON = 'Writing buffer is full'
"""Close reason of a client whose backlog overflowed, as SENSR's."""

_HANDSHAKE_TIMEOUT_S = 5.0
_CLOSE_TIMEOUT_S = 2.0
JOIN_TIMEOUT_S = 5.0
"""How long to wait for a client's threads to end."""
_ACCEPT_RETRY_S = 0.1


@dataclass
class ClientContext:
    """What the clients share with their simulator.

    Attributes:
        config: The simulator's settings (backlog limit, overflow action, SO_SNDBUF).
        tls: The server's TLS context (None: plain ``ws://``).
        register: Records a client whose handshake completed; False: it must go away.
        forget: Removes a finished client.
        ignore_pings: Whether pings go unanswered (a fault); changes while clients run.

    """

    config: SimulatorConfig
    tls: ssl.SSLContext | None
    register: Callable[[Client], bool]
    forget: Callable[[Client], None]
    ignore_pings: bool = False


class Port:
    """One served port: its listener, its clients and its counters.

    Attributes:
        role: ``'output'`` or ``'point'``.
        requested: The port asked for (0: any free one).
        port: The port listened on (None before the first :meth:`listen`); kept when the
            listener closes, so that it listens on the same port again.
        clients: Connected clients; guarded by the simulator's condition.
        stall_until: Monotonic time until which no frames are sent (a fault).
        reject: Close code and reason every new client gets at once (a fault), or None.

    Args:
        role: ``'output'`` or ``'point'``.
        requested: The port to listen on (0: any free one).
        notify: Called whenever a counter changes.

    """

    def __init__(self, role: str, requested: int, notify: Callable[[], None]) -> None:
        self.role = role
        self.requested = requested
        self.port: int | None = None
        self.clients: set[Client] = set()
        self.stall_until = 0.0
        self.reject: tuple[int, str] | None = None
        self._notify = notify
        self._lock = threading.Lock()
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        """Whether the port accepts connections now."""
        return self._listener is not None

    def add(self, **counts: int) -> None:
        """Add to counters (:data:`sensr_bridge.sim.config.COUNTERS`)."""
        with self._lock:
            for name, value in counts.items():
                self._counters[name] += value
        self._notify()

    def count_sent(self, item: websocket.Out) -> None:
        """Count a frame written completely."""
        with self._lock:
            self._counters['bytes_sent'] += item.nbytes
            if item.kind == websocket.MESSAGE:
                self._counters['messages_sent'] += 1
                self._counters['frames_sent'] += item.frame
            elif item.kind == websocket.PONG:
                self._counters['pongs'] += 1
        self._notify()

    def snapshot(self, clients: int) -> PortStats:
        """Return the counters, with ``clients`` connected now."""
        with self._lock:
            return PortStats(port=self.port, listening=self.listening, clients=clients,
                             **self._counters)

    def listen(self, family: socket.AddressFamily, address: str,
               on_accept: Callable[[Port, socket.socket], None]) -> None:
        """Listen and accept connections in a thread of its own.

        Args:
            family: Address family of ``address``.
            address: The loopback address to bind.
            on_accept: Called with each accepted connection, in the accepting thread.

        Raises:
            SimulatorError: The port cannot be bound.

        """
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
        """Stop accepting and close the listener; connected clients stay."""
        if self._listener is None or self._wake is None or self._thread is None:
            return
        self._wake[1].send(b'x')
        self._thread.join()
        self._listener.close()
        for end in self._wake:
            end.close()
        self._listener = self._wake = self._thread = None

    def _accept_loop(self, on_accept: Callable[[Port, socket.socket], None]) -> None:
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


class Ports:
    """The served ports by role (``'output'``, ``'point'``).

    Attributes:
        by_role: The ports, output first.

    Args:
        config: The simulator's settings (host, ports).
        notify: Called whenever a port's counter changes.

    """

    def __init__(self, config: SimulatorConfig, notify: Callable[[], None]) -> None:
        self._host = config.host
        self.by_role = {role: Port(role, requested, notify) for role, requested in
                        ((OUTPUT, config.output_port), (POINT, config.point_port))
                        if requested is not None}

    def roles(self, port: str | int | None) -> tuple[str, ...]:
        """Return the roles a port argument names.

        Args:
            port: Role name, port number (also 5050 and 5051 before they are bound), or
                None: all ports.

        Raises:
            ConfigError: No served port has that name or number.

        """
        if port is None:
            return tuple(self.by_role)
        if isinstance(port, str) and port in self.by_role:
            return (port,)
        if isinstance(port, int):
            for role, served in self.by_role.items():
                if port == served.port:
                    return (role,)
            defaults = {protocol.OUTPUT_PORT: OUTPUT, protocol.POINT_PORT: POINT}
            if defaults.get(port) in self.by_role:
                return (defaults[port],)
        msg = f'port {port!r} is not served (served: {", ".join(self.by_role)})'
        raise ConfigError(msg)

    def listen(self, roles: tuple[str, ...],
               on_accept: Callable[[Port, socket.socket], None]) -> None:
        """Listen on the ports of ``roles`` that do not listen yet.

        Raises:
            SimulatorError: The host does not resolve or a port cannot be bound.

        """
        try:
            infos = socket.getaddrinfo(self._host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            msg = f'cannot resolve {self._host}: {exc}'
            raise SimulatorError(msg) from exc
        family, _, _, _, sockaddr = infos[0]
        check_loopback(str(sockaddr[0]))
        for role in roles:
            if not self.by_role[role].listening:
                self.by_role[role].listen(family, str(sockaddr[0]), on_accept)


class Client:
    """One websocket client: a reader thread (handshake, pings, close) and a sender thread.

    Attributes:
        port: The port it connected to.
        thread: The reader thread; the client is gone when it ends.

    Args:
        context: What it shares with the simulator.
        port: The port it connected to.
        sock: The accepted connection.

    """

    def __init__(self, context: ClientContext, port: Port, sock: socket.socket) -> None:
        self.port = port
        self._context = context
        self._config = context.config
        self._sock = sock
        self._cond = threading.Condition()
        self._data: deque[websocket.Out] = deque()
        self._control: deque[websocket.Out] = deque()
        self._closing = False
        self._aborted = False
        self._reader_done = threading.Event()
        self._rbuf = bytearray()
        self.thread = threading.Thread(target=self._run, name=f'sim-{port.role}-client',
                                       daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name=f'sim-{port.role}-send',
                                        daemon=True)

    # Called by other threads.

    def enqueue(self, item: websocket.Out, *, overflow_check: bool = True) -> bool:
        """Queue a data message; False when the client is closing or gone.

        Args:
            item: The message.
            overflow_check: Apply the backlog limit (``max_queue_frames``).

        """
        with self._cond:
            if self._closing or self._aborted:
                return False
            self._data.append(item)
            limit = self._config.max_queue_frames
            if overflow_check and limit is not None and len(self._data) > limit:
                self._overflow(limit)
            self._cond.notify()
        return True

    def close(self, code: int | None, reason: str = '', *, flush: bool = False) -> None:
        """Start the closing handshake.

        Args:
            code: Close code (None: an empty close frame).
            reason: Close reason.
            flush: Send the queued messages first; else drop them.

        """
        with self._cond:
            self._queue_close(code, reason, flush=flush)
            self._cond.notify()

    def abort(self) -> None:
        """Drop the connection without a close frame (TCP FIN)."""
        with self._cond:
            self._aborted = True
            self._cond.notify()
        self._shutdown()

    # Internals.

    def _overflow(self, limit: int) -> None:
        action = self._config.overflow_action
        if action == 'drop':
            dropped = len(self._data) - limit
            for _ in range(dropped):
                self._data.popleft()
        else:
            dropped = len(self._data)
            self._data.clear()
            if action in ('event', 'both') and self.port.role == OUTPUT:
                self._data.append(websocket.message(websocket.OP_BINARY, overflow_event()))
            if action in ('close', 'both'):
                self._queue_close(OVERFLOW_CLOSE_CODE, OVERFLOW_CLOSE_REASON, flush=True)
        self.port.add(overflows=1, frames_dropped=dropped)

    def _queue_close(self, code: int | None, reason: str, *, flush: bool) -> None:
        if self._closing or self._aborted:
            return
        self._closing = True
        item = websocket.close_frame(code, reason)
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
            registered = self._context.register(self)
            if registered:
                self._sender.start()
                self._read_loop()
        except websocket.ProtocolError as exc:
            self.close(exc.code, str(exc))
        except websocket.HandshakeError as exc:
            self.port.add(handshake_failures=1)
            with contextlib.suppress(OSError):
                self._sock.sendall(websocket.http_error(exc.status, str(exc)))
        except (OSError, EOFError):
            if not registered:
                self.port.add(handshake_failures=1)
        finally:
            self._finish(sender_started=registered)
            self._context.forget(self)

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
            self._sender.join(JOIN_TIMEOUT_S)
        self._sock.close()

    def _handshake(self) -> None:
        self._sock.settimeout(_HANDSHAKE_TIMEOUT_S)
        if self._config.send_buffer_bytes is not None:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                  self._config.send_buffer_bytes)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = self._context.tls
        if tls is not None:
            wrapped = tls.wrap_socket(self._sock, server_side=True,
                                      do_handshake_on_connect=False)
            with self._cond:
                self._sock = wrapped
            wrapped.do_handshake()
        while (end := self._rbuf.find(b'\r\n\r\n')) < 0:
            if len(self._rbuf) > websocket.MAX_REQUEST_BYTES:
                msg = 'request headers too long'
                raise websocket.HandshakeError(400, msg)
            self._fill()
        key = websocket.handshake_key(bytes(self._rbuf[:end]))
        del self._rbuf[:end + 4]
        self._sock.sendall(websocket.handshake_response(key))
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

    def _read_loop(self) -> None:
        while True:
            opcode, payload = websocket.read_frame(self._recv_exact)
            if opcode == websocket.OP_PING:
                self.port.add(pings=1)
                if not self._context.ignore_pings:
                    with self._cond:
                        self._control.append(websocket.pong(payload))
                        self._cond.notify()
            elif opcode == websocket.OP_CLOSE:
                # Echo the code; a no-op when we started the closing handshake ourselves.
                self.close(websocket.close_reply_code(payload))
                return
            # SENSR ignores anything else a client sends (data frames, unsolicited pongs).

    def _write(self, buffers: tuple[bytes | memoryview, ...]) -> None:
        if isinstance(self._sock, ssl.SSLSocket):
            for buffer in buffers:
                self._sock.sendall(buffer)
        else:
            websocket.sendmsg_all(self._sock, buffers)

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
                if item.kind == websocket.CLOSE:
                    # Let the client answer before closing TCP (the server closes first).
                    self._reader_done.wait(_CLOSE_TIMEOUT_S)
                    return
                if item.kind == websocket.CUT:
                    return
        except OSError:
            return
        finally:
            self._shutdown()
