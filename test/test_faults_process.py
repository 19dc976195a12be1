# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Process-level faults: group signals, SIGKILL, a full disk, bad output paths.

Real processes on loopback, as users and ``ros2 launch`` run them: the SENSR simulator,
the bridge (``python -m sensr_bridge.nodes.bridge``) and the recorder
(``python -m sensr_bridge.nodes.recorder``) as separate processes in one process group,
or the composed ``python -m sensr_bridge.cli.record``. Counts are compared between what the
processes log at exit (the bridge's ``final counters`` line, the recorder's ``bag
closed`` line, record's ``result:`` line) and what the bag holds, read back with rosbags.
"""

import itertools
import os
from pathlib import Path
import re
import select
import signal
import stat
import struct
import subprocess
import time

from helpers import ENV, PY, Proc
import psutil
import pytest
from rosbags.rosbag2 import Reader
import websocket

FULL_POINTS = 921_512
CLOUD_BYTES = FULL_POINTS * 16
STATS = re.compile(r'clouds [\d.]+/s \(total (\d+)\)')
PROGRESS = re.compile(r'clouds received (\d+) published (\d+) \| output published \d+ \| bag '
                      r'written (\d+) dropped (\d+)')


def clean_output(proc: Proc) -> None:
    out = proc.output
    assert 'Traceback' not in out and 'Exception ignored' not in out, f'{proc.name}:\n{out}'


def start_simulator(points: int, *extra: str, **popen) -> tuple[Proc, int, int]:
    sim = Proc('simulator', [PY, '-m', 'sensr_bridge.sim', '--output-port', '0',
                             '--point-port', '0', '--rate', '10', '--points', str(points),
                             *extra], **popen)
    try:
        match = sim.wait_line(r'ready output_port=(\d+) point_port=(\d+)', timeout=60)
    except BaseException:
        sim.kill_tree()
        raise
    return sim, int(match[1]), int(match[2])


def bridge_cmd(out_port: int, point_port: int, workers: int) -> list[str]:
    return [PY, '-m', 'sensr_bridge.nodes.bridge', '--ros-args', '-r', '__ns:=/sensr',
            '-p', f'output_port:={out_port}', '-p', f'point_port:={point_port}',
            '-p', f'decode_workers:={workers}', '-p', 'stats_log_period:=0.5']


def recorder_cmd(out_dir: Path) -> list[str]:
    return [PY, '-m', 'sensr_bridge.nodes.recorder', '--ros-args', '-r', '__ns:=/sensr',
            '-p', f'output_dir:={out_dir}', '-p', 'bag_name:=bag',
            '-p', 'writer_backend:=python']


def bag_counts(bag: Path) -> dict[str, int]:
    with Reader(bag) as reader:
        return {c.topic: c.msgcount for c in reader.connections}


def cloud_steps_ms(bag: Path) -> list[int]:
    """Steps between the header stamps of the recorded clouds (a gap shows a loss)."""
    with Reader(bag) as reader:
        clouds = [c for c in reader.connections if c.topic == '/sensr/points']
        stamps = [sec * 10**9 + nsec for sec, nsec in (
            struct.unpack_from('<iI', raw, 4) for _, _, raw in reader.messages(clouds))]
    return [round((b - a) / 1e6) for a, b in itertools.pairwise(stamps)]


def final_counters(bridge: Proc) -> dict[str, int]:
    line = bridge.wait_line(r'final counters: (.*)', timeout=1)[1]
    return {k: int(v) for k, v in (item.split('=') for item in line.split())}


def wait_dead(pids: list[int], since: float, timeout: float) -> dict[int, float]:
    """Wait until processes (not necessarily our children) have exited; seconds each.

    A pidfd becomes readable when its process exits (zombie or not), so this needs no
    polling of the process table.
    """
    poller = select.poll()
    fds = {}
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            fds[pid] = None
            continue
        fds[pid] = fd
        poller.register(fd, select.POLLIN)
    died = {pid: time.monotonic() - since for pid, fd in fds.items() if fd is None}
    by_fd = {fd: pid for pid, fd in fds.items() if fd is not None}
    try:
        while len(died) < len(pids):
            left = since + timeout - time.monotonic()
            if left <= 0:
                break
            for fd, _ in poller.poll(left * 1000):
                died[by_fd[fd]] = time.monotonic() - since
                poller.unregister(fd)
    finally:
        for fd in by_fd:
            os.close(fd)
    return died


def spawned_workers(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if 'spawn_main' in ' '.join(p.cmdline())]


def check_permissions(bag: Path) -> None:
    """E: 0o755 directory, 0o644 files under the usual umask (0o022, set for the children)."""
    assert stat.S_IMODE(bag.stat().st_mode) == 0o755
    files = list(bag.iterdir())
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def mount_tmpfs(target: Path, size: str) -> None:
    target.mkdir()
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(target)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs: {done.stderr.strip()}')


# --- B: group signal to separate processes --------------------------------------------------


@pytest.mark.parametrize(('sig', 'workers'), [(signal.SIGINT, 0), (signal.SIGTERM, 0),
                                              (signal.SIGINT, 1)],
                         ids=['sigint', 'sigterm', 'sigint-pool'])
def test_group_signal_separate_processes_lose_nothing(tmp_path, sig, workers):
    """Simulator, bridge and recorder in one process group get the signal at once."""
    # The frame clock starts with a third client, connected once the bridge's cloud
    # publisher has matched the recorder's subscription, so the bag can hold every cloud
    # the bridge publishes (clouds published before that are lost by design of a
    # volatile topic, not by the shutdown).
    # A new process group (in this session, so the others can join it), like a launch.
    sim, out_port, point_port = start_simulator(FULL_POINTS, '--wait-clients', '3',
                                                process_group=0)
    group = sim.pid
    procs = [sim]
    try:
        recorder = Proc('recorder', recorder_cmd(tmp_path), process_group=group)
        procs.append(recorder)
        bridge = Proc('bridge', bridge_cmd(out_port, point_port, workers), process_group=group)
        procs.append(bridge)
        # Both topics compared below: the recorder subscribes to each as it discovers it,
        # and both ends must have matched (discovery is not symmetric: a cloud sent while
        # only the bridge had matched was lost, counted as lost in DDS).
        for topic in ('points', 'output_raw'):
            recorder.wait_line(rf'/sensr/{topic}: [1-9]\d* publisher\(s\) matched')
            bridge.wait_line(rf'/sensr/{topic}: [1-9]\d* subscriber\(s\) matched')
        gate = websocket.create_connection(f'ws://127.0.0.1:{out_port}/', timeout=10)
        gate.recv()
        gate.close()
        bridge.wait_line(STATS, accept=lambda m: int(m[1]) >= 20)
        tree = psutil.Process(bridge.pid).children(recursive=True)
        assert len(spawned_workers(tree)) == workers, tree

        t0 = time.monotonic()
        os.killpg(group, sig)
        codes = {p.name: p.wait_exit(10) for p in procs}
        times = {p.name: round(p.exited_at - t0, 2) for p in procs}
        print(f'{signal.Signals(sig).name} workers={workers}: exit after {times}')
        assert codes == {'simulator': 0, 'recorder': 0, 'bridge': 0}, codes
        # The bridge waits (up to its drain_timeout, 1.5 s) for its reliable publishers'
        # last messages to be acknowledged; Fast DDS acknowledges only after a writer's
        # periodic heartbeat (3 s by default), so rarely written topics (events, custom)
        # often use much of it. The recorder closes once the bridge's publishers are gone.
        assert times['simulator'] < 2.0 and times['bridge'] < 2.0, times
        assert times['recorder'] < 2.5, times
        for proc in procs:
            clean_output(proc)
        # No decode worker or resource tracker is left: exited at once, reaped by init.
        died = wait_dead([p.pid for p in tree], since=t0, timeout=2)
        assert len(died) == len(tree), (tree, died)
        _, alive = psutil.wait_procs(tree, timeout=5)
        assert not alive, alive

        counts = final_counters(bridge)
        got = bag_counts(tmp_path / 'bag')
        # Frames the bridge could not take (decoder full: a loaded machine, or a pool
        # worker's slow first frames) are dropped on arrival, counted and logged; every
        # other frame received must be published, and every cloud published be in the bag.
        overload = sum(v for k, v in counts.items() if k.startswith('points_dropped'))
        print(f"bridge received {counts['points_received']} published "
              f"{counts['points_published']} (dropped on arrival {overload}), bag holds "
              f"{got['/sensr/points']}")
        assert counts['points_published'] >= 20
        assert counts['points_received'] == counts['points_published'] + overload, counts
        # The recorder's summary says whether a missing message was lost in DDS (counted).
        closing = [line for line in recorder.output.splitlines() if 'bag closed' in line]
        assert got['/sensr/points'] == counts['points_published'], (
            counts, got, 'cloud stamp steps (ms):', cloud_steps_ms(tmp_path / 'bag'), closing)
        assert got['/sensr/output_raw'] == counts['output_published'], (counts, got, closing)
        closed = recorder.wait_line(r'bag closed: .* written (\d+) .*dropped (\d+)', timeout=1)
        assert int(closed[1]) == sum(got.values()) and closed[2] == '0', closed[0]
        check_permissions(tmp_path / 'bag')
    finally:
        for proc in procs:
            if proc.exited_at is None:
                proc.kill_tree()


def test_sigkill_bridge_takes_decode_workers_along():
    """SIGKILL of the bridge: its decode worker dies too (PR_SET_PDEATHSIG), no zombie."""
    sim, out_port, point_port = start_simulator(FULL_POINTS)
    bridge = None
    try:
        bridge = Proc('bridge', bridge_cmd(out_port, point_port, 1))
        bridge.wait_line(STATS, accept=lambda m: int(m[1]) >= 5)
        tree = psutil.Process(bridge.pid).children(recursive=True)
        workers = spawned_workers(tree)
        assert len(workers) == 1, tree
        t0 = time.monotonic()
        bridge.popen.kill()
        assert bridge.wait_exit(5) == -signal.SIGKILL
        died = wait_dead([p.pid for p in tree], since=t0, timeout=3)
        kinds = {w.pid: 'worker' for w in workers}
        print('bridge SIGKILLed: children dead after ' + ', '.join(
            f'{kinds.get(pid, "resource tracker")} {seconds:.2f} s'
            for pid, seconds in died.items()))
        assert len(died) == len(tree), died
        # Dead, then reaped by init (this machine's PID 1 does so every couple of seconds).
        gone, alive = psutil.wait_procs(tree, timeout=5)
        assert not alive, [(p, p.status()) for p in alive]
        assert not any(psutil.pid_exists(p.pid) for p in tree)
        # The simulator saw the connections drop and keeps serving.
        assert sim.exited_at is None
    finally:
        if bridge is not None:
            bridge.kill_tree()
        sim.popen.terminate()
        sim.wait_exit(10)


_UNCLOSED_POOL = """
import sys
import threading
from sensr_bridge.sensr import decode, points
decoded = threading.Event()
pool = decode.PoolDecoder(points.CloudOptions(), 'f', lambda _r: decoded.set(), workers=1,
                          max_frame_bytes=1 << 20)
pool.submit(b'not a point frame', 0, 0)  # the worker answers: it runs (and ignores SIGTERM)
assert decoded.wait(30)
print('worker', pool.worker_pids[0], flush=True)
sys.stdin.readline()
"""  # and the process ends without pool.close()


def test_unclosed_decode_pool_does_not_hang_exit():
    """A pool nobody closed must not keep its process from exiting."""
    proc = Proc('pool', [PY, '-c', _UNCLOSED_POOL], stdin=subprocess.PIPE)
    try:
        worker = psutil.Process(int(proc.wait_line(r'worker (\d+)')[1]))
        proc.popen.stdin.close()  # now exit
        assert proc.wait_exit(10) == 0, proc.output
    finally:
        proc.kill_tree()
    _, alive = psutil.wait_procs([worker], timeout=5)
    assert not alive
    assert 'Traceback' not in proc.output, proc.output


# --- C: full disk and bad output paths ------------------------------------------------------


def test_disk_full_keeps_committed_bag_and_bridge_running(tmp_path):
    disk = tmp_path / 'disk'
    mount_tmpfs(disk, '40m')
    record = None
    try:
        record = Proc('record', [PY, '-m', 'sensr_bridge.cli.record', '--simulate', '--points',
                                 '200000', '--output-dir', str(disk), '--bag-name', 'bag',
                                 '--writer-backend', 'python'])
        record.wait_line(r'\[ERROR\].*bag writing stopped: storage full')
        at_error = int(record.wait_line(PROGRESS)[2])
        after = record.wait_line(PROGRESS, accept=lambda m: int(m[2]) >= at_error + 10)
        assert int(after[4]) > 0  # dropped, counted
        t0 = time.monotonic()
        record.popen.send_signal(signal.SIGINT)
        assert record.wait_exit(10) == 0, record.output[-4000:]
        elapsed = time.monotonic() - t0
        clean_output(record)
        # Once, through the recorder's ROS logger (it was printed a second time before, as a
        # bare stderr line from the writer thread's Python logging).
        stopped = [line for line in record.output.splitlines()
                   if 'bag writing stopped' in line]
        assert len(stopped) == 1, stopped
        assert re.match(r'\[ERROR\] \[[\d.]+\] \[[\w.]*sensr_recorder\]: ', stopped[0]), stopped
        result = record.wait_line(r'result: clouds_received=(\d+) clouds_published=(\d+) '
                                  r'messages_written=(\d+)', timeout=1)
        closed = record.wait_line(r'bag closed: .* written (\d+) .*dropped (\d+) '
                                  r"\{'storage_full': (\d+)\}.*writing stopped: "
                                  r'StorageFullError', timeout=1)
        committed = int(result[3])
        counts = bag_counts(disk / 'bag')
        print(f'disk full: committed {committed}, bag holds {sum(counts.values())}, dropped '
              f'{closed[2]}, clouds published {result[2]}, exit after {elapsed:.2f} s')
        assert committed == int(closed[1]) == sum(counts.values()) > 0
        assert counts['/sensr/points'] >= 1
        assert int(closed[3]) == int(closed[2]) > 0
        assert int(result[2]) >= at_error + 10  # the bridge kept publishing
        with Reader(disk / 'bag') as reader:  # every committed message reads back
            assert sum(1 for _ in reader.messages()) == committed
        check_permissions(disk / 'bag')
    finally:
        if record is not None and record.exited_at is None:
            record.kill_tree()
        subprocess.run(['umount', str(disk)], check=False)


@pytest.mark.parametrize('case', ['existing_bag', 'parent_is_file'])
def test_record_refuses_bad_output_at_configure(tmp_path, case):
    if case == 'existing_bag':
        out_dir = tmp_path
        (tmp_path / 'bag').mkdir()
        (tmp_path / 'bag' / 'keep.txt').write_text('precious')
        message = f'bag directory {tmp_path / "bag"} already exists'
    else:
        (tmp_path / 'file').write_text('a regular file')
        out_dir = tmp_path / 'file' / 'bags'
        message = f'output_dir {out_dir} cannot be created: Not a directory'
    # No simulator: the recorder is configured first and refuses before anything connects.
    record = Proc('record', [PY, '-m', 'sensr_bridge.cli.record', '--output-dir', str(out_dir),
                             '--bag-name', 'bag', '--writer-backend', 'python',
                             '--output-port', '9', '--point-port', '9'])
    try:
        code = record.wait_exit(30)
    finally:
        record.kill_tree()
    out = record.output
    assert code != 0, out
    assert f'configuration rejected: {message}' in out, out
    assert 'configure failed; not starting' in out, out
    clean_output(record)
    if case == 'existing_bag':
        assert [p.name for p in (tmp_path / 'bag').iterdir()] == ['keep.txt']


# --- D: SIGKILL of the recorder in the middle of a batch ------------------------------------


def test_sigkill_recorder_mid_batch_then_reindex(tmp_path):
    record = Proc('record', [PY, '-m', 'sensr_bridge.cli.record', '--simulate', '--output-dir',
                             str(tmp_path), '--bag-name', 'bag', '--writer-backend', 'python'])
    bag = tmp_path / 'bag'
    journal = bag / 'bag_0.db3-journal'
    try:
        last = record.wait_line(PROGRESS, accept=lambda m: int(m[3]) >= 30)
        tree = psutil.Process(record.pid).children(recursive=True)
        # Kill inside a write transaction: the rollback journal is only non-empty then
        # (TRUNCATE empties it at every commit). Polled: there is no event to wait for.
        deadline = time.monotonic() + 10
        while not (journal.exists() and journal.stat().st_size > 0):
            assert time.monotonic() < deadline, 'no write transaction seen'
            time.sleep(0.001)
        with record.cond:
            progress = [m for m in map(PROGRESS.search, record.lines) if m]
        last = progress[-1] if progress else last
        record.popen.kill()
        assert record.wait_exit(10) == -signal.SIGKILL
        # The simulator child goes with record (PR_SET_PDEATHSIG), no orphan left.
        gone, alive = psutil.wait_procs(tree, timeout=5)
        assert not alive, alive
    finally:
        record.kill_tree()
    clean_output(record)  # nor from the simulator that lost its parent
    reported = int(last[3])
    hot_journal = journal.exists() and journal.stat().st_size > 0
    assert not (bag / 'metadata.yaml').exists()
    with pytest.raises(Exception, match='metadata'):
        Reader(bag).open()

    done = subprocess.run([PY, '-m', 'sensr_bridge.bag.reindex', str(bag)], capture_output=True,
                          text=True, env=ENV, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'wrote' in done.stdout and 'metadata.yaml' in done.stdout, done.stdout
    assert not journal.exists() or journal.stat().st_size == 0  # rolled back

    counts = bag_counts(bag)
    recovered = sum(counts.values())
    print(f'SIGKILL mid-batch (hot journal: {hot_journal}): last progress line said '
          f'{reported} written, recovered {recovered} ({counts["/sensr/points"]} clouds)\n'
          f'{done.stdout}')
    assert recovered >= reported
    with Reader(bag) as reader:
        clouds = [c for c in reader.connections if c.topic == '/sensr/points']
        sizes = [len(raw) for _, _, raw in reader.messages(connections=clouds)]
        assert len(sizes) == counts['/sensr/points'] > 0
        assert all(size > CLOUD_BYTES for size in sizes), set(sizes)
        assert sum(1 for _ in reader.messages()) == recovered
    info = subprocess.run([PY, '-m', 'sensr_bridge.bag.info', str(bag)], capture_output=True,
                          text=True, env=ENV, timeout=60, check=False)
    assert info.returncode == 0, info.stdout + info.stderr
    assert int(re.search(r'Messages:\s+(\d+)', info.stdout)[1]) == recovered, info.stdout
