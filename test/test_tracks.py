# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The track log: ``tracks BAG`` exports every object of a bag's output_raw as CSV."""

import csv
import io
import math
from pathlib import Path
import re
import subprocess
import sys

from helpers import HAVE_VISION_MSGS
import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from std_msgs.msg import MultiArrayDimension, UInt8MultiArray

from sensr_bridge.bag import mcap_index
from sensr_bridge.bag.base import StorageOptions, TopicInfo
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.cli import tracks
from sensr_bridge.convert import cdr
from sensr_bridge.sensr import protocol

SMALL = {'output_port': 0, 'point_port': 0, 'rate_hz': 20.0, 'points': 2000, 'objects': 8,
         'object_points': 10, 'frames_precomputed': 4, 'start_after_clients': 2}
START = 1_800_000_000_000_000_000
RAW = TopicInfo('/sensr/output_raw', 'std_msgs/msg/UInt8MultiArray')
CLOUDS = TopicInfo('/sensr/points', 'sensor_msgs/msg/PointCloud2')
STORAGES = ['sqlite3', 'mcap']
TYPESTORE = get_typestore(Stores.LATEST)


def stamp_ns(text):
    sec, frac = text.split('.')
    assert len(frac) == 9
    return int(sec) * 10**9 + int(frac)


def same32(text, value):
    return np.float32(float(text)) == np.float32(value)


def assert_csv_row_is_object(row, obj, stamp, source='objects'):
    """Compare one CSV row with the protobuf object it came from, column by column."""
    assert list(row) == list(tracks.COLUMNS)
    assert stamp_ns(row['stamp']) == stamp
    assert int(row['id']) == obj.id
    assert row['label'] == protocol.enum_name(protocol.LABEL_TYPE, obj.label)
    assert int(row['label_id']) == obj.label
    assert same32(row['probability'], obj.confidence)
    assert row['tracking_status'] == protocol.enum_name(protocol.TRACKING_STATUS,
                                                        obj.tracking_status)
    box = obj.bbox
    assert same32(row['centre_x'], box.position.x) and same32(row['centre_y'], box.position.y)
    assert same32(row['centre_z'], box.position.z + box.size.z / 2)
    assert [same32(row[f'size_{a}'], getattr(box.size, a)) for a in 'xyz'] == [True] * 3
    assert same32(row['yaw'], box.yaw)
    assert [same32(row[f'velocity_{a}'], getattr(obj.velocity, a)) for a in 'xyz'] == [True] * 3
    assert row['source'] == source


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def raw_outputs(bag):
    """Every OutputMessage of the bag's output_raw, read with rosbags' own deserializer."""
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic == RAW.name]
        return [(t, protocol.OutputMessage.FromString(bytes(
            TYPESTORE.deserialize_cdr(data, RAW.type).data)))
            for _, t, data in reader.messages(connections=connections)]


def run_tracks(*args):
    return subprocess.run([sys.executable, '-m', 'sensr_bridge.cli.tracks', *map(str, args)],
                          capture_output=True, text=True, timeout=60, check=False)


def summary_counts(stderr):
    found = re.search(r'(\d+) frames, (\d+) objects, (\d+) distinct ids', stderr)
    assert found, stderr
    return tuple(int(x) for x in found.groups())


# --- recorded with the real pipeline -----------------------------------------------------


@pytest.mark.parametrize('storage', STORAGES)
def test_recorded_bag_exports_every_object_the_simulator_sent(make_sim, tmp_path, storage):
    sim = make_sim()
    record = subprocess.run(
        [sys.executable, '-m', 'sensr_bridge.cli.record', '--host', '127.0.0.1',
         '--output-port', str(sim.output_port), '--point-port', str(sim.point_port),
         '--duration', '2', '--output-dir', str(tmp_path), '--bag-name', 'bag',
         '--storage', storage, '--writer-backend', 'python', '--quiet'],
        capture_output=True, text=True, timeout=90, check=False)
    assert record.returncode == 0, record.stdout[-3000:] + record.stderr[-3000:]
    bag = tmp_path / 'bag'
    out = tmp_path / 'tracks.csv'
    result = run_tracks(bag, '--out', out)
    assert result.returncode == 0, result.stderr
    rows = read_csv(out.read_text())
    # The frames of the bag, read independently of the exporter.
    frames = [(t, m) for t, m in raw_outputs(bag) if m.HasField('stream') and
              m.stream.has_objects]
    assert len(frames) >= 10, len(frames)
    sent = {stamp: seq for seq, stamp in sim.sent_log().items()}
    by_stamp = {}
    for row in rows:
        by_stamp.setdefault(stamp_ns(row['stamp']), []).append(row)
    assert sorted(by_stamp) == sorted(protocol.timestamp_ns(m.timestamp) for _, m in frames)
    for stamp, frame_rows in by_stamp.items():
        expected = protocol.OutputMessage.FromString(sim.expected_output_message(sent[stamp]))
        assert len(frame_rows) == len(expected.stream.objects) == SMALL['objects']
        for row, obj in zip(frame_rows, expected.stream.objects, strict=True):
            assert_csv_row_is_object(row, obj, stamp)
    assert summary_counts(result.stderr) == (len(frames), len(rows), SMALL['objects'])
    assert 'objects skipped: none; bad messages: none' in result.stderr
    if HAVE_VISION_MSGS:
        check_recorded_detections(bag)


def check_recorded_detections(bag):
    """objects was recorded (its type found among the installed .msg files) and reads back."""
    with AnyReader([bag]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts['/sensr/objects'] == counts['/sensr/objects/json'] > 0
        (conn,) = [c for c in reader.connections if c.topic == '/sensr/objects']
        assert conn.msgtype == 'vision_msgs/msg/Detection3DArray'
        _, _, data = next(iter(reader.messages(connections=[conn])))
        array = reader.deserialize(data, conn.msgtype)
        assert [d.id for d in array.detections] == [str(i) for i in range(1, 9)]
        assert array.header.frame_id == 'sensr'


# --- written by hand: every kind of object and message -----------------------------------


def good_object(object_id, x):
    obj = protocol.Object(id=object_id, label=1 + object_id % 4, confidence=0.5 + x / 100,
                          tracking_status=3 if object_id % 2 else 1)
    obj.bbox.position.x, obj.bbox.position.y, obj.bbox.position.z = x, -x / 3, 0.25
    obj.bbox.size.x, obj.bbox.size.y, obj.bbox.size.z = 4.5, 1.9, 1.6
    obj.bbox.yaw = x / 10
    obj.velocity.x, obj.velocity.y, obj.velocity.z = 1.0 / (object_id + 2), -0.5, 0.0
    return obj


def frame_message(k):
    """Frame k: two objects, one static object, and two malformed objects."""
    message = protocol.OutputMessage()
    message.timestamp.FromNanoseconds(START + k * 87_719_298)
    stream = message.stream
    stream.has_objects = True
    stream.objects.extend([good_object(1, 0.1 * k), good_object(2, -0.3 * k)])
    stream.objects.add(id=77, label=1, confidence=0.9)  # no box
    nan_box = stream.objects.add(id=78)
    nan_box.bbox.size.x = math.nan
    stream.static_objects.append(good_object(50, 20.0))
    return message


def messages():
    """(stamp, OutputMessage or raw bytes) as SENSR sends them, with bad messages between."""
    items = []
    for k in range(12):
        items.append((START + k * 87_719_298, frame_message(k)))
        if k == 3:
            event = protocol.OutputMessage()
            event.timestamp.FromNanoseconds(START + k * 87_719_298 + 1)
            event.event.losing.add(id=1)
            items.append((START + k * 87_719_298 + 1, event))  # no objects: no rows
        if k == 5:
            items.append((START + k * 87_719_298 + 2, b'\x07garbage'))  # not protobuf
    empty = protocol.OutputMessage()
    empty.stream.has_objects = True  # a frame without objects: counted, no rows
    items.append((START + 12 * 87_719_298, empty))
    return items


def write_bag(path, storage, cloud_bytes=1000, **options):
    """Write messages() as a recording does: each with a cloud, in the same batch."""
    with create_writer(StorageOptions(path, storage_id=storage, **options), 'python') as writer:
        writer.create_topic(RAW)
        writer.create_topic(CLOUDS)
        cloud = bytes(cloud_bytes)
        for stamp, message in messages():
            data = message if isinstance(message, bytes) else message.SerializeToString()
            writer.write_batch([(RAW.name, stamp, cdr.serialize_uint8_multiarray(
                'sensr_proto.OutputMessage', data)), (CLOUDS.name, stamp + 5, cloud)])
    return path


def check_export(text, stats=None):
    rows = read_csv(text)
    expected = []
    for stamp, message in messages():
        if not isinstance(message, bytes) and message.HasField('stream'):
            stream = message.stream
            expected += [(stamp, o, 'objects') for o in stream.objects if o.id < 70]
            expected += [(stamp, o, 'static_objects') for o in stream.static_objects]
    assert len(rows) == len(expected) == 36
    for row, (stamp, obj, source) in zip(rows, expected, strict=True):
        assert_csv_row_is_object(row, obj, stamp, source)
    if stats is not None:
        assert (stats.frames, stats.objects, len(stats.ids)) == (13, 36, 3)
        assert stats.messages == 15
        assert stats.skipped == {'missing_bbox': 12, 'bad_bbox': 12}
        assert stats.bad_messages == {'malformed': 1}
        assert stats.first_ns == START and stats.last_ns == START + 12 * 87_719_298


@pytest.mark.parametrize('storage', STORAGES)
def test_export_skips_and_counts_malformed_objects_and_messages(tmp_path, storage):
    bag = write_bag(tmp_path / 'bag', storage)
    out = io.StringIO()
    stats = tracks.export(bag, out)
    check_export(out.getvalue(), stats)
    assert stats.topic == RAW.name
    line = stats.summary()
    assert line.startswith('13 frames, 36 objects, 3 distinct ids, 1.1 s of SENSR time')
    assert 'objects skipped: bad_bbox 12, missing_bbox 12; bad messages: malformed 1' in line


def test_command_line_outputs_and_errors(tmp_path):
    bag = write_bag(tmp_path / 'bag', 'mcap')
    # Default: BAG_tracks.csv beside the bag directory, summary on stderr.
    result = run_tracks(bag)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ''
    check_export((tmp_path / 'bag_tracks.csv').read_text())
    assert summary_counts(result.stderr) == (13, 36, 3)
    assert result.stderr.rstrip().endswith(f'-> {tmp_path / "bag_tracks.csv"}')
    assert '[' not in result.stderr  # no progress bar when stderr is not a terminal
    # '-': CSV on stdout; --progress draws the bar on stderr anyway.
    result = run_tracks(bag, '--out', '-', '--progress')
    assert result.returncode == 0, result.stderr
    check_export(result.stdout)
    assert '100% 15/15 messages' in result.stderr
    # One storage file instead of the directory.
    result = run_tracks(bag / 'bag_0.mcap', '--out', '-')
    check_export(result.stdout)
    # Errors: one line, exit 1, no partial CSV left behind.
    no_raw = tmp_path / 'no_raw'
    with create_writer(StorageOptions(no_raw), 'python') as writer:
        writer.create_topic(CLOUDS)
        writer.write_batch([(CLOUDS.name, START, bytes(10))])
    for target, message in [(no_raw, 'no std_msgs/msg/UInt8MultiArray topic named '
                                     'output_raw in the bag (it has: /sensr/points'),
                            (tmp_path / 'missing', 'cannot read bag'),
                            (tmp_path, 'has no metadata.yaml')]:
        result = run_tracks(target, '--out', tmp_path / 'x.csv')
        assert result.returncode == 1, result.stderr
        assert message in result.stderr and 'Traceback' not in result.stderr
    assert not list(tmp_path.glob('*x.csv*'))
    result = run_tracks(bag, '--topic', '/other', '--out', '-')
    assert result.returncode == 1
    assert 'no std_msgs/msg/UInt8MultiArray topic /other in the bag' in result.stderr


@pytest.mark.parametrize('storage', STORAGES)
def test_export_does_not_read_the_clouds(tmp_path, storage):
    # 4 MB clouds: the recorder batches each OutputMessage with the next cloud, so in
    # mcap they share a chunk; the export must read neither the clouds nor those chunks.
    bag = write_bag(tmp_path / 'bag', storage, cloud_bytes=4_000_000)
    size = sum(p.stat().st_size for p in bag.iterdir())
    assert size > 50_000_000

    def read_bytes():
        return int(dict(line.split(': ') for line in Path('/proc/self/io').read_text()
                        .splitlines())['rchar'])

    before = read_bytes()
    stats = tracks.export(bag, io.StringIO())
    read = read_bytes() - before
    assert stats.objects == 36
    assert read < size / 20, f'read {read} of {size} bytes'


def test_compressed_mcap_is_read_by_rosbags(tmp_path):
    # rosbag2 message compression: no index shortcut, rosbags decompresses.
    bag = tmp_path / 'bag'
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    with writer:
        conn = writer.add_connection(RAW.name, RAW.type, typestore=TYPESTORE)
        for stamp, message in messages():
            data = message if isinstance(message, bytes) else message.SerializeToString()
            writer.write(conn, stamp, cdr.serialize_uint8_multiarray(
                'sensr_proto.OutputMessage', data))
    assert tracks._indexed_mcap(bag, RAW.name) is None
    out = io.StringIO()
    stats = tracks.export(bag, out)
    check_export(out.getvalue(), stats)


def test_mcap_index_gives_the_topic_messages_rosbags_gives(tmp_path):
    bag = write_bag(tmp_path / 'bag', 'mcap', cloud_bytes=1_500_000)
    path = bag / 'bag_0.mcap'
    with path.open('rb') as bio:
        index = mcap_index.topic_index(bio, RAW.name)
        assert mcap_index.topic_index(bio, '/nothing') == []
    assert len(index) == 15
    ours = list(mcap_index.topic_messages([path], RAW.name))
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic == RAW.name]
        theirs = [(t, data) for _, t, data in reader.messages(connections=conns)]
    assert ours == theirs
    damaged = tmp_path / 'damaged.mcap'
    damaged.write_bytes(path.read_bytes()[:-10])
    with damaged.open('rb') as bio, pytest.raises(mcap_index.McapIndexError):
        mcap_index.topic_index(bio, RAW.name)


def test_uint8_multiarray_reader():
    data = cdr.serialize_uint8_multiarray('sensr_proto.OutputMessage', b'payload')
    labels, payload = cdr.read_uint8_multiarray(data)
    assert (labels, bytes(payload)) == (['sensr_proto.OutputMessage'], b'payload')
    # Another writer: rclpy, two dimensions, odd label lengths.
    msg = UInt8MultiArray(data=list(b'abcdef'))
    msg.layout.dim = [MultiArrayDimension(label='a', size=2, stride=6),
                      MultiArrayDimension(label='bcdef', size=3, stride=3)]
    data = serialize_message(msg)
    labels, payload = cdr.read_uint8_multiarray(data)
    assert (labels, bytes(payload)) == (['a', 'bcdef'], b'abcdef')
    for cut in range(len(data)):
        with pytest.raises(ValueError):
            cdr.read_uint8_multiarray(data[:cut])


def test_default_output_is_beside_the_bag(tmp_path):
    bag = tmp_path / 'bags' / 'run1'
    assert tracks.default_output(bag) == bag.resolve().parent / 'run1_tracks.csv'
