# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Finding and removing Fast DDS shared-memory segments left by dead processes.

Every participant with the large-data profile maps a 268 MB segment in /dev/shm
(``fastdds_<id>`` on Fast DDS 3.x, ``fastrtps_<id>`` on 2.x). A process that exits
without destroying its participant (SIGKILL, a crash, ``os._exit``) leaves it there,
and Fast DDS does not reclaim data segments: on a machine that restarts recorders for
days, /dev/shm (RAM) fills up. The owner holds a lock on ``<segment>_el`` while alive,
which is how ``fastdds shm clean`` tells stale segments from live ones; this module
does the same for machines without the Fast DDS tools.

Usage: ``shm_clean [--dry-run]``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import fcntl
import os
from pathlib import Path
import re
import sys
import time

SHM_DIR = Path('/dev/shm')
# Data segments only: port segments are small and Fast DDS reclaims them itself.
_SEGMENT = re.compile(r'^(fastdds|fastrtps)_[0-9a-f]{16}$')
# A segment is created before its lock is taken: younger ones are left alone.
MIN_AGE_S = 10.0


@dataclass(frozen=True)
class Segment:
    """A stale segment.

    Attributes:
        path: The segment file.
        size: Its size in bytes.

    """

    path: Path
    size: int


def _is_locked(lock_path: Path) -> bool:
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases a lock just taken
    return False


def stale_segments(directory: Path = SHM_DIR, min_age_s: float = MIN_AGE_S) -> list[Segment]:
    """List the Fast DDS data segments whose owner is gone.

    Args:
        directory: Where the segments are.
        min_age_s: Segments modified more recently are skipped.

    Returns:
        The stale segments; empty where the directory does not exist.

    """
    found = []
    now = time.time()
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    for path in entries:
        if not _SEGMENT.match(path.name):
            continue
        lock = path.with_name(path.name + '_el')
        try:
            stat = path.stat()
            if now - max(stat.st_mtime, lock.stat().st_mtime) < min_age_s:
                continue
        except FileNotFoundError:
            continue
        if not _is_locked(lock):
            found.append(Segment(path, stat.st_size))
    return found


def remove_stale_segments(directory: Path = SHM_DIR,
                          min_age_s: float = MIN_AGE_S) -> list[Segment]:
    """Delete the stale Fast DDS data segments and their lock files.

    Args:
        directory: Where the segments are.
        min_age_s: Segments modified more recently are kept.

    Returns:
        The segments removed.

    """
    removed = []
    for segment in stale_segments(directory, min_age_s):
        try:
            segment.path.unlink()
        except OSError:
            continue  # another cleaner was first, or not ours to delete
        segment.path.with_name(segment.path.name + '_el').unlink(missing_ok=True)
        removed.append(segment)
    return removed


def describe(segments: list[Segment]) -> str:
    """Summarise segments as 'N segments, X MB'."""
    return f'{len(segments)} segments, {sum(s.size for s in segments) / 1e6:.0f} MB'


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``shm_clean``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dry-run', action='store_true', help='only list what is stale')
    parser.add_argument('--dir', type=Path, default=SHM_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dry_run:
        segments = stale_segments(args.dir)
        for segment in segments:
            print(f'{segment.path}  {segment.size} bytes')
        print(f'stale: {describe(segments)}')
    else:
        print(f'removed: {describe(remove_stale_segments(args.dir))}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
