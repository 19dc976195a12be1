# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""An mcap file writer that hands message payloads to the kernel without copying them.

The layout is exactly that of rosbags' mcap storage (``rosbags.rosbag2.storage_mcap``,
tested byte for byte): chunks closed once they exceed 1 MiB (uncompressed, or
compressed with zstd or lz4 as ``mcap --compression`` and rosbag2's mcap plugin do), a message
index after every chunk, and a summary (schemas, channels, chunk indexes, the
``rosbag2`` metadata record and its index, statistics, summary offsets) before the
footer. rosbags assembles every record in ``BytesIO`` buffers, which copies a
14.7 MB cloud five times or more while holding the GIL; here a chunk is a list of
buffers, small records as bytes and payloads by reference, written with one
``writev`` that releases the GIL. A compressed chunk is joined into one buffer first
(the compressors take one); zstd at level 1 and lz4 (frame format, as the mcap spec has it)
are the fast settings of each, and both release the GIL while they compress.

See https://mcap.dev/spec for the format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import functools
import os
import struct
from typing import TYPE_CHECKING

from sensr_bridge.bag.fileio import start_writeback

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

MAGIC = b'\x89MCAP0\r\n'
CHUNK_SIZE = 1 << 20
COMPRESSIONS = ('', 'zstd', 'lz4')
"""Chunk compressions: none, and those of the mcap spec."""
ZSTD_LEVEL = 1
_OP_HEADER, _OP_FOOTER, _OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE = 0x01, 0x02, 0x03, 0x04, 0x05
_OP_CHUNK, _OP_MESSAGE_INDEX, _OP_CHUNK_INDEX = 0x06, 0x07, 0x08
_OP_STATISTICS, _OP_METADATA, _OP_METADATA_INDEX = 0x0B, 0x0C, 0x0D
_OP_SUMMARY_OFFSET, _OP_DATA_END = 0x0E, 0x0F
_NO_TIME = 2**63 - 1
# Linux accepts at most this many buffers per writev call.
_IOV_MAX = 1024

_message_header = struct.Struct('<BQHIQQ')
_chunk_header = struct.Struct('<BQQQQI')


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack('<I', len(data)) + data


def _record(opcode: int, body: bytes) -> bytes:
    return struct.pack('<BQ', opcode, len(body)) + body


def compressor(name: str) -> Callable[[bytes], bytes] | None:
    """Return the chunk compressor of ``name`` (one of :data:`COMPRESSIONS`), None for ''.

    zstd is the standard library's (Python 3.14) or the ``backports.zstd`` that rosbags
    depends on; lz4 is ``lz4.frame``, also a dependency of rosbags.
    """
    if not name:
        return None
    if name == 'lz4':
        import lz4.frame

        return lz4.frame.compress
    try:
        from compression import zstd
    except ImportError:
        from backports import zstd
    return functools.partial(zstd.compress, level=ZSTD_LEVEL)


@dataclass
class _Chunk:
    """Records of the open chunk: ``parts`` in file order, ``size`` their total."""

    parts: list[bytes | memoryview] = field(default_factory=list)
    size: int = 0
    start: int = _NO_TIME
    end: int = 0
    # Per channel: (log time, offset inside the chunk) of every message.
    index: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def add(self, *parts: bytes | memoryview) -> None:
        self.parts.extend(parts)
        self.size += sum(len(p) for p in parts)


class McapFile:
    """Writes one mcap file with the ``ros2`` profile.

    Args:
        path: The file to create; it must not exist.
        library: The header's library string.
        compression: Chunk compression, one of :data:`COMPRESSIONS`.

    Raises:
        OSError: The file cannot be created or written.

    """

    def __init__(self, path: Path, library: str, compression: str = '') -> None:
        self.path = path
        self._compression = compression
        self._compress = compressor(compression)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._pos = 0
        self._schemas: list[bytes] = []
        self._schema_ids: dict[str, int] = {}
        self._channels: list[bytes] = []
        self._counts: dict[int, int] = {}
        self._chunk_indexes: list[bytes] = []
        self._chunk = _Chunk()
        self.start_ns = _NO_TIME
        self.end_ns = 0
        self._write([MAGIC, _record(_OP_HEADER, _string('ros2') + _string(library))])

    def add_schema(self, name: str, encoding: str, data: str) -> int:
        """Add a message type once; return its schema id."""
        if name not in self._schema_ids:
            schema_id = len(self._schemas) + 1
            self._schema_ids[name] = schema_id
            body = struct.pack('<H', schema_id) + _string(name) + _string(encoding) + _string(data)
            self._schemas.append(_record(_OP_SCHEMA, body))
            self._chunk.add(self._schemas[-1])
        return self._schema_ids[name]

    def add_channel(self, topic: str, schema_name: str, message_encoding: str,
                    metadata: Mapping[str, str]) -> int:
        """Add a topic of a type added with ``add_schema``; return its channel id."""
        channel_id = len(self._channels) + 1
        pairs = b''.join(_string(k) + _string(v) for k, v in metadata.items())
        body = (struct.pack('<HH', channel_id, self._schema_ids[schema_name]) + _string(topic)
                + _string(message_encoding) + struct.pack('<I', len(pairs)) + pairs)
        self._channels.append(_record(_OP_CHANNEL, body))
        self._counts[channel_id] = 0
        self._chunk.add(self._channels[-1])
        return channel_id

    def write(self, channel_id: int, stamp: int, data: bytes | memoryview) -> None:
        """Add a message; the chunk goes to the file once it exceeds 1 MiB."""
        chunk = self._chunk
        self.start_ns, self.end_ns = min(stamp, self.start_ns), max(stamp, self.end_ns)
        self._counts[channel_id] += 1
        chunk.start, chunk.end = min(stamp, chunk.start), max(stamp, chunk.end)
        chunk.index.setdefault(channel_id, []).append((stamp, chunk.size))
        chunk.add(_message_header.pack(_OP_MESSAGE, 22 + len(data), channel_id, 0, stamp,
                                       stamp), data)
        if chunk.size > CHUNK_SIZE:
            self.flush()

    @property
    def message_count(self) -> int:
        """Messages written so far."""
        return sum(self._counts.values())

    def flush(self) -> None:
        """Write the open chunk (if it holds anything) and its message index."""
        chunk, self._chunk = self._chunk, _Chunk()
        if not chunk.size:
            return
        start = self._pos
        parts = chunk.parts
        if self._compress is not None:
            parts = [self._compress(b''.join(parts))]
        stored = sum(len(p) for p in parts)
        header = (_chunk_header.pack(_OP_CHUNK, 40 + len(self._compression) + stored,
                                     chunk.start, chunk.end, chunk.size, 0)
                  + _string(self._compression) + struct.pack('<Q', stored))
        self._write([header, *parts])
        end = self._pos
        offsets = []
        indexes = []
        position = end
        for channel_id, entries in chunk.index.items():
            offsets.append(struct.pack('<HQ', channel_id, position))
            body = struct.pack('<HI', channel_id, 16 * len(entries)) + b''.join(
                struct.pack('<QQ', *entry) for entry in entries)
            indexes.append(_record(_OP_MESSAGE_INDEX, body))
            position += len(indexes[-1])
        self._write(indexes)
        start_writeback(self._fd)
        self._chunk_indexes.append(_record(_OP_CHUNK_INDEX, (
            struct.pack('<QQQQI', chunk.start, chunk.end, start, end - start, 10 * len(offsets))
            + b''.join(offsets) + struct.pack('<Q', self._pos - end)
            + _string(self._compression) + struct.pack('<QQ', stored, chunk.size))))

    def close(self, metadata: str) -> None:
        """Write the last chunk, the summary with the ``rosbag2`` metadata, the footer."""
        try:
            self.flush()
            metadata_start = self._pos
            pairs = _string('serialized_metadata') + _string(metadata)
            self._write([_record(_OP_METADATA, _string('rosbag2') + struct.pack(
                '<I', len(pairs)) + pairs)])
            metadata_end = self._pos
            self._write([_record(_OP_DATA_END, struct.pack('<I', 0))])
            schema_start = self._pos
            self._write(self._schemas)
            channel_start = self._pos
            self._write(self._channels)
            chunk_start = self._pos
            self._write(self._chunk_indexes)
            metadata_index_start = self._pos
            self._write([_record(_OP_METADATA_INDEX, struct.pack(
                '<QQ', metadata_start, metadata_end - metadata_start) + _string('rosbag2'))])
            statistics_start = self._pos
            counts = b''.join(struct.pack('<HQ', c, n) for c, n in sorted(self._counts.items()))
            self._write([_record(_OP_STATISTICS, struct.pack(
                '<QHIIIIQQI', self.message_count, len(self._schemas), len(self._channels), 0, 1,
                len(self._chunk_indexes), self.start_ns, self.end_ns, len(counts)) + counts)])
            summary_offset_start = self._pos
            # One offset per non-empty group (the last two never are).
            groups = [(_OP_SCHEMA, schema_start, channel_start),
                      (_OP_CHANNEL, channel_start, chunk_start),
                      (_OP_CHUNK_INDEX, chunk_start, metadata_index_start),
                      (_OP_METADATA_INDEX, metadata_index_start, statistics_start),
                      (_OP_STATISTICS, statistics_start, summary_offset_start)]
            offsets = [_record(_OP_SUMMARY_OFFSET, struct.pack('<BQQ', op, a, b - a))
                       for op, a, b in groups if a != b]
            self._write([*offsets, _record(_OP_FOOTER, struct.pack(
                '<QQI', schema_start, summary_offset_start, 0)), MAGIC])
        finally:
            os.close(self._fd)

    def abort(self) -> None:
        """Close the file as it is (no summary; ``mcap recover`` can repair it)."""
        os.close(self._fd)

    def _write(self, parts: Sequence[bytes | memoryview]) -> None:
        """Write every buffer, in order, at the end of the file."""
        pending = [memoryview(p).cast('B') for p in parts if len(p)]
        while pending:
            written = os.writev(self._fd, pending[:_IOV_MAX])
            self._pos += written
            while pending and written >= len(pending[0]):
                written -= len(pending[0])
                pending.pop(0)
            if written:
                pending[0] = pending[0][written:]
