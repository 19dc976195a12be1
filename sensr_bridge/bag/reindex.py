# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""``bag_reindex``: rebuild metadata.yaml of a sqlite3 bag from its ``.db3`` files.

For a bag whose writer died (SIGKILL, power cut) before writing metadata.yaml, like
``ros2 bag reindex``. Each file is opened read-write, so SQLite's own recovery runs
first: a hot rollback journal rolls back the interrupted transaction, a WAL is
replayed. The journal mode is then set to DELETE, which checkpoints a WAL into the
``.db3`` and removes the side files, so readers that open the file immutable (rosbags)
see every committed message. Counts and first/last timestamps per topic come from
``messages JOIN topics``; version, custom data and distro from the last row of the
``metadata`` table and the ``schema`` table when present.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
import re
import sqlite3
import sys

import yaml

from sensr_bridge.bag.metadata import (
    FileRecord,
    TopicRecord,
    build_metadata,
    write_metadata_file,
)
from sensr_bridge.errors import BagError

_INDEX = re.compile(r'_(\d+)\.db3$')


@dataclass(frozen=True)
class ReindexResult:
    """What ``reindex`` found and wrote.

    Attributes:
        metadata_path: The metadata.yaml written.
        version: Its version.
        files: The storage files indexed, in order.
        topics: The topics with their message counts.
        skipped: Files left out because they hold no bag tables, with the reason.

    """

    metadata_path: Path
    version: int
    files: list[FileRecord]
    topics: list[TopicRecord]
    skipped: list[str]


@dataclass
class _FileIndex:
    record: FileRecord
    topics: list[TopicRecord]
    version: int | None
    custom_data: dict[str, str]
    distro: str


def _order(path: Path) -> tuple[int, str]:
    match = _INDEX.search(path.name)
    return (int(match.group(1)) if match else sys.maxsize, path.name)


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f'PRAGMA table_info({table})')}


def _infer_version(qos: str) -> int | None:
    """Metadata version from the QoS serialization: integer enums up to 8, names from 9."""
    profiles = yaml.safe_load(qos) if qos else None
    if not profiles:
        return None
    return 9 if isinstance(profiles[0].get('reliability'), str) else 8


def _index_file(path: Path) -> _FileIndex | None:
    """Recover and index one file; None if it holds no bag tables."""
    # Opening read-write (not immutable) lets SQLite roll back a hot journal.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {'topics', 'messages'} <= tables:
            return None
        conn.execute('PRAGMA journal_mode = DELETE').fetchall()
        columns = _columns(conn, 'topics')
        qos_col = 'offered_qos_profiles' if 'offered_qos_profiles' in columns else "''"
        hash_col = 'type_description_hash' if 'type_description_hash' in columns else "''"
        counts = {row[0]: row[1:] for row in conn.execute(
            'SELECT topic_id, COUNT(*), MIN(timestamp), MAX(timestamp) FROM messages '
            'GROUP BY topic_id')}
        topics = [
            TopicRecord(name, type_, fmt, qos, type_hash, counts.get(tid, (0,))[0])
            for tid, name, type_, fmt, qos, type_hash in conn.execute(
                f'SELECT id, name, type, serialization_format, {qos_col}, {hash_col} '  # noqa: S608
                'FROM topics ORDER BY id')
        ]
        version, custom, distro = None, {}, ''
        if 'metadata' in tables:
            row = conn.execute(
                'SELECT metadata_version, metadata FROM metadata ORDER BY id DESC LIMIT 1'
            ).fetchone()
            if row:
                version = int(row[0])
                custom = (yaml.safe_load(row[1]) or {}).get('custom_data') or {}
        if 'schema' in tables:
            distro = (conn.execute('SELECT ros_distro FROM schema').fetchone() or ('',))[0]
    except (sqlite3.Error, yaml.YAMLError) as err:
        msg = f'cannot index {path}: {err}'
        raise BagError(msg) from err
    finally:
        conn.close()
    starts = [c[1] for c in counts.values()]
    ends = [c[2] for c in counts.values()]
    record = FileRecord(path.name, min(starts, default=None), max(ends, default=None),
                        sum(c[0] for c in counts.values()))
    return _FileIndex(record, topics, version, custom, distro)


def reindex(path: str | Path) -> ReindexResult:
    """Rebuild ``metadata.yaml`` of a sqlite3 bag directory from its ``.db3`` files.

    Args:
        path: The bag directory.

    Returns:
        What was indexed and written.

    Raises:
        BagError: Not a directory, no usable ``.db3`` file, a damaged file, or
            metadata.yaml cannot be written.

    """
    bag = Path(path)
    if not bag.is_dir():
        msg = f'{bag} is not a directory'
        raise BagError(msg)
    indexed: list[_FileIndex] = []
    skipped: list[str] = []
    for db3 in sorted(bag.glob('*.db3'), key=_order):
        entry = _index_file(db3)
        if entry is None:
            skipped.append(f'{db3.name}: no bag tables (created just before the crash?)')
        else:
            indexed.append(entry)
    if not indexed:
        msg = f'no sqlite3 bag file (*.db3 with bag tables) in {bag}'
        raise BagError(msg)

    merged: dict[tuple[str, str], TopicRecord] = {}
    for entry in indexed:
        for topic in entry.topics:
            key = (topic.name, topic.type)
            known = merged.get(key)
            count = topic.message_count + (known.message_count if known else 0)
            merged[key] = TopicRecord(topic.name, topic.type, topic.serialization_format,
                                      topic.offered_qos_profiles, topic.type_description_hash,
                                      count)
    topics = list(merged.values())
    last = indexed[-1]
    version = last.version or next(
        (v for v in map(_infer_version, (t.offered_qos_profiles for t in topics)) if v), 9)
    files = [entry.record for entry in indexed]
    info = build_metadata(version=version, storage_id='sqlite3', topics=topics, files=files,
                          custom_data=last.custom_data, distro=last.distro)
    written = write_metadata_file(bag, info)
    return ReindexResult(written, version, files, topics, skipped)


def main(argv: list[str] | None = None) -> int:
    """Rebuild metadata.yaml of a bag and print what was done.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        Exit status: 0, or 1 on error.

    """
    parser = argparse.ArgumentParser(prog='bag_reindex', description=__doc__.splitlines()[0])
    parser.add_argument('bag', help='sqlite3 bag directory')
    args = parser.parse_args(argv)
    try:
        result = reindex(args.bag)
    except BagError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    for note in result.skipped:
        print(f'skipped {note}')
    for record in result.files:
        print(f'indexed {record.path}: {record.message_count} messages')
    for topic in result.topics:
        print(f'  {topic.name} ({topic.type}): {topic.message_count} messages')
    total = sum(record.message_count for record in result.files)
    print(f'wrote {result.metadata_path} (version {result.version}): {len(result.files)} '
          f'files, {total} messages, {len(result.topics)} topics')
    return 0


if __name__ == '__main__':
    sys.exit(main())
