# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Freed 18 MB message buffers are reused, not faulted in afresh for every message."""

import os
import subprocess
import sys

# As in the recorder: executor threads take each message into a middleware buffer and
# copy it into a bytes object, the writer thread frees it later.
CHILD = """
import queue, resource, sys, threading
from concurrent.futures import ThreadPoolExecutor
from sensr_bridge import malloc
if sys.argv[1] == 'tuned':
    assert malloc.keep_freed_buffers()
source = bytearray(18_432_000)
pending = queue.Queue(maxsize=8)
def write():
    while pending.get() is not None:
        pass
def take(_):
    buffer = bytearray(source)
    pending.put(bytes(buffer))
writer = threading.Thread(target=write)
writer.start()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
with ThreadPoolExecutor(2) as executor:
    list(executor.map(take, range(200)))
pending.put(None)
writer.join()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_')}
    out = subprocess.run([sys.executable, '-c', CHILD, mode], capture_output=True, text=True,
                         check=True, env=env)
    return int(out.stdout)


def test_tuned_malloc_reuses_message_buffers():
    untuned, tuned = faults('default'), faults('tuned')
    print(f'page faults for 200 x 2 x 18 MB: default {untuned}, tuned {tuned}')
    # 400 fresh 18 MB buffers would be 1.8 M faults; reused ones fault only at warm-up
    # (8 to 10 buffers in flight).
    assert tuned < 5_000 * 12
    assert tuned < untuned / 3


def test_user_malloc_settings_are_kept(monkeypatch):
    from sensr_bridge import malloc

    monkeypatch.setenv('MALLOC_ARENA_MAX', '4')
    assert not malloc.keep_freed_buffers()
