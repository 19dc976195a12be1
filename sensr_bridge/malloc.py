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
fixed thresholds keep the buffers mapped and reused; free memory above
``TRIM_THRESHOLD`` still goes back, so a burst does not pin its peak.
"""

from __future__ import annotations

import ctypes
import os

# mallopt parameter numbers (glibc malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 256 << 20
ENVIRONMENT = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_ARENA_MAX')


def keep_freed_buffers() -> bool:
    """Use one malloc arena with fixed thresholds, unless the environment tunes malloc.

    Call it before threads start allocating (later calls do not merge arenas).

    Returns:
        Whether the settings were applied (False without glibc, or when the user's
        ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_ARENA_MAX``
        are to be kept).

    """
    if any(name in os.environ for name in ENVIRONMENT):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    settings = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                (M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    applied = [mallopt(param, value) for param, value in settings]  # each, even after a 0
    return all(applied)
