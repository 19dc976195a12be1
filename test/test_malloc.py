# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Freed 18 MB message buffers are reused, not faulted in afresh for every message."""

import os
import subprocess
import sys

# As in the recorder: threads started by imports (numpy, rclpy) own malloc arenas before
# main runs; executor threads take each message into a middleware buffer and copy it into
# a bytes object, the writer thread frees it later.
CHILD = """
import os, queue, resource, sys, threading
from concurrent.futures import ThreadPoolExecutor
from sensr_bridge.process import malloc
mode = sys.argv[1]
if mode == 'early':
    assert malloc.keep_freed_buffers()
ready = threading.Barrier(4)
def import_thread():
    bytearray(1 << 16)
    ready.wait()
    threading.Event().wait()
for _ in range(3):
    threading.Thread(target=import_thread, daemon=True).start()
ready.wait()
if mode == 'restart':
    print('started', flush=True)
    malloc.restart_with_tuned_malloc()
elif mode == 'late':
    assert malloc.keep_freed_buffers()
source = bytearray(18_432_000)
pending = queue.Queue(maxsize=8)
def write():
    while pending.get() is not None:
        pending.task_done()
def take(_):
    buffer = bytearray(source)
    pending.put(bytes(buffer))
writer = threading.Thread(target=write)
writer.start()
def faults(count):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with ThreadPoolExecutor(2) as executor:
        list(executor.map(take, range(count)))
    pending.join()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults(40)  # warm-up: the buffers in flight are faulted in once in either mode
print(faults(400), os.environ.get('MALLOC_ARENA_MAX'))
pending.put(None)
writer.join()
"""

# An 18 MB buffer is 4,500 pages; 800 fresh ones would be 3.6 M faults. Reused buffers
# fault only when more are in flight than at warm-up, never more than the 13 the queue
# and two takers can hold. Measured on 2 cores: tuned 55 to 27k; untuned 72k to 380k
# (glibc's adaptive thresholds make it vary run to run, so it is printed, not asserted).
REUSED = 13 * 4_500


def run(mode: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_')}
    out = subprocess.run([sys.executable, '-c', CHILD, mode], capture_output=True, text=True,
                         check=True, env=env)
    return out.stdout.split()


def test_restart_gives_every_thread_the_tuned_arena():
    *started, faults, arena_max = run('restart')
    late = int(run('late')[0])
    print(f'page faults for 400 x 2 x 18 MB after warm-up: restarted {faults}, '
          f'mallopt after threads started {late}, default {run("default")[0]}')
    assert started == ['started', 'started']
    assert arena_max == '1'
    assert int(faults) < REUSED


def test_keep_freed_buffers_before_threads_start():
    faults = int(run('early')[0])
    print(f'page faults for 400 x 2 x 18 MB after warm-up: mallopt first {faults}')
    assert faults < REUSED


def test_user_malloc_settings_are_kept(monkeypatch):
    from sensr_bridge.process import malloc

    monkeypatch.setenv('MALLOC_ARENA_MAX', '4')
    assert not malloc.keep_freed_buffers()
    malloc.restart_with_tuned_malloc()  # returns: the user's setting stands
    assert os.environ['MALLOC_ARENA_MAX'] == '4'


BACKLOG = """
from sensr_bridge.process import malloc
def rss_mb():
    return int(open('/proc/self/statm').read().split()[1]) * 4096 >> 20
backlog = [bytearray(18_432_000) for _ in range(15)]
in_use = bytearray(18_432_000)  # above the backlog: the heap top cannot be trimmed
del backlog
before = rss_mb()
print(malloc.release_free_memory(1 << 40), rss_mb(), malloc.release_free_memory() >> 20,
      before, rss_mb())
"""


def test_release_free_memory_returns_a_drained_backlog():
    from sensr_bridge.process import malloc

    env = {**os.environ, **malloc.ENVIRONMENT}
    out = subprocess.run([sys.executable, '-c', BACKLOG], capture_output=True, text=True,
                         check=True, env=env)
    kept, rss_kept, released_mb, before, after = (int(v) for v in out.stdout.split())
    print(f'15 freed 18 MB buffers: RSS {before} MB, {after} MB after release')
    assert kept == 0  # below the threshold nothing is released
    # Nothing released: RSS stays where it was (to a page or two of the call's own set-up,
    # which can cross an MB boundary: CI saw 292 -> 293).
    assert abs(rss_kept - before) <= 2, (rss_kept, before)
    assert released_mb >= 15 * 17
    assert after < before - 15 * 17
