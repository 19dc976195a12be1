# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Settings and counters of a SENSR connection (:class:`sensr_bridge.sensr.client.SensrClient`)."""

from __future__ import annotations

from dataclasses import dataclass, field
import enum

from sensr_bridge.errors import ConfigError
from sensr_bridge.sensr.framing import DEFAULT_TICK_S

_MIN_TICK_S = 0.01
_MAX_TICK_S = DEFAULT_TICK_S


class State(str, enum.Enum):
    """Connection state of a port."""

    DISCONNECTED = 'disconnected'
    CONNECTING = 'connecting'
    CONNECTED = 'connected'
    STOPPED = 'stopped'


@dataclass
class ClientOptions:
    """Connection settings of one port.

    Attributes:
        url: ``ws://host:port`` or ``wss://host:port``.
        ca_file: CA certificate to verify a wss:// server ('' = system CAs).
        check_hostname: Verify the server name against its certificate.
        connect_timeout: Seconds allowed for TCP connect plus handshake.
        stall_timeout: Seconds without any data message (pongs do not count) before the
            server is considered stalled and the connection is dropped (0 = never).
        ping_interval: Seconds between keep-alive pings (0 = none).
        ping_timeout: Seconds to wait for a pong before the connection is dropped. A pong
            queues behind the frames SENSR is sending, so this must exceed the time the
            link needs for the largest frame (3 s: 64 MB at 170 Mbit/s).
        backoff_initial: First reconnect delay, seconds.
        backoff_max: Cap of the exponential reconnect delay, seconds; also the longest
            time between the server coming back and the reconnect.
        healthy_after: A connection that delivered data and lasted this many seconds
            was healthy: after it the client reconnects at once and the backoff starts
            over. After any other one (closed before any data, normally or not, or soon
            after it) the client waits the backoff delay first, as after a failed attempt.
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
    healthy_after: float = 1.0
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

    @property
    def tick(self) -> float:
        """Seconds between watchdog checks: a quarter of the shortest timeout."""
        limits = [self.stall_timeout] if self.stall_timeout > 0 else []
        if self.ping_interval > 0:
            limits += [self.ping_interval, self.ping_timeout]
        if not limits:
            return _MAX_TICK_S
        return min(_MAX_TICK_S, max(_MIN_TICK_S, min(limits) / 4))


@dataclass
class ClientStats:
    """Counters of one port (read them under :attr:`SensrClient.lock`).

    Attributes:
        state: Connection state now.
        frames: Binary messages delivered.
        bytes: Payload bytes of the delivered messages.
        connects: Successful connections (the first one included).
        disconnects: Connections lost after being established.
        unhealthy_connections: Connections that ended without delivering data, or within
            ``healthy_after`` seconds; each is followed by the backoff delay.
        reconnect_delay_s: Backoff delay now in force: waited before the next attempt
            after a failed attempt or an unhealthy connection (0 once data flows).
        failed_attempts: Failed connection attempts since the last success.
        oversized: Messages skipped for exceeding ``max_frame_bytes``.
        text_frames: Text messages skipped (SENSR sends binary protobuf).
        partial_frames: Messages lost because the connection ended in their middle.
        callback_errors: Messages whose ``on_frame`` callback raised.
        stall_timeouts: Connections dropped for receiving no data (``stall_timeout``).
        pong_timeouts: Connections dropped for an unanswered ping (``ping_timeout``).
        overflow_closes: Closes by SENSR because its output buffer was full.
        last_error: Text of the last error.
        last_frame_ns: Receive time of the last message (wall clock ns).
        connected_since_ns: When the current connection was made (wall clock ns).
        down_since_ns: When the connection was lost (0 while connected or never connected).
        outage_s_total: Sum of the finished outages (disconnect to reconnect), seconds.
        last_outage_s: Length of the last finished outage, seconds.
        close_codes: Close codes received, with counts.

    """

    state: State = State.DISCONNECTED
    frames: int = 0
    bytes: int = 0
    connects: int = 0
    disconnects: int = 0
    unhealthy_connections: int = 0
    reconnect_delay_s: float = 0.0
    failed_attempts: int = 0
    oversized: int = 0
    text_frames: int = 0
    partial_frames: int = 0
    callback_errors: int = 0
    stall_timeouts: int = 0
    pong_timeouts: int = 0
    overflow_closes: int = 0
    last_error: str = ''
    last_frame_ns: int = 0
    connected_since_ns: int = 0
    down_since_ns: int = 0
    outage_s_total: float = 0.0
    last_outage_s: float = 0.0
    close_codes: dict[int, int] = field(default_factory=dict)
