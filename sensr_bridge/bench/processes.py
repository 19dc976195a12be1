# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The processes of a benchmark run: started, watched, sampled and stopped.

:class:`Child` runs a program with its output in a log file and its JSON lines parsed;
:class:`Monitor` samples every child's RSS and CPU and the stage counters once a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
import json
import os
from pathlib import Path
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import psutil

from sensr_bridge.process import environment


def _rss_shmem_kb(pid: int) -> int:
    """``RssShmem`` of a process in kB (0 where /proc does not give it)."""
    with suppress(OSError), open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith('RssShmem:'):
                return int(line.split()[1])
    return 0


class Child:
    """A benchmark process: output logged to a file, JSON lines parsed, resources sampled."""

    def __init__(self, name: str, cmd: list[str], run_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        """Start ``cmd`` (environment ``env``, default ``child_env()``).

        Its stdout and stderr go to ``run_dir/<name>.log``.
        """
        self.name = name
        self.log = run_dir / f'{name}.log'
        self.events: dict[str, dict[str, Any]] = {}
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=env or child_env())
        self.process = psutil.Process(self.popen.pid)
        self.exit_seconds: float | None = None
        self.exit_cpu_s: float | None = None  # CPU seconds of the process tree as it ended
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        with self.log.open('w') as log:
            for line in self.popen.stdout:
                log.write(line)
                with self._cond:
                    self.lines.append(line)
                    if line.startswith('{'):
                        with suppress(ValueError):
                            data = json.loads(line)
                            self.events[data.get('event', '')] = data
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def last_match(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        """The match of ``pattern`` in the latest output line that has one, or None."""
        with self._cond:
            return next((m for m in map(pattern.search, reversed(self.lines)) if m), None)

    def wait_event(self, event: str, timeout: float) -> dict[str, Any]:
        """Wait for a JSON line ``{"event": event, ...}``.

        Raises:
            RuntimeError: The process ended or the timeout passed first.

        """
        with self._cond:
            ok = self._cond.wait_for(lambda: event in self.events or self.popen.poll()
                                     is not None, timeout)
            if event in self.events:
                return self.events[event]
        msg = (f'{self.name} did not report {event!r} ' +
               (f'(exit {self.popen.poll()})' if ok else f'within {timeout} s') +
               f'; see {self.log}')
        raise RuntimeError(msg)

    def wait_line(self, text: str, timeout: float) -> None:
        """Wait for an output line containing ``text``.

        Raises:
            RuntimeError: The process ended or the timeout passed first.

        """
        with self._cond:
            found = self._cond.wait_for(
                lambda: any(text in line for line in self.lines) or self.popen.poll()
                is not None, timeout)
            if found and any(text in line for line in self.lines):
                return
        msg = f'{self.name} did not print {text!r} within {timeout} s; see {self.log}'
        raise RuntimeError(msg)

    def resources(self) -> tuple[float, float, float]:
        """RSS (MB), its shared-memory part (MB) and CPU seconds of the process and its children.

        Zeros once gone. The shared-memory part (``RssShmem``) is mostly DDS: a participant
        touches its whole transport segment (256 MiB here) when it creates it, and a
        subscriber maps the pages of its publishers' segments as their messages arrive.
        """
        rss = shm = cpu = 0.0
        with suppress(psutil.Error):
            procs = [self.process, *self.process.children(recursive=True)]
            for proc in procs:
                with suppress(psutil.Error):
                    t = proc.cpu_times()
                    cpu += t.user + t.system
                    rss += proc.memory_info().rss / 1e6
                    shm += _rss_shmem_kb(proc.pid) / 1e3
        return rss, shm, cpu

    def interrupt(self, timeout: float = 20.0) -> int:
        """SIGINT the process and wait; returns its exit code (SIGKILL after ``timeout``).

        ``exit_cpu_s`` is its CPU time read once it has exited but before it is reaped
        (a zombie still shows it), so work done while shutting down counts too.
        """
        start = time.monotonic()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        while self.popen.returncode is None and time.monotonic() < start + timeout:
            try:
                if os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    break
            except ChildProcessError:
                break
            time.sleep(0.02)
        self.exit_cpu_s = self.resources()[2] or None
        try:
            code = self.popen.wait(max(0.0, start + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        self.exit_seconds = round(time.monotonic() - start, 3)
        self._reader.join(5)
        return code

    def traceback_lines(self) -> int:
        """Lines of the log that show a traceback or an ignored exception."""
        text = self.log.read_text() if self.log.exists() else ''
        return text.count('Traceback') + text.count('Exception ignored')


def child_env(*, publishes_clouds: bool = True) -> dict[str, str]:
    """A child's environment: its role's (``environment.child_environment``), on loopback."""
    env = environment.child_environment('publisher' if publishes_clouds else 'receiver')
    env.setdefault('ROS_LOCALHOST_ONLY', '1')
    env['PYTHONUNBUFFERED'] = '1'
    return env


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def ros_args(params: dict[str, Any]) -> list[str]:
    """The ``--ros-args`` of a node in namespace /sensr with ``params``."""
    out = ['--ros-args', '-r', '__ns:=/sensr']
    for key, value in params.items():
        if value == '':
            continue  # the node's default; rcl cannot parse an empty value
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out += ['-p', f'{key}:={text}']
    return out


class Monitor:
    """Samples every child's RSS and CPU and the stage counters once a second."""

    def __init__(self, children: list[Child], counters: Any, quiet: bool) -> None:
        """Start sampling; ``counters()`` returns the stage counters to record."""
        self.children = children
        self.counters = counters
        self.quiet = quiet
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            sample: dict[str, Any] = {'t': round(time.monotonic() - self._t0, 2)}
            for child in self.children:
                rss, shm, cpu = child.resources()
                sample[f'{child.name}_rss_mb'] = round(rss, 1)
                sample[f'{child.name}_shm_mb'] = round(shm, 1)
                sample[f'{child.name}_cpu_s'] = round(cpu, 3)
            sample.update(self.counters())
            self.samples.append(sample)
            if not self.quiet:
                stages = ' '.join(f'{k} {v}' for k, v in self.counters().items())
                rss = ' '.join(f'{c.name} {sample[c.name + "_rss_mb"]:.0f}'
                               for c in self.children)
                print(f"[{sample['t']:7.1f} s] {stages} | RSS MB {rss}", flush=True)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


@contextmanager
def cpu_hogs(count: int) -> Iterator[None]:
    """Keep ``count`` cores busy (one spinning process each) while the block runs."""
    hogs = [subprocess.Popen([sys.executable, '-c', 'while True: pass'])
            for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def settle(read: Any, timeout: float = 10.0, quiet: float = 1.0) -> None:
    """Wait until the value returned by ``read()`` stops changing for ``quiet`` s."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.1)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
