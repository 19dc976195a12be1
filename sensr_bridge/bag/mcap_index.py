# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Reading the messages of one topic of an mcap file through its index, record by record.

A general mcap reader (rosbags' among them) reads every chunk that holds a message of
the topic, whole. The recorder batches small messages with the next point cloud, so in
a SENSR bag most ``output_raw`` messages share a chunk with an 18 MB cloud: reading them
that way reads most of the bag (measured on a 30 s recording at 11.4 Hz, 6.0 GB: rosbags
read 3.9 GB in 6.2 s for the 358 ``output_raw`` messages; through the index, 0.5 s).
The summary's chunk indexes point to each chunk's message index, which gives the offset
of every message of a channel inside the chunk; in an uncompressed chunk that offset
leads straight to the message record, so only the topic's own bytes are read.

Files without a summary or chunk indexes, and topics with messages in a compressed
chunk, are left to a general reader (:func:`topic_index` returns None).

See https://mcap.dev/spec for the records.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import os
import struct
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MAGIC = b'\x89MCAP0\r\n'
_OP_FOOTER, _OP_CHANNEL, _OP_MESSAGE, _OP_MESSAGE_INDEX, _OP_CHUNK_INDEX = 2, 4, 5, 7, 8
_FOOTER_SIZE = 1 + 8 + 20 + len(MAGIC)
_RECORD = struct.Struct('<BQ')
_MESSAGE = struct.Struct('<BQHIQQ')  # opcode, length, channel, sequence, log and publish time
_MESSAGE_FIXED = _MESSAGE.size - _RECORD.size  # channel, sequence and times: 22 bytes


class McapIndexError(ValueError):
    """The file's index contradicts its records (a damaged file)."""


@dataclass(frozen=True)
class IndexEntry:
    """Where one message record is.

    Attributes:
        log_time: Its log time, nanoseconds.
        offset: File offset of the record (its opcode byte).

    """

    log_time: int
    offset: int


def _string(body: bytes, pos: int) -> tuple[str, int]:
    (size,) = struct.unpack_from('<I', body, pos)
    pos += 4
    return body[pos:pos + size].decode(), pos + size


def _records(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + _RECORD.size <= len(data):
        opcode, size = _RECORD.unpack_from(data, pos)
        pos += _RECORD.size
        yield opcode, data[pos:pos + size]
        pos += size


def _read_at(bio: BinaryIO, offset: int, size: int) -> bytes:
    bio.seek(offset)
    data = bio.read(size)
    if len(data) != size:
        msg = f'truncated record at offset {offset}: {len(data)} of {size} bytes'
        raise McapIndexError(msg)
    return data


def topic_index(bio: BinaryIO, topic: str) -> list[IndexEntry] | None:
    """Find every message of a topic through the file's summary.

    Args:
        bio: The mcap file, opened for binary reading.
        topic: Topic name.

    Returns:
        The topic's messages in log-time order (empty when the file has none of it), or
        None when the index cannot serve it: no summary or no chunk indexes, or a
        message of the topic in a compressed chunk.

    Raises:
        McapIndexError: The file is not mcap, or its index is damaged.

    """
    size = bio.seek(0, 2)
    if size < 2 * len(MAGIC) + _FOOTER_SIZE or _read_at(bio, 0, len(MAGIC)) != MAGIC:
        msg = 'not an mcap file'
        raise McapIndexError(msg)
    footer = _read_at(bio, size - _FOOTER_SIZE, _FOOTER_SIZE)
    opcode, _, summary_start, summary_offset_start, _ = struct.unpack_from('<BQQQI', footer)
    if opcode != _OP_FOOTER or footer[-len(MAGIC):] != MAGIC:
        msg = 'mcap footer not found (an unfinished file?)'
        raise McapIndexError(msg)
    if not summary_start:
        return None
    summary_end = summary_offset_start or size - _FOOTER_SIZE
    if not 0 < summary_start <= summary_end <= size:
        msg = f'mcap summary offsets out of range: {summary_start}..{summary_end}'
        raise McapIndexError(msg)
    channels: set[int] = set()
    chunk_indexes: list[bytes] = []
    for opcode, body in _records(_read_at(bio, summary_start, summary_end - summary_start)):
        if opcode == _OP_CHANNEL:
            (channel_id,) = struct.unpack_from('<H', body)
            name, _ = _string(body, 4)
            if name == topic:
                channels.add(channel_id)
        elif opcode == _OP_CHUNK_INDEX:
            chunk_indexes.append(body)
    if not chunk_indexes:
        return None
    entries: list[IndexEntry] = []
    for body in chunk_indexes:
        for chunk_offset, index_offset, compression in _chunk_index(body, channels):
            if compression:
                return None
            # Chunk record: opcode, length, start and end time, uncompressed size and CRC,
            # compression string, records length; then its records.
            records_start = chunk_offset + 1 + 8 + 8 + 8 + 8 + 4 + 4 + len(compression) + 8
            entries.extend(_message_index(bio, index_offset, records_start))
    entries.sort(key=lambda e: e.log_time)
    return entries


def _chunk_index(body: bytes, channels: set[int]) -> Iterator[tuple[int, int, str]]:
    """Yield (chunk offset, message index offset, compression) per wanted channel."""
    _, _, chunk_offset, _ = struct.unpack_from('<QQQQ', body)
    (map_size,) = struct.unpack_from('<I', body, 32)
    offsets = dict(struct.iter_unpack('<HQ', body[36:36 + map_size]))
    compression, _ = _string(body, 36 + map_size + 8)
    for channel_id in channels:
        if channel_id in offsets:
            yield chunk_offset, offsets[channel_id], compression


def _message_index(bio: BinaryIO, offset: int, records_start: int) -> Iterator[IndexEntry]:
    opcode, size = _RECORD.unpack(_read_at(bio, offset, _RECORD.size))
    body = _read_at(bio, offset + _RECORD.size, size)
    if opcode != _OP_MESSAGE_INDEX:
        msg = f'no message index at offset {offset}'
        raise McapIndexError(msg)
    (map_size,) = struct.unpack_from('<I', body, 2)
    for log_time, record_offset in struct.iter_unpack('<QQ', body[6:6 + map_size]):
        yield IndexEntry(log_time, records_start + record_offset)


def read_message(bio: BinaryIO, entry: IndexEntry, limit: int | None = None) -> bytes:
    """Return the payload of the message record an index entry points to.

    Args:
        bio: The mcap file, opened for binary reading.
        entry: An entry of :func:`topic_index`.
        limit: Read at most this many bytes of the payload (its head); None: all.

    Raises:
        McapIndexError: No message record with that log time is there.

    """
    header = _read_at(bio, entry.offset, _MESSAGE.size)
    opcode, size, _, _, log_time, _ = _MESSAGE.unpack(header)
    if opcode != _OP_MESSAGE or log_time != entry.log_time or size < _MESSAGE_FIXED:
        msg = f'the index points to no message at offset {entry.offset}'
        raise McapIndexError(msg)
    size -= _MESSAGE_FIXED
    return _read_at(bio, entry.offset + _MESSAGE.size,
                    size if limit is None else min(size, limit))


def topic_messages(paths: list[Path], topic: str) -> Iterator[tuple[int, bytes]] | None:
    """Read every message of a topic from mcap files through their indexes.

    Args:
        paths: The bag's storage files, in order.
        topic: Topic name.

    Returns:
        An iterator of (log time, payload), file by file, or None when a file's index
        cannot serve the topic (see :func:`topic_index`).

    Raises:
        McapIndexError: A file is not mcap, or its index is damaged.
        OSError: A file cannot be read.

    """
    indexes = []
    for path in paths:
        with path.open('rb') as bio:
            index = topic_index(bio, topic)
        if index is None:
            return None
        indexes.append((path, index))

    def read() -> Iterator[tuple[int, bytes]]:
        for path, index in indexes:
            with path.open('rb') as bio:
                # Scattered small reads: the kernel's readahead would fetch the clouds
                # around each message.
                with contextlib.suppress(AttributeError, OSError):
                    os.posix_fadvise(bio.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
                for entry in index:
                    yield entry.log_time, read_message(bio, entry)

    return read()
