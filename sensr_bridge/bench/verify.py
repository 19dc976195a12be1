# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Bag checks: messages per topic, and clouds compared bit-exact with what the simulator sent.

:class:`SplitVerifier` checks the splits of a growing bag as they close (e2e mode, soak
included); :func:`bag_counts` counts the messages of a finished bag (recorder mode).
"""

from __future__ import annotations

from pathlib import Path
import sqlite3
import zlib

from sensr_bridge.bench.clouds import CLOUD_TOPIC, ID_WINDOW, Expected
from sensr_bridge.convert import cdr


class SplitVerifier:
    """Verifies closed splits (sqlite3 or mcap) of a growing bag, keeping running totals.

    A split is closed once the next one exists (or at :meth:`finish`). Per split: message
    counts per topic, header stamp and ID_WINDOW of every cloud (for latency matching), and the
    first cloud compared bit-exact with what the simulator sent. Compressed mcap chunks are
    read whole by rosbags.
    """

    def __init__(self, bag_dir: Path, expected: Expected, *, delete: bool) -> None:
        """Watch ``bag_dir``; delete verified splits when ``delete``."""
        self.bag_dir = bag_dir
        self.expected = expected
        self.delete = delete
        self.totals: dict[str, int] = {}
        self.records: list[tuple[int, int, int]] = []
        self.splits = 0
        self.checked = self.failed = self.bytes = 0
        self._done: set[str] = set()

    def _files(self) -> list[Path]:
        files = [p for pattern in ('*.db3', '*.mcap') for p in self.bag_dir.glob(pattern)
                 if p.name not in self._done]
        return sorted(files, key=lambda p: int(p.stem.rsplit('_', 1)[-1]))

    def poll(self) -> None:
        """Verify every split that is closed now."""
        files = self._files()
        for path in files[:-1]:
            self._verify(path)

    def finish(self) -> None:
        """Verify the remaining splits (the recorder has closed the bag)."""
        for path in self._files():
            self._verify(path)

    def _verify(self, path: Path) -> None:
        self._done.add(path.name)
        self.bytes += path.stat().st_size
        read = _read_mcap_split if path.suffix == '.mcap' else _read_sqlite3_split
        counts, heads, first = read(path)
        for name, n in counts.items():
            self.totals[name] = self.totals.get(name, 0) + n
        for head in heads:
            stamp = cdr.header_stamp_ns(head) or 0
            # The bridge's stamp is its receive time: pair it with the send time.
            self.records.append((stamp, stamp, zlib.crc32(head[ID_WINDOW])))
        if first is not None:
            slot = self.expected.ids.get(zlib.crc32(first[ID_WINDOW]))
            self.checked += 1
            self.failed += slot is None or not self.expected.same(slot, first)
        self.splits += 1
        if self.delete:
            path.unlink()


Split = tuple[dict[str, int], list[bytes], 'bytes | None']
"""What a split holds: messages per topic, the head of every cloud, the first cloud."""


def _read_sqlite3_split(path: Path) -> Split:
    conn = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
    try:
        topics = dict(conn.execute('SELECT id, name FROM topics'))
        counts = {topics[topic_id]: n for topic_id, n in conn.execute(
            'SELECT topic_id, count(*) FROM messages GROUP BY topic_id')}
        cloud_id = next((i for i, n in topics.items() if n == CLOUD_TOPIC), None)
        if cloud_id is None:
            return counts, [], None
        heads = []
        for (rowid,) in conn.execute(
                'SELECT id FROM messages WHERE topic_id = ? ORDER BY id', (cloud_id,)):
            # Incremental blob I/O reads only the pages holding the window; a substr()
            # in SQL would load the whole 18 MB cloud from disk.
            with conn.blobopen('messages', 'data', rowid, readonly=True) as blob:
                heads.append(blob.read(ID_WINDOW.stop))
        first = conn.execute('SELECT data FROM messages WHERE topic_id = ? ORDER BY id '
                             'LIMIT 1', (cloud_id,)).fetchone()
        return counts, heads, None if first is None else first[0]
    finally:
        conn.close()


def _read_mcap_split(path: Path) -> Split:
    """Counts from the file's statistics (rosbags), clouds through its index when it has one.

    Through the index only the head of each cloud is read; compressed chunks are read
    whole by rosbags.
    """
    from rosbags.rosbag2.storage_mcap import McapReader

    from sensr_bridge.bag import mcap_index

    reader = McapReader(path)
    reader.open()
    try:
        stats = reader.statistics
        names = {cid: channel.topic for cid, channel in reader.channels.items()}
        counts = {names[cid]: n for cid, n in
                  (stats.channel_message_counts.items() if stats else ())}
        clouds = [c for c in reader.connections if c.topic == CLOUD_TOPIC]
        with path.open('rb') as bio:
            index = mcap_index.topic_index(bio, CLOUD_TOPIC)
            if index is not None:
                heads = [mcap_index.read_message(bio, entry, ID_WINDOW.stop)
                         for entry in index]
                first = mcap_index.read_message(bio, index[0]) if index else None
                return counts, heads, first
        heads: list[bytes] = []
        first = None
        # One cloud at a time: a 30 s split holds gigabytes of them.
        for _, _, raw in reader.messages(clouds) if clouds else ():
            first = raw if first is None else first
            heads.append(bytes(raw[:ID_WINDOW.stop]))
        return counts, heads, first
    finally:
        reader.close()


def bag_counts(bag_dir: Path) -> dict[str, int]:
    """Messages per topic of a finished bag, read with rosbags (an independent reader)."""
    from rosbags.rosbag2 import Reader

    if not (bag_dir / 'metadata.yaml').exists():
        return {}
    with Reader(bag_dir) as reader:
        return {c.topic: c.msgcount for c in reader.connections}
