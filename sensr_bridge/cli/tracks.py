# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""``tracks``: every SENSR object of a bag as CSV, one row per object per frame.

The objects come from the bag's ``output_raw`` topic (every OutputMessage as its exact
protobuf bytes), so bags recorded before the ``objects`` topic existed export too. The
bag is opened with ``rosbags`` (sqlite3 and mcap, split bags, or one storage file) and
read one message at a time, selecting only the ``output_raw`` connection: the point
clouds are never deserialized, nor read. In mcap files the messages are read through the
file's message index (:mod:`sensr_bridge.bag.mcap_index`): rosbags reads each chunk
whole, and the recorder puts nearly every OutputMessage in a chunk with a cloud.

Columns (:data:`COLUMNS`): ``stamp`` (``OutputMessage.timestamp``, seconds since the
epoch with nine decimals; the bag's receive time where SENSR sent none), ``id``,
``label`` and ``label_id``, ``probability``, ``tracking_status``, ``centre_x/y/z`` (the
box centre: SENSR's bottom z raised by half the height), ``size_x/y/z``, ``yaw``,
``velocity_x/y/z``, ``source`` (``objects`` or ``static_objects``). Metres, radians,
m/s, SENSR's world frame; numbers as the shortest decimals of SENSR's float32 values.
Objects with no box or a malformed one are skipped and counted
(:data:`sensr_bridge.convert.objects.SKIP_REASONS`), as are messages that are not an
OutputMessage; the summary line says how many.

Usage::

    tracks BAG                   # writes BAG_tracks.csv beside the bag directory
    tracks BAG --out -           # CSV to stdout (progress and summary go to stderr)
    python -m sensr_bridge.cli.tracks BAG --out tracks.csv --progress
"""

from __future__ import annotations

import argparse
from collections import Counter
import contextlib
import csv
from dataclasses import dataclass, field
import os
from pathlib import Path
import sys
import time
from typing import TYPE_CHECKING, TextIO

from rosbags.rosbag2 import Reader, ReaderError
import yaml

from sensr_bridge.bag import mcap_index
from sensr_bridge.convert import cdr
from sensr_bridge.convert.objects import frame_rows, has_objects
from sensr_bridge.errors import DecodeError
from sensr_bridge.sensr import protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

COLUMNS = (
    'stamp', 'id', 'label', 'label_id', 'probability', 'tracking_status',
    'centre_x', 'centre_y', 'centre_z', 'size_x', 'size_y', 'size_z', 'yaw',
    'velocity_x', 'velocity_y', 'velocity_z', 'source',
)
"""The CSV header."""

MULTIARRAY = 'std_msgs/msg/UInt8MultiArray'
OUTPUT_LABEL = protocol.OutputMessage.DESCRIPTOR.full_name
"""The dimension label the bridge gives output_raw (``sensr_proto.OutputMessage``)."""


class TracksError(Exception):
    """The bag cannot be exported (unreadable, or without an ``output_raw`` topic)."""


@dataclass
class ExportStats:
    """What an export read and wrote.

    Attributes:
        topic: The topic read.
        messages: Messages read from it.
        frames: OutputMessages with an object list (one frame of SENSR each).
        objects: Rows written.
        ids: Distinct object ids.
        skipped: Objects skipped, by reason.
        bad_messages: Messages that are not an OutputMessage, by kind.
        first_ns: Stamp of the first frame (0 without frames).
        last_ns: Stamp of the last frame.
        elapsed_s: Wall-clock seconds the export took.

    """

    topic: str = ''
    messages: int = 0
    frames: int = 0
    objects: int = 0
    ids: set[int] = field(default_factory=set)
    skipped: Counter[str] = field(default_factory=Counter)
    bad_messages: Counter[str] = field(default_factory=Counter)
    first_ns: int = 0
    last_ns: int = 0
    elapsed_s: float = 0.0

    def summary(self) -> str:
        """Return the one-line summary: frames, objects, distinct ids, duration, problems."""
        duration = (self.last_ns - self.first_ns) / 1e9 if self.frames else 0.0
        rate = self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0
        skipped = ', '.join(f'{k} {v}' for k, v in sorted(self.skipped.items())) or 'none'
        bad = ', '.join(f'{k} {v}' for k, v in sorted(self.bad_messages.items())) or 'none'
        return (f'{self.frames} frames, {self.objects} objects, {len(self.ids)} distinct ids, '
                f'{duration:.1f} s of SENSR time from {self.topic}; objects skipped: '
                f'{skipped}; bad messages: {bad}; read {self.messages} messages in '
                f'{self.elapsed_s:.1f} s ({rate:.0f}/s)')


def _stamp_text(stamp_ns: int) -> str:
    sec, nsec = divmod(stamp_ns, 1_000_000_000)
    return f'{sec}.{nsec:09d}'


def output_connections(reader: Reader, topic: str | None) -> list:
    """Return the connections of the OutputMessage topic of an open bag.

    Args:
        reader: The open rosbags reader.
        topic: The topic; None: the one UInt8MultiArray topic named ``output_raw``.

    Returns:
        Its connections (one per topic, or more in a bag of several storage files).

    Raises:
        TracksError: No such topic, or several candidates and ``topic`` not given.

    """
    candidates = [c for c in reader.connections if c.msgtype == MULTIARRAY and (
        c.topic == topic if topic else c.topic.rsplit('/', 1)[-1] == 'output_raw')]
    names = sorted({c.topic for c in candidates})
    if not names:
        present = ', '.join(sorted({f'{c.topic} ({c.msgtype})' for c in reader.connections}))
        wanted = f'{MULTIARRAY} topic ' + (topic or 'named output_raw')
        msg = (f'no {wanted} in the bag (it has: {present or "no topics"}); the bridge '
               'publishes it unless publish_raw_output is false')
        raise TracksError(msg)
    if len(names) > 1:
        msg = f'several output_raw topics: {", ".join(names)}; choose one with --topic'
        raise TracksError(msg)
    return candidates


def export(bag: Path, out: TextIO, *, topic: str | None = None,
           progress: Callable[[int, int], None] | None = None) -> ExportStats:
    """Write every object of a bag as CSV rows.

    Args:
        bag: The bag directory (or one .db3 or .mcap file).
        out: Where the CSV goes (header first).
        topic: The OutputMessage topic (default: the one named ``output_raw``).
        progress: Called with (messages read, messages in the topic) now and then.

    Returns:
        What was read and written.

    Raises:
        TracksError: The bag cannot be read, or has no OutputMessage topic.

    """
    if bag.is_dir() and not (bag / 'metadata.yaml').is_file():
        msg = (f'{bag} has no metadata.yaml (a bag whose recorder was killed needs '
               f'`bag_reindex {bag}` first)')
        raise TracksError(msg)
    stats = ExportStats()
    start = time.monotonic()
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow(COLUMNS)
    try:
        with Reader(bag) as reader:
            connections = output_connections(reader, topic)
            stats.topic = connections[0].topic
            total = sum(c.msgcount for c in connections)
            messages = _indexed_mcap(bag, stats.topic)
            if messages is None:
                messages = ((t, data) for _, t, data in reader.messages(connections=connections))
            for log_ns, payload in _payloads(messages, stats):
                _export_message(payload, log_ns, writer, stats)
                if progress is not None and not stats.messages % 64:
                    progress(stats.messages, total)
    except (ReaderError, OSError, mcap_index.McapIndexError, yaml.YAMLError) as exc:
        msg = f'cannot read bag {bag}: {exc}'
        raise TracksError(msg) from exc
    if progress is not None:
        progress(stats.messages, total)
    stats.elapsed_s = time.monotonic() - start
    return stats


def _indexed_mcap(bag: Path, topic: str) -> Iterator[tuple[int, bytes]] | None:
    """Read the topic through the mcap index; None for other bags (see mcap_index)."""
    if bag.is_file():
        return mcap_index.topic_messages([bag], topic) if bag.suffix == '.mcap' else None
    with (bag / 'metadata.yaml').open(encoding='utf-8') as f:
        info = yaml.safe_load(f)['rosbag2_bagfile_information']
    if info.get('storage_identifier') != 'mcap' or info.get('compression_mode'):
        return None
    paths = [bag / Path(p).name for p in info['relative_file_paths']]
    return mcap_index.topic_messages(paths, topic)


def _payloads(messages: Iterator[tuple[int, bytes]],
              stats: ExportStats) -> Iterator[tuple[int, memoryview]]:
    """Yield (bag timestamp, OutputMessage bytes) of every UInt8MultiArray message."""
    for log_ns, data in messages:
        stats.messages += 1
        try:
            labels, payload = cdr.read_uint8_multiarray(data)
        except ValueError:
            stats.bad_messages['not_uint8multiarray'] += 1
            continue
        if labels and labels[0] != OUTPUT_LABEL:
            stats.bad_messages['other_label'] += 1
            continue
        yield log_ns, payload


def _export_message(payload: memoryview, log_ns: int, writer: csv.Writer,
                    stats: ExportStats) -> None:
    """Write the rows of one OutputMessage (none if it has no object list)."""
    try:
        msg = protocol.parse_output(payload)
    except DecodeError as exc:
        stats.bad_messages[exc.kind] += 1
        return
    if not msg.HasField('stream') or not has_objects(msg.stream):
        return
    stamp_ns = protocol.timestamp_ns(msg.timestamp) if msg.HasField('timestamp') else log_ns
    frame = frame_rows(msg.stream, detail=False)
    stats.skipped.update(frame.skipped)
    stats.frames += 1
    stats.first_ns = stats.first_ns or stamp_ns
    stats.last_ns = stamp_ns
    stamp = _stamp_text(stamp_ns)
    for row in frame.rows:
        c, s, v = row['centre'], row['size'], row['velocity']
        writer.writerow((stamp, row['id'], row['label'], row['label_id'], row['probability'],
                         row['tracking_status'], c['x'], c['y'], c['z'], s['x'], s['y'], s['z'],
                         row['yaw'], v['x'], v['y'], v['z'], row['source']))
        stats.ids.add(row['id'])
    stats.objects += len(frame.rows)


class ProgressBar:
    """A progress bar on a stream: redrawn in place on a terminal, a line a second else."""

    def __init__(self, stream: TextIO) -> None:
        """Draw on ``stream`` (stderr)."""
        self._stream = stream
        self._tty = stream.isatty()
        self._start = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` messages (throttled; the last call always draws)."""
        now = time.monotonic()
        if done < total and now - self._last < (0.2 if self._tty else 1.0):
            return
        self._last = now
        fraction = done / total if total else 1.0
        bar = '#' * int(30 * fraction)
        rate = done / max(now - self._start, 1e-9)
        line = f'[{bar:<30}] {100 * fraction:3.0f}% {done}/{total} messages {rate:.0f}/s'
        if self._tty:
            self._stream.write(f'\r{line}' + ('\n' if done >= total else ''))
        else:
            self._stream.write(line + '\n')
        self._stream.flush()


def default_output(bag: Path) -> Path:
    """Return where the CSV goes without ``--out``: ``<bag>_tracks.csv`` beside the bag."""
    bag = bag.resolve()
    return bag.with_name(f'{bag.name}_tracks.csv')


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='tracks', description='Export every SENSR object of a bag as CSV, one row per '
                                   'object per frame, from its output_raw topic.',
        epilog='Columns: ' + ', '.join(COLUMNS) + '. Reads only the output_raw topic.')
    parser.add_argument('bag', type=Path,
                        help='bag directory (with metadata.yaml), or one .db3 or .mcap file')
    parser.add_argument('--out', '-o', default=None,
                        help="CSV file; '-' for stdout (default: BAG_tracks.csv beside the bag)")
    parser.add_argument('--topic', default=None,
                        help='OutputMessage topic (default: the UInt8MultiArray topic named '
                             'output_raw, e.g. /sensr/output_raw)')
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument('--progress', action='store_true', default=None,
                     help='progress bar on stderr (default: when stderr is a terminal)')
    bar.add_argument('--no-progress', dest='progress', action='store_false')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Export a bag's objects as CSV; print a summary line on stderr.

    Returns:
        0 on success, 1 when the bag cannot be exported.

    """
    args = _parser().parse_args(argv)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    progress = ProgressBar(sys.stderr) if show else None
    to_stdout = args.out == '-'
    target = None if to_stdout else Path(args.out) if args.out else default_output(args.bag)
    try:
        if target is None:
            stats = export(args.bag, sys.stdout, topic=args.topic, progress=progress)
            sys.stdout.flush()
        else:
            # Written beside the target and renamed: a failed export leaves no partial CSV.
            partial = target.with_name(f'.{target.name}.partial')
            try:
                with partial.open('w', newline='', encoding='utf-8') as out:
                    stats = export(args.bag, out, topic=args.topic, progress=progress)
                partial.replace(target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
    except (TracksError, OSError) as exc:
        print(f'tracks: {exc}', file=sys.stderr)
        return 1
    where = 'stdout' if target is None else os.fspath(target)
    print(f'tracks: {stats.summary()} -> {where}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
