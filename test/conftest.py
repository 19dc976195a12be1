# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Shared set-up: DDS profile, unique ROS domain per test session, simulator factory."""

import contextlib
import os
from pathlib import Path
import random
import subprocess
import threading

from bag_helpers import counting
from hypothesis import settings
import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode

from sensr_bridge.nodes.runtime import spin_until
from sensr_bridge.process import environment, shm
from sensr_bridge.sim.config import SimulatorConfig
from sensr_bridge.sim.server import Simulator

# Large clouds need the shared-memory profile; a random domain keeps parallel runs apart.
os.environ.update(environment.dds_environment())
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 200)))
os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')

# Property tests draw the same examples on every run, so CI is reproducible;
# SENSR_FUZZ_RANDOM=1 draws new ones (a fuzzing campaign, see test/test_fuzz.py).
settings.register_profile('sensr', derandomize=os.environ.get('SENSR_FUZZ_RANDOM') != '1')
settings.load_profile('sensr')


@pytest.fixture(scope='session', autouse=True)
def clean_shared_memory():
    """Remove DDS segments of dead processes before and after the run.

    Tests SIGKILL participants on purpose; each leaves a 268 MB segment in /dev/shm,
    which would fill a CI machine's RAM over many runs.
    """
    shm.remove_stale_segments()
    yield
    shm.remove_stale_segments(min_age_s=2.0)


@pytest.fixture
def make_sim(request):
    """Start simulators with the test module's ``SMALL`` settings and overrides; stop after."""
    defaults = getattr(request.module, 'SMALL', {})
    sims = []

    def make(**overrides):
        sim = Simulator(SimulatorConfig(**{**defaults, **overrides}))
        sims.append(sim)
        sim.start()
        return sim

    yield make
    for sim in sims:
        sim.stop()


@contextlib.contextmanager
def _spinning_context():
    """An rclpy context of its own and a MultiThreadedExecutor spinning on a thread.

    At the end every node in the executor is shut down (a test that failed before its
    own shutdown must not leave a bridge reconnecting and publishing into the next tests:
    the ROS domain is shared by the whole session) and destroyed, then the context.
    """
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(context=context)
    stop = threading.Event()
    thread = threading.Thread(target=spin_until, args=(executor, stop), daemon=True)
    thread.start()
    try:
        yield context, executor
    finally:
        nodes = executor.get_nodes()
        for node in nodes:
            if isinstance(node, LifecycleNode):
                with contextlib.suppress(Exception):
                    node.trigger_shutdown()
        stop.set()
        executor.wake()
        thread.join(5)  # its loop reads the context: done with it before destroy
        executor.shutdown(timeout_sec=2)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
        context.destroy()


@pytest.fixture
def ros():
    """(context, executor): a context of its own, its executor spinning; cleaned up after."""
    with _spinning_context() as pair:
        yield pair


@pytest.fixture(scope='module')
def module_ros():
    """The ``ros`` fixture shared by the tests of a module."""
    with _spinning_context() as pair:
        yield pair


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 4 MiB tmpfs (needs root; skipped otherwise)."""
    mount = tmp_path / 'small'
    mount.mkdir()
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip(f'cannot mount a small tmpfs to fill: {done.stderr.strip()}')
    yield mount
    # Lazily if a failed test left a file open on it: no mount may outlive the test.
    if subprocess.run(['umount', str(mount)], check=False).returncode:
        subprocess.run(['umount', '-l', str(mount)], check=True)


@pytest.fixture
def counter():
    """Make CloudCounters (bag_helpers) of a topic; closed after the test."""
    with counting() as make:
        yield make
