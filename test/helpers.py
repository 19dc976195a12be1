# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""What the tests share: which parts of a ROS 2 installation are here; polling; ports.

On a machine with PyPI wheels only, tests that need rosbag2_py, launch, the ``ros2``
CLI or this package installed by colcon are skipped. In CI's run inside the real ROS 2
stack (``SENSR_ROS_STACK=required``) they are never skipped: a missing part makes them
fail, so that run proves what it claims to.
"""

from __future__ import annotations

from collections.abc import Callable
import importlib.util
import os
import shutil
import socket
import time

import pytest

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
