# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""bag_info and bag_reindex."""

from __future__ import annotations

import os
from pathlib import Path
import sqlite3
import subprocess
import sys

import pytest
import yaml

from sensr_bridge.bag import info, reindex
from sensr_bridge.bag.base import StorageOptions, TopicInfo
from sensr_bridge.bag.factory import create_writer
from sensr_bridge.process import paths

START = 1_700_000_000_123_456_789
A = TopicInfo('/a', 'std_msgs/msg/String')
B = TopicInfo('/b', 'std_msgs/msg/UInt32')


def write_bag(uri: Path, **options: object) -> None:
    with create_writer(StorageOptions(uri, **options), 'python') as writer:
        writer.create_topic(A)
        writer.create_topic(B)
        for i in range(5):
            topic = A if i < 3 else B
            writer.write_batch([(topic.name, START + i * 625_000_000, bytes(40_000))])


def test_summary_of_a_written_bag(tmp_path: Path) -> None:
    uri = tmp_path / 'bag'
    write_bag(uri)
    summary = info.summarize(uri)
    assert (summary.version, summary.storage_id, summary.files) == (9, 'sqlite3', ['bag_0.db3'])
    assert (summary.message_count, summary.start_ns, summary.end_ns) == (
        5, START, START + 2_500_000_000)
    assert summary.duration_ns == 2_500_000_000
    assert summary.bag_size == sum(p.stat().st_size for p in uri.iterdir())
    assert [(t.name, t.type, t.count, t.serialization_format) for t in summary.topics] == [
        ('/a', A.type, 3, 'cdr'), ('/b', B.type, 2, 'cdr')]
    text = info.format_summary(summary)
    assert 'Files:             bag_0.db3\n' in text
    assert 'Storage id:        sqlite3\n' in text
    assert 'Duration:          2.500000000s\n' in text
    assert '(1700000000.123456789)\n' in text
    assert 'Messages:          5\n' in text
    assert ('Topic information: Topic: /a | Type: std_msgs/msg/String | Count: 3 | '
            'Serialization Format: cdr\n'
            '                   Topic: /b | Type: std_msgs/msg/UInt32 | Count: 2 | '
            'Serialization Format: cdr\n') in text


def test_info_command_prints_the_summary(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    uri = tmp_path / 'bag'
    write_bag(uri, storage_id='mcap')
    assert info.main([str(uri)]) == 0
    out = capsys.readouterr().out
    assert out == info.format_summary(info.summarize(uri))
    assert 'Storage id:        mcap\n' in out


def test_info_without_metadata_points_to_reindex(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    uri = tmp_path / 'bag'
    write_bag(uri)
    (uri / 'metadata.yaml').unlink()
    assert info.main([str(uri)]) == 1
    assert 'bag_reindex' in capsys.readouterr().err


@pytest.mark.parametrize(('size', 'text'), [
    (0, '0 B'), (1023, '1023 B'), (1536, '1.5 KiB'), (14_744_333, '14.1 MiB'),
    (3 * 2**40, '3.0 TiB')])
def test_format_size(size: int, text: str) -> None:
    assert info.format_size(size) == text


@pytest.mark.parametrize('version', [9, 8])
def test_reindex_rebuilds_deleted_metadata(tmp_path: Path, version: int,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    uri = tmp_path / 'bag'
    write_bag(uri, max_bagfile_duration=1, metadata_version=version,
              custom_data={'site': 'lab'})
    original = yaml.safe_load((uri / 'metadata.yaml').read_text())
    assert len(original['rosbag2_bagfile_information']['files']) > 1
    (uri / 'metadata.yaml').unlink()
    assert reindex.main([str(uri)]) == 0
    assert yaml.safe_load((uri / 'metadata.yaml').read_text()) == original
    out = capsys.readouterr().out
    assert f'(version {version})' in out
    assert '/a (std_msgs/msg/String): 3 messages' in out


def test_reindex_skips_a_file_without_tables(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    uri = tmp_path / 'bag'
    write_bag(uri)
    (uri / 'bag_1.db3').touch()  # as left by a crash right after a split
    assert reindex.main([str(uri)]) == 0
    assert 'skipped bag_1.db3' in capsys.readouterr().out
    assert info.summarize(uri).files == ['bag_0.db3']


def test_reindex_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert reindex.main([str(tmp_path / 'missing')]) == 1
    assert 'is not a directory' in capsys.readouterr().err
    (tmp_path / 'empty').mkdir()
    assert reindex.main([str(tmp_path / 'empty')]) == 1
    assert 'no sqlite3 bag file' in capsys.readouterr().err


WRITE_BOTH = """
import sys
import os
from pathlib import Path
import sqlite3
import subprocess
import sys
from sensr_bridge.bag.base import StorageOptions, TopicInfo
from sensr_bridge.bag.factory import create_writer
for storage in ('sqlite3', 'mcap'):
    uri = Path(sys.argv[1]) / storage
    with create_writer(StorageOptions(uri, storage_id=storage), 'python') as writer:
        writer.create_topic(TopicInfo('/a', 'std_msgs/msg/String'))
        writer.write_batch([('/a', 1, bytes(12))])
print('rclpy imported' if 'rclpy' in sys.modules else 'rclpy not imported')
"""


@pytest.mark.parametrize('environ', ['', 'rolling'])
def test_ros_distro_is_the_distro_not_the_package(tmp_path: Path, environ: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Both writers store the ROS distro (ROS_DISTRO, else the rclpy installed's).

    It was 'sensr_bridge' without ROS_DISTRO; the recorder's name is in custom_data.
    """
    env = {k: v for k, v in os.environ.items() if k != 'ROS_DISTRO'}
    if environ:
        env['ROS_DISTRO'] = environ
    monkeypatch.delenv('ROS_DISTRO', raising=False)
    expected = environ or paths.ros_distro()
    assert expected in ('humble', 'jazzy', 'kilted', 'rolling'), expected
    done = subprocess.run([sys.executable, '-c', WRITE_BOTH, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == 'rclpy not imported'  # the writers need no ROS
    for storage in ('sqlite3', 'mcap'):
        uri = tmp_path / storage
        meta = yaml.safe_load((uri / 'metadata.yaml').read_text())
        assert meta['rosbag2_bagfile_information']['ros_distro'] == expected
        assert f'ROS Distro:        {expected}\n' in info.format_summary(info.summarize(uri))
    with sqlite3.connect(tmp_path / 'sqlite3' / 'sqlite3_0.db3') as conn:
        assert conn.execute('SELECT ros_distro FROM schema').fetchall() == [(expected,)]
    # mcap: the rosbag2 metadata record inside the file says the same.
    assert f'ros_distro: {expected}\n'.encode() in (tmp_path / 'mcap' / 'mcap_0.mcap').read_bytes()
