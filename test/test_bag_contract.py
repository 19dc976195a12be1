# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""One contract for every bag writer: what is written is what rosbags reads back."""

from __future__ import annotations

from pathlib import Path

from bag_helpers import COUNTER, string_cdr, uint32_cdr
from helpers import NEEDS_ROSBAG2_PY
import pytest
from rosbags.rosbag2 import Reader
import yaml

from sensr_bridge.bag.base import (
    BagStats,
    QosDesc,
    StorageOptions,
    TopicInfo,
)
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.bag.typedefs import type_definition, typestore
from sensr_bridge.bench.clouds import pointcloud2_cdr
from sensr_bridge.errors import BagError, BagExistsError, ConfigError

WRITERS = [
    pytest.param(('python', 'sqlite3'), id='python-sqlite3'),
    pytest.param(('python', 'mcap'), id='python-mcap'),
    pytest.param(('rosbag2_py', 'sqlite3'), id='rosbag2_py-sqlite3', marks=NEEDS_ROSBAG2_PY),
    pytest.param(('rosbag2_py', 'mcap'), id='rosbag2_py-mcap', marks=NEEDS_ROSBAG2_PY),
]

POINTS = TopicInfo('/sensr/points', 'sensor_msgs/msg/PointCloud2',
                   offered_qos=[QosDesc('best_effort', 'volatile', 'keep_last', 5)])
STATUS = TopicInfo('/sensr/status', 'std_msgs/msg/String',
                   offered_qos=[QosDesc('reliable', 'transient_local', 'keep_last', 1)])
@pytest.fixture(params=WRITERS)
def writer_kind(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param


def make_writer(kind: tuple[str, str], uri: Path, **options: object):
    backend, storage_id = kind
    return create_writer(StorageOptions(uri, storage_id=storage_id, **options), backend)


def sample_batches() -> list[list[tuple[str, int, bytes]]]:
    """Three batches mixing topics, with out-of-order timestamps inside a batch."""
    base = 1_700_000_000_000_000_000
    batches = []
    for i in range(3):
        batches.append([
            (POINTS.name, base + i * 100_000_000, pointcloud2_cdr(2_000, seed=i)),
            (STATUS.name, base + i * 100_000_000 + 5, string_cdr(f'status {i}')),
            (COUNTER.name, base + i * 100_000_000 - 3, uint32_cdr(i)),
        ])
    return batches


def read_all(uri: Path) -> list[tuple[str, int, bytes]]:
    with Reader(uri) as reader:
        return [(conn.topic, stamp, bytes(data)) for conn, stamp, data in reader.messages()]


def write_sample(kind: tuple[str, str], uri: Path, **options: object) -> BagStats:
    with make_writer(kind, uri, **options) as writer:
        for topic in (POINTS, STATUS, COUNTER):
            writer.create_topic(topic)
        for batch in sample_batches():
            writer.write_batch(batch)
    return writer.stats


def test_round_trip_is_bit_exact(writer_kind: tuple[str, str], tmp_path: Path) -> None:
    uri = tmp_path / 'bag'
    write_sample(writer_kind, uri)
    expected = sorted((m for b in sample_batches() for m in b), key=lambda m: m[1])
    assert read_all(uri) == expected

    with Reader(uri) as reader:
        assert reader.message_count == 9
        topics = reader.topics
        assert {name: (t.msgtype, t.msgcount) for name, t in topics.items()} == {
            POINTS.name: (POINTS.type, 3), STATUS.name: (STATUS.type, 3),
            COUNTER.name: (COUNTER.type, 3)}
        conns = {c.topic: c for c in reader.connections}
        assert conns[POINTS.name].digest == type_definition(POINTS.type).type_hash
        assert 'uint8[] data' in topics[POINTS.name].msgdef.data
        qos = conns[STATUS.name].ext.offered_qos_profiles
        assert [(q.reliability.name, q.durability.name, q.depth) for q in qos] == [
            ('RELIABLE', 'TRANSIENT_LOCAL', 1)]
        assert reader.start_time == expected[0][1]
        assert reader.end_time == expected[-1][1] + 1

    cloud = typestore().deserialize_cdr(read_all(uri)[1][2], POINTS.type)
    assert (cloud.width, cloud.point_step, [f.name for f in cloud.fields]) == (
        2_000, 16, ['x', 'y', 'z', 'intensity'])


@pytest.mark.parametrize('version', [9, 8])
def test_metadata_yaml_format(writer_kind: tuple[str, str], tmp_path: Path,
                              version: int) -> None:
    uri = tmp_path / 'bag'
    if writer_kind[0] == 'rosbag2_py' and version == 8:
        # rosbag2 writes its distro's own version: asking for another is refused.
        with pytest.raises(ConfigError, match='writes metadata version 9'):
            make_writer(writer_kind, uri, metadata_version=8)
        return
    write_sample(writer_kind, uri, metadata_version=version, custom_data={'site': 'lab'})
    info = yaml.safe_load((uri / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['version'] == version
    assert info['storage_identifier'] == writer_kind[1]
    assert info['message_count'] == 9
    assert info['custom_data'] == {'site': 'lab'}
    assert info['ros_distro']
    assert info['compression_format'] == info['compression_mode'] == ''
    assert [f['path'] for f in info['files']] == info['relative_file_paths']
    assert all((uri / name).is_file() for name in info['relative_file_paths'])
    assert set(info['files'][0]) == {'path', 'starting_time', 'duration', 'message_count'}
    topics = {t['topic_metadata']['name']: t for t in info['topics_with_message_count']}
    assert {name: t['message_count'] for name, t in topics.items()} == {
        POINTS.name: 3, STATUS.name: 3, COUNTER.name: 3}
    points = topics[POINTS.name]['topic_metadata']
    assert points['type_description_hash'] == type_definition(POINTS.type).type_hash
    qos = points['offered_qos_profiles']
    if version == 9:
        assert isinstance(qos, list)
        assert (qos[0]['reliability'], qos[0]['history'], qos[0]['depth']) == (
            'best_effort', 'keep_last', 5)
    else:
        assert isinstance(qos, str)
        profile = yaml.safe_load(qos)[0]
        assert (profile['reliability'], profile['history'], profile['depth']) == (2, 1, 5)


def test_refuses_to_overwrite(writer_kind: tuple[str, str], tmp_path: Path) -> None:
    uri = tmp_path / 'bag'
    uri.mkdir()
    (uri / 'keep.txt').write_text('precious')
    writer = make_writer(writer_kind, uri)
    with pytest.raises(BagExistsError, match='already exists; choose another output'):
        writer.open()
    assert (uri / 'keep.txt').read_text() == 'precious'
    assert sorted(p.name for p in uri.iterdir()) == ['keep.txt']


def test_unwritable_parent_is_a_clear_error(writer_kind: tuple[str, str],
                                            tmp_path: Path) -> None:
    with pytest.raises(BagError, match=r'parent directory .* does not exist'):
        make_writer(writer_kind, tmp_path / 'missing' / 'bag').open()


def skip_unsplittable(writer_kind: tuple[str, str]) -> None:
    if writer_kind == ('python', 'mcap'):
        pytest.skip('the python mcap writer does not split; see test_python_mcap_refuses_split')


@pytest.mark.parametrize('option', ['max_bagfile_size', 'max_bagfile_duration'])
def test_python_mcap_refuses_split(tmp_path: Path, option: str) -> None:
    with pytest.raises(ConfigError, match='needs the rosbag2_py backend'):
        make_writer(('python', 'mcap'), tmp_path / 'bag', **{option: 100_000})


def write_many(writer_kind: tuple[str, str], uri: Path, batches: int, per_batch: int,
               size: int, step_ns: int, **options: object) -> list[tuple[str, int, bytes]]:
    written = []
    with make_writer(writer_kind, uri, **options) as writer:
        writer.create_topic(COUNTER)
        for i in range(batches):
            batch = [(COUNTER.name, (i * per_batch + j) * step_ns,
                      bytes([i % 256, j]) * (size // 2)) for j in range(per_batch)]
            writer.write_batch(batch)
            written += batch
    return written


def file_counts(uri: Path) -> list[int]:
    info = yaml.safe_load((uri / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert [f['path'] for f in info['files']] == info['relative_file_paths']
    return [f['message_count'] for f in info['files']]


def test_split_by_size_loses_nothing(writer_kind: tuple[str, str], tmp_path: Path) -> None:
    skip_unsplittable(writer_kind)
    uri = tmp_path / 'bag'
    written = write_many(writer_kind, uri, batches=20, per_batch=3, size=60_000, step_ns=10,
                         max_bagfile_size=1_000_000)
    counts = file_counts(uri)
    assert len(counts) > 2
    assert sum(counts) == len(written)
    assert read_all(uri) == written
    if writer_kind[0] == 'python':
        # Split between batches only, and before a batch that would cross the limit
        # (estimated to within a page, at most 64 KiB).
        assert all(count % 3 == 0 for count in counts)
        assert all((uri / f'bag_{i}.db3').stat().st_size <= 1_000_000 + 65_536
                   for i in range(len(counts)))


def test_split_by_duration_loses_nothing(writer_kind: tuple[str, str],
                                         tmp_path: Path) -> None:
    skip_unsplittable(writer_kind)
    uri = tmp_path / 'bag'
    written = write_many(writer_kind, uri, batches=12, per_batch=2, size=100,
                         step_ns=150_000_000, max_bagfile_duration=1)
    counts = file_counts(uri)
    assert len(counts) >= 3
    assert read_all(uri) == written
    if writer_kind[0] == 'python':
        info = yaml.safe_load((uri / 'metadata.yaml').read_text())
        durations = [f['duration']['nanoseconds']
                     for f in info['rosbag2_bagfile_information']['files']]
        assert max(durations) <= 1_000_000_000
        assert all(count % 2 == 0 for count in counts)


def test_split_on_request_loses_nothing(writer_kind: tuple[str, str], tmp_path: Path) -> None:
    uri = tmp_path / 'bag'
    written = []
    with make_writer(writer_kind, uri) as writer:
        writer.create_topic(COUNTER)
        for i, size in enumerate((3, 1, 4)):
            batch = [(COUNTER.name, 100 * i + j, uint32_cdr(100 * i + j)) for j in range(size)]
            writer.write_batch(batch)
            written += batch
            writer.split()
        writer.write_batch([(COUNTER.name, 999, uint32_cdr(999))])
        written.append((COUNTER.name, 999, uint32_cdr(999)))
    counts = file_counts(uri)
    # rosbag2 opens a file at every split; ours only once a message needs one.
    assert [c for c in counts if c] == [3, 1, 4, 1]
    assert read_all(uri) == written
    with Reader(uri) as reader:
        assert reader.message_count == 9


def test_split_of_an_empty_file_adds_no_empty_file(tmp_path: Path) -> None:
    for storage_id in ('sqlite3', 'mcap'):
        uri = tmp_path / storage_id
        with make_writer(('python', storage_id), uri) as writer:
            writer.create_topic(COUNTER)
            writer.split()
            writer.write_batch([(COUNTER.name, 1, uint32_cdr(1))])
            writer.split()
            writer.split()
        assert file_counts(uri) == [1]


def test_close_is_idempotent_and_final(writer_kind: tuple[str, str], tmp_path: Path) -> None:
    uri = tmp_path / 'bag'
    writer = make_writer(writer_kind, uri)
    writer.open()
    writer.create_topic(STATUS)
    writer.write_batch([(STATUS.name, 5, string_cdr('a'))])
    first = writer.close()
    metadata = (uri / 'metadata.yaml').read_text()
    assert writer.close() == first
    assert (uri / 'metadata.yaml').read_text() == metadata
    with pytest.raises(BagError, match='closed, not open'):
        writer.write_batch([(STATUS.name, 6, string_cdr('b'))])


def test_unknown_topic_is_rejected_without_writing(writer_kind: tuple[str, str],
                                                  tmp_path: Path) -> None:
    uri = tmp_path / 'bag'
    with make_writer(writer_kind, uri) as writer:
        writer.create_topic(STATUS)
        with pytest.raises(BagError, match='not created'):
            writer.write_batch([(STATUS.name, 1, string_cdr('a')), ('/nope', 2, b'')])
        with pytest.raises(BagError, match='already exists with type'):
            writer.create_topic(TopicInfo(STATUS.name, COUNTER.type))
    assert read_all(uri) == []


def test_stats(writer_kind: tuple[str, str], tmp_path: Path) -> None:
    stats = write_sample(writer_kind, tmp_path / 'bag')
    batches = sample_batches()
    assert stats.messages == 9
    assert stats.topics[POINTS.name].messages == 3
    assert stats.topics[POINTS.name].bytes == sum(len(b[0][2]) for b in batches)
    assert stats.total_bytes == sum(len(m[2]) for b in batches for m in b)
    assert stats.start_ns == min(m[1] for b in batches for m in b)
    assert stats.end_ns == max(m[1] for b in batches for m in b)
    assert stats.files == file_paths(tmp_path / 'bag')
    assert stats.write_latency.count == 3
    assert 0 < stats.write_latency.p50_s <= stats.write_latency.max_s


def file_paths(uri: Path) -> list[str]:
    info = yaml.safe_load((uri / 'metadata.yaml').read_text())
    return info['rosbag2_bagfile_information']['relative_file_paths']


def test_empty_bag_is_valid(writer_kind: tuple[str, str], tmp_path: Path) -> None:
    uri = tmp_path / 'bag'
    with make_writer(writer_kind, uri) as writer:
        writer.create_topic(STATUS)
    with Reader(uri) as reader:
        assert reader.message_count == 0
        assert list(reader.topics) == [STATUS.name]
