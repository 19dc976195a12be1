# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The main job as users run it: simulator -> bridge -> recorder in real processes, Ctrl+C."""

import os
from pathlib import Path
import re
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
    # Children that outlive record by a moment (the resource tracker reads EOF; orphans
    # are reaped by init) are waited for; none may remain.
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [(p, p.cmdline()) for p in alive]
    return proc.returncode, ''.join(lines), elapsed


def counts(bag: Path) -> dict[str, int]:
    with Reader(bag) as reader:
        return {c.topic: c.msgcount for c in reader.connections}


def check_run(tmp_path, sig, *extra):
    code, out, elapsed = run_record(tmp_path, sig, *extra)
    print(f'{signal.Signals(sig).name} {" ".join(extra)}: exit after {elapsed:.2f} s')
    assert code == 0, out
    assert 'Traceback' not in out and 'Exception ignored' not in out, out
    # Typically 0.6-1.0 s; the recorder must commit everything still queued, so a disk
    # shared with other writers stretches it.
    assert elapsed < 2.5, f'shutdown took {elapsed:.2f} s'
    bags = list(tmp_path.glob('*/metadata.yaml'))
    assert len(bags) == 1, out
    published = int(out.rsplit('clouds_published=', 1)[1].split()[0])
    got = counts(bags[0].parent)
    assert got['/sensr/points'] == published, (got, out[-2000:])
    assert published >= 20
    final = re.search(r'final counters: .*points_published=(\d+)', out)
    assert final and int(final[1]) == published, out[-2000:]


def test_sigint_loses_nothing(tmp_path):
    check_run(tmp_path, signal.SIGINT)


def test_sigterm_loses_nothing(tmp_path):
    check_run(tmp_path, signal.SIGTERM)


def test_sigint_with_decode_pool_loses_nothing_and_leaves_no_worker(tmp_path):
    # run_record checks that every child (simulator, decode worker, resource tracker)
    # is gone once record has exited.
    check_run(tmp_path, signal.SIGINT, '--decode-workers', '1')
