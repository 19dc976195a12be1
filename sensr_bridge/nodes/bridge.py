# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The bridge node: SENSR websockets to PointCloud2, markers, events, health and diagnostics.

Threads: one receiving thread per SENSR port (:class:`~sensr_bridge.sensr.client.SensrClient`);
point frames go to the decoder (inline thread or process pool) whose result thread
publishes the clouds; output frames go through a bounded queue to one thread that parses
and publishes them. Executor callbacks only run diagnostics. Every queue is bounded and
every drop is counted, logged (throttled) and reported in ``/diagnostics``.
"""

from __future__ import annotations

if __name__ == '__main__':  # python -m: signals handled before the imports below
    from sensr_bridge.process.shutdown import bridge_node

    raise SystemExit(bridge_node())

from dataclasses import asdict
import inspect
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import String, UInt8MultiArray
from visualization_msgs.msg import MarkerArray

from sensr_bridge.convert import output_frame
from sensr_bridge.convert.objects import vision_msgs
from sensr_bridge.errors import ConfigError, DecodeError
from sensr_bridge.nodes import diagnostics, params
from sensr_bridge.nodes.bridge_report import (
    PublisherEventLog,
    PublisherEvents,
    client_stats,
    connection_status,
    pipeline_status,
    stats_line,
)
from sensr_bridge.nodes.lifecycle import GuardedLifecycleNode
from sensr_bridge.nodes.stats import Counters, LatencyWindow, write_json
from sensr_bridge.sensr import decode, points, protocol
from sensr_bridge.sensr.client import SensrClient
from sensr_bridge.sensr.connection import ClientOptions

try:  # Iron and newer
    from rclpy.event_handler import PublisherEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks

if TYPE_CHECKING:
    from rclpy.lifecycle import LifecyclePublisher

# Publisher events this rclpy has: Humble's lack matched and incompatible_type. rmw has
# no message-lost event for publishers; deadline and liveliness-lost fire only with a
# deadline or manual liveliness QoS, which the bridge does not offer.
_PUBLISHER_EVENTS = frozenset(inspect.signature(PublisherEventCallbacks).parameters)



class BridgeNode(GuardedLifecycleNode):
    """Lifecycle node bridging a SENSR master to ROS 2 topics.

    configure validates parameters and creates publishers and the decoder; activate
    connects; deactivate disconnects and publishes every frame already received;
    cleanup and shutdown release everything.
    """

    def __init__(self, node_name: str = params.BRIDGE_NAME, **kwargs: Any) -> None:
        """Declare parameters; nothing connects before activation."""
        super().__init__(node_name, params.BRIDGE, **kwargs)
        self.counters = Counters()
        self.latency = LatencyWindow()
        self._sensr_clients: list[SensrClient] = []
        self._decoder: decode.FrameDecoder | None = None
        self._cloud_pubs: dict[str, LifecyclePublisher] = {}
        self._pubs: dict[str, LifecyclePublisher] = {}
        self._diag_pub = None
        self._bridge_timers: list[Any] = []
        self._output_queue: queue.Queue[tuple[bytearray, int] | None] = queue.Queue(1)
        self._output_thread: threading.Thread | None = None
        self._cloud_options = points.CloudOptions()
        self._accepting = threading.Event()
        self._last_warn: dict[str, float] = {}
        self._p: dict[str, Any] = {}
        self._last_output_ns = 0
        self._sensr_health = ''
        self._pub_events = PublisherEventLog(self.get_logger(), self._warn_throttled,
                                             lambda: self._p.get('qos_reliability'))

    # --- parameters ---------------------------------------------------------------------

    def _read_parameters(self) -> dict[str, Any]:
        p = {param.name: self.get_parameter(param.name).value for param in params.BRIDGE}
        params.check_choices(params.BRIDGE, p)
        host = p['host']
        checks = [
            # An empty host passed configure and then failed every connect, forever.
            (host.strip() != '', f'host {host!r} is empty: give the SENSR master host name '
             'or address'),
            (not any(c.isspace() or c in '/?#' for c in host),
             f'host {host!r} is not a host name or address'),
            (p['output_port'] or p['point_port'], 'output_port and point_port are both 0'),
            (p['qos_depth'] >= 1, 'qos_depth must be >= 1'),
            (p['decode_workers'] >= 0, 'decode_workers must be >= 0'),
            (p['max_pending_frames'] >= 1, 'max_pending_frames must be >= 1'),
            (p['output_queue_size'] >= 1, 'output_queue_size must be >= 1'),
            (p['max_frame_bytes'] >= 1024, 'max_frame_bytes must be >= 1024'),
            (all(0 <= port <= 65535 for port in (p['output_port'], p['point_port'])),
             'ports must be in 0..65535'),
            (not p['use_tls'] or not p['ca_file'] or _readable(p['ca_file']),
             f"ca_file {p['ca_file']!r} cannot be read"),
        ]
        for ok, text in checks:
            if not ok:
                raise ConfigError(text)
        return p

    def _qos(self, *, latched: bool = False) -> QoSProfile:
        reliability = (ReliabilityPolicy.RELIABLE if self._p['qos_reliability'] == 'reliable'
                       else ReliabilityPolicy.BEST_EFFORT)
        if latched:
            return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                              reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.TRANSIENT_LOCAL)
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self._p['qos_depth'],
                          reliability=reliability)

    # --- publisher events ---------------------------------------------------------------

    def create_lifecycle_publisher(self, msg_type: Any, topic: str, qos_profile: Any,
                                   **kwargs: Any) -> LifecyclePublisher:
        """Create a lifecycle publisher whose DDS events are counted, logged and reported.

        Every publisher of the bridge gets them (``publisher_events``, /diagnostics):
        a subscription that receives nothing because its QoS or type is incompatible,
        and the subscriptions matched; cloud and output_raw publishers log each match
        (shows when a recorder or RViz connects).
        """
        events = PublisherEvents(topic)
        callbacks = self._pub_events.callbacks(
            events, log_matched=msg_type in (PointCloud2, UInt8MultiArray))
        kwargs.setdefault('event_callbacks', PublisherEventCallbacks(**{
            kind: self.guard(f'{kind} {topic}', callback)
            for kind, callback in callbacks.items() if kind in _PUBLISHER_EVENTS}))
        publisher = super().create_lifecycle_publisher(msg_type, topic, qos_profile, **kwargs)
        events.topic = publisher.topic_name
        self._pub_events.add(events)
        return publisher

    def publisher_events(self) -> dict[str, dict[str, Any]]:
        """Return the DDS events of every publisher, by topic (in ``stats_file`` too)."""
        return self._pub_events.snapshot()

    # --- lifecycle ----------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Validate parameters, create publishers and the decoder.

        Returns:
            SUCCESS, or FAILURE with a log line saying which parameter is wrong.

        """
        try:
            self._p = p = self._read_parameters()
            types = frozenset(t for t in p['cloud_types'] if t)
            options = points.CloudOptions(p['cloud_mode'], p['cloud_type_field'], types)
        except ConfigError as exc:
            self.get_logger().error(f'configuration rejected: {exc}')
            return TransitionCallbackReturn.FAILURE
        overrides = QoSOverridingOptions.with_default_policies()
        if p['point_port']:
            keys = (['merged'] if options.mode == points.MERGED
                    else list(points.CLOUD_KEYS.values()))
            for key in keys:
                topic = 'points' if key == 'merged' else f'points/{key}'
                self._cloud_pubs[key] = self.create_lifecycle_publisher(
                    PointCloud2, topic, self._qos(), qos_overriding_options=overrides)
        if p['output_port']:
            self._pubs['events'] = self.create_lifecycle_publisher(String, 'events', 50)
            self._pubs['health'] = self.create_lifecycle_publisher(String, 'health', 10)
            self._pubs['custom'] = self.create_lifecycle_publisher(String, 'custom', 10)
            self._pubs['zones'] = self.create_lifecycle_publisher(String, 'zones',
                                                                  self._qos(latched=True))
            if p['publish_raw_output']:
                self._pubs['output_raw'] = self.create_lifecycle_publisher(
                    UInt8MultiArray, 'output_raw', self._qos(), qos_overriding_options=overrides)
            if p['publish_object_points']:
                self._pubs['object_points'] = self.create_lifecycle_publisher(
                    PointCloud2, 'object_points', self._qos(), qos_overriding_options=overrides)
            if p['publish_markers']:
                self._pubs['markers'] = self.create_lifecycle_publisher(
                    MarkerArray, 'objects/markers', self._qos())
                self._pubs['zone_markers'] = self.create_lifecycle_publisher(
                    MarkerArray, 'zones/markers', self._qos(latched=True))
            if p['publish_objects']:
                self._create_object_publishers(overrides)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._cloud_options = options
        if not self._start_pipeline():
            return TransitionCallbackReturn.FAILURE
        group = MutuallyExclusiveCallbackGroup()
        self._bridge_timers.append(self.create_timer(p['diagnostics_period'],
                                                     self._publish_diagnostics,
                                              callback_group=group))
        if p['stats_log_period'] > 0:
            self._bridge_timers.append(self.create_timer(p['stats_log_period'], self._log_stats,
                                                  callback_group=group))
        self.get_logger().info(
            f"configured: SENSR {p['host']} output:{p['output_port']} points:{p['point_port']}"
            f" tls={p['use_tls']} clouds={options.mode} decode_workers={p['decode_workers']}"
            f" qos={p['qos_reliability']}/depth {p['qos_depth']}")
        return TransitionCallbackReturn.SUCCESS

    def _create_object_publishers(self, overrides: QoSOverridingOptions) -> None:
        """Create objects/json, and objects where vision_msgs is installed (else say so)."""
        self._pubs['objects_json'] = self.create_lifecycle_publisher(
            String, 'objects/json', self._qos(), qos_overriding_options=overrides)
        msgs = vision_msgs()
        if msgs is None:
            self.get_logger().info(
                'objects (vision_msgs/Detection3DArray) is off: vision_msgs is not installed; '
                'objects/json carries every object')
            return
        self._pubs['objects'] = self.create_lifecycle_publisher(
            msgs.Detection3DArray, 'objects', self._qos(), qos_overriding_options=overrides)

    def _start_pipeline(self) -> bool:
        """Start the decoder and the output thread (``drain`` stops them); False on error."""
        p = self._p
        try:
            self._decoder = decode.create_decoder(
                self._cloud_options, p['frame_id'], self._publish_clouds,
                workers=p['decode_workers'], max_frame_bytes=p['max_frame_bytes'],
                max_pending=p['max_pending_frames'])
        except (ConfigError, OSError) as exc:
            self.get_logger().error(f'cannot start the decoder: {exc}')
            return False
        self._output_queue = queue.Queue(p['output_queue_size'])
        self._output_thread = threading.Thread(target=self._output_loop, daemon=True,
                                               name='sensr-output')
        self._output_thread.start()
        return True

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Connect to SENSR (restarting the decoder a deactivation stopped)."""
        if self._decoder is None and not self._start_pipeline():
            return TransitionCallbackReturn.FAILURE
        result = super().on_activate(state)
        p = self._p
        scheme = 'wss' if p['use_tls'] else 'ws'
        self._accepting.set()
        for name, port, sink in (('output', p['output_port'], self._on_output_frame),
                                 ('points', p['point_port'], self._on_point_frame)):
            if not port:
                continue
            options = ClientOptions(
                url=f"{scheme}://{p['host']}:{port}", ca_file=p['ca_file'],
                check_hostname=p['tls_check_hostname'], stall_timeout=p['stall_timeout'],
                ping_interval=p['ping_interval'], ping_timeout=p['ping_timeout'],
                backoff_initial=p['reconnect_backoff_initial'],
                backoff_max=p['reconnect_backoff_max'], max_reconnects=p['max_reconnects'],
                max_frame_bytes=p['max_frame_bytes'])
            client = SensrClient(name, options, sink, self._client_event,
                                 lambda kind, text, port=name: self._bad_frame(
                                     port, DecodeError(kind, text)))
            self._sensr_clients.append(client)
            client.start()
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Disconnect and publish every frame already received."""
        self.stop_intake()
        self.drain(self._p.get('drain_timeout', 1.5))
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Release publishers, decoder and timers."""
        self.drain(self._p.get('drain_timeout', 1.5))  # stops the decoder when never activated
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Stop everything from any state."""
        self.stop_intake()
        self.drain(self._p.get('drain_timeout', 1.5))
        if self._p.get('stats_file'):
            write_json(self._p['stats_file'], self.final_stats())
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def final_stats(self) -> dict[str, Any]:
        """Counters, latency and connection statistics (the ``stats_file`` content)."""
        return {'counters': self.counters.snapshot(),
                'publish_latency': asdict(self.latency.summary()),
                'connections': {c.name: client_stats(c) for c in self._sensr_clients},
                'publisher_events': self.publisher_events(),
                'callback_errors': dict(self.callback_errors)}

    def stop_intake(self) -> None:
        """Stop taking frames from SENSR (the first step of a clean shutdown)."""
        self._accepting.clear()
        for client in self._sensr_clients:
            client.stop()

    def drain(self, timeout: float) -> bool:
        """Publish the frames already received; returns True if all were published."""
        deadline = time.monotonic() + timeout
        done = True
        if self._decoder is not None:
            done = self._decoder.close(timeout)
            self._decoder = None
        if self._output_thread is not None:
            try:
                self._output_queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                done = False
            self._output_thread.join(max(0.0, deadline - time.monotonic()))
            done = done and not self._output_thread.is_alive()
            self._output_thread = None
        for pub in list(self._cloud_pubs.values()) + list(self._pubs.values()):
            wait = getattr(pub, 'wait_for_all_acked', None)
            remaining = deadline - time.monotonic()
            if wait is not None and remaining > 0:
                wait(rclpy.duration.Duration(seconds=remaining))
        if not done:
            self.get_logger().warning('shutdown: frames still queued after drain_timeout')
        return done

    def _release(self) -> None:
        for timer in self._bridge_timers:
            self.destroy_timer(timer)
        self._bridge_timers.clear()
        for pub in list(self._cloud_pubs.values()) + list(self._pubs.values()):
            self.destroy_publisher(pub)
        self._cloud_pubs.clear()
        self._pubs.clear()
        self._pub_events.clear()
        self._sensr_clients.clear()

    # --- receiving (client threads; must not block) --------------------------------------

    def _client_event(self, level: str, text: str) -> None:
        # rclpy loggers refuse one call site with changing severities.
        log = self.get_logger()
        if level == 'info':
            log.info(text)
        elif level == 'warn':
            log.warning(text)
        else:
            log.error(text)

    def _on_point_frame(self, frame: bytearray, recv_ns: int) -> None:
        if not self._accepting.is_set() or self._decoder is None:
            return
        self.counters.add('points_received')
        if not self._decoder.submit(frame, recv_ns, recv_ns):
            self._drop('points_dropped_decoder_full',
                       f"point frame dropped: {self._p['max_pending_frames']} frames already "
                       'wait for decoding (the bridge is not keeping up)')

    def _on_output_frame(self, frame: bytearray, recv_ns: int) -> None:
        if not self._accepting.is_set():
            return
        self.counters.add('output_received')
        try:
            self._output_queue.put_nowait((frame, recv_ns))
        except queue.Full:
            self._drop('output_dropped_queue_full',
                       'output frame dropped: publishing queue full')

    def _drop(self, key: str, text: str) -> None:
        self.counters.add(key)
        self._warn_throttled(key, f'{text} ({self.counters.get(key)} so far)')

    def _warn_throttled(self, key: str, text: str, period: float = 5.0) -> None:
        now = time.monotonic()
        if now - self._last_warn.get(key, -period) >= period:
            self._last_warn[key] = now
            self.get_logger().warning(text)

    # --- publishing ---------------------------------------------------------------------

    def _publish_clouds(self, result: decode.DecodedFrame) -> None:
        for warning in result.warnings:
            self.counters.add(f'points_warning_{warning}')
        if result.error is not None:
            self._bad_frame('points', result.error)
            return
        for key, data in result.clouds:
            pub = self._cloud_pubs.get(key)
            if pub is None:
                self.counters.add(f'points_unpublished_{key}')
                continue
            pub.publish(data)
        self.counters.add('points_published')
        self.latency.add((time.time_ns() - result.recv_ns) / 1e9)

    def _bad_frame(self, port: str, error: DecodeError) -> None:
        key = f'{port}_bad_{error.kind}'
        self.counters.add(key)
        self._warn_throttled(key, f'{port}: bad frame ({error.kind}): {error} '
                             f'({self.counters.get(key)} so far)')

    def _output_loop(self) -> None:
        options = output_frame.OutputOptions(
            frame_id=self._p['frame_id'], stamp_from_sensr=self._p['stamp_source'] == 'sensr',
            version=protocol.SensrVersion(self._p['sensr_version']), vision=vision_msgs())
        while (item := self._output_queue.get()) is not None:
            frame, recv_ns = item
            try:
                self._publish_output(frame, recv_ns, options)
            except DecodeError as exc:
                self._bad_frame('output', exc)
            except Exception as exc:
                # A frame that breaks a converter must not stop the stream.
                self._bad_frame('output', DecodeError('conversion_failed', repr(exc)))

    def _publish_output(self, frame: bytearray, recv_ns: int,
                        options: output_frame.OutputOptions) -> None:
        done = output_frame.convert(frame, recv_ns, options, self._pubs.keys())
        for key, message in done.messages:
            self._pubs[key].publish(message)
        for key, n in done.counts.items():
            self.counters.add(key, n)
        for key, text in done.warnings:
            self._warn_throttled(key, f'{text} ({self.counters.get(key)} so far)')
        for error in done.errors:
            self._bad_frame('output', error)
        for health, _origin in done.health:
            self._sensr_health = protocol.enum_name(protocol.HEALTH_STATUS, health.master)
            if health.master == protocol.HEALTH_OUTPUT_BUFFER_OVERFLOW:
                self._drop('sensr_output_buffer_overflow',
                           'SENSR reports OUTPUT_BUFFER_OVERFLOW: it is dropping our data')
        self._last_output_ns = recv_ns
        self.counters.add('output_published')

    # --- diagnostics --------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        if self._diag_pub is None:
            return
        name, hw = self.get_name(), f"sensr@{self._p.get('host', '')}"
        statuses = [connection_status(name, hw, client) for client in self._sensr_clients]
        statuses.append(pipeline_status(name, hw, self.counters.snapshot(),
                                        self.latency.summary(), {
            **{f'subscribers_{key}': pub.get_subscription_count()
               for key, pub in self._cloud_pubs.items()},
            'decode_pending': self._decoder.pending if self._decoder else 0,
            'output_queue': self._output_queue.qsize()}))
        if self._sensr_health:
            statuses.append(diagnostics.status(
                f'{name}: SENSR health', hw,
                diagnostics.OK if self._sensr_health == 'OK' else diagnostics.WARN,
                self._sensr_health))
        statuses += [self._pub_events.status(name, hw), self.callbacks_status(hw)]
        self._diag_pub.publish(diagnostics.array(self.get_clock().now().to_msg(), statuses))

    def _log_stats(self) -> None:
        self.get_logger().info(stats_line(self.counters, self.latency.summary()))


def _readable(path: str) -> bool:
    try:
        with open(path, 'rb'):
            return True
    except OSError:
        return False


def main(args: list[str] | None = None) -> int:
    """Run the bridge node until SIGINT/SIGTERM (``ros2 run sensr_bridge bridge_node``)."""
    from sensr_bridge.nodes.runtime import run_nodes

    return run_nodes([('bridge', BridgeNode)], args)
