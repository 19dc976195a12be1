# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The rosbag2_py backend's writer process: shared memory, failures, signals.

The contract every writer meets (layout, metadata, splits) is in test_bag_contract.py;
these are what only a writer in another process can get wrong.
"""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from helpers import NEEDS_ROSBAG2_PY
import psutil
import pytest
from rosbags.rosbag2 import Reader

from sensr_bridge.bag.backends.rosbag2py_writer import INITIAL_SHARED_BYTES, Rosbag2PyWriter
from sensr_bridge.bag.base import StorageOptions, TopicInfo
from sensr_bridge.errors import BagError

pytestmark = NEEDS_ROSBAG2_PY

BLOB = TopicInfo('/sensr/blob', 'std_msgs/msg/UInt8MultiArray')


def blob(size: int, seed: int) -> bytes:
    """A message of ``size`` bytes whose content depends on ``seed`` (not valid CDR)."""
    return (seed.to_bytes(2, 'little') * (size // 2 + 1))[:size]


def read_all(uri: Path) -> list[tuple[str, int, bytes]]:
    with Reader(uri) as reader:
        return [(c.topic, stamp, bytes(data)) for c, stamp, data in reader.messages()]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.02)


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_messages_larger_than_shared_memory_arrive_bit_exact(tmp_path: Path,
                                                             storage: str) -> None:
    uri = tmp_path / 'bag'
    big = INITIAL_SHARED_BYTES + 3
    batches = [
        [(BLOB.name, 1, blob(10, 1)), (BLOB.name, 2, blob(big, 2)), (BLOB.name, 3, blob(7, 3))],
        # Together larger than the (grown) memory: written in two round trips.
        [(BLOB.name, 4 + i, blob(big // 2, 4 + i)) for i in range(5)],
    ]
    with Rosbag2PyWriter(StorageOptions(uri, storage_id=storage)) as writer:
        writer.create_topic(BLOB)
        for batch in batches:
            writer.write_batch(batch)
    assert read_all(uri) == [m for batch in batches for m in batch]


CHILD = """
import sys, time
from sensr_bridge.bag.base import StorageOptions, TopicInfo
from sensr_bridge.bag.backends.rosbag2py_writer import Rosbag2PyWriter
writer = Rosbag2PyWriter(StorageOptions(sys.argv[1], storage_id=sys.argv[2]))
writer.open()
writer.create_topic(TopicInfo('/sensr/blob', 'std_msgs/msg/UInt8MultiArray'))
for i in range(5):
    writer.write_batch([('/sensr/blob', i, bytes([i]) * 1000)])
print(writer._process.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_a_killed_recorder_still_leaves_a_closed_bag(tmp_path: Path, storage: str) -> None:
    uri = tmp_path / 'bag'
    recorder = subprocess.Popen([sys.executable, '-c', CHILD, str(uri), storage],
                                stdout=subprocess.PIPE, text=True)
    try:
        writer_pid = int(recorder.stdout.readline())
        recorder.kill()
        recorder.wait(10)
        # Its end of the socket closed: the writer process closes the bag and exits.
        psutil.Process(writer_pid).wait(10)
    finally:
        if recorder.poll() is None:
            recorder.kill()
        recorder.stdout.close()
    assert (uri / 'metadata.yaml').is_file()
    assert read_all(uri) == [('/sensr/blob', i, bytes([i]) * 1000) for i in range(5)]


def test_a_killed_writer_process_is_a_clear_error(tmp_path: Path) -> None:
    uri = tmp_path / 'bag'
    writer = Rosbag2PyWriter(StorageOptions(uri))
    writer.open()
    writer.create_topic(BLOB)
    writer.write_batch([(BLOB.name, 1, blob(100, 1))])
    os.kill(writer._process.pid, signal.SIGKILL)
    with pytest.raises(BagError, match=r'rosbag2_py writer process exited \(code -9\)'):
        writer.write_batch([(BLOB.name, 2, blob(100, 2))])
    with pytest.raises(BagError, match='writer process exited'):
        writer.close()


def test_ctrl_c_reaches_the_writer_process_without_stopping_it(tmp_path: Path) -> None:
    # Ctrl+C in a terminal signals the whole process group: the bag must stay open
    # until the recorder has drained its queue into it.
    uri = tmp_path / 'bag'
    with Rosbag2PyWriter(StorageOptions(uri)) as writer:
        writer.create_topic(BLOB)
        writer.write_batch([(BLOB.name, 1, blob(100, 1))])
        for sig in (signal.SIGINT, signal.SIGTERM):
            os.kill(writer._process.pid, sig)
        writer.write_batch([(BLOB.name, 2, blob(100, 2))])
        process = writer._process
    assert process.returncode == 0
    assert [stamp for _, stamp, _ in read_all(uri)] == [1, 2]
