# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""The environment of the package's processes, set in this one place.

Two settings must be in a process's environment before it starts its threads: glibc's
malloc variables (:mod:`sensr_bridge.process.malloc`, read when the process starts) and
the Fast DDS profile (read when rclpy creates the DDS participant). Which profile depends
on the process's :data:`Role`. Every program applies them through :func:`prepare` (called
by :func:`sensr_bridge.process.shutdown.run` before the program's module is imported), and
whoever starts a process of the package (the launch files' plan, the benchmark) gives it
:func:`child_environment`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from sensr_bridge.process import malloc, paths

Role = Literal['publisher', 'receiver', 'plain']
"""What a process does with clouds: ``publisher`` (bridge, composed bridge and recorder):
the large-data profile; ``receiver`` (recorder alone, a subscriber): the receive profile;
``plain`` (simulator): no DDS, default malloc."""

DDS_PROFILE = 'fastdds_large_data.xml'
DDS_RECEIVE_PROFILE = 'fastdds_recorder.xml'
"""For a process that receives clouds and publishes small messages only (the recorder)."""
DDS_PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')
"""Humble and Jazzy (Fast DDS 2.x) read the first, Kilted (Fast DDS 3.x) the second."""

FAST_DDS_2_DISTROS = frozenset({'humble', 'iron', 'jazzy'})
"""Distros on Fast DDS 2.x; Fast DDS 3 warns that FASTRTPS_DEFAULT_PROFILES_FILE is deprecated."""


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
    name = legacy if paths.ros_distro() in FAST_DDS_2_DISTROS else current
    given = (os.environ.get(name) or os.environ.get(current) or os.environ.get(legacy))
    if given and Path(given).name not in (DDS_PROFILE, DDS_RECEIVE_PROFILE):
        return {name: given}
    directory = Path(given).parent if given else paths.config_dir()
    return {name: str(directory / (DDS_PROFILE if publishes_clouds else DDS_RECEIVE_PROFILE))}


def prepare(role: Role) -> None:
    """Give this program its environment: first thing in a program, before its imports.

    Restarts the process once with the malloc variables (same PID and arguments; see
    :func:`sensr_bridge.process.malloc.restart_with_tuned_malloc`), then sets the DDS
    profile of ``role``.
    """
    if role == 'plain':
        return
    malloc.restart_with_tuned_malloc()
    os.environ.update(dds_environment(publishes_clouds=role == 'publisher'))


def child_environment(role: Role, base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment for a process of ``role`` started from this one.

    Args:
        role: What the child does with clouds.
        base: The environment to start from (default: this process's).

    Returns:
        ``base`` with the DDS profile of ``role`` and, unless the user tunes malloc
        already, the malloc variables (so a program that is not started through
        :func:`prepare` needs no restart either).

    """
    env = dict(os.environ if base is None else base)
    if role == 'plain':
        return env
    if not any(name in env for name in malloc.ENVIRONMENT):
        env.update(malloc.ENVIRONMENT)
    env.update(dds_environment(publishes_clouds=role == 'publisher'))
    return env
