# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The launch files for real: ``ros2 launch`` as a subprocess, stopped as Ctrl+C stops it.

Each run starts ``ros2 launch`` in a session of its own with a pseudo-terminal as stdin
(so launch behaves as in a terminal: it leaves SIGINT to the terminal, which sends it to
the whole foreground process group) and stops it with ``os.killpg(pgid, SIGINT)``. Every
run must exit in time, without a traceback, and leave no process behind: every PID that
was a child of the launch (and every process of its group) must be gone. Recordings are
checked with the real ``ros2 bag info`` against the bridge's own count (its
``stats_file``) and played back with ``ros2 bag play`` to a subscriber in this process.
Waiting is done by polling a condition with a bound (log line, file, process state).

Needs launch, the ros2 CLI and sensr_bridge built and sourced (colcon build); skipped
without them, never in CI's real-stack run (SENSR_ROS_STACK=required).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time

from bag_helpers import POINTS, bag_info_count, play_and_count
from helpers import NEEDS_INSTALLED_PACKAGE, NEEDS_LAUNCH, NEEDS_ROS2_CLI, free_ports, wait_until
import psutil
import pytest
import yaml

from sensr_bridge.launching import plans
from sensr_bridge.process import environment

pytestmark = [NEEDS_LAUNCH, NEEDS_ROS2_CLI, NEEDS_INSTALLED_PACKAGE]

NAMESPACE = plans.DEFAULT_NAMESPACE
SIM_POINTS = '20000'  # 400 KB clouds: what is checked does not depend on their size
RECORD_S = 8.0  # after the bridge connected (startup takes 3-10 s on a loaded machine)
START_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 30.0  # less than the recorder's sigterm_timeout: no escalation allowed


class Launch:
    """``ros2 launch`` in its own session; output in a file; its processes tracked."""

    def __init__(self, log, launch_file, *arguments):
        self.log = log
        self.pids = set()
        master, slave = os.openpty()
        self._tty = master
        try:
            with log.open('wb') as sink:
                self.proc = subprocess.Popen(
                    ['ros2', 'launch', plans.PACKAGE, launch_file, *arguments],
                    stdin=slave, stdout=sink, stderr=subprocess.STDOUT,
                    start_new_session=True, env={**os.environ, **environment.dds_environment()})
        finally:
            os.close(slave)
        self.pgid = self.proc.pid  # session leader

    def output(self):
        return self.log.read_text(errors='replace')

    def track(self):
        """Remember every process below the launch (called while polling)."""
        with contextlib.suppress(psutil.Error):
            self.pids.update(p.pid for p in psutil.Process(self.proc.pid).children(recursive=True))
        self.pids.update(int(pid) for pid in
                         re.findall(r'process started with pid \[(\d+)\]', self.output()))

    def wait_for(self, condition, timeout, what):
        """Poll ``condition`` (bounded) while the launch runs; fail if it exits first."""
        def ready():
            self.track()
            return condition() or self.proc.poll() is not None

        assert wait_until(ready, timeout), f'no {what} within {timeout} s:\n{self.tail()}'
        assert self.proc.poll() is None, f'launch exited before {what}:\n{self.tail()}'

    def wait_line(self, text, timeout=START_TIMEOUT_S):
        self.wait_for(lambda: text in self.output(), timeout, repr(text))

    def run_for(self, seconds):
        """Let it run this long (failing at once if it exits)."""
        end = time.monotonic() + seconds
        self.wait_for(lambda: time.monotonic() >= end, seconds + 1, 'the end')

    def interrupt(self):
        """Ctrl+C: SIGINT to the whole process group, as the terminal sends it."""
        self.track()
        os.killpg(self.pgid, signal.SIGINT)

    def wait_exit(self, timeout=EXIT_TIMEOUT_S):
        """Wait for the launch to exit; return (exit code, seconds it took)."""
        start = time.monotonic()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f'launch still running {timeout} s later:\n{self.tail()}')
        return code, time.monotonic() - start

    def left_behind(self, timeout=5.0):
        """Processes of the run still alive after ``timeout`` (tracked PIDs and the group)."""
        def alive():
            found = []
            for proc in psutil.process_iter(['pid', 'status', 'cmdline']):
                try:
                    in_group = os.getpgid(proc.pid) == self.pgid
                except OSError:
                    continue
                if (in_group or proc.pid in self.pids) and proc.pid != self.proc.pid and \
                        proc.info['status'] != psutil.STATUS_ZOMBIE:
                    found.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])[:200]}")
            return found

        wait_until(lambda: not alive(), timeout)
        return alive()

    def tail(self, chars=6000):
        return self.output()[-chars:]

    def close(self):
        """Kill whatever is left (after a failed test) and release the terminal."""
        with contextlib.suppress(ProcessLookupError):
            if self.proc.poll() is None or self.left_behind(0):
                os.killpg(self.pgid, signal.SIGKILL)
        for pid in self.pids:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        os.close(self._tty)


@pytest.fixture
def launch(tmp_path):
    """Start ``ros2 launch`` runs; kill what is left of them after the test."""
    runs = []

    def start(launch_file, *arguments, name='launch'):
        run = Launch(tmp_path / f'{name}.log', launch_file, *arguments)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()


def first_index(text, needle):
    index = text.find(needle)
    assert index >= 0, f'{needle!r} not in the output'
    return index


def assert_clean_exit(run, code, took):
    out = run.output()
    assert code == 0, f'exit {code}:\n{run.tail()}'
    assert took < EXIT_TIMEOUT_S, took
    for bad in ('Traceback', 'Caught exception', 'escalating to', 'Exception ignored'):
        assert bad not in out, f'{bad!r} in the output:\n{out[-8000:]}'
    assert not run.left_behind(), run.tail()


# --- record.launch.py ------------------------------------------------------------------

@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
@pytest.mark.parametrize('composed', ['false', 'true'], ids=['separate', 'composed'])
def test_record_launch_records_every_cloud(launch, counter, tmp_path, composed, storage):
    """Simulator -> bridge -> recorder for ~10 s, Ctrl+C; the bag holds every cloud published."""
    stats = tmp_path / 'bridge_stats.json'
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump({f'/{NAMESPACE}/{plans.BRIDGE_NAME}': {
        'ros__parameters': {'stats_file': str(stats)}}}))
    output_port, point_port = free_ports(2)
    run = launch('record.launch.py', 'simulate:=true', f'sim_points:={SIM_POINTS}',
                 f'output_port:={output_port}', f'point_port:={point_port}',
                 f'output_dir:={tmp_path / "bags"}', f'storage:={storage}',
                 f'composed:={composed}', f'params_file:={params}')
    run.wait_line('points: connected to ws://')
    run.run_for(RECORD_S)
    run.interrupt()
    code, took = run.wait_exit()
    out = run.output()
    assert_clean_exit(run, code, took)
    # Start order: recorder configured (bag open), bridge configured, recorder subscribed
    # to the clouds, and only then the bridge connected to SENSR.
    order = [first_index(out, line) for line in (
        'recording to ', 'configured: SENSR', f'recording {POINTS} ', 'points: connected to')]
    assert order == sorted(order), out[:6000]

    published = json.loads(stats.read_text())['counters']['points_published']
    assert published >= 20, published  # ~10 clouds/s once connected
    bags = list((tmp_path / 'bags').glob('*/metadata.yaml'))
    assert len(bags) == 1, bags
    recorded, info = bag_info_count(bags[0].parent, POINTS)
    assert recorded == published, info
    assert f'Storage id:        {storage}' in info, info

    received, play_out = play_and_count(bags[0].parent, recorded, counter)
    assert received == recorded, play_out


def test_record_launch_stops_when_the_recorder_cannot_configure(launch, tmp_path):
    """output_dir is a file: configure fails; launch stops at once, says why, leaves nothing."""
    not_a_dir = tmp_path / 'file'
    not_a_dir.write_text('')
    output_port, point_port = free_ports(2)
    run = launch('record.launch.py', 'simulate:=true', f'sim_points:={SIM_POINTS}',
                 f'output_port:={output_port}', f'point_port:={point_port}',
                 f'output_dir:={not_a_dir}')
    code, took = run.wait_exit(timeout=START_TIMEOUT_S)  # nobody stops it but itself
    out = run.output()
    assert code != 0, out
    reasons = [line for line in out.splitlines()
               if '[launch]' in line and 'sensr_recorder failed to configure' in line]
    assert len(reasons) == 1, out
    assert str(not_a_dir) in reasons[0] and 'File exists' in reasons[0], reasons
    assert out.count('Caught exception') == 1, out  # the one line, nothing else failed
    assert 'escalating to' not in out, out
    assert not run.left_behind(), out


# --- bridge.launch.py ------------------------------------------------------------------

def test_bridge_launch_publishes_without_rviz2(launch, counter):
    """The default (rviz auto) works where rviz2 is missing: one note, clouds, clean exit."""
    sub = counter(POINTS)
    have_rviz = plans.rviz_installed()
    output_port, point_port = free_ports(2)
    run = launch('bridge.launch.py', 'simulate:=true', f'sim_points:={SIM_POINTS}',
                 f'output_port:={output_port}', f'point_port:={point_port}',
                 *(['rviz:=false'] if have_rviz else []))  # no window in a test
    run.wait_for(lambda: sub.count >= 10, START_TIMEOUT_S, '10 clouds')
    run.interrupt()
    code, took = run.wait_exit()
    assert_clean_exit(run, code, took)
    if not have_rviz:
        notes = [line for line in run.output().splitlines() if 'RViz not started' in line]
        assert len(notes) == 1, run.output()
        assert 'rviz2 is not installed' in notes[0] and 'rviz2' in notes[0].split('install')[-1]


def test_bridge_launch_rviz_true_without_rviz2_fails_before_starting(launch):
    if plans.rviz_installed():
        pytest.skip('rviz2 is installed here: rviz:=true would start it')
    run = launch('bridge.launch.py', 'simulate:=true', 'rviz:=true')
    code, _ = run.wait_exit(timeout=START_TIMEOUT_S)
    out = run.output()
    assert code != 0, out
    errors = [line for line in out.splitlines() if '[ERROR]' in line]
    assert len(errors) == 1 and 'rviz:=true, but rviz2 is not installed' in errors[0], out
    assert 'process started' not in out, out
    assert not run.left_behind(0.5), out


def test_killed_launch_leaves_no_process(launch):
    """SIGKILL of ``ros2 launch`` alone: its processes stop by themselves (orphan guard)."""
    output_port, point_port = free_ports(2)
    run = launch('bridge.launch.py', 'simulate:=true', 'rviz:=false',
                 f'sim_points:={SIM_POINTS}', f'output_port:={output_port}',
                 f'point_port:={point_port}')
    run.wait_line('points: connected to ws://')
    run.track()
    assert len(run.pids) >= 2, run.pids  # simulator and bridge
    run.proc.kill()
    run.proc.wait(10)
    assert not run.left_behind(EXIT_TIMEOUT_S), run.tail()
