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
"""

from __future__ import annotations

if __name__ == '__main__':  # python -m: signals handled before the imports below
    from sensr_bridge.process.shutdown import recorder_node

    raise SystemExit(recorder_node())

from collections.abc import Callable
from dataclasses import asdict, dataclass
import functools
import importlib
import inspect
import os
from pathlib import Path
import re
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription
from std_srvs.srv import Trigger

from sensr_bridge.bag import base as bag
from sensr_bridge.bag.clips import (
    Clip,
    ClipRecorder,
    ClipStats,
    EventRule,
    matching_events,
    parse_event_rules,
)
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.bag.filters import MessageFilter, parse_intervals
from sensr_bridge.bag.queue import BatchingWriter, TopicQueueStats
from sensr_bridge.convert import cdr
from sensr_bridge.errors import BagError, ConfigError
from sensr_bridge.nodes import diagnostics, params
from sensr_bridge.nodes.lifecycle import GuardedLifecycleNode
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

LOSS_LOG_PERIOD = 5.0
"""Seconds between log lines about messages lost in DDS, per topic."""

# rclpy passes a MessageInfo (publication sequence number; the publisher's GID from
# Kilted on) to a callback taking two arguments from Iron on; Humble's passes the message
# only. The matched event (Iron on) tells when a GID-less sequence can be trusted.
_MESSAGE_INFO = hasattr(Subscription, 'CallbackType')
_MATCHED_EVENT = 'matched' in inspect.signature(SubscriptionEventCallbacks).parameters

CLIP_CHECK_PERIOD = 0.1
"""Seconds between checks for a clip whose end has passed."""

_RELIABILITY = {ReliabilityPolicy.RELIABLE: 'reliable',
                ReliabilityPolicy.BEST_EFFORT: 'best_effort'}
_DURABILITY = {DurabilityPolicy.TRANSIENT_LOCAL: 'transient_local',
               DurabilityPolicy.VOLATILE: 'volatile'}


def _check_parameters(p: dict[str, Any]) -> None:
    """Raise a ConfigError naming the parameter and its value when one is invalid."""
    params.check_choices(params.RECORDER, p)
    checks = [
        (p['subscription_depth'] >= 1,
         f"subscription_depth must be >= 1, not {p['subscription_depth']!r}"),
        (time.strftime(p['bag_name']).strip() not in ('', '.', '..'),
         f"bag_name {p['bag_name']!r} names no directory"),
    ]
    for ok, text in checks:
        if not ok:
            raise ConfigError(text)


def _topic_filter(pattern: str) -> re.Pattern[str]:
    """Compile ``topic_regex``; an invalid one is a ConfigError naming it and its value."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        msg = f'topic_regex {pattern!r} is not a valid regular expression: {exc}'
        raise ConfigError(msg) from exc


def _storage_options(p: dict[str, Any], path: Path, *, max_bagfile_size: int = 0,
                     max_bagfile_duration: int = 0,
                     clip_reason: str = '') -> bag.StorageOptions:
    """The storage options of the main bag or of a clip bag (``clip_reason`` set)."""
    custom = {'recorded_by': 'sensr_bridge'}
    if clip_reason:
        custom['clip_reason'] = clip_reason
    return bag.StorageOptions(
        uri=path, storage_id=p['storage'], max_bagfile_size=max_bagfile_size,
        max_bagfile_duration=max_bagfile_duration,
        storage_preset_profile=p['storage_preset'],
        storage_config_uri=p['storage_config_file'], metadata_version=p['metadata_version'],
        custom_data=custom, compression=p['compression'])


def _batching_writer(p: dict[str, Any], writer: bag.BagWriter, extra_queue_bytes: int,
                     on_error: Callable[[Exception], None],
                     stamp_of: Callable[[str, bytes], int | None]) -> BatchingWriter:
    """A queue for ``writer`` with the batch parameters; a clip's holds its lead-in too."""
    return BatchingWriter(
        writer, max_queue_bytes=p['max_queue_bytes'] + extra_queue_bytes,
        batch_max_messages=p['batch_max_messages'],
        batch_max_bytes=p['batch_max_bytes'], batch_min_bytes=p['batch_min_bytes'],
        batch_max_delay_s=p['batch_max_delay'],
        drop_policy=p['drop_policy'], on_error=on_error, stamp_of=stamp_of)


def message_class(type_name: str) -> type:
    """Import the Python class of a ROS message type such as ``sensor_msgs/msg/PointCloud2``."""
    package, kind, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


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
        self._clips: ClipRecorder | None = None
        self._clip_rules: list[EventRule] = []
        self._clip_threads: list[threading.Thread] = []
        self._clips_written: list[dict[str, Any]] = []
        self._event_topic = ''
        self._bad_events = 0
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
        self._last_log_counts: dict[str, int] = {}
        self._loss: dict[str, LossCounter] = {}
        self._loss_logged: dict[str, float] = {}
        self._loss_pending: set[str] = set()
        self.final_loss: dict[str, LossStats] = {}
        self.final_clips: ClipStats | None = None

    @property
    def bag_path(self) -> Path | None:
        """Directory of the bag being (or last) recorded."""
        return self._bag_path

    # --- lifecycle ----------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Validate parameters and create the bag.

        Returns:
            FAILURE with a clear log line when a parameter is wrong, the output directory
            is not writable, or the bag already exists.

        """
        p = {param.name: self.get_parameter(param.name).value for param in params.RECORDER}
        try:
            _check_parameters(p)
            topics = [t for t in p['topics'] if t]
            self._topic_filter = None if topics else _topic_filter(p['topic_regex'])
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
            clips = None
            if p['clip_mode'] != 'off':
                self._clip_rules = parse_event_rules(p['clip_events'])
                clips = ClipRecorder(p['clip_before'], p['clip_after'],
                                     p['clip_buffer_bytes'], self._open_clip)
            # Built (options and bounds checked) before the bag exists: a bad value must
            # not leave an open writer and an empty bag directory behind. With clips only
            # it is never opened: clip bags have the same options, checked here.
            writer = create_writer(_storage_options(
                p, self._bag_path, max_bagfile_size=p['max_bagfile_size'],
                max_bagfile_duration=p['max_bagfile_duration']), p['writer_backend'])
            batching = _batching_writer(p, writer, 0, self._writer_failed, self._stamp_of)
            if p['clip_mode'] == 'only':
                batching = None
            else:
                writer.open()
                batching.start()
        except (ConfigError, BagError, OSError, re.error) as exc:
            self.get_logger().error(f'configuration rejected: {exc}')
            return TransitionCallbackReturn.FAILURE
        self._writer = batching
        self._clips = clips
        self._recording = True
        self._bad_events = 0
        self._clips_written = []
        self._topic_infos = {}
        name = p['clip_event_topic']
        self._event_topic = name if name.startswith('/') else (
            f"{self.get_namespace().rstrip('/')}/{name}")
        self._p = p
        self._topics = topics
        self._filter = message_filter
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
            self._rec_timers.append(self.create_timer(CLIP_CHECK_PERIOD, self._close_due_clip,
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
            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                           for i in infos)
            latched = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                          for i in infos)
            current = self._subs.get(name)
            if current is not None and (current.reliable, current.transient_local) == (
                    reliable, latched):
                continue
            self._subscribe(name, types[0], infos, reliable=reliable, latched=latched)

    def _subscribe(self, name: str, type_name: str, infos: list[Any], *, reliable: bool,
                   latched: bool) -> None:
        try:
            cls = message_class(type_name)
        except (ImportError, AttributeError, ValueError) as exc:
            self.get_logger().error(f'{name}: cannot record {type_name}: {exc}')
            return
        old = self._subs.pop(name, None)
        if old is not None:
            self.destroy_subscription(old.handle)
            self.get_logger().info(f'{name}: a publisher needs a looser QoS, re-subscribing')
        else:
            offered = [bag.QosDesc(reliability=_RELIABILITY.get(i.qos_profile.reliability,
                                                                'reliable'),
                                   durability=_DURABILITY.get(i.qos_profile.durability,
                                                              'volatile'),
                                   depth=i.qos_profile.depth) for i in infos]
            info = bag.TopicInfo(name, type_name, 'cdr', offered)
            try:
                if self._writer is not None:
                    self._writer.create_topic(info)
                if self._clips is not None:
                    self._clips.add_topic(lambda writer: writer.create_topic(info))
            except BagError as exc:
                self.get_logger().error(f'{name}: cannot record {type_name}: {exc}')
                return
            self._filter.add_topic(name, type_name)
            self._topic_infos[name] = info
        # A reader's KEEP_LAST history silently overwrites what the executor has not taken
        # yet; 10 (ros2 bag record's default) lost clouds whenever the recorder fell about
        # a second behind on a loaded machine.
        depth = max([self._p['subscription_depth']] + [i.qos_profile.depth for i in infos])
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                         reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
                         else DurabilityPolicy.VOLATILE)
        # A group per topic keeps each topic in order while topics are taken in parallel;
        # with one shared group, rclpy's MultiThreadedExecutor spins hot while a callback
        # of the group runs (measured: 70 instead of 13 ms CPU per frame, composed).
        group = MutuallyExclusiveCallbackGroup()
        # Losses below us are seen two ways (LossCounter, which counts each once): the DDS
        # message-lost event, and gaps in each publisher's sequence numbers, which rclpy
        # hands to a callback taking (message, info). The counter outlives a
        # re-subscription.
        loss = self._loss.setdefault(name, LossCounter())
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
            if topic == self._event_topic:
                self._check_events(clips, t_ns, data)
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
            self._loss_seen(topic)

    def _on_matched(self, name: str, loss: LossCounter, info: Any) -> None:
        """Publishers matched (logged: shows when the recorder receives from the bridge)."""
        loss.publishers_matched(info.current_count)
        if info.current_count_change:
            self.get_logger().info(f'{name}: {info.current_count} publisher(s) matched')

    def _on_message_lost(self, topic: str, loss: LossCounter, info: Any) -> None:
        loss.message_lost(info.total_count_change)
        self._loss_seen(topic)

    def _loss_seen(self, topic: str) -> None:
        """Log a topic's loss now, or once LOSS_LOG_PERIOD has passed since its last line."""
        if time.monotonic() - self._loss_logged.get(topic, -LOSS_LOG_PERIOD) >= LOSS_LOG_PERIOD:
            self._log_loss(topic)
        else:
            self._loss_pending.add(topic)

    def _flush_loss_logs(self) -> None:
        now = time.monotonic()
        for topic in list(self._loss_pending):  # list(): the callbacks add to it meanwhile
            if now - self._loss_logged.get(topic, -LOSS_LOG_PERIOD) >= LOSS_LOG_PERIOD:
                self._log_loss(topic)

    def _log_loss(self, topic: str) -> None:
        self._loss_logged[topic] = time.monotonic()
        self._loss_pending.discard(topic)
        counter = self._loss.get(topic)
        if counter is None:
            return
        s = counter.snapshot()
        self.get_logger().warning(
            f'{topic}: {s.lost} messages lost in DDS before the recorder took them so far '
            f'(sequence gaps {s.lost_sequence_gap}, DDS message-lost events {s.lost_dds}); '
            'a larger subscription_depth holds more while the recorder is behind')

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
        clip = self._start_clip(clips, time.time_ns(), 'snapshot')
        response.success = clip is not None
        response.message = (str(self._clip_path(clip)) if clip is not None
                            else 'the clip bag could not be created (see the log)')
        return response

    # --- clips --------------------------------------------------------------------------

    def _check_events(self, clips: ClipRecorder, t_ns: int, data: bytes) -> None:
        """Start or extend a clip for the zone events of an events message that match."""
        try:
            reasons = matching_events(data, self._clip_rules)
        except ValueError as exc:
            self._bad_events += 1
            if self._bad_events == 1:
                self.get_logger().warning(
                    f'{self._event_topic}: a message that is not zone-event JSON was ignored '
                    f'for clips ({exc}); further ones are counted (bad_events in /diagnostics)')
            return
        if reasons:
            self._start_clip(clips, t_ns, ' '.join(reasons))

    def _start_clip(self, clips: ClipRecorder, t_ns: int, reason: str) -> Clip | None:
        try:
            clip, new = clips.trigger(t_ns, reason)
        except BagError as exc:
            self.get_logger().error(f'clip for {reason} not recorded: {exc}')
            return None
        if new:
            self.get_logger().info(
                f'clip {self._clip_path(clip)}: {reason}, {self._p["clip_before"]:g} s before '
                f'to {self._p["clip_after"]:g} s after')
        return clip

    def _clip_path(self, clip: Clip) -> Path:
        return self._bag_path.with_name(f'{self._bag_path.name}_clip_{clip.index:03d}')

    def _open_clip(self, clip: Clip) -> BatchingWriter:
        """Create, open and start the writer of a clip bag, with every topic known so far."""
        p = self._p
        path = self._clip_path(clip)
        writer = create_writer(_storage_options(p, path, clip_reason=clip.reasons[0]),
                                   p['writer_backend'])
        batching = _batching_writer(
            p, writer, p['clip_buffer_bytes'],
            lambda exc: self.get_logger().error(f'clip {path}: writing stopped: {exc}'),
            self._stamp_of)
        writer.open()
        try:
            for info in list(self._topic_infos.values()):
                batching.create_topic(info)
        except BagError:
            writer.close()
            raise
        batching.start()
        return batching

    def _close_due_clip(self) -> None:
        """Close the clip whose end has passed, on a thread: draining may take seconds."""
        clips = self._clips
        for due in clips.due(time.time_ns()) if clips is not None else ():
            thread = threading.Thread(target=self._finish_clip, args=due, name='clip-close')
            self._clip_threads = [t for t in self._clip_threads if t.is_alive()] + [thread]
            thread.start()

    def _finish_clip(self, clip: Clip, writer: BatchingWriter) -> None:
        path = self._clip_path(clip)
        try:
            stats = writer.close()
        except BagError as exc:
            self.get_logger().error(f'clip {path} could not be finished: {exc}')
            return
        dropped = sum(t.dropped_messages for t in writer.stats().topics.values())
        self._clips_written.append({
            'bag': str(path), 'start_ns': stats.start_ns, 'end_ns': stats.end_ns,
            'messages': stats.messages, 'dropped': dropped, 'reasons': clip.reasons})
        self.get_logger().info(f'clip {path} closed: {stats.messages} messages, dropped '
                               f'{dropped}, events: {", ".join(clip.reasons)}')

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
        self.final_loss, self._loss = self.loss_stats(), {}
        self._loss_logged.clear()
        self._loss_pending.clear()
        if clips is not None:
            for due in clips.due(time.time_ns(), all_clips=True):
                self._finish_clip(*due)
            for thread in self._clip_threads:
                thread.join()
            self._clip_threads.clear()
            self.final_clips = clips.stats()
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
                'clips': {'stats': None if self.final_clips is None
                          else asdict(self.final_clips),
                          'bad_events': self._bad_events, 'written': self._clips_written},
                'callback_errors': dict(self.callback_errors)})

    # --- statistics ---------------------------------------------------------------------

    def queue_stats(self) -> Any:
        """Return the writer queue's statistics, or None when not recording."""
        writer = self._writer
        return writer.stats() if writer is not None else None

    def loss_stats(self) -> dict[str, LossStats]:
        """Return the messages lost in DDS per topic of the bag being recorded."""
        return {name: counter.snapshot() for name, counter in list(self._loss.items())}

    def summary_line(self, stats: Any, *, final: bool = False) -> str:
        """Return a one-line summary of received / written / dropped messages."""
        received = sum(t.received_messages for t in stats.topics.values())
        written = sum(t.written_messages for t in stats.topics.values())
        dropped = sum(t.dropped_messages for t in stats.topics.values())
        skipped = sum(t.skipped_messages for t in stats.topics.values())
        lost = sum(s.lost for s in (self.final_loss if final else self.loss_stats()).values())
        mb = sum(t.written_bytes for t in stats.topics.values()) / 1e6
        head = 'bag closed' if final else 'recording'
        return (f'{head}: {self._bag_path}: received {received}, written {written} '
                f'({mb:.1f} MB), skipped {skipped}, dropped {dropped} {stats.dropped or ""}, '
                f'lost in DDS {lost}, queue '
                f'{stats.queue_messages} msgs / {stats.queue_bytes / 1e6:.1f} MB, write p99 '
                f'{stats.write_latency.p99_s * 1e3:.1f} ms, stamp->commit p99 '
                f'{stats.stamp_latency.p99_s * 1e3:.1f} ms'
                + (f', writing stopped: {stats.error}' if stats.error else ''))

    def _log_stats(self) -> None:
        stats = self.queue_stats()
        if stats is not None:
            self.get_logger().info(self.summary_line(stats))

    def _publish_diagnostics(self) -> None:
        if not self._recording or self._diag_pub is None:
            return
        self._flush_loss_logs()
        stats = self.queue_stats()
        statuses = self._bag_statuses(stats) if stats is not None else []
        if self._clips is not None:
            statuses.append(self._clips_status(self._clips))
        statuses.append(self.callbacks_status(str(self._bag_path)))
        self._diag_pub.publish(diagnostics.array(self.get_clock().now().to_msg(), statuses))

    def _clips_status(self, clips: ClipRecorder) -> DiagnosticStatus:
        s = clips.stats()
        written = list(self._clips_written)  # closing threads append to it
        dropped = sum(c['dropped'] for c in written)
        values = {'mode': self._p['clip_mode'], 'recording': s.recording,
                  'started': s.started, 'written': len(written), 'dropped': dropped,
                  'failed': s.failed, 'ring_messages': s.ring_messages,
                  'ring_bytes': s.ring_bytes, 'ring_evicted_early': s.ring_evicted_early,
                  'bad_events': self._bad_events}
        trouble = s.failed or dropped or s.ring_evicted_early or self._bad_events
        return diagnostics.status(
            f'{self.get_name()}: clips', str(self._bag_path),
            diagnostics.WARN if trouble else diagnostics.OK,
            'recording a clip' if s.recording else 'waiting for an event', values)

    def _bag_statuses(self, stats: Any) -> list[DiagnosticStatus]:
        """Return the main bag's statuses: one per topic, and the writer's."""
        statuses = []
        hardware_id = str(self._bag_path)
        losses = self.loss_stats()
        for name in sorted(stats.topics.keys() | losses.keys()):
            t = stats.topics.get(name, TopicQueueStats())
            loss = losses.get(name, LossStats())
            values = {'received': t.received_messages, 'written': t.written_messages,
                      'dropped': t.dropped_messages, 'received_bytes': t.received_bytes,
                      'written_bytes': t.written_bytes, 'skipped': t.skipped_messages,
                      **{f'skipped_{k}': v for k, v in t.skipped.items()},
                      **{f'dropped_{k}': v for k, v in t.dropped.items()},
                      'lost': loss.lost, 'lost_dds': loss.lost_dds,
                      'lost_sequence_gap': loss.lost_sequence_gap}
            statuses.append(diagnostics.status(
                f'{self.get_name()}: {name}', hardware_id,
                diagnostics.WARN if t.dropped_messages or loss.lost else diagnostics.OK,
                f'{t.dropped_messages} dropped, {loss.lost} lost in DDS', values))
        state = 'paused' if self._paused else 'recording'
        values = {'state': state, 'splits': stats.splits,
                  'queue_messages': stats.queue_messages, 'queue_bytes': stats.queue_bytes,
                  'peak_queue_bytes': stats.peak_queue_bytes, 'batches': stats.batches,
                  'write_p50_ms': round(stats.write_latency.p50_s * 1e3, 2),
                  'write_p99_ms': round(stats.write_latency.p99_s * 1e3, 2),
                  'write_max_ms': round(stats.write_latency.max_s * 1e3, 2),
                  'commit_latency_p99_ms': round(stats.commit_latency.p99_s * 1e3, 2),
                  'stamp_to_commit_p50_ms': round(stats.stamp_latency.p50_s * 1e3, 2),
                  'stamp_to_commit_p99_ms': round(stats.stamp_latency.p99_s * 1e3, 2),
                  'stamp_to_commit_max_ms': round(stats.stamp_latency.max_s * 1e3, 2)}
        statuses.append(diagnostics.status(
            f'{self.get_name()}: writer', hardware_id,
            diagnostics.ERROR if stats.error else diagnostics.OK, stats.error or state, values))
        return statuses


def main(args: list[str] | None = None) -> int:
    """Run the recorder until SIGINT/SIGTERM (``ros2 run sensr_bridge recorder_node``)."""
    from sensr_bridge.nodes.runtime import run_nodes

    return run_nodes([('recorder', RecorderNode)], args)
