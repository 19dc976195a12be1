# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The recorder's event clips: what starts one, its bag and writer, and its status.

:class:`~sensr_bridge.bag.clips.ClipRecorder` keeps the ring buffer and the open clips;
this session of one recording turns zone events (JSON on ``clip_event_topic``) and
``~/snapshot`` calls into clips, creates each clip's bag next to the main bag, closes it
on a thread once its end has passed, and reports it. No rclpy: the node hands in its
logger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus

from sensr_bridge.bag import base as bag
from sensr_bridge.bag.clips import Clip, ClipRecorder, ClipStats, matching_events, parse_event_rules
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.bag.queue import BatchingWriter
from sensr_bridge.errors import BagError
from sensr_bridge.nodes import diagnostics, recorder_options


class ClipSession:
    """The clips of one recording (one main bag path), from configure to finish."""

    def __init__(self, p: dict[str, Any], bag_path: Path, event_topic: str, logger: Any,
                 topics: Callable[[], Iterable[bag.TopicInfo]],
                 stamp_of: Callable[[str, bytes], int | None]) -> None:
        """Check the clip parameters; no bag is created before the first event.

        Args:
            p: The recorder's parameter values.
            bag_path: The main bag's directory; clip bags are ``<name>_clip_NNN`` beside it.
            event_topic: The absolute name of the zone-event topic.
            logger: The node's logger.
            topics: The topics known so far (a new clip bag gets them all).
            stamp_of: The header stamp of a message, for the writer's latency figures.

        Raises:
            ConfigError: ``clip_events`` has an entry that is not an event rule.

        """
        self._p = p
        self._bag_path = bag_path
        self.event_topic = event_topic
        self._logger = logger
        self._topics = topics
        self._stamp_of = stamp_of
        self._rules = parse_event_rules(p['clip_events'])
        self._recorder = ClipRecorder(p['clip_before'], p['clip_after'], p['clip_buffer_bytes'],
                                      self._open)
        self._threads: list[threading.Thread] = []
        self.written: list[dict[str, Any]] = []
        """Clip bags closed so far: path, time span, messages, dropped, reasons."""
        self.bad_events = 0

    def add_topic(self, info: bag.TopicInfo) -> None:
        """Add a topic to every open clip bag (new ones get it from ``topics``)."""
        self._recorder.add_topic(lambda writer: writer.create_topic(info))

    def add(self, topic: str, t_ns: int, data: bytes) -> None:
        """Keep a message in the ring (and open clips); an event message may start a clip."""
        self._recorder.add(topic, t_ns, data)
        if topic == self.event_topic:
            self._check_events(t_ns, data)

    def snapshot(self) -> Path | None:
        """Start (or extend) a clip around now; return its bag, None if it failed (logged)."""
        clip = self._start(time.time_ns(), 'snapshot')
        return None if clip is None else self.path(clip)

    def path(self, clip: Clip) -> Path:
        """Return the bag directory of ``clip``."""
        return self._bag_path.with_name(f'{self._bag_path.name}_clip_{clip.index:03d}')

    def close_due(self) -> None:
        """Close the clip whose end has passed, on a thread: draining may take seconds."""
        for due in self._recorder.due(time.time_ns()):
            thread = threading.Thread(target=self._finish, args=due, name='clip-close')
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def finish(self) -> ClipStats:
        """Close every clip, ended or not, and wait for the closing threads."""
        for due in self._recorder.due(time.time_ns(), all_clips=True):
            self._finish(*due)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        return self._recorder.stats()

    def stats(self) -> ClipStats:
        """Return the clips' statistics so far."""
        return self._recorder.stats()

    def report(self, stats: ClipStats | None) -> dict[str, Any]:
        """Return what the statistics file says of the clips."""
        return {'stats': None if stats is None else asdict(stats),
                'bad_events': self.bad_events, 'written': self.written}

    def status(self, node_name: str) -> DiagnosticStatus:
        """Return the ``/diagnostics`` status of the clips."""
        s = self.stats()
        written = list(self.written)  # closing threads append to it
        dropped = sum(c['dropped'] for c in written)
        values = {'mode': self._p['clip_mode'], 'recording': s.recording,
                  'started': s.started, 'written': len(written), 'dropped': dropped,
                  'failed': s.failed, 'ring_messages': s.ring_messages,
                  'ring_bytes': s.ring_bytes, 'ring_evicted_early': s.ring_evicted_early,
                  'bad_events': self.bad_events}
        trouble = s.failed or dropped or s.ring_evicted_early or self.bad_events
        return diagnostics.status(
            f'{node_name}: clips', str(self._bag_path),
            diagnostics.WARN if trouble else diagnostics.OK,
            'recording a clip' if s.recording else 'waiting for an event', values)

    def _check_events(self, t_ns: int, data: bytes) -> None:
        """Start or extend a clip for the zone events of an events message that match."""
        try:
            reasons = matching_events(data, self._rules)
        except ValueError as exc:
            self.bad_events += 1
            if self.bad_events == 1:
                self._logger.warning(
                    f'{self.event_topic}: a message that is not zone-event JSON was ignored '
                    f'for clips ({exc}); further ones are counted (bad_events in /diagnostics)')
            return
        if reasons:
            self._start(t_ns, ' '.join(reasons))

    def _start(self, t_ns: int, reason: str) -> Clip | None:
        try:
            clip, new = self._recorder.trigger(t_ns, reason)
        except BagError as exc:
            self._logger.error(f'clip for {reason} not recorded: {exc}')
            return None
        if new:
            self._logger.info(
                f'clip {self.path(clip)}: {reason}, {self._p["clip_before"]:g} s before '
                f'to {self._p["clip_after"]:g} s after')
        return clip

    def _open(self, clip: Clip) -> BatchingWriter:
        """Create, open and start the writer of a clip bag, with every topic known so far."""
        p = self._p
        path = self.path(clip)
        writer = create_writer(
            recorder_options.storage_options(p, path, clip_reason=clip.reasons[0]),
            p['writer_backend'])
        batching = recorder_options.batching_writer(
            p, writer, p['clip_buffer_bytes'],
            lambda exc: self._logger.error(f'clip {path}: writing stopped: {exc}'),
            self._stamp_of)
        writer.open()
        try:
            for info in list(self._topics()):
                batching.create_topic(info)
        except BagError:
            writer.close()
            raise
        batching.start()
        return batching

    def _finish(self, clip: Clip, writer: BatchingWriter) -> None:
        path = self.path(clip)
        try:
            stats = writer.close()
        except BagError as exc:
            self._logger.error(f'clip {path} could not be finished: {exc}')
            return
        dropped = sum(t.dropped_messages for t in writer.stats().topics.values())
        self.written.append({
            'bag': str(path), 'start_ns': stats.start_ns, 'end_ns': stats.end_ns,
            'messages': stats.messages, 'dropped': dropped, 'reasons': clip.reasons})
        self._logger.info(f'clip {path} closed: {stats.messages} messages, dropped '
                          f'{dropped}, events: {", ".join(clip.reasons)}')
