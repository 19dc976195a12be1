# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Choosing a bag writer: rosbag2_py's where it is importable, else this package's own.

Apart from :mod:`sensr_bridge.bag.base`, which the backends build on, so that no module
of the package imports one that imports it back.
"""

from __future__ import annotations

from typing import Literal

from sensr_bridge.bag.backends.mcap_writer import McapWriter
from sensr_bridge.bag.backends.rosbag2py_writer import Rosbag2PyWriter
from sensr_bridge.bag.backends.sqlite3_writer import Sqlite3Writer
from sensr_bridge.bag.base import BagWriter, StorageOptions
from sensr_bridge.errors import ConfigError

Backend = Literal['auto', 'rosbag2_py', 'python']


def rosbag2_py_available() -> bool:
    """Tell whether ``import rosbag2_py`` works.

    Returns:
        True if rosbag2_py can be imported.

    """
    try:
        import rosbag2_py  # noqa: F401
    except ImportError:
        return False
    return True


def create_writer(options: StorageOptions, backend: Backend = 'auto') -> BagWriter:
    """Create a writer for ``options``.

    Args:
        options: Where and how to write.
        backend: 'rosbag2_py' (ROS 2's own writer), 'python' (sqlite3 and mcap writers
            of this package, no ROS needed), or 'auto': rosbag2_py when importable, else
            python.

    Returns:
        An unopened writer.

    Raises:
        ConfigError: Unknown backend, or 'rosbag2_py' requested but not importable.

    """
    if backend not in ('auto', 'rosbag2_py', 'python'):
        msg = f"backend must be 'auto', 'rosbag2_py' or 'python', not {backend!r}"
        raise ConfigError(msg)
    if backend == 'rosbag2_py' or (backend == 'auto' and rosbag2_py_available()):
        return Rosbag2PyWriter(options)
    if options.storage_id == 'mcap':
        return McapWriter(options)
    return Sqlite3Writer(options)
