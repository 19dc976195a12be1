# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Settings and counters of the SENSR simulator: :class:`SimulatorConfig`, its statistics."""

from __future__ import annotations

from dataclasses import dataclass
import ipaddress
import math

from sensr_bridge.errors import ConfigError
from sensr_bridge.sensr import protocol

OUTPUT = 'output'
"""Role name of the output port (OutputMessage, 5050)."""
POINT = 'point'
"""Role name of the point port (PointResult, 5051)."""

OVERFLOW_ACTIONS = ('both', 'event', 'close', 'drop')
"""What a client's overflowing send backlog triggers; see :class:`SimulatorConfig`."""


@dataclass
class SimulatorConfig:
    """Settings of a :class:`sensr_bridge.sim.server.Simulator`.

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
            both ports) are connected; 0 starts it at ``Simulator.start``.
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
        sent_log_size: Frames whose send time is kept in ``Simulator.sent_log``.

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
        check_loopback(self.host)
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

    def every(self, seq: int, interval_s: float | None) -> bool:
        """Whether frame ``seq`` carries something sent every ``interval_s`` (None: never)."""
        if interval_s is None:
            return False
        return seq % self.frames_per(interval_s) == 0

    def frames_per(self, interval_s: float) -> int:
        """Frames in ``interval_s`` at ``rate_hz``, at least one."""
        return max(1, round(interval_s * self.rate_hz))


@dataclass(frozen=True)
class PortStats:
    """Counters of one port since the simulator was created.

    Attributes:
        port: The port listened on (None before ``Simulator.start``).
        listening: Whether the port accepts connections now.
        clients: Clients connected now (websocket handshake done).
        accepted: Clients that completed the handshake.
        rejected: Of those, clients closed at once, without data (``Simulator.reject``).
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


COUNTERS = (
    'accepted', 'rejected', 'handshake_failures', 'frames_sent', 'messages_sent', 'bytes_sent',
    'frames_dropped', 'overflows', 'injected', 'pings', 'pongs',
)
"""The counting fields of :class:`PortStats`."""


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


def check_loopback(host: str) -> None:
    """Refuse any host but a loopback address.

    Args:
        host: An IP address or ``localhost``.

    Raises:
        ConfigError: ``host`` is not a loopback address.

    """
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
