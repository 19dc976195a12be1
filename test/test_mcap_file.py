# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""McapFile against rosbags' mcap storage writer, byte for byte, and read back by rosbags."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
)
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.enums import CompressionMode
from rosbags.rosbag2.storage_mcap import McapWriter as RosbagsMcapStorage
import yaml

from sensr_bridge.bag.backends.mcap_file import CHUNK_SIZE, McapFile
from sensr_bridge.bag.base import QosDesc, StorageOptions, TopicInfo
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.bag.typedefs import type_definition

TYPES = ('sensor_msgs/msg/PointCloud2', 'std_msgs/msg/String')
TOPICS = (('/sensr/points', TYPES[0]), ('/sensr/output_raw', TYPES[1]),
          ('/sensr/points_b', TYPES[0]))
QOS_TEXT = '- history: 1\n  depth: 10\n'


def messages(seed: int) -> list[tuple[int, int, bytes]]:
    """(topic index, stamp, data): clouds above the chunk size, small messages between."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(12):
        size = int(rng.choice([0, 7, 3000, CHUNK_SIZE - 40, CHUNK_SIZE + 1, 3 * CHUNK_SIZE]))
        out.append((int(rng.integers(0, len(TOPICS))), 1_000 + i * 10 - int(rng.integers(0, 15)),
                    rng.bytes(size)))
    return out


def rosbags_file(directory: Path, batch: list[tuple[int, int, bytes]]) -> bytes:
    directory.mkdir()
    storage = RosbagsMcapStorage(directory, CompressionMode.NONE)
    connections = []
    added: set[str] = set()
    for cid, (topic, msgtype) in enumerate(TOPICS, start=1):
        definition = type_definition(msgtype)
        conn = Connection(cid, topic, msgtype,
                          MessageDefinition(MessageDefinitionFormat.MSG, definition.text),
                          definition.type_hash, 0, ConnectionExtRosbag2('cdr', []), None)
        if msgtype not in added:
            storage.add_msgtype(conn)
            added.add(msgtype)
        storage.add_connection(conn, QOS_TEXT)
        connections.append(conn)
    for topic, stamp, data in batch:
        storage.write(connections[topic], stamp, data)
    storage.close(9, 'the: metadata\n')
    return (directory / f'{directory.name}.mcap').read_bytes()


def our_file(path: Path, batch: list[tuple[int, int, bytes]]) -> bytes:
    mcap = McapFile(path, f"rosbags-{version('rosbags')}")
    channels = []
    for topic, msgtype in TOPICS:
        definition = type_definition(msgtype)
        mcap.add_schema(msgtype, definition.encoding, definition.text)
        channels.append(mcap.add_channel(topic, msgtype, 'cdr',
                                         {'offered_qos_profiles': QOS_TEXT}))
    for topic, stamp, data in batch:
        mcap.write(channels[topic], stamp, memoryview(data))
    mcap.close('the: metadata\n')
    return path.read_bytes()


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_same_bytes_as_rosbags(tmp_path: Path, seed: int) -> None:
    batch = messages(seed)
    theirs = rosbags_file(tmp_path / 'theirs', batch)
    ours = our_file(tmp_path / 'ours.mcap', batch)
    assert len(ours) == len(theirs)
    assert ours == theirs


def test_empty_file_same_bytes_as_rosbags(tmp_path: Path) -> None:
    assert our_file(tmp_path / 'ours.mcap', []) == rosbags_file(tmp_path / 'theirs', [])


def test_mcap_bag_reads_back_with_rosbags(tmp_path: Path) -> None:
    uri = tmp_path / 'bag'
    qos = (QosDesc(reliability='best_effort', depth=5),)
    batch = [(TOPICS[t][0], stamp, data) for t, stamp, data in messages(3)]
    with create_writer(StorageOptions(uri, storage_id='mcap'), 'python') as writer:
        for topic, msgtype in TOPICS:
            writer.create_topic(TopicInfo(topic, msgtype, offered_qos=qos))
        writer.write_batch(batch[:5])
        writer.write_batch(batch[5:])
    assert sorted(p.name for p in uri.iterdir()) == ['bag_0.mcap', 'metadata.yaml']
    with Reader(uri) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == dict(TOPICS)
        assert reader.connections[0].ext.offered_qos_profiles[0].depth == 5
        got = [(c.topic, stamp, data) for c, stamp, data in reader.messages()]
    assert got == sorted(batch, key=lambda m: m[1])
    info = yaml.safe_load((uri / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['storage_identifier'] == 'mcap'
    assert info['message_count'] == len(batch)
    assert info['files'][0]['path'] == 'bag_0.mcap'
    assert {t['topic_metadata']['name']: t['message_count']
            for t in info['topics_with_message_count']} == {
        name: sum(1 for m in batch if m[0] == name) for name, _ in TOPICS}
