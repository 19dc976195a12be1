# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""mcap chunk compression (zstd, lz4) of both writers, read back by rosbags and by ROS 2."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bag_helpers import POINTS, bag_info_count, chunk_compressions, play_and_count
from helpers import NEEDS_INSTALLED_PACKAGE, NEEDS_ROS2_CLI, NEEDS_ROSBAG2_PY
import pytest
from rosbags.rosbag2 import Reader
import yaml

from sensr_bridge.bag.backends.rosbag2py_writer import write_mcap_config
from sensr_bridge.bag.base import QosDesc, StorageOptions, TopicInfo
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.bench.clouds import simulator_clouds
from sensr_bridge.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

CLOUDS = TopicInfo(POINTS, 'sensor_msgs/msg/PointCloud2',
                   offered_qos=[QosDesc('reliable', 'volatile', 'keep_last', 10)])
TEXT = TopicInfo('/sensr/events', 'std_msgs/msg/String')


@pytest.fixture(scope='module')
def clouds() -> list[bytes]:
    """Realistic clouds: the simulator's site as the bridge publishes it (400 KB each)."""
    return simulator_clouds(20_000, 3)


def write(uri: Path, clouds: list[bytes], compression: str, backend: str = 'python',
          count: int = 9) -> list[tuple[str, int, bytes]]:
    messages = []
    options = StorageOptions(uri, storage_id='mcap', compression=compression)
    with create_writer(options, backend) as writer:
        writer.create_topic(CLOUDS)
        writer.create_topic(TEXT)
        for i in range(count):
            batch = [(CLOUDS.name, 10 * i, clouds[i % len(clouds)]),
                     (TEXT.name, 10 * i + 1, b'\x00\x01\x00\x00\x03\x00\x00\x00ab\x00')]
            writer.write_batch(batch)
            messages += batch
    return messages


def read_all(uri: Path) -> list[tuple[str, int, bytes]]:
    with Reader(uri) as reader:
        return [(c.topic, t, bytes(d)) for c, t, d in reader.messages()]


@pytest.mark.parametrize('compression', ['zstd', 'lz4'])
def test_python_writer_compresses_chunks_losslessly(tmp_path, clouds, compression):
    written = write(tmp_path / 'c', clouds, compression)
    write(tmp_path / 'n', clouds, 'none')
    compressed, plain = tmp_path / 'c' / 'c_0.mcap', tmp_path / 'n' / 'n_0.mcap'
    assert read_all(tmp_path / 'c') == written == read_all(tmp_path / 'n')
    assert set(chunk_compressions(compressed)) == {compression}
    assert set(chunk_compressions(plain)) == {''}
    # Simulator clouds are float32 coordinates: they compress, a little.
    assert compressed.stat().st_size < 0.95 * plain.stat().st_size


def test_split_compressed_bag(tmp_path, clouds):
    uri = tmp_path / 'bag'
    with create_writer(StorageOptions(uri, storage_id='mcap', compression='zstd'),
                       'python') as writer:
        writer.create_topic(CLOUDS)
        writer.write_batch([(CLOUDS.name, 1, clouds[0])])
        writer.split()
        writer.write_batch([(CLOUDS.name, 2, clouds[1])])
    assert [chunk_compressions(uri / f'bag_{i}.mcap') for i in range(2)] == [['zstd']] * 2
    assert read_all(uri) == [(CLOUDS.name, 1, clouds[0]), (CLOUDS.name, 2, clouds[1])]


@pytest.mark.parametrize(('options', 'message'), [
    ({'storage_id': 'sqlite3', 'compression': 'zstd'}, 'needs storage mcap'),
    ({'storage_id': 'mcap', 'compression': 'gzip'}, 'compression must be one of'),
])
def test_compression_options_are_checked(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        StorageOptions(tmp_path / 'bag', **options)


def test_mcap_config_keeps_the_users_entries(tmp_path):
    base = tmp_path / 'base.yaml'
    base.write_text('chunkSize: 1234\ncompression: None\n')
    out = tmp_path / 'out.yaml'
    write_mcap_config(str(out), 'lz4', str(base))
    assert yaml.safe_load(out.read_text()) == {'chunkSize': 1234, 'compression': 'Lz4',
                                               'compressionLevel': 'Fastest'}
    write_mcap_config(str(out), 'zstd')
    assert yaml.safe_load(out.read_text())['compression'] == 'Zstd'
    base.write_text('- a list\n')
    with pytest.raises(ConfigError, match='not a mapping'):
        write_mcap_config(str(out), 'zstd', str(base))


@NEEDS_ROSBAG2_PY
@NEEDS_ROS2_CLI
@NEEDS_INSTALLED_PACKAGE
@pytest.mark.parametrize('compression', ['zstd', 'lz4'])
@pytest.mark.parametrize('backend', ['python', 'rosbag2_py'])
def test_ros2_bag_info_and_play_read_compressed_bags(
        tmp_path, clouds, counter, backend, compression):
    uri = tmp_path / 'bag'
    written = write(uri, clouds, compression, backend, count=12)
    # rosbag2's writer stores a chunk that would not shrink (schemas only) uncompressed.
    assert compression in chunk_compressions(uri / 'bag_0.mcap')
    assert read_all(uri) == written
    count, _ = bag_info_count(uri, POINTS)
    assert count == 12
    played, out = play_and_count(uri, 12, counter)
    assert played == 12, out


@NEEDS_ROSBAG2_PY
def test_rosbag2_storage_preset_compresses_too(tmp_path, clouds):
    """rosbag2's own mcap presets (zstd_fast, zstd_small) pass through storage_preset."""
    uri = tmp_path / 'bag'
    options = StorageOptions(uri, storage_id='mcap', storage_preset_profile='zstd_fast')
    with create_writer(options, 'rosbag2_py') as writer:
        writer.create_topic(CLOUDS)
        writer.write_batch([(CLOUDS.name, 1, clouds[0])])
    assert 'zstd' in chunk_compressions(uri / 'bag_0.mcap')
    assert read_all(uri) == [(CLOUDS.name, 1, clouds[0])]
