# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The main job as users run it: simulator -> bridge -> recorder in real processes, Ctrl+C."""

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import psutil
from rosbags.rosbag2 import Reader


def run_record(tmp_path: Path, sig: int, *extra: str) -> tuple[int, str, float]:
    cmd = [sys.executable, '-m', 'sensr_bridge.record', '--simulate', '--output-dir',
           str(tmp_path), '--writer-backend', 'python', '--rate', '10', *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    lines = []
    for line in proc.stdout:
        lines.append(line)
        # Signal mid-recording, once 20 clouds went through.
        if 'clouds received' in line and int(line.split('published')[1].split()[0]) >= 20:
            break
    children = psutil.Process(proc.pid).children(recursive=True)
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    elapsed = time.monotonic() - t0
    lines.append(out)
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child
    return proc.returncode, ''.join(lines), elapsed


def counts(bag: Path) -> dict[str, int]:
    with Reader(bag) as reader:
        return {c.topic: c.msgcount for c in reader.connections}


def check_run(tmp_path, sig):
    code, out, elapsed = run_record(tmp_path, sig)
    assert code == 0, out
    assert 'Traceback' not in out and 'Exception ignored' not in out, out
    assert elapsed < 2.5, f'shutdown took {elapsed:.2f} s'
    bags = list(tmp_path.glob('*/metadata.yaml'))
    assert len(bags) == 1, out
    published = int(out.rsplit('clouds_published=', 1)[1].split()[0])
    got = counts(bags[0].parent)
    assert got['/sensr/points'] == published, (got, out[-2000:])
    assert published >= 20


def test_sigint_loses_nothing(tmp_path):
    check_run(tmp_path, signal.SIGINT)


def test_sigterm_loses_nothing(tmp_path):
    check_run(tmp_path, signal.SIGTERM)
