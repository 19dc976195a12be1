# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Event clips without rclpy: rules, the ring buffer, the planner, and clip bags on disk."""

import json

from bag_helpers import COUNTER, string_cdr, uint32_cdr
import pytest
from rosbags.rosbag2 import Reader

from sensr_bridge.bag.base import StorageOptions
from sensr_bridge.bag.clips import (
    ClipPlanner,
    ClipRecorder,
    EventRule,
    RingBuffer,
    matching_events,
    parse_event_rules,
)
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.bag.queue import BatchingWriter
from sensr_bridge.errors import BagError, ConfigError

TYPES = {'ENTRY', 'EXIT', 'LOITERING', 'EXCEEDS_SPEED'}
S = 1_000_000_000


def events(*zone_events):
    return string_cdr(json.dumps({'zone': [{'id': z, 'type': t, 'object': {'id': 1}}
                                           for t, z in zone_events],
                                  'losing': [], 'stamp_ns': 5}))


def test_parse_event_rules():
    assert parse_event_rules(['ENTRY@3', '', '*', 'EXIT', '*@2'], TYPES) == [
        EventRule('ENTRY', 3), EventRule(None, None), EventRule('EXIT', None),
        EventRule(None, 2)]


@pytest.mark.parametrize(('entry', 'message'), [('ENTER', 'unknown event type'),
                                                ('ENTRY@x', 'not an integer'),
                                                ('@3', 'unknown event type')])
def test_parse_event_rules_rejects_with_the_entry(entry, message):
    with pytest.raises(ConfigError, match=f'clip_events entry .*{message}'):
        parse_event_rules([entry], TYPES)


def test_matching_events():
    rules = parse_event_rules(['ENTRY@3', 'LOITERING'], TYPES)
    data = events(('ENTRY', 3), ('ENTRY', 1), ('LOITERING', 7), ('EXIT', 3))
    assert matching_events(data, rules) == ['ENTRY@3', 'LOITERING@7']
    assert matching_events(events(('EXIT', 3)), rules) == []
    assert matching_events(string_cdr('{"losing": []}'), rules) == []
    assert matching_events(events(('EXIT', 3)), parse_event_rules(['*'], TYPES)) == ['EXIT@3']


@pytest.mark.parametrize('data', [b'', b'\x00\x01\x00\x00\xff\x00\x00\x00ab',
                                  string_cdr('not json'), string_cdr('[1, 2]'),
                                  string_cdr('{"zone": [{"id": 1}]}'),
                                  string_cdr('{"zone": [{"id": "x", "type": "ENTRY"}]}'),
                                  string_cdr('{"zone": 5}')])
def test_matching_events_rejects_what_is_not_an_events_message(data):
    with pytest.raises(ValueError):
        matching_events(data, [EventRule(None, None)])


def test_ring_buffer_keeps_its_window_and_its_byte_bound():
    ring = RingBuffer(window_ns=10, max_bytes=100)
    for t in range(25):
        ring.add(('/t', t, b'x' * 4))
    assert [m[1] for m in ring.since(0)] == list(range(14, 25))  # t >= 24 - 10
    assert (len(ring), ring.bytes, ring.evicted_early) == (11, 44, 0)
    assert [m[1] for m in ring.since(20)] == [20, 21, 22, 23, 24]
    ring.add(('/t', 25, b'y' * 90))  # over the byte bound: the oldest leave early
    assert [m[1] for m in ring.since(0)] == [23, 24, 25]
    assert (ring.bytes, ring.evicted_early) == (98, 8)  # 14 left with the window


def test_planner_extends_the_open_clip_and_never_overlaps_the_last():
    planner = ClipPlanner(before_ns=3 * S, after_ns=2 * S)
    first = planner.trigger(10 * S, 'a')
    assert (first.index, first.start_ns, first.end_ns) == (1, 7 * S, 12 * S)
    assert planner.trigger(11 * S, 'b') is None  # inside: extends
    assert planner.trigger(12 * S + 1, 'c') is None  # after the old end, before the new
    assert (first.end_ns, first.reasons) == (14 * S + 1, ['a', 'b', 'c'])
    planner.close(first)
    assert planner.open is None
    second = planner.trigger(15 * S, 'd')
    # The lead-in would reach back to 12 s; it starts after the first clip's end instead.
    assert (second.index, second.start_ns, second.end_ns) == (2, 14 * S + 2, 17 * S)


def open_clip_writer(root, backend='python'):
    def open_writer(clip):
        writer = create_writer(StorageOptions(root / f'clip_{clip.index}'), backend)
        batching = BatchingWriter(writer)
        writer.open()
        batching.create_topic(COUNTER)
        batching.start()
        return batching
    return open_writer


def clip_stamps(path):
    with Reader(path) as reader:
        return [t for _, t, _ in reader.messages()]


def test_clip_recorder_writes_before_and_after(tmp_path):
    clips = ClipRecorder(before_s=3e-9, after_s=2e-9, max_bytes=1 << 20,
                         open_writer=open_clip_writer(tmp_path))
    for t in range(10):
        clips.add(COUNTER.name, t, uint32_cdr(t))
    clip, new = clips.trigger(9, 'ENTRY@1')
    assert new and (clip.start_ns, clip.end_ns) == (6, 11)
    assert clips.stats().recording
    assert clips.trigger(10, 'ENTRY@2') == (clip, False)  # extends to 12
    for t in range(10, 16):
        clips.add(COUNTER.name, t, uint32_cdr(t))
    assert clips.due(12) == []  # within the slack
    [(due_clip, writer)] = clips.due(10**10)
    assert due_clip is clip and clip.reasons == ['ENTRY@1', 'ENTRY@2']
    writer.close()
    assert clip_stamps(tmp_path / 'clip_1') == list(range(6, 13))
    assert clips.due(10**10) == []
    stats = clips.stats()
    assert (stats.started, stats.failed, stats.recording) == (1, 0, False)
    assert stats.ring_messages == 16  # the window of 3 ns and a second of slack


def test_failed_clip_is_counted_and_the_next_event_starts_anew(tmp_path):
    opened = open_clip_writer(tmp_path)
    calls = []

    def flaky(clip):
        calls.append(clip.index)
        if clip.index == 1:
            msg = 'disk on fire'
            raise BagError(msg)
        return opened(clip)

    clips = ClipRecorder(before_s=0, after_s=1e-9, max_bytes=1 << 20, open_writer=flaky)
    with pytest.raises(BagError, match='disk on fire'):
        clips.trigger(5, 'snapshot')
    assert clips.stats().failed == 1
    clip, new = clips.trigger(6, 'snapshot')
    assert new and clip.index == 2
    clips.add(COUNTER.name, 6, uint32_cdr(6))
    [(_, writer)] = clips.due(0, all_clips=True)
    writer.close()
    assert clip_stamps(tmp_path / 'clip_2') == [6]


def test_event_after_the_end_of_an_unclosed_clip_starts_the_next(tmp_path):
    """The first clip has ended but is not closed yet (the slack): a second one follows it."""
    clips = ClipRecorder(before_s=3e-9, after_s=2e-9, max_bytes=1 << 20,
                         open_writer=open_clip_writer(tmp_path))
    for t in range(10):
        clips.add(COUNTER.name, t, uint32_cdr(t))
    first, _ = clips.trigger(5, 'a')  # 2..7
    for t in range(10, 12):
        clips.add(COUNTER.name, t, uint32_cdr(t))
    second, new = clips.trigger(11, 'b')  # 8..13: its lead-in starts after the first clip
    assert new and (second.index, second.start_ns, second.end_ns) == (2, 8, 13)
    for t in range(12, 20):
        clips.add(COUNTER.name, t, uint32_cdr(t))
    done = clips.due(0, all_clips=True)
    assert [clip for clip, _ in done] == [first, second]
    for _, writer in done:
        writer.close()
    assert clip_stamps(tmp_path / 'clip_1') == list(range(2, 8))
    assert clip_stamps(tmp_path / 'clip_2') == [8, 9, 10, 11, 12, 13]
