# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The recorder node: lossless rosbag2 recording of the bridge's topics.

Subscriptions are ``raw=True``: messages arrive as CDR bytes and are never deserialized.
The subscription callback only enqueues into a :class:`~sensr_bridge.bag.queue.BatchingWriter`,
whose own thread writes batches (one transaction each). Topics are discovered
periodically; each subscription's QoS adapts to its publishers (reliable only when every
publisher offers reliable, like ``ros2 bag record``) and is re-created when a publisher
that needs a looser QoS appears.

Services (``std_srvs/srv/Trigger``, like ``ros2 bag record``'s): ``~/pause`` and
``~/resume`` (while paused, messages are counted as ``skipped_paused``, not written),
``~/split`` (the bag is split between the messages received before and after the call),
``~/snapshot`` (a clip around now).

Clips (``clip_mode``: ``with_bag`` or ``only``): every message also goes into a ring
buffer of the last ``clip_before`` seconds (:mod:`sensr_bridge.bag.clips`); a matching
zone event on ``clip_event_topic`` or a ``~/snapshot`` call writes a bag of its own, next
to the main bag (or instead of it), from ``clip_before`` before to ``clip_after`` after.
Intervals and empty-cloud skipping thin the main bag only: clips keep every message.

Size: about 550 lines, because the node class is one lifecycle state machine whose
callbacks share its state (subscriptions, writer, pause, clips); what needs no node
state is in :mod:`~sensr_bridge.nodes.recorder_options`,
:mod:`~sensr_bridge.nodes.recorder_topics`, :mod:`~sensr_bridge.nodes.recorder_clips` and
:mod:`~sensr_bridge.nodes.recorder_report`.
"""

from __future__ import annotations

if __name__ == '__main__':  # python -m: signals handled before the imports below
    from sensr_bridge.process.shutdown import recorder_node

    raise SystemExit(recorder_node())

from dataclasses import asdict, dataclass
import functools
import inspect
import os
from pathlib import Path
import re
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.subscription import Subscription
from std_srvs.srv import Trigger

from sensr_bridge.bag import base as bag
from sensr_bridge.bag.clips import ClipStats
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.bag.filters import MessageFilter, parse_intervals
from sensr_bridge.bag.queue import BatchingWriter, QueueStats
from sensr_bridge.convert import cdr
from sensr_bridge.errors import BagError, ConfigError
from sensr_bridge.nodes import diagnostics, params, recorder_options, recorder_topics
from sensr_bridge.nodes.lifecycle import GuardedLifecycleNode
from sensr_bridge.nodes.recorder_clips import ClipSession
from sensr_bridge.nodes.recorder_report import LossLog, bag_statuses, summary_line
from sensr_bridge.nodes.stats import LossCounter, LossStats, write_json
from sensr_bridge.process import malloc

try:  # Iron and newer
    from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks, UnsupportedEventTypeError

# Types whose serialized form starts with a std_msgs/Header: their stamp gives the
# end-to-end latency (stamp -> committed to disk).
_HEADER_TYPES = frozenset({'sensor_msgs/msg/PointCloud2'})

MEMORY_RELEASE_PERIOD = 10.0
"""Seconds between ``malloc.release_free_memory`` calls while recording."""

# rclpy passes a MessageInfo (publication sequence number; the publisher's GID from
# Kilted on) to a callback taking two arguments from Iron on; Humble's passes the message
# only. The matched event (Iron on) tells when a GID-less sequence can be trusted.
_MESSAGE_INFO = hasattr(Subscription, 'CallbackType')
_MATCHED_EVENT = 'matched' in inspect.signature(SubscriptionEventCallbacks).parameters

CLIP_CHECK_PERIOD = 0.1
"""Seconds between checks for a clip whose end has passed."""

@dataclass
class _Subscription:
    handle: Any
    type: str
    reliable: bool
    transient_local: bool


class RecorderNode(GuardedLifecycleNode):
    """Lifecycle node recording topics into a rosbag2 bag.

    configure checks parameters and creates the bag (refusing to overwrite one);
    activate subscribes; deactivate and shutdown drain the queue, commit and close the
    bag (metadata.yaml written, the bag is complete and readable); cleanup forgets the
    closed bag. A deactivated recorder cannot be activated again (its bag is closed):
    cleanup and configure start a new bag.
    """

    def __init__(self, node_name: str = params.RECORDER_NAME, **kwargs: Any) -> None:
        """Declare parameters; nothing is opened before configure."""
        super().__init__(node_name, params.RECORDER, **kwargs)
        self._p: dict[str, Any] = {}
        self._writer: BatchingWriter | None = None
        self._recording = False
        self._clips: ClipSession | None = None
        self._last_clips: ClipSession | None = None
        self._topic_infos: dict[str, bag.TopicInfo] = {}
        self._subs: dict[str, _Subscription] = {}
        self._rec_timers: list[Any] = []
        self._diag_pub = None
        self._control_services: list[Any] = []
        self._paused = False
        self._lock = threading.Lock()
        self._last_message = 0.0
        self._bag_path: Path | None = None
        self._topic_filter: re.Pattern[str] | None = None
        self._filter = MessageFilter([], skip_empty_clouds=False)
        self.final_stats: bag.BagStats | None = None
        self._loss = LossLog(self.get_logger())
        self.final_loss: dict[str, LossStats] = {}
        self.final_clips: ClipStats | None = None

    @property
    def bag_path(self) -> Path | None:
        """Directory of the bag being (or last) recorded."""
        return self._bag_path

    @property
    def clips_written(self) -> list[dict[str, Any]]:
        """Clip bags of the current (or last) recording closed so far."""
        clips = self._clips or self._last_clips
        return [] if clips is None else clips.written

    # --- lifecycle ----------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Validate parameters and create the bag.

        Returns:
            FAILURE with a clear log line when a parameter is wrong, the output directory
            is not writable, or the bag already exists.

        """
        p = {param.name: self.get_parameter(param.name).value for param in params.RECORDER}
        try:
            recorder_options.check(p)
            topics = [t for t in p['topics'] if t]
            self._topic_filter = None if topics else recorder_options.topic_filter(
                p['topic_regex'])
            message_filter = MessageFilter(parse_intervals(p['topic_intervals']),
                                           skip_empty_clouds=p['skip_empty_clouds'])
            out_dir = Path(p['output_dir']).expanduser()
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                msg = f'output_dir {out_dir} cannot be created: {exc.strerror or exc}'
                raise ConfigError(msg) from exc
            if not os.access(out_dir, os.W_OK):
                msg = f'output_dir {out_dir} is not writable'
                raise ConfigError(msg)
            self._bag_path = out_dir / time.strftime(p['bag_name'])
            topic_infos: dict[str, bag.TopicInfo] = {}
            clips = None
            if p['clip_mode'] != 'off':
                name = p['clip_event_topic']
                event_topic = name if name.startswith('/') else (
                    f"{self.get_namespace().rstrip('/')}/{name}")
                clips = ClipSession(p, self._bag_path, event_topic, self.get_logger(),
                                    topic_infos.values, self._stamp_of)
            # Built (options and bounds checked) before the bag exists: a bad value must
            # not leave an open writer and an empty bag directory behind. With clips only
            # it is never opened: clip bags have the same options, checked here.
            writer = create_writer(recorder_options.storage_options(
                p, self._bag_path, max_bagfile_size=p['max_bagfile_size'],
                max_bagfile_duration=p['max_bagfile_duration']), p['writer_backend'])
            batching = recorder_options.batching_writer(p, writer, 0, self._writer_failed,
                                                        self._stamp_of)
            if p['clip_mode'] == 'only':
                batching = None
            else:
                writer.open()
                batching.start()
        except (ConfigError, BagError, OSError, re.error) as exc:
            self.get_logger().error(f'configuration rejected: {exc}')
            return TransitionCallbackReturn.FAILURE
        self._writer, self._clips, self._recording = batching, clips, True
        self._p, self._topics, self._filter = p, topics, message_filter
        self._topic_infos = topic_infos
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._paused = False
        group = MutuallyExclusiveCallbackGroup()
        self._control_services = [
            self.create_service(Trigger, f'~/{name}', self.guard(f'service {name}', callback),
                                callback_group=group)
            for name, callback in (('pause', self._pause), ('resume', self._resume),
                                   ('split', self._split), ('snapshot', self._snapshot))]
        where = (f'clips beside {self._bag_path}' if p['clip_mode'] == 'only'
                 else str(self._bag_path))
        self.get_logger().info(f"recording to {where} ({p['storage']}, "
                               f"backend {p['writer_backend']}, clips {p['clip_mode']})")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe to the topics present now, and discover new ones periodically.

        Returns:
            FAILURE when the bag was already closed by a deactivation (cleanup and
            configure start a new bag), so a node that records nothing never looks active.

        """
        if not self._recording:
            self.get_logger().error(f'cannot activate: the bag {self._bag_path} was closed at '
                                    'deactivation; cleanup and configure to record a new bag')
            return TransitionCallbackReturn.FAILURE
        group = MutuallyExclusiveCallbackGroup()
        self._discover()
        self._rec_timers.append(self.create_timer(self._p['discovery_period'], self._discover,
                                                  callback_group=group))
        self._rec_timers.append(self.create_timer(self._p['diagnostics_period'],
                                                  self._publish_diagnostics, callback_group=group))
        if self._p['stats_log_period'] > 0:
            self._rec_timers.append(self.create_timer(self._p['stats_log_period'],
                                                      self._log_stats, callback_group=group))
        if self._clips is not None:
            self._rec_timers.append(self.create_timer(CLIP_CHECK_PERIOD, self._clips.close_due,
                                                      callback_group=group))
        # Buffers of a backlog go back to the kernel within this period after it drains.
        self._rec_timers.append(self.create_timer(MEMORY_RELEASE_PERIOD,
                                                  malloc.release_free_memory,
                                                  callback_group=group))
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Drain, commit and close the bag."""
        self.finish()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Forget the closed bag."""
        self.finish()
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None
        for service in self._control_services:
            self.destroy_service(service)
        self._control_services.clear()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Wait for the publishers to finish (bounded), then close the bag."""
        self.wait_for_publishers(self._p.get('drain_timeout', 3.0))
        self.finish()
        return TransitionCallbackReturn.SUCCESS

    # --- subscriptions ------------------------------------------------------------------

    def _wanted(self, name: str) -> bool:
        if self._topic_filter is None:
            return name in self._topics
        # Lifecycle transition events of the nodes themselves are not data.
        return bool(self._topic_filter.search(name)) and not name.endswith('/transition_event')

    def _discover(self) -> None:
        if not self._recording:
            return
        for name, types in self.get_topic_names_and_types():
            if not self._wanted(name) or len(types) != 1:
                continue
            infos = self.get_publishers_info_by_topic(name)
            if not infos:
                continue
            reliable, latched = recorder_topics.publishers_policy(infos)
            current = self._subs.get(name)
            if current is not None and (current.reliable, current.transient_local) == (
                    reliable, latched):
                continue
            self._subscribe(name, types[0], infos, reliable=reliable, latched=latched)

    def _subscribe(self, name: str, type_name: str, infos: list[Any], *, reliable: bool,
                   latched: bool) -> None:
        try:
            cls = recorder_topics.message_class(type_name)
        except (ImportError, AttributeError, ValueError) as exc:
            self.get_logger().error(f'{name}: cannot record {type_name}: {exc}')
            return
        old = self._subs.pop(name, None)
        if old is not None:
            self.destroy_subscription(old.handle)
            self.get_logger().info(f'{name}: a publisher needs a looser QoS, re-subscribing')
        else:
            info = bag.TopicInfo(name, type_name, 'cdr', recorder_topics.offered_qos(infos))
            try:
                if self._writer is not None:
                    self._writer.create_topic(info)
                if self._clips is not None:
                    self._clips.add_topic(info)
            except BagError as exc:
                self.get_logger().error(f'{name}: cannot record {type_name}: {exc}')
                return
            self._filter.add_topic(name, type_name)
            self._topic_infos[name] = info
        qos = recorder_topics.subscription_qos(infos, self._p['subscription_depth'],
                                               reliable=reliable, latched=latched)
        # A group per topic keeps each topic in order while topics are taken in parallel;
        # with one shared group, rclpy's MultiThreadedExecutor spins hot while a callback
        # of the group runs (measured: 70 instead of 13 ms CPU per frame, composed).
        group = MutuallyExclusiveCallbackGroup()
        # Losses below us are seen two ways (LossCounter, which counts each once): the DDS
        # message-lost event, and gaps in each publisher's sequence numbers, which rclpy
        # hands to a callback taking (message, info). The counter outlives a
        # re-subscription.
        loss = self._loss.counter(name)
        callback = (functools.partial(self._on_message_info, name, loss) if _MESSAGE_INFO
                    else functools.partial(self._on_message, name))
        kinds = {'message_lost': functools.partial(self._on_message_lost, name, loss)}
        if _MESSAGE_INFO and _MATCHED_EVENT:
            kinds['matched'] = functools.partial(self._on_matched, name, loss)
        events = SubscriptionEventCallbacks(**{
            kind: self.guard(f'{kind} {name}', callback) for kind, callback in kinds.items()})
        try:
            handle = self.create_subscription(cls, name, callback, qos, raw=True,
                                              callback_group=group, event_callbacks=events)
        except UnsupportedEventTypeError:
            self.get_logger().warning(
                f'{name}: the middleware lacks the message-lost or matched event; lost '
                'messages are counted from gaps in the sequence numbers of named publishers')
            handle = self.create_subscription(cls, name, callback, qos, raw=True,
                                              callback_group=group)
        self._subs[name] = _Subscription(handle, type_name, reliable, latched)
        self.get_logger().info(f"recording {name} ({type_name}, "
                               f"{'reliable' if reliable else 'best effort'})")

    def _on_message(self, topic: str, data: bytes) -> None:
        writer = self._writer
        self._last_message = time.monotonic()
        if not self._recording:
            return
        if self._paused:
            if writer is not None:
                writer.skip(topic, len(data), 'paused')
            return
        t_ns = time.time_ns()
        clips = self._clips
        if clips is not None:
            clips.add(topic, t_ns, data)
        if writer is None:
            return
        reason = self._filter.skip_reason(topic, t_ns, data)
        if reason is None:
            writer.put(topic, t_ns, data)
        else:
            writer.skip(topic, len(data), reason)

    def _on_message_info(self, topic: str, loss: LossCounter, data: bytes,
                         info: dict[str, Any]) -> None:
        self._on_message(topic, data)
        # Measured 0.4 us per message, against 8-10 ms CPU for taking an 18 MB cloud
        # (rclpy builds this dict for every message, whether the callback takes it or not).
        number = info.get('publication_sequence_number')
        gid = info.get('publisher_gid')
        if number is not None and loss.sequence(gid and gid['data'], number):
            self._loss.seen(topic)

    def _on_matched(self, name: str, loss: LossCounter, info: Any) -> None:
        """Publishers matched (logged: shows when the recorder receives from the bridge)."""
        loss.publishers_matched(info.current_count)
        if info.current_count_change:
            self.get_logger().info(f'{name}: {info.current_count} publisher(s) matched')

    def _on_message_lost(self, topic: str, loss: LossCounter, info: Any) -> None:
        loss.message_lost(info.total_count_change)
        self._loss.seen(topic)

    # --- services -----------------------------------------------------------------------

    def _pause(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._set_paused(response, paused=True)

    def _resume(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._set_paused(response, paused=False)

    def _set_paused(self, response: Trigger.Response, *, paused: bool) -> Trigger.Response:
        state = 'paused' if paused else 'recording'
        if not self._recording:
            response.success = False
            response.message = f'not recording (bag {self._bag_path} closed)'
        elif self._paused == paused:
            response.success, response.message = True, f'already {state}'
        else:
            self._paused = paused
            response.success, response.message = True, state
            self.get_logger().info(f'{state} ({self._bag_path})')
        return response

    def _split(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        writer = self._writer
        try:
            if not self._recording:
                msg = f'not recording (bag {self._bag_path} closed)'
                raise BagError(msg)
            if writer is None:
                msg = 'no main bag to split (clip_mode only)'
                raise BagError(msg)
            writer.split()
        except BagError as exc:
            response.success, response.message = False, str(exc)
            return response
        response.success = True
        response.message = 'split after the messages received so far'
        self.get_logger().info(f'{self._bag_path}: split requested')
        return response

    def _snapshot(self, request: Trigger.Request,
                  response: Trigger.Response) -> Trigger.Response:
        clips = self._clips
        if clips is None or not self._recording:
            response.success = False
            response.message = ('not recording' if not self._recording
                                else 'clips are off (clip_mode off)')
            return response
        path = clips.snapshot()
        response.success = path is not None
        response.message = (str(path) if path is not None
                            else 'the clip bag could not be created (see the log)')
        return response

    def _stamp_of(self, topic: str, data: bytes) -> int | None:
        sub = self._subs.get(topic)
        if sub is None or sub.type not in _HEADER_TYPES:
            return None
        return cdr.header_stamp_ns(data)

    def _writer_failed(self, exc: Exception) -> None:
        self.get_logger().error(f'bag writing stopped: {exc}; further messages are counted '
                                'as dropped, the bag keeps everything committed so far')

    # --- shutdown -----------------------------------------------------------------------

    def wait_for_publishers(self, timeout: float) -> None:
        """Keep recording until every recorded topic has lost its publishers (bounded).

        At shutdown the bridge publishes the frames it already received before it exits;
        this waits for that, then for a short quiet period so the last messages are taken.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._subs and any(
                self.count_publishers(name) for name in self._subs):
            time.sleep(0.02)
        while time.monotonic() < deadline and time.monotonic() - self._last_message < 0.2:
            time.sleep(0.02)

    def _take_remaining(self, topic: str, subscription: Any) -> None:
        """Record what a subscription still holds, before it is destroyed.

        Messages DDS delivered (and acknowledged: the bridge waits for that at shutdown)
        sit in the subscription until the executor takes them; a busy executor had not
        within the quiet period of :meth:`wait_for_publishers`, and destroying the
        subscription dropped them (CI: 27 of 29 clouds in the bag). Taking here is
        atomic per message, so nothing is recorded twice.
        """
        if not self._recording:
            return
        while True:
            with subscription.handle:
                taken = subscription.handle.take_message(subscription.msg_type, subscription.raw)
            if taken is None:
                return
            self._on_message(topic, taken[0])

    def finish(self) -> bag.BagStats | None:
        """Unsubscribe, drain the queue, commit and close the bag (idempotent)."""
        for timer in self._rec_timers:
            self.destroy_timer(timer)
        self._rec_timers.clear()
        for name, sub in self._subs.items():
            self._take_remaining(name, sub.handle)
            self.destroy_subscription(sub.handle)
        self._subs.clear()
        with self._lock:
            recording, self._recording = self._recording, False
            writer, self._writer = self._writer, None
            clips, self._clips = self._clips, None
        if not recording:
            return self.final_stats
        # Final once the subscriptions are gone; the next bag counts from zero.
        self.final_loss = self._loss.reset()
        if clips is not None:
            self._last_clips = clips
            self.final_clips = clips.finish()
        if writer is None:  # clips only
            self._write_stats_file(None, None)
            return None
        try:
            self.final_stats = writer.close()
        except BagError as exc:
            # rclpy turns an exception in a transition into a silent ERROR: say it here.
            self.get_logger().error(f'the bag {self._bag_path} could not be finished: {exc}')
            self.get_logger().info(self.summary_line(writer.stats(), final=True))
            return None
        queue_stats = writer.stats()
        self.get_logger().info(self.summary_line(queue_stats, final=True))
        self._write_stats_file(queue_stats, self.final_stats)
        return self.final_stats

    def _write_stats_file(self, queue_stats: Any, bag_stats: bag.BagStats | None) -> None:
        if self._p.get('stats_file'):
            write_json(self._p['stats_file'], {
                'bag': None if bag_stats is None else str(self._bag_path),
                'queue': None if queue_stats is None else asdict(queue_stats),
                'bag_stats': None if bag_stats is None else asdict(bag_stats),
                'lost': {name: asdict(s) for name, s in self.final_loss.items()},
                'clips': None if self._last_clips is None
                else self._last_clips.report(self.final_clips),
                'callback_errors': dict(self.callback_errors)})

    # --- statistics ---------------------------------------------------------------------

    def queue_stats(self) -> Any:
        """Return the writer queue's statistics, or None when not recording."""
        writer = self._writer
        return writer.stats() if writer is not None else None

    def clip_stats(self) -> ClipStats | None:
        """Return the clips' statistics, or None when clips are off or not recording."""
        clips = self._clips
        return None if clips is None else clips.stats()

    def loss_stats(self) -> dict[str, LossStats]:
        """Return the messages lost in DDS per topic of the bag being recorded."""
        return self._loss.stats()

    def summary_line(self, stats: QueueStats, *, final: bool = False) -> str:
        """Return a one-line summary of received / written / dropped messages."""
        losses = self.final_loss if final else self.loss_stats()
        return summary_line(self._bag_path, stats, sum(s.lost for s in losses.values()),
                            final=final)

    def _log_stats(self) -> None:
        stats = self.queue_stats()
        if stats is not None:
            self.get_logger().info(self.summary_line(stats))

    def _publish_diagnostics(self) -> None:
        if not self._recording or self._diag_pub is None:
            return
        self._loss.flush()
        stats = self.queue_stats()
        statuses = [] if stats is None else bag_statuses(
            self.get_name(), self._bag_path, stats, self.loss_stats(),
            'paused' if self._paused else 'recording')
        if self._clips is not None:
            statuses.append(self._clips.status(self.get_name()))
        statuses.append(self.callbacks_status(str(self._bag_path)))
        self._diag_pub.publish(diagnostics.array(self.get_clock().now().to_msg(), statuses))


def main(args: list[str] | None = None) -> int:
    """Run the recorder until SIGINT/SIGTERM (``ros2 run sensr_bridge recorder_node``)."""
    from sensr_bridge.nodes.runtime import run_nodes

    return run_nodes([('recorder', RecorderNode)], args)
