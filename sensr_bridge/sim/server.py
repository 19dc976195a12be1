# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""A SENSR simulator: the two websocket streams of a SENSR master, on loopback.

:class:`Simulator` serves ``sensr_proto.OutputMessage`` on the output port (5050) and
``sensr_proto.PointResult`` on the point port (5051) the way SENSR does: one serialized
message per binary websocket message, request path ``/``, nothing expected from the
client. Every connected client gets every frame at a steady rate. The content is a
synthetic site (:mod:`sensr_bridge.sim.scene`) that is deterministic for a seed, and
faults can be injected while it runs.

The class is the public face of its collaborators and holds the serving part: its
ports and clients (:mod:`sensr_bridge.sim.connection`), the frames' content
(:class:`sensr_bridge.sim.frames.Frames`), the frame clock
(:class:`sensr_bridge.sim.clock.FrameClock`) and the bad frames
(:class:`sensr_bridge.sim.injection.BadFrames`).

Size: a little over 500 lines, because the class is the simulator's whole public
interface (lifecycle, information and eleven fault-injection methods that tests, the
benchmark and the command line call), each method documented where it is; what they do
is delegated to the collaborators, and splitting the interface over modules would only
scatter it.

Example::

    with Simulator(SimulatorConfig(output_port=0, point_port=0)) as sim:
        ws = websocket.create_connection(sim.url('point'))
        result = protocol.PointResult.FromString(ws.recv())
"""

from __future__ import annotations

import math
import ssl
import threading
import time
from typing import TYPE_CHECKING

from sensr_bridge.errors import ConfigError, SimulatorError
from sensr_bridge.sim import websocket
from sensr_bridge.sim.clock import FrameClock
from sensr_bridge.sim.config import OUTPUT, POINT, SimulatorConfig, SimulatorStats
from sensr_bridge.sim.connection import JOIN_TIMEOUT_S, Client, ClientContext, Ports
from sensr_bridge.sim.frames import Frames, zone_event
from sensr_bridge.sim.injection import INJECT_KINDS, BadFrames

if TYPE_CHECKING:
    from collections.abc import Callable
    import socket
    from types import TracebackType

    from sensr_bridge.sim.connection import Port


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
        self._context = ClientContext(cfg, self._load_tls(), self._register, self._forget)
        self._frames = Frames(cfg)
        self._bad_frames = BadFrames(cfg, self._frames)
        self._cond = threading.Condition()
        self._ports = Ports(cfg, self._notify)
        self._connections: set[Client] = set()
        self._state = 'new'
        self._clock = FrameClock(cfg, self._frames, self._targets, self._await_clients,
                                 self._notify)

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
        try:
            self._ports.listen(self._ports.roles(None), self._on_accept)
        except SimulatorError:
            self.stop()
            raise
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
        self.finish()
        self._clock.stop()
        for port in self._ports.by_role.values():
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
            client.thread.join(JOIN_TIMEOUT_S)
        self._clock.finished.set()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def finish(self) -> None:
        """End the run early: the clock stops producing frames (connections stay open)."""
        self._clock.halt.set()
        self._notify()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end (duration, max_frames, :meth:`finish` or :meth:`stop`).

        Args:
            timeout: Seconds to wait at most (None: no limit).

        Returns:
            Whether the run has ended.

        """
        return self._clock.finished.wait(timeout)

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
        roles = self._ports.roles(port)

        def reached() -> bool:
            count = sum(len(self._ports.by_role[r].clients) for r in roles)
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
        port = self._ports.by_role.get(OUTPUT)
        return None if port is None else port.port

    @property
    def point_port(self) -> int | None:
        """The point port number (None when not served or not started)."""
        port = self._ports.by_role.get(POINT)
        return None if port is None else port.port

    def url(self, port: str | int) -> str:
        """Return the websocket URL of a port, e.g. ``ws://127.0.0.1:5050/``.

        Args:
            port: Role name (``'output'``, ``'point'``) or port number.

        Returns:
            The URL (``wss://`` with TLS).

        """
        (role,) = self._ports.roles(port)
        host = self.config.host
        host = f'[{host}]' if ':' in host else host
        scheme = 'ws' if self._context.tls is None else 'wss'
        return f'{scheme}://{host}:{self._ports.by_role[role].port}/'

    def stats(self) -> SimulatorStats:
        """Return a snapshot of all counters.

        Returns:
            Frames produced and the counters of each served port.

        """
        ports = self._ports.by_role
        with self._cond:
            clients = {role: len(port.clients) for role, port in ports.items()}
        return SimulatorStats(
            frames=self._clock.frames, missed_ticks=self._clock.missed,
            ports={role: port.snapshot(clients[role]) for role, port in ports.items()})

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
        return self._clock.sent_log()

    def expected_point_result(self, seq: int) -> bytes:
        """Return the exact bytes of the PointResult of frame ``seq`` (uid ``sim:<seq>``).

        Args:
            seq: Frame sequence number, from 0.

        Returns:
            The serialized PointResult, byte-identical to what clients receive.

        """
        return self._frames.point_result(seq)

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
        return self._frames.stream_message(seq, self._clock.sent_ns(seq))

    # --- fault injection ---------------------------------------------------------------

    def drop_connections(self, port: str | int | None = None) -> int:
        """Close client connections abruptly, without a close frame (TCP FIN).

        Args:
            port: Role name or port number; None: all ports.

        Returns:
            Number of connections dropped; they are gone when this returns.

        """
        roles = self._ports.roles(port)
        with self._cond:
            victims = [c for c in self._connections if c.port.role in roles]
        for client in victims:
            client.abort()
        for client in victims:
            client.thread.join(JOIN_TIMEOUT_S)
        return len(victims)

    def take_down(self, port: str | int | None = None) -> None:
        """Stop listening and drop the clients, as if SENSR went down.

        Args:
            port: Role name or port number; None: all ports.

        """
        for role in self._ports.roles(port):
            self._ports.by_role[role].close_listener()
        self.drop_connections(port)

    def bring_up(self, port: str | int | None = None) -> None:
        """Listen again on the same port numbers after :meth:`take_down`.

        Args:
            port: Role name or port number; None: all ports.

        Raises:
            SimulatorError: When not running or a port cannot be bound again.

        """
        roles = self._ports.roles(port)
        with self._cond:
            if self._state != 'running':
                msg = f'cannot bring ports up: the simulator is {self._state}'
                raise SimulatorError(msg)
        self._ports.listen(roles, self._on_accept)

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
        if not self._clock.halt.wait(down_s):
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
        for role in self._ports.roles(port):
            self._ports.by_role[role].reject = None if code is None else (code, reason)

    def stall(self, port: str | int | None, seconds: float | None) -> None:
        """Stop sending frames on a port while keeping the connections open.

        Frames due meanwhile are skipped (counted in ``frames_dropped``).

        Args:
            port: Role name or port number; None: all ports.
            seconds: Stall length; None: until the next call; <= 0: resume now.

        """
        until = math.inf if seconds is None else time.monotonic() + seconds
        for role in self._ports.roles(port):
            self._ports.by_role[role].stall_until = until

    def ignore_pings(self, ignore: bool = True) -> None:
        """Stop (or resume) answering client pings.

        Args:
            ignore: True to ignore pings, False to answer them again.

        """
        self._context.ignore_pings = ignore

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
            kind: One of :data:`sensr_bridge.sim.injection.INJECT_KINDS`.
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
        for role in self._ports.roles(port):
            queued += self._queue(role, [self._bad_frames.item(role, kind, size,
                                                               *self._clock.last)
                                         for _ in range(count)])
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
        item = websocket.message(websocket.OP_BINARY, zone_event(zone_id, event_type, object_id))
        return self._queue(self._ports.roles(OUTPUT)[0], [item])

    # --- serving -----------------------------------------------------------------------

    def _register(self, client: Client) -> bool:
        """Record a client whose handshake completed; False when it must go away."""
        with self._cond:
            if self._state != 'running' or not client.port.listening:
                return False
            client.port.clients.add(client)
            client.port.add(accepted=1)
            self._cond.notify_all()
            return True

    def _forget(self, client: Client) -> None:
        """Remove a finished client."""
        with self._cond:
            client.port.clients.discard(client)
            self._connections.discard(client)
            self._cond.notify_all()

    def _queue(self, role: str, items: list[websocket.Out]) -> int:
        """Queue messages between the frames to every client of a port (``injected``)."""
        port = self._ports.by_role[role]
        with self._cond:
            clients = list(port.clients)
        queued = sum(client.enqueue(item, overflow_check=False)
                     for item in items for client in clients)
        port.add(injected=queued)
        return queued

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _on_accept(self, port: Port, conn: socket.socket) -> None:
        client = Client(self._context, port, conn)
        with self._cond:
            if self._state != 'running':
                conn.close()
                return
            self._connections.add(client)
        client.thread.start()

    def _await_clients(self) -> None:
        """Block until ``start_after_clients`` clients are connected or the run ends."""
        wanted = self.config.start_after_clients
        with self._cond:
            self._cond.wait_for(lambda: self._clock.halt.is_set() or sum(
                len(p.clients) for p in self._ports.by_role.values()) >= wanted)

    def _targets(self, role: str, now: float) -> list[Client]:
        """Return the clients a frame of a port goes to now: none while it stalls."""
        port = self._ports.by_role.get(role)
        if port is None:
            return []
        with self._cond:
            clients = list(port.clients)
        if clients and port.stall_until > now:
            port.add(frames_dropped=len(clients))
            return []
        return clients
