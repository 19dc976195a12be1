# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""What the tests share: which parts of a ROS 2 installation are here; polling; ports;
a bridge node in a test's executor; child processes; the wire scanner against protobuf.

On a machine with PyPI wheels only, tests that need rosbag2_py, launch, the ``ros2``
CLI or this package installed by colcon are skipped. In CI's run inside the real ROS 2
stack (``SENSR_ROS_STACK=required``) they are never skipped: a missing part makes them
fail, so that run proves what it claims to.
"""

from __future__ import annotations

from collections.abc import Callable
import importlib.util
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from types import ModuleType

from google.protobuf.message import DecodeError as PbDecodeError
import psutil
import pytest

from sensr_bridge.errors import DecodeError
from sensr_bridge.sensr import protocol, wire

ROS_STACK_REQUIRED = os.environ.get('SENSR_ROS_STACK') == 'required'
"""Set by .ci/run inside ../shared/ros2v: every part below must be present."""


def _importable(*modules: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in modules)


def package_installed() -> bool:
    """Tell whether sensr_bridge is installed in a sourced colcon workspace (ament index)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        get_package_share_directory('sensr_bridge')
    except (ImportError, LookupError, OSError):  # OSError: AMENT_PREFIX_PATH unset
        return False
    return True


HAVE_ROSBAG2_PY = _importable('rosbag2_py')
HAVE_LAUNCH = _importable('launch', 'launch_ros', 'launch_testing')
HAVE_ROS2_CLI = shutil.which('ros2') is not None
HAVE_VISION_MSGS = _importable('vision_msgs')


def needs(what: str, available: bool) -> pytest.MarkDecorator:
    """Mark a test that needs a part of a ROS 2 installation.

    Args:
        what: The part, as the skip reason names it (e.g. 'rosbag2_py').
        available: Whether it is here.

    Returns:
        A skip mark when the part is missing, unless ``SENSR_ROS_STACK=required``:
        then the test runs (and fails on the missing part).

    """
    return pytest.mark.skipif(not available and not ROS_STACK_REQUIRED,
                              reason=f'{what} is not installed (it comes with a ROS 2 '
                                     'installation, e.g. ../shared/ros2v)')


def require(module: str, mark: pytest.MarkDecorator) -> ModuleType:
    """Import a part of a ROS 2 installation that a test module needs at its top.

    Args:
        module: The module to import (e.g. 'launch_testing').
        mark: The ``needs`` mark of that part.

    Returns:
        The module. Where ``mark`` would skip tests, the whole test module is skipped
        (with its reason) instead; under ``SENSR_ROS_STACK=required`` a missing module
        fails its collection.

    """
    if mark.args[0]:
        pytest.skip(mark.kwargs['reason'], allow_module_level=True)
    return importlib.import_module(module)


NEEDS_ROSBAG2_PY = needs('rosbag2_py', HAVE_ROSBAG2_PY)
NEEDS_LAUNCH = needs('launch, launch_ros and launch_testing', HAVE_LAUNCH)
NEEDS_ROS2_CLI = needs('the ros2 command line', HAVE_ROS2_CLI)
NEEDS_VISION_MSGS = needs('vision_msgs', HAVE_VISION_MSGS)
NEEDS_INSTALLED_PACKAGE = needs('sensr_bridge built and sourced (colcon build)',
                                package_installed())


def wait_until(condition: Callable[[], object], timeout: float = 10.0,
               interval: float = 0.02) -> bool:
    """Poll a condition that has no event to wait on (the ROS graph, counters, files).

    Returns:
        True once ``condition()`` is true, False when ``timeout`` seconds passed first.

    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def free_ports(count: int) -> list[str]:
    """Return ``count`` TCP ports of 127.0.0.1 that were free a moment ago, as strings."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(('127.0.0.1', 0))
        return [str(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class LogSpy:
    """Stands in for a node's logger: records every line and forwards it."""

    def __init__(self, logger: object) -> None:
        self._logger = logger
        self.lines: list[tuple[str, str]] = []

    # One call site per severity: rclpy refuses a call site whose severity changes.
    def info(self, text: str, **kwargs: object) -> object:
        self.lines.append(('info', text))
        return self._logger.info(text, **kwargs)

    def warning(self, text: str, **kwargs: object) -> object:
        self.lines.append(('warning', text))
        return self._logger.warning(text, **kwargs)

    def error(self, text: str, **kwargs: object) -> object:
        self.lines.append(('error', text))
        return self._logger.error(text, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self._logger, name)

    def count(self, level: str, needle: str = '') -> int:
        """Lines of ``level`` that contain ``needle``."""
        return sum(1 for lv, text in self.lines if lv == level and needle in text)


# --- a bridge node in a test's executor ------------------------------------------------

def start_bridge(context, executor, sim, **params):
    """Add an unconfigured bridge node (namespace sensr) for ``sim`` to ``executor``."""
    from rclpy.parameter import Parameter

    from sensr_bridge.nodes.bridge import BridgeNode

    overrides = [Parameter('output_port', value=sim.output_port),
                 Parameter('point_port', value=sim.point_port),
                 Parameter('autostart', value=False), Parameter('stats_log_period', value=0.0)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = BridgeNode(namespace='sensr', context=context, parameter_overrides=overrides)
    executor.add_node(node)
    return node


def recorder_node(context, executor, out_dir, name='bag', **params):
    """Add an unconfigured recorder node (namespace sensr, python writer) to ``executor``."""
    from rclpy.parameter import Parameter

    from sensr_bridge.nodes.recorder import RecorderNode

    overrides = [Parameter('output_dir', value=str(out_dir)), Parameter('bag_name', value=name),
                 Parameter('writer_backend', value='python'), Parameter('autostart', value=False),
                 Parameter('discovery_period', value=0.1), Parameter('drain_timeout', value=0.5),
                 Parameter('batch_max_delay', value=0.05), Parameter('stats_log_period', value=0.0)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = RecorderNode(namespace='sensr', context=context, parameter_overrides=overrides)
    executor.add_node(node)
    return node


def written(node, topic='/sensr/chatter'):
    """Messages of ``topic`` the recorder ``node`` has written."""
    stats = node.queue_stats()
    return stats.topics[topic].written_messages if stats and topic in stats.topics else 0


def received(node, topic='/sensr/chatter'):
    """Messages of ``topic`` the recorder ``node`` has received."""
    stats = node.queue_stats()
    return stats.topics[topic].received_messages if stats and topic in stats.topics else 0

# --- child processes ----------------------------------------------------------------------

PY = sys.executable
# A ROS domain of their own: DDS entities left in the pytest process by in-process tests
# must not match (and be counted as) the subscribers of these processes.
_SESSION_DOMAIN = int(os.environ.get('ROS_DOMAIN_ID', '0'))
ENV = {**os.environ, 'PYTHONUNBUFFERED': '1',
       'ROS_DOMAIN_ID': str(random.choice([d for d in range(1, 201) if d != _SESSION_DOMAIN]))}


class Proc:
    """A child process whose merged output is read line by line on a thread."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str] | None = None, **popen):
        """Start ``cmd`` with ``env`` (default ``ENV``: a ROS domain of its own)."""
        self.name = name
        self.popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=ENV if env is None else env, umask=0o022,
                                      **popen)
        self.pid = self.popen.pid
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.eof = False
        self.exited_at: float | None = None
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._wait, daemon=True).start()

    def _read(self):
        for line in self.popen.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def _wait(self):
        self.popen.wait()
        with self.cond:
            self.exited_at = time.monotonic()
            self.cond.notify_all()

    @property
    def output(self) -> str:
        with self.cond:
            return ''.join(self.lines)

    def wait_line(self, pattern: str | re.Pattern, timeout: float = 30.0,
                  accept: Callable[[re.Match], bool] = lambda _m: True,
                  since: int = 0) -> re.Match:
        """Wait for an output line matching ``pattern`` (and ``accept``); fail on exit.

        Lines before the ``since``-th are not looked at.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = since
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match and accept(match):
                        return match
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    pytest.fail(f'{self.name}: no line matching {regex.pattern!r} '
                                f'({"exited" if self.eof else "timeout"}):\n{self.output[-4000:]}')
                self.cond.wait(left)

    def ask(self, command: str, pattern: str | re.Pattern, timeout: float = 30.0) -> re.Match:
        """Write ``command`` as a line to stdin, wait for a line matching ``pattern`` after it.

        Started with ``stdin=subprocess.PIPE``. Only the answer counts: the same answer to
        an earlier command is not taken for this one's.
        """
        with self.cond:
            since = len(self.lines)
        self.popen.stdin.write(command + '\n')
        self.popen.stdin.flush()
        return self.wait_line(pattern, timeout, since=since)

    def wait_exit(self, timeout: float) -> int:
        with self.cond:
            if not self.cond.wait_for(lambda: self.exited_at is not None, timeout):
                pytest.fail(f'{self.name} did not exit within {timeout} s:\n'
                            f'{self.output[-4000:]}')
            self.cond.wait_for(lambda: self.eof, 5.0)
        return self.popen.returncode

    def kill_tree(self):
        """Last-resort cleanup after a failed test: SIGKILL the process and its children."""
        try:
            procs = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        self.popen.wait(10)


# --- the wire scanner against protobuf -------------------------------------------------------

def unknown_count(message) -> int:
    try:
        from google.protobuf import unknown_fields
    except ImportError:  # protobuf < 4.22
        return len(message.UnknownFields())
    return len(unknown_fields.UnknownFieldSet(message))


def parse_or_none(cls, data: bytes):
    try:
        return cls.FromString(data)
    except PbDecodeError:
        return None


def assert_same_as_protobuf(data: bytes | bytearray | memoryview) -> None:
    """The scanner agrees with protobuf on ``data``: same rejection or same content."""
    raw = bytes(data)
    expected = parse_or_none(protocol.PointResult, raw)
    try:
        view = wire.scan_point_result(data)
    except DecodeError as exc:
        rejected = exc
    else:
        rejected = None
    if rejected is not None:
        assert rejected.kind == 'malformed'
        assert expected is None, f'protobuf parses what the scanner rejects: {rejected}'
        return
    assert expected is not None, 'the scanner accepts what protobuf rejects'
    assert view.uid == expected.uid
    assert view.unknown_fields == unknown_count(expected)
    assert len(view.clouds) == len(expected.points)
    for found, cloud in zip(view.clouds, expected.points, strict=True):
        assert found.type == cloud.type
        assert found.id == cloud.id
        for name in ('points', 'intensities'):
            offset, length = getattr(found, name)
            assert 0 <= offset and offset + length <= len(raw)
            assert raw[offset:offset + length] == getattr(cloud, name)
        assert found.unknown_fields == unknown_count(cloud)
