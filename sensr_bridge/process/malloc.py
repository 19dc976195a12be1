# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Keeping freed message buffers in the process instead of returning them to the kernel.

glibc serves a block above its mmap threshold with a fresh mapping and unmaps it when
freed; both that threshold and the trim threshold (above which free memory at the top of
a heap goes back to the kernel) adapt to the largest block freed so far; and each thread
that allocates under contention gets its own arena, made of heaps of at most 64 MB that
are unmapped once empty. With 18 MB messages taken on executor threads and freed on the
writer thread, buffers kept landing on fresh, zeroed pages: the recorder took 5,900 page
faults per cloud and spent a fifth of its CPU on them (measured at 15 Hz). One arena and
fixed thresholds keep the buffers mapped and reused; ``release_free_memory`` gives back
what a burst left free, so a burst does not pin its peak.

The settings only hold for threads that allocate after they are made: a thread that
already owns an arena keeps it, and later threads share those arenas. Importing numpy
and rclpy starts three threads, so ``mallopt`` in ``main`` came too late: the recorder's
executor threads still built and unmapped 64 MB heaps for every few clouds (measured
with strace). Node programs therefore restart themselves once with the ``MALLOC_*``
variables (``restart_with_tuned_malloc``), which glibc reads before any thread exists:
at 11.4 Hz the recorder's CPU per cloud went from 53 to 35 ms and the soak's stamp ->
commit p99 from 240-554 ms to 118 ms.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from typing import Any

# mallopt parameter numbers (glibc malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 256 << 20
RELEASE_ABOVE = 64 << 20
ENVIRONMENT = {'MALLOC_ARENA_MAX': '1', 'MALLOC_MMAP_THRESHOLD_': str(MMAP_THRESHOLD),
               'MALLOC_TRIM_THRESHOLD_': str(TRIM_THRESHOLD)}
"""The same settings as glibc environment variables, read when a process starts."""


def _user_tuned() -> bool:
    return any(name in os.environ for name in ENVIRONMENT)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks',
        'fordblks', 'keepcost')]


# name: (restype, argtypes) of the glibc functions used here.
_SIGNATURES = {'mallopt': (ctypes.c_int, (ctypes.c_int, ctypes.c_int)),
               'mallinfo2': (_MallInfo2, ()),
               'malloc_trim': (ctypes.c_int, (ctypes.c_size_t,))}


@functools.cache
def _libc(name: str) -> Any:
    """A glibc malloc function with its signature, or None where the C library lacks it."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.restype, function.argtypes = _SIGNATURES[name]
    return function


def restart_with_tuned_malloc() -> None:
    """Re-execute this program once with ``ENVIRONMENT`` set, so every thread shares one arena.

    Call it first thing in a program's ``main``: the process image is replaced (same
    PID, descriptors and arguments), so nothing done before is kept. Returns without
    restarting when the variables are already set (by the first run or by the user), on
    a C library other than glibc, or when the interpreter's command line is unknown.
    """
    if _user_tuned() or platform.libc_ver()[0] != 'glibc' or not getattr(sys, 'orig_argv', None):
        return
    os.environ.update(ENVIRONMENT)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # noqa: S606 (same program)


def keep_freed_buffers() -> bool:
    """Use one malloc arena with fixed thresholds, unless the environment tunes malloc.

    For nodes run where the program cannot restart (``run_nodes`` called from a user's
    own script): it helps the threads started from then on, not those that already
    own an arena.

    Returns:
        Whether the settings were applied (False without glibc, or when the user's
        ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_ARENA_MAX``
        are to be kept).

    """
    mallopt = _libc('mallopt')
    if _user_tuned() or mallopt is None:
        return False
    settings = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                (M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    applied = [mallopt(param, value) for param, value in settings]  # each, even after a 0
    return all(applied)


def release_free_memory(above: int = RELEASE_ABOVE) -> int:
    """Give free heap memory back to the kernel once more than ``above`` bytes are free.

    The trim threshold only returns free memory at the top of the heap. The buffers of a
    backlog (clouds queued while the disk stalls) are freed all over it, so without this
    the RSS steps up with every new backlog and stays there (measured in a 10-minute soak
    at 11.4 Hz: +74 MB twice, +19 MB once). Call it every few seconds: each call also
    returns the few buffers free at that moment, which fault in again when reused
    (4,500 faults, some milliseconds of CPU, per 18 MB buffer).

    Args:
        above: Free bytes (all arenas) beyond which ``malloc_trim(0)`` runs.

    Returns:
        The free bytes found when memory was released, else 0 (also without glibc 2.33+).

    """
    mallinfo2, malloc_trim = _libc('mallinfo2'), _libc('malloc_trim')
    if mallinfo2 is None or malloc_trim is None:
        return 0
    free = mallinfo2().fordblks
    if free <= above:
        return 0
    malloc_trim(0)
    return free
