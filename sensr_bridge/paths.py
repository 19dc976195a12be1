# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Locating the package's config files, installed (colcon) or in a source checkout."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

DDS_PROFILE = 'fastdds_large_data.xml'
DDS_RECEIVE_PROFILE = 'fastdds_recorder.xml'
"""For a process that receives clouds and publishes small messages only (the recorder)."""
DDS_PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')
"""Humble and Jazzy (Fast DDS 2.x) read the first, Kilted (Fast DDS 3.x) the second."""

FAST_DDS_2_DISTROS = frozenset({'humble', 'iron', 'jazzy'})
"""Distros on Fast DDS 2.x; Fast DDS 3 warns that FASTRTPS_DEFAULT_PROFILES_FILE is deprecated."""

# rclpy's major version per distro, for a venv of PyPI wheels where ROS_DISTRO is unset.
_RCLPY_MAJOR_DISTRO = {3: 'humble', 4: 'iron', 5: 'iron', 6: 'iron', 7: 'jazzy', 8: 'kilted',
                       9: 'kilted'}


def config_dir() -> Path:
    """Return the directory of the package's config files.

    Raises:
        FileNotFoundError: Neither an installed share directory nor a checkout has it.

    """
    checkout = Path(__file__).resolve().parent.parent / 'config'
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


def dds_environment(*, publishes_clouds: bool = True) -> dict[str, str]:
    """Return the environment variable that applies the large-data DDS profile.

    Only the variable the distro's Fast DDS reads is set, so nothing warns at start. A
    profile the user already gave in either variable is kept.

    Args:
        publishes_clouds: False for a process that only receives clouds (the recorder on
            its own): its profile has a 4 MiB shared-memory segment instead of 256 MiB,
            which the process would carry in its RSS for nothing.

    """
    legacy, current = DDS_PROFILE_VARIABLES
    name = legacy if ros_distro() in FAST_DDS_2_DISTROS else current
    given = (os.environ.get(name) or os.environ.get(current) or os.environ.get(legacy))
    if given and Path(given).name not in (DDS_PROFILE, DDS_RECEIVE_PROFILE):
        return {name: given}
    directory = Path(given).parent if given else config_dir()
    return {name: str(directory / (DDS_PROFILE if publishes_clouds else DDS_RECEIVE_PROFILE))}
