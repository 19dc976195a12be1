# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""What the bridge reports: its connections, its publishers' DDS events, its log line.

Without a node: built from the clients' statistics, the counters and the events DDS reported
to each publisher; the node hands in its logger and its throttled warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.qos import qos_policy_name_from_kind

from sensr_bridge.nodes import diagnostics
from sensr_bridge.nodes.stats import Counters, LatencyStats
from sensr_bridge.sensr.client import SensrClient


@dataclass
class PublisherEvents:
    """What DDS reported to one publisher about the subscriptions of its topic.

    Attributes:
        topic: The publisher's topic.
        subscribers: Subscriptions matched now (matched event; not on Humble).
        incompatible_qos: Subscriptions that request a QoS the publisher does not offer
            (a reliable one against ``qos_reliability: best_effort``...): they receive
            nothing.
        last_incompatible_policy: The QoS policy that made the last one incompatible.
        incompatible_type: Subscriptions of the same topic with another type (not on
            Humble): they receive nothing.

    """

    topic: str
    subscribers: int = 0
    incompatible_qos: int = 0
    last_incompatible_policy: str = ''
    incompatible_type: int = 0


class PublisherEventLog:
    """The DDS events of every publisher: counted, logged (throttled) and reported."""

    def __init__(self, logger: Any, warn_throttled: Callable[[str, str], None],
                 reliability: Callable[[], str]) -> None:
        """Start with no publisher.

        Args:
            logger: The node's logger (matches are logged at info).
            warn_throttled: ``(key, text)``: a warning at most every few seconds per key.
            reliability: The node's ``qos_reliability`` now, for the incompatible-QoS line.

        """
        self._logger = logger
        self._warn = warn_throttled
        self._reliability = reliability
        self._events: dict[str, PublisherEvents] = {}

    def callbacks(self, events: PublisherEvents, *,
                  log_matched: bool) -> dict[str, Callable[[Any], None]]:
        """Return the event callbacks of one publisher, by event kind."""
        return {'incompatible_qos': lambda info: self._incompatible_qos(events, info),
                'incompatible_type': lambda info: self._incompatible_type(events, info),
                'matched': lambda info: self._matched(events, info, log=log_matched)}

    def add(self, events: PublisherEvents) -> None:
        """Report ``events`` under its topic from now on."""
        self._events[events.topic] = events

    def clear(self) -> None:
        """Forget every publisher (they are destroyed)."""
        self._events.clear()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Return the events of every publisher, by topic."""
        return {topic: asdict(events) for topic, events in list(self._events.items())}

    def status(self, node_name: str, hardware_id: str) -> DiagnosticStatus:
        """Subscriptions matched and incompatible per publisher; WARN when one gets nothing."""
        values: dict[str, Any] = {}
        deaf = 0
        for topic, events in self.snapshot().items():
            values.update({f'{topic} {key}': value for key, value in events.items()
                           if key != 'topic' and (key != 'last_incompatible_policy' or value)})
            deaf += events['incompatible_qos'] + events['incompatible_type']
        return diagnostics.status(
            f'{node_name}: publishers', hardware_id,
            diagnostics.WARN if deaf else diagnostics.OK,
            f'{deaf} subscriptions with incompatible QoS or type receive nothing'
            if deaf else 'ok', values)

    def _incompatible_qos(self, events: PublisherEvents, info: Any) -> None:
        events.incompatible_qos += info.total_count_change
        events.last_incompatible_policy = qos_policy_name_from_kind(info.last_policy_kind)
        self._warn(
            f'incompatible_qos {events.topic}',
            f'{events.topic}: a subscription requests a QoS this publisher does not offer '
            f'({events.last_incompatible_policy}; qos_reliability is '
            f'{self._reliability()}) and receives nothing ({events.incompatible_qos} so far)')

    def _incompatible_type(self, events: PublisherEvents, info: Any) -> None:
        events.incompatible_type += info.total_count_change
        self._warn(
            f'incompatible_type {events.topic}',
            f'{events.topic}: a subscription of another message type receives nothing '
            f'({events.incompatible_type} so far)')

    def _matched(self, events: PublisherEvents, info: Any, *, log: bool) -> None:
        events.subscribers = info.current_count
        if log:
            self._logger.info(f'{events.topic}: {info.current_count} subscriber(s) matched')


def client_stats(client: SensrClient) -> dict[str, Any]:
    """Return the connection statistics of a client as plain values."""
    with client.lock:
        s = client.stats
        return {'state': s.state.value, 'url': client.options.url, 'frames': s.frames,
                'bytes': s.bytes, 'connects': s.connects, 'disconnects': s.disconnects,
                'failed_attempts': s.failed_attempts,
                'unhealthy_connections': s.unhealthy_connections,
                'reconnect_delay_seconds': round(s.reconnect_delay_s, 3),
                'oversized_frames': s.oversized,
                'text_frames': s.text_frames, 'overflow_closes': s.overflow_closes,
                'outage_seconds_total': round(s.outage_s_total, 3),
                'last_outage_seconds': round(s.last_outage_s, 3),
                'stall_timeouts': s.stall_timeouts, 'pong_timeouts': s.pong_timeouts,
                'partial_frames': s.partial_frames, 'last_error': s.last_error}


def connection_status(node_name: str, hardware_id: str, client: SensrClient) -> DiagnosticStatus:
    """Return the ``/diagnostics`` status of one SENSR connection."""
    values = client_stats(client)
    return diagnostics.status(
        f'{node_name}: {client.name} connection', hardware_id,
        diagnostics.OK if client.connected else diagnostics.ERROR, values['state'], values)


def _drops(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if 'dropped' in k or '_bad_' in k}


def pipeline_status(node_name: str, hardware_id: str, counts: dict[str, int],
                    latency: LatencyStats, extra: dict[str, Any]) -> DiagnosticStatus:
    """Return the pipeline's status: every counter, latency, and ``extra`` values."""
    drops = _drops(counts)
    values = {**counts, 'latency_p50_ms': round(latency.p50_s * 1e3, 2),
              'latency_p99_ms': round(latency.p99_s * 1e3, 2),
              'latency_max_ms': round(latency.max_s * 1e3, 2), **extra}
    return diagnostics.status(
        f'{node_name}: pipeline', hardware_id, diagnostics.WARN if drops else diagnostics.OK,
        f'{sum(drops.values())} frames dropped or bad', values)


def stats_line(counters: Counters, latency: LatencyStats) -> str:
    """Return the periodic statistics log line."""
    rates = counters.rates()
    counts = counters.snapshot()
    return (f"clouds {rates.get('points_published', 0.0):.1f}/s "
            f"(total {counts.get('points_published', 0)}), "
            f"output {rates.get('output_published', 0.0):.1f}/s, "
            f'dropped/bad {sum(_drops(counts).values())}, '
            f'latency p50 {latency.p50_s * 1e3:.1f} ms p99 {latency.p99_s * 1e3:.1f} ms')
