# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""``bag_info``: print what ``ros2 bag info`` prints, read with rosbags (no ROS needed).

The bag is read with ``rosbags.rosbag2.Reader``, an implementation independent of
this package's writers; the storage id and file list come from metadata.yaml, the
bag size is the size of the bag directory, as in rosbag2.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
import sys
import time

from rosbags.rosbag2 import Reader, ReaderError
import yaml

from sensr_bridge.bag.metadata import METADATA_FILE
from sensr_bridge.errors import BagError

_INDENT = ' ' * 19


@dataclass(frozen=True)
class TopicSummary:
    """One topic of a bag.

    Attributes:
        name: Topic name.
        type: Message type.
        count: Messages recorded.
        serialization_format: Serialization format.

    """

    name: str
    type: str
    count: int
    serialization_format: str


@dataclass(frozen=True)
class BagSummary:
    """What ``ros2 bag info`` reports about a bag.

    Attributes:
        path: The bag directory.
        version: metadata.yaml version.
        files: Storage files, relative to the bag directory.
        bag_size: Bytes of all files in the bag directory.
        storage_id: 'sqlite3' or 'mcap'.
        ros_distro: Distro recorded in the metadata ('unknown' if none).
        start_ns: Earliest message timestamp (0 for an empty bag).
        end_ns: Latest message timestamp (0 for an empty bag).
        message_count: Messages in the bag.
        topics: The topics, in metadata order.

    """

    path: Path
    version: int
    files: list[str]
    bag_size: int
    storage_id: str
    ros_distro: str
    start_ns: int
    end_ns: int
    message_count: int
    topics: list[TopicSummary]

    @property
    def duration_ns(self) -> int:
        """Nanoseconds between the first and the last message."""
        return self.end_ns - self.start_ns


def summarize(path: str | Path) -> BagSummary:
    """Read a bag's summary.

    Args:
        path: The bag directory.

    Returns:
        The summary.

    Raises:
        BagError: No bag at ``path``, or it cannot be read.

    """
    bag = Path(path)
    try:
        info = yaml.safe_load((bag / METADATA_FILE).read_text(encoding='utf-8'))
        meta = info['rosbag2_bagfile_information']
        with Reader(bag) as reader:
            count = reader.message_count
            # rosbags' end_time is exclusive (last timestamp + 1).
            start, end = (reader.start_time, reader.end_time - 1) if count else (0, 0)
            distro = reader.ros_distro or 'unknown'
            topics = [
                TopicSummary(c.topic, c.msgtype, c.msgcount, c.ext.serialization_format)
                for c in reader.connections
            ]
    except FileNotFoundError as err:
        msg = (f'{bag} is not a bag directory with {METADATA_FILE} ({err}); if its writer '
               f'died, run "bag_reindex {bag}" first')
        raise BagError(msg) from err
    except (OSError, ReaderError, yaml.YAMLError, KeyError, TypeError) as err:
        msg = f'cannot read bag {bag}: {err}'
        raise BagError(msg) from err
    return BagSummary(
        path=bag,
        version=meta['version'],
        files=[Path(p).name for p in meta['relative_file_paths']],
        bag_size=sum(p.stat().st_size for p in bag.rglob('*') if p.is_file()),
        storage_id=meta['storage_identifier'],
        ros_distro=distro,
        start_ns=start,
        end_ns=end,
        message_count=count,
        topics=topics,
    )


def format_size(size: int) -> str:
    """Format a byte count as rosbag2 does ('512 B', '14.1 MiB').

    Args:
        size: Bytes.

    Returns:
        The text.

    """
    value = float(size)
    units = ('B', 'KiB', 'MiB', 'GiB', 'TiB')
    index = 0
    while value >= 1024 and index < len(units) - 1:
        value /= 1024
        index += 1
    return f'{value:.0f} {units[index]}' if index == 0 else f'{value:.1f} {units[index]}'


def _seconds(ns: int) -> str:
    return f'{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}'


def _time_point(ns: int) -> str:
    local = time.localtime(ns // 1_000_000_000)
    return (f'{time.strftime("%b %e %Y %H:%M:%S", local)}.{ns % 1_000_000_000:09d} '
            f'({_seconds(ns)})')


def format_summary(summary: BagSummary) -> str:
    """Format a summary in the layout of ``ros2 bag info``.

    Args:
        summary: From ``summarize``.

    Returns:
        The text, starting with an empty line as ``ros2 bag info``'s does.

    """
    topics = [f'Topic: {t.name} | Type: {t.type} | Count: {t.count} | '
              f'Serialization Format: {t.serialization_format}' for t in summary.topics]
    lines = [
        '',
        'Files:             ' + f'\n{_INDENT}'.join(summary.files),
        'Bag size:          ' + format_size(summary.bag_size),
        'Storage id:        ' + summary.storage_id,
        'ROS Distro:        ' + summary.ros_distro,
        'Duration:          ' + _seconds(summary.duration_ns) + 's',
        'Start:             ' + _time_point(summary.start_ns),
        'End:               ' + _time_point(summary.end_ns),
        'Messages:          ' + str(summary.message_count),
        'Topic information: ' + f'\n{_INDENT}'.join(topics),
    ]
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    """Print the summary of a bag.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        Exit status: 0, or 1 if the bag cannot be read.

    """
    parser = argparse.ArgumentParser(prog='bag_info', description=__doc__.splitlines()[0])
    parser.add_argument('bag', help='bag directory')
    args = parser.parse_args(argv)
    try:
        summary = summarize(args.bag)
    except BagError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(format_summary(summary), end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
