# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The user's command for real: ``ros2 launch`` as a subprocess, stopped as Ctrl+C stops it.

``ros2 launch sensr_bridge record.launch.py simulate:=true`` (separate processes, sqlite3)
runs in a session of its own with a pseudo-terminal as stdin (so launch behaves as in a
terminal: it leaves SIGINT to the terminal, which sends it to the whole foreground
process group) and is stopped with ``os.killpg(pgid, SIGINT)``. It must exit in time,
without a traceback, and leave no process behind: every PID that was a child of the
launch (and every process of its group) must be gone. The recording is checked with the
real ``ros2 bag info`` against the bridge's own count (its ``stats_file``) and played
back with ``ros2 bag play`` to a subscriber in this process. A second run is SIGKILLed:
its processes must stop by themselves (the orphan guard). Waiting is done by polling a
condition with a bound (log line, file, process state).

Everything else the launch files do runs on launch_testing, in this process
(test_launch_record.py, test_launch_bridge.py, test_launch_failures.py); a launch that
has to die cannot run there.

Needs launch, the ros2 CLI and sensr_bridge built and sourced (colcon build); skipped
without them, never in CI's real-stack run (SENSR_ROS_STACK=required).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time

from bag_helpers import (
    EXIT_TIMEOUT_S,
    RECORD_S,
    SIM_POINTS,
    START_TIMEOUT_S,
    ProcessTree,
    assert_clean_output,
    assert_recorded_every_cloud,
    assert_start_order,
)
from helpers import NEEDS_INSTALLED_PACKAGE, NEEDS_LAUNCH, NEEDS_ROS2_CLI, free_ports, wait_until
import psutil
import pytest
import yaml

from sensr_bridge.launching import plans
from sensr_bridge.process import environment

pytestmark = [NEEDS_LAUNCH, NEEDS_ROS2_CLI, NEEDS_INSTALLED_PACKAGE]

NAMESPACE = plans.DEFAULT_NAMESPACE


class Launch:
    """``ros2 launch`` in its own session; output in a file; its processes tracked."""

    def __init__(self, log, launch_file, *arguments):
        self.log = log
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
        self.processes = ProcessTree(group=self.pgid)

    @property
    def pids(self):
        return self.processes.pids

    def output(self):
        return self.log.read_text(errors='replace')

    def track(self):
        """Remember every process below the launch (called while polling)."""
        self.processes.track(self.proc.pid, *(
            int(pid) for pid in re.findall(r'process started with pid \[(\d+)\]', self.output())))
        self.pids.discard(self.proc.pid)

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
        return self.processes.left_behind(timeout, exclude={self.proc.pid})

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


def test_record_launch_records_every_cloud(launch, counter, tmp_path):
    """Simulator -> bridge -> recorder for ~10 s, Ctrl+C; the bag holds every cloud published."""
    stats = tmp_path / 'bridge_stats.json'
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump({f'/{NAMESPACE}/{plans.BRIDGE_NAME}': {
        'ros__parameters': {'stats_file': str(stats)}}}))
    output_port, point_port = free_ports(2)
    run = launch('record.launch.py', 'simulate:=true', f'sim_points:={SIM_POINTS}',
                 f'output_port:={output_port}', f'point_port:={point_port}',
                 f'output_dir:={tmp_path / "bags"}', 'storage:=sqlite3', 'composed:=false',
                 f'params_file:={params}')
    run.wait_line('points: connected to ws://')
    run.run_for(RECORD_S)
    run.interrupt()
    code, took = run.wait_exit()
    out = run.output()
    assert code == 0, f'exit {code}:\n{run.tail()}'
    assert took < EXIT_TIMEOUT_S, took
    assert_clean_output(out)
    assert not run.left_behind(), run.tail()
    assert_start_order(out)
    assert_recorded_every_cloud(stats, tmp_path / 'bags', 'sqlite3', counter)


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
