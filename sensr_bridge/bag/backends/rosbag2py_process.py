# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The process that owns ``rosbag2_py.SequentialWriter`` for :class:`Rosbag2PyWriter`.

rosbag2_py's ``write`` holds the GIL for the whole C++ write (and copies each message
twice), so in the recorder's process it starved the subscription callbacks and DDS
overwrote clouds nobody had taken. Here it holds the GIL of a process that does nothing
else. Started as ``python -m sensr_bridge.bag.backends.rosbag2py_process SOCKET_FD MEMORY_FD``:

- ``SOCKET_FD`` is a connected Unix socket carrying pickled requests and replies
  (:class:`multiprocessing.connection.Connection`), one reply per request:
  ``('open', storage_kwargs)``, ``('topic', topic_kwargs, qos)``, ``('map', size)``,
  ``('write', [(topic, stamp_ns, offset, length), ...])``, ``('split',)``,
  ``('close',)``. A reply is
  ``('ok', value)`` or ``('error', kind, message)``, kind 'full' or 'bag'.
- ``MEMORY_FD`` is a memfd into which the recorder copies a batch's payloads; the
  request names where each message lies. The memfd has no name, so nothing leaks when
  either process is killed.

SIGINT and SIGTERM are ignored: Ctrl+C reaches the whole process group, and the bag
must be closed after the recorder has drained its queue into it, not before. When the
recorder's end of the socket closes (it exited or was killed), the bag is closed, so
even a SIGKILLed recorder leaves a bag with its metadata.yaml.

Written against the documented bindings of each distro:

- ``storage_id`` is always passed: an empty id means sqlite3 on Humble but mcap on
  Jazzy and newer.
- ``TopicMetadata`` is built with keyword arguments. Jazzy and newer take ``id`` and a
  list of ``QoS`` objects (bound as ``rosbag2_py._storage.QoS``; some versions re-export
  it as ``rosbag2_py.QoS``); Humble takes no ``id`` and the QoS as a YAML string.
- ``close()`` is used when bound (Jazzy, Humble >= 0.15.14); otherwise the writer is
  deleted, since its destructor closes the bag.
- ``max_cache_size`` is 0: the recorder batches in its own queue and counts its own
  drops, while rosbag2's cache drops silently when full.

After every batch the kernel is asked to write back and drop the storage files' pages
(:func:`~sensr_bridge.bag.metadata.start_writeback`), as our own writers do: without it
18.4 MB clouds went to mcap at 24 instead of 74 per second, with 90 ms stalls.
"""

from __future__ import annotations

import gc
import mmap
from multiprocessing.connection import Connection
import os
from pathlib import Path
import signal
import socket
import sys
from typing import Any

from sensr_bridge.bag.fileio import start_writeback

STORAGE_SUFFIXES = ('.db3', '.mcap')

FULL_MARKERS = ('disk is full', 'No space left', 'SQLITE_FULL')
"""Texts of rosbag2's exceptions that mean the device is full."""


def _qos(rosbag2_py: Any, qos: dict[str, Any]) -> object:
    qos_class = getattr(rosbag2_py, 'QoS', None) or rosbag2_py._storage.QoS
    # A KEEP_LAST depth of 0 makes rclcpp warn that it makes no sense.
    depth = max(int(qos['depth']), 1)
    # The builder methods may return copies, so keep their results.
    profile = qos_class(depth)
    profile = profile.keep_all() if qos['history'] == 'keep_all' else profile.keep_last(depth)
    profile = profile.reliable() if qos['reliability'] == 'reliable' else profile.best_effort()
    return (profile.transient_local() if qos['durability'] == 'transient_local'
            else profile.durability_volatile())


class _Server:
    """The SequentialWriter and the shared memory, driven by requests."""

    def __init__(self, memory_fd: int) -> None:
        import rosbag2_py

        self.rb: Any = rosbag2_py
        self.memory_fd = memory_fd
        self.view: memoryview | None = None
        self.mapping: mmap.mmap | None = None
        self.writer: Any = None
        self.bag_dir: Path | None = None
        self.files: dict[str, int] = {}  # storage file name -> read-only descriptor

    def open(self, storage: dict[str, Any]) -> None:
        writer = self.rb.SequentialWriter()
        writer.open(self.rb.StorageOptions(**storage), self.rb.ConverterOptions('', ''))
        self.writer = writer
        self.bag_dir = Path(storage['uri'])

    def topic(self, topic: dict[str, Any], qos: Any) -> None:
        if hasattr(self.rb.TopicMetadata, 'id'):
            topic = {**topic, 'id': 0,  # rosbag2 assigns the real id (Jazzy tutorial)
                     'offered_qos_profiles': [_qos(self.rb, q) for q in qos]}
        else:
            topic = {**topic, 'offered_qos_profiles': qos}  # Humble: a YAML string
        self.writer.create_topic(self.rb.TopicMetadata(**topic))

    def map(self, size: int) -> None:
        self.unmap()
        self.mapping = mmap.mmap(self.memory_fd, size, prot=mmap.PROT_READ)
        self.view = memoryview(self.mapping)

    def unmap(self) -> None:
        if self.view is not None:
            self.view.release()
            self.view = None
        if self.mapping is not None:
            self.mapping.close()
            self.mapping = None

    def write(self, messages: list[tuple[str, int, int, int]]) -> None:
        view = self.view
        write = self.writer.write
        for topic, stamp, offset, length in messages:
            # pybind converts bytes (not a memoryview) to the std::string parameter.
            write(topic, bytes(view[offset:offset + length]), stamp)
        self.writeback()

    def writeback(self) -> None:
        """Start writeback of every storage file; forget those a split has finished."""
        names = sorted((e.name for e in os.scandir(self.bag_dir)
                        if e.name.endswith(STORAGE_SUFFIXES)),
                       key=lambda name: (len(name), name))  # bag_10 after bag_9
        for name in names:
            if name not in self.files:
                self.files[name] = os.open(self.bag_dir / name, os.O_RDONLY | os.O_CLOEXEC)
            start_writeback(self.files[name])
        for name in [n for n in self.files if n not in names[-1:]]:
            os.close(self.files.pop(name))

    def split(self) -> None:
        self.writer.split_bagfile()

    def close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        if hasattr(writer, 'close'):
            writer.close()
        else:
            del writer
            gc.collect()
        for fd in self.files.values():
            os.close(fd)
        self.files.clear()


def _reply_error(conn: Connection, err: Exception) -> None:
    text = str(err) or type(err).__name__
    kind = 'full' if any(marker in text for marker in FULL_MARKERS) else 'bag'
    conn.send(('error', kind, text))


def serve(conn: Connection, memory_fd: int) -> None:
    """Answer requests on ``conn`` until 'close' is done or the recorder is gone.

    Args:
        conn: The recorder's connection.
        memory_fd: The memfd holding the payloads of 'write' requests.

    """
    server = _Server(memory_fd)
    conn.send(('ok', None))
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return  # the recorder is gone: the finally block closes the bag
            command, *args = request
            try:
                getattr(server, command)(*args)
            except Exception as err:  # every failure goes back to the recorder
                _reply_error(conn, err)
                continue
            conn.send(('ok', None))
            if command == 'close':
                return
    finally:
        try:
            server.close()
        finally:
            server.unmap()


def main(argv: list[str] | None = None) -> int:
    """Serve one recorder: ``python -m ...rosbag2py_process SOCKET_FD MEMORY_FD``.

    Returns:
        0 after the bag is closed; 1 when rosbag2_py cannot be imported.

    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    socket_fd, memory_fd = (int(a) for a in (sys.argv[1:] if argv is None else argv))
    conn = Connection(socket.socket(fileno=socket_fd).detach())
    try:
        serve(conn, memory_fd)
    except ImportError as err:
        conn.send(('error', 'bag', f'import rosbag2_py failed: {err}'))
        return 1
    finally:
        os.close(memory_fd)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
