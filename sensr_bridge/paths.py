# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Locating the package's config files, installed (colcon) or in a source checkout."""

from __future__ import annotations

import os
from pathlib import Path

DDS_PROFILE = 'fastdds_large_data.xml'
DDS_PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')
"""Humble and Jazzy (Fast DDS 2.x) read the first, Kilted (Fast DDS 3.x) the second."""


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


def dds_environment() -> dict[str, str]:
    """Return the environment variables that apply the large-data DDS profile.

    Variables the user already set are kept.
    """
    profile = str(config_dir() / DDS_PROFILE)
    return {name: os.environ.get(name, profile) for name in DDS_PROFILE_VARIABLES}
