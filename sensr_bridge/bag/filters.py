# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Which messages the main bag keeps: per-topic intervals and empty clouds.

A day at full rate is 16 TB of 18.4 MB clouds at 10 Hz; SENSR's own recorder kept a
cloud per ``pointcloud_interval``. Here any topic can be thinned: an
:class:`IntervalRule` (``REGEX=SECONDS``) keeps at most one message per interval on the
topics whose name matches, and ``skip_empty_clouds`` leaves out PointCloud2 messages
without points. What is left out is *skipped*, counted per topic and reason
(:data:`SKIPPED_INTERVAL`, :data:`SKIPPED_EMPTY`), never reported as loss.

Intervals are slots of the receive clock: a message is kept when it is the first of its
topic in ``[k * interval, (k + 1) * interval)``. Clouds at 10 Hz with a 1.0 s interval
give exactly one per second, however the arrival times jitter; keeping a message once
``interval`` has passed since the last kept one would drift to one per 1.1 s instead.

Pure Python, no rclpy: the recorder calls :meth:`MessageFilter.skip_reason` in each
topic's subscription callback (one thread at a time per topic).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import re
from typing import TYPE_CHECKING

from sensr_bridge.convert.cdr import cloud_point_count
from sensr_bridge.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

SKIPPED_INTERVAL = 'interval'
SKIPPED_EMPTY = 'empty'
CLOUD_TYPE = 'sensor_msgs/msg/PointCloud2'


@dataclass(frozen=True)
class IntervalRule:
    """Keep at most one message per ``interval_ns`` on topics matching ``pattern``.

    Attributes:
        pattern: Searched in the topic name (``re.search``).
        interval_ns: Interval in nanoseconds (0: keep every message).

    """

    pattern: re.Pattern[str]
    interval_ns: int


def parse_intervals(entries: Sequence[str], name: str = 'topic_intervals') -> list[IntervalRule]:
    """Parse ``REGEX=SECONDS`` entries; empty entries are ignored.

    Args:
        entries: The entries, first match wins.
        name: The parameter they come from, for the error message.

    Returns:
        The rules, in order.

    Raises:
        ConfigError: An entry without ``=``, with an invalid regular expression, or a
            number of seconds that is not finite and >= 0.

    """
    rules = []
    for entry in entries:
        if not entry:
            continue
        pattern, sep, seconds = entry.rpartition('=')
        try:
            interval = float(seconds) if sep else math.nan
        except ValueError:
            interval = math.nan
        if not (math.isfinite(interval) and interval >= 0):
            msg = f'{name} entry {entry!r} is not REGEX=SECONDS with SECONDS >= 0'
            raise ConfigError(msg)
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            msg = f'{name} entry {entry!r}: {pattern!r} is not a valid regular expression: {exc}'
            raise ConfigError(msg) from exc
        rules.append(IntervalRule(compiled, round(interval * 1e9)))
    return rules


class MessageFilter:
    """Decides per message whether the main bag skips it.

    Args:
        rules: Interval rules, first match per topic wins.
        skip_empty_clouds: Skip PointCloud2 messages with no points.

    """

    def __init__(self, rules: Sequence[IntervalRule], *, skip_empty_clouds: bool) -> None:
        self._rules = list(rules)
        self._skip_empty = skip_empty_clouds
        self._interval_ns: dict[str, int] = {}
        self._cloud_topics: set[str] = set()
        self._slot: dict[str, int] = {}

    def add_topic(self, topic: str, type_name: str) -> None:
        """Resolve a topic's rule once (idempotent)."""
        self._interval_ns[topic] = next(
            (r.interval_ns for r in self._rules if r.pattern.search(topic)), 0)
        if type_name == CLOUD_TYPE:
            self._cloud_topics.add(topic)

    def skip_reason(self, topic: str, t_ns: int, data: bytes | memoryview) -> str | None:
        """Return why the message is skipped, or None to keep it.

        An empty cloud is skipped before its interval is looked at: it does not use up
        the slot of the next cloud with points.

        Args:
            topic: Topic name (added with :meth:`add_topic`; others are kept).
            t_ns: Receive time, nanoseconds.
            data: The serialized message.

        """
        if self._skip_empty and topic in self._cloud_topics and cloud_point_count(data) == 0:
            return SKIPPED_EMPTY
        interval = self._interval_ns.get(topic, 0)
        if not interval:
            return None
        slot = t_ns // interval
        if self._slot.get(topic) == slot:
            return SKIPPED_INTERVAL
        self._slot[topic] = slot
        return None
