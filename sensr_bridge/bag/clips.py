# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Event clips: the seconds around a SENSR zone event, in a bag of their own.

Every message the recorder takes also goes into a :class:`RingBuffer` holding the last
``before`` seconds (and :data:`SLACK_NS` more; bounded in bytes: when the bound is
reached first, the oldest messages leave early and are counted, so a clip's lead-in is
shorter, never the memory larger). An event (a zone event matching
:func:`parse_event_rules`, or a snapshot request) makes the :class:`ClipPlanner` open a
clip from ``t - before`` to ``t + after``; an event while a clip is open extends that
clip to ``t + after``, so overlapping events give one clip. :class:`ClipRecorder` writes
a clip: the ring's messages since the clip's start, then every message received until
its end, through a :class:`~sensr_bridge.bag.queue.BatchingWriter` of its own (a
complete rosbag2 bag), and hands it back for closing once its end has passed.

Pure Python, no rclpy; the recorder node supplies the writers and the clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
import json
import threading
from typing import TYPE_CHECKING, Any

from sensr_bridge.convert.cdr import read_string
from sensr_bridge.errors import BagError, ConfigError
from sensr_bridge.sensr import protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from sensr_bridge.bag.base import Message
    from sensr_bridge.bag.queue import BatchingWriter

CLIP_MODES = ('off', 'with_bag', 'only')
"""The recorder's ``clip_mode``: no clips, clips next to the main bag, clips only."""

ZONE_EVENT_TYPES = frozenset(v.name for v in protocol.ZONE_EVENT_TYPE.values
                             if v.name != 'NONE')
"""The zone event types a rule may name (ENTRY, EXIT, LOITERING, EXCEEDS_SPEED)."""

SLACK_NS = 1_000_000_000
"""Callbacks of different topics run in parallel, so messages reach the clip recorder
slightly out of receive-time order (an event after a cloud received later than it). The
ring keeps this much more than ``before``, and a clip is closed this long after its end,
so such a message still finds its place (a grace of 0.2 s missed one in a test on a
loaded machine)."""


@dataclass(frozen=True)
class EventRule:
    """Zone events that start a clip.

    Attributes:
        type: ``ZoneEvent.Type`` name (ENTRY, EXIT, ...), None for any.
        zone: Zone id, None for any.

    """

    type: str | None
    zone: int | None

    def matches(self, event_type: str, zone: int) -> bool:
        """Whether a zone event of this type and zone matches the rule."""
        return self.type in (None, event_type) and self.zone in (None, zone)


def parse_event_rules(entries: Sequence[str], types: Collection[str] = ZONE_EVENT_TYPES,
                      name: str = 'clip_events') -> list[EventRule]:
    """Parse ``TYPE``, ``TYPE@ZONE``, ``*`` or ``*@ZONE`` entries; '' entries are ignored.

    Args:
        entries: The entries (any rule that matches starts or extends a clip).
        types: The valid type names.
        name: The parameter they come from, for the error message.

    Returns:
        The rules.

    Raises:
        ConfigError: An unknown type or a zone that is not an integer.

    """
    rules = []
    for entry in entries:
        if not entry:
            continue
        kind, sep, zone = entry.partition('@')
        if kind != '*' and kind not in types:
            msg = (f'{name} entry {entry!r}: unknown event type {kind!r} (expected * or one '
                   f'of {", ".join(sorted(types))}, optionally @ZONE_ID)')
            raise ConfigError(msg)
        try:
            zone_id = int(zone) if sep else None
        except ValueError:
            msg = f'{name} entry {entry!r}: zone {zone!r} is not an integer id'
            raise ConfigError(msg) from None
        rules.append(EventRule(None if kind == '*' else kind, zone_id))
    return rules


def matching_events(data: bytes | memoryview, rules: Sequence[EventRule]) -> list[str]:
    """Return ``TYPE@ZONE`` of every zone event in an ``events`` message that a rule matches.

    Args:
        data: A serialized ``std_msgs/String`` of the bridge's ``events`` topic (JSON with
            a ``zone`` list of ``{"id", "type"}``).
        rules: The rules.

    Raises:
        ValueError: The message is not such a String (malformed CDR, JSON or fields).

    """
    try:
        events = json.loads(read_string(data)).get('zone', [])
        found = [(str(e['type']), int(e['id'])) for e in events]
    except (AttributeError, KeyError, TypeError) as exc:
        msg = f'not an events message: {exc!r}'
        raise ValueError(msg) from exc
    return [f'{kind}@{zone}' for kind, zone in found
            if any(rule.matches(kind, zone) for rule in rules)]


class RingBuffer:
    """The last ``window_ns`` of messages, at most ``max_bytes`` of payload.

    Not thread-safe: :class:`ClipRecorder` calls it under its lock.

    Args:
        window_ns: How far back it keeps messages (by their receive time).
        max_bytes: Bound on the payload bytes held.

    """

    def __init__(self, window_ns: int, max_bytes: int) -> None:
        self._window_ns = window_ns
        self._max_bytes = max_bytes
        self._items: deque[Message] = deque()
        self.bytes = 0
        self.evicted_early = 0
        """Messages that left before ``window_ns`` had passed, for the byte bound."""

    def __len__(self) -> int:
        """Messages held."""
        return len(self._items)

    def add(self, message: Message) -> None:
        """Add a message (topic, receive time ns, data); drop what is too old or too much."""
        self._items.append(message)
        self.bytes += len(message[2])
        oldest = message[1] - self._window_ns
        while self._items[0][1] < oldest:
            self.bytes -= len(self._items.popleft()[2])
        while self.bytes > self._max_bytes:
            self.bytes -= len(self._items.popleft()[2])
            self.evicted_early += 1

    def since(self, t_ns: int) -> list[Message]:
        """The messages received at ``t_ns`` or later, oldest first."""
        return [m for m in self._items if m[1] >= t_ns]


@dataclass
class Clip:
    """A clip's time span and what started it.

    Attributes:
        index: Its number, from 1.
        start_ns: Receive time of its first message, at the earliest.
        end_ns: Receive time of its last message, at the latest.
        reasons: Events that started or extended it, in order.

    """

    index: int
    start_ns: int
    end_ns: int
    reasons: list[str] = field(default_factory=list)


class ClipPlanner:
    """Turns events into clip spans: a new clip, or the open one extended.

    Args:
        before_ns: Time kept before an event.
        after_ns: Time recorded after an event.

    """

    def __init__(self, before_ns: int, after_ns: int) -> None:
        self._before_ns = before_ns
        self._after_ns = after_ns
        self.open: Clip | None = None
        self._last_end = -1
        self._count = 0

    def trigger(self, t_ns: int, reason: str) -> Clip | None:
        """Plan for an event at ``t_ns``.

        Returns:
            The new clip, or None when the open clip was extended (it then ends
            ``after`` past ``t_ns``, or later if it already did).

        """
        clip = self.open
        if clip is not None and t_ns <= clip.end_ns:
            clip.end_ns = max(clip.end_ns, t_ns + self._after_ns)
            clip.reasons.append(reason)
            return None
        if clip is not None:  # over, though not closed yet: the new one follows it
            self._last_end = max(self._last_end, clip.end_ns)
        self._count += 1
        # No message in two clips: a lead-in never reaches back into the previous clip.
        start = max(t_ns - self._before_ns, self._last_end + 1)
        self.open = Clip(self._count, start, t_ns + self._after_ns, [reason])
        return self.open

    def close(self, clip: Clip, *, written: bool = True) -> None:
        """Forget a clip that is written out (or not, when its bag failed).

        Events no longer extend it; the next clip starts after a written clip's end.
        """
        if self.open is clip:
            self.open = None
        if written:
            self._last_end = max(self._last_end, clip.end_ns)


@dataclass
class ClipStats:
    """Counters of a :class:`ClipRecorder`.

    Attributes:
        started: Clips started.
        failed: Clips whose bag could not be created.
        ring_messages: Messages in the ring buffer now.
        ring_bytes: Their payload bytes.
        ring_evicted_early: Messages that left the ring before their time (byte bound).
        recording: Whether a clip is being recorded now.

    """

    started: int = 0
    failed: int = 0
    ring_messages: int = 0
    ring_bytes: int = 0
    ring_evicted_early: int = 0
    recording: bool = False


class ClipRecorder:
    """Keeps the ring buffer and feeds the clip being recorded.

    Thread-safe: :meth:`add` is called from every topic's callback.

    Args:
        before_s: Seconds kept before an event (the ring's window).
        after_s: Seconds recorded after an event.
        max_bytes: Bound on the ring buffer's payload bytes.
        open_writer: Creates, opens and starts the writer of a clip, with every topic
            known so far; raises ``BagError`` when it cannot.

    """

    def __init__(self, before_s: float, after_s: float, max_bytes: int,
                 open_writer: Callable[[Clip], BatchingWriter]) -> None:
        self._lock = threading.Lock()
        self._ring = RingBuffer(round(before_s * 1e9) + SLACK_NS, max_bytes)
        self._planner = ClipPlanner(round(before_s * 1e9), round(after_s * 1e9))
        self._open_writer = open_writer
        # Clips being recorded, oldest first: normally one; two while a clip that has
        # ended waits to be closed and the next event has started another.
        self._active: list[tuple[Clip, BatchingWriter]] = []
        self._stats = ClipStats()

    def add(self, topic: str, t_ns: int, data: bytes) -> None:
        """Keep a message in the ring; hand it to the clip being recorded if it is due."""
        with self._lock:
            self._ring.add((topic, t_ns, data))
            for clip, writer in self._active:
                if clip.start_ns <= t_ns <= clip.end_ns:
                    writer.put(topic, t_ns, data)

    def trigger(self, t_ns: int, reason: str) -> tuple[Clip, bool]:
        """Start a clip around ``t_ns``, or extend the one being recorded.

        Returns:
            The clip the event is in, and whether it is a new one.

        Raises:
            BagError: The clip's bag could not be created (counted; the next event
                starts a new clip).

        """
        with self._lock:
            clip = self._planner.trigger(t_ns, reason)
            if clip is None:
                return self._planner.open, False
            self._stats.started += 1
        # Opening may take a while (a directory, a writer process): messages meanwhile
        # go to the ring, and from there into the clip below.
        try:
            writer = self._open_writer(clip)
        except BagError:
            with self._lock:
                self._stats.failed += 1
                self._planner.close(clip, written=False)
            raise
        with self._lock:
            for topic, stamp, data in self._ring.since(clip.start_ns):
                if stamp <= clip.end_ns:
                    writer.put(topic, stamp, data)
            self._active.append((clip, writer))
        return clip, True

    def add_topic(self, create: Callable[[BatchingWriter], Any]) -> None:
        """Call ``create`` with the writer of every clip being recorded."""
        with self._lock:
            for _, writer in self._active:
                create(writer)

    def due(self, now_ns: int, *,
            all_clips: bool = False) -> list[tuple[Clip, BatchingWriter]]:
        """Take the clips whose end has passed (every clip, with ``all_clips``).

        Returns:
            The clips and their writers, oldest first, for the caller to close.

        """
        with self._lock:
            done = [(clip, writer) for clip, writer in self._active
                    if all_clips or now_ns > clip.end_ns + SLACK_NS]
            self._active = [item for item in self._active if item not in done]
            for clip, _ in done:
                self._planner.close(clip)
            return done

    def stats(self) -> ClipStats:
        """A snapshot of the counters."""
        with self._lock:
            return ClipStats(self._stats.started, self._stats.failed, len(self._ring),
                             self._ring.bytes, self._ring.evicted_early,
                             bool(self._active))
