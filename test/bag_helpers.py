# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Bag helpers of the tests: reference messages and QoS for rosbags, mcap chunk records,
the real ``ros2 bag info`` / ``ros2 bag play`` with a subscriber that counts, and what the
launch tests check of a run (``test_ros2_launch.py`` and the launch_testing modules)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
import json
import os
from pathlib import Path
import re
import signal
import struct
import subprocess
import threading
import time
import unittest

from helpers import wait_until
import psutil
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

from sensr_bridge.bag.base import QosDesc, TopicInfo
from sensr_bridge.bag.typedefs import typestore
from sensr_bridge.launching import plans
from sensr_bridge.process import environment

_INFINITE = QosTime(9223372036, 854775807)


def rosbags_qos(qos: QosDesc) -> Qos:
    """The rosbags ``Qos`` of a QoS description (infinite times, automatic liveliness)."""
    return Qos(
        QosHistory[qos.history.upper()], qos.depth,
        QosReliability[qos.reliability.upper()], QosDurability[qos.durability.upper()],
        _INFINITE, _INFINITE, QosLiveliness.AUTOMATIC, _INFINITE, False,
    )


COUNTER = TopicInfo('/sensr/counter', 'std_msgs/msg/UInt32')


def string_cdr(text: str) -> bytes:
    """A std_msgs/String in CDR, serialized by rosbags."""
    store = typestore()
    msg = store.types['std_msgs/msg/String'](data=text)
    return bytes(store.serialize_cdr(msg, 'std_msgs/msg/String'))


def uint32_cdr(value: int) -> bytes:
    """A std_msgs/UInt32 in CDR, serialized by rosbags."""
    store = typestore()
    msg = store.types['std_msgs/msg/UInt32'](data=value)
    return bytes(store.serialize_cdr(msg, 'std_msgs/msg/UInt32'))


def chunk_compressions(path: Path) -> list[str]:
    """The compression named by every chunk record of an mcap file, in file order."""
    data = path.read_bytes()
    names, offset = [], 8  # after the magic
    while offset + 9 <= len(data):
        opcode, length = struct.unpack_from('<BQ', data, offset)
        if opcode == 0x02:  # footer
            break
        if opcode == 0x06:  # chunk: start, end, uncompressed size, crc, compression
            (size,) = struct.unpack_from('<I', data, offset + 9 + 28)
            names.append(data[offset + 9 + 32:offset + 9 + 32 + size].decode())
        offset += 9 + length
    return names


# --- ros2 bag info / play, and a subscriber that counts what play delivers ---------------

POINTS = f'/{plans.DEFAULT_NAMESPACE}/points'


class CloudCounter:
    """A reliable KEEP_ALL PointCloud2 subscriber in this process (rclpy)."""

    def __init__(self, topic):
        import rclpy
        from rclpy.event_handler import SubscriptionEventCallbacks
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import PointCloud2

        # conftest put the large-data profile into the environment before rclpy loaded:
        # with Fast DDS defaults clouds from another process do not arrive.
        assert all(os.environ.get(k) == v for k, v in environment.dds_environment().items())
        self.count = 0
        self.cond = threading.Condition()
        self.matched = threading.Event()
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('launch_test_counter', context=self.context)
        self.node.create_subscription(
            PointCloud2, topic, self._got,
            QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE),
            raw=True, event_callbacks=SubscriptionEventCallbacks(
                matched=lambda info: info.current_count and self.matched.set()))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def _spin(self):
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.1)

    def _got(self, _data):
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait_count(self, count, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= count, timeout)

    def call(self, service_type, name, timeout=30.0, attempts=6):
        """Call an idempotent service (empty request) until it answers (bounded).

        A request sent right after ``wait_for_service`` can go unanswered: the server's
        reply writer may not have matched this client's reader yet (CI: the player's
        ``resume`` never answered in 30 s). So the request is sent again.
        """
        client = self.node.create_client(service_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f'no service {name}'
        for _ in range(attempts):
            future = client.call_async(service_type.Request())
            if wait_until(future.done, timeout / attempts, 0.02):
                return future.result()
            client.remove_pending_request(future)
        raise AssertionError(f'{name} did not answer {attempts} requests in {timeout} s')

    def close(self):
        import rclpy

        self._stop.set()
        self._spinner.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def bag_info_count(bag, topic):
    """Messages of ``topic`` in ``bag`` as the real ``ros2 bag info`` prints them."""
    info = subprocess.run(['ros2', 'bag', 'info', str(bag)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert info.returncode == 0, info.stdout + info.stderr
    match = re.search(rf'Topic: {re.escape(topic)} \| Type: [^|]+\| Count: (\d+)', info.stdout)
    assert match, info.stdout
    return int(match.group(1)), info.stdout


@contextlib.contextmanager
def counting() -> Iterator[Callable[..., CloudCounter]]:
    """Make CloudCounters of a topic (``POINTS`` by default); all closed at the end."""
    counters = []

    def make(topic=POINTS):
        counters.append(CloudCounter(topic))
        return counters[-1]

    try:
        yield make
    finally:
        for made in counters:
            made.close()


def play_and_count(bag, expected, counter, topic=POINTS):
    """``ros2 bag play`` the clouds (``topic``) of ``bag`` to a subscriber; return what it received.

    The player starts paused and is resumed only once the subscriber matched its
    publisher (its recorded QoS is reliable and volatile: what it publishes before the
    match is not delivered), and waits for every cloud to be acknowledged before it exits.
    """
    sub = counter(topic)
    from rosbag2_interfaces.srv import Resume

    play = subprocess.Popen(
        ['ros2', 'bag', 'play', '--start-paused', '--disable-keyboard-controls', '--topics',
         topic, '--rate', '4', '--wait-for-all-acked', '10000', str(bag)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, **environment.dds_environment()})
    try:
        assert sub.matched.wait(60), 'the player never matched the subscriber'
        sub.call(Resume, '/rosbag2_player/resume')
        out, _ = play.communicate(timeout=120)
    finally:
        if play.poll() is None:
            os.killpg(play.pid, signal.SIGKILL)
            play.wait()
    assert play.returncode == 0, out
    sub.wait_count(expected, 10)  # the last acknowledged clouds may still be in the executor
    return sub.count, out


# --- launch tests: what they check of a run of the launch files ---------------------------

SIM_POINTS = '20000'  # 400 KB clouds: what is checked does not depend on their size
RECORD_S = 8.0  # after the bridge connected (startup takes 3-10 s on a loaded machine)
START_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 30.0  # less than the recorder's sigterm_timeout: no escalation allowed
BAD_OUTPUT = ('Traceback', 'Caught exception', 'escalating to', 'Exception ignored')
"""Never in the output of a launch that ran and stopped cleanly."""


def first_index(text, needle):
    index = text.find(needle)
    assert index >= 0, f'{needle!r} not in the output'
    return index


def assert_clean_output(out):
    for bad in BAD_OUTPUT:
        assert bad not in out, f'{bad!r} in the output:\n{out[-8000:]}'


def assert_start_order(out, topic=POINTS):
    """Recorder configured (bag open), bridge configured, recorder subscribed to the clouds,
    and only then the bridge connected to SENSR: the bag misses nothing at the start."""
    order = [first_index(out, line) for line in (
        'recording to ', 'configured: SENSR', f'recording {topic} ', 'points: connected to')]
    assert order == sorted(order), out[:6000]


def assert_recorded_every_cloud(stats, bags, storage, counter, topic=POINTS):
    """The one bag in ``bags`` holds every cloud the bridge counted (``stats``, its
    stats_file) as the real ``ros2 bag info`` counts them, and ``ros2 bag play`` delivers
    them all to a subscriber made by ``counter`` (conftest's fixture, or ``counting()``)."""
    published = json.loads(stats.read_text())['counters']['points_published']
    assert published >= 20, published  # ~10 clouds/s once connected
    found = list(bags.glob('*/metadata.yaml'))
    assert len(found) == 1, found
    recorded, info = bag_info_count(found[0].parent, topic)
    assert recorded == published, info
    assert f'Storage id:        {storage}' in info, info
    received, play_out = play_and_count(found[0].parent, recorded, counter, topic)
    assert received == recorded, play_out


class ProcessTree:
    """The processes a launch started and every process below them, to find any left behind.

    Children are remembered while their parents live (``track``): once a parent is gone,
    init adopts its children and only the PIDs remembered tell they were the launch's.
    """

    def __init__(self, group=None):
        self.group = group  # a process group all of whose members belong to the launch
        self.pids = set()

    def track(self, *pids):
        """Remember ``pids`` and every process now below any process remembered."""
        self.pids.update(pids)
        for pid in list(self.pids):
            with contextlib.suppress(psutil.Error):
                self.pids.update(p.pid for p in psutil.Process(pid).children(recursive=True))

    def alive(self, exclude=()):
        """Processes remembered (or of the group) still running, as 'PID: command line'."""
        found = []
        for proc in psutil.process_iter(['pid', 'status', 'cmdline']):
            try:
                in_group = self.group is not None and os.getpgid(proc.pid) == self.group
            except OSError:
                continue
            if (in_group or proc.pid in self.pids) and proc.pid not in exclude and \
                    proc.info['status'] != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])[:200]}")
        return found

    def left_behind(self, timeout=5.0, exclude=()):
        """Processes still running after ``timeout`` seconds."""
        wait_until(lambda: not self.alive(exclude), timeout)
        return self.alive(exclude)


class AfterLaunch(unittest.TestCase):
    """Base of a launch test's post-shutdown tests (``@launch_testing.post_shutdown_test()``).

    The watch is closed before them and the test's scratch directory (``tmp`` in the
    test context, if any) removed after them. Subclass it as ``bag_helpers.AfterLaunch``:
    a name imported into a test module would be collected as a test class of its own.
    """

    @classmethod
    def setUpClass(cls, watch):
        watch.close()

    @classmethod
    def tearDownClass(cls, tmp=None):
        if tmp is not None:
            tmp.cleanup()


class LaunchWatch:
    """A launch_testing run as ``ros2 launch`` shows it: its screen, its shutdown, its processes.

    Made by a launch test's ``generate_test_description``, whose launch description starts
    with ``actions()``, and handed to its tests in the test context. Every line launch
    prints (its own and its processes' output) is kept, as the terminal would show it.
    The active tests call ``testing()`` first (setUpClass): the launch then keeps running,
    even through a shutdown of its own, until they returned, since launch_testing fails a
    run whose launch ended first without running their assertions (a launch that stops by
    itself, as the failures tested do, would race them). The post-shutdown tests call
    ``close()`` first (setUpClass).

    launch_testing runs launch in debug mode whenever pytest's verbosity is not 0 (it
    passes it as ``debug``, and ``-q`` is -1): launch logs every event, asyncio checks
    every callback, and a failure prints its traceback. The watch turns that off, so the
    launch runs as ``ros2 launch`` runs it (in CI, the debug mode tripled its time).
    """

    HOLD_LIMIT_S = 300.0  # the active tests are bounded well below this

    def __init__(self):
        import logging

        import launch.logging

        launch.logging.launch_config.level = logging.INFO  # ros2 launch's default
        self.lines = []
        self.processes = ProcessTree()
        self.stopped = threading.Event()
        self.shutdown_reason = None
        self.shutdown_at = self.last_exit_at = None
        self._tester = None
        self._screen = launch.logging.launch_config.get_screen_handler()
        self._screen.addFilter(self)

    def filter(self, record):
        """Keep a line launch prints (the screen handler's filter: sees every record)."""
        self.lines.append(self._screen.format(record))
        return True

    def close(self):
        """Stop keeping lines: the launch is over."""
        self._screen.removeFilter(self)

    @property
    def output(self):
        return '\n'.join(self.lines)

    def tail(self, chars=6000):
        return self.output[-chars:]

    def actions(self):
        """Launch actions that watch the run and keep it running until the tests returned."""
        from launch.actions import OpaqueFunction, RegisterEventHandler
        from launch.event_handlers import OnProcessExit, OnProcessStart, OnShutdown

        return [OpaqueFunction(function=lambda context: context.asyncio_loop.set_debug(False)),
                RegisterEventHandler(OnShutdown(on_shutdown=self._on_shutdown)),
                RegisterEventHandler(OnProcessStart(
                    on_start=lambda event, _context: self.processes.track(event.pid))),
                RegisterEventHandler(OnProcessExit(on_exit=self._on_exit)),
                OpaqueFunction(function=self._hold)]

    def _on_shutdown(self, event, _context):
        self.processes.track()  # children started since the tests last looked
        self.shutdown_reason = event.reason
        self.shutdown_at = time.monotonic()
        self.stopped.set()

    def _on_exit(self, _event, _context):
        self.last_exit_at = time.monotonic()

    def _hold(self, context):
        # A future of the launch context: launch runs until it is done, shutdown or not.
        loop = context.asyncio_loop
        held = loop.create_future()
        deadline = time.monotonic() + self.HOLD_LIMIT_S

        def look():
            tester = self._tester
            if (tester is not None and not tester.is_alive()) or time.monotonic() > deadline:
                held.set_result(None)
            else:
                loop.call_later(0.05, look)

        look()
        context.add_completion_future(held)

    def testing(self):
        """Register the calling thread as the one running the active tests."""
        self._tester = threading.current_thread()

    def wait_for(self, condition, timeout, what):
        """Poll ``condition`` (bounded) while the launch runs; fail if it stops first."""
        def ready():
            self.processes.track()
            return condition() or self.stopped.is_set()

        assert wait_until(ready, timeout), f'no {what} within {timeout} s:\n{self.tail()}'
        assert not self.stopped.is_set(), \
            f'launch stopped before {what} ({self.shutdown_reason}):\n{self.tail()}'

    def wait_line(self, text, timeout=START_TIMEOUT_S):
        self.wait_for(lambda: any(text in line for line in self.lines), timeout, repr(text))

    def run_for(self, seconds):
        """Let it run this long (failing at once if it stops)."""
        end = time.monotonic() + seconds
        self.wait_for(lambda: time.monotonic() >= end, seconds + 1, 'the end')

    def assert_stopped_cleanly(self, proc_info):
        """Every process exited 0 in time after the shutdown, nothing failed, none is left."""
        from launch_testing.asserts import assertExitCodes

        assertExitCodes(proc_info)
        assert self.shutdown_at is not None, 'the launch never shut down'
        took = (self.last_exit_at or self.shutdown_at) - self.shutdown_at
        assert took < EXIT_TIMEOUT_S, took
        assert_clean_output(self.output)
        assert not self.processes.left_behind(), self.tail()
