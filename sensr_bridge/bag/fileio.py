# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""File I/O helpers of the bag writers: errors of a full device, kernel writeback."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3

from sensr_bridge.errors import BagError, StorageFullError


def bag_error(msg: str, err: BaseException) -> BagError:
    """The error to raise for ``err``: StorageFullError when the device is full.

    Args:
        msg: The message, saying what failed.
        err: The sqlite3 or OS error.

    Returns:
        StorageFullError or BagError with ``msg``.

    """
    return StorageFullError(msg) if is_storage_full(err) else BagError(msg)


def is_storage_full(exc: BaseException) -> bool:
    """Tell whether ``exc`` reports a full device or quota.

    Args:
        exc: An exception from sqlite3 or the OS.

    Returns:
        True for ENOSPC/EDQUOT and sqlite's SQLITE_FULL.

    """
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        return (getattr(exc, 'sqlite_errorcode', None) == sqlite3.SQLITE_FULL
                or 'disk is full' in str(exc))
    return False


def start_writeback(fd: int) -> None:
    """Have the kernel start writing a file's dirty pages now and drop its clean ones.

    Called after every committed batch. Left alone, a recorder's dirty pages pile up
    until the kernel flushes them in bursts, and a write that touches a page being
    flushed waits for the burst: the writer stalled for up to 1.3 s at 30 clouds/s
    (measured; 87 ms at most with this call). A bag is not read back while recording,
    so caching it only takes memory from everything else. Errors are ignored: this is
    an optimisation, and some file systems do not support the advice.

    Args:
        fd: A descriptor of the file (any mode).

    """
    with contextlib.suppress(OSError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
