# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""End-to-end benchmark: simulator -> bridge -> subscriber or recorder, in real processes.

Modes (``python -m sensr_bridge.bench MODE ...``; ``--help`` on each):

``bridge``
    SENSR simulator (this process) -> ``bridge_node`` (a process) -> a raw subscriber (a
    process, reliable or best-effort like RViz). Counts clouds sent / received / published
    / delivered, latency from the simulator's send time to the subscriber, and checks
    sample clouds bit-exact against what the simulator sent.
``recorder``
    A publisher process of 14.7 MB PointCloud2 messages (RELIABLE, depth 10) ->
    ``recorder_node`` (a process, ``--writer-backend`` python or rosbag2_py), or
    ``ros2 bag record`` where installed (``--recorder ros2bag``). Lossless when the bag
    holds every message published. ``--matrix`` runs every combination of ``--recorders``,
    ``--storages`` and ``--rates`` and prints one markdown table of them.
``e2e``
    Simulator -> bridge -> recorder as separate processes, or ``--composed`` (both nodes
    in one ``record`` process). Verifies the bag: counts per topic equal to what was
    published and a sample of clouds bit-exact. ``--soak`` splits the bag every
    ``--split`` seconds, verifies each closed split, deletes it (``--keep`` to keep)
    and keeps running totals, so long runs do not fill the disk.

``--writer-backend`` (e2e, recorder) is the recorder node's ``writer_backend``, ``--compression``
(e2e, recorder) its mcap chunk ``compression``.
``--ramp RATE,RATE,...`` (bridge, e2e, recorder) runs each rate for ``--duration`` and
reports the highest rate with zero loss. ``--baselines`` (e2e, recorder) measures, in the
same run, the same bytes written raw to disk and inserted into sqlite3 with the same
pragmas. Every run prints a progress line each second, a table at the end, and saves
``result.json`` and ``plot.png`` (throughput per stage and RSS over time, drops marked)
in ``--out``. RSS and CPU time are sampled for every process and its children. The
processes of one invocation share a ROS domain of their own (random, unless
``ROS_DOMAIN_ID`` is set).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
import itertools
import json
import os
from pathlib import Path
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any
import zlib

import numpy as np
import psutil

from sensr_bridge.bag.base import COMPRESSIONS
from sensr_bridge.bag.factory import rosbag2_py_available
from sensr_bridge.convert import cdr
from sensr_bridge.process import environment, malloc, shm
from sensr_bridge.sim.config import SimulatorConfig
from sensr_bridge.sim.server import Simulator

SENSR_POINTS = 921_512
# Bytes right after a cloud's header stamp (frame id, fields, first points): they tell which
# simulator frame it is, and a bag reader gets them without reading the whole cloud.
ID_WINDOW = slice(12, 12 + 4096)
CLOUD_TOPIC = '/sensr/points'


CHILD_ROLES: dict[str, environment.Role] = {'_listen': 'receiver', '_publish': 'publisher'}
"""The environment role of the benchmark's own child processes, by mode."""


# --- child roles (run as ``python -m sensr_bridge.bench _listen|_publish``) --------------


def _child_ros(args: argparse.Namespace) -> tuple[Any, Any, threading.Event]:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = rclpy.create_node(f'sensr_bench_{args.role}')
    return rclpy, node, stop


def _qos(reliability: str, depth: int) -> Any:
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                      else ReliabilityPolicy.BEST_EFFORT)


def _say(**data: Any) -> None:
    print(json.dumps(data), flush=True)


def listen_main(args: argparse.Namespace) -> int:
    """Subscribe raw to the cloud topic; log receive time, stamp and ID_WINDOW CRC per cloud."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import PointCloud2

    rclpy, node, stop = _child_ros(args)
    records: list[tuple[int, int, int]] = []
    samples = Path(args.samples) if args.samples else None

    def got(data: bytes) -> None:
        now = time.time_ns()
        records.append((now, cdr.header_stamp_ns(data) or 0, zlib.crc32(data[ID_WINDOW])))
        if samples is not None and len(records) % args.sample_every == 1:
            (samples / f'{len(records) - 1}.cdr').write_bytes(data)

    def diagnostics(msg: DiagnosticArray) -> None:
        # The bridge reports its cloud subscribers: once it sees this one, nothing is missed.
        for status in msg.status:
            if status.name.endswith('pipeline') and any(
                    kv.key.startswith('subscribers_') and int(kv.value) > 0
                    for kv in status.values):
                _say(event='matched')

    node.create_subscription(PointCloud2, args.topic, got, _qos(args.reliability, 10), raw=True)
    node.create_subscription(DiagnosticArray, '/diagnostics', diagnostics, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    _say(event='started')
    next_report = time.monotonic() + 1.0
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.05)
        if time.monotonic() >= next_report:
            next_report += 1.0
            _say(event='progress', received=len(records))
    Path(args.out).write_text(json.dumps({'records': records}))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def publish_main(args: argparse.Namespace) -> int:
    """Publish ``count`` SENSR-sized clouds at ``rate`` once a subscriber has matched."""
    from sensor_msgs.msg import PointCloud2

    from sensr_bridge.bench.storage import pointcloud2_cdr

    rclpy, node, stop = _child_ros(args)
    message = bytearray(pointcloud2_cdr(args.points))
    pub = node.create_publisher(PointCloud2, CLOUD_TOPIC, _qos(args.reliability, 10))
    _say(event='started')
    while not stop.is_set() and pub.get_subscription_count() < 1:
        stop.wait(0.02)
    _say(event='matched')
    period = 1.0 / args.rate
    start = time.monotonic()
    published = late = 0
    while published < args.count and not stop.is_set():
        delay = start + published * period - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        elif delay < -period:
            late += 1
        struct.pack_into('<iI', message, 4, *divmod(time.time_ns(), 1_000_000_000))
        pub.publish(bytes(message))
        published += 1
        if published % max(1, int(args.rate)) == 0:
            _say(event='progress', published=published)
    with suppress(AttributeError):
        pub.wait_for_all_acked(rclpy.duration.Duration(seconds=10))
    _say(event='done', published=published, late=late,
         seconds=round(time.monotonic() - start, 3))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# --- process handling ---------------------------------------------------------------


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
        """Start ``cmd`` (environment ``env``, default ``_child_env()``).

        Its stdout and stderr go to ``run_dir/<name>.log``.
        """
        self.name = name
        self.log = run_dir / f'{name}.log'
        self.events: dict[str, dict[str, Any]] = {}
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=env or _child_env())
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


def _child_env(*, publishes_clouds: bool = True) -> dict[str, str]:
    env = environment.child_environment('publisher' if publishes_clouds else 'receiver')
    env.setdefault('ROS_LOCALHOST_ONLY', '1')
    env['PYTHONUNBUFFERED'] = '1'
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _ros_args(params: dict[str, Any]) -> list[str]:
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


# --- expected clouds and matching -------------------------------------------------------


@dataclass
class Expected:
    """What the bridge must publish for each precomputed simulator frame."""

    clouds: list[bytes]
    ids: dict[int, int]  # CRC of a cloud's ID_WINDOW -> slot

    @classmethod
    def of(cls, sim: Simulator) -> Expected:
        """Decode every precomputed frame as the bridge does (default parameters)."""
        from sensr_bridge.bench.storage import decoded_clouds

        clouds = decoded_clouds(sim)
        ids = {zlib.crc32(c[ID_WINDOW]): i for i, c in enumerate(clouds)}
        if len(ids) < len(clouds):
            msg = 'simulator frames share their first points: the benchmark cannot tell them apart'
            raise RuntimeError(msg)
        return cls(clouds, ids)

    def same(self, slot: int, data: bytes) -> bool:
        """Whether ``data`` equals the expected cloud of ``slot``, header stamp aside."""
        want = self.clouds[slot]
        return len(data) == len(want) and data[:4] == want[:4] and data[12:] == want[12:]


def match_sends(records: list[tuple[int, int, int]], sent: dict[int, int],
                expected: Expected) -> list[tuple[int, int]]:
    """Pair each received cloud with the simulator frame it came from.

    A cloud's content tells its frame modulo the precomputed frame count; the frame is the
    latest one of that residue sent before the cloud's stamp and after the previous match,
    which is certain while the pipeline lags less than ``frames_precomputed`` frames.

    Returns:
        ``(seq, receive_ns)`` per identified cloud.

    """
    period = len(expected.clouds)
    order = sorted(sent.items())
    pairs = []
    last = -1
    for recv_ns, stamp_ns, cloud_id in records:
        slot = expected.ids.get(cloud_id)
        if slot is None:
            continue
        limit = stamp_ns or recv_ns
        best = None
        for seq, send_ns in order:
            if send_ns > limit:
                break
            if seq > last and seq % period == slot:
                best = seq
        if best is not None:
            pairs.append((best, recv_ns))
            last = best
    return pairs


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max in milliseconds (zeros when empty)."""
    if not values:
        return {'p50_ms': 0.0, 'p99_ms': 0.0, 'max_ms': 0.0}
    data = sorted(values)
    q = statistics.quantiles(data, n=100, method='inclusive') if len(data) > 1 else data * 99
    return {'p50_ms': round(q[49] * 1e3, 2), 'p99_ms': round(q[98] * 1e3, 2),
            'max_ms': round(data[-1] * 1e3, 2)}


# --- modes ----------------------------------------------------------------------------


@dataclass
class Run:
    """One benchmark run: where its files go and what it measured."""

    mode: str
    rate: float
    run_dir: Path
    result: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    label: str = ''  # what tells it from the other runs of a matrix


def _simulator(args: argparse.Namespace, rate: float, ports: tuple[int, int]) -> Simulator:
    return Simulator(SimulatorConfig(
        output_port=ports[0], point_port=ports[1], rate_hz=rate, points=args.points,
        objects=args.objects, duration_s=args.duration, start_after_clients=2,
        max_queue_frames=args.sim_queue))


def _bridge_params(args: argparse.Namespace, ports: tuple[int, int], stats: Path) -> dict:
    extra = dict(item.split('=', 1) for item in args.bridge_param)
    return {'host': '127.0.0.1', 'output_port': ports[0], 'point_port': ports[1],
            'decode_workers': args.workers, 'stats_file': stats, 'stats_log_period': 0.0,
            **extra}


def _run_sim(sim: Simulator, args: argparse.Namespace, children: list[Child]) -> None:
    """Run the simulator to its end, then wait until every frame left its socket."""
    sim.start()
    if not sim.wait_for_clients(2, timeout=30):
        msg = 'the bridge did not connect to the simulator within 30 s'
        raise RuntimeError(msg)
    while not sim.wait(0.5):
        for child in children:
            if child.popen.poll() is not None:
                msg = f'{child.name} exited early (code {child.popen.poll()}); see {child.log}'
                raise RuntimeError(msg)

    def flushed(stats: Any) -> bool:
        point = stats.ports['point']
        return point.clients == 0 or point.frames_sent + point.frames_dropped >= stats.frames

    sim.wait_for_stats(flushed, timeout=10)


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


def _settle(read: Any, timeout: float = 10.0, quiet: float = 1.0) -> None:
    """Wait until the value returned by ``read()`` stops changing for ``quiet`` s."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.1)
        now = read()
        if now != last:
            last, since = now, time.monotonic()


def run_bridge(args: argparse.Namespace, rate: float, run_dir: Path) -> Run:
    """Simulator -> bridge process -> raw subscriber process."""
    ports = (_free_port(), _free_port())
    stats_file = run_dir / 'bridge_stats.json'
    listen_out = run_dir / 'listener.json'
    samples = run_dir / 'samples'
    samples.mkdir()
    sim = _simulator(args, rate, ports)
    expected = Expected.of(sim)
    subscribe = args.subscriber_qos != 'none'
    children = []
    if subscribe:
        listener = Child('listener', [
            sys.executable, '-m', 'sensr_bridge.bench', '_listen', '--topic', CLOUD_TOPIC,
            '--reliability', args.subscriber_qos, '--out', str(listen_out), '--samples',
            str(samples), '--sample-every', str(max(1, int(rate * args.duration) // 4))],
            run_dir)
        listener.wait_event('started', 30)
        children.append(listener)
    bridge = Child('bridge', [sys.executable, '-m', 'sensr_bridge.nodes.bridge',
                              *_ros_args(_bridge_params(args, ports, stats_file))], run_dir)
    children.insert(0, bridge)

    def delivered() -> int:
        return children[-1].events.get('progress', {}).get('received', 0) if subscribe else 0

    try:
        if subscribe:
            children[-1].wait_event('matched', 30)
        monitor = Monitor(children, lambda: {'sent': sim.stats().ports['point'].frames_sent,
                                             'delivered': delivered()}, args.quiet)
        _run_sim(sim, args, children)
        if subscribe:
            _settle(delivered)
        monitor.stop()
    finally:
        codes = {c.name: c.interrupt() for c in children}
        sim_stats = sim.stats()
        sent_log = sim.sent_log()
        sim.stop()
    bridge_stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    records = json.loads(listen_out.read_text())['records'] if listen_out.exists() else []
    counts = bridge_stats.get('counters', {})
    pairs = match_sends(records, sent_log, expected)
    latency = [(recv - sent_log[seq]) / 1e9 for seq, recv in pairs]
    checked = bad = 0
    for path in sorted(samples.glob('*.cdr')):
        data = path.read_bytes()
        slot = expected.ids.get(zlib.crc32(data[ID_WINDOW]))
        checked += 1
        bad += slot is None or not expected.same(slot, data)
    point = sim_stats.ports['point']
    run = Run('bridge', rate, run_dir, samples=monitor.samples)
    run.result = {
        'rate_hz': rate, 'points': args.points, 'duration_s': args.duration,
        'decode_workers': args.workers, 'subscriber_qos': args.subscriber_qos,
        'sent': point.frames_sent, 'sim_dropped': point.frames_dropped,
        'sim_missed_ticks': sim_stats.missed_ticks,
        'received': counts.get('points_received', 0),
        'published': counts.get('points_published', 0),
        'delivered': len(records),
        'bridge_drops': {k: v for k, v in counts.items() if 'dropped' in k or '_bad_' in k},
        'latency_send_to_subscriber': percentiles(latency), 'latency_matched': len(pairs),
        'bridge_publish_latency': bridge_stats.get('publish_latency', {}),
        'bit_exact_checked': checked, 'bit_exact_failed': bad,
        'exit_codes': codes, 'exit_seconds': {c.name: c.exit_seconds for c in children},
        'tracebacks': sum(c.traceback_lines() for c in children),
        'bridge_cpu_ms_per_frame': _per_frame(monitor.samples, 'bridge', 'sent'),
        'rss_mb': _rss_summary(monitor.samples, children),
    }
    sent = run.result['sent']
    run.result['lossless'] = (sent > 0 and run.result['sim_dropped'] == 0
                              and run.result['published'] == sent and bad == 0
                              and (run.result['delivered'] == sent or not subscribe))
    return run


ROS2_BAG_RECORD_OPTIONS = ('--disable-keyboard-controls',)
"""What ``ros2 bag record`` is given besides ``-s``, ``-o`` and ``--topics``: keyboard
controls off (they would read the benchmark's terminal; recording is unchanged). The rest
is its default: ``--max-cache-size`` 100 MiB (double-buffered), discovery every 100 ms,
no compression, no storage preset (sqlite3: journal_mode MEMORY, synchronous OFF)."""


def _ros2_bag_record(args: argparse.Namespace, bag_dir: Path) -> tuple[list[str], dict]:
    """The ``ros2 bag record`` command for the cloud topic, and its environment.

    The environment is every child's (the same DDS profile) less the ``MALLOC_*`` values
    of the benchmark's own restart (``malloc.restart_with_tuned_malloc``): ros2 bag record
    runs with glibc's defaults, as it does for a user; our recorder tunes its own.
    """
    cmd = ['ros2', 'bag', 'record', '-s', args.storage, '-o', str(bag_dir),
           '--topics', CLOUD_TOPIC, *ROS2_BAG_RECORD_OPTIONS]
    env = {k: v for k, v in _child_env().items() if malloc.ENVIRONMENT.get(k) != v}
    return cmd, env


def writer_backend(requested: str) -> str:
    """The recorder node's backend for ``requested`` ('auto': rosbag2_py when importable)."""
    if requested != 'auto':
        return requested
    return 'rosbag2_py' if rosbag2_py_available() else 'python'


def run_recorder(args: argparse.Namespace, rate: float, run_dir: Path) -> Run:
    """Publisher process -> recorder process (ours, or ``ros2 bag record``).

    The publisher starts publishing once it sees the recorder's subscription (a poll of
    its subscription count, bounded here by 60 s), whichever recorder it is.
    """
    bag_dir = run_dir / 'bag'
    stats_file = run_dir / 'recorder_stats.json'
    count = round(rate * args.duration)
    ros2bag = args.recorder == 'ros2bag'
    if ros2bag:
        cmd, env = _ros2_bag_record(args, bag_dir)
    else:
        params = {'output_dir': run_dir, 'bag_name': 'bag', 'storage': args.storage,
                  'writer_backend': args.writer_backend, 'topics': f'[{CLOUD_TOPIC}]',
                  'stats_file': stats_file, 'storage_preset': args.preset,
                  'compression': args.compression, 'stats_log_period': 0.0}
        cmd = [sys.executable, '-m', 'sensr_bridge.nodes.recorder', *_ros_args(params)]
        env = _child_env(publishes_clouds=False)
    recorder = Child('recorder', cmd, run_dir, env)
    publisher = Child('publisher', [sys.executable, '-m', 'sensr_bridge.bench', '_publish',
                                    '--rate', str(rate), '--count', str(count), '--points',
                                    str(args.points)], run_dir)
    children = [publisher, recorder]
    try:
        publisher.wait_event('matched', 60)
        monitor = Monitor(children, lambda: {
            'published': publisher.events.get('progress', {}).get('published', 0)}, args.quiet)
        done = publisher.wait_event('done', args.duration * 4 + 60)
        monitor.stop()
    finally:
        publisher.interrupt()
        code = recorder.interrupt(60)
    written = _bag_counts(bag_dir).get(CLOUD_TOPIC, 0)
    rec_stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    queue = rec_stats.get('queue', {})
    topic = queue.get('topics', {}).get(CLOUD_TOPIC, {})
    run = Run('recorder', rate, run_dir, samples=monitor.samples)
    published = done.get('published', 0)
    run.result = {
        'rate_hz': rate, 'points': args.points, 'duration_s': args.duration,
        'recorder': args.recorder,
        'writer_backend': None if ros2bag else writer_backend(args.writer_backend),
        'recorder_cmd': ' '.join(cmd) if ros2bag else None, 'storage': args.storage,
        'compression': args.compression,
        'preset': 'ros2 bag record default' if ros2bag else args.preset or 'default',
        'published': published,
        'publisher_late_ticks': done.get('late', 0),
        'recorder_received': topic.get('received_messages'), 'written': written,
        'recorder_dropped': topic.get('dropped', {}),
        'write_latency': queue.get('write_latency', {}),
        'commit_latency': queue.get('commit_latency', {}),
        'stamp_to_commit': queue.get('stamp_latency', {}),
        'exit_code': code, 'exit_seconds': recorder.exit_seconds,
        'tracebacks': recorder.traceback_lines(),
        'recorder_cpu_ms_per_msg': _per_frame(monitor.samples, 'recorder', 'published'),
        'recorder_cpu_ms_per_msg_to_exit': _per_frame(
            monitor.samples, 'recorder', 'published', (recorder.exit_cpu_s, published)),
        'rss_mb': _rss_summary(monitor.samples, children),
        'lossless': published == count and written == published,
    }
    if not args.keep:
        shutil.rmtree(bag_dir, ignore_errors=True)
    return run


def run_e2e(args: argparse.Namespace, rate: float, run_dir: Path) -> Run:
    """Simulator -> bridge -> recorder (separate processes or composed) -> verified bag."""
    ports = (_free_port(), _free_port())
    bridge_stats, rec_stats = run_dir / 'bridge_stats.json', run_dir / 'recorder_stats.json'
    bag_dir = run_dir / 'bag'
    sim = _simulator(args, rate, ports)
    expected = Expected.of(sim)
    rec_params = {'output_dir': run_dir, 'bag_name': 'bag', 'storage': args.storage,
                  'writer_backend': args.writer_backend,
                  'storage_preset': args.preset, 'stats_file': rec_stats,
                  'compression': args.compression,
                  'stats_log_period': 0.0, 'max_bagfile_duration': int(args.split)}
    if args.composed:
        cmd = [sys.executable, '-m', 'sensr_bridge.cli.record', '--host', '127.0.0.1',
               '--output-port', str(ports[0]), '--point-port', str(ports[1]),
               '--output-dir', str(run_dir), '--bag-name', 'bag', '--storage', args.storage,
               '--writer-backend', args.writer_backend, '--compression', args.compression,
               '--decode-workers', str(args.workers), '--split-duration', str(int(args.split)),
               '--stats-dir', str(run_dir)]
        if args.preset:
            cmd += ['--storage-preset', args.preset]
        children = [Child('record', cmd, run_dir)]
    else:
        recorder = Child('recorder', [sys.executable, '-m', 'sensr_bridge.nodes.recorder',
                                      *_ros_args(rec_params)], run_dir,
                         _child_env(publishes_clouds=False))
        bridge = Child('bridge', [sys.executable, '-m', 'sensr_bridge.nodes.bridge',
                                  *_ros_args(_bridge_params(args, ports, bridge_stats))],
                       run_dir)
        children = [bridge, recorder]
    verifier = SplitVerifier(bag_dir, expected, delete=args.soak and not args.keep)
    try:
        # The simulator starts only once the recorder records the bridge's topics, so the
        # bag can hold every frame (the bridge reconnects until the simulator listens).
        for topic in (CLOUD_TOPIC, '/sensr/output_raw'):
            children[-1].wait_line(f'recording {topic} ', 60)
        monitor = Monitor(children, lambda: {
            'sent': sim.stats().ports['point'].frames_sent,
            'sim_dropped': sim.stats().ports['point'].frames_dropped,
            **(_record_progress(children[0]) if args.composed else {}),
            'verified_clouds': verifier.totals.get(CLOUD_TOPIC, 0)}, args.quiet)
        _run_sim_with(sim, args, children, verifier)
        _settle(lambda: _dir_size(bag_dir))
        monitor.stop()
    finally:
        codes = {c.name: c.interrupt(60) for c in children}
        sim_stats = sim.stats()
        sent_log = sim.sent_log()
        sim.stop()
    verifier.finish()
    bstats = json.loads(bridge_stats.read_text()) if bridge_stats.exists() else {}
    rstats = json.loads(rec_stats.read_text()) if rec_stats.exists() else {}
    counts = bstats.get('counters', {})
    queue = rstats.get('queue', {})
    pairs = match_sends(verifier.records, sent_log, expected)
    transit = [(recv - sent_log[seq]) / 1e9 for seq, recv in pairs]
    point = sim_stats.ports['point']
    published = {CLOUD_TOPIC: counts.get('points_published', 0),
                 '/sensr/output_raw': counts.get('output_published', 0)}
    run = Run('e2e', rate, run_dir, samples=monitor.samples)
    run.result = {
        'rate_hz': rate, 'points': args.points, 'duration_s': args.duration,
        'composed': args.composed, 'storage': args.storage, 'preset': args.preset or 'default',
        'compression': args.compression,
        'writer_backend': writer_backend(args.writer_backend),
        'decode_workers': args.workers, 'sent': point.frames_sent,
        'sim_dropped': point.frames_dropped, 'received': counts.get('points_received', 0),
        'published': published, 'in_bag': verifier.totals, 'splits': verifier.splits,
        'bridge_drops': {k: v for k, v in counts.items() if 'dropped' in k or '_bad_' in k},
        'recorder_dropped': {k: v.get('dropped', {}) for k, v in
                             queue.get('topics', {}).items() if v.get('dropped')},
        'latency_send_to_bridge_stamp': percentiles(transit),
        'latency_stamp_to_commit': _ms(queue.get('stamp_latency', {})),
        'bit_exact_checked': verifier.checked, 'bit_exact_failed': verifier.failed,
        'bytes_to_disk_mb_per_s': round(verifier.bytes / 1e6 / max(args.duration, 1e-9), 1),
        'exit_codes': codes, 'exit_seconds': {c.name: c.exit_seconds for c in children},
        'tracebacks': sum(c.traceback_lines() for c in children),
        'cpu_ms_per_frame': {c.name: _per_frame(monitor.samples, c.name, 'sent')
                             for c in children},
        'rss_mb': _rss_summary(monitor.samples, children),
    }
    sent = point.frames_sent
    run.result['lossless'] = (
        sent > 0 and point.frames_dropped == 0 and published[CLOUD_TOPIC] == sent
        and all(verifier.totals.get(t, 0) == n for t, n in published.items())
        and verifier.failed == 0)
    if not args.keep:
        shutil.rmtree(bag_dir, ignore_errors=True)
    return run


_RECORD_PROGRESS = re.compile(r'clouds received (\d+) published (\d+) \| output published '
                              r'\d+ \| bag written (\d+) dropped (\d+)')


def _record_progress(child: Child) -> dict[str, int]:
    """The pipeline counts of ``record``'s last progress line (one a second).

    So the first seconds of a composed run show where frames went: sent by the
    simulator, received and published by the bridge, written to the bag.
    """
    last = child.last_match(_RECORD_PROGRESS)
    if last is None:
        return {'received': 0, 'published': 0, 'bag_written': 0, 'bag_dropped': 0}
    received, published, written, dropped = map(int, last.groups())
    return {'received': received, 'published': published, 'bag_written': written,
            'bag_dropped': dropped}


def _run_sim_with(sim: Simulator, args: argparse.Namespace, children: list[Child],
                  verifier: SplitVerifier) -> None:
    stop = threading.Event()

    def verify_loop() -> None:
        while not stop.wait(1.0):
            verifier.poll()

    thread = threading.Thread(target=verify_loop, daemon=True)
    thread.start()
    try:
        _run_sim(sim, args, children)
    finally:
        stop.set()
        thread.join()


def _ms(latency: dict[str, float]) -> dict[str, float]:
    return {f'{k[:-2]}_ms': round(v * 1e3, 2) for k, v in latency.items() if k.endswith('_s')}


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob('*') if p.is_file()) if path.exists() else 0


class SplitVerifier:
    """Verifies closed splits (sqlite3 or mcap) of a growing bag, keeping running totals.

    A split is closed once the next one exists (or at :meth:`finish`). Per split: message
    counts per topic, header stamp and ID_WINDOW of every cloud (for latency matching), and the
    first cloud compared bit-exact with what the simulator sent. Compressed mcap chunks are
    read whole by rosbags.
    """

    def __init__(self, bag_dir: Path, expected: Expected, *, delete: bool) -> None:
        """Watch ``bag_dir``; delete verified splits when ``delete``."""
        self.bag_dir = bag_dir
        self.expected = expected
        self.delete = delete
        self.totals: dict[str, int] = {}
        self.records: list[tuple[int, int, int]] = []
        self.splits = 0
        self.checked = self.failed = self.bytes = 0
        self._done: set[str] = set()

    def _files(self) -> list[Path]:
        files = [p for pattern in ('*.db3', '*.mcap') for p in self.bag_dir.glob(pattern)
                 if p.name not in self._done]
        return sorted(files, key=lambda p: int(p.stem.rsplit('_', 1)[-1]))

    def poll(self) -> None:
        """Verify every split that is closed now."""
        files = self._files()
        for path in files[:-1]:
            self._verify(path)

    def finish(self) -> None:
        """Verify the remaining splits (the recorder has closed the bag)."""
        for path in self._files():
            self._verify(path)

    def _verify(self, path: Path) -> None:
        self._done.add(path.name)
        self.bytes += path.stat().st_size
        read = _read_mcap_split if path.suffix == '.mcap' else _read_sqlite3_split
        counts, heads, first = read(path)
        for name, n in counts.items():
            self.totals[name] = self.totals.get(name, 0) + n
        for head in heads:
            stamp = cdr.header_stamp_ns(head) or 0
            # The bridge's stamp is its receive time: pair it with the send time.
            self.records.append((stamp, stamp, zlib.crc32(head[ID_WINDOW])))
        if first is not None:
            slot = self.expected.ids.get(zlib.crc32(first[ID_WINDOW]))
            self.checked += 1
            self.failed += slot is None or not self.expected.same(slot, first)
        self.splits += 1
        if self.delete:
            path.unlink()


Split = tuple[dict[str, int], list[bytes], 'bytes | None']
"""What a split holds: messages per topic, the head of every cloud, the first cloud."""


def _read_sqlite3_split(path: Path) -> Split:
    conn = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
    try:
        topics = dict(conn.execute('SELECT id, name FROM topics'))
        counts = {topics[topic_id]: n for topic_id, n in conn.execute(
            'SELECT topic_id, count(*) FROM messages GROUP BY topic_id')}
        cloud_id = next((i for i, n in topics.items() if n == CLOUD_TOPIC), None)
        if cloud_id is None:
            return counts, [], None
        heads = []
        for (rowid,) in conn.execute(
                'SELECT id FROM messages WHERE topic_id = ? ORDER BY id', (cloud_id,)):
            # Incremental blob I/O reads only the pages holding the window; a substr()
            # in SQL would load the whole 18 MB cloud from disk.
            with conn.blobopen('messages', 'data', rowid, readonly=True) as blob:
                heads.append(blob.read(ID_WINDOW.stop))
        first = conn.execute('SELECT data FROM messages WHERE topic_id = ? ORDER BY id '
                             'LIMIT 1', (cloud_id,)).fetchone()
        return counts, heads, None if first is None else first[0]
    finally:
        conn.close()


def _read_mcap_split(path: Path) -> Split:
    """Counts from the file's statistics (rosbags), clouds through its index when it has one.

    Through the index only the head of each cloud is read; compressed chunks are read
    whole by rosbags.
    """
    from rosbags.rosbag2.storage_mcap import McapReader

    from sensr_bridge.bag import mcap_index

    reader = McapReader(path)
    reader.open()
    try:
        stats = reader.statistics
        names = {cid: channel.topic for cid, channel in reader.channels.items()}
        counts = {names[cid]: n for cid, n in
                  (stats.channel_message_counts.items() if stats else ())}
        clouds = [c for c in reader.connections if c.topic == CLOUD_TOPIC]
        with path.open('rb') as bio:
            index = mcap_index.topic_index(bio, CLOUD_TOPIC)
            if index is not None:
                heads = [mcap_index.read_message(bio, entry, ID_WINDOW.stop)
                         for entry in index]
                first = mcap_index.read_message(bio, index[0]) if index else None
                return counts, heads, first
        heads: list[bytes] = []
        first = None
        # One cloud at a time: a 30 s split holds gigabytes of them.
        for _, _, raw in reader.messages(clouds) if clouds else ():
            first = raw if first is None else first
            heads.append(bytes(raw[:ID_WINDOW.stop]))
        return counts, heads, first
    finally:
        reader.close()


def _bag_counts(bag_dir: Path) -> dict[str, int]:
    """Messages per topic of a finished bag, read with rosbags (an independent reader)."""
    from rosbags.rosbag2 import Reader

    if not (bag_dir / 'metadata.yaml').exists():
        return {}
    with Reader(bag_dir) as reader:
        return {c.topic: c.msgcount for c in reader.connections}


def _per_frame(samples: list[dict[str, Any]], name: str, counter: str,
               end: tuple[float | None, int] | None = None) -> float:
    """CPU milliseconds of a process per message counted by ``counter``, over the run.

    From the first sample that counted a message to the last, or to ``end``: (CPU
    seconds, messages) at the process's exit, which includes its final flush and close.
    """
    live = [s for s in samples if s.get(f'{name}_cpu_s') and s.get(counter)]
    if end is not None and end[0] is not None:
        live.append({f'{name}_cpu_s': end[0], counter: end[1]})
    if len(live) < 2 or live[-1][counter] == live[0][counter]:
        return 0.0
    cpu = live[-1][f'{name}_cpu_s'] - live[0][f'{name}_cpu_s']
    return round(cpu / (live[-1][counter] - live[0][counter]) * 1e3, 2)


def _rss_summary(samples: list[dict[str, Any]], children: list[Child]) -> dict[str, Any]:
    """Per process: RSS after warm-up, at the end, peak, steady, and growth after warm-up.

    Warm-up is the first fifth of the samples (at least two). Steady is the median
    after warm-up; the rate is the least-squares slope over every sample after warm-up:
    a recorder's RSS swings by its queued clouds, and two end points would report those
    swings as growth or shrinkage. ``shm_end_mb`` is the DDS shared memory in the RSS at
    the end (see :meth:`Child.resources`).
    """
    out = {}
    for child in children:
        series = [(s['t'], s[f'{child.name}_rss_mb']) for s in samples
                  if s.get(f'{child.name}_rss_mb')]
        if len(series) < 4:
            continue
        first = min(len(series) - 2, max(2, len(series) // 5))
        warm, end = series[first], series[-1]
        t, rss = np.array(series[first:]).T
        growth = float(np.polyfit(t, rss, 1)[0])
        out[child.name] = {'warm_mb': warm[1], 'end_mb': end[1],
                           'peak_mb': max(v for _, v in series),
                           'steady_mb': round(float(np.median(rss)), 1),
                           'growth_mb_per_s': round(growth, 4),
                           'shm_end_mb': next(
                               (s[f'{child.name}_shm_mb'] for s in reversed(samples)
                                if s.get(f'{child.name}_rss_mb')), 0.0)}
    return out


# --- baselines, ramp, output -------------------------------------------------------------


# Clouds written by each baseline case: the run's recorded clouds, within these bounds
# (the upper one keeps a soak's baselines to about a minute each).
MIN_BASELINE_CLOUDS, MAX_BASELINE_CLOUDS = 60, 600

# The bench_storage pragma set equal to each recorder preset ('' is the default).
BASELINE_SETS = {'': 'TRUNCATE/OFF/64K', 'crash_safe': 'TRUNCATE/OFF/64K',
                 'durable': 'TRUNCATE/FULL/64K', 'resilient': 'WAL/NORMAL',
                 'rosbag2_default': 'MEMORY/OFF'}


def baselines(args: argparse.Namespace, root: Path, count: int) -> list[dict[str, Any]]:
    """Raw disk (fsync'd) and sqlite3 INSERT with the same pragmas, ``count`` clouds.

    As many clouds as the run recorded: 60 would fit in the page cache and measure memory
    speed, where a recording of several GB is paced by the disk.
    """
    from sensr_bridge.bench.storage import run_benchmark

    scratch = root / 'baselines'
    scratch.mkdir()
    try:
        return run_benchmark(scratch, count=count, batch=1, repeat=1,
                             sets=[BASELINE_SETS.get(args.preset, 'TRUNCATE/OFF/64K')])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def versus_baselines(runs: list[Run], rows: list[dict[str, Any]]) -> dict[str, float]:
    """Disk bytes/s of the fastest lossless run against the plain sqlite3 baseline.

    Both of the baseline's rates are compared: "accepted" (until the last INSERT returns,
    as the same pragmas promise nothing more) and "durable" (fsync included).
    """
    lossless = [r for r in runs if r.result['lossless']
                and r.result.get('bytes_to_disk_mb_per_s')]
    plain = next((r for r in rows if r['kind'] == 'plain sqlite'), None)
    if not lossless or plain is None:
        return {}
    ours = max(r.result['bytes_to_disk_mb_per_s'] for r in lossless)
    accepted = plain['accepted_msg_per_s'] * plain['message_bytes'] / 1e6
    return {'lossless_disk_mb_per_s': ours,
            'plain_sqlite_accepted_mb_per_s': round(accepted, 1),
            'plain_sqlite_durable_mb_per_s': round(plain['durable_mb_per_s'], 1),
            'accepted_over_ours': round(accepted / ours, 2),
            'durable_over_ours': round(plain['durable_mb_per_s'] / ours, 2)}


RUNNERS = {'bridge': run_bridge, 'recorder': run_recorder, 'e2e': run_e2e}


def summary_rows(run: Run) -> list[tuple[str, str]]:
    """The headline figures of a run as (name, value) rows."""
    r = run.result
    rows = [('rate', f"{r['rate_hz']} Hz"), ('lossless', str(r['lossless']))]
    for key in ('recorder', 'recorder_cmd', 'writer_backend', 'storage', 'cpu_hog', 'sent',
                'sim_dropped', 'received',
                'published', 'delivered', 'in_bag', 'written',
                'recorder_received', 'bridge_drops', 'recorder_dropped', 'splits',
                'latency_send_to_subscriber', 'latency_send_to_bridge_stamp',
                'latency_stamp_to_commit', 'stamp_to_commit', 'bit_exact_checked',
                'bit_exact_failed', 'bytes_to_disk_mb_per_s', 'bridge_cpu_ms_per_frame',
                'cpu_ms_per_frame', 'recorder_cpu_ms_per_msg', 'recorder_cpu_ms_per_msg_to_exit',
                'rss_mb', 'exit_seconds', 'exit_code', 'tracebacks'):
        if key in r and r[key] not in ({}, None):
            rows.append((key, json.dumps(r[key]) if isinstance(r[key], dict) else str(r[key])))
    return rows


def plot(runs: list[Run], path: Path) -> bool:
    """Throughput per stage and RSS over time per run, drops marked; False without matplotlib."""
    try:
        import matplotlib as mpl
        mpl.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    offset = 0.0
    for run in runs:
        s = run.samples
        if len(s) < 2:
            continue
        t = [x['t'] + offset for x in s]
        name = f"{run.label + ', ' if run.label else ''}{run.rate:g} Hz"
        stages = [k for k in s[0] if k != 't' and not k.endswith(('_rss_mb', '_shm_mb', '_cpu_s'))]
        for key in stages:
            rate = [0.0] + [(b[key] - a[key]) / (b['t'] - a['t']) for a, b in itertools.pairwise(s)]
            axes[0].plot(t, rate, label=f'{key} ({name})')
        for key in (k for k in s[0] if k.endswith('_rss_mb')):
            axes[1].plot(t, [x[key] for x in s], label=f'{key[:-7]} ({name})')
        if not run.result.get('lossless'):
            axes[0].axvspan(t[0], t[-1], color='red', alpha=0.08)
        offset = t[-1] + 1
    axes[0].set_ylabel('messages/s per stage')
    axes[0].set_title(f'sensr_bridge benchmark ({runs[0].mode}); red: run with losses')
    axes[1].set_ylabel('RSS (MB)')
    axes[1].set_xlabel('seconds')
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc='upper left')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


STORAGES = ('sqlite3', 'mcap')
WRITER_BACKENDS = ('auto', 'python', 'rosbag2_py')
RECORDERS = (*WRITER_BACKENDS, 'ros2bag')
"""``--recorders`` values: our recorder_node with that writer backend, or ros2 bag record."""


def _listing(convert: Any, choices: tuple[str, ...] = ()) -> Any:
    """An argparse type: a comma-separated list of ``convert``ed values (of ``choices``)."""
    def parse(text: str) -> list[Any]:
        try:
            items = [convert(item) for item in text.split(',') if item.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        bad = [item for item in items if choices and item not in choices]
        if not items or bad:
            msg = f'{text!r}: expected a comma-separated list' + (
                f" of {', '.join(choices)}" if choices else '')
            raise argparse.ArgumentTypeError(msg)
        return items
    return parse


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject option combinations that mean nothing (exits with a usage error)."""
    axes = [f'--{name}' for name in ('rates', 'storages', 'recorders')
            if getattr(args, name, None)]
    if axes and not args.matrix:
        parser.error(f"{', '.join(axes)} need --matrix")
    if args.matrix and (args.mode != 'recorder' or args.ramp):
        parser.error('--matrix is for the recorder mode, without --ramp')
    if args.recorder == 'ros2bag' and args.mode != 'recorder':
        parser.error('--recorder ros2bag is for the recorder mode')


def _steps(args: argparse.Namespace) -> list[tuple[str, argparse.Namespace, float]]:
    """The runs to make, in order: (label, arguments of the run, rate).

    A ramp or single run: each rate with ``args``. A matrix: every storage, rate and
    recorder, recorders innermost so that those compared run one after another.
    """
    if not args.matrix:
        return [('', args, rate) for rate in args.ramp or [args.rate]]
    recorders = args.recorders or [
        'ros2bag' if args.recorder == 'ros2bag' else args.writer_backend]
    steps = []
    for storage, rate, recorder in itertools.product(
            args.storages or [args.storage], args.rates or [args.rate], recorders):
        ours = recorder != 'ros2bag'
        variant = argparse.Namespace(**{
            **vars(args), 'storage': storage, 'recorder': 'ours' if ours else 'ros2bag',
            'writer_backend': recorder if ours else args.writer_backend})
        steps.append((f'{recorder} {storage}', variant, rate))
    return steps


def matrix_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per recorder run: the figures of the README's comparison table."""
    rows = []
    for run in runs:
        r = run.result
        rss = r['rss_mb'].get('recorder', {})
        p99 = r['stamp_to_commit'].get('p99_s')
        rows.append({
            'recorder': ('ros2 bag record' if r['recorder'] == 'ros2bag'
                         else f"ours ({r['writer_backend']})"),
            'storage': r['storage'], 'rate_hz': r['rate_hz'], 'in_bag': r['written'],
            'published': r['published'], 'lossless': r['lossless'],
            'recorder_cpu_ms_per_cloud': r['recorder_cpu_ms_per_msg_to_exit'],
            'rss_peak_mb': rss.get('peak_mb'), 'rss_steady_mb': rss.get('steady_mb'),
            'stamp_to_commit_p99_ms': round(p99 * 1e3, 1) if p99 else None})
    return rows


def _loss(row: dict[str, Any]) -> str:
    if row['lossless']:
        return ''
    return ' (extra)' if row['in_bag'] > row['published'] else ' (loss)'


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """``matrix_rows`` as a markdown table ('n/a' where a figure is not known)."""
    def cell(value: Any) -> str:
        return 'n/a' if value is None else f'{value:g}' if isinstance(value, float) else str(value)

    lines = ['| recorder | storage | rate (Hz) | in bag / published | recorder CPU (ms/cloud) '
             '| RSS peak / steady (MB) | stamp -> commit p99 (ms) |',
             '| --- | --- | ---: | ---: | ---: | ---: | ---: |']
    lines += [f"| {r['recorder']} | {r['storage']} | {cell(r['rate_hz'])} "
              f"| {r['in_bag']} / {r['published']}{_loss(r)} "
              f"| {cell(r['recorder_cpu_ms_per_cloud'])} "
              f"| {cell(r['rss_peak_mb'])} / {cell(r['rss_steady_mb'])} "
              f"| {cell(r['stamp_to_commit_p99_ms'])} |" for r in rows]
    return '\n'.join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='mode', required=True)
    for mode in RUNNERS:
        p = sub.add_parser(mode)
        add = p.add_argument
        add('--rate', type=float, default=10.0, help='frames (messages) per second')
        add('--ramp', type=_listing(float),
            help='comma-separated rates: the highest lossless one is reported')
        add('--duration', type=float, default=20.0, help='seconds of frames per run')
        add('--points', type=int, default=SENSR_POINTS, help='points per cloud')
        add('--objects', type=int, default=20, help='objects per OutputMessage')
        add('--workers', type=int, default=0, help='bridge decode_workers')
        add('--storage', choices=STORAGES, default='sqlite3')
        add('--preset', default='', help='sqlite3 pragma preset (default: the recorder default)')
        add('--compression', choices=COMPRESSIONS, default='none',
            help='e2e, recorder: mcap chunk compression of our recorder (with --storage mcap)')
        add('--subscriber-qos', choices=('reliable', 'best_effort', 'none'), default='reliable',
            help="bridge: QoS of the subscriber process; 'none': no subscriber")
        add('--recorder', choices=('ours', 'ros2bag'), default='ours',
            help="recorder: our recorder_node, or 'ros2bag': ros2 bag record, its defaults")
        add('--writer-backend', choices=WRITER_BACKENDS, default='auto',
            help="e2e, recorder: the recorder node's writer_backend")
        add('--matrix', action='store_true',
            help='recorder: run every recorder x storage x rate, print one markdown table')
        add('--rates', type=_listing(float), help='--matrix: comma-separated (default: --rate)')
        add('--storages', type=_listing(str, STORAGES),
            help='--matrix: comma-separated (default: --storage)')
        add('--recorders', type=_listing(str, RECORDERS),
            help='--matrix: comma-separated, each ours with that writer backend (auto, python, '
                 'rosbag2_py) or ros2bag (default: --recorder and --writer-backend)')
        add('--composed', action='store_true', help='e2e: bridge and recorder in one process')
        add('--soak', action='store_true', help='e2e: verify and delete splits as they close')
        add('--split', type=float, default=0, help='e2e: split the bag every N seconds')
        add('--keep', action='store_true', help='keep bags and splits')
        add('--baselines', action='store_true', help='also measure raw disk and sqlite3')
        add('--bridge-param', action='append', default=[], metavar='NAME=VALUE',
            help='extra bridge parameter (separate processes only)')
        add('--sim-queue', type=int, default=10,
            help='simulator per-client backlog (frames) before it overflows like SENSR')
        add('--cpu-hog', type=int, default=0, metavar='N',
            help='keep N cores busy with spinning processes during each run (a loaded host)')
        add('--out', default='', help='result directory (default: a new temporary one)')
        add('--quiet', action='store_true', help='no progress lines')
    for role in ('_listen', '_publish'):
        p = sub.add_parser(role)
        p.set_defaults(role=role[1:])
        p.add_argument('--topic', default=CLOUD_TOPIC)
        p.add_argument('--reliability', default='reliable')
        p.add_argument('--out', default='')
        p.add_argument('--samples', default='')
        p.add_argument('--sample-every', type=int, default=100)
        p.add_argument('--rate', type=float, default=10.0)
        p.add_argument('--count', type=int, default=100)
        p.add_argument('--points', type=int, default=SENSR_POINTS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark.

    Returns:
        0 when the last run, one step of a ramp, or every run of a matrix was lossless.

    """
    parser = _parser()
    args = parser.parse_args(argv)
    if argv is None:
        # As the nodes do: the benchmark reads 18 MB clouds back, and its subscriber and
        # publisher processes take them from DDS.
        environment.prepare(CHILD_ROLES.get(args.mode, 'receiver'))
    if args.mode == '_listen':
        return listen_main(args)
    if args.mode == '_publish':
        return publish_main(args)
    _check(parser, args)
    # A domain of its own: a process elsewhere on this host publishing /sensr/points in
    # the same domain (another benchmark, a test) would be recorded and counted too.
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 200)))
    if args.mode == 'e2e' and args.soak and not args.split:
        args.split = 30.0
    root = Path(args.out or tempfile.mkdtemp(prefix=f'sensr_bench_{args.mode}_'))
    root.mkdir(parents=True, exist_ok=True)
    # Segments of dead participants hold RAM that page cache and queues would use.
    removed = shm.remove_stale_segments()
    if removed:
        print(f'removed stale DDS shared memory: {shm.describe(removed)}', flush=True)
    runs: list[Run] = []
    for i, (label, run_args, rate) in enumerate(_steps(args)):
        run_dir = root / f"run{i}_{label.replace(' ', '_') + '_' if label else ''}{rate:g}hz"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir()
        if i:
            os.sync()  # the previous run's writeback is not this run's to pay
        print(f"== {args.mode} {label + ' ' if label else ''}at {rate:g} Hz for "
              f'{args.duration:g} s -> {run_dir}', flush=True)
        with cpu_hogs(args.cpu_hog):
            run = RUNNERS[args.mode](run_args, rate, run_dir)
        run.result['cpu_hog'] = args.cpu_hog
        run.label = label
        runs.append(run)
        for name, value in summary_rows(run):
            print(f'  {name:<30} {value}', flush=True)
        if args.ramp and not run.result['lossless']:
            break
    result: dict[str, Any] = {'mode': args.mode, 'argv': sys.argv[1:] if argv is None else argv,
                              'machine': {'cpus': os.cpu_count(),
                                          'python': sys.version.split()[0],
                                          'ros_domain_id': os.environ['ROS_DOMAIN_ID'],
                                          'stale_shm_removed_mb': round(
                                              sum(s.size for s in removed) / 1e6)},
                              'runs': [{**r.result, 'samples': r.samples} for r in runs]}
    lossless = [r.rate for r in runs if r.result['lossless']]
    if args.matrix:
        result['table'] = matrix_rows(runs)
        table = markdown_table(result['table'])
        (root / 'table.md').write_text(table + '\n')
        print(table, flush=True)
    if args.ramp:
        result['max_lossless_rate_hz'] = max(lossless, default=0.0)
        print(f"max lossless rate: {result['max_lossless_rate_hz']:g} Hz", flush=True)
    if args.baselines:
        recorded = max((r.result.get('in_bag', {}).get(CLOUD_TOPIC, 0) for r in runs
                        if r.result['lossless']), default=0)
        result['baselines'] = baselines(
            args, root, min(max(recorded, MIN_BASELINE_CLOUDS), MAX_BASELINE_CLOUDS))
        for row in result['baselines']:
            print(f"  baseline {row['case']:<16} {row['kind']:<13} "
                  f"{row['accepted_msg_per_s']:6.1f} msg/s accepted, "
                  f"{row['durable_mb_per_s']:5.0f} MB/s durable", flush=True)
        if args.ramp:
            result['versus_baselines'] = versus_baselines(runs, result['baselines'])
            for name, value in result['versus_baselines'].items():
                print(f'  {name:<30} {value}', flush=True)
    (root / 'result.json').write_text(json.dumps(result, indent=1))
    drew = plot(runs, root / 'plot.png')
    print(f"result: {root / 'result.json'}" + (f", plot: {root / 'plot.png'}" if drew else ''),
          flush=True)
    if args.matrix:
        return 0 if len(lossless) == len(runs) else 1
    return 0 if (lossless if args.ramp else runs[-1].result['lossless']) else 1

