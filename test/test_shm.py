# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Stale Fast DDS segments: found and removed after SIGKILL, live ones left alone."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
import signal
import subprocess
import sys

import pytest

from sensr_bridge.process import shm

PARTICIPANT = """
import sys
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node('shm_probe')
node.create_publisher(String, 'shm_probe', 10)
print('ready', flush=True)
sys.stdin.read()
"""


def segment_names(directory: Path = shm.SHM_DIR) -> set[str]:
    return {p.name for p in directory.iterdir() if shm._SEGMENT.match(p.name)}


@pytest.mark.skipif(not shm.SHM_DIR.is_dir(), reason='no /dev/shm')
def test_segment_of_a_killed_participant_is_removed_and_live_one_kept():
    child = subprocess.Popen([sys.executable, '-c', PARTICIPANT], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == 'ready'
        mine = segments_locked_by(child.pid)
        assert mine, 'the participant created no shared-memory segment'
        live = {s.path.name for s in shm.stale_segments(min_age_s=0)}
        assert not mine & live, 'a live participant segment was reported stale'
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    stale = {s.path.name for s in shm.stale_segments(min_age_s=0)}
    assert mine <= stale
    removed = shm.remove_stale_segments(min_age_s=0)
    assert mine <= {s.path.name for s in removed}
    assert all(s.size > 0 for s in removed)
    for name in mine:
        assert not (shm.SHM_DIR / name).exists()
        assert not (shm.SHM_DIR / (name + '_el')).exists()


def test_only_unlocked_old_segments_are_stale(tmp_path: Path):
    names = {'held': 'fastdds_00000000000000a1', 'free': 'fastrtps_00000000000000b2',
             'young': 'fastdds_00000000000000c3'}
    for name in names.values():
        (tmp_path / name).write_bytes(b'x' * 100)
        (tmp_path / (name + '_el')).touch()
    (tmp_path / 'fastdds_port7411').write_bytes(b'port')  # ports are Fast DDS's own business
    old = (tmp_path / names['young']).stat().st_mtime - 60
    for name in (names['held'], names['free']):
        for path in (tmp_path / name, tmp_path / (name + '_el')):
            os.utime(path, (old, old))
    fd = os.open(tmp_path / (names['held'] + '_el'), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        assert [s.path.name for s in shm.stale_segments(tmp_path)] == [names['free']]
        removed = shm.remove_stale_segments(tmp_path)
    finally:
        os.close(fd)
    assert [(s.path.name, s.size) for s in removed] == [(names['free'], 100)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [names['held'], names['held'] + '_el', names['young'], names['young'] + '_el',
         'fastdds_port7411'])


def test_cli_dry_run_lists_and_keeps(tmp_path: Path, capsys):
    name = 'fastdds_00000000000000d4'
    for path in (tmp_path / name, tmp_path / (name + '_el')):
        path.write_bytes(b'')
        os.utime(path, (0, 0))
    assert shm.main(['--dry-run', '--dir', str(tmp_path)]) == 0
    assert 'stale: 1 segments' in capsys.readouterr().out
    assert (tmp_path / name).exists()
    assert shm.main(['--dir', str(tmp_path)]) == 0
    assert 'removed: 1 segments' in capsys.readouterr().out
    assert not (tmp_path / name).exists()


def segments_locked_by(pid: int) -> set[str]:
    """Data segments whose lock file ``pid`` holds (/proc/locks): that process's own.

    Other processes (tests running beside this one) create and drop segments meanwhile,
    so a before/after listing of /dev/shm would not tell which are the child's.
    """
    inodes = set()
    for line in Path('/proc/locks').read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == 'FLOCK' and fields[4] == str(pid):
            inodes.add(int(fields[5].rsplit(':', 1)[1]))
    found = set()
    for name in segment_names():
        try:
            if (shm.SHM_DIR / (name + '_el')).stat().st_ino in inodes:
                found.add(name)
        except FileNotFoundError:
            continue  # another process's, gone meanwhile
    return found


RUN_NODES = """
import sys
from sensr_bridge.nodes.runtime import run_nodes
sys.exit(run_nodes([], ['probe'], duration=0))
"""


@pytest.mark.skipif(not shm.SHM_DIR.is_dir(), reason='no /dev/shm')
def test_node_processes_free_segments_of_killed_participants_at_start():
    """Every node program starts through run_nodes: it frees what dead participants left."""
    child = subprocess.Popen([sys.executable, '-c', PARTICIPANT], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == 'ready'
        mine = segments_locked_by(child.pid)
        assert mine, 'the participant created no shared-memory segment'
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # Older than shm.MIN_AGE_S, as a segment left by a run that ended a while ago is.
    for name in mine:
        for path in (shm.SHM_DIR / name, shm.SHM_DIR / (name + '_el')):
            os.utime(path, (path.stat().st_atime - 60, path.stat().st_mtime - 60))
    done = subprocess.run([sys.executable, '-c', RUN_NODES], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done
    assert not mine & segment_names(), "the killed participant's segments are still there"
    freed = [line for line in done.stderr.splitlines() if 'freed' in line]
    assert len(freed) == 1, done.stderr
    assert '[INFO]' in freed[0] and 'MB of RAM in /dev/shm' in freed[0]
    assert all(name in freed[0] for name in mine), freed
