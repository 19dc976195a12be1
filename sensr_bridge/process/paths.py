# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Locating the package's config files (installed by colcon, or in a checkout) and the distro."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

# rclpy's major version per distro, for a venv of PyPI wheels where ROS_DISTRO is unset.
_RCLPY_MAJOR_DISTRO = {3: 'humble', 4: 'iron', 5: 'iron', 6: 'iron', 7: 'jazzy', 8: 'kilted',
                       9: 'kilted'}


def config_dir() -> Path:
    """Return the directory of the package's config files.

    Raises:
        FileNotFoundError: Neither an installed share directory nor a checkout has it.

    """
    checkout = Path(__file__).resolve().parents[2] / 'config'
    if checkout.is_dir():
        return checkout
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory('sensr_bridge')) / 'config'
    except (ImportError, LookupError) as exc:
        msg = 'cannot find the sensr_bridge config directory'
        raise FileNotFoundError(msg) from exc


def ros_distro() -> str:
    """Return the ROS 2 distro in use: ``ROS_DISTRO``, else the distro of rclpy's version.

    Returns:
        'humble', 'jazzy', 'kilted', ... ('rolling' past the known versions, '' when
        neither is known).

    """
    distro = os.environ.get('ROS_DISTRO', '').strip()
    if distro:
        return distro
    try:
        major = int(importlib.metadata.version('rclpy').split('.')[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return ''
    return _RCLPY_MAJOR_DISTRO.get(major, 'rolling' if major > 9 else '')
